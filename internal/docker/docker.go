// Package docker implements engine.Runtime with the Docker Engine API client,
// negotiating the API version with whatever engine it finds.
package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Default bounds of one engine call. A read lists or inspects; a removal
// may free gigabytes on a slow disk, so it gets longer. An engine that takes
// longer is stalled, and the sweep stops (see internal/apply).
const (
	DefaultReadTimeout   = 30 * time.Second
	DefaultRemoveTimeout = time.Minute
)

// Runtime talks to one Docker engine and counts its API calls by method.
type Runtime struct {
	cli *client.Client
	// ReadTimeout and RemoveTimeout bound each call (set before first use).
	ReadTimeout, RemoveTimeout time.Duration

	calls runtime.CallCount
}

// ErrBadHost says the engine address cannot be used (a usage error, not a
// failure of the engine).
var ErrBadHost = errors.New("bad Docker host")

// New connects to host (unix:///path, tcp://...); an empty host means
// DOCKER_HOST, else the default socket, as the docker CLI does.
func New(host string) (*Runtime, error) {
	if h := cmp.Or(host, os.Getenv(client.EnvOverrideHost)); h != "" {
		scheme, _, _ := strings.Cut(h, "://")
		if !slices.Contains([]string{"unix", "tcp", "http", "https"}, scheme) {
			return nil, fmt.Errorf("%w: %q: the address must start with unix://, tcp://, http:// or https://", ErrBadHost, h)
		}
	}
	// The client negotiates the API version with the engine (Docker 20.10's
	// 1.41 to Docker 29's 1.56) on its first call.
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHost, err)
	}
	return &Runtime{cli: cli, ReadTimeout: DefaultReadTimeout, RemoveTimeout: DefaultRemoveTimeout}, nil
}

// read and remove bound one call; the cancel func must be called.
func (r *Runtime) read(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.ReadTimeout)
}

func (r *Runtime) remove(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.RemoveTimeout)
}

// APIVersion is the Engine API version the client speaks: the engine's own,
// once negotiated (the first call), capped at the client's newest.
func (r *Runtime) APIVersion() string { return r.cli.ClientVersion() }

// Capabilities implements engine.Runtime: the Docker engine untags by
// reference, forces, and has container volumes.
func (r *Runtime) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{UntagByReference: true, ForceRemoval: true, ContainerVolumes: true}
}

// Host is the engine's address.
func (r *Runtime) Host() string { return r.cli.DaemonHost() }

// Close releases the client's connections.
func (r *Runtime) Close() error { return r.cli.Close() }

// Calls returns the API calls made so far, by method.
func (r *Runtime) Calls() map[string]int { return r.calls.All() }

func (r *Runtime) count(method string) { r.calls.Add(method) }

// wrap maps Docker's error kinds onto the engine's. A call that ran out of
// time says so in words a person reads.
func wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the Docker engine did not answer in time: %w", err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%w: %w", err, runtime.ErrNotFound)
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("%w: %w", err, runtime.ErrConflict)
	}
	return err
}

// Ping implements engine.Runtime. Its answer also settles the API version,
// so the first real call does not ping again to negotiate it.
func (r *Runtime) Ping(ctx context.Context) error {
	r.count("Ping")
	ctx, cancel := r.read(ctx)
	defer cancel()
	_, err := r.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	return wrap(err)
}

// ListImages implements engine.Runtime.
func (r *Runtime) ListImages(ctx context.Context) ([]runtime.Image, error) {
	r.count("ImageList")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.cli.ImageList(ctx, client.ImageListOptions{All: true})
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]runtime.Image, 0, len(res.Items))
	for _, s := range res.Items {
		tags, digests := references(s.RepoTags, s.RepoDigests)
		out = append(out, runtime.Image{
			ID:          s.ID,
			RepoTags:    tags,
			RepoDigests: digests,
			ParentID:    s.ParentID,
			Created:     time.Unix(s.Created, 0),
			Size:        s.Size,
		})
	}
	return out, nil
}

// references sorts what an engine lists of an image into tags and digest
// references, as Docker 20.10's store has them: "<none>:<none>" and
// "<none>@<none>" (old engines' untagged images) and "moby-dangling@…" (the
// containerd store's record of an untagged image) are no references; a
// name@digest the containerd store lists among the tags (an image pulled
// by digest) is a digest reference.
func references(tags, digests []string) (outTags, outDigests []string) {
	for _, r := range append(slices.Clone(tags), digests...) {
		switch {
		case strings.HasPrefix(r, "<none>"), strings.HasPrefix(r, "moby-dangling@"):
		case strings.Contains(r, "@"):
			if !slices.Contains(outDigests, r) {
				outDigests = append(outDigests, r)
			}
		case !slices.Contains(outTags, r):
			outTags = append(outTags, r)
		}
	}
	return outTags, outDigests
}

func toContainer(s *container.Summary) runtime.Container {
	name := ""
	if len(s.Names) > 0 {
		name = strings.TrimPrefix(s.Names[0], "/")
	}
	return runtime.Container{
		ID:      s.ID,
		Name:    name,
		ImageID: s.ImageID,
		State:   string(s.State),
		Labels:  s.Labels,
		Created: time.Unix(s.Created, 0),
		Sandbox: s.Labels[sandboxLabel] == "podsandbox",
	}
}

// sandboxLabel marks the sandbox (pause) container of a pod that the
// kubelet runs through cri-dockerd (or dockershim before it).
const sandboxLabel = "io.kubernetes.docker.type"

// ListContainers implements engine.Runtime.
func (r *Runtime) ListContainers(ctx context.Context) ([]runtime.Container, error) {
	r.count("ContainerList")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, wrap(err)
	}
	list := res.Items
	out := make([]runtime.Container, 0, len(list))
	for i := range list {
		out = append(out, toContainer(&list[i]))
	}
	return out, nil
}

// ContainersUsing implements engine.Runtime: one listing with an ancestor
// filter per image (the engine ORs them). The filter also lists containers
// of child images, which are dropped here; an image that is gone matches
// nothing.
func (r *Runtime) ContainersUsing(ctx context.Context, imageIDs []string) ([]runtime.Container, error) {
	if len(imageIDs) == 0 {
		return nil, nil // no filter would list every container
	}
	r.count("ContainerList")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("ancestor", imageIDs...)})
	if err != nil {
		return nil, wrap(err)
	}
	list := res.Items
	var out []runtime.Container
	for i := range list {
		if slices.Contains(imageIDs, list[i].ImageID) {
			out = append(out, toContainer(&list[i]))
		}
	}
	return out, nil
}

// InspectImage implements engine.Runtime.
func (r *Runtime) InspectImage(ctx context.Context, id string) (runtime.Image, error) {
	r.count("ImageInspect")
	ctx, cancel := r.read(ctx)
	defer cancel()
	info, err := r.cli.ImageInspect(ctx, id)
	if err != nil {
		return runtime.Image{}, wrap(err)
	}
	tags, digests := references(info.RepoTags, info.RepoDigests)
	img := runtime.Image{
		ID:          info.ID,
		RepoTags:    tags,
		RepoDigests: digests,
		Size:        info.Size,
		LastTagTime: info.Metadata.LastTagTime,
	}
	if t, err := time.Parse(time.RFC3339Nano, info.Created); err == nil {
		img.Created = t
	}
	return img, nil
}

// ContainerFinishedAt implements engine.Runtime.
func (r *Runtime) ContainerFinishedAt(ctx context.Context, id string) (string, time.Time, error) {
	r.count("ContainerInspect")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", time.Time{}, wrap(err)
	}
	info := res.Container
	if info.State == nil {
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
	return string(info.State.Status), finished, nil
}

// RemoveContainer implements engine.Runtime; it never forces, so the engine
// refuses to remove a container that runs.
func (r *Runtime) RemoveContainer(ctx context.Context, id string, removeVolumes bool) error {
	r.count("ContainerRemove")
	ctx, cancel := r.remove(ctx)
	defer cancel()
	_, err := r.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{RemoveVolumes: removeVolumes})
	return wrap(err)
}

// RemoveImage implements engine.Runtime.
func (r *Runtime) RemoveImage(ctx context.Context, ref string, opts runtime.RemoveImageOptions) (runtime.ImageRemoval, error) {
	r.count("ImageRemove")
	ctx, cancel := r.remove(ctx)
	defer cancel()
	resp, err := r.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: opts.Force, PruneChildren: opts.PruneParents})
	if err != nil {
		return runtime.ImageRemoval{}, wrap(err)
	}
	var del runtime.ImageRemoval
	for _, item := range resp.Items {
		if item.Deleted != "" {
			del.Gone = append(del.Gone, item.Deleted)
		}
	}
	return del, nil
}

// Info implements engine.Runtime.
func (r *Runtime) Info(ctx context.Context) (runtime.Info, error) {
	r.count("Info")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return runtime.Info{}, wrap(err)
	}
	info := res.Info
	store := info.Driver
	for _, kv := range info.DriverStatus {
		if kv[0] == "driver-type" && kv[1] == "io.containerd.snapshotter.v1" {
			store = runtime.ContainerdStore
		}
	}
	return runtime.Info{ID: info.ID, RootDir: info.DockerRootDir, Name: "docker", Version: info.ServerVersion, ImageStore: store}, nil
}

// eventBuffer is how many events the engine keeps for replay (moby's
// daemon/events eventsLimit): a replay of that many may have lost older
// ones.
const eventBuffer = 256

// Events implements engine.Runtime with the engine's event stream. The
// replay asks for every type: the engine's buffer is shared by all of them
// (exec probes fill it fast), and only the unfiltered replay tells whether
// it turned over since. The follow has no timeout: it lasts.
func (r *Runtime) Events(ctx context.Context, since time.Time, follow bool, f func(runtime.Event)) error {
	r.count("Events")
	now, err := r.engineNow(ctx)
	if err != nil {
		return err
	}
	if !since.IsZero() {
		var replay []events.Message
		if err := r.stream(ctx, client.EventsListOptions{Since: apiTime(since), Until: apiTime(now)}, func(m events.Message) {
			replay = append(replay, m)
		}); err != nil {
			return err
		}
		if len(replay) >= eventBuffer && replay[0].TimeNano > since.UnixNano() {
			f(runtime.Event{Kind: runtime.EventGap, Time: time.Unix(0, replay[0].TimeNano)})
		}
		for _, m := range replay {
			if e, ok := toEvent(m); ok {
				f(e)
			}
		}
	}
	f(runtime.Event{Kind: runtime.EventNow, Time: now})
	if !follow {
		return nil
	}
	// From the present on, inclusive: what came since the replay is
	// replayed first.
	opts := client.EventsListOptions{Since: apiTime(now), Filters: make(client.Filters).Add("type",
		string(events.ContainerEventType), string(events.ImageEventType))}
	err = r.stream(ctx, opts, func(m events.Message) {
		if e, ok := toEvent(m); ok {
			f(e)
		}
	})
	if err == nil {
		err = errors.New("the engine closed its event stream")
	}
	return err
}

// stream calls f for each event until the stream ends (nil, for a replay
// with an until), ctx ends or it breaks.
func (r *Runtime) stream(ctx context.Context, opts client.EventsListOptions, f func(events.Message)) error {
	res := r.cli.Events(ctx, opts)
	msgs, errs := res.Messages, res.Err
	for {
		select {
		case m := <-msgs:
			f(m)
		case err := <-errs:
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, io.EOF):
				return nil
			}
			return wrap(err)
		}
	}
}

// engineNow is the engine's own clock: event times are the engine's, and a
// remote engine's clock may differ from this machine's.
func (r *Runtime) engineNow(ctx context.Context) (time.Time, error) {
	r.count("Info")
	ctx, cancel := r.read(ctx)
	defer cancel()
	res, err := r.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return time.Time{}, wrap(err)
	}
	info := res.Info
	t, err := time.Parse(time.RFC3339Nano, info.SystemTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("the engine's time %q: %w", info.SystemTime, err)
	}
	return t, nil
}

// apiTime writes a time as the events API reads it: seconds.nanoseconds.
func apiTime(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// containerEvents and imageEvents are the Docker actions the image clock
// reads, in the runtime-neutral words.
var (
	containerEvents = map[events.Action]runtime.EventKind{
		events.ActionCreate: runtime.ContainerCreated, events.ActionStart: runtime.ContainerStarted,
		events.ActionDie: runtime.ContainerStopped, events.ActionDestroy: runtime.ContainerRemoved,
	}
	imageEvents = map[events.Action]runtime.EventKind{
		events.ActionDelete: runtime.ImageRemoved, events.ActionUnTag: runtime.ImageRetagged, events.ActionTag: runtime.ImageRetagged,
		events.ActionPull: runtime.ImageArrived, events.ActionLoad: runtime.ImageArrived, events.ActionImport: runtime.ImageArrived,
	}
)

// toEvent keeps the events the image clock reads: a container's create,
// start, stop and removal, and an image's arrivals, departures and tags.
func toEvent(m events.Message) (runtime.Event, bool) {
	e := runtime.Event{ID: m.Actor.ID, Time: time.Unix(0, m.TimeNano)}
	var ok bool
	switch m.Type {
	case events.ContainerEventType:
		e.Kind, ok = containerEvents[m.Action]
		e.Image = m.Actor.Attributes["image"]
	case events.ImageEventType:
		e.Kind, ok = imageEvents[m.Action]
	}
	return e, ok
}
