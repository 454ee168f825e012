package cleanup_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultproxy"
)

// One test per finding of the safety review (docs/policy.md, "Safety"),
// each on the private dockerd; races and faults are placed by a proxy
// between the engine client and the engine.

// proxied returns a fault proxy in front of the private engine and an
// engine client that talks through it.
func (s *scenario) proxied() (*faultproxy.Proxy, *docker.Runtime) {
	s.t.Helper()
	p, err := faultproxy.Start(testenv.DockerHost(s.t))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(p.Close)
	rt, err := docker.New(p.Host())
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = rt.Close() })
	return p, rt
}

func (s *scenario) sweepWith(rt *docker.Runtime, spec v1alpha1.ImageCleanupPolicySpec, now time.Time, opts cleanup.Options) cleanup.Outcome {
	s.t.Helper()
	out, err := cleanup.NewSweep(rt, &spec, now, opts).Run(context.Background())
	if err != nil {
		s.t.Fatalf("sweep: %v", err)
	}
	return out
}

// runOn starts, from outside the sweep, a container of the image that keeps
// running: another hand at work. For hooks, which run on the proxy's
// goroutines: errors are reported, not fatal.
func (s *scenario) runOn(imageID string) {
	ctx := context.Background()
	c, err := s.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: imageID, Cmd: []string{"sleep"}}, HostConfig: &container.HostConfig{NetworkMode: "none"}})
	if err != nil {
		s.t.Errorf("create: %v", err)
		return
	}
	s.t.Cleanup(func() {
		_, _ = s.cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := s.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		s.t.Errorf("start: %v", err)
	}
}

func (s *scenario) tags(id string) []string {
	s.t.Helper()
	info, err := s.cli.ImageInspect(context.Background(), id)
	if err != nil {
		s.t.Fatalf("inspect %s: %v", id, err)
	}
	return slices.Sorted(slices.Values(info.RepoTags))
}

func decisionFor(ds []plan.Decision, id string) *plan.Decision {
	for i := range ds {
		if ds[i].ImageID == id {
			return &ds[i]
		}
	}
	return nil
}

// Finding 1: a pulled image has no LastTagTime and an old build date; it
// was removed seconds after the pull despite minImageAge: 24h. The image
// clock counts from its first sighting, and remembers it across restarts.
func TestFindingPulledImageIsYoung(t *testing.T) {
	s := newScenario(t)
	reg := testenv.StartRegistry(t)
	repo := "itest/" + testenv.UniqueName("pulled")
	reg.Push(t, repo, "1", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	ref := reg.Host + "/" + repo + ":1"
	id := testenv.PullImage(t, s.cli, ref)

	spec := s.spec(ref)
	day := v1alpha1.Duration("24h")
	spec.MinImageAge = &day
	stateDir := t.TempDir()
	var open *imageclock.Clock
	openClock := func() *imageclock.Clock { // a restart: the last one closes
		if open != nil {
			open.Close()
		}
		c, warn, err := imageclock.Open(stateDir, imageclock.EngineKey{ID: "private"})
		if err != nil || warn != nil {
			t.Fatal(err, warn)
		}
		t.Cleanup(c.Close)
		open = c
		return c
	}
	now := time.Now()
	out := s.sweepWith(s.rt, spec, now, cleanup.Options{Clock: openClock(), Policy: "p"})
	if d := decisionFor(out.Result.Skipped, id); d == nil || d.Reason != plan.TooYoung || !testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("a freshly pulled image was not kept: %+v", out.Result)
	}
	// The agent restarts 23 hours later: still young, by the remembered sighting.
	out = s.sweepWith(s.rt, spec, now.Add(23*time.Hour), cleanup.Options{Clock: openClock(), Policy: "p"})
	if d := decisionFor(out.Result.Skipped, id); d == nil || d.Reason != plan.TooYoung {
		t.Fatalf("after a restart the image counted as old: %+v", out.Result)
	}
	s.sweepWith(s.rt, spec, now.Add(25*time.Hour), cleanup.Options{Clock: openClock(), Policy: "p"})
	if testenv.ImageExists(t, s.cli, id) {
		t.Fatal("a day after its arrival the image should go")
	}
}

// Finding 2a: a container started during apply on an image with two
// selected tags; the second tag was removed under it. The re-check before
// the second untag sees the running container.
func TestFindingContainerStartedBetweenTwoUntags(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"), s.ref("2"))
	proxy, rt := s.proxied()
	proxy.On(faultproxy.Rule{Method: http.MethodDelete, Path: regexp.MustCompile(`^/images/`), Times: 1,
		After: func(*http.Request) { s.runOn(id) }})
	out := s.sweepWith(rt, s.spec(s.repo+"/app:*"), time.Now(), cleanup.Options{})
	if got := s.tags(id); len(got) != 1 {
		t.Fatalf("tags now %v: the running container's image lost its last tag", got)
	}
	if d := decisionFor(out.Result.Blocked, id); d == nil || d.Reason != plan.RunningContainer || len(out.Result.RemovedImages) != 0 {
		t.Fatalf("want the image blocked, and only blocked: %+v", out.Result)
	}
}

// Finding 2a, untag only: the image keeps a tag the policy does not select;
// the engine never refuses such an untag, so the re-check must.
func TestFindingUntagOnlyIsRechecked(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"), s.repo+"/keep:1")
	proxy, rt := s.proxied()
	proxy.On(faultproxy.Rule{Method: http.MethodGet, Path: regexp.MustCompile(`^/containers/json$`), Query: "ancestor", Times: 1,
		Before: func(*http.Request) { s.runOn(id) }})
	out := s.sweepWith(rt, s.spec(s.ref("1")), time.Now(), cleanup.Options{})
	if got := s.tags(id); len(got) != 2 {
		t.Fatalf("tags now %v: untagged under a running container", got)
	}
	if d := decisionFor(out.Result.Blocked, id); d == nil || d.Reason != plan.RunningContainer {
		t.Fatalf("result %+v", out.Result)
	}
}

// Finding 2b: with dangling: true, an image tagged while its delete by ID
// was on its way went with its new tag. The re-check reads its references.
func TestFindingDanglingImageTaggedMeanwhile(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli)
	proxy, rt := s.proxied()
	proxy.On(faultproxy.Rule{Method: http.MethodGet, Path: regexp.MustCompile(`^/images/` + id + `/json$`), Times: 1,
		Before: func(*http.Request) {
			if _, err := s.cli.ImageTag(context.Background(), client.ImageTagOptions{Source: id, Target: s.ref("late")}); err != nil {
				t.Error(err)
			}
		}})
	spec := s.spec(s.repo + "/nothing:*")
	spec.Dangling = true
	out := s.sweepWith(rt, spec, time.Now(), cleanup.Options{})
	if !testenv.ImageExists(t, s.cli, s.ref("late")) {
		t.Fatal("the image tagged since the plan was deleted, tag and all")
	}
	if d := decisionFor(out.Result.Blocked, id); d == nil || d.Reason != plan.Changed {
		t.Fatalf("result %+v", out.Result)
	}
}

// Finding 2c: with force, a container started between the re-check and
// rmi -f saw its image untagged. Forced removals go by ID, where the engine
// itself refuses the image of a running container.
func TestFindingForcedRemovalRacesAStart(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	c := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{SleepWhenStarted: true})
	proxy, rt := s.proxied()
	proxy.On(faultproxy.Rule{Method: http.MethodDelete, Path: regexp.MustCompile(`^/images/`), Times: 1,
		Before: func(*http.Request) {
			if _, err := s.cli.ContainerStart(context.Background(), c, client.ContainerStartOptions{}); err != nil {
				t.Error(err)
			}
		}})
	spec := s.spec(s.ref("1"))
	spec.Force = true
	spec.StoppedContainers.Action = v1alpha1.StoppedContainersKeep
	out := s.sweepWith(rt, spec, time.Now(), cleanup.Options{})
	if got := s.tags(id); len(got) != 1 {
		t.Fatalf("tags now %v: forced removal untagged a running container's image", got)
	}
	if d := decisionFor(out.Result.Blocked, id); d == nil || d.Reason != plan.Conflict || len(out.Result.RemovedImages) != 0 {
		t.Fatalf("result %+v", out.Result)
	}
}

// Finding 3: under images: ["**"], a pause image held by digest only and
// rancher/mirrored-pause were removed. Both are sandbox images by name.
func TestFindingSandboxImagesByDigestAndMirror(t *testing.T) {
	s := newScenario(t)
	reg := testenv.StartRegistry(t)
	digest := reg.Push(t, "k8s/pause", "3.9", time.Now())
	byDigest := testenv.PullImage(t, s.cli, reg.Host+"/k8s/pause@"+digest)
	mirrored := testenv.ImportImage(t, s.cli, "rancher/mirrored-pause:3.6")
	out, err := cleanup.NewSweep(s.rt, ptr(s.spec("**")), time.Now(), cleanup.Options{PlanOnly: true}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{byDigest, mirrored} {
		if d := decisionFor(out.Plan.Skipped, id); d == nil || d.Reason != plan.Protected {
			t.Errorf("sandbox image %s is not protected: %+v", id, d)
		}
	}
}

// Finding 4: exclude: ["docker.io/**"] did not cover docker.io/myorg/app.
func TestFindingExcludeCoversEveryDockerHubRepository(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, testenv.UniqueName("myorg")+"/app:1")
	spec := s.spec("**")
	spec.Exclude = []v1alpha1.ImagePattern{"docker.io/**"}
	out, err := cleanup.NewSweep(s.rt, &spec, time.Now(), cleanup.Options{PlanOnly: true}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionFor(out.Plan.Skipped, id); d == nil || d.Reason != plan.Excluded {
		t.Fatalf("docker.io/** does not exclude myorg/app:1: %+v", d)
	}
}

// Finding 5: maxImagesPerSweep: 1 never made progress on a parent and its
// child. The child goes first, the parent next time.
func TestFindingBudgetProgressesOnParentAndChild(t *testing.T) {
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

// Finding 6: an engine that answers _ping and stalls on a list hung the CLI
// with no deadline. Every call has a timeout.
func TestFindingStalledListFailsFast(t *testing.T) {
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

// Finding 6: when every delete stalled, calls waited their full timeout
// four at a time (12 images: 362 s). The first one that runs out of time
// stops the sweep.
func TestFindingStalledDeletesStopTheSweep(t *testing.T) {
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

// Finding 7: dockerd killed mid-apply left images that had lost their last
// tag ("error deleting lease"), which no pattern could select again. The
// clock remembers begun removals; the next sweep finishes them by ID.
func TestFindingInterruptedRemovalIsFinished(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	proxy, rt := s.proxied()
	var child string
	proxy.On(faultproxy.Rule{Method: http.MethodDelete, Path: regexp.MustCompile(`^/images/`), Times: 1,
		FailStatus: http.StatusInternalServerError, FailMessage: "error deleting lease: context canceled",
		// The engine untags and then fails to delete: reproduced by a child
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
	clock.Reported("p", time.Now())
	if len(clock.UnfinishedFor("p")) != 0 {
		t.Fatal("the finished and reported removal is still remembered")
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

// Finding 7: after an engine stall, the report said 168 containers removed
// where 172 were: calls that ran out of time on this side were done on the
// engine's. After a failure the result is recounted from a fresh listing.
func TestFindingCountsMatchTheEngineAfterAStall(t *testing.T) {
	s := newScenario(t)
	testenv.ImportImage(t, s.cli, s.ref("1"))
	var containers []string
	for range 3 {
		containers = append(containers, testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit"}))
	}
	proxy, rt := s.proxied()
	rt.RemoveTimeout = 300 * time.Millisecond
	// The engine removes the container; its answer comes too late.
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

func ptr[T any](v T) *T { return &v }

// An image pulled by digest only (no tag), on both stores: a tagless
// wildcard selects it by its repo digest, and a sweep removes it; dangling:
// true does not (it carries a repo digest: Docker's own "dangling" excludes
// it). The containerd store lists its name@digest among the tags; the
// adapter reads it as the digest reference it is.
func TestImagePulledByDigestOnly(t *testing.T) {
	s := newScenario(t)
	reg := testenv.StartRegistry(t)
	repo := testenv.UniqueName("bydigest") + "/app"
	digest := reg.Push(t, repo, "1", time.Now())
	id := testenv.PullImage(t, s.cli, reg.Host+"/"+repo+"@"+digest)

	dangling := s.spec(s.ref("none")) // selects nothing by name
	dangling.Dangling = true
	out, err := cleanup.NewSweep(s.rt, &dangling, time.Now(), cleanup.Options{PlanOnly: true}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Plan.Actions {
		if a.ImageID == id {
			t.Fatalf("dangling: true selects an image pulled by digest: %+v", a)
		}
	}

	out = s.sweep(s.spec(reg.Host + "/" + testenv.UniqueName("other") + "/**"))
	if !testenv.ImageExists(t, s.cli, id) || len(out.Result.RemovedImages) != 0 {
		t.Fatalf("a wildcard of another repository removed it: %+v", out.Result)
	}
	first, _, _ := strings.Cut(repo, "/")
	out = s.sweep(s.spec(reg.Host + "/" + first + "/**"))
	if testenv.ImageExists(t, s.cli, id) || len(out.Result.RemovedImages) != 1 || !out.Result.RemovedImages[0].Deleted {
		t.Fatalf("the repository's wildcard did not remove the image pulled by digest: %+v", out.Result)
	}
}
