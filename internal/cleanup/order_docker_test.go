package cleanup_test

import (
	"context"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// keepNewest on the runtime: of four builds of one repository, the two
// tagged last stay (the runtime's tag times rank builds the clock met
// together).
func TestKeepNewestOnTheRuntime(t *testing.T) {
	s := newScenario(t)
	var ids []string
	for _, tag := range []string{"1", "2", "3", "4"} {
		ids = append(ids, testenv.ImportImage(t, s.cli, s.ref(tag)))
	}
	spec := s.spec(s.repo + "/app:*")
	spec.KeepNewest = 2
	out := s.sweep(spec)
	for i, id := range ids {
		if want := i >= 2; testenv.ImageExists(t, s.cli, id) != want {
			t.Fatalf("app:%d present %v, want %v: %+v", i+1, !want, want, out.Result)
		}
	}
}

// maxUnusedAge on the runtime: an image a container ran lately stays, one
// idle since the clock met it goes.
func TestMaxUnusedAgeOnTheRuntime(t *testing.T) {
	s := newScenario(t)
	idle := testenv.ImportImage(t, s.cli, s.ref("idle"))
	used := testenv.ImportImage(t, s.cli, s.ref("used"))
	spec := s.spec(s.repo + "/app:*")
	hour := v1alpha1.Duration("1h")
	spec.MaxUnusedAge = &hour
	clock := imageclock.InMemory()
	now := time.Now()
	// The clock first met both three hours ago (a sweep then removed nothing:
	// both were just met).
	s.sweepWith(s.rt, spec, now.Add(-3*time.Hour), cleanup.Options{Clock: clock})
	if !testenv.ImageExists(t, s.cli, idle) || !testenv.ImageExists(t, s.cli, used) {
		t.Fatal("images the clock had just met went")
	}
	testenv.CreateContainer(t, s.cli, used, testenv.ContainerOptions{Run: "exit"}) // a run, now
	out := s.sweepWith(s.rt, spec, now.Add(30*time.Minute), cleanup.Options{Clock: clock})
	if testenv.ImageExists(t, s.cli, idle) {
		t.Fatalf("the image idle for 3.5 h stayed: %+v", out.Result)
	}
	if !testenv.ImageExists(t, s.cli, used) {
		t.Fatal("the image used 30 minutes ago went")
	}
}

// Under disk pressure, the least recently used image goes first
// with the children that must go before it; a recently used standalone
// image is not taken before an old base and its child.
func TestLeastRecentlyUsedAcrossParentAndChild(t *testing.T) {
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

// KeepNewest keeps the newest builds, whatever order they were
// pulled in; here all arrive between two sweeps, the older builds last.
func TestKeepNewestKeepsTheNewestBuilds(t *testing.T) {
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

// MaxImagesPerSweep: 1 never made progress on a parent and its
// child. The child goes first, the parent next time.
func TestBudgetProgressesOnParentAndChild(t *testing.T) {
	s := newScenario(t)
	parent := testenv.ImportImage(t, s.cli, s.ref("1"))
	c := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{})
	child := testenv.CommitChild(t, s.cli, c, s.ref("child"))
	if _, err := s.cli.ContainerRemove(context.Background(), c, client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := s.spec(s.repo + "/app:*")
	spec.MaxImagesPerSweep = 1
	s.sweep(spec)
	if testenv.ImageExists(t, s.cli, child) || !testenv.ImageExists(t, s.cli, parent) {
		t.Fatal("the first sweep should remove the child only")
	}
	s.sweep(spec)
	if testenv.ImageExists(t, s.cli, parent) {
		t.Fatal("the second sweep should remove the parent")
	}
}

// childOf commits a child image of the image (through a container that is
// removed again) and returns its ID.
func (s *scenario) childOf(imageID string) string {
	ctx := context.Background()
	c, err := s.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: imageID}, HostConfig: &container.HostConfig{NetworkMode: "none"}, Name: ""})
	if err != nil {
		s.t.Error(err)
		return ""
	}
	resp, err := s.cli.ContainerCommit(ctx, c.ID, client.ContainerCommitOptions{})
	if err != nil {
		s.t.Error(err)
	}
	_, _ = s.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{})
	s.t.Cleanup(func() { testenv.RemoveImage(s.cli, resp.ID) })
	return resp.ID
}
