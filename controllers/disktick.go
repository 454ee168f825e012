package controllers

import (
	"context"
	"time"

	"k8s.io/utils/clock"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// diskTick is how often the agent looks at the disk for policies with
// diskUsage. A look reads the cache and calls statfs; it writes nothing to
// the API unless a watermark is crossed.
const diskTick = 30 * time.Second

// diskTicker brings every policy with diskUsage back to the node controller
// on each tick; the reconcile measures the disk and sweeps when it is above
// the high watermark (decide.go).
type diskTicker struct {
	reader client.Reader
	clock  clock.WithTicker
	every  time.Duration
	out    chan<- event.GenericEvent
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every node
// watches its own disk.
func (t *diskTicker) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (t *diskTicker) Start(ctx context.Context) error {
	tick := t.clock.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
		}
		var list v1alpha1.ImageCleanupPolicyList
		if err := t.reader.List(ctx, &list); err != nil {
			logf.FromContext(ctx).Info("the disk tick cannot list policies; next tick", "error", err.Error())
			continue
		}
		for i := range list.Items {
			if list.Items[i].Spec.DiskUsage == nil {
				continue
			}
			select {
			case t.out <- event.GenericEvent{Object: &list.Items[i]}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}
