package cleanup_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultproxy"
	"github.com/moby/moby/client"
)

// A runtime that answers _ping and stalls on a list hung the CLI
// with no deadline. Every call has a timeout.
func TestAStalledListFailsFast(t *testing.T) {
	s := newScenario(t)
	proxy, rt := s.proxied()
	rt.ReadTimeout = 300 * time.Millisecond
	proxy.On(faultproxy.Rule{Method: http.MethodGet, Path: regexp.MustCompile(`^/images/json$`), Stall: true})
	start := time.Now()
	_, err := cleanup.NewSweep(rt, ptr(s.spec(s.ref("1"))), time.Now(), cleanup.Options{}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("err = %v", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("the sweep took %s against a stalled engine", elapsed)
	}
}

// When every delete stalled, calls waited their full timeout
// four at a time (12 images: 362 s). The first one that runs out of time
// stops the sweep.
func TestStalledDeletesStopTheSweep(t *testing.T) {
	s := newScenario(t)
	var ids []string
	for i := range 12 {
		ids = append(ids, testenv.ImportImage(t, s.cli, s.ref(string(rune('a'+i)))))
	}
	proxy, rt := s.proxied()
	rt.RemoveTimeout = 300 * time.Millisecond
	proxy.On(faultproxy.Rule{Method: http.MethodDelete, Path: regexp.MustCompile(`^/images/`), Stall: true})
	start := time.Now()
	out := s.sweepWith(rt, s.spec(s.repo+"/app:*"), time.Now(), cleanup.Options{Concurrency: 4})
	elapsed := time.Since(start)
	r := out.Result
	if !strings.Contains(r.Stopped, "stalled") || len(r.Failed) != 4 || len(r.Skipped) != 8 {
		t.Fatalf("want the sweep stopped, 4 failed in flight, 8 interrupted: %+v", r)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("the sweep took %s", elapsed)
	}
	for _, id := range ids {
		if !testenv.ImageExists(t, s.cli, id) {
			t.Fatal("a stalled delete went through")
		}
	}
}

// Dockerd killed mid-apply left images that had lost their last
// tag ("error deleting lease"), which no pattern could select again. The
// clock remembers begun removals; the next sweep finishes them by ID.
func TestAnInterruptedRemovalIsFinished(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	proxy, rt := s.proxied()
	var child string
	proxy.On(faultproxy.Rule{Method: http.MethodDelete, Path: regexp.MustCompile(`^/images/`), Times: 1,
		FailStatus: http.StatusInternalServerError, FailMessage: "error deleting lease: context canceled",
		// The runtime untags and then fails to delete: reproduced by a child
		// image that keeps the parent while the tag goes, removed right after.
		Before: func(*http.Request) { child = s.childOf(id) },
		After: func(*http.Request) {
			if _, err := s.cli.ImageRemove(context.Background(), child, client.ImageRemoveOptions{PruneChildren: false}); err != nil {
				t.Error(err)
			}
		}})
	clock := imageclock.InMemory()
	out := s.sweepWith(rt, s.spec(s.ref("1")), time.Now(), cleanup.Options{Clock: clock, Policy: "p"})
	if len(out.Result.Failed) != 1 || !testenv.ImageExists(t, s.cli, id) || len(s.tags(id)) != 0 {
		t.Fatalf("the fault was not reproduced: %+v", out.Result)
	}
	out = s.sweepWith(rt, s.spec(s.ref("1")), time.Now(), cleanup.Options{Clock: clock, Policy: "p"})
	if testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("the half-removed image is still there: %+v", out.Result)
	}
	if len(out.Result.RemovedImages) != 1 || out.Result.RemovedImages[0].ImageID != id || !out.Result.RemovedImages[0].Deleted {
		t.Fatalf("result %+v", out.Result)
	}
	clock.Journal().Reported("p", time.Now())
	if len(clock.Journal().UnfinishedFor("p")) != 0 {
		t.Fatal("the finished and reported removal is still remembered")
	}
}

// After a runtime stall, the report said 168 containers removed
// where 172 were: calls that ran out of time on this side were done on the
// runtime's. After a failure the result is recounted from a fresh listing.
func TestCountsMatchTheRuntimeAfterAStall(t *testing.T) {
	s := newScenario(t)
	testenv.ImportImage(t, s.cli, s.ref("1"))
	var containers []string
	for range 3 {
		containers = append(containers, testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit"}))
	}
	proxy, rt := s.proxied()
	rt.RemoveTimeout = 300 * time.Millisecond
	// The runtime removes the container; its answer comes too late.
	proxy.On(faultproxy.Rule{Method: http.MethodDelete, Path: regexp.MustCompile(`^/containers/`), Times: 1, Delay: time.Second})
	out := s.sweepWith(rt, s.spec(s.ref("1")), time.Now(), cleanup.Options{})
	gone := 0
	for _, c := range containers {
		if !testenv.ContainerExists(t, s.cli, c) {
			gone++
		}
	}
	if gone == 0 || len(out.Result.RemovedContainers) != gone {
		t.Fatalf("%d containers gone from the engine, %d reported: %+v", gone, len(out.Result.RemovedContainers), out.Result)
	}
}

// The process was killed after its sweep removed images and
// before it reported: nothing counted them. The next sweep does, once.
func TestRemovalsOfAKilledSweepAreCounted(t *testing.T) {
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
	r.clock.Journal().Reported("p", time.Now())
	out = s.sweepWith(s.rt, spec, time.Now(), cleanup.Options{Clock: r.clock, Policy: "p"})
	if !out.Recovered.Empty() {
		t.Fatalf("counted twice: %+v", out.Recovered)
	}
}
