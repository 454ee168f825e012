// Package enginefake is an in-memory engine.Runtime that removes images and
// containers by the rules the Docker engine follows (measured on dockerd
// 20.10, see docs/engine-behaviour.md), for fast table tests of the planner
// and the executor. Integration tests run the same scenarios on a real dockerd.
package enginefake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
)

var _ engine.Runtime = (*Engine)(nil)

// Engine is the fake. The zero value is not usable; call New.
type Engine struct {
	mu         sync.Mutex
	images     map[string]*engine.Image
	containers map[string]*engine.Container
	calls      map[string]int

	// down makes every call fail as if the engine were unreachable.
	down bool
	// stalled methods block until their context ends, as a hung engine does,
	// or until CallTimeout, as the Docker adapter bounds each call.
	stalled map[string]bool
	// CallTimeout, if set, is the adapter's bound on one call.
	CallTimeout time.Duration
	// BeforeCall, if set, runs (without the lock) before each call, with the
	// method name and its argument: a test can change the engine there, as
	// another hand would between plan and apply.
	BeforeCall func(method, arg string)
}

// New returns an empty engine.
func New() *Engine {
	return &Engine{images: map[string]*engine.Image{}, containers: map[string]*engine.Container{}, calls: map[string]int{}}
}

// WithStaleImage returns an engine holding one image, ci.local/app:1,
// tagged two days ago (the engine's proof of its age), blocked by one
// stopped container named after the node: what a fleet of fake nodes holds
// in the e2e tests and make scale.
func WithStaleImage(node string) *Engine {
	f := New()
	old := time.Now().Add(-48 * time.Hour)
	id := "sha256:" + strings.Repeat("a", 64)
	f.AddImage(engine.Image{ID: id, RepoTags: []string{"ci.local/app:1"}, Created: old, LastTagTime: old, Size: 1000})
	f.AddContainer(engine.Container{ID: strings.Repeat("c", 64), Name: node + "-job", ImageID: id,
		State: engine.StateExited, Created: old, FinishedAt: old})
	return f
}

// AddImage puts a copy of an image in the engine: what the engine does to
// it later never shows in the caller's inventory.
func (f *Engine) AddImage(img engine.Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := img
	c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
	f.images[img.ID] = &c
}

// AddContainer puts a container in the engine.
func (f *Engine) AddContainer(c engine.Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cc := c
	cc.Labels = maps.Clone(c.Labels)
	f.containers[c.ID] = &cc
}

// SetDown makes the engine unreachable (true) or reachable again.
func (f *Engine) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Stall makes calls of the method hang until their context ends (false
// undoes it), as a stalled engine does.
func (f *Engine) Stall(method string, stalled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stalled == nil {
		f.stalled = map[string]bool{}
	}
	f.stalled[method] = stalled
}

// Tag adds a reference to an image, as docker tag does (the tag leaves any
// other image it named).
func (f *Engine) Tag(id, ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, img := range f.images {
		img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return sameTag(t, ref) })
	}
	f.images[id].RepoTags = append(f.images[id].RepoTags, ref)
}

// SetState changes a container's state, as starting or stopping it would.
func (f *Engine) SetState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers[id].State = state
}

// HasImage reports whether the image is still there.
func (f *Engine) HasImage(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.images[id] != nil
}

// Tags returns the image's tags, sorted.
func (f *Engine) Tags(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img := f.images[id]; img != nil {
		return slices.Sorted(slices.Values(img.RepoTags))
	}
	return nil
}

// HasContainer reports whether the container is still there.
func (f *Engine) HasContainer(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.containers[id] != nil
}

// Calls returns how many times each method was called.
func (f *Engine) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.calls)
}

// TotalCalls is the number of calls of any method.
func (f *Engine) TotalCalls() int {
	n := 0
	for _, v := range f.Calls() {
		n += v
	}
	return n
}

// enter counts a call and runs the BeforeCall hook. On success it returns
// holding f.mu, which the method releases; on error it has released it.
func (f *Engine) enter(ctx context.Context, method, arg string) error {
	if f.BeforeCall != nil {
		f.BeforeCall(method, arg)
	}
	f.mu.Lock()
	f.calls[method]++
	if f.down {
		f.mu.Unlock()
		return fmt.Errorf("cannot connect to the Docker daemon: engine is down")
	}
	if f.stalled[method] {
		f.mu.Unlock()
		if f.CallTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, f.CallTimeout)
			defer cancel()
		}
		<-ctx.Done()
		return fmt.Errorf("the Docker engine did not answer in time: %w", ctx.Err())
	}
	return nil
}

// ListImages implements engine.Runtime.
func (f *Engine) ListImages(ctx context.Context) ([]engine.Image, error) {
	if err := f.enter(ctx, "ListImages", ""); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	out := make([]engine.Image, 0, len(f.images))
	for _, img := range f.images {
		c := *img
		c.LastTagTime = time.Time{}                      // only Inspect tells
		c.Arrived, c.LastUsed = time.Time{}, time.Time{} // the engine keeps no such clock
		c.RepoTags = slices.Clone(img.RepoTags)
		c.RepoDigests = slices.Clone(img.RepoDigests)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ListContainers implements engine.Runtime.
func (f *Engine) ListContainers(ctx context.Context) ([]engine.Container, error) {
	if err := f.enter(ctx, "ListContainers", ""); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	out := make([]engine.Container, 0, len(f.containers))
	for _, c := range f.containers {
		cc := *c
		cc.FinishedAt = time.Time{} // only Inspect tells
		out = append(out, cc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// InspectImage implements engine.Runtime.
func (f *Engine) InspectImage(ctx context.Context, id string) (engine.Image, error) {
	if err := f.enter(ctx, "ImageInspect", id); err != nil {
		return engine.Image{}, err
	}
	defer f.mu.Unlock()
	img := f.images[id]
	if img == nil {
		return engine.Image{}, fmt.Errorf("image %s: %w", id, engine.ErrNotFound)
	}
	c := *img
	c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
	return c, nil
}

// Info implements engine.Runtime.
func (f *Engine) Info(ctx context.Context) (engine.Info, error) {
	if err := f.enter(ctx, "Info", ""); err != nil {
		return engine.Info{}, err
	}
	defer f.mu.Unlock()
	return engine.Info{ID: "fake", RootDir: "/var/lib/docker"}, nil
}

// WatchContainers implements engine.Runtime: the fake has no events; it
// waits for the context to end.
func (f *Engine) WatchContainers(ctx context.Context, _ func(engine.ContainerEvent)) error {
	if err := f.enter(ctx, "Events", ""); err != nil {
		return err
	}
	f.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// ContainerFinishedAt implements engine.Runtime.
func (f *Engine) ContainerFinishedAt(ctx context.Context, id string) (string, time.Time, error) {
	if err := f.enter(ctx, "ContainerInspect", id); err != nil {
		return "", time.Time{}, err
	}
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return "", time.Time{}, fmt.Errorf("container %s: %w", id, engine.ErrNotFound)
	}
	return c.State, c.FinishedAt, nil
}

// RemoveContainer implements engine.Runtime: a container that is not stopped
// is a conflict (the executor never forces).
func (f *Engine) RemoveContainer(ctx context.Context, id string, _ bool) error {
	if err := f.enter(ctx, "ContainerRemove", id); err != nil {
		return err
	}
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return fmt.Errorf("no such container: %s: %w", id, engine.ErrNotFound)
	}
	if !c.Stopped() {
		return fmt.Errorf("you cannot remove a %s container %s: %w", c.State, engine.ShortID(id), engine.ErrConflict)
	}
	delete(f.containers, id)
	return nil
}

// ContainersUsing implements engine.Runtime.
func (f *Engine) ContainersUsing(ctx context.Context, imageID string) ([]engine.Container, error) {
	if err := f.enter(ctx, "ContainerList", imageID); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	var out []engine.Container
	for _, c := range f.containers {
		if c.ImageID == imageID {
			out = append(out, *c)
		}
	}
	return out, nil
}

// Ping implements engine.Runtime.
func (f *Engine) Ping(ctx context.Context) error {
	if err := f.enter(ctx, "Ping", ""); err != nil {
		return err
	}
	f.mu.Unlock()
	return nil
}

// RemoveImage implements engine.Runtime with the engine's rules:
//   - a tag or digest reference of an image with other tags is only untagged;
//   - the last tag deletes the image, unless a container uses it (conflict;
//     with force: a stopped container's image is deleted, a running one's
//     only untagged) or images are built on it (only untagged);
//   - by ID: conflict when other images are built on it or a running
//     container uses it (even forced), when a stopped one does or it has
//     several tags (unless forced).
func (f *Engine) RemoveImage(ctx context.Context, ref string, force bool) (engine.Deleted, error) {
	if err := f.enter(ctx, "ImageRemove", ref); err != nil {
		return engine.Deleted{}, err
	}
	defer f.mu.Unlock()
	img, kind := f.resolve(ref)
	if img == nil {
		return engine.Deleted{}, fmt.Errorf("no such image: %s: %w", ref, engine.ErrNotFound)
	}
	running, stopped := f.users(img.ID)
	children := f.children(img.ID)

	if kind != "id" {
		if kind == "tag" {
			img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return sameTag(t, ref) })
		} else {
			img.RepoDigests = slices.DeleteFunc(img.RepoDigests, func(d string) bool { return sameDigest(d, ref) })
		}
		if len(img.RepoTags) > 0 {
			return engine.Deleted{}, nil
		}
		// Last tag: the engine drops the digest references with it.
		switch {
		case running != nil && !force:
			f.restore(img, ref, kind)
			return engine.Deleted{}, fmt.Errorf("unable to remove repository reference %q (must force) - container %s is using its referenced image: %w", ref, engine.ShortID(running.ID), engine.ErrConflict)
		case stopped != nil && !force:
			f.restore(img, ref, kind)
			return engine.Deleted{}, fmt.Errorf("unable to remove repository reference %q (must force) - container %s is using its referenced image: %w", ref, engine.ShortID(stopped.ID), engine.ErrConflict)
		case running != nil || len(children) > 0:
			img.RepoDigests = nil
			return engine.Deleted{}, nil // untagged, kept
		}
		img.RepoDigests = nil
		return engine.Deleted{Deleted: f.deleteAndPrune(img.ID)}, nil
	}

	switch {
	case len(children) > 0:
		return engine.Deleted{}, fmt.Errorf("unable to delete %s (cannot be forced) - image has dependent child images: %w", engine.ShortID(img.ID), engine.ErrConflict)
	case running != nil:
		return engine.Deleted{}, fmt.Errorf("unable to delete %s (cannot be forced) - image is being used by running container %s: %w", engine.ShortID(img.ID), engine.ShortID(running.ID), engine.ErrConflict)
	case stopped != nil && !force:
		return engine.Deleted{}, fmt.Errorf("unable to delete %s (must be forced) - image is being used by stopped container %s: %w", engine.ShortID(img.ID), engine.ShortID(stopped.ID), engine.ErrConflict)
	case len(img.RepoTags) > 1 && !force:
		return engine.Deleted{}, fmt.Errorf("unable to delete %s (must be forced) - image is referenced in multiple repositories: %w", engine.ShortID(img.ID), engine.ErrConflict)
	}
	return engine.Deleted{Deleted: f.deleteAndPrune(img.ID)}, nil
}

// resolve finds the image a reference names: "id", "tag" or "digest".
func (f *Engine) resolve(ref string) (*engine.Image, string) {
	if strings.HasPrefix(ref, "sha256:") {
		for id, img := range f.images {
			if strings.HasPrefix(id, ref) {
				return img, "id"
			}
		}
		return nil, ""
	}
	for _, img := range f.images {
		for _, t := range img.RepoTags {
			if sameTag(t, ref) {
				return img, "tag"
			}
		}
		for _, d := range img.RepoDigests {
			if sameDigest(d, ref) {
				return img, "digest"
			}
		}
	}
	return nil, ""
}

func (f *Engine) restore(img *engine.Image, ref, kind string) {
	if kind == "tag" {
		img.RepoTags = append(img.RepoTags, ref)
	} else {
		img.RepoDigests = append(img.RepoDigests, ref)
	}
}

func (f *Engine) users(imageID string) (running, stopped *engine.Container) {
	for _, c := range f.containers {
		if c.ImageID != imageID {
			continue
		}
		if c.Stopped() {
			stopped = c
		} else {
			running = c
		}
	}
	return running, stopped
}

func (f *Engine) children(id string) []string {
	var out []string
	for cid, img := range f.images {
		if img.ParentID == id {
			out = append(out, cid)
		}
	}
	return out
}

// deleteAndPrune deletes the image and then its untagged, unused parents.
func (f *Engine) deleteAndPrune(id string) []string {
	var deleted []string
	for id != "" {
		img := f.images[id]
		delete(f.images, id)
		deleted = append(deleted, id)
		parent := f.images[img.ParentID]
		if parent == nil || len(parent.RepoTags) > 0 || len(f.children(parent.ID)) > 0 {
			break
		}
		if r, s := f.users(parent.ID); r != nil || s != nil {
			break
		}
		id = parent.ID
	}
	return deleted
}

func sameTag(a, b string) bool {
	ra, err1 := match.ParseTag(a)
	rb, err2 := match.ParseTag(b)
	return err1 == nil && err2 == nil && ra == rb
}

func sameDigest(a, b string) bool {
	na, da, err1 := match.ParseDigest(a)
	nb, db, err2 := match.ParseDigest(b)
	return err1 == nil && err2 == nil && na == nb && da == db
}
