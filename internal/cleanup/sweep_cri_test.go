package cleanup_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/cri"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultgrpc"
)

// These tests run the article's scenarios in CRI form on the private CRI
// runtime under test (containerd, and CRI-O in its pass): images pulled
// from a registry of the test, containers made in a pod, as the kubelet
// makes them. containerd's CRI removes an image with every reference and
// whatever containers use it: the rules that keep an image are the
// planner's and the executor's alone. Those named …OnContainerd test what
// only containerd has.

type criScenario struct {
	t    *testing.T
	c    *testenv.CRI
	rt   *cri.Runtime
	reg  *testenv.Registry
	repo string
}

func newCRIScenario(t *testing.T) *criScenario { return criScenarioOn(t, testenv.CRIRuntime(t)) }

// newContainerdScenario is a scenario of what only containerd has.
func newContainerdScenario(t *testing.T) *criScenario { return criScenarioOn(t, testenv.Containerd(t)) }

func criScenarioOn(t *testing.T, c *testenv.CRI) *criScenario {
	rt, err := cri.New(c.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return &criScenario{t: t, c: c, rt: rt, reg: testenv.StartRegistry(t), repo: testenv.UniqueName("sweep")}
}

// image pulls one image under the given tags of the scenario's repository.
func (s *criScenario) image(tags ...string) string { return s.c.Image(s.reg, s.repo, tags...) }

func (s *criScenario) ref(tag string) string { return s.reg.Host + "/" + s.repo + ":" + tag }

// spec selects what patterns say, without age guards, adjusted.
func (s *criScenario) spec(adjust func(*v1alpha1.ImageCleanupPolicySpec), patterns ...string) v1alpha1.ImageCleanupPolicySpec {
	return policySpec(s.t, adjust, patterns...)
}

func (s *criScenario) sweep(spec v1alpha1.ImageCleanupPolicySpec) cleanup.Outcome {
	s.t.Helper()
	return sweepOn(s.t, s.rt, spec, time.Now())
}

// The article's second answer on containerd: the stopped containers (run
// to completion, or created and never started) go first, then the image,
// with both its tags.
func TestCRISweepRemovesStoppedContainersThenImage(t *testing.T) {
	s := newCRIScenario(t)
	id := s.image("1", "latest")
	exited := s.c.Container(id, seed.Exited, nil)
	created := s.c.Container(id, seed.Created, nil)

	out := s.sweep(s.spec(nil, s.reg.Host+"/"+s.repo+":*"))
	if s.c.HasImage(id) || s.c.HasContainer(exited) || s.c.HasContainer(created) {
		t.Fatal("the image or its stopped containers are still there")
	}
	r := out.Result
	if len(r.RemovedImages) != 1 || !r.RemovedImages[0].Deleted || len(r.RemovedImages[0].Refs) != 3 || len(r.RemovedContainers) != 2 {
		t.Fatalf("result %+v", r)
	}
}

// A running container keeps its image, force or not; and force is not
// honoured on the CRI: a kept stopped container keeps its image too, and
// the report says why.
func TestCRIRunningContainerBlocksAndForceIsNotHonoured(t *testing.T) {
	s := newCRIScenario(t)
	running := s.image("running")
	stopped := s.c.Image(s.reg, s.repo+"-kept", "1")
	runner := s.c.Container(running, seed.Running, nil)
	keptCtr := s.c.Container(stopped, seed.Exited, nil)

	out := s.sweep(s.spec(func(p *v1alpha1.ImageCleanupPolicySpec) {
		p.Force = true
		p.StoppedContainers.Action = v1alpha1.StoppedContainersKeep
	}, s.reg.Host+"/"+s.repo+"*:*"))
	if !s.c.HasImage(running) || !s.c.HasImage(stopped) || !s.c.HasContainer(runner) || !s.c.HasContainer(keptCtr) {
		t.Fatal("an image or a container went")
	}
	if got := reasons(out.Result.Blocked); !slices.Equal(got, []string{"KeptStoppedContainer", "RunningContainer"}) {
		t.Fatalf("blocked %v, want KeptStoppedContainer and RunningContainer: %+v", got, out.Result)
	}
	for _, d := range out.Result.Blocked {
		if d.Reason == plan.KeptStoppedContainer && !strings.Contains(d.Message, "force is not honoured") {
			t.Fatalf("the report does not say that force is not honoured: %q", d.Message)
		}
	}
	if len(out.Unhonoured) != 1 || !strings.HasPrefix(out.Unhonoured[0], "force is not honoured") {
		t.Fatalf("the sweep does not say that force is not honoured: %q", out.Unhonoured)
	}
}

// Removing one tag removes the image on containerd: an image with a tag
// the policy does not select stays, with both tags, blocked (what the
// policy asks cannot be done on this runtime).
func TestCRITagNotSelectedKeepsTheImage(t *testing.T) {
	s := newCRIScenario(t)
	id := s.image("1", "keep")

	out := s.sweep(s.spec(nil, s.ref("1")))
	if !s.c.HasImage(s.ref("1")) || !s.c.HasImage(s.ref("keep")) {
		t.Fatal("a tag went")
	}
	if got := reasons(out.Result.Blocked); !slices.Equal(got, []string{"OtherReferences"}) || len(out.Result.RemovedImages) > 0 {
		t.Fatalf("want %s blocked by its other reference: %+v", id, out.Result)
	}
}

// The runtime's pinned image (its sandbox image, named so that only the pin
// keeps it) stays under a policy that selects every image, with force.
func TestCRIPinnedImageStays(t *testing.T) {
	s := newCRIScenario(t)
	loose := s.image("loose")
	out := s.sweep(s.spec(func(p *v1alpha1.ImageCleanupPolicySpec) { p.Force = true }, "**"))
	if s.c.HasImage(loose) {
		t.Fatal("the loose image stayed")
	}
	pinned := slices.IndexFunc(out.Result.Skipped, func(d plan.Decision) bool {
		return d.Reason == plan.Protected && strings.Contains(d.Message, "pins")
	})
	if pinned < 0 || !s.c.HasImage(out.Result.Skipped[pinned].ImageID) {
		t.Fatalf("no pinned image kept: %+v", out.Result)
	}
}

// A container created between the plan and the removal keeps its image:
// containerd would remove the image from under it; the executor's re-check,
// from a fresh listing, does not let it.
func TestCRIContainerCreatedBetweenPlanAndRemoval(t *testing.T) {
	s := newCRIScenario(t)
	id := s.image("1")
	ctx := context.Background()
	spec := s.spec(nil, s.ref("1"))
	opts, err := plan.OptionsFor(&spec, nil, s.rt.Capabilities())
	if err != nil {
		t.Fatal(err)
	}
	inv, err := cleanup.Collect(ctx, s.rt)
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Make(&inv, &opts, time.Now())
	if len(p.Actions) != 1 || !p.Actions[0].Whole {
		t.Fatalf("plan %+v", p)
	}
	late := s.c.Container(id, seed.Created, nil)

	r := apply.Run(ctx, s.rt, &p, apply.Options{})
	if !s.c.HasImage(id) || !s.c.HasContainer(late) {
		t.Fatal("the image of the new container, or the container, went")
	}
	if got := reasons(r.Blocked); !slices.Equal(got, []string{"ChangedSincePlan"}) || len(r.RemovedImages) > 0 {
		t.Fatalf("want the image blocked as changed since the plan: %+v", r)
	}
}

// The kubelet's containers (io.kubernetes.* labels) are its own to collect:
// they and their image stay unless includeKubernetesManaged.
func TestCRIKubernetesManagedContainers(t *testing.T) {
	s := newCRIScenario(t)
	id := s.image("1")
	ctr := s.c.Container(id, seed.Exited, map[string]string{"io.kubernetes.pod.name": "web", "io.kubernetes.container.name": "app"})

	out := s.sweep(s.spec(nil, s.ref("1")))
	if !s.c.HasImage(id) || !s.c.HasContainer(ctr) || !slices.Equal(reasons(out.Result.Blocked), []string{"KubernetesManaged"}) {
		t.Fatalf("without opt-in: %+v", out.Result)
	}
	s.sweep(s.spec(func(p *v1alpha1.ImageCleanupPolicySpec) { p.StoppedContainers.IncludeKubernetesManaged = true }, s.ref("1")))
	if s.c.HasImage(id) || s.c.HasContainer(ctr) {
		t.Fatal("with opt-in, the container or its image stayed")
	}
}

// A runtime that stops answering removals stops the sweep: the first
// removal runs out of time, the rest are not tried (Interrupted); once the
// runtime answers again, the next sweep finishes. Through a fault point in
// front of the CRI socket.
func TestCRIStalledRuntimeStopsTheSweep(t *testing.T) {
	s := newCRIScenario(t)
	a := s.c.Image(s.reg, s.repo+"-a", "1")
	b := s.c.Image(s.reg, s.repo+"-b", "1")
	proxy, err := faultgrpc.Start(s.c.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	rt, err := cri.New(proxy.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	rt.RemoveTimeout = time.Second
	const removeImage = "/runtime.v1.ImageService/RemoveImage"
	proxy.Stall(removeImage, true)
	spec := s.spec(func(p *v1alpha1.ImageCleanupPolicySpec) { p.MaxImagesPerSweep = 0 }, s.reg.Host+"/"+s.repo+"*:*")
	start := time.Now()
	out, err := cleanup.NewSweep(rt, &spec, time.Now(), cleanup.Options{Concurrency: 1}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); !strings.Contains(out.Result.Stopped, "stalled") || took > 20*time.Second {
		t.Fatalf("stopped %q after %s: %+v", out.Result.Stopped, took, out.Result)
	}
	if proxy.Calls(removeImage) != 1 || !s.c.HasImage(a) || !s.c.HasImage(b) || !slices.Contains(reasons(out.Result.Skipped), "Interrupted") {
		t.Fatalf("%d removals tried after the stall: %+v", proxy.Calls(removeImage), out.Result)
	}
	proxy.Stall(removeImage, false)
	out, err = cleanup.NewSweep(rt, &spec, time.Now(), cleanup.Options{}).Run(context.Background())
	if err != nil || out.Result.Stopped != "" || s.c.HasImage(a) || s.c.HasImage(b) {
		t.Fatalf("after the stall: %v, %+v", err, out.Result)
	}
}

// keepNewest on containerd ranks by build date, which the CRI gives only in
// the image's configuration (the verbose image status): the newest build
// of the repository stays, the older ones go.
func TestCRIKeepNewestKeepsTheNewestBuild(t *testing.T) {
	s := newCRIScenario(t)
	now := time.Now()
	oldest := s.c.ImageBuilt(s.reg, s.repo, now.Add(-72*time.Hour), "1")
	newest := s.c.ImageBuilt(s.reg, s.repo, now.Add(-time.Hour), "3")
	older := s.c.ImageBuilt(s.reg, s.repo, now.Add(-48*time.Hour), "2")

	out := s.sweep(s.spec(func(p *v1alpha1.ImageCleanupPolicySpec) { p.KeepNewest = 1 }, s.reg.Host+"/"+s.repo+":*"))
	if !s.c.HasImage(newest) || s.c.HasImage(oldest) || s.c.HasImage(older) {
		t.Fatalf("want only the newest build kept: %+v", out.Result)
	}
	if got := reasons(out.Result.Skipped); !slices.Equal(got, []string{"KeptNewest"}) {
		t.Fatalf("skipped %v", got)
	}
}

// maxUnusedAge on containerd: an image a container ran lately stays, one
// idle since the clock met it goes. The CRI lists no use: the last use is
// the exited container's finish time (its status) and the clock's record.
func TestCRIMaxUnusedAge(t *testing.T) {
	s := newCRIScenario(t)
	idle := s.image("idle")
	used := s.image("used")
	spec := s.spec(func(p *v1alpha1.ImageCleanupPolicySpec) { hour := v1alpha1.Duration("1h"); p.MaxUnusedAge = &hour },
		s.reg.Host+"/"+s.repo+":*")
	clock := imageclock.InMemory()
	now := time.Now()
	sweep := func(at time.Time) cleanup.Outcome {
		t.Helper()
		out, err := cleanup.NewSweep(s.rt, &spec, at, cleanup.Options{Clock: clock}).Run(context.Background())
		if err != nil || len(out.Result.Failed) > 0 {
			t.Fatalf("sweep: %v %+v", err, out.Result.Failed)
		}
		return out
	}
	// The clock first met both three hours ago: nothing goes, both just met.
	sweep(now.Add(-3 * time.Hour))
	if !s.c.HasImage(idle) || !s.c.HasImage(used) {
		t.Fatal("images the clock had just met went")
	}
	s.c.Container(used, seed.Exited, nil) // a run, now
	out := sweep(now.Add(30 * time.Minute))
	if s.c.HasImage(idle) {
		t.Fatalf("the image idle for 3.5 h stayed: %+v", out.Result)
	}
	if !s.c.HasImage(used) || !slices.Equal(reasons(out.Result.Skipped), []string{"RecentlyUsed"}) {
		t.Fatalf("the image used 30 minutes ago: %+v", out.Result)
	}
}

// Containers that other clients of containerd make through its own API
// (ctr here; nerdctl and BuildKit's worker alike) are not in the CRI's
// listing, and containerd's CRI removes an image whatever uses it: such a
// container, running or only created, keeps its image, blocked
// OtherClient, and is never removed; an image nothing uses goes.
func TestCRIContainersOfOtherClientsKeepTheirImagesOnContainerd(t *testing.T) {
	s := newContainerdScenario(t)
	running := s.image("running")
	created := s.image("created")
	loose := s.c.Image(s.reg, s.repo+"-loose", "1")
	runner := s.c.OthersContainer(s.ref("running"), true)
	creation := s.c.OthersContainer(s.ref("created"), false)

	out := s.sweep(s.spec(nil, s.reg.Host+"/"+s.repo+"*:*"))
	if !s.c.HasImage(running) || !s.c.HasImage(created) {
		t.Fatalf("an image a container of containerd's own API uses went: %+v", out.Result)
	}
	if !s.c.OthersTaskRunning(runner) {
		t.Fatal("the running container of containerd's own API stopped")
	}
	if _, err := s.c.Ctr("container", "info", creation); err != nil {
		t.Fatalf("the created container of containerd's own API went: %v", err)
	}
	if s.c.HasImage(loose) {
		t.Fatalf("the image nothing uses stayed: %+v", out.Result)
	}
	if got := reasons(out.Result.Blocked); !slices.Equal(got, []string{"OtherClient", "OtherClient"}) {
		t.Fatalf("blocked %v, want OtherClient twice: %+v", got, out.Result.Blocked)
	}
}

// Another client's container names its image by a reference, which can
// move: pulled again, the tag names another image, and the one the
// container runs keeps only the digest reference of its own pull. It
// still stays: such a container keeps every image of its repository.
func TestCRIAnOtherClientsContainerKeepsItsImageWhenItsTagMovesOnContainerd(t *testing.T) {
	s := newContainerdScenario(t)
	first := s.c.ImageBuilt(s.reg, s.repo, time.Now().Add(-time.Hour), "moving")
	s.c.OthersContainer(s.ref("moving"), true)
	second := s.c.ImageBuilt(s.reg, s.repo, time.Now(), "moving")
	if first == second || !s.c.HasImage(first) {
		t.Fatalf("the tag did not move to another image while the first stayed: %s, %s", first, second)
	}
	out := s.sweep(s.spec(nil, s.reg.Host+"/**"))
	if !s.c.HasImage(first) {
		t.Fatalf("the image the container runs went, its tag having moved: %+v", out.Result)
	}
}

// anotherHandFirst is the CRI runtime with another hand (the kubelet's
// image GC) quicker than each of the sweep's image removals: the image
// goes between the executor's re-check and its call.
type anotherHandFirst struct {
	*cri.Runtime
	c *testenv.CRI
}

func (r anotherHandFirst) RemoveImage(ctx context.Context, ref string, opts runtime.RemoveImageOptions) (runtime.ImageRemoval, error) {
	if _, err := r.c.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		return runtime.ImageRemoval{}, err
	}
	return r.Runtime.RemoveImage(ctx, ref, opts)
}

// An image another hand removes between the re-check and the removal is
// not counted as the sweep's (the CRI calls the removal of a missing image
// a success: the adapter looks it up first), and no later sweep counts it
// as recovered either.
func TestCRIAnImageAnotherHandRemovedIsNotCounted(t *testing.T) {
	s := newCRIScenario(t)
	first, second := s.image("1"), s.image("2")
	clock := imageclock.InMemory()
	spec := s.spec(nil, s.reg.Host+"/"+s.repo+":*")
	sw := cleanup.NewSweep(anotherHandFirst{Runtime: s.rt, c: s.c}, &spec, time.Now(), cleanup.Options{Policy: "p", Clock: clock})
	out, err := sw.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Commit(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if s.c.HasImage(first) || s.c.HasImage(second) {
		t.Fatal("the images are still there")
	}
	if len(out.Result.RemovedImages) != 0 || len(out.Result.Failed) != 0 {
		t.Fatalf("the sweep counts what another hand removed: %+v", out.Result)
	}
	next, err := cleanup.NewSweep(s.rt, &spec, time.Now(), cleanup.Options{Policy: "p", Clock: clock}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !next.Recovered.Empty() {
		t.Fatalf("the next sweep recovers what another hand removed: %+v", next.Recovered)
	}
}
