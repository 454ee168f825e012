package runtimefake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// follower is one live stream of Events: the events sent and not yet
// applied, whether its replay is done, and (on the CRI) its requests for
// an image listing.
type follower struct {
	pending  int
	replayed bool
	polls    chan chan struct{}
	ended    chan struct{} // closed when its Events returns
}

// noise is an event no adapter passes on (Docker's exec_start of a probe):
// it fills the runtime's replay buffer, and is never delivered.
const noise runtime.EventKind = "noise"

// Noise adds n events the image clock does not read (exec probes), which
// push older events out of the replay buffer.
func (f *Runtime) Noise(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.emit(noise, "", "")
	}
}

// Restart empties the event buffer and breaks every follower's stream, as
// a runtime restart does; images and containers stay (running ones are
// left as they are: the test decides what restarts).
func (f *Runtime) Restart() {
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
func (f *Runtime) WaitFollowers(n int, timeout time.Duration) bool {
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

func (f *Runtime) followersSettled(n int) bool {
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

// PollFollowers makes every follower of a CRI runtime list images now, as
// the CRI adapter's follower does every ImagePoll, and waits until each
// has applied what it saw.
func (f *Runtime) PollFollowers() {
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

// emit records an event; f.mu is held.
func (f *Runtime) emit(kind runtime.EventKind, id, image string) {
	if !f.Rules.ImageEvents && !kind.OfContainer() && kind != noise {
		return // the runtime tells of containers only
	}
	if f.Rules.NoContainerEvents && kind.OfContainer() {
		return // nor of them
	}
	e := runtime.Event{Kind: kind, ID: id, Image: image, Time: f.now()}
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
func (f *Runtime) applied(ch chan runtime.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.subs[ch]; fl != nil {
		fl.pending--
		f.settled.Broadcast()
	}
}

// Events implements runtime.Runtime with Docker's rules: a replay of the
// buffered events since (a gap first when the buffer has turned over since
// then), then, with follow, the new ones until ctx ends or Restart.
func (f *Runtime) Events(ctx context.Context, since time.Time, follow bool, fn func(runtime.Event)) error {
	if err := f.enter(ctx, "Events", ""); err != nil {
		return err
	}
	var replay []runtime.Event
	switch {
	case !f.Rules.Replays && !since.IsZero():
		// No replay: all that happened since is unknown.
		replay = []runtime.Event{{Kind: runtime.EventGap, Time: f.now()}}
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
			replay = append([]runtime.Event{{Kind: runtime.EventGap, Time: replay[0].Time}}, replay...)
		}
	}
	replay = append(replay, runtime.Event{Kind: runtime.EventNow, Time: f.now()})
	var ch chan runtime.Event
	fl := &follower{ended: make(chan struct{})}
	defer close(fl.ended)
	if follow {
		ch = make(chan runtime.Event, cmp.Or(f.FollowBuffer, 1024))
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
	p := runtime.Poller{Containers: f.Rules.NoContainerEvents}
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
				return fmt.Errorf("the runtime restarted")
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
type Subscription struct{ ch chan runtime.Event }

// Subscribe starts a live stream of the events from now on (a follower
// connected to the runtime; nothing is replayed).
func (f *Runtime) Subscribe() *Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan runtime.Event, 4096)
	f.subs[ch] = &follower{replayed: true}
	return &Subscription{ch: ch}
}

// Unsubscribe ends a stream.
func (f *Runtime) Unsubscribe(s *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[s.ch] != nil {
		delete(f.subs, s.ch)
		close(s.ch)
	}
}

// Drain returns the events sent since the last Drain, oldest first; broken
// says that the stream ended (the runtime restarted) after them.
func (s *Subscription) Drain() (events []runtime.Event, broken bool) {
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
