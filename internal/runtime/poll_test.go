package runtime_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// Listing containers where no event tells of them: the first listing is a
// baseline (a stopped container there says nothing of when it ran), and
// from then on a container running, one that stopped since, and one made
// since (exited already or not) use their image until the listing; one
// that went since stopped then.
func TestPollingTellsTheUsesOfContainers(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f := runtimefake.New()
	f.AddImage(runtime.Image{ID: "sha256:img"})
	f.AddContainer(runtime.Container{ID: "old-exited", ImageID: "sha256:img", State: "exited"})
	f.AddContainer(runtime.Container{ID: "runs", ImageID: "sha256:img", State: "running"})
	p := runtime.Poller{Containers: true}
	if err := p.Baseline(ctx, f); err != nil {
		t.Fatal(err)
	}
	poll := func() []string {
		t.Helper()
		var told []string
		if err := p.Poll(ctx, f, now, func(e runtime.Event) { told = append(told, string(e.Kind)+" "+e.ID) }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(told)
		return told
	}
	if got, want := poll(), []string{"ContainerStarted runs"}; !slices.Equal(got, want) {
		t.Fatalf("the containers' baseline told %v, want %v", got, want)
	}
	f.AddContainer(runtime.Container{ID: "job", ImageID: "sha256:img", State: "exited"}) // made and ran since
	f.AddContainer(runtime.Container{ID: "new", ImageID: "sha256:img", State: "created"})
	f.RemoveContainerByHand("old-exited")
	if got, want := poll(), []string{"ContainerStarted job", "ContainerStarted new", "ContainerStarted runs"}; !slices.Equal(got, want) {
		t.Fatalf("after a job ran: %v, want %v", got, want)
	}
	if got, want := poll(), []string{"ContainerStarted runs"}; !slices.Equal(got, want) {
		t.Fatalf("nothing new: %v, want %v", got, want)
	}
}

// A container made and run to its end after the baseline, before the
// first listing that follows, used its image then: the baseline lists the
// containers too (it used to list images only, and the first poll was the
// containers' baseline, which took such a container for an old one). The
// same when the poller learns only later that it must list containers
// (FollowContainers, a runtime found to send no container events).
func TestTheBaselineListsContainersToo(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, late := range []bool{false, true} {
		f := runtimefake.New()
		f.AddImage(runtime.Image{ID: "sha256:img"})
		f.AddContainer(runtime.Container{ID: "old-exited", ImageID: "sha256:img", State: "exited"})
		p := runtime.Poller{Containers: !late}
		if err := p.Baseline(ctx, f); err != nil {
			t.Fatal(err)
		}
		if late {
			if err := p.FollowContainers(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		f.AddContainer(runtime.Container{ID: "job", ImageID: "sha256:img", State: "exited"})
		var told []string
		if err := p.Poll(ctx, f, now, func(e runtime.Event) { told = append(told, string(e.Kind)+" "+e.ID) }); err != nil {
			t.Fatal(err)
		}
		if want := []string{"ContainerStarted job"}; !slices.Equal(told, want) {
			t.Errorf("containers followed late %v: the first poll told %v, want %v", late, told, want)
		}
	}
}
