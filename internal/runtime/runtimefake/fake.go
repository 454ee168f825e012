// Package runtimefake is an in-memory runtime.Runtime that removes images and
// containers by the rules the Docker engine follows (measured on dockerd
// 20.10, see docs/runtime-behaviour.md), or, with Rules CRI, by containerd's
// CRI rules (an image goes with every reference at once, and nothing checks
// its containers), or, with CRIO, by CRI-O's, for fast table tests of the
// planner and the executor. Integration tests run the same scenarios on a
// real dockerd, containerd and CRI-O.
package runtimefake

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Rules are what the runtimes the fake plays do differently, each stated
// once; the fake reads them where it acts (docs/runtime-behaviour.md).
type Rules struct {
	// Capabilities are the runtime's own. Without UntagByReference, removing
	// an image by any reference removes it with every reference, whatever
	// containers use it (containerd's CRI).
	Capabilities runtime.Capabilities
	// ListsBuildDates: an image listing carries each image's build date.
	ListsBuildDates bool
	// ImageEvents: images have events of their own; without, a follower
	// lists images to see them come and go (runtime.Poller).
	ImageEvents bool
	// Replays: the event stream replays what it still holds since a time;
	// without, a since in the past is a gap.
	Replays bool
	// ListsOthersContainers: containers that another client made are listed
	// and removed like the runtime's own (Docker's runtime has one API); the
	// CRI knows only those it made.
	ListsOthersContainers bool
	// SeesOthersContainers: without ListsOthersContainers, the adapter
	// still lists other clients' containers through the runtime's own API
	// (containerd's), marked by who made them; without either, they are
	// not listed at all (CRI-O: podman's containers on the same storage).
	SeesOthersContainers bool
	// NoContainerEvents: the runtime tells of no container either (CRI-O
	// without enable_pod_events): its follower lists containers as often
	// as images, and what comes and goes between two listings is not seen.
	NoContainerEvents bool
	// RefusesImageInUse: removing an image that a container uses, in any
	// state and whoever made it, is refused, a conflict (CRI-O's
	// containers/storage); without, the CRI removes it anyway (containerd).
	RefusesImageInUse bool
}

// The rule sets of the runtimes.
var (
	// Docker: the Docker Engine API (internal/docker).
	Docker = Rules{Capabilities: runtime.Capabilities{UntagByReference: true, ForceRemoval: true, ContainerVolumes: true},
		ListsBuildDates: true, ImageEvents: true, Replays: true, ListsOthersContainers: true}
	// CRI: containerd's CRI (internal/cri).
	CRI = Rules{SeesOthersContainers: true}
	// CRIO: CRI-O 1.36's CRI, with its default settings (internal/cri,
	// measured in docs/runtime-behaviour.md).
	CRIO = Rules{NoContainerEvents: true, RefusesImageInUse: true}
)

// Runtime is the fake. The zero value is not usable; call New.
type Runtime struct {
	mu         sync.Mutex
	images     map[string]*runtime.Image
	containers map[string]*runtime.Container
	calls      map[string]int

	// down makes every call fail as if the runtime were unreachable.
	down bool
	// stalled methods block until their context ends, as a hung runtime does,
	// or until CallTimeout, as the Docker adapter bounds each call.
	stalled map[string]bool
	// CallTimeout, if set, is the adapter's bound on one call.
	CallTimeout time.Duration
	// BeforeCall, if set, runs (without the lock) before each call, with the
	// method name and its argument: a test can change the runtime there, as
	// another hand would between plan and apply.
	BeforeCall func(method, arg string)
	// Now is the runtime's clock, for event times (default time.Now).
	Now func() time.Time
	// EventBuffer is how many events the runtime keeps for replay (default
	// 256, as Docker keeps).
	EventBuffer int
	// RootDir is the data root Info reports (default /var/lib/docker).
	RootDir string
	// ImageStore is the image store Info reports (default "memory";
	// runtime.ContainerdStore makes it look like Docker 29's).
	ImageStore string
	// Rules are the runtime's the fake plays (New: Docker).
	Rules Rules
	// OnRemove, if set, is called (with the runtime's lock held: it must not
	// call the runtime) for each image or container the API removes, as it
	// goes, with the runtime as it was when the call began.
	OnRemove func(Removed)
	// FollowBuffer is how many events a follower may lag behind before it
	// loses some (default 1024); make scale, with thousands of runtimes of
	// one image each, keeps it small.
	FollowBuffer int

	// DieUnder, if set, is asked (with the runtime's lock held) after each
	// removal the runtime has done: true makes the runtime die before it
	// answers, so the caller gets an error for a removal that was done,
	// and every call fails until SetDown(false) (containerd killed between
	// deleting an image's record and answering).
	DieUnder func(method, arg string) bool

	// call is the runtime when the removal under way began (for OnRemove).
	call *callState

	events []runtime.Event // the replay buffer, oldest first
	subs   map[chan runtime.Event]*follower
	// settled is signalled when a follower has applied its events.
	settled *sync.Cond
}

// New returns an empty runtime.
func New() *Runtime {
	f := &Runtime{images: map[string]*runtime.Image{}, containers: map[string]*runtime.Container{}, calls: map[string]int{},
		subs: map[chan runtime.Event]*follower{}, Rules: Docker}
	f.settled = sync.NewCond(&f.mu)
	return f
}

// WithStaleImage returns a runtime holding one image, ci.local/app:1,
// tagged two days ago (the runtime's proof of its age), blocked by one
// stopped container named after the node: what a fleet of fake nodes holds
// in the e2e tests and make scale.
func WithStaleImage(node string) *Runtime {
	f := New()
	old := time.Now().Add(-48 * time.Hour)
	id := "sha256:" + strings.Repeat("a", 64)
	f.AddImage(runtime.Image{ID: id, RepoTags: []string{"ci.local/app:1"}, Created: old, LastTagTime: old, Size: 1000})
	f.AddContainer(runtime.Container{ID: strings.Repeat("c", 64), Name: node + "-job", ImageID: id,
		State: runtime.StateExited, Created: old, FinishedAt: old})
	return f
}

// AddImage puts a copy of an image in the runtime (an image load event):
// what the runtime does to it later never shows in the caller's inventory.
func (f *Runtime) AddImage(img runtime.Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := img
	c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
	f.images[img.ID] = &c
	f.emit(runtime.ImageArrived, img.ID, "")
}

// AddContainer puts a container in the runtime: a create event, and a start
// event if it is not stopped.
func (f *Runtime) AddContainer(c runtime.Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cc := c
	cc.Labels = maps.Clone(c.Labels)
	f.containers[c.ID] = &cc
	if f.unseen(&cc) {
		return
	}
	f.emit(runtime.ContainerCreated, c.ID, c.ImageID)
	if !cc.Stopped() {
		f.emit(runtime.ContainerStarted, c.ID, c.ImageID)
	}
}

// unseen reports whether the runtime's events do not tell of the
// container: on the CRI, one that another client of containerd made.
func (f *Runtime) unseen(c *runtime.Container) bool {
	return !f.Rules.ListsOthersContainers && c.MadeBy != ""
}

// RemoveImageByHand deletes an image whatever uses it, as another hand
// (the kubelet's image GC, docker rmi -f) would: a delete event.
func (f *Runtime) RemoveImageByHand(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.images[id] != nil {
		delete(f.images, id)
		f.emit(runtime.ImageRemoved, id, "")
	}
}

// RemoveContainerByHand removes a container in any state, as docker rm -f
// or the kubelet's container GC would: a destroy event (after a die event
// if it ran).
func (f *Runtime) RemoveContainerByHand(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return
	}
	delete(f.containers, id)
	if f.unseen(c) {
		return
	}
	if !c.Stopped() {
		f.emit(runtime.ContainerStopped, id, c.ImageID)
	}
	f.emit(runtime.ContainerRemoved, id, c.ImageID)
}

func (f *Runtime) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// SetDown makes the runtime unreachable (true) or reachable again.
func (f *Runtime) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Stall makes calls of the method hang until their context ends (false
// undoes it), as a stalled runtime does.
func (f *Runtime) Stall(method string, stalled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stalled == nil {
		f.stalled = map[string]bool{}
	}
	f.stalled[method] = stalled
}

// Tag adds a reference to an image, as docker tag does (the tag leaves any
// other image it named).
func (f *Runtime) Tag(id, ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, img := range f.images {
		img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return sameTag(t, ref) })
	}
	f.images[id].RepoTags = append(f.images[id].RepoTags, ref)
	f.images[id].LastTagTime = f.now()
	f.emit(runtime.ImageRetagged, id, "")
}

// Untag removes a tag from an image, as docker tag moving it elsewhere
// does: the image stays, untagged if it was its last.
func (f *Runtime) Untag(id, ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img := f.images[id]; img != nil {
		img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return sameTag(t, ref) })
		f.emit(runtime.ImageRetagged, id, "")
	}
}

// SetState changes a container's state, as starting or stopping it would:
// a start or die event when it starts or stops running.
func (f *Runtime) SetState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	was := c.Stopped()
	c.State = state
	switch {
	case was && !c.Stopped():
		f.emit(runtime.ContainerStarted, id, c.ImageID)
	case !was && c.Stopped():
		c.FinishedAt = f.now()
		f.emit(runtime.ContainerStopped, id, c.ImageID)
	}
}

// Image returns a copy of the image as the runtime holds it now.
func (f *Runtime) Image(id string) (runtime.Image, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := f.images[id]
	if img == nil {
		return runtime.Image{}, false
	}
	c := *img
	c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
	return c, true
}

// Named returns the ID of the image a reference (ID, tag or digest
// reference) names now, "" when none does.
func (f *Runtime) Named(ref string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img, _ := f.resolve(ref); img != nil {
		return img.ID
	}
	return ""
}

// HasImage reports whether the image is still there.
func (f *Runtime) HasImage(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.images[id] != nil
}

// Tags returns the image's tags, sorted.
func (f *Runtime) Tags(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img := f.images[id]; img != nil {
		return slices.Sorted(slices.Values(img.RepoTags))
	}
	return nil
}

// HasContainer reports whether the container is still there.
func (f *Runtime) HasContainer(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.containers[id] != nil
}

// Calls returns how many times each method was called.
func (f *Runtime) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.calls)
}

// TotalCalls is the number of calls of any method.
func (f *Runtime) TotalCalls() int {
	n := 0
	for _, v := range f.Calls() {
		n += v
	}
	return n
}

// enter counts a call and runs the BeforeCall hook. On success it returns
// holding f.mu, which the method releases; on error it has released it.
func (f *Runtime) enter(ctx context.Context, method, arg string) error {
	if f.BeforeCall != nil {
		f.BeforeCall(method, arg)
	}
	f.mu.Lock()
	f.calls[method]++
	if f.down {
		f.mu.Unlock()
		return fmt.Errorf("cannot connect to the runtime: the runtime is down")
	}
	if f.stalled[method] {
		f.mu.Unlock()
		if f.CallTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, f.CallTimeout)
			defer cancel()
		}
		<-ctx.Done()
		return fmt.Errorf("the runtime did not answer in time: %w", ctx.Err())
	}
	return nil
}

// ListImages implements runtime.Runtime.
func (f *Runtime) ListImages(ctx context.Context) ([]runtime.Image, error) {
	if err := f.enter(ctx, "ListImages", ""); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	out := make([]runtime.Image, 0, len(f.images))
	for _, img := range f.images {
		c := *img
		c.LastTagTime = time.Time{}                      // only Inspect tells
		c.Arrived, c.LastUsed = time.Time{}, time.Time{} // the runtime keeps no such clock
		if !f.Rules.ListsBuildDates {
			c.Created = time.Time{} // the image's status has it
		}
		c.RepoTags = slices.Clone(img.RepoTags)
		c.RepoDigests = slices.Clone(img.RepoDigests)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ListContainers implements runtime.Runtime.
func (f *Runtime) ListContainers(ctx context.Context) ([]runtime.Container, error) {
	if err := f.enter(ctx, "ListContainers", ""); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	out := make([]runtime.Container, 0, len(f.containers))
	for _, c := range f.containers {
		if !f.listed(c) {
			continue
		}
		cc := *c
		cc.FinishedAt = time.Time{} // only Inspect tells
		out = append(out, cc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// InspectImage implements runtime.Runtime.
func (f *Runtime) InspectImage(ctx context.Context, id string) (runtime.Image, error) {
	if err := f.enter(ctx, "InspectImage", id); err != nil {
		return runtime.Image{}, err
	}
	defer f.mu.Unlock()
	img := f.images[id]
	if img == nil {
		return runtime.Image{}, fmt.Errorf("image %s: %w", id, runtime.ErrNotFound)
	}
	c := *img
	c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
	return c, nil
}

// Info implements runtime.Runtime.
func (f *Runtime) Info(ctx context.Context) (runtime.Info, error) {
	if err := f.enter(ctx, "Info", ""); err != nil {
		return runtime.Info{}, err
	}
	defer f.mu.Unlock()
	return runtime.Info{ID: "fake", RootDir: cmp.Or(f.RootDir, "/var/lib/docker"), Name: "fake", Version: "1", ImageStore: cmp.Or(f.ImageStore, "memory")}, nil
}

// Capabilities implements runtime.Runtime.
func (f *Runtime) Capabilities() runtime.Capabilities {
	return f.Rules.Capabilities
}

// ContainerFinishedAt implements runtime.Runtime.
func (f *Runtime) ContainerFinishedAt(ctx context.Context, id string) (string, time.Time, error) {
	if err := f.enter(ctx, "ContainerFinishedAt", id); err != nil {
		return "", time.Time{}, err
	}
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return "", time.Time{}, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	return c.State, c.FinishedAt, nil
}

// ContainersUsing implements runtime.Runtime.
func (f *Runtime) ContainersUsing(ctx context.Context, imageIDs []string) ([]runtime.Container, error) {
	if err := f.enter(ctx, "ContainersUsing", strings.Join(imageIDs, ",")); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	var out []runtime.Container
	for _, c := range f.containers {
		if slices.Contains(imageIDs, c.ImageID) && f.listed(c) {
			out = append(out, *c)
		}
	}
	return out, nil
}

// listed reports whether the adapter's listings show the container: every
// one but, on CRI-O, another client's (podman's), which no listing shows.
func (f *Runtime) listed(c *runtime.Container) bool {
	return c.MadeBy == "" || f.Rules.ListsOthersContainers || f.Rules.SeesOthersContainers
}

// Ping implements runtime.Runtime.
func (f *Runtime) Ping(ctx context.Context) error {
	if err := f.enter(ctx, "Ping", ""); err != nil {
		return err
	}
	f.mu.Unlock()
	return nil
}

// ProvesRoot implements runtime.RootProver as the Docker engine lays out
// its data root (the fake's Info is Docker's, whatever its rules).
func (f *Runtime) ProvesRoot(ctx context.Context, info runtime.Info, root string) (proven, empty bool, err error) {
	return docker.ProvesDataRoot(ctx, f, info, root)
}

// ContainerdRoots implements runtime.ContainerdRootFinder as Docker does
// (the fake's Info is Docker's, whatever its rules).
func (f *Runtime) ContainerdRoots(dataRoot string) []string { return docker.ContainerdRoots(dataRoot) }
