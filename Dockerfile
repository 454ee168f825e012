# The node agent's image: a static binary on distroless.
#
# The two base images are build arguments, so that a registry mirror (or,
# in make test, local stand-ins made by hack/image.sh) can replace them
# without editing this file. The build reaches the Go module proxy: give
# --build-arg GOPROXY=… behind a mirror.
ARG BUILDER_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12

FROM ${BUILDER_IMAGE} AS build
ARG GOPROXY
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
# The CRD is embedded: policies are admitted with its own rules.
COPY config/crd/ config/crd/
COPY controllers/ controllers/
COPY internal/ internal/
ARG VERSION=v0.0.0-dev
RUN LDFLAGS="-s -w -X github.com/imagecleanup/image-cleanup-operator/internal/version.Version=${VERSION}" \
 && CGO_ENABLED=0 go build -trimpath -ldflags="${LDFLAGS}" -o /out/manager ./cmd/manager \
 && CGO_ENABLED=0 go build -trimpath -ldflags="${LDFLAGS}" -o /out/imagecleanup ./cmd/imagecleanup

# Runs as root, with every capability dropped by the DaemonSet: the node's
# Docker socket is root's (mode 660), and the owner needs no capability.
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/manager /out/imagecleanup /
ENTRYPOINT ["/manager"]
