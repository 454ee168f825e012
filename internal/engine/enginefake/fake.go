// Package enginefake is an in-memory engine.Runtime that removes images and
// containers by the rules the Docker engine follows (measured on dockerd
// 20.10, see docs/engine-behaviour.md), or, with Rules CRI, by containerd's
// CRI rules (an image goes with every reference at once, and nothing checks
// its containers), for fast table tests of the planner and the executor.
// Integration tests run the same scenarios on a real dockerd and a real
// containerd.
package enginefake

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
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
)

var _ engine.Runtime = (*Engine)(nil)

// Rules are what the runtimes the fake plays do differently, each stated
// once; the fake reads them where it acts (docs/engine-behaviour.md).
type Rules struct {
	// Capabilities are the runtime's own. Without UntagByReference, removing
	// an image by any reference removes it with every reference, whatever
	// containers use it (containerd's CRI).
	Capabilities engine.Capabilities
	// ListsBuildDates: an image listing carries each image's build date.
	ListsBuildDates bool
	// ImageEvents: images have events of their own; without, a follower
	// lists images to see them come and go (engine.Poller).
	ImageEvents bool
	// Replays: the event stream replays what it still holds since a time;
	// without, a since in the past is a gap.
	Replays bool
	// ListsOthersContainers: containers that another client made are listed
	// and removed like the runtime's own (Docker's engine has one API); the
	// CRI knows only those it made.
	ListsOthersContainers bool
}

// The rule sets of the runtimes.
var (
	// Docker: the Docker Engine API (internal/docker).
	Docker = Rules{Capabilities: engine.Capabilities{UntagByReference: true, ForceRemoval: true, ContainerVolumes: true},
		ListsBuildDates: true, ImageEvents: true, Replays: true, ListsOthersContainers: true}
	// CRI: containerd's CRI (internal/cri).
	CRI = Rules{}
)

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
	// Now is the engine's clock, for event times (default time.Now).
	Now func() time.Time
	// EventBuffer is how many events the engine keeps for replay (default
	// 256, as Docker keeps).
	EventBuffer int
	// RootDir is the data root Info reports (default /var/lib/docker).
	RootDir string
	// ImageStore is the image store Info reports (default "memory";
	// engine.ContainerdStore makes it look like Docker 29's).
	ImageStore string
	// Rules are the runtime's the fake plays (New: Docker).
	Rules Rules
	// OnRemove, if set, is called (with the engine's lock held: it must not
	// call the engine) for each image or container the API removes, as it
	// goes, with the engine as it was when the call began.
	OnRemove func(Removed)
	// FollowBuffer is how many events a follower may lag behind before it
	// loses some (default 1024); make scale, with thousands of engines of
	// one image each, keeps it small.
	FollowBuffer int

	// DieUnder, if set, is asked (with the engine's lock held) after each
	// removal the engine has done: true makes the engine die before it
	// answers, so the caller gets an error for a removal that was done,
	// and every call fails until SetDown(false) (containerd killed between
	// deleting an image's record and answering).
	DieUnder func(method, arg string) bool

	// call is the engine when the removal under way began (for OnRemove).
	call *callState

	events []engine.Event // the replay buffer, oldest first
	subs   map[chan engine.Event]*follower
	// settled is signalled when a follower has applied its events.
	settled *sync.Cond
}

// Removed is one image or container that a call of the API removed, with
// what the engine held when that call began: what a test checks the
// removal against (a removal's call may take several references first).
type Removed struct {
	// Kind is "image" or "container".
	Kind string
	// Image is the image removed (an untagged parent pruned with it
	// included), or Container the container, as they were.
	Image     engine.Image
	Container engine.Container
	// Containers are every container the engine held.
	Containers []engine.Container
}

// callState is the engine when a removal's call began.
type callState struct {
	images     map[string]engine.Image
	containers []engine.Container
}

// began copies the engine for OnRemove; f.mu is held.
func (f *Engine) began() *callState {
	if f.OnRemove == nil {
		return nil
	}
	st := &callState{images: make(map[string]engine.Image, len(f.images))}
	for id, img := range f.images {
		c := *img
		c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
		st.images[id] = c
	}
	for _, c := range f.containers {
		st.containers = append(st.containers, *c)
	}
	return st
}

// follower is one live stream of Events: the events sent and not yet
// applied, whether its replay is done, and (on the CRI) its requests for
// an image listing.
type follower struct {
	pending  int
	replayed bool
	polls    chan chan struct{}
	ended    chan struct{} // closed when its Events returns
}

// New returns an empty engine.
func New() *Engine {
	f := &Engine{images: map[string]*engine.Image{}, containers: map[string]*engine.Container{}, calls: map[string]int{},
		subs: map[chan engine.Event]*follower{}, Rules: Docker}
	f.settled = sync.NewCond(&f.mu)
	return f
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

// AddImage puts a copy of an image in the engine (an image load event):
// what the engine does to it later never shows in the caller's inventory.
func (f *Engine) AddImage(img engine.Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := img
	c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
	f.images[img.ID] = &c
	f.emit(engine.ImageArrived, img.ID, "")
}

// AddContainer puts a container in the engine: a create event, and a start
// event if it is not stopped.
func (f *Engine) AddContainer(c engine.Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cc := c
	cc.Labels = maps.Clone(c.Labels)
	f.containers[c.ID] = &cc
	if f.unseen(&cc) {
		return
	}
	f.emit(engine.ContainerCreated, c.ID, c.ImageID)
	if !cc.Stopped() {
		f.emit(engine.ContainerStarted, c.ID, c.ImageID)
	}
}

// unseen reports whether the runtime's events do not tell of the
// container: on the CRI, one that another client of containerd made.
func (f *Engine) unseen(c *engine.Container) bool {
	return !f.Rules.ListsOthersContainers && c.MadeBy != ""
}

// RemoveImageByHand deletes an image whatever uses it, as another hand
// (the kubelet's image GC, docker rmi -f) would: a delete event.
func (f *Engine) RemoveImageByHand(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.images[id] != nil {
		delete(f.images, id)
		f.emit(engine.ImageRemoved, id, "")
	}
}

// RemoveContainerByHand removes a container in any state, as docker rm -f
// or the kubelet's container GC would: a destroy event (after a die event
// if it ran).
func (f *Engine) RemoveContainerByHand(id string) {
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
		f.emit(engine.ContainerStopped, id, c.ImageID)
	}
	f.emit(engine.ContainerRemoved, id, c.ImageID)
}

// noise is an event no adapter passes on (Docker's exec_start of a probe):
// it fills the runtime's replay buffer, and is never delivered.
const noise engine.EventKind = "noise"

// Noise adds n events the image clock does not read (exec probes), which
// push older events out of the replay buffer.
func (f *Engine) Noise(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.emit(noise, "", "")
	}
}

// Restart empties the event buffer and breaks every follower's stream, as
// an engine restart does; images and containers stay (running ones are
// left as they are: the test decides what restarts).
func (f *Engine) Restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = nil
	for ch := range f.subs {
		close(ch)
		delete(f.subs, ch)
	}
	f.settled.Broadcast()
}

// WaitFollowers waits until n followers are connected (Events with
// follow), each has applied its replay and every event sent to it: a
// model test's steps then see the agent's clock as the real follower left
// it, not half-way. It reports false if that did not happen within the
// timeout.
func (f *Engine) WaitFollowers(n int, timeout time.Duration) bool {
	expired := false
	timer := time.AfterFunc(timeout, func() {
		f.mu.Lock()
		expired = true
		f.settled.Broadcast()
		f.mu.Unlock()
	})
	defer timer.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.followersSettled(n) && !expired {
		f.settled.Wait()
	}
	return f.followersSettled(n)
}

func (f *Engine) followersSettled(n int) bool {
	if len(f.subs) != n {
		return false
	}
	for _, fl := range f.subs {
		if !fl.replayed || fl.pending > 0 {
			return false
		}
	}
	return true
}

// PollFollowers makes every follower of a CRI engine list images now, as
// the CRI adapter's follower does every ImagePoll, and waits until each
// has applied what it saw.
func (f *Engine) PollFollowers() {
	f.mu.Lock()
	var asks []*follower
	for _, fl := range f.subs {
		if fl.polls != nil {
			asks = append(asks, fl)
		}
	}
	f.mu.Unlock()
	for _, fl := range asks {
		done := make(chan struct{})
		select {
		case fl.polls <- done:
			<-done
		case <-fl.ended: // it stopped following meanwhile
		}
	}
}

func (f *Engine) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// emit records an event; f.mu is held.
func (f *Engine) emit(kind engine.EventKind, id, image string) {
	if !f.Rules.ImageEvents && !kind.OfContainer() && kind != noise {
		return // the runtime tells of containers only
	}
	e := engine.Event{Kind: kind, ID: id, Image: image, Time: f.now()}
	limit := f.EventBuffer
	if limit == 0 {
		limit = 256
	}
	f.events = append(f.events, e)
	if len(f.events) > limit {
		f.events = slices.Delete(f.events, 0, len(f.events)-limit)
	}
	for ch, fl := range f.subs {
		select {
		case ch <- e:
			fl.pending++
		default: // a follower that does not keep up loses events, as Docker's do
		}
	}
}

// applied notes that a follower applied one event sent to it.
func (f *Engine) applied(ch chan engine.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.subs[ch]; fl != nil {
		fl.pending--
		f.settled.Broadcast()
	}
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
	f.images[id].LastTagTime = f.now()
	f.emit(engine.ImageRetagged, id, "")
}

// Untag removes a tag from an image, as docker tag moving it elsewhere
// does: the image stays, untagged if it was its last.
func (f *Engine) Untag(id, ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img := f.images[id]; img != nil {
		img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return sameTag(t, ref) })
		f.emit(engine.ImageRetagged, id, "")
	}
}

// SetState changes a container's state, as starting or stopping it would:
// a start or die event when it starts or stops running.
func (f *Engine) SetState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	was := c.Stopped()
	c.State = state
	switch {
	case was && !c.Stopped():
		f.emit(engine.ContainerStarted, id, c.ImageID)
	case !was && c.Stopped():
		c.FinishedAt = f.now()
		f.emit(engine.ContainerStopped, id, c.ImageID)
	}
}

// Image returns a copy of the image as the engine holds it now.
func (f *Engine) Image(id string) (engine.Image, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := f.images[id]
	if img == nil {
		return engine.Image{}, false
	}
	c := *img
	c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
	return c, true
}

// Named returns the ID of the image a reference (ID, tag or digest
// reference) names now, "" when none does.
func (f *Engine) Named(ref string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img, _ := f.resolve(ref); img != nil {
		return img.ID
	}
	return ""
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
	if err := f.enter(ctx, "InspectImage", id); err != nil {
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
	return engine.Info{ID: "fake", RootDir: cmp.Or(f.RootDir, "/var/lib/docker"), Name: "fake", Version: "1", ImageStore: cmp.Or(f.ImageStore, "memory")}, nil
}

// Capabilities implements engine.Runtime.
func (f *Engine) Capabilities() engine.Capabilities {
	return f.Rules.Capabilities
}

// Events implements engine.Runtime with Docker's rules: a replay of the
// buffered events since (a gap first when the buffer has turned over since
// then), then, with follow, the new ones until ctx ends or Restart.
func (f *Engine) Events(ctx context.Context, since time.Time, follow bool, fn func(engine.Event)) error {
	if err := f.enter(ctx, "Events", ""); err != nil {
		return err
	}
	var replay []engine.Event
	switch {
	case !f.Rules.Replays && !since.IsZero():
		// No replay: all that happened since is unknown.
		replay = []engine.Event{{Kind: engine.EventGap, Time: f.now()}}
	case !since.IsZero():
		for _, e := range f.events {
			if !e.Time.Before(since) {
				replay = append(replay, e)
			}
		}
		limit := f.EventBuffer
		if limit == 0 {
			limit = 256
		}
		if len(replay) >= limit && replay[0].Time.After(since) {
			replay = append([]engine.Event{{Kind: engine.EventGap, Time: replay[0].Time}}, replay...)
		}
	}
	replay = append(replay, engine.Event{Kind: engine.EventNow, Time: f.now()})
	var ch chan engine.Event
	fl := &follower{ended: make(chan struct{})}
	defer close(fl.ended)
	if follow {
		ch = make(chan engine.Event, cmp.Or(f.FollowBuffer, 1024))
		if !f.Rules.ImageEvents {
			fl.polls = make(chan chan struct{})
		}
		f.subs[ch] = fl
	}
	f.mu.Unlock()
	for _, e := range replay {
		if e.Kind != noise {
			fn(e)
		}
	}
	if !follow {
		return nil
	}
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.settled.Broadcast()
		f.mu.Unlock()
	}()
	// A runtime that tells of containers only: its follower lists images,
	// and an image that appeared arrived, one that went was deleted.
	var p engine.Poller
	if !f.Rules.ImageEvents {
		if err := p.Baseline(ctx, f); err != nil {
			return err
		}
	}
	f.mu.Lock()
	fl.replayed = true
	f.settled.Broadcast()
	f.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case done := <-fl.polls:
			err := p.Poll(ctx, f, f.now(), fn)
			close(done)
			if err != nil {
				return err
			}
		case e, ok := <-ch:
			if !ok {
				return fmt.Errorf("the engine restarted")
			}
			if e.Kind != noise {
				fn(e)
			}
			f.applied(ch)
		}
	}
}

// Subscription is a live stream of the fake's events, read without
// blocking: a model test's follower, that runs to the present after each
// step instead of alongside.
type Subscription struct{ ch chan engine.Event }

// Subscribe starts a live stream of the events from now on (a follower
// connected to the engine; nothing is replayed).
func (f *Engine) Subscribe() *Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan engine.Event, 4096)
	f.subs[ch] = &follower{replayed: true}
	return &Subscription{ch: ch}
}

// Unsubscribe ends a stream.
func (f *Engine) Unsubscribe(s *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[s.ch] != nil {
		delete(f.subs, s.ch)
		close(s.ch)
	}
}

// Drain returns the events sent since the last Drain, oldest first; broken
// says that the stream ended (the engine restarted) after them.
func (s *Subscription) Drain() (events []engine.Event, broken bool) {
	for {
		select {
		case e, ok := <-s.ch:
			if !ok {
				return events, true
			}
			if e.Kind != noise {
				events = append(events, e)
			}
		default:
			return events, false
		}
	}
}

// ContainerFinishedAt implements engine.Runtime.
func (f *Engine) ContainerFinishedAt(ctx context.Context, id string) (string, time.Time, error) {
	if err := f.enter(ctx, "ContainerFinishedAt", id); err != nil {
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
	if err := f.enter(ctx, "RemoveContainer", id); err != nil {
		return err
	}
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil || f.unseen(c) { // the CRI knows only its own containers
		return fmt.Errorf("no such container: %s: %w", id, engine.ErrNotFound)
	}
	if !c.Stopped() {
		return fmt.Errorf("you cannot remove a %s container %s: %w", c.State, engine.ShortID(id), engine.ErrConflict)
	}
	st := f.began()
	delete(f.containers, id)
	f.emit(engine.ContainerRemoved, id, c.ImageID)
	if st != nil {
		f.OnRemove(Removed{Kind: "container", Container: *c, Containers: st.containers})
	}
	return f.dies("RemoveContainer", id)
}

// dies asks DieUnder after a removal the engine did; f.mu is held.
func (f *Engine) dies(method, arg string) error {
	if f.DieUnder != nil && f.DieUnder(method, arg) {
		f.down = true
		return fmt.Errorf("the engine died before it answered %s %s: connection reset", method, engine.ShortID(arg))
	}
	return nil
}

// ContainersUsing implements engine.Runtime.
func (f *Engine) ContainersUsing(ctx context.Context, imageIDs []string) ([]engine.Container, error) {
	if err := f.enter(ctx, "ContainersUsing", strings.Join(imageIDs, ",")); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	var out []engine.Container
	for _, c := range f.containers {
		if slices.Contains(imageIDs, c.ImageID) {
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
func (f *Engine) RemoveImage(ctx context.Context, ref string, opts engine.RemoveImageOptions) (engine.Deleted, error) {
	if err := f.enter(ctx, "RemoveImage", ref); err != nil {
		return engine.Deleted{}, err
	}
	defer f.mu.Unlock()
	del, err := f.removeImage(ref, opts)
	if err == nil {
		if err = f.dies("RemoveImage", ref); err != nil {
			del = engine.Deleted{}
		}
	}
	return del, err
}

// removeImage is RemoveImage's work; f.mu is held.
func (f *Engine) removeImage(ref string, opts engine.RemoveImageOptions) (engine.Deleted, error) {
	force := opts.Force
	f.call = f.began()
	img, kind := f.resolve(ref)
	if img == nil {
		return engine.Deleted{}, fmt.Errorf("no such image: %s: %w", ref, engine.ErrNotFound)
	}
	if force && !f.Rules.Capabilities.ForceRemoval {
		return engine.Deleted{}, fmt.Errorf("the runtime has no forced removal")
	}
	if !f.Rules.Capabilities.UntagByReference {
		// containerd's CRI: every reference goes, and nothing looks at the
		// containers that use the image.
		return engine.Deleted{Deleted: f.deleteAndPrune(img.ID, false)}, nil
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
		return engine.Deleted{Deleted: f.deleteAndPrune(img.ID, opts.Prune)}, nil
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
	return engine.Deleted{Deleted: f.deleteAndPrune(img.ID, opts.Prune)}, nil
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

// deleteAndPrune deletes the image and then, with prune, its parents left
// without reference, child or container.
func (f *Engine) deleteAndPrune(id string, prune bool) []string {
	var deleted []string
	for id != "" {
		img := f.images[id]
		delete(f.images, id)
		f.emit(engine.ImageRemoved, id, "")
		if f.call != nil {
			f.OnRemove(Removed{Kind: "image", Image: f.call.images[id], Containers: f.call.containers})
		}
		deleted = append(deleted, id)
		parent := f.images[img.ParentID]
		if !prune || parent == nil || len(parent.RepoDigests) > 0 {
			break
		}
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

// ProvesRoot implements engine.RootProver as the Docker engine lays out
// its data root (the fake's Info is Docker's, whatever its rules).
func (f *Engine) ProvesRoot(ctx context.Context, info engine.Info, root string) (proven, empty bool, err error) {
	return docker.ProvesDataRoot(ctx, f, info, root)
}
