package cri

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Events implements runtime.Runtime. The CRI replays nothing: a since in the
// past is a gap at the present (what happened since is unknown: the image
// clock counts every image as arrived and used then). Following, it turns
// the CRI's container events (GetContainerEvents) into runtime.Events,
// and lists images every ImagePoll: an image that appears arrives then, one
// that went is deleted. A runtime that serves no container events (CRI-O
// without enable_pod_events) has its containers listed as often: a running
// one is used then, and one that went was used until then.
func (r *Runtime) Events(ctx context.Context, since time.Time, follow bool, f func(runtime.Event)) error {
	now := time.Now()
	if !since.IsZero() {
		f(runtime.Event{Kind: runtime.EventGap, Time: now})
	}
	f(runtime.Event{Kind: runtime.EventNow, Time: now})
	if !follow {
		return nil
	}
	return r.follow(ctx, f)
}

func (r *Runtime) follow(ctx context.Context, f func(runtime.Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.count("GetContainerEvents")
	// Read at once, always: containerd sends events as part of the calls
	// that make them, and a stream that is not read holds those calls.
	events := make(chan *runtimeapi.ContainerEventResponse, 1024)
	broken := make(chan error, 1)
	stream, err := r.runtime.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		broken <- err
	} else {
		opened := time.Now()
		go func() {
			received := false // an event came: the runtime serves them
			for {
				e, err := stream.Recv()
				switch {
				case errors.Is(err, io.EOF) && !received && time.Since(opened) < servesNoneWithin:
					broken <- errNoEvents
					return
				case errors.Is(err, io.EOF):
					broken <- errors.New("the runtime ended its container events")
					return
				case err != nil:
					broken <- err
					return
				}
				received = true
				select {
				case events <- e:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var p runtime.Poller
	if err := p.Baseline(ctx, r); err != nil {
		return ended(ctx, err)
	}
	tick := time.NewTicker(r.ImagePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-broken:
			// No events: a runtime without the call, or one that serves it
			// empty and ends it before any event (CRI-O without
			// enable_pod_events, its default): list containers too. A
			// stream that served events and ended is a break: the caller
			// follows again, from a gap.
			if status.Code(err) != codes.Unimplemented && !errors.Is(err, errNoEvents) {
				return ended(ctx, wrap(err))
			}
			if err := p.FollowContainers(ctx, r); err != nil {
				return ended(ctx, err)
			}
		case e := <-events:
			if ev, ok := toEvent(e); ok {
				f(ev)
			}
		case <-tick.C:
			if err := p.Poll(ctx, r, time.Now(), f); err != nil {
				return ended(ctx, err)
			}
		}
	}
}

// errNoEvents is a container-event stream that ended at once, before any
// event: the runtime serves none.
var errNoEvents = errors.New("the runtime serves no container events")

// servesNoneWithin bounds how soon a runtime that serves no container
// events ends their stream (CRI-O: at once, in the call; the bound leaves
// a loaded node its margin). A stream that ends later, even with nothing
// in it, was served and broke (a runtime that restarted on a quiet node):
// the caller follows again, and does not give up the events for listings
// for good.
const servesNoneWithin = 5 * time.Second

// ended is ctx's error when ctx has ended, else err: once the caller
// cancels, the stream and a poll under way fail with a gRPC status that
// does not wrap context.Canceled, and select may take their case first.
func ended(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// toEvent is the runtime.Event of one of the CRI's container events.
func toEvent(e *runtimeapi.ContainerEventResponse) (runtime.Event, bool) {
	kind := map[runtimeapi.ContainerEventType]runtime.EventKind{
		runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT: runtime.ContainerCreated,
		runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT: runtime.ContainerStarted,
		runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT: runtime.ContainerStopped,
		runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT: runtime.ContainerRemoved,
	}[e.GetContainerEventType()]
	if kind == "" || e.GetContainerId() == "" {
		return runtime.Event{}, false
	}
	ev := runtime.Event{Kind: kind, ID: e.GetContainerId(), Time: time.Unix(0, e.GetCreatedAt())}
	for _, st := range e.GetContainersStatuses() {
		if st.GetId() == e.GetContainerId() {
			ev.Image = imageOf(st.GetImageId(), st.GetImageRef())
		}
	}
	return ev, true
}
