package cleanup_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/moby/moby/client"
)

// An image seen long ago, removed by another hand and loaded
// again, kept its old arrival and went at once; and the agent did not
// forget the images it removed itself, so one the kubelet pulled again
// went on every sweep. A return is an arrival. (The timeline lies in the
// past: the containerd store stamps a load with the real time, a true
// proof of arrival that a simulated future would take for an old one.)
func TestAReturnIsAnArrival(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	saved := saveImage(t, s, s.ref("1"))
	r := newRestartable(t)
	spec := s.spec(s.ref("1"))
	hour := v1alpha1.Duration("1h")
	spec.MinImageAge = &hour
	anyAge := s.spec(s.ref("1"))
	now := time.Now()

	// First seen three hours ago (a plan then); removed by another hand and
	// loaded again since; the CLI starts again and catches up.
	r.catchUp(s.rt)
	s.sweepWith(s.rt, spec, now.Add(-3*time.Hour), cleanup.Options{Clock: r.clock, Policy: "p", PlanOnly: true})
	reload(t, s, id, saved)
	r.restart()
	r.catchUp(s.rt)
	out := s.sweepWith(s.rt, spec, time.Now(), cleanup.Options{Clock: r.clock, Policy: "p"})
	if d := decisionFor(out.Result.Skipped, id); d == nil || d.Reason != plan.TooYoung || !testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("an image that came back seconds ago went (or was not held as TooYoung): %+v", out.Result)
	}

	// Another clock first sees it three hours ago; a sweep without the age
	// guard removes it two hours ago; it is loaded again now; the next
	// sweep holds it back, without reading the delete.
	other := newRestartable(t)
	s.sweepWith(s.rt, spec, now.Add(-3*time.Hour), cleanup.Options{Clock: other.clock, Policy: "p", PlanOnly: true})
	s.sweepWith(s.rt, anyAge, now.Add(-2*time.Hour), cleanup.Options{Clock: other.clock, Policy: "p"})
	if testenv.ImageExists(t, s.cli, id) {
		t.Fatal("a sweep without minImageAge should remove it")
	}
	reload(t, s, id, saved)
	out = s.sweepWith(s.rt, spec, time.Now().Add(time.Minute), cleanup.Options{Clock: other.clock, Policy: "p"})
	if !testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("the image the sweep removed came back and went again a minute later: %+v", out.Result)
	}
}

// A container that ran and was removed between two sweeps
// (docker run --rm, a Job's pod collected) is a use of its image, also
// when the process that keeps the clock was not running then.
func TestUseOfARemovedContainerCounts(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	out := s.afterAUseWhileTheClockIsClosed(id, func() {})
	if d := decisionFor(out.Result.Skipped, id); d == nil || d.Reason != plan.RecentlyUsed || !testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("an image used half an hour ago (container since removed) was not kept as RecentlyUsed: %+v", out.Result)
	}
}

// afterAUseWhileTheClockIsClosed sweeps ref("1") under maxUnusedAge 1h:
// the clock sees the images three hours before; then, with it closed, a
// container of run runs and goes, and meanwhile happens; the sweep comes
// half an hour after the clock opens again and catches up.
func (s *scenario) afterAUseWhileTheClockIsClosed(run string, meanwhile func()) cleanup.Outcome {
	s.t.Helper()
	r := newRestartable(s.t)
	spec := s.spec(s.ref("1"))
	hour := v1alpha1.Duration("1h")
	spec.MaxUnusedAge = &hour
	start := time.Now()

	r.catchUp(s.rt)
	s.sweepWith(s.rt, spec, start.Add(-3*time.Hour), cleanup.Options{Clock: r.clock, Policy: "p", PlanOnly: true})
	r.clock.Close() // the process is down while the container runs and goes
	c := testenv.CreateContainer(s.t, s.cli, run, testenv.ContainerOptions{Run: "exit"})
	testenv.RemoveContainer(s.t, s.cli, c)
	meanwhile()
	r.restart()
	r.catchUp(s.rt)
	return s.sweepWith(s.rt, spec, start.Add(30*time.Minute), cleanup.Options{Clock: r.clock, Policy: "p"})
}

// reopen is a restart of the process that keeps the image clock: the clock
// held so far is closed and the state folder opened again.
type restartable struct {
	t     *testing.T
	dir   string
	clock *imageclock.Clock
}

func newRestartable(t *testing.T) *restartable {
	r := &restartable{t: t, dir: t.TempDir()}
	r.restart()
	t.Cleanup(func() { r.clock.Close() })
	return r
}

func (r *restartable) restart() *imageclock.Clock {
	r.t.Helper()
	if r.clock != nil {
		r.clock.Close()
	}
	c, warn, err := imageclock.Open(r.dir, imageclock.StoreKey{ID: "private", RootDir: "/private"})
	if err != nil || warn != nil {
		r.t.Fatal(err, warn)
	}
	r.clock = c
	return c
}

// catchUp reads what the runtime did since the clock's cursor, as the CLI
// does at each start and the agent's event follower does all along.
func (r *restartable) catchUp(rt *docker.Runtime) {
	r.t.Helper()
	if err := r.clock.CatchUp(context.Background(), rt); err != nil {
		r.t.Fatal(err)
	}
}

// saveImage is docker save of a reference: a tarball that docker load
// brings back with the same ID and tag.
func saveImage(t *testing.T, s *scenario, ref string) []byte {
	t.Helper()
	rc, err := s.cli.ImageSave(context.Background(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	saved, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return saved
}

// reload removes the image if it is there (another hand: the kubelet's GC,
// docker rmi) and loads it again: the same image, back on the node.
func reload(t *testing.T, s *scenario, id string, saved []byte) {
	t.Helper()
	ctx := context.Background()
	if testenv.ImageExists(t, s.cli, id) {
		if _, err := s.cli.ImageRemove(ctx, id, client.ImageRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.cli.ImageLoad(ctx, bytes.NewReader(saved))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp)
	_ = resp.Close()
	if !testenv.ImageExists(t, s.cli, id) {
		t.Fatal("the image did not come back with the same ID")
	}
}

// A container run by a name whose tag moved before the clock read its
// events (docker run --rm app:latest, then a pull of app:latest, while the
// process that keeps the clock was down) used the image the name named
// then: the image it names now must not take the use alone.
func TestAUseReplayedByANameThatMovedSinceCountsForItsImage(t *testing.T) {
	s := newScenario(t)
	used := testenv.ImportImage(t, s.cli, s.ref("1"), s.ref("latest"))
	out := s.afterAUseWhileTheClockIsClosed(s.ref("latest"), func() {
		testenv.ImportImage(t, s.cli, s.ref("latest")) // the pull that moves :latest
	})
	if d := decisionFor(out.Result.Skipped, used); d == nil || d.Reason != plan.RecentlyUsed || !testenv.ImageExists(t, s.cli, used) {
		t.Fatalf("an image used half an hour ago by a name that moved since was not kept as RecentlyUsed: %+v", out.Result)
	}
}
