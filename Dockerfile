# The node agent's image: a static binary on distroless.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/imagecleanup ./cmd/imagecleanup

# Runs as root, with every capability dropped by the DaemonSet: the node's
# Docker socket is root's (mode 660), and the owner needs no capability.
FROM gcr.io/distroless/static-debian12
COPY --from=build /out/manager /out/imagecleanup /
ENTRYPOINT ["/manager"]
