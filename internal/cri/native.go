package cri

import (
	"context"
	"fmt"
	"sync/atomic"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
)

// The CRI lists only the containers it made, and containerd's CRI removes
// an image whatever else uses it. Other clients of the same containerd
// (ctr, nerdctl, BuildKit's containerd worker) make containers through
// containerd's own API, which answers on the same socket: the adapter
// reads those too, so that their images stay.
//
// Only the CRI's namespace is read. An image lives in one namespace: the
// CRI removes the record of its own (k8s.io), never another namespace's
// record of the same content (nerdctl's default, Docker 29's moby), and
// containerd's garbage collector keeps content while any namespace refers
// to it. A container of another namespace uses that namespace's image.

// criNamespace is the containerd namespace of the CRI's images and
// containers (fixed by containerd's CRI plugin).
const criNamespace = "k8s.io"

// namespaceHeader carries the namespace of a call to containerd's own API.
const namespaceHeader = "containerd-namespace"

// criKindLabel marks what containerd's CRI made: its containers (which the
// CRI lists) and its pod sandboxes (which run the pinned sandbox image).
const criKindLabel = "io.cri-containerd.kind"

// madeByOthers is the MadeBy of a container another client made.
const madeByOthers = "another client of containerd (ctr, nerdctl, BuildKit)"

// nativeContainers reads containerd's own containers API.
type nativeContainers struct {
	client containersapi.ContainersClient
	// absent: the runtime serves no containerd API (CRI-O); not asked again.
	absent atomic.Bool
}

// othersContainers lists the containers of the CRI's namespace that the
// CRI did not make, each with the ID of the image it names (resolved as
// the CRI resolves it; "" when no image of the CRI has that name). A
// runtime without containerd's API has none.
func (r *Runtime) othersContainers(ctx context.Context) ([]engine.Container, error) {
	if r.native.absent.Load() {
		return nil, nil
	}
	r.count("containerd.Containers.List")
	lctx, cancel := r.read(metadata.AppendToOutgoingContext(ctx, namespaceHeader, criNamespace))
	res, err := r.native.client.List(lctx, &containersapi.ListContainersRequest{})
	cancel()
	switch status.Code(err) {
	case codes.OK:
	case codes.Unimplemented:
		r.native.absent.Store(true)
		return nil, nil
	default:
		return nil, fmt.Errorf("containerd's own containers: %w", wrap(err))
	}
	var out []engine.Container
	for _, c := range res.GetContainers() {
		if _, cri := c.GetLabels()[criKindLabel]; cri {
			continue
		}
		ct := engine.Container{ID: c.GetID(), Name: othersName(c), State: engine.StateUnknown, Labels: c.GetLabels(),
			MadeBy: madeByOthers}
		if at := c.GetCreatedAt(); at != nil {
			ct.Created = at.AsTime()
		}
		if ref := c.GetImage(); ref != "" {
			id, err := r.imageID(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("the image of container %s: %w", engine.ShortID(ct.ID), err)
			}
			ct.ImageID = id
		}
		out = append(out, ct)
	}
	return out, nil
}

// imageID is the ID of the image ref names, as the CRI resolves it; ""
// when none has that name.
func (r *Runtime) imageID(ctx context.Context, ref string) (string, error) {
	r.count("ImageStatus")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return "", wrap(err)
	}
	return res.GetImage().GetId(), nil
}

// othersName is a container's name as nerdctl shows it; "" for others,
// which reports then name by its ID.
func othersName(c *containersapi.Container) string { return c.GetLabels()["nerdctl/name"] }
