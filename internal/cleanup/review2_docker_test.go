package cleanup_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/moby/moby/client"
)

// One test per finding of the second safety review (issue 17, docs/policy.md
// "Invariants"), each on the private dockerd.

// Finding 1: an image pulled by digest from an excluded repository and
// tagged into a selected one stays whole: the excluded digest reference
// would go with the last tag.
func TestFinding2ExclusionCoversADigestReference(t *testing.T) {
	s := newScenario(t)
	reg := testenv.StartRegistry(t)
	prod := "prod/" + testenv.UniqueName("app")
	digest := reg.Push(t, prod, "1", time.Now().Add(-time.Hour))
	byDigest := reg.Host + "/" + prod + "@" + digest
	id := testenv.PullImage(t, s.cli, byDigest)
	if _, err := s.cli.ImageTag(context.Background(), client.ImageTagOptions{Source: id, Target: s.ref("pr-7")}); err != nil {
		t.Fatal(err)
	}
	spec := s.spec(s.repo + "/**")
	spec.Exclude = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(reg.Host + "/prod/**")}
	out := s.sweep(spec)
	if !testenv.ImageExists(t, s.cli, id) || !testenv.ImageExists(t, s.cli, byDigest) {
		t.Fatalf("the image with an excluded digest reference went: %+v", out.Result)
	}
	if d := decisionFor(out.Result.Skipped, id); d == nil || d.Reason != plan.Excluded {
		t.Fatalf("want it skipped as Excluded: %+v", out.Result)
	}
}

// Finding 4: the engine pruned an untagged parent with its last child, even
// when the policy excluded it by ID or protected it; now it prunes only
// what the policy may remove, and the result names what it pruned.
func TestFinding2PruneRespectsExclusionAndProtection(t *testing.T) {
	for _, how := range []string{"excluded", "protected", "neither"} {
		t.Run(how, func(t *testing.T) {
			s := newScenario(t)
			parent := testenv.ImportImage(t, s.cli, s.ref("base"))
			c := testenv.CreateContainer(t, s.cli, s.ref("base"), testenv.ContainerOptions{})
			child := testenv.CommitChild(t, s.cli, c, s.ref("child"))
			// The parent loses its tag and stays, untagged, under its child.
			if _, err := s.cli.ImageRemove(context.Background(), s.ref("base"), client.ImageRemoveOptions{}); err == nil {
				t.Fatal("the engine untagged a parent used by a container; the scenario is void")
			}
			testenv.RemoveContainer(t, s.cli, c)
			if _, err := s.cli.ImageRemove(context.Background(), s.ref("base"), client.ImageRemoveOptions{}); err != nil {
				t.Fatal(err)
			}
			byID := "sha256:" + strings.TrimPrefix(parent, "sha256:")[:16]
			spec := s.spec(s.ref("child"))
			var protected []string
			switch how {
			case "excluded":
				spec.Exclude = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(byID)}
			case "protected":
				protected = []string{byID}
			}
			out := s.sweepWith(s.rt, spec, time.Now(), cleanup.Options{Protected: protected})
			if testenv.ImageExists(t, s.cli, child) {
				t.Fatalf("the child stayed: %+v", out.Result)
			}
			if keep := how != "neither"; testenv.ImageExists(t, s.cli, parent) != keep {
				t.Fatalf("%s parent present: %v, want %v: %+v", how, !keep, keep, out.Result)
			}
			var pruned []string
			for _, ri := range out.Result.RemovedImages {
				if ri.PrunedWith != "" {
					pruned = append(pruned, ri.ImageID)
				}
			}
			if how == "neither" && (len(pruned) != 1 || pruned[0] != parent) {
				t.Fatalf("the pruned parent is not in the result: %+v", out.Result.RemovedImages)
			}
			if how != "neither" && len(pruned) != 0 {
				t.Fatalf("the result names a prune that did not happen: %+v", out.Result.RemovedImages)
			}
		})
	}
}

// Finding 5: under disk pressure, the least recently used image goes first
// with the children that must go before it; a recently used standalone
// image is not taken before an old base and its child.
func TestFinding2LeastRecentlyUsedAcrossParentAndChild(t *testing.T) {
	s := newScenario(t)
	base := testenv.ImportImage(t, s.cli, s.ref("base"))
	c := testenv.CreateContainer(t, s.cli, s.ref("base"), testenv.ContainerOptions{})
	child := testenv.CommitChild(t, s.cli, c, s.ref("child"))
	testenv.RemoveContainer(t, s.cli, c)
	standalone := testenv.ImportImage(t, s.cli, s.ref("standalone"))

	clock := imageclock.InMemory()
	now := time.Now()
	// Uses, as the event stream tells them: the base a month ago, the
	// standalone image ten days ago, the child an hour ago.
	clock.ImageUsed(base, now.Add(-30*24*time.Hour))
	clock.ImageUsed(standalone, now.Add(-10*24*time.Hour))
	clock.ImageUsed(child, now.Add(-time.Hour))
	removed := 0
	measure := func() (disk.Usage, error) {
		// 90 % until two images went, then 60 %.
		if n := countMissing(t, s, base, child, standalone); n >= 2 {
			return disk.Usage{UsedPercent: 60, UsedBytes: 60}, nil
		}
		return disk.Usage{UsedPercent: 90, UsedBytes: 90}, nil
	}
	spec := s.spec(s.repo + "/app:*")
	spec.DiskUsage = &v1alpha1.DiskUsage{HighPercent: 85, LowPercent: 70}
	spec.Order = v1alpha1.OrderLeastRecentlyUsed
	out := s.sweepWith(s.rt, spec, now, cleanup.Options{Clock: clock, Disk: measure})
	_ = removed
	if testenv.ImageExists(t, s.cli, base) || testenv.ImageExists(t, s.cli, child) || !testenv.ImageExists(t, s.cli, standalone) {
		t.Fatalf("want the old base and its child gone, the standalone image kept: %+v", out.Result)
	}
}

func countMissing(t *testing.T, s *scenario, ids ...string) int {
	n := 0
	for _, id := range ids {
		if !testenv.ImageExists(t, s.cli, id) {
			n++
		}
	}
	return n
}

// Finding 9: keepNewest keeps the newest builds, whatever order they were
// pulled in; here all arrive between two sweeps, the older builds last.
func TestFinding2KeepNewestKeepsTheNewestBuilds(t *testing.T) {
	s := newScenario(t)
	reg := testenv.StartRegistry(t)
	repo := "itest/" + testenv.UniqueName("builds")
	built := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := map[int]string{}
	for _, build := range []int{8, 7, 6, 5, 4, 3, 2, 1} { // newest first
		tag := "build" + string(rune('0'+build))
		reg.Push(t, repo, tag, built.Add(time.Duration(build)*24*time.Hour))
		ids[build] = testenv.PullImage(t, s.cli, reg.Host+"/"+repo+":"+tag)
	}
	spec := s.spec(reg.Host + "/" + repo + ":*")
	spec.KeepNewest = 2
	out := s.sweepWith(s.rt, spec, time.Now(), cleanup.Options{Clock: imageclock.InMemory()})
	for build, id := range ids {
		if keep := build >= 7; testenv.ImageExists(t, s.cli, id) != keep {
			t.Errorf("build%d present %v, want %v", build, !keep, keep)
		}
	}
	if t.Failed() {
		t.Logf("result: %+v", out.Result)
	}
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
	c, warn, err := imageclock.Open(r.dir, imageclock.EngineKey{ID: "private", RootDir: "/private"})
	if err != nil || warn != nil {
		r.t.Fatal(err, warn)
	}
	r.clock = c
	return c
}

// catchUp reads what the engine did since the clock's cursor, as the CLI
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

// Finding 2: an image seen long ago, removed by another hand and loaded
// again, kept its old arrival and went at once; and the agent did not
// forget the images it removed itself, so one the kubelet pulled again
// went on every sweep. A return is an arrival. (The timeline lies in the
// past: the containerd store stamps a load with the real time, a true
// proof of arrival that a simulated future would take for an old one.)
func TestFinding2ReturnIsAnArrival(t *testing.T) {
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

// Finding 3: a container that ran and was removed between two sweeps
// (docker run --rm, a Job's pod collected) is a use of its image, also
// when the process that keeps the clock was not running then.
func TestFinding2UseOfARemovedContainerCounts(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	r := newRestartable(t)
	spec := s.spec(s.ref("1"))
	hour := v1alpha1.Duration("1h")
	spec.MaxUnusedAge = &hour
	start := time.Now()

	r.catchUp(s.rt)
	s.sweepWith(s.rt, spec, start.Add(-3*time.Hour), cleanup.Options{Clock: r.clock, Policy: "p", PlanOnly: true})
	r.clock.Close() // the process is down while the container runs and goes
	c := testenv.CreateContainer(t, s.cli, id, testenv.ContainerOptions{Run: "exit"})
	testenv.RemoveContainer(t, s.cli, c)
	r.restart()
	r.catchUp(s.rt)
	out := s.sweepWith(s.rt, spec, start.Add(30*time.Minute), cleanup.Options{Clock: r.clock, Policy: "p"})
	if d := decisionFor(out.Result.Skipped, id); d == nil || d.Reason != plan.RecentlyUsed || !testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("an image used half an hour ago (container since removed) was not kept as RecentlyUsed: %+v", out.Result)
	}
}

// Finding 10: the process was killed after its sweep removed images and
// before it reported: nothing counted them. The next sweep does, once.
func TestFinding2RemovalsOfAKilledSweepAreCounted(t *testing.T) {
	s := newScenario(t)
	var ids []string
	for _, tag := range []string{"1", "2", "3"} {
		id := testenv.ImportImage(t, s.cli, s.ref(tag))
		testenv.CreateContainer(t, s.cli, id, testenv.ContainerOptions{Run: "exit"})
		ids = append(ids, id)
	}
	r := newRestartable(t)
	spec := s.spec(s.repo + "/app:*")
	out := s.sweepWith(s.rt, spec, time.Now(), cleanup.Options{Clock: r.clock, Policy: "p"})
	if len(out.Result.RemovedImages) != 3 {
		t.Fatalf("the first sweep: %+v", out.Result)
	}
	for _, id := range ids {
		if testenv.ImageExists(t, s.cli, id) {
			t.Fatalf("the first sweep left %s", id)
		}
	}
	// Killed before it reported (its begun removals were saved before the
	// first removal; a kill mid-sweep leaves the same file).
	r.restart()
	out = s.sweepWith(s.rt, spec, time.Now(), cleanup.Options{Clock: r.clock, Policy: "p"})
	if len(out.Recovered.Images) != 3 || len(out.Recovered.Containers) != 3 {
		t.Fatalf("the next sweep recovered %+v, want the 3 images and 3 containers the killed one removed", out.Recovered)
	}
	r.clock.Reported("p", time.Now())
	out = s.sweepWith(s.rt, spec, time.Now(), cleanup.Options{Clock: r.clock, Policy: "p"})
	if !out.Recovered.Empty() {
		t.Fatalf("counted twice: %+v", out.Recovered)
	}
}
