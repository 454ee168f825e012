package apply_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

const (
	imageA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	imageB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func runtimeWith(images []runtime.Image, containers []runtime.Container) *runtimefake.Runtime {
	f := runtimefake.New()
	for _, i := range images {
		f.AddImage(i)
	}
	for _, c := range containers {
		f.AddContainer(c)
	}
	return f
}

func deleteA(containers ...string) *plan.Plan {
	a := plan.Action{ImageID: imageA, Image: "app:1", Refs: []string{"app:1"}, Delete: true, Size: 100}
	for _, c := range containers {
		a.Containers = append(a.Containers, plan.ContainerRef{ID: c, Name: c})
	}
	return &plan.Plan{Actions: []plan.Action{a}}
}

func TestRunRemovesContainersThenImage(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]runtime.Container{{ID: "c1", ImageID: imageA, State: runtime.StateExited}})
	r := apply.Run(context.Background(), f, deleteA("c1"), apply.Options{})
	if f.HasImage(imageA) || f.HasContainer("c1") {
		t.Fatal("image or container still there")
	}
	if len(r.RemovedImages) != 1 || !r.RemovedImages[0].Deleted || r.BytesReclaimed != 100 || len(r.RemovedContainers) != 1 {
		t.Fatalf("result %+v", r)
	}
	if len(r.Blocked)+len(r.Failed) > 0 {
		t.Fatalf("result %+v", r)
	}
}

// A container that starts between plan and apply: the runtime refuses to
// remove it, and the image stays. Blocked, not an error.
func TestRunContainerStartedMeanwhile(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]runtime.Container{{ID: "c1", ImageID: imageA, State: runtime.StateExited}})
	f.BeforeCall = func(method, arg string) {
		if method == "RemoveContainer" {
			f.SetState("c1", runtime.StateRunning)
		}
	}
	r := apply.Run(context.Background(), f, deleteA("c1"), apply.Options{})
	if !f.HasImage(imageA) || !f.HasContainer("c1") {
		t.Fatal("something was removed")
	}
	if len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.RunningContainer || len(r.Failed) != 0 || len(r.RemovedImages) != 0 {
		t.Fatalf("result %+v", r)
	}
}

// A forced removal looks again for running containers just before: with
// force the runtime would untag the image of a running container.
func TestRunForceRechecksRunningContainers(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]runtime.Container{{ID: "kept", ImageID: imageA, State: runtime.StateExited}})
	p := deleteA()
	p.Actions[0].Force, p.Actions[0].Kept = true, []string{"kept"}
	f.BeforeCall = func(method, arg string) {
		if method == "ContainersUsing" {
			f.SetState("kept", runtime.StateRunning)
		}
	}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if got := f.Tags(imageA); len(got) != 1 {
		t.Fatalf("tags now %v: the image of a running container was untagged", got)
	}
	if len(r.Blocked) != 1 || !strings.Contains(r.Blocked[0].Message, "running") {
		t.Fatalf("result %+v", r)
	}
}

func TestRunForceRemovesImageOfStoppedContainer(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]runtime.Container{{ID: "kept", ImageID: imageA, State: runtime.StateExited}})
	p := deleteA()
	p.Actions[0].Force, p.Actions[0].Kept = true, []string{"kept"}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if f.HasImage(imageA) || !f.HasContainer("kept") {
		t.Fatal("want the image gone and the kept container still there")
	}
	if len(r.RemovedImages) != 1 || !r.RemovedImages[0].Forced {
		t.Fatalf("result %+v", r)
	}
	if calls := f.Calls(); calls["RemoveImage"] != 1 || calls["RemoveContainer"] != 0 {
		t.Fatalf("calls %v", calls)
	}
}

func TestRunNotFoundIsDone(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}}, nil)
	r := apply.Run(context.Background(), f, deleteA("gone-already"), apply.Options{})
	if f.HasImage(imageA) || len(r.Failed)+len(r.Blocked) > 0 {
		t.Fatalf("result %+v", r)
	}
	r = apply.Run(context.Background(), f, deleteA(), apply.Options{})
	if len(r.Failed)+len(r.Blocked)+len(r.RemovedImages) > 0 {
		t.Fatalf("a second run over a gone image: %+v", r)
	}
}

// A child image built between plan and apply keeps its parent: the runtime
// only untags the last tag then; reported as removed tags, not deleted.
func TestRunChildBuiltMeanwhile(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}}, nil)
	f.BeforeCall = func(method, arg string) {
		if method == "RemoveImage" && !f.HasImage(imageB) {
			f.AddImage(runtime.Image{ID: imageB, RepoTags: []string{"child:1"}, ParentID: imageA})
		}
	}
	r := apply.Run(context.Background(), f, deleteA(), apply.Options{})
	if !f.HasImage(imageA) || len(r.RemovedImages) != 1 || r.RemovedImages[0].Deleted || r.BytesReclaimed != 0 {
		t.Fatalf("result %+v", r)
	}
}

func TestRunFailsWhenTheRuntimeIsDown(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}}, nil)
	f.SetDown(true)
	r := apply.Run(context.Background(), f, deleteA(), apply.Options{})
	if len(r.Failed) != 1 || !strings.Contains(r.Failed[0].Error, "the runtime is down") {
		t.Fatalf("result %+v", r)
	}
}

func TestRunDeletesChildrenBeforeParents(t *testing.T) {
	f := runtimeWith([]runtime.Image{
		{ID: imageA, RepoTags: []string{"base:1"}},
		{ID: imageB, RepoTags: []string{"child:1"}, ParentID: imageA},
	}, nil)
	p := &plan.Plan{Actions: []plan.Action{
		{ImageID: imageB, Image: "child:1", Refs: []string{"child:1"}, Delete: true, Wave: 0},
		{ImageID: imageA, Image: "base:1", Refs: []string{"base:1"}, Delete: true, Wave: 1},
	}}
	r := apply.Run(context.Background(), f, p, apply.Options{Concurrency: 8})
	if f.HasImage(imageA) || f.HasImage(imageB) || len(r.RemovedImages) != 2 {
		t.Fatalf("result %+v", r)
	}
}

func TestDryRunReportsThePlan(t *testing.T) {
	r := apply.DryRun(deleteA("c1"))
	if !r.DryRun || len(r.RemovedImages) != 1 || len(r.RemovedContainers) != 1 || r.BytesReclaimed != 100 {
		t.Fatalf("result %+v", r)
	}
}

// Finding: a container started during apply on an image with two selected
// tags saw the other tag removed under it. The re-check before each untag
// stops the action, and the image is reported once, as blocked.
func TestRunContainerStartedBetweenTwoUntags(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1", "app:2"}}}, nil)
	p := &plan.Plan{Actions: []plan.Action{{ImageID: imageA, Image: "app:1", Refs: []string{"app:1", "app:2"}, Delete: true, Size: 100}}}
	untags := 0
	f.BeforeCall = func(method, arg string) {
		if method == "RemoveImage" {
			untags++
		}
		if method == "ContainersUsing" && untags == 1 && !f.HasContainer("c1") {
			f.AddContainer(runtime.Container{ID: "c1", ImageID: imageA, State: runtime.StateRunning}) // docker run app:2
		}
	}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if got := f.Tags(imageA); len(got) != 1 || got[0] != "app:2" {
		t.Fatalf("tags now %v, want app:2 kept for the running container", got)
	}
	if len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.RunningContainer || len(r.RemovedImages) != 0 {
		t.Fatalf("want the image blocked only, got %+v", r)
	}
	if !strings.Contains(r.Blocked[0].Message, "already removed: app:1") {
		t.Fatalf("the message does not say what went before: %q", r.Blocked[0].Message)
	}
}

// An untag-only action (the image keeps another tag) is re-checked too: the
// runtime itself never refuses an untag.
func TestRunUntagOnlyRechecks(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1", "keep:1"}}},
		[]runtime.Container{{ID: "c1", ImageID: imageA, State: runtime.StateExited}})
	f.BeforeCall = func(method, arg string) {
		if method == "ContainersUsing" {
			f.SetState("c1", runtime.StateRunning)
		}
	}
	p := &plan.Plan{Actions: []plan.Action{{ImageID: imageA, Image: "app:1", Refs: []string{"app:1"}}}}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if got := f.Tags(imageA); len(got) != 2 {
		t.Fatalf("tags now %v: untagged under a running container", got)
	}
	if len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.RunningContainer {
		t.Fatalf("result %+v", r)
	}
}

// Finding: a dangling image tagged while its delete by ID was on its way
// went with its new tag. The re-check reads its references first.
func TestRunDeleteByIDRechecksReferences(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA}}, nil)
	f.BeforeCall = func(method, arg string) {
		if method == "InspectImage" {
			f.Tag(imageA, "fresh:1")
		}
	}
	p := &plan.Plan{Actions: []plan.Action{{ImageID: imageA, Image: "aaaaaaaaaaaa", Refs: []string{imageA}, Delete: true, By: "dangling"}}}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if !f.HasImage(imageA) {
		t.Fatal("an image tagged since the plan was deleted")
	}
	if len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.Changed {
		t.Fatalf("result %+v", r)
	}
}

// A reference that moved to another image since the plan is not removed:
// removing it would untag the other image.
func TestRunSkipsAReferenceThatMoved(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1", "app:2"}}, {ID: imageB}}, nil)
	f.BeforeCall = func(method, arg string) {
		if method == "InspectImage" && len(f.Tags(imageB)) == 0 {
			f.Tag(imageB, "app:1") // a pull of a new app:1
		}
	}
	p := &plan.Plan{Actions: []plan.Action{{ImageID: imageA, Image: "app:1", Refs: []string{"app:1", "app:2"}, Delete: true}}}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if got := f.Tags(imageB); len(got) != 1 {
		t.Fatalf("the new image lost its tag: %v", got)
	}
	if f.HasImage(imageA) || len(r.RemovedImages) != 1 || !r.RemovedImages[0].Deleted || len(r.RemovedImages[0].Refs) != 1 {
		t.Fatalf("want the old image deleted through app:2 only: %+v", r)
	}
}

// Finding: with force, a container started between the re-check and the
// removal saw its image untagged (rmi -f by tag does that). Forced
// removals go by ID, where the runtime refuses while a container runs.
func TestRunForceStartedAfterRecheck(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]runtime.Container{{ID: "kept", ImageID: imageA, State: runtime.StateExited}})
	p := deleteA()
	p.Actions[0].Force, p.Actions[0].Kept = true, []string{"kept"}
	f.BeforeCall = func(method, arg string) {
		if method == "RemoveImage" {
			f.SetState("kept", runtime.StateRunning)
		}
	}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if got := f.Tags(imageA); len(got) != 1 {
		t.Fatalf("tags now %v: the image of a running container was untagged", got)
	}
	if len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.Conflict || len(r.RemovedImages) != 0 {
		t.Fatalf("result %+v", r)
	}
}

// Finding: when every delete stalled, each waited its full timeout, four at
// a time. The first call that runs out of time stops the sweep; what was
// not started is Interrupted, not one failure each.
func TestRunStopsWhenTheRuntimeStalls(t *testing.T) {
	var images []runtime.Image
	p := &plan.Plan{}
	for i := range 12 {
		id := fmt.Sprintf("sha256:%064x", i+1)
		ref := fmt.Sprintf("app:%d", i)
		images = append(images, runtime.Image{ID: id, RepoTags: []string{ref}})
		p.Actions = append(p.Actions, plan.Action{ImageID: id, Image: ref, Refs: []string{ref}, Delete: true})
	}
	f := runtimeWith(images, nil)
	f.CallTimeout = 50 * time.Millisecond
	f.Stall("RemoveImage", true)
	start := time.Now()
	r := apply.Run(context.Background(), f, p, apply.Options{Concurrency: 4})
	if r.Stopped == "" || !strings.Contains(r.Stopped, "stalled") {
		t.Fatalf("the sweep did not stop: %+v", r)
	}
	if len(r.Failed) != 4 || len(r.Skipped) != 8 || r.Skipped[0].Reason != plan.Interrupted {
		t.Fatalf("want 4 failed in flight and 8 interrupted: %+v", r)
	}
	if calls := f.Calls()["RemoveImage"]; calls != 4 {
		t.Fatalf("%d removals attempted after the engine stalled", calls)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("took %s", elapsed)
	}
}

// The sweep's own deadline stops it between actions too.
func TestRunStopsAtTheDeadline(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := apply.Run(ctx, f, deleteA(), apply.Options{})
	if r.Stopped == "" || len(r.Skipped) != 1 || r.Skipped[0].Reason != plan.Interrupted || !f.HasImage(imageA) {
		t.Fatalf("result %+v", r)
	}
}

// Refs is [] for a delete by ID, never null, in a dry run and for real.
func TestRefsNeverNull(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA}}, nil)
	p := &plan.Plan{Actions: []plan.Action{{ImageID: imageA, Image: "aaaaaaaaaaaa", Refs: []string{imageA}, Delete: true}}}
	for _, r := range []apply.Result{apply.DryRun(p), apply.Run(context.Background(), f, p, apply.Options{})} {
		if len(r.RemovedImages) != 1 || r.RemovedImages[0].Refs == nil {
			t.Fatalf("result %+v", r)
		}
	}
}

// Under a disk watermark the executor stops as soon as it is told enough:
// the rest of the plan is skipped, in order.
func TestRunStopsWhenEnough(t *testing.T) {
	var images []runtime.Image
	p := &plan.Plan{}
	for i := range 5 {
		id := fmt.Sprintf("sha256:%064x", i+1)
		ref := fmt.Sprintf("app:%d", i)
		images = append(images, runtime.Image{ID: id, RepoTags: []string{ref}})
		p.Actions = append(p.Actions, plan.Action{ImageID: id, Image: ref, Refs: []string{ref}, Delete: true})
	}
	f := runtimeWith(images, nil)
	removed := 0
	enough := func() (bool, string) {
		if removed >= 2 {
			return true, "usage 69 % is under lowPercent 70"
		}
		removed++
		return false, ""
	}
	r := apply.Run(context.Background(), f, p, apply.Options{Concurrency: 1, Enough: enough})
	if len(r.RemovedImages) != 2 || len(r.Skipped) != 3 || r.Skipped[0].Reason != plan.BelowLowWatermark {
		t.Fatalf("result %+v", r)
	}
	if !f.HasImage(images[2].ID) || f.HasImage(images[0].ID) || f.HasImage(images[1].ID) {
		t.Fatal("the first two in order should go, the rest stay")
	}
}

// A forced delete goes by ID and so takes every reference: one added since
// the plan stops it.
func TestRunForceRechecksReferences(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]runtime.Container{{ID: "kept", ImageID: imageA, State: runtime.StateExited}})
	p := deleteA()
	p.Actions[0].Force, p.Actions[0].Kept = true, []string{"kept"}
	f.BeforeCall = func(method, arg string) {
		if method == "InspectImage" {
			f.Tag(imageA, "fresh:1")
		}
	}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if !f.HasImage(imageA) || len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.Changed {
		t.Fatalf("a forced delete took a tag added since the plan: %+v", r)
	}
}

// A stopped container created on an image about to be deleted (without
// force) since the plan stops the action before any untag.
func TestRunContainerCreatedMeanwhile(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1", "app:2"}}}, nil)
	f.BeforeCall = func(method, arg string) {
		if method == "ContainersUsing" && !f.HasContainer("new") {
			f.AddContainer(runtime.Container{ID: "new", ImageID: imageA, State: runtime.StateCreated})
		}
	}
	p := &plan.Plan{Actions: []plan.Action{{ImageID: imageA, Image: "app:1", Refs: []string{"app:1", "app:2"}, Delete: true}}}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if len(f.Tags(imageA)) != 2 || len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.Changed {
		t.Fatalf("want both tags kept and the image blocked: tags %v, %+v", f.Tags(imageA), r)
	}
}

// Found with the model test's new step (a container created during a
// sweep): with force, the re-check let any stopped container through, also
// one created since the plan that the plan never weighed, such as the
// kubelet's, whose image force must never take (the kubelet restarts it
// from that image). Only the stopped containers the plan kept, and those
// it removes, may use an image deleted with force.
func TestRunForceStopsAtAContainerCreatedMeanwhile(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]runtime.Container{{ID: "kept", ImageID: imageA, State: runtime.StateExited}})
	p := deleteA()
	p.Actions[0].Force, p.Actions[0].Kept = true, []string{"kept"}
	f.BeforeCall = func(method, arg string) {
		if method == "ContainersUsing" && !f.HasContainer("new") {
			f.AddContainer(runtime.Container{ID: "new", ImageID: imageA, State: runtime.StateCreated,
				Labels: map[string]string{"io.kubernetes.pod.name": "web"}})
		}
	}
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if !f.HasImage(imageA) {
		t.Fatal("the image of a container created since the plan was deleted with force")
	}
	if len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.Changed || !strings.Contains(r.Blocked[0].Message, "new") {
		t.Fatalf("want the image blocked as changed since the plan, naming the new container: %+v", r)
	}
}

// inFlight counts the runtime calls under way at once.
type inFlight struct {
	runtime.Runtime
	mu       sync.Mutex
	now, max int
}

func (f *inFlight) during(call func()) {
	f.mu.Lock()
	f.now++
	f.max = max(f.max, f.now)
	f.mu.Unlock()
	time.Sleep(time.Millisecond) // long enough for the calls that can overlap to overlap
	call()
	f.mu.Lock()
	f.now--
	f.mu.Unlock()
}

func (f *inFlight) RemoveContainer(ctx context.Context, id string, volumes bool) (err error) {
	f.during(func() { err = f.Runtime.RemoveContainer(ctx, id, volumes) })
	return err
}

func (f *inFlight) ContainersUsing(ctx context.Context, ids []string) (cs []runtime.Container, err error) {
	f.during(func() { cs, err = f.Runtime.ContainersUsing(ctx, ids) })
	return cs, err
}

func (f *inFlight) InspectImage(ctx context.Context, id string) (img runtime.Image, err error) {
	f.during(func() { img, err = f.Runtime.InspectImage(ctx, id) })
	return img, err
}

func (f *inFlight) RemoveImage(ctx context.Context, ref string, o runtime.RemoveImageOptions) (d runtime.ImageRemoval, err error) {
	f.during(func() { d, err = f.Runtime.RemoveImage(ctx, ref, o) })
	return d, err
}

// Two images of ten containers each, four calls at once: the executor keeps
// the runtime at four calls (it sat at two, one per image, when an image's
// containers went one by one), and never above.
func TestRunKeepsTheRuntimeAtConcurrency(t *testing.T) {
	f := runtimefake.New()
	p := &plan.Plan{}
	for i, id := range []string{imageA, imageB} {
		ref := fmt.Sprintf("app:%d", i)
		f.AddImage(runtime.Image{ID: id, RepoTags: []string{ref}})
		a := plan.Action{ImageID: id, Image: ref, Refs: []string{ref}, Delete: true}
		for j := range 10 {
			c := fmt.Sprintf("c%d-%d", i, j)
			f.AddContainer(runtime.Container{ID: c, ImageID: id, State: runtime.StateExited})
			a.Containers = append(a.Containers, plan.ContainerRef{ID: c, Name: c})
		}
		p.Actions = append(p.Actions, a)
	}
	rt := &inFlight{Runtime: f}
	r := apply.Run(context.Background(), rt, p, apply.Options{Concurrency: 4})
	if len(r.RemovedImages) != 2 || len(r.RemovedContainers) != 20 {
		t.Fatalf("result %+v", r)
	}
	if rt.max != 4 {
		t.Fatalf("at most %d engine calls were under way at once, want 4", rt.max)
	}
}

// The first container the runtime refuses ends its image's action: no
// removal of its other containers begins after it (one at a time here, so
// the one after it is never tried).
func TestRunStopsAnImagesContainersAtTheFirstRefusal(t *testing.T) {
	f := runtimeWith([]runtime.Image{{ID: imageA, RepoTags: []string{"app:1"}}}, []runtime.Container{
		{ID: "c1", ImageID: imageA, State: runtime.StateExited},
		{ID: "c2", ImageID: imageA, State: runtime.StateRunning}, // started since the plan
		{ID: "c3", ImageID: imageA, State: runtime.StateExited},
	})
	r := apply.Run(context.Background(), f, deleteA("c1", "c2", "c3"), apply.Options{Concurrency: 1})
	if f.HasContainer("c1") || !f.HasContainer("c2") || !f.HasContainer("c3") || !f.HasImage(imageA) {
		t.Fatal("want c1 removed, c2, c3 and the image kept")
	}
	if len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.RunningContainer || len(r.RemovedContainers) != 1 {
		t.Fatalf("result %+v", r)
	}
}

// A pod bound to the node between the plan and an image's removal keeps
// the image (docs/policy.md, invariant 4): the executor asks for the pods
// again just before each destructive call, by tag, by ID, and for an
// untagged parent the deletion would prune. When the pods cannot be seen,
// the sweep stops there.
func TestRunKeepsAnImageAPodWasBoundTo(t *testing.T) {
	parent := "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	for name, tc := range map[string]struct {
		ref     string // what the pod bound after the container's removal names
		podsErr error
		skipped string // PodOnNode's message names this ("" : removed)
		stopped bool
	}{
		"by the tag to remove":         {ref: "docker.io/library/app:1", skipped: "names it"},
		"by a tag of its short name":   {ref: "app", skipped: ""}, // app:latest is another image
		"by its ID":                    {ref: imageA, skipped: "names it"},
		"by the parent it would prune": {ref: parent, skipped: "its untagged parent"},
		"another image":                {ref: "other:1"},
		"pods unknown":                 {podsErr: fmt.Errorf("a watch of the API failed"), stopped: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := runtimeWith([]runtime.Image{{ID: parent}, {ID: imageA, RepoTags: []string{"app:1"}, ParentID: parent}},
				[]runtime.Container{{ID: "c1", ImageID: imageA, State: runtime.StateExited}})
			p := deleteA("c1")
			p.Actions[0].PruneParents = []string{parent}
			var pods []plan.PodImage
			f.BeforeCall = func(method, arg string) {
				if method == "RemoveContainer" && tc.ref != "" {
					pods = []plan.PodImage{{Ref: tc.ref, Pod: "default/web (container c)"}}
				}
			}
			podsErr := tc.podsErr
			r := apply.Run(context.Background(), f, p, apply.Options{Pods: func() ([]plan.PodImage, error) {
				return pods, podsErr
			}})
			kept := tc.skipped != "" || tc.stopped
			if f.HasImage(imageA) != kept || f.HasImage(parent) != kept {
				t.Fatalf("image there: %v, parent there: %v; want both %v (result %+v)", f.HasImage(imageA), f.HasImage(parent), kept, r)
			}
			switch {
			case tc.skipped != "":
				if len(r.Skipped) != 1 || r.Skipped[0].Reason != plan.PodOnNode || !strings.Contains(r.Skipped[0].Message, tc.skipped) ||
					!strings.Contains(r.Skipped[0].Message, "default/web") {
					t.Fatalf("want skipped PodOnNode naming %q: %+v", tc.skipped, r)
				}
			case tc.stopped:
				if r.Stopped == "" || !strings.Contains(r.Stopped, "watch") || r.Refused || len(r.Skipped) != 1 || r.Skipped[0].Reason != plan.Interrupted {
					t.Fatalf("want the sweep stopped, the image interrupted: %+v", r)
				}
			default:
				if len(r.RemovedImages) != 2 || len(r.Skipped)+len(r.Blocked) != 0 {
					t.Fatalf("want the image and its parent removed: %+v", r)
				}
			}
		})
	}
}

// Refusals of Proceed made at once, on every call in flight, still say
// that the sweep stopped because the policy changed, not by a fault: the
// first refusal's reason stands (a later one used to unsay it, and the
// agent reported a policy change as a failed sweep).
func TestRunRefusedOnEveryCallAtOnceSaysSo(t *testing.T) {
	for range 20 {
		f := runtimefake.New()
		p := &plan.Plan{}
		for i := range 8 {
			id := fmt.Sprintf("sha256:%064x", i+1)
			ref := fmt.Sprintf("app:%d", i)
			f.AddImage(runtime.Image{ID: id, RepoTags: []string{ref}})
			c := fmt.Sprintf("c%d", i)
			f.AddContainer(runtime.Container{ID: c, ImageID: id, State: runtime.StateExited})
			p.Actions = append(p.Actions, plan.Action{ImageID: id, Image: ref, Refs: []string{ref}, Delete: true,
				Containers: []plan.ContainerRef{{ID: c, Name: c}}})
		}
		var asked sync.WaitGroup
		asked.Add(8)
		proceed := func() error {
			asked.Done()
			asked.Wait() // every call in flight refuses at once
			return fmt.Errorf("the policy changed")
		}
		r := apply.Run(context.Background(), f, p, apply.Options{Concurrency: 8, Proceed: proceed})
		if !r.Refused || r.Stopped != "the policy changed" {
			t.Fatalf("refused %v, stopped %q: want a refusal", r.Refused, r.Stopped)
		}
	}
}
