package cleanup_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine/enginefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
)

// Sweep on the fake engine: the orchestration without dockerd.

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const (
	imageA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	imageB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// fakeWithStoppedContainer: app:1 (tagged two days ago, so the engine proves
// its age) blocked by an exited container.
func fakeWithStoppedContainer() *enginefake.Engine {
	f := enginefake.New()
	old := t0.Add(-48 * time.Hour)
	f.AddImage(engine.Image{ID: imageA, RepoTags: []string{"app:1"}, LastTagTime: old, Size: 100})
	f.AddContainer(engine.Container{ID: "c1", Name: "job", ImageID: imageA, State: engine.StateExited, Created: old, FinishedAt: old})
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

func removals(f *enginefake.Engine) int {
	c := f.Calls()
	return c["ImageRemove"] + c["ContainerRemove"]
}

func TestSweepRemovesOnTheFake(t *testing.T) {
	f := fakeWithStoppedContainer()
	out, err := cleanup.Sweep(context.Background(), f, fakeSpec(), t0, cleanup.Options{})
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
		out, err := cleanup.Sweep(context.Background(), f, tc.spec, t0, tc.opts)
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
	f.AddContainer(engine.Container{ID: "c2", ImageID: imageA, State: engine.StateExited, Created: t0.Add(-48 * time.Hour)})
	f.BeforeCall = func(method, arg string) {
		if method == "ContainerInspect" && arg == "c2" {
			_ = f.RemoveContainer(context.Background(), "c2", false) // another hand
		}
	}
	out, err := cleanup.Sweep(context.Background(), f, fakeSpec(), t0, cleanup.Options{})
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
		if method == "ContainerInspect" {
			f.SetDown(true)
		}
	}
	_, err := cleanup.Sweep(context.Background(), f, fakeSpec(), t0, cleanup.Options{})
	if err == nil || !strings.Contains(err.Error(), "inspect ") {
		t.Fatalf("err = %v", err)
	}
	f.SetDown(false)
	if removals(f) != 0 {
		t.Fatalf("removals after a failed inspection: %v", f.Calls())
	}
}

// An image the engine cannot date (pulled: no LastTagTime) is as young as
// its first sighting by the clock.
func TestClockHoldsBackAPulledImage(t *testing.T) {
	f := enginefake.New()
	f.AddImage(engine.Image{ID: imageB, RepoTags: []string{"app:2"}, Created: t0.AddDate(-2, 0, 0)})
	clock := imageclock.InMemory()
	spec := fakeSpec(func(s *v1alpha1.ImageCleanupPolicySpec) { d := v1alpha1.Duration("1h"); s.MinImageAge = &d })
	if _, err := cleanup.Sweep(context.Background(), f, spec, t0, cleanup.Options{Clock: clock}); err != nil {
		t.Fatal(err)
	}
	if !f.HasImage(imageB) {
		t.Fatal("an image first seen now was removed")
	}
	if _, err := cleanup.Sweep(context.Background(), f, spec, t0.Add(61*time.Minute), cleanup.Options{Clock: clock}); err != nil {
		t.Fatal(err)
	}
	if f.HasImage(imageB) {
		t.Fatal("an hour after its first sighting the image should go")
	}
}

// An engine that is down fails the sweep with its reason.
func TestEngineDownFailsTheSweep(t *testing.T) {
	f := fakeWithStoppedContainer()
	f.SetDown(true)
	_, err := cleanup.Sweep(context.Background(), f, fakeSpec(), t0, cleanup.Options{})
	if err == nil || errors.Is(err, cleanup.ErrInvalidPolicy) || !strings.Contains(err.Error(), "list images") {
		t.Fatalf("err = %v", err)
	}
}
