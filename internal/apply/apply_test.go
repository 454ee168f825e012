package apply_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine/enginefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

const (
	imageA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	imageB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func engineWith(images []engine.Image, containers []engine.Container) *enginefake.Engine {
	f := enginefake.New()
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
	f := engineWith([]engine.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]engine.Container{{ID: "c1", ImageID: imageA, State: engine.StateExited}})
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

// A container that starts between plan and apply: the engine refuses to
// remove it, and the image stays. Blocked, not an error.
func TestRunContainerStartedMeanwhile(t *testing.T) {
	f := engineWith([]engine.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]engine.Container{{ID: "c1", ImageID: imageA, State: engine.StateExited}})
	f.BeforeCall = func(method, arg string) {
		if method == "ContainerRemove" {
			f.SetState("c1", engine.StateRunning)
		}
	}
	r := apply.Run(context.Background(), f, deleteA("c1"), apply.Options{})
	if !f.HasImage(imageA) || !f.HasContainer("c1") {
		t.Fatal("something was removed")
	}
	if len(r.Blocked) != 1 || r.Blocked[0].Reason != plan.Conflict || len(r.Failed) != 0 || len(r.RemovedImages) != 0 {
		t.Fatalf("result %+v", r)
	}
}

// A forced removal looks again for running containers just before: with
// force the engine would untag the image of a running container.
func TestRunForceRechecksRunningContainers(t *testing.T) {
	f := engineWith([]engine.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]engine.Container{{ID: "kept", ImageID: imageA, State: engine.StateExited}})
	p := deleteA()
	p.Actions[0].Force = true
	f.BeforeCall = func(method, arg string) {
		if method == "ContainerList" {
			f.SetState("kept", engine.StateRunning)
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
	f := engineWith([]engine.Image{{ID: imageA, RepoTags: []string{"app:1"}}},
		[]engine.Container{{ID: "kept", ImageID: imageA, State: engine.StateExited}})
	p := deleteA()
	p.Actions[0].Force = true
	r := apply.Run(context.Background(), f, p, apply.Options{})
	if f.HasImage(imageA) || !f.HasContainer("kept") {
		t.Fatal("want the image gone and the kept container still there")
	}
	if len(r.RemovedImages) != 1 || !r.RemovedImages[0].Forced {
		t.Fatalf("result %+v", r)
	}
	if calls := f.Calls(); calls["ImageRemove"] != 1 || calls["ContainerRemove"] != 0 {
		t.Fatalf("calls %v", calls)
	}
}

func TestRunNotFoundIsDone(t *testing.T) {
	f := engineWith([]engine.Image{{ID: imageA, RepoTags: []string{"app:1"}}}, nil)
	r := apply.Run(context.Background(), f, deleteA("gone-already"), apply.Options{})
	if f.HasImage(imageA) || len(r.Failed)+len(r.Blocked) > 0 {
		t.Fatalf("result %+v", r)
	}
	r = apply.Run(context.Background(), f, deleteA(), apply.Options{})
	if len(r.Failed)+len(r.Blocked)+len(r.RemovedImages) > 0 {
		t.Fatalf("a second run over a gone image: %+v", r)
	}
}

// A child image built between plan and apply keeps its parent: the engine
// only untags the last tag then; reported as removed tags, not deleted.
func TestRunChildBuiltMeanwhile(t *testing.T) {
	f := engineWith([]engine.Image{{ID: imageA, RepoTags: []string{"app:1"}}}, nil)
	f.BeforeCall = func(method, arg string) {
		if method == "ImageRemove" && !f.HasImage(imageB) {
			f.AddImage(engine.Image{ID: imageB, RepoTags: []string{"child:1"}, ParentID: imageA})
		}
	}
	r := apply.Run(context.Background(), f, deleteA(), apply.Options{})
	if !f.HasImage(imageA) || len(r.RemovedImages) != 1 || r.RemovedImages[0].Deleted || r.BytesReclaimed != 0 {
		t.Fatalf("result %+v", r)
	}
}

func TestRunEngineDownFails(t *testing.T) {
	f := engineWith([]engine.Image{{ID: imageA, RepoTags: []string{"app:1"}}}, nil)
	f.SetDown(true)
	r := apply.Run(context.Background(), f, deleteA(), apply.Options{})
	if len(r.Failed) != 1 || !strings.Contains(r.Failed[0].Error, "engine is down") {
		t.Fatalf("result %+v", r)
	}
}

func TestRunDeletesChildrenBeforeParents(t *testing.T) {
	f := engineWith([]engine.Image{
		{ID: imageA, RepoTags: []string{"base:1"}},
		{ID: imageB, RepoTags: []string{"child:1"}, ParentID: imageA},
	}, nil)
	p := &plan.Plan{Actions: []plan.Action{
		{ImageID: imageB, Image: "child:1", Refs: []string{"child:1"}, Delete: true, Wave: 0},
		{ImageID: imageA, Image: "base:1", Refs: []string{"base:1"}, Delete: true, Wave: 1},
	}}
	r := apply.Run(context.Background(), f, p, apply.Options{Concurrency: 8, CallTimeout: time.Second})
	if f.HasImage(imageA) || f.HasImage(imageB) || len(r.RemovedImages) != 2 {
		t.Fatalf("result %+v", r)
	}
}

func TestDryRunCallsNothing(t *testing.T) {
	p := deleteA("c1")
	r := apply.DryRun(p)
	if !r.DryRun || len(r.RemovedImages) != 1 || len(r.RemovedContainers) != 1 || r.BytesReclaimed != 100 {
		t.Fatalf("result %+v", r)
	}
}
