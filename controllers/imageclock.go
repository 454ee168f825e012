package controllers

import (
	"context"
	"sync"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
)

// nodeClock is this node's image clock (internal/imageclock). It opens on
// first use, because the engine names the state file and may not answer
// when the agent starts; and while the agent runs it follows the engine's
// container starts and stops, which record when each image was last used.
type nodeClock struct {
	// dir holds the state (a hostPath folder); "" keeps it in memory only.
	dir string
	rt  engine.Runtime
	// dataRoot is where the engine's data filesystem can be measured; ""
	// asks the engine (its DockerRootDir, which the DaemonSet mounts at the
	// same path).
	dataRoot string

	mu    sync.Mutex
	clock *imageclock.Clock
	info  *engine.Info // asked once: it names the state file and the data root
}

// engineInfo asks the engine who it is, once; n.mu is held.
func (n *nodeClock) engineInfo(ctx context.Context) (engine.Info, error) {
	if n.info == nil {
		info, err := n.rt.Info(ctx)
		if err != nil {
			return engine.Info{}, err
		}
		n.info = &info
	}
	return *n.info, nil
}

// disk measures the engine's data filesystem, for policies with diskUsage.
func (n *nodeClock) disk(ctx context.Context) func() (disk.Usage, error) {
	return func() (disk.Usage, error) {
		root, err := n.root(ctx)
		if err != nil {
			return disk.Usage{}, err
		}
		return disk.Measure(root)
	}
}

func (n *nodeClock) root(ctx context.Context) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dataRoot != "" {
		return n.dataRoot, nil
	}
	info, err := n.engineInfo(ctx)
	return info.RootDir, err
}

// get returns the clock, opening it if need be.
func (n *nodeClock) get(ctx context.Context) (*imageclock.Clock, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.clock != nil {
		return n.clock, nil
	}
	if n.dir == "" {
		n.clock = imageclock.InMemory()
		return n.clock, nil
	}
	info, err := n.engineInfo(ctx)
	if err != nil {
		return nil, err
	}
	c, warning, err := imageclock.Open(imageclock.FileFor(n.dir, info.ID))
	if err != nil {
		return nil, err
	}
	if warning != nil {
		logf.FromContext(ctx).Info("image clock reset", "reason", warning.Error())
	}
	n.clock = c
	return c, nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// node follows its own engine.
func (n *nodeClock) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable: it follows the engine's container
// events until the agent stops, and reconnects with back-off when the
// stream breaks (the engine restarted, or is not there yet).
func (n *nodeClock) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("imageclock")
	delay := time.Second
	for {
		clock, err := n.get(ctx)
		if err == nil {
			err = n.rt.WatchContainers(ctx, func(e engine.ContainerEvent) {
				clock.ContainerUsed(e.ContainerID, e.Time)
				delay = time.Second // the stream works again
			})
		}
		if ctx.Err() != nil {
			return nil
		}
		log.V(1).Info("container events interrupted; retrying", "error", err.Error(), "after", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}
