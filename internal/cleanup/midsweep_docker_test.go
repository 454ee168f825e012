package cleanup_test

import (
	"context"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// afterContainerRemoval lets a test act in the middle of a sweep: right
// after each container removal, before the re-check of its image.
type afterContainerRemoval struct {
	*docker.Runtime
	after func(id string)
}

func (a afterContainerRemoval) RemoveContainer(ctx context.Context, id string, volumes bool) error {
	err := a.Runtime.RemoveContainer(ctx, id, volumes)
	a.after(id)
	return err
}

// Invariant 5 while a sweep runs: the image's stopped container goes, then
// another hand removes the image and loads it again (the kubelet's GC, a
// pull) before the sweep's re-check of it. The agent's follower hears of it
// (here: a catch-up on the runtime's events); the re-check reads the clock,
// and the image, back seconds ago, stays under minImageAge.
func TestAnImageBackMidSweepStays(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	saved := saveImage(t, s, s.ref("1"))
	testenv.CreateContainer(t, s.cli, id, testenv.ContainerOptions{Run: "exit"})
	r := newRestartable(t)
	spec := s.spec(s.ref("1"))
	hour := v1alpha1.Duration("1h")
	spec.MinImageAge = &hour
	now := time.Now()

	// The follower's cursor: what happened so far is known (the image is
	// first seen three hours ago, by a plan then that removed nothing).
	r.clock.SeenUntil(time.Now())
	s.sweepWith(s.rt, spec, now.Add(-3*time.Hour), cleanup.Options{Clock: r.clock, Policy: "p", PlanOnly: true})
	back := false
	rt := afterContainerRemoval{Runtime: s.rt, after: func(string) {
		if !back {
			back = true
			reload(t, s, id, saved)
			r.catchUp(s.rt)
		}
	}}
	out, err := cleanup.NewSweep(rt, &spec, now, cleanup.Options{Clock: r.clock, Policy: "p"}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !back {
		t.Fatalf("the sweep removed no container first: %+v", out.Result)
	}
	if d := decisionFor(out.Result.Skipped, id); d == nil || d.Reason != plan.TooYoung || !testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("an image back on the node seconds before its removal went (or was not held as TooYoung): %+v", out.Result)
	}
}
