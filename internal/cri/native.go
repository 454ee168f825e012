package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
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
	// absent: the runtime serves no containerd API and is not containerd
	// (CRI-O); not asked again.
	absent atomic.Bool
}

// othersContainers lists the containers of the CRI's namespace that the
// CRI did not make (it labels its containers and its pod sandboxes). A
// container names its image by a reference, not by the image it runs: a
// tag may have moved since, or gone. So each one uses the image its
// reference names now, and every image with a reference in the same
// repository (the one it runs keeps the digest reference of its pull
// there): one entry per image, fail closed. A runtime without
// containerd's API has none; containerd without it is an error, not a
// node without other clients.
func (r *Runtime) othersContainers(ctx context.Context) ([]runtime.Container, error) {
	if r.native.absent.Load() {
		return nil, nil
	}
	listed, err := r.listNative(ctx)
	switch {
	case status.Code(err) == codes.Unimplemented:
		v, verr := r.version(ctx)
		if verr != nil {
			return nil, verr
		}
		if v.GetRuntimeName() == "containerd" {
			return nil, fmt.Errorf("containerd's own containers API does not answer on %s, so the containers of ctr, nerdctl or BuildKit cannot be seen: %w", r.endpoint, wrap(err))
		}
		r.native.absent.Store(true)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("containerd's own containers: %w", wrap(err))
	}
	users := imageUsers{r: r, ids: map[string]string{}}
	var out []runtime.Container
	for _, c := range listed {
		ct := runtime.Container{ID: c.GetID(), Name: c.GetLabels()["nerdctl/name"], State: runtime.StateUnknown,
			Labels: c.GetLabels(), MadeBy: madeByOthers}
		if at := c.GetCreatedAt(); at != nil {
			ct.Created = at.AsTime()
		}
		ids, err := users.of(ctx, c.GetImage())
		if err != nil {
			return nil, fmt.Errorf("the image of container %s: %w", runtime.ShortID(ct.ID), err)
		}
		if len(ids) == 0 {
			out = append(out, ct) // no image by that name (BuildKit's run from snapshots it holds)
		}
		for _, id := range ids {
			ct.ImageID = id
			out = append(out, ct)
		}
	}
	return out, nil
}

// notTheCRIs selects, in containerd's filter syntax, the containers the
// CRI did not make: those without its label (a missing label is "", which
// differs from both values). The CRI's own, each with its OCI spec, stay
// on the runtime's side: on a node of hundreds of pods they made a listing
// many times larger than the CRI's own.
const notTheCRIs = `labels."` + criKindLabel + `"!=container,labels."` + criKindLabel + `"!=sandbox`

// listNative lists the containers of the CRI's namespace that the CRI did
// not make, through containerd's own API, one message each (a whole list
// in one message can pass containerd's 16 MiB limit).
func (r *Runtime) listNative(ctx context.Context) ([]*containersapi.Container, error) {
	r.count("containerd.Containers.ListStream")
	ctx, cancel := r.read(metadata.AppendToOutgoingContext(ctx, namespaceHeader, criNamespace))
	defer cancel()
	stream, err := r.native.client.ListStream(ctx, &containersapi.ListContainersRequest{Filters: []string{notTheCRIs}})
	if err != nil {
		return nil, err
	}
	var out []*containersapi.Container
	for {
		msg, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return nil, err
		}
		out = append(out, msg.GetContainer())
	}
}

// imageUsers finds the images a reference may stand for, for one listing.
type imageUsers struct {
	r      *Runtime
	ids    map[string]string // reference → the ID it names now ("" for none)
	images []runtime.Image   // listed at the first reference that has a repository
}

// of returns the IDs of the images ref names now, and of every image with
// a reference in ref's repository.
func (u *imageUsers) of(ctx context.Context, ref string) ([]string, error) {
	if ref == "" {
		return nil, nil
	}
	id, ok := u.ids[ref]
	if !ok {
		var err error
		if id, err = u.r.imageID(ctx, ref); err != nil {
			return nil, err
		}
		u.ids[ref] = id
	}
	var ids []string
	if id != "" {
		ids = append(ids, id)
	}
	repo := match.RepositoryOf(ref)
	if repo == "" {
		return ids, nil
	}
	if u.images == nil {
		images, err := u.r.ListImages(ctx)
		if err != nil {
			return nil, err
		}
		u.images = append(images, runtime.Image{}) // listed, even when empty
	}
	for _, img := range u.images {
		if img.ID != id && match.InRepository(repo, img.RepoTags, img.RepoDigests) {
			ids = append(ids, img.ID)
		}
	}
	return ids, nil
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
