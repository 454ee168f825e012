package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtimehost"
)

// clockSaveEvery is how often what the event stream taught the clock is
// written, at most: a use or a departure seen survives an agent restart.
const clockSaveEvery = 2 * time.Second

// nodeHost is this node's runtime, prepared for sweeping
// (internal/runtimehost): its image clock and its data filesystem. It opens
// on first use, because the runtime names the state file and may not answer
// when the agent starts; and while the agent runs it follows the runtime's
// events, which tell when each image was last used and when one left.
type nodeHost struct {
	rt   runtime.Runtime
	opts runtimehost.Options
	// clock paces the event stream's reconnects and the saves.
	clock clock.WithTicker
	// metrics say which runtime the node runs, once it is known.
	metrics *agentMetrics

	mu   sync.Mutex
	host *runtimehost.Host
}

// open returns the runtime's host, opening it if need be.
func (n *nodeHost) open(ctx context.Context) (*runtimehost.Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.host != nil {
		return n.host, nil
	}
	h, err := runtimehost.Open(ctx, n.rt, n.opts)
	if err != nil {
		return nil, err
	}
	if h.Warning != nil {
		logf.FromContext(ctx).Info("image clock reset", "reason", h.Warning.Error())
	}
	n.metrics.observeRuntime(h.Info)
	n.host = h
	return h, nil
}

// runtimeInfo says which runtime the node runs, once it was asked.
func (n *nodeHost) runtimeInfo() (runtime.Info, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.host == nil {
		return runtime.Info{}, false
	}
	return n.host.Info, true
}

// imageClock returns the image clock.
func (n *nodeHost) imageClock(ctx context.Context) (*imageclock.Clock, error) {
	h, err := n.open(ctx)
	if err != nil {
		return nil, err
	}
	return h.Clock, nil
}

// disk measures the runtime's data filesystem, for policies with diskUsage.
func (n *nodeHost) disk(ctx context.Context) func() (disk.Usage, error) {
	return func() (disk.Usage, error) {
		h, err := n.open(ctx)
		if err != nil {
			return disk.Usage{}, err
		}
		return h.Disk(ctx)()
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// node follows its own runtime.
func (n *nodeHost) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable: it follows the runtime's events until
// the agent stops, from where the clock's file says it stopped (the runtime
// replays what it still holds), reconnecting with back-off when the stream
// breaks (the runtime restarted, or is not there yet), and saves what it
// learns every few seconds.
func (n *nodeHost) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("imageclock")
	go n.saveEvery(ctx)
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: 7, Cap: time.Minute}
	delay := backoff.Step()
	for {
		err := n.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		log.V(1).Info("runtime events interrupted; retrying", "error", err.Error(), "after", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-n.clock.After(delay):
		}
		if backoff.Steps > 0 {
			delay = backoff.Step()
		}
	}
}

// follow follows the runtime's events from the clock's cursor until the
// stream breaks or ctx ends, and saves then: the runtime may be restarting,
// and its replay of what the clock learned since the last save goes with it.
func (n *nodeHost) follow(ctx context.Context) error {
	imageClock, err := n.imageClock(ctx)
	if err == nil {
		err = imageClock.Follow(ctx, n.rt)
	}
	n.save(ctx)
	return err
}

func (n *nodeHost) saveEvery(ctx context.Context) {
	tick := n.clock.NewTicker(clockSaveEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			n.save(ctx)
		}
	}
}

func (n *nodeHost) save(ctx context.Context) {
	n.mu.Lock()
	h := n.host
	n.mu.Unlock()
	if h == nil || !h.Clock.Dirty() {
		return
	}
	if err := h.Clock.Save(); err != nil {
		logf.FromContext(ctx).Error(err, "saving the image clock")
	}
}
