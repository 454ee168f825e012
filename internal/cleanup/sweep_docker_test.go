package cleanup_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultproxy"
)

// These tests run the article's scenarios, and more, on the private dockerd.
// Each works in its own repository (itest.local/<unique>/...) and selects
// nothing else.

type scenario struct {
	t    *testing.T
	cli  *client.Client
	rt   *docker.Runtime
	repo string
}

func newScenario(t *testing.T) *scenario {
	cli := testenv.Docker(t)
	rt, err := docker.New(testenv.DockerHost(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return &scenario{t: t, cli: cli, rt: rt, repo: "itest.local/" + testenv.UniqueName("sweep")}
}

func (s *scenario) ref(tag string) string { return s.repo + "/app:" + tag }

// spec selects what patterns say, without age guards.
func (s *scenario) spec(patterns ...string) v1alpha1.ImageCleanupPolicySpec {
	return policySpec(s.t, nil, patterns...)
}

func (s *scenario) sweep(spec v1alpha1.ImageCleanupPolicySpec) cleanup.Outcome {
	s.t.Helper()
	return s.sweepAt(spec, time.Now())
}

func (s *scenario) sweepAt(spec v1alpha1.ImageCleanupPolicySpec, now time.Time) cleanup.Outcome {
	s.t.Helper()
	return sweepOn(s.t, s.rt, spec, now)
}

func reasons(ds []plan.Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Reason))
	}
	sort.Strings(out)
	return out
}

// The article's error, then its second answer automated: the stopped
// containers go first, then the image.
func TestSweepRemovesStoppedContainersThenImage(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	c1 := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit"})
	c2 := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{})
	if _, err := s.cli.ImageRemove(context.Background(), s.ref("1"), client.ImageRemoveOptions{}); err == nil {
		t.Fatal("the engine removed an image used by stopped containers; the scenario is void")
	}

	out := s.sweep(s.spec(s.ref("1")))
	if testenv.ImageExists(t, s.cli, id) || testenv.ContainerExists(t, s.cli, c1) || testenv.ContainerExists(t, s.cli, c2) {
		t.Fatal("the image or its stopped containers are still there")
	}
	r := out.Result
	if len(r.RemovedImages) != 1 || !r.RemovedImages[0].Deleted || len(r.RemovedContainers) != 2 || r.BytesReclaimed <= 0 {
		t.Fatalf("result %+v", r)
	}
}

// The article's first answer: force removes the image and leaves the stopped
// container (which can no longer start).
func TestSweepForceKeepsContainers(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	c := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit"})
	spec := s.spec(s.ref("1"))
	spec.StoppedContainers.Action = v1alpha1.StoppedContainersKeep

	out := s.sweep(spec)
	if !testenv.ImageExists(t, s.cli, id) || !slices.Equal(reasons(out.Result.Blocked), []string{"KeptStoppedContainer"}) {
		t.Fatalf("without force the image must stay, blocked: %+v", out.Result)
	}

	spec.Force = true
	out = s.sweep(spec)
	if testenv.ImageExists(t, s.cli, id) {
		t.Fatal("force did not remove the image")
	}
	if !testenv.ContainerExists(t, s.cli, c) {
		t.Fatal("force removed the kept container")
	}
	if len(out.Result.RemovedImages) != 1 || !out.Result.RemovedImages[0].Forced {
		t.Fatalf("result %+v", out.Result)
	}
}

// A running container blocks its image even with force, and its stopped
// siblings are not touched either.
func TestSweepRunningContainerBlocksEvenWithForce(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"), s.ref("2"))
	running := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "sleep"})
	stopped := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit"})
	spec := s.spec(s.repo + "/**")
	spec.Force = true

	out := s.sweep(spec)
	if !slices.Equal(reasons(out.Result.Blocked), []string{"RunningContainer"}) {
		t.Fatalf("blocked %+v", out.Result.Blocked)
	}
	if !testenv.ImageExists(t, s.cli, s.ref("1")) || !testenv.ImageExists(t, s.cli, s.ref("2")) || !testenv.ImageExists(t, s.cli, id) {
		t.Fatal("a tag of the running container's image is gone")
	}
	if !testenv.ContainerExists(t, s.cli, running) || !testenv.ContainerExists(t, s.cli, stopped) {
		t.Fatal("a container is gone")
	}
}

// Multi-tag image: a selected tag is untagged, the image (and its stopped
// container) stays while another tag remains; selecting every tag removes it
// tag by tag, without force.
func TestSweepMultiTagImage(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"), s.ref("2"), s.repo+"/other:1")
	c := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit"})

	s.sweep(s.spec(s.repo + "/app:*"))
	if testenv.ImageExists(t, s.cli, s.ref("1")) || testenv.ImageExists(t, s.cli, s.ref("2")) {
		t.Fatal("selected tags still there")
	}
	if !testenv.ImageExists(t, s.cli, s.repo+"/other:1") || !testenv.ContainerExists(t, s.cli, c) {
		t.Fatal("the other tag or the container went")
	}

	out := s.sweep(s.spec(s.repo + "/**"))
	if testenv.ImageExists(t, s.cli, id) || testenv.ContainerExists(t, s.cli, c) {
		t.Fatal("selecting every tag did not remove the image and its container")
	}
	if out.Result.RemovedImages[0].Forced {
		t.Fatal("forced without need")
	}
}

// An image with a dependent child: blocked alone, removed with its child.
func TestSweepDependentChildImage(t *testing.T) {
	s := newScenario(t)
	parent := testenv.ImportImage(t, s.cli, s.ref("base"))
	c := testenv.CreateContainer(t, s.cli, s.ref("base"), testenv.ContainerOptions{Run: "exit"})
	child := testenv.CommitChild(t, s.cli, c, s.repo+"/child:1")

	out := s.sweep(s.spec(s.ref("base")))
	if !testenv.ImageExists(t, s.cli, parent) || !slices.Equal(reasons(out.Result.Blocked), []string{"DependentChildren"}) {
		t.Fatalf("want the parent blocked by its child: %+v", out.Result)
	}
	if !testenv.ContainerExists(t, s.cli, c) {
		t.Fatal("the container of a blocked image was removed")
	}

	s.sweep(s.spec(s.ref("base"), s.repo+"/child:1"))
	if testenv.ImageExists(t, s.cli, parent) || testenv.ImageExists(t, s.cli, child) {
		t.Fatal("parent and child should both be gone")
	}
}

// A container started between plan and apply: the runtime refuses to remove
// it, so the image stays; the outcome is blocked, not an error.
func TestApplyContainerStartedAfterPlan(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	c := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{SleepWhenStarted: true})
	ctx := context.Background()
	spec := s.spec(s.ref("1"))
	opts, err := plan.OptionsFor(&spec, nil, runtimefake.Docker.Capabilities)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := cleanup.Collect(ctx, s.rt)
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Make(&inv, &opts, time.Now())
	if len(p.Actions) != 1 || len(p.Actions[0].Containers) != 1 {
		t.Fatalf("plan %+v", p)
	}

	if _, err := s.cli.ContainerStart(ctx, c, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	r := apply.Run(ctx, s.rt, &p, apply.Options{})
	if !testenv.ContainerExists(t, s.cli, c) || !testenv.ImageExists(t, s.cli, id) {
		t.Fatal("the started container or its image was removed")
	}
	if !slices.Equal(reasons(r.Blocked), []string{"RunningContainer"}) || len(r.Failed) > 0 || len(r.RemovedImages) > 0 {
		t.Fatalf("want one image blocked by its running container: %+v", r)
	}
}

// Dangling images go when asked, unless a container uses them.
func TestSweepDanglingImages(t *testing.T) {
	s := newScenario(t)
	dangling := testenv.ImportImage(t, s.cli)
	used := testenv.ImportImage(t, s.cli)
	c := testenv.CreateContainer(t, s.cli, used, testenv.ContainerOptions{Run: "exit"})
	tagged := testenv.ImportImage(t, s.cli, s.ref("1"))

	spec := s.spec(s.repo + "/nothing:*")
	s.sweep(spec)
	if !testenv.ImageExists(t, s.cli, dangling) {
		t.Fatal("a dangling image went without dangling: true")
	}
	spec.Dangling = true
	s.sweep(spec)
	if testenv.ImageExists(t, s.cli, dangling) {
		t.Fatal("the dangling image is still there")
	}
	if !testenv.ImageExists(t, s.cli, used) || !testenv.ContainerExists(t, s.cli, c) || !testenv.ImageExists(t, s.cli, tagged) {
		t.Fatal("dangling: true removed an image a container uses, or a tagged image")
	}
}

type runtimeState struct{ images, containers []string }

func stateOf(t *testing.T, cli *client.Client) runtimeState {
	t.Helper()
	ctx := context.Background()
	imgsRes, err := cli.ImageList(ctx, client.ImageListOptions{All: true})
	imgs := imgsRes.Items
	if err != nil {
		t.Fatal(err)
	}
	ctrsRes, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	ctrs := ctrsRes.Items
	if err != nil {
		t.Fatal(err)
	}
	var st runtimeState
	for _, i := range imgs {
		st.images = append(st.images, i.ID+" "+strings.Join(i.RepoTags, ","))
	}
	for _, c := range ctrs {
		st.containers = append(st.containers, c.ID+" "+string(c.State))
	}
	sort.Strings(st.images)
	sort.Strings(st.containers)
	return st
}

// dryRun reports the plan and changes nothing.
func TestSweepDryRunChangesNothing(t *testing.T) {
	s := newScenario(t)
	testenv.ImportImage(t, s.cli, s.ref("1"), s.ref("2"))
	testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit"})
	testenv.ImportImage(t, s.cli)
	spec := s.spec("**")
	spec.DryRun, spec.Dangling, spec.Force = true, true, true

	before := stateOf(t, s.cli)
	out := s.sweep(spec)
	if after := stateOf(t, s.cli); !slices.Equal(before.images, after.images) || !slices.Equal(before.containers, after.containers) {
		t.Fatalf("dry run changed the engine:\nbefore %v\nafter  %v", before, after)
	}
	if !out.Result.DryRun || len(out.Result.RemovedImages) < 2 || len(out.Result.RemovedContainers) < 1 {
		t.Fatalf("the dry run does not report its plan: %+v", out.Result)
	}
	for method := range s.rt.Calls() {
		if strings.Contains(method, "Remove") {
			t.Fatalf("dry run called %s", method)
		}
	}
}

// An invalid policy changes nothing and calls nothing.
func TestSweepInvalidPolicyChangesNothing(t *testing.T) {
	s := newScenario(t)
	testenv.ImportImage(t, s.cli, s.ref("1"))
	before := stateOf(t, s.cli)
	spec := s.spec(s.ref("1"))
	spec.Images = append(spec.Images, "Not A Reference")
	_, err := cleanup.NewSweep(s.rt, &spec, time.Now(), cleanup.Options{}).Run(context.Background())
	if !errors.Is(err, cleanup.ErrInvalidPolicy) {
		t.Fatalf("err = %v, want ErrInvalidPolicy", err)
	}
	if len(s.rt.Calls()) > 0 {
		t.Fatalf("an invalid policy made engine calls: %v", s.rt.Calls())
	}
	if after := stateOf(t, s.cli); !slices.Equal(before.images, after.images) {
		t.Fatal("the engine changed")
	}
}

// The kubelet's stopped containers block unless the policy opts in.
func TestSweepKubernetesManagedContainers(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	c := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit",
		Labels: map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.container.name": "web"}})
	spec := s.spec(s.ref("1"))
	out := s.sweep(spec)
	if !slices.Equal(reasons(out.Result.Blocked), []string{"KubernetesManaged"}) || !testenv.ContainerExists(t, s.cli, c) {
		t.Fatalf("want blocked by the kubelet's container: %+v", out.Result)
	}
	spec.StoppedContainers.IncludeKubernetesManaged = true
	s.sweep(spec)
	if testenv.ImageExists(t, s.cli, id) || testenv.ContainerExists(t, s.cli, c) {
		t.Fatal("with opt-in, the container and the image should be gone")
	}
}

// Age guards read the runtime's own times: a fresh image and a container that
// just exited are spared, and go once the clock has moved on.
func TestSweepAgeGuards(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	c := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{Run: "exit"})
	spec := s.spec(s.ref("1"))
	hour := v1alpha1.Duration("1h")
	spec.MinImageAge = &hour
	out := s.sweep(spec)
	if !slices.Equal(reasons(out.Result.Skipped), []string{"TooYoung"}) || !testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("want a young image skipped: %+v", out.Result)
	}

	zero := v1alpha1.Duration("0s")
	spec.MinImageAge = &zero
	spec.StoppedContainers.MinStoppedAge = &hour
	out = s.sweep(spec)
	if !slices.Equal(reasons(out.Result.Blocked), []string{"StoppedRecently"}) {
		t.Fatalf("want the image blocked while its container stopped recently: %+v", out.Result)
	}
	if !testenv.ContainerExists(t, s.cli, c) {
		t.Fatal("a container that stopped a moment ago was removed")
	}

	s.sweepAt(spec, time.Now().Add(2*time.Hour))
	if testenv.ImageExists(t, s.cli, id) || testenv.ContainerExists(t, s.cli, c) {
		t.Fatal("two hours later both should be gone")
	}
}

// proxied returns a fault proxy in front of the private runtime and an
// runtime client that talks through it.
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
