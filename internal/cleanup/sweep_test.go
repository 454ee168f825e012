package cleanup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// Sweep on the fake runtime: the orchestration without dockerd.

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const (
	imageA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	imageB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// fakeWithStoppedContainer: app:1 (tagged two days ago, so the runtime proves
// its age) blocked by an exited container.
func fakeWithStoppedContainer() *runtimefake.Runtime {
	f := runtimefake.New()
	old := t0.Add(-48 * time.Hour)
	f.AddImage(runtime.Image{ID: imageA, RepoTags: []string{"app:1"}, LastTagTime: old, Size: 100})
	f.AddContainer(runtime.Container{ID: "c1", Name: "job", ImageID: imageA, State: runtime.StateExited, Created: old, FinishedAt: old})
	return f
}

func fakeSpec(mutate ...func(*v1alpha1.ImageCleanupPolicySpec)) *v1alpha1.ImageCleanupPolicySpec {
	p := v1alpha1.ImageCleanupPolicy{Spec: v1alpha1.ImageCleanupPolicySpec{Images: []v1alpha1.ImagePattern{"app:*"}}}
	policyschema.Default(&p)
	for _, m := range mutate {
		m(&p.Spec)
	}
	return &p.Spec
}

func removals(f *runtimefake.Runtime) int {
	c := f.Calls()
	return c["RemoveImage"] + c["RemoveContainer"]
}

func TestSweepRemovesOnTheFake(t *testing.T) {
	f := fakeWithStoppedContainer()
	out, err := cleanup.NewSweep(f, fakeSpec(), t0, cleanup.Options{}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.HasImage(imageA) || f.HasContainer("c1") || len(out.Result.RemovedImages) != 1 || len(out.Result.RemovedContainers) != 1 {
		t.Fatalf("result %+v", out.Result)
	}
}

// A dry run and a plan-only sweep make the same plan and call no removal.
func TestDryRunAndPlanOnlyRemoveNothing(t *testing.T) {
	for name, tc := range map[string]struct {
		spec *v1alpha1.ImageCleanupPolicySpec
		opts cleanup.Options
	}{
		"dryRun":   {fakeSpec(func(s *v1alpha1.ImageCleanupPolicySpec) { s.DryRun = true }), cleanup.Options{}},
		"planOnly": {fakeSpec(), cleanup.Options{PlanOnly: true}},
	} {
		f := fakeWithStoppedContainer()
		out, err := cleanup.NewSweep(f, tc.spec, t0, tc.opts).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if removals(f) != 0 || !f.HasImage(imageA) {
			t.Errorf("%s removed something: %v", name, f.Calls())
		}
		if !out.Result.DryRun || len(out.Plan.Actions) != 1 || len(out.Result.RemovedImages) != 1 {
			t.Errorf("%s: the result does not show the plan: %+v", name, out.Result)
		}
	}
}

// A container that vanishes between the list and its inspection is dropped
// from the inventory, not an error.
func TestContainerVanishingBeforeInspect(t *testing.T) {
	f := fakeWithStoppedContainer()
	f.AddContainer(runtime.Container{ID: "c2", ImageID: imageA, State: runtime.StateExited, Created: t0.Add(-48 * time.Hour)})
	f.BeforeCall = func(method, arg string) {
		if method == "ContainerFinishedAt" && arg == "c2" {
			_ = f.RemoveContainer(context.Background(), "c2", false) // another hand
		}
	}
	out, err := cleanup.NewSweep(f, fakeSpec(), t0, cleanup.Options{}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.HasImage(imageA) || len(out.Result.RemovedContainers) != 1 {
		t.Fatalf("result %+v", out.Result)
	}
}

// Any other inspection error ends the sweep before it removes anything.
func TestInspectErrorFailsTheSweep(t *testing.T) {
	f := fakeWithStoppedContainer()
	f.BeforeCall = func(method, _ string) {
		if method == "ContainerFinishedAt" {
			f.SetDown(true)
		}
	}
	_, err := cleanup.NewSweep(f, fakeSpec(), t0, cleanup.Options{}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "inspect ") {
		t.Fatalf("err = %v", err)
	}
	f.SetDown(false)
	if removals(f) != 0 {
		t.Fatalf("removals after a failed inspection: %v", f.Calls())
	}
}

// An image the runtime cannot date (pulled: no LastTagTime) is as young as
// its first sighting by the clock.
func TestClockHoldsBackAPulledImage(t *testing.T) {
	f := runtimefake.New()
	f.AddImage(runtime.Image{ID: imageB, RepoTags: []string{"app:2"}, Created: t0.AddDate(-2, 0, 0)})
	clock := imageclock.InMemory()
	spec := fakeSpec(func(s *v1alpha1.ImageCleanupPolicySpec) { d := v1alpha1.Duration("1h"); s.MinImageAge = &d })
	if _, err := cleanup.NewSweep(f, spec, t0, cleanup.Options{Clock: clock}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.HasImage(imageB) {
		t.Fatal("an image first seen now was removed")
	}
	if _, err := cleanup.NewSweep(f, spec, t0.Add(61*time.Minute), cleanup.Options{Clock: clock}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.HasImage(imageB) {
		t.Fatal("an hour after its first sighting the image should go")
	}
}

// A runtime that is down fails the sweep with its reason.
func TestRuntimeDownFailsTheSweep(t *testing.T) {
	f := fakeWithStoppedContainer()
	f.SetDown(true)
	_, err := cleanup.NewSweep(f, fakeSpec(), t0, cleanup.Options{}).Run(context.Background())
	if !errors.Is(err, cleanup.ErrRuntime) || !strings.Contains(err.Error(), "the runtime is down") {
		t.Fatalf("err = %v", err)
	}
}

// fakeDisk fills the fake runtime's disk by 10 % an image, over a 40 % base.
func fakeDisk(f *runtimefake.Runtime, ids []string) func() (disk.Usage, error) {
	return func() (disk.Usage, error) {
		n := 0
		for _, id := range ids {
			if f.HasImage(id) {
				n++
			}
		}
		return disk.Usage{UsedPercent: float64(40 + 10*n), UsedBytes: uint64(n) << 20}, nil
	}
}

// fakeWithUses: five images, app:0 used longest ago ... app:4 most lately
// (each by a stopped container created then).
func fakeWithUses() (*runtimefake.Runtime, []string) {
	f := runtimefake.New()
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("sha256:%064x", i+1)
		ids = append(ids, id)
		tagged := t0.Add(-30 * 24 * time.Hour)
		f.AddImage(runtime.Image{ID: id, RepoTags: []string{fmt.Sprintf("app:%d", i)}, LastTagTime: tagged})
		f.AddContainer(runtime.Container{ID: fmt.Sprintf("c%d", i), ImageID: id, State: runtime.StateExited,
			Created: t0.Add(-time.Duration(10-i) * 24 * time.Hour), FinishedAt: t0.Add(-time.Duration(10-i) * 24 * time.Hour)})
	}
	return f, ids
}

func diskSpec(mutate ...func(*v1alpha1.ImageCleanupPolicySpec)) *v1alpha1.ImageCleanupPolicySpec {
	return fakeSpec(append([]func(*v1alpha1.ImageCleanupPolicySpec){func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.DiskUsage = &v1alpha1.DiskUsage{HighPercent: 85, LowPercent: 70}
	}}, mutate...)...)
}

// Above the high watermark, candidates go least recently used first, and
// the sweep stops as soon as usage is under the low one.
func TestDiskPressureRemovesLeastRecentlyUsedUntilLow(t *testing.T) {
	f, ids := fakeWithUses()
	out, err := cleanup.NewSweep(f, diskSpec(), t0, cleanup.Options{Disk: fakeDisk(f, ids)}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if want := i >= 3; f.HasImage(id) != want {
			t.Errorf("app:%d present %v, want %v (least recently used go first, three of them)", i, f.HasImage(id), want)
		}
	}
	if out.Disk == nil || out.Disk.Pressure != "space" || out.Disk.Before.UsedPercent != 90 || out.Disk.After.UsedPercent != 60 {
		t.Fatalf("disk report %+v", out.Disk)
	}
	if out.Result.BytesReclaimed != 3<<20 {
		t.Fatalf("bytes reclaimed %d, want what the disk shows (3 MiB)", out.Result.BytesReclaimed)
	}
	if len(out.Result.Skipped) != 2 || out.Result.Skipped[0].Reason != plan.BelowLowWatermark {
		t.Fatalf("skipped %+v", out.Result.Skipped)
	}
}

// Under the high watermark: nothing goes, unless unused for maxUnusedAge.
func TestUnderTheWatermark(t *testing.T) {
	f, ids := fakeWithUses()
	f.AddImage(runtime.Image{ID: "sha256:" + strings.Repeat("f", 64), RepoTags: []string{"app:extra"}, LastTagTime: t0.Add(-time.Hour)})
	measure := func() (disk.Usage, error) { return disk.Usage{UsedPercent: 50}, nil }
	if _, err := cleanup.NewSweep(f, diskSpec(), t0, cleanup.Options{Disk: measure}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if removals(f) != 0 {
		t.Fatalf("under the watermark something went: %v", f.Calls())
	}
	spec := diskSpec(func(s *v1alpha1.ImageCleanupPolicySpec) { d := v1alpha1.Duration("192h"); s.MaxUnusedAge = &d })
	if _, err := cleanup.NewSweep(f, spec, t0, cleanup.Options{Disk: measure}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if want := i >= 3; f.HasImage(id) != want { // app:0..2 were last used 10, 9 and 8 days ago
			t.Errorf("app:%d present %v, want %v", i, f.HasImage(id), want)
		}
	}
}

// A policy with diskUsage and no way to measure the disk fails clearly and
// removes nothing.
func TestDiskUsageNeedsADataRoot(t *testing.T) {
	f, _ := fakeWithUses()
	_, err := cleanup.NewSweep(f, diskSpec(), t0, cleanup.Options{}).Run(context.Background())
	if !errors.Is(err, cleanup.ErrNoDataRoot) || removals(f) != 0 {
		t.Fatalf("err = %v, calls %v", err, f.Calls())
	}
}

// A disk that cannot be measured after the sweep
// is said so, not shown as unchanged.
func TestDiskUnmeasuredAfterTheSweep(t *testing.T) {
	calls := 0
	counting := func(measure func() (disk.Usage, error)) func() (disk.Usage, error) {
		return func() (disk.Usage, error) { calls++; return measure() }
	}
	f, ids := fakeWithUses()
	if _, err := cleanup.NewSweep(f, diskSpec(), t0, cleanup.Options{Disk: counting(fakeDisk(f, ids))}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := calls // the measure after the sweep is the last one

	f, ids = fakeWithUses()
	calls = 0
	measure := fakeDisk(f, ids)
	failing := func() (disk.Usage, error) {
		if calls++; calls == last {
			return disk.Usage{}, errors.New("statfs: input/output error")
		}
		return measure()
	}
	out, err := cleanup.NewSweep(f, diskSpec(), t0, cleanup.Options{Disk: failing}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.Disk == nil || out.Disk.AfterErr == nil || !strings.Contains(out.Disk.AfterErr.Error(), "input/output error") {
		t.Fatalf("disk report %+v: the failed measure after the sweep is not said", out.Disk)
	}
}

// A field the runtime cannot honour is said, never silently different:
// removeVolumes and force on the CRI; nothing on Docker.
func TestUnhonouredFieldsAreSaid(t *testing.T) {
	spec := fakeSpec(func(s *v1alpha1.ImageCleanupPolicySpec) { s.Force, s.StoppedContainers.RemoveVolumes = true, true })
	for _, runtime := range []struct {
		cri  bool
		want []string
	}{{false, nil}, {true, []string{"force is not honoured", "stoppedContainers.removeVolumes has no effect"}}} {
		f := fakeWithStoppedContainer()
		if runtime.cri {
			f.Rules = runtimefake.CRI
		}
		out, err := cleanup.NewSweep(f, spec, t0, cleanup.Options{}).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Unhonoured) != len(runtime.want) {
			t.Fatalf("CRI %v: %q, want %q", runtime.cri, out.Unhonoured, runtime.want)
		}
		for i, w := range runtime.want {
			if !strings.HasPrefix(out.Unhonoured[i], w) {
				t.Fatalf("CRI %v: %q, want %q", runtime.cri, out.Unhonoured, runtime.want)
			}
		}
		if f.HasImage(imageA) {
			t.Fatalf("CRI %v: the image of a container the policy removes stayed", runtime.cri)
		}
	}
}

// What the agent's image clock learns while a sweep runs (its event
// follower applies the runtime's events as they come) is read again just
// before the image's removal (docs/policy.md, invariants 5 and 6): an
// image used or back since the plan keeps its guards; one the clock lost
// sight of (it left; its return is not applied yet) counts as arrived now.
func TestWhatTheClockLearnsMidSweepKeepsTheImage(t *testing.T) {
	for name, tc := range map[string]struct {
		learn  func(c *imageclock.Clock)
		reason plan.Reason // "": removed
	}{
		"nothing":                    {learn: func(*imageclock.Clock) {}},
		"used":                       {learn: func(c *imageclock.Clock) { c.ImageUsed(imageA, t0) }, reason: plan.RecentlyUsed},
		"used long ago":              {learn: func(c *imageclock.Clock) { c.ImageUsed(imageA, t0.Add(-2*time.Hour)) }},
		"left and came back":         {learn: func(c *imageclock.Clock) { c.ImageGone(imageA); c.ImageArrived(imageA, t0) }, reason: plan.TooYoung},
		"left, return not heard yet": {learn: func(c *imageclock.Clock) { c.ImageGone(imageA) }, reason: plan.TooYoung},
	} {
		t.Run(name, func(t *testing.T) {
			f := fakeWithStoppedContainer()
			clock := imageclock.InMemory()
			f.BeforeCall = func(method, arg string) {
				if method == "RemoveContainer" {
					tc.learn(clock) // after the plan, before the image's re-check
				}
			}
			spec := fakeSpec(func(s *v1alpha1.ImageCleanupPolicySpec) { s.MaxUnusedAge = ptr(v1alpha1.Duration("1h")) })
			out, err := cleanup.NewSweep(f, spec, t0, cleanup.Options{Clock: clock}).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if f.HasContainer("c1") {
				t.Fatal("the stopped container, removed before the clock learned anything, is still there")
			}
			if tc.reason == "" {
				if f.HasImage(imageA) || len(out.Result.RemovedImages) != 1 {
					t.Fatalf("want the image removed: %+v", out.Result)
				}
				return
			}
			if !f.HasImage(imageA) || len(out.Result.Skipped) != 1 || out.Result.Skipped[0].Reason != tc.reason ||
				!strings.Contains(out.Result.Skipped[0].Message, "since the plan") {
				t.Fatalf("want the image kept, skipped %s: %+v", tc.reason, out.Result)
			}
		})
	}
}

// The sweep's own removals are no use of the image: the agent's follower
// hears of each stopped container the sweep removes (a destroy event)
// before the image's re-check, and reading it as a use kept every image
// that had stopped containers under maxUnusedAge, sweep after sweep.
func TestTheSweepsOwnRemovalsAreNoUse(t *testing.T) {
	f := runtimefake.New()
	old := t0.Add(-48 * time.Hour)
	runtimeNow := old
	f.Now = func() time.Time { return runtimeNow }
	f.AddImage(runtime.Image{ID: imageA, RepoTags: []string{"app:1"}, LastTagTime: old, Size: 100})
	f.AddContainer(runtime.Container{ID: "c1", Name: "job", ImageID: imageA, State: runtime.StateExited, Created: old, FinishedAt: old})
	clock := imageclock.InMemory()
	if err := clock.CatchUp(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	runtimeNow = t0
	f.BeforeCall = func(method, _ string) {
		if method == "InspectImage" || method == "RemoveImage" {
			// The follower, running alongside, has applied what came.
			if err := clock.CatchUp(context.Background(), f); err != nil {
				t.Error(err)
			}
		}
	}
	spec := fakeSpec(func(s *v1alpha1.ImageCleanupPolicySpec) { s.MaxUnusedAge = ptr(v1alpha1.Duration("1h")) })
	out, err := cleanup.NewSweep(f, spec, t0, cleanup.Options{Clock: clock}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.HasImage(imageA) || f.HasContainer("c1") {
		t.Fatalf("want the container and the image removed: %+v", out.Result)
	}
}

// A sweep that counted what earlier sweeps' records hold, and then failed
// (here: the disk cannot be measured), still returns what it counted: its
// report, which drops those records, must say it.
func TestASweepThatFailsAfterItsHarvestReturnsIt(t *testing.T) {
	f := fakeWithStoppedContainer()
	clock := imageclock.InMemory()
	inv, err := cleanup.Collect(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	clock.Observe(&inv, t0)
	clock.Journal().Begin("p", t0, []imageclock.Removal{{ImageID: imageA, Image: "app:1", Refs: []string{"app:1"}}})
	f.RemoveImageByHand(imageA) // the killed sweep's removal went through
	spec := fakeSpec(func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.DiskUsage = &v1alpha1.DiskUsage{HighPercent: 80, LowPercent: 60}
	})
	broken := func() (disk.Usage, error) { return disk.Usage{}, errors.New("statfs: input/output error") }
	out, err := cleanup.NewSweep(f, spec, t0.Add(time.Minute), cleanup.Options{Policy: "p", Clock: clock, Disk: broken}).Run(context.Background())
	if !errors.Is(err, cleanup.ErrDisk) {
		t.Fatalf("err %v, want the disk's", err)
	}
	if !out.Harvested || len(out.Recovered.Images) != 1 {
		t.Fatalf("the failed sweep lost what it counted: harvested %v, recovered %+v", out.Harvested, out.Recovered)
	}
}

// A sweep is known in the journal, and by its report's countedThrough, by
// an instant after the last reported sweep's, whatever the clock says:
// records up to a report's mark are the ones it told, so a sweep begun at
// the same microsecond, or after the clock was set back, must not have its
// removals taken as told. Ages are still measured from now.
func TestEachSweepIsMarkedAfterTheLastReportedOne(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 123456789, time.UTC)
	us := time.Microsecond
	for name, c := range map[string]struct{ reported, want time.Time }{
		"no report":             {time.Time{}, now.Truncate(us)},
		"an earlier report":     {now.Add(-time.Hour).Truncate(us), now.Truncate(us)},
		"the same microsecond":  {now.Truncate(us), now.Truncate(us).Add(us)},
		"a clock set back 30 s": {now.Add(30 * time.Second).Truncate(us), now.Add(30 * time.Second).Truncate(us).Add(us)},
	} {
		spec := policySpec(t, nil, "**")
		out, err := cleanup.NewSweep(runtimefake.New(), &spec, now, cleanup.Options{ReportedThrough: c.reported}).Run(context.Background())
		if err != nil || !out.Mark.Equal(c.want) {
			t.Errorf("%s: marked %s (%v), want %s", name, out.Mark, err, c.want)
		}
	}
	// A sweep begun after the clock was set back, killed before its report:
	// the next sweep counts what it removed.
	rt := runtimefake.New()
	rt.AddImage(runtime.Image{ID: imageA, RepoTags: []string{"ci.local/app:1"}})
	clock := imageclock.InMemory()
	reported := now.Add(30 * time.Second).Truncate(us)
	spec := policySpec(t, nil, "ci.local/app:*")
	opts := cleanup.Options{Policy: "p", Clock: clock, ReportedThrough: reported}
	if out, err := cleanup.NewSweep(rt, &spec, now, opts).Run(context.Background()); err != nil || len(out.Result.RemovedImages) != 1 {
		t.Fatalf("the killed sweep: %+v, %v", out.Result, err)
	} // no Commit: killed before its report
	next, err := cleanup.NewSweep(rt, &spec, now.Add(time.Minute), opts).Run(context.Background())
	if err != nil || len(next.Recovered.Images) != 1 {
		t.Fatalf("a removal begun after the clock was set back was taken as reported: %+v, %v", next.Recovered, err)
	}
}

// An image a sweep removed that the node pulls again within a day is the
// policy's return, told by its next sweep with its size and how long it
// was gone; another policy's sweep does not count it.
func TestASweepsRemovalThatComesBackIsReturned(t *testing.T) {
	f := fakeWithStoppedContainer()
	clock := imageclock.InMemory()
	sweep := func(policy string, at time.Time) cleanup.Outcome {
		t.Helper()
		out, err := cleanup.NewSweep(f, fakeSpec(func(s *v1alpha1.ImageCleanupPolicySpec) { s.MinImageAge = ptr(v1alpha1.Duration("0s")) }), at,
			cleanup.Options{Policy: policy, Clock: clock}).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := sweep("p", t0); f.HasImage(imageA) || len(out.Returned) != 0 {
		t.Fatalf("the first sweep: image still there %v, returned %+v", f.HasImage(imageA), out.Returned)
	}
	clock.ImageLeft(imageA, t0.Add(time.Minute))                                  // the agent's follower: the runtime tells of the removal
	f.AddImage(runtime.Image{ID: imageA, RepoTags: []string{"app:1"}, Size: 100}) // pulled again
	if out := sweep("other", t0.Add(2*time.Hour)); len(out.Returned) != 0 {
		t.Fatalf("another policy's sweep counts the return: %+v", out.Returned)
	}
	out := sweep("p", t0.Add(3*time.Hour))
	if len(out.Returned) != 1 || out.Returned[0].ImageID != imageA || out.Returned[0].Image != "app:1" || out.Returned[0].Bytes != 100 ||
		!out.Returned[0].Returned.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("the next sweep of the policy: returned %+v; want app:1, back at the listing 2h after its removal", out.Returned)
	}
}
