package plan_test

import (
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// The planner's rules for exclusions, prunes, ordering and the clock's
// guards across parents and children; each has a real-runtime twin in
// internal/cleanup.

func makePlan(t *testing.T, s v1alpha1.ImageCleanupPolicySpec, protected []string, images []runtime.Image) plan.Plan {
	t.Helper()
	opts, err := plan.OptionsFor(&s, protected, runtimefake.Docker.Capabilities)
	if err != nil {
		t.Fatal(err)
	}
	inv := runtime.Inventory{Images: images}
	return plan.Make(&inv, &opts, now)
}

func wantPlan(t *testing.T, p plan.Plan, want ...string) {
	t.Helper()
	if got := summary(p); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// An exclusion by repository covers an image through any of its
// references, a digest reference in another repository than the selected
// tag included: the image stays whole.
func TestExclusionCoversEveryReference(t *testing.T) {
	both := img("both", "ci.local/app:pr-7")
	both.RepoDigests = []string{"registry.example/prod/app@sha256:" + strings.Repeat("a", 64)}
	for _, exclude := range []string{"registry.example/prod/**", "registry.example/prod/app:*", "registry.example/*/app"} {
		s := with(spec("ci.local/**"), func(s *v1alpha1.ImageCleanupPolicySpec) {
			s.Exclude = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(exclude)}
		})
		wantPlan(t, makePlan(t, s, nil, []runtime.Image{both}), "skipped ci.local/app:pr-7 Excluded")
	}
	// A tag-specific exclusion names a tag, not the repository's digests.
	s := with(spec("ci.local/**"), func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Exclude = []v1alpha1.ImagePattern{"registry.example/prod/app:v1"}
	})
	wantPlan(t, makePlan(t, s, nil, []runtime.Image{both}),
		"remove ci.local/app:pr-7 refs=ci.local/app:pr-7,registry.example/prod/app@sha256:"+strings.Repeat("a", 64)+" delete")
}

// The runtime prunes an untagged parent with its last child; the
// planner allows that only when it may remove the parent too, and says which.
func TestPruneOnlyWhatThePolicyMayRemove(t *testing.T) {
	intermediate := img("intermediate")
	child := img("child", "app:child")
	child.ParentID = intermediate.ID
	byID := "sha256:" + strings.TrimPrefix(intermediate.ID, "sha256:")[:12]

	p := makePlan(t, spec("app:*"), nil, []runtime.Image{intermediate, child})
	if len(p.Actions) != 1 || len(p.Actions[0].PruneParents) != 1 {
		t.Fatalf("an unprotected intermediate goes with its child, as the engine prunes it: %+v", p.Actions)
	}
	excluded := with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Exclude = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(byID)}
	})
	for name, p := range map[string]plan.Plan{
		"excluded by ID":  makePlan(t, excluded, nil, []runtime.Image{intermediate, child}),
		"protected by ID": makePlan(t, spec("app:*"), []string{byID}, []runtime.Image{intermediate, child}),
	} {
		if len(p.Actions) != 1 || len(p.Actions[0].PruneParents) > 0 {
			t.Fatalf("%s: the child goes without pruning its parent: %+v", name, p.Actions)
		}
	}
	// A tagged grandparent then waits for the parent that stays.
	grandparent := img("grandparent", "app:base")
	intermediate.ParentID = grandparent.ID
	wantPlan(t, makePlan(t, excluded, nil, []runtime.Image{grandparent, intermediate, child}),
		"remove app:child refs=app:child delete", "blocked app:base DependentChildren")
}

// Least recently used first across parents and children: a
// parent's children go right before it, not every child before any parent.
func TestLeastRecentlyUsedAcrossWaves(t *testing.T) {
	base := img("base", "app:base")
	base.LastUsed = now.Add(-30 * 24 * time.Hour)
	child := img("child", "app:child")
	child.ParentID = base.ID
	child.LastUsed = now.Add(-time.Hour)
	standalone := img("standalone", "other:1")
	standalone.LastUsed = now.Add(-10 * 24 * time.Hour)
	s := with(spec("**"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.Order = v1alpha1.OrderLeastRecentlyUsed })
	wantPlan(t, makePlan(t, s, nil, []runtime.Image{base, child, standalone}),
		"remove app:child refs=app:child delete", "remove app:base refs=app:base delete", "remove other:1 refs=other:1 delete")
}

// KeepNewest keeps the newest builds, by build date, whatever
// order they arrived in: the clock meets every image present at install
// time together, and pulls between two sweeps arrive together too.
func TestKeepNewestByBuild(t *testing.T) {
	var images []runtime.Image
	arrived := now.Add(-48 * time.Hour) // all at once, as at install
	for i, build := range []int{3, 8, 1, 7, 2, 6, 4, 5} {
		im := img(string(rune('a'+i)), "app:build"+string(rune('0'+build)))
		im.Created = now.Add(-time.Duration(100-build) * time.Hour)
		im.Arrived = arrived
		images = append(images, im)
	}
	s := with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.KeepNewest = 2 })
	p := makePlan(t, s, nil, images)
	var kept []string
	for _, d := range p.Skipped {
		if d.Reason == plan.KeptNewest {
			kept = append(kept, d.Image)
		}
	}
	if strings.Join(kept, ",") != "app:build7,app:build8" {
		t.Fatalf("keepNewest 2 kept %v, want the two newest builds (7 and 8)", kept)
	}

	// Builds of the same date: the later arrival is the newer.
	for i := range images {
		images[i].Created = now.Add(-1000 * time.Hour)
		images[i].Arrived = now.Add(-time.Duration(100-i) * time.Hour)
	}
	p = makePlan(t, s, nil, images)
	kept = nil
	for _, d := range p.Skipped {
		if d.Reason == plan.KeptNewest {
			kept = append(kept, d.Image)
		}
	}
	if strings.Join(kept, ",") != "app:build4,app:build5" {
		t.Fatalf("with equal build dates keepNewest kept %v, want the last two to arrive (builds 4 and 5)", kept)
	}
}

// Found by the model test (TestAgentLife): a dangling child was removed and
// the runtime pruned its untagged parent with it, though a container had
// run the parent a second before and the policy said maxUnusedAge: the
// parent's own guards now hold the prune back.
func TestPruneHonoursTheParentsGuards(t *testing.T) {
	parent := img("parent")
	child := img("child")
	child.ParentID = parent.ID
	s := with(spec("**"), func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Dangling = true
		s.MaxUnusedAge = dur("1h")
	})
	parent.LastUsed = now.Add(-time.Second)
	p := makePlan(t, s, nil, []runtime.Image{parent, child})
	if len(p.Actions) != 1 || len(p.Actions[0].PruneParents) != 0 {
		t.Fatalf("a parent used a second ago may be pruned: %+v", p.Actions)
	}
	parent.LastUsed = now.Add(-2 * time.Hour)
	young := with(s, func(s *v1alpha1.ImageCleanupPolicySpec) { s.MinImageAge = dur("24h") })
	parent.Arrived = now.Add(-time.Hour)
	child.Arrived = now.Add(-48 * time.Hour)
	if p := makePlan(t, young, nil, []runtime.Image{parent, child}); len(p.Actions) != 1 || len(p.Actions[0].PruneParents) != 0 {
		t.Fatalf("a parent that arrived an hour ago may be pruned under minImageAge 24h: %+v", p.Actions)
	}
}

// No runtime makes a parent of its own descendant, but the fake runtime of
// the model test once did (an image that left and came back drew a child
// of its own as parent), and the walk up the untagged parents then never
// ended. The planner stops at a cycle.
func TestAParentCycleEnds(t *testing.T) {
	a, b, c := img("a"), img("b"), img("c", "app:c")
	a.ParentID, b.ParentID, c.ParentID = b.ID, a.ID, a.ID
	done := make(chan plan.Plan, 1)
	go func() { done <- makePlan(t, spec("**"), nil, []runtime.Image{a, b, c}) }()
	select {
	case p := <-done:
		if len(p.Actions) != 1 || p.Actions[0].ImageID != c.ID {
			t.Fatalf("want the tagged child's action only: %+v; blocked %+v; skipped %+v", p.Actions, p.Blocked, p.Skipped)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the plan of a parent cycle does not end")
	}
}

// A use stamped later than the plan's time (the runtime's clock ahead of
// the agent's, or of the CLI's when it drives a remote runtime) is a use
// now: it used to fall back to the arrival, so an image that ran a moment
// ago, but had arrived long ago, went under maxUnusedAge; and it sorted
// first in least-recently-used order.
func TestAUseAheadOfThePlansClockIsAUseNow(t *testing.T) {
	ahead := img("ahead", "app:ahead")
	ahead.Arrived = now.Add(-30 * 24 * time.Hour)
	ahead.LastUsed = now.Add(10 * time.Minute)
	idle := img("idle", "app:idle")
	idle.Arrived = now.Add(-20 * 24 * time.Hour)
	unused := with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.MaxUnusedAge = dur("1h") })
	p := makePlan(t, unused, nil, []runtime.Image{ahead, idle})
	if len(p.Actions) != 1 || p.Actions[0].ImageID != idle.ID || len(p.Skipped) != 1 || p.Skipped[0].Reason != plan.RecentlyUsed {
		t.Fatalf("an image used after the plan's time may go under maxUnusedAge: actions %+v, skipped %+v", p.Actions, p.Skipped)
	}
	lru := with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Order, s.MaxImagesPerSweep = v1alpha1.OrderLeastRecentlyUsed, 1
	})
	if p := makePlan(t, lru, nil, []runtime.Image{ahead, idle}); len(p.Actions) != 1 || p.Actions[0].ImageID != idle.ID {
		t.Fatalf("an image used after the plan's time comes first in least-recently-used order: %+v", p.Actions)
	}
	parent := img("parent")
	parent.Arrived, parent.LastUsed = now.Add(-30*24*time.Hour), now.Add(time.Minute)
	child := img("child")
	child.ParentID = parent.ID
	dangling := with(unused, func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Images, s.Dangling = []v1alpha1.ImagePattern{"none:*"}, true
	})
	if p := makePlan(t, dangling, nil, []runtime.Image{parent, child}); len(p.Actions) != 1 || len(p.Actions[0].PruneParents) != 0 {
		t.Fatalf("a parent used after the plan's time may be pruned: %+v", p.Actions)
	}
}
