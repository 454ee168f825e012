// Package cri is the runtime.Runtime of a Kubernetes node's container
// runtime through the Container Runtime Interface (CRI v1): containerd, and
// CRI-O by the same contract. It speaks gRPC to the runtime's socket, every
// call under a deadline.
//
// The CRI is not the Docker Engine API, and the differences decide what the
// planner may do (runtime.Capabilities): removing an image removes every
// reference of it; containerd removes an image whatever containers use it
// (CRI-O refuses); removing a running container stops it first; there is no
// forced removal, no parent image, no tag time, and no event of images, nor
// a replay of past events. The adapter therefore refuses, itself, to remove
// a container that is not stopped, and follows images by listing them.
package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/distribution/reference"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Default bounds of one call: a read lists or inspects; a removal may free
// gigabytes on a slow disk, so it gets longer. A runtime that takes longer
// is stalled, and the sweep stops (see internal/apply).
const (
	DefaultReadTimeout   = 30 * time.Second
	DefaultRemoveTimeout = time.Minute
)

// ImagePoll is how often a follower of events lists images: the CRI tells
// of containers only, so an image that arrives or leaves is seen by the
// next listing.
const ImagePoll = 10 * time.Second

// ErrBadEndpoint says the runtime's address cannot be used (a usage error,
// not a failure of the runtime).
var ErrBadEndpoint = errors.New("bad CRI endpoint")

// Runtime talks to one CRI runtime and counts its calls by method.
type Runtime struct {
	endpoint string
	conn     *grpc.ClientConn
	runtime  runtimeapi.RuntimeServiceClient
	images   runtimeapi.ImageServiceClient
	native   nativeContainers
	// ReadTimeout and RemoveTimeout bound each call (set before first use).
	ReadTimeout, RemoveTimeout time.Duration
	// ImagePoll is how often Events lists images while it follows
	// (default ImagePoll).
	ImagePoll time.Duration

	calls runtime.CallCount
}

// New connects to a runtime's CRI socket: unix:///run/containerd/containerd.sock,
// or the path alone. Nothing is dialled before the first call.
func New(endpoint string) (*Runtime, error) {
	path, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok && strings.Contains(endpoint, "://") {
		return nil, fmt.Errorf("%w: %q: only unix:// sockets are supported", ErrBadEndpoint, endpoint)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: %q: the socket's path must be absolute", ErrBadEndpoint, endpoint)
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEndpoint, err)
	}
	return &Runtime{endpoint: "unix://" + path, conn: conn, runtime: runtimeapi.NewRuntimeServiceClient(conn),
		images: runtimeapi.NewImageServiceClient(conn), native: nativeContainers{client: containersapi.NewContainersClient(conn)},
		ReadTimeout: DefaultReadTimeout, RemoveTimeout: DefaultRemoveTimeout, ImagePoll: ImagePoll}, nil
}

// Host is the runtime's endpoint.
func (r *Runtime) Host() string { return r.endpoint }

// Close releases the connection.
func (r *Runtime) Close() error { return r.conn.Close() }

// Calls returns the CRI calls made so far, by method.
func (r *Runtime) Calls() map[string]int { return r.calls.All() }

func (r *Runtime) count(method string) { r.calls.Add(method) }

func (r *Runtime) read(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.ReadTimeout)
}

func (r *Runtime) remove(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.RemoveTimeout)
}

// wrap maps gRPC's error codes onto the runtime's. A call that ran out of
// time says so in words a person reads, and still wraps
// context.DeadlineExceeded (the executor stops a stalled sweep on it).
func wrap(err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return fmt.Errorf("the container runtime did not answer in time: %w: %w", err, context.DeadlineExceeded)
	case codes.NotFound:
		return fmt.Errorf("%w: %w", err, runtime.ErrNotFound)
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %w", err, runtime.ErrConflict)
	}
	if msg := err.Error(); strings.Contains(msg, "in use") || strings.Contains(msg, "being used") {
		return fmt.Errorf("%w: %w", err, runtime.ErrConflict) // CRI-O: an image a container uses
	}
	return err
}

// Capabilities implements runtime.Runtime: the CRI has none of them.
// (CRI-O also refuses to remove an image in use, containerd does not: the
// executor checks from a fresh listing on every runtime.)
func (r *Runtime) Capabilities() runtime.Capabilities { return runtime.Capabilities{} }

// Ping implements runtime.Runtime.
func (r *Runtime) Ping(ctx context.Context) error {
	_, err := r.version(ctx)
	return err
}

func (r *Runtime) version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	r.count("Version")
	ctx, cancel := r.read(ctx)
	defer cancel()
	v, err := r.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	return v, wrap(err)
}

// Info implements runtime.Runtime: the runtime's name and version, and the
// filesystem where it keeps images (ImageFsInfo). For containerd, that is a
// snapshotter's folder under containerd's root, which is then the data root.
func (r *Runtime) Info(ctx context.Context) (runtime.Info, error) {
	v, err := r.version(ctx)
	if err != nil {
		return runtime.Info{}, err
	}
	info := runtime.Info{ID: v.GetRuntimeName(), Name: v.GetRuntimeName(), Version: strings.TrimPrefix(v.GetRuntimeVersion(), "v"),
		ImageStore: "cri"}
	r.count("ImageFsInfo")
	rctx, cancel := r.read(ctx)
	defer cancel()
	fs, err := r.images.ImageFsInfo(rctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		return runtime.Info{}, wrap(err)
	}
	for _, f := range fs.GetImageFilesystems() {
		if mp := f.GetFsId().GetMountpoint(); mp != "" {
			info.RootDir = mp
			break
		}
	}
	if info.Name == "containerd" && strings.HasPrefix(filepath.Base(info.RootDir), "io.containerd.snapshotter.") {
		info.RootDir = filepath.Dir(info.RootDir)
		info.ImageStore, info.ContainerdRoot = runtime.ContainerdStore, info.RootDir
	}
	return info, nil
}

// familiar writes a reference as people and the Docker CLI do
// (docker.io/library/busybox:latest is busybox:latest).
func familiar(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(named)
}

func toImage(img *runtimeapi.Image) runtime.Image {
	out := runtime.Image{ID: img.GetId(), Size: int64(img.GetSize()), Pinned: img.GetPinned()}
	for _, t := range img.GetRepoTags() {
		out.RepoTags = append(out.RepoTags, familiar(t))
	}
	for _, d := range img.GetRepoDigests() {
		out.RepoDigests = append(out.RepoDigests, familiar(d))
	}
	return out
}

// ListImages implements runtime.Runtime.
func (r *Runtime) ListImages(ctx context.Context) ([]runtime.Image, error) {
	r.count("ListImages")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]runtime.Image, 0, len(res.GetImages()))
	for _, img := range res.GetImages() {
		out = append(out, toImage(img))
	}
	return out, nil
}

// InspectImage implements runtime.Runtime: the image as it is now, with its
// build date from the image's configuration (the runtime's verbose status).
func (r *Runtime) InspectImage(ctx context.Context, id string) (runtime.Image, error) {
	r.count("ImageStatus")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: id}, Verbose: true})
	if err != nil {
		return runtime.Image{}, wrap(err)
	}
	if res.GetImage() == nil {
		return runtime.Image{}, fmt.Errorf("image %s: %w", id, runtime.ErrNotFound)
	}
	img := toImage(res.GetImage())
	img.Created = builtAt(res.GetInfo())
	return img, nil
}

// builtAt reads the build date from a verbose image status: containerd puts
// the OCI image configuration under "info" as imageSpec.
func builtAt(info map[string]string) time.Time {
	var v struct {
		ImageSpec struct {
			Created time.Time `json:"created"`
		} `json:"imageSpec"`
	}
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil {
		return time.Time{}
	}
	return v.ImageSpec.Created
}

// The CRI's container states in the runtime's words. UNKNOWN is not a
// stopped state: such a container counts as in use.
func state(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return runtime.StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return runtime.StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return runtime.StateExited
	}
	return runtime.StateUnknown
}

// imageOf is the image ID a container runs: image_id (CRI 0.30 and later),
// else image_ref, which containerd and CRI-O fill with the ID.
func imageOf(id, ref string) string {
	if id != "" {
		return id
	}
	return ref
}

func toContainer(c *runtimeapi.Container) runtime.Container {
	return runtime.Container{
		ID:      c.GetId(),
		Name:    c.GetMetadata().GetName(),
		ImageID: imageOf(c.GetImageId(), c.GetImageRef()),
		State:   state(c.GetState()),
		Labels:  c.GetLabels(),
		Created: time.Unix(0, c.GetCreatedAt()),
	}
}

// ListContainers implements runtime.Runtime: every container, in every
// state, the CRI's and (on containerd) those other clients made through
// containerd's own API, both listings under way at once.
func (r *Runtime) ListContainers(ctx context.Context) ([]runtime.Container, error) {
	var others []runtime.Container
	var othersErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		others, othersErr = r.othersContainers(ctx)
	}()
	out, err := r.criContainers(ctx)
	<-done
	if err != nil {
		return nil, err
	}
	if othersErr != nil {
		return nil, othersErr
	}
	return append(out, others...), nil
}

// criContainers lists the containers the CRI made.
func (r *Runtime) criContainers(ctx context.Context) ([]runtime.Container, error) {
	r.count("ListContainers")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]runtime.Container, 0, len(res.GetContainers()))
	for _, c := range res.GetContainers() {
		out = append(out, toContainer(c))
	}
	return out, nil
}

// ContainersUsing implements runtime.Runtime from a fresh listing of every
// container (the CRI filters by state, sandbox and label, not by image):
// the check that stands between the executor and a runtime that would
// remove an image in use.
func (r *Runtime) ContainersUsing(ctx context.Context, imageIDs []string) ([]runtime.Container, error) {
	if len(imageIDs) == 0 {
		return nil, nil
	}
	all, err := r.ListContainers(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(c runtime.Container) bool { return !slices.Contains(imageIDs, c.ImageID) }), nil
}

// ContainerFinishedAt implements runtime.Runtime.
func (r *Runtime) ContainerFinishedAt(ctx context.Context, id string) (string, time.Time, error) {
	st, err := r.containerStatus(ctx, id)
	if err != nil {
		return "", time.Time{}, err
	}
	var finished time.Time
	if ns := st.GetFinishedAt(); ns > 0 {
		finished = time.Unix(0, ns)
	}
	return state(st.GetState()), finished, nil
}

func (r *Runtime) containerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	r.count("ContainerStatus")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, wrap(err)
	}
	if res.GetStatus() == nil {
		return nil, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	return res.GetStatus(), nil
}

// RemoveContainer implements runtime.Runtime. The CRI stops a running
// container it is asked to remove; the executor never wants that, so the
// container's state is read just before, and one that is not stopped is a
// conflict. removeVolumes has no meaning here: CRI containers have no
// anonymous volumes of their own (a pod's volumes are the kubelet's).
func (r *Runtime) RemoveContainer(ctx context.Context, id string, _ bool) error {
	st, err := r.containerStatus(ctx, id)
	if err != nil {
		return err
	}
	if s := state(st.GetState()); s != runtime.StateExited && s != runtime.StateCreated {
		return fmt.Errorf("container %s is %s: %w", runtime.ShortID(id), s, runtime.ErrConflict)
	}
	r.count("RemoveContainer")
	ctx, cancel := r.remove(ctx)
	defer cancel()
	_, err = r.runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	return wrap(err)
}

// RemoveImage implements runtime.Runtime: the image goes with every
// reference, whichever one names it. The CRI calls the removal of a missing
// image a success; the image is looked up first, so that "not found" says
// that another hand was quicker. There is no forced removal.
func (r *Runtime) RemoveImage(ctx context.Context, ref string, opts runtime.RemoveImageOptions) (runtime.ImageRemoval, error) {
	if opts.Force {
		return runtime.ImageRemoval{}, errors.New("the CRI has no forced removal")
	}
	img, err := r.InspectImage(ctx, ref)
	if err != nil {
		return runtime.ImageRemoval{}, err
	}
	r.count("RemoveImage")
	rctx, cancel := r.remove(ctx)
	defer cancel()
	if _, err := r.images.RemoveImage(rctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: img.ID}}); err != nil {
		return runtime.ImageRemoval{}, wrap(err)
	}
	return runtime.ImageRemoval{Gone: []string{img.ID}}, nil
}
