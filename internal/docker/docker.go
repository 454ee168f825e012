// Package docker implements engine.Runtime with the Docker Engine API client,
// negotiating the API version with whatever engine it finds.
package docker

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
)

var _ engine.Runtime = (*Runtime)(nil)

// Runtime talks to one Docker engine and counts its API calls by method.
type Runtime struct {
	cli *client.Client

	mu    sync.Mutex
	calls map[string]int
}

// New connects to host (unix:///path, tcp://...); an empty host means
// DOCKER_HOST, else the default socket, as the docker CLI does.
func New(host string) (*Runtime, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Runtime{cli: cli, calls: map[string]int{}}, nil
}

// Host is the engine's address.
func (r *Runtime) Host() string { return r.cli.DaemonHost() }

// Close releases the client's connections.
func (r *Runtime) Close() error { return r.cli.Close() }

// Calls returns the API calls made so far, by method.
func (r *Runtime) Calls() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.calls)
}

func (r *Runtime) count(method string) {
	r.mu.Lock()
	r.calls[method]++
	r.mu.Unlock()
}

// wrap maps Docker's error kinds onto the engine's.
func wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%w: %w", err, engine.ErrNotFound)
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("%w: %w", err, engine.ErrConflict)
	}
	return err
}

// Ping implements engine.Runtime. Its answer also settles the API version,
// so the first real call does not ping again to negotiate it.
func (r *Runtime) Ping(ctx context.Context) error {
	r.count("Ping")
	ping, err := r.cli.Ping(ctx)
	if err != nil {
		return err
	}
	r.cli.NegotiateAPIVersionPing(ping)
	return nil
}

// ListImages implements engine.Runtime.
func (r *Runtime) ListImages(ctx context.Context) ([]engine.Image, error) {
	r.count("ImageList")
	list, err := r.cli.ImageList(ctx, image.ListOptions{All: true})
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]engine.Image, 0, len(list))
	for _, s := range list {
		out = append(out, engine.Image{
			ID:          s.ID,
			RepoTags:    withoutNone(s.RepoTags),
			RepoDigests: withoutNone(s.RepoDigests),
			ParentID:    s.ParentID,
			Created:     time.Unix(s.Created, 0),
			Size:        s.Size,
		})
	}
	return out, nil
}

// withoutNone drops the "<none>:<none>" and "<none>@<none>" that some engine
// versions list for untagged images.
func withoutNone(digests []string) []string {
	var out []string
	for _, d := range digests {
		if !strings.HasPrefix(d, "<none>") {
			out = append(out, d)
		}
	}
	return out
}

func toContainer(s *container.Summary) engine.Container {
	name := ""
	if len(s.Names) > 0 {
		name = strings.TrimPrefix(s.Names[0], "/")
	}
	return engine.Container{
		ID:      s.ID,
		Name:    name,
		ImageID: s.ImageID,
		State:   s.State,
		Labels:  s.Labels,
		Created: time.Unix(s.Created, 0),
	}
}

// ListContainers implements engine.Runtime.
func (r *Runtime) ListContainers(ctx context.Context) ([]engine.Container, error) {
	r.count("ContainerList")
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]engine.Container, 0, len(list))
	for i := range list {
		out = append(out, toContainer(&list[i]))
	}
	return out, nil
}

// ContainersUsing implements engine.Runtime. The ancestor filter also lists
// containers of child images, which are dropped here.
func (r *Runtime) ContainersUsing(ctx context.Context, imageID string) ([]engine.Container, error) {
	r.count("ContainerList")
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("ancestor", imageID))})
	if err != nil {
		return nil, wrap(err)
	}
	var out []engine.Container
	for i := range list {
		if list[i].ImageID == imageID {
			out = append(out, toContainer(&list[i]))
		}
	}
	return out, nil
}

// ImageLastTagTime implements engine.Runtime.
func (r *Runtime) ImageLastTagTime(ctx context.Context, id string) (time.Time, error) {
	r.count("ImageInspect")
	info, err := r.cli.ImageInspect(ctx, id)
	if err != nil {
		return time.Time{}, wrap(err)
	}
	return info.Metadata.LastTagTime, nil
}

// ContainerFinishedAt implements engine.Runtime.
func (r *Runtime) ContainerFinishedAt(ctx context.Context, id string) (string, time.Time, error) {
	r.count("ContainerInspect")
	info, err := r.cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", time.Time{}, wrap(err)
	}
	if info.ContainerJSONBase == nil || info.State == nil {
		return "", time.Time{}, fmt.Errorf("container %s: the engine returned no state", id)
	}
	var finished time.Time
	if info.State.FinishedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, info.State.FinishedAt)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("container %s: finish time %q: %w", id, info.State.FinishedAt, err)
		}
		if t.Year() > 1 { // the engine writes 0001-01-01 for "never"
			finished = t
		}
	}
	return info.State.Status, finished, nil
}

// RemoveContainer implements engine.Runtime; it never forces, so the engine
// refuses to remove a container that runs.
func (r *Runtime) RemoveContainer(ctx context.Context, id string, removeVolumes bool) error {
	r.count("ContainerRemove")
	return wrap(r.cli.ContainerRemove(ctx, id, container.RemoveOptions{RemoveVolumes: removeVolumes}))
}

// RemoveImage implements engine.Runtime.
func (r *Runtime) RemoveImage(ctx context.Context, ref string, force bool) (engine.Deleted, error) {
	r.count("ImageRemove")
	resp, err := r.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: force, PruneChildren: true})
	if err != nil {
		return engine.Deleted{}, wrap(err)
	}
	var del engine.Deleted
	for _, item := range resp {
		if item.Untagged != "" {
			del.Untagged = append(del.Untagged, item.Untagged)
		}
		if item.Deleted != "" {
			del.Deleted = append(del.Deleted, item.Deleted)
		}
	}
	return del, nil
}
