package plan_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// id is a stable image or container ID made from a short name.
func id(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func cid(name string) string { return strings.TrimPrefix(id("container-"+name), "sha256:") }

// img is an image that arrived two days ago (built a year ago), 1000 bytes.
func img(name string, tags ...string) runtime.Image {
	return runtime.Image{ID: id(name), RepoTags: tags, Created: now.AddDate(-1, 0, 0), Arrived: now.Add(-48 * time.Hour), Size: 1000}
}

func ctr(name, image, state string) runtime.Container {
	return runtime.Container{ID: cid(name), Name: name, ImageID: id(image), State: state, Created: now.Add(-48 * time.Hour), FinishedAt: now.Add(-47 * time.Hour)}
}

// spec is a defaulted policy without age guards, so that each case adds only
// the guard it tests.
func spec(images ...string) v1alpha1.ImageCleanupPolicySpec {
	p := v1alpha1.ImageCleanupPolicy{}
	for _, i := range images {
		p.Spec.Images = append(p.Spec.Images, v1alpha1.ImagePattern(i))
	}
	zero := v1alpha1.Duration("0s")
	p.Spec.MinImageAge = &zero
	p.Spec.StoppedContainers.MinStoppedAge = &zero
	policyschema.Default(&p)
	return p.Spec
}

// summary prints a plan one line per image, in plan order, for comparison.
func summary(p plan.Plan) []string {
	var out []string
	for _, a := range p.Actions {
		line := fmt.Sprintf("remove %s refs=%s", a.Image, strings.Join(shortRefs(a.Refs), ","))
		if a.Delete {
			line += " delete"
		}
		if a.Force {
			line += " force"
		}
		if len(a.Containers) > 0 {
			var names []string
			for _, c := range a.Containers {
				names = append(names, c.Name)
			}
			slices.Sort(names)
			line += " containers=" + strings.Join(names, ",")
		}
		out = append(out, line)
	}
	for _, d := range p.Blocked {
		out = append(out, fmt.Sprintf("blocked %s %s", d.Image, d.Reason))
	}
	for _, d := range p.Skipped {
		out = append(out, fmt.Sprintf("skipped %s %s", d.Image, d.Reason))
	}
	return out
}

func shortRefs(refs []string) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		if strings.HasPrefix(r, "sha256:") {
			r = "id:" + runtime.ShortID(r)
		}
		out[i] = r
	}
	return out
}

type planCase struct {
	images     []runtime.Image
	containers []runtime.Container
	spec       v1alpha1.ImageCleanupPolicySpec
	protected  []string
	want       []string
}

func with(s v1alpha1.ImageCleanupPolicySpec, f func(*v1alpha1.ImageCleanupPolicySpec)) v1alpha1.ImageCleanupPolicySpec {
	f(&s)
	return s
}

func dur(s string) *v1alpha1.Duration { d := v1alpha1.Duration(s); return &d }

func TestMake(t *testing.T) {
	young := img("young", "app:young")
	young.Arrived = now.Add(-10 * time.Minute)
	pulled := img("pulled", "app:pulled")
	pulled.Arrived = time.Time{} // the clock has not seen it: built long ago, pulled just now
	digestPause := img("digest-pause")
	digestPause.RepoTags = nil
	digestPause.RepoDigests = []string{"registry.example.com/k8s/pause@sha256:" + strings.Repeat("f", 64)}
	recent := ctr("recent", "a", runtime.StateExited)
	recent.FinishedAt = now.Add(-5 * time.Minute)
	neverStarted := ctr("never", "a", runtime.StateCreated)
	neverStarted.FinishedAt = time.Time{}
	kubelet := ctr("kubelet", "a", runtime.StateExited)
	kubelet.Labels = map[string]string{"io.kubernetes.pod.name": "web-1", "io.kubernetes.container.name": "web"}
	sandbox := ctr("sandbox", "pauselike", runtime.StateRunning)
	sandbox.Labels, sandbox.Sandbox = map[string]string{"io.kubernetes.docker.type": "podsandbox"}, true
	child := img("child", "app:child")
	child.ParentID = id("a")
	intermediate := img("intermediate")
	intermediate.ParentID = id("a")
	grandchild := img("grandchild", "app:grandchild")
	grandchild.ParentID = id("intermediate")
	digestOnly := img("digest-only")
	digestOnly.RepoDigests = []string{"registry.example.com/ci/app@sha256:" + strings.Repeat("d", 64)}
	tagAndDigest := img("tag-and-digest", "registry.example.com/ci/app:1")
	tagAndDigest.RepoDigests = []string{"registry.example.com/ci/app@sha256:" + strings.Repeat("e", 64)}
	older := img("older", "app:older")
	older.Arrived = now.Add(-72 * time.Hour)
	oldest := img("oldest", "app:oldest")
	oldest.Arrived = now.Add(-96 * time.Hour)

	usedLately := img("used-lately", "app:used-lately") // arrived 2 days ago, ran an hour ago
	usedLately.LastUsed = now.Add(-time.Hour)
	usedLongAgo := img("used-long-ago", "app:used-long-ago")
	usedLongAgo.Arrived = now.Add(-30 * 24 * time.Hour)
	usedLongAgo.LastUsed = now.Add(-20 * 24 * time.Hour)
	build := func(n int) runtime.Image {
		b := img(fmt.Sprintf("build-%d", n), fmt.Sprintf("registry.example.com/ci/app:%d", n))
		b.Arrived = now.Add(-time.Duration(100-n) * time.Hour)
		return b
	}

	tests := map[string]planCase{
		"least recently used first under a budget": {
			images: []runtime.Image{usedLately, usedLongAgo, oldest},
			spec: with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) {
				s.Order, s.MaxImagesPerSweep = v1alpha1.OrderLeastRecentlyUsed, 2
			}),
			want: []string{"remove app:used-long-ago refs=app:used-long-ago delete", "remove app:oldest refs=app:oldest delete", "skipped app:used-lately Deferred"},
		},
		"oldest arrival first under a budget": {
			images: []runtime.Image{usedLately, usedLongAgo, oldest},
			spec:   with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.MaxImagesPerSweep = 1 }),
			want:   []string{"remove app:used-long-ago refs=app:used-long-ago delete", "skipped app:oldest Deferred", "skipped app:used-lately Deferred"},
		},
		"keepNewest keeps the newest builds of a repository": {
			images: []runtime.Image{build(1), build(2), build(3), build(4), img("other", "app:1")},
			spec:   with(spec("registry.example.com/ci/**", "app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.KeepNewest = 2 }),
			want: []string{"remove registry.example.com/ci/app:1 refs=registry.example.com/ci/app:1 delete",
				"remove registry.example.com/ci/app:2 refs=registry.example.com/ci/app:2 delete",
				"skipped app:1 KeptNewest", // the only one of its repository
				"skipped registry.example.com/ci/app:3 KeptNewest", "skipped registry.example.com/ci/app:4 KeptNewest"},
		},
		"maxUnusedAge spares what ran lately": {
			images: []runtime.Image{usedLately, usedLongAgo},
			spec:   with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { d := v1alpha1.Duration("168h"); s.MaxUnusedAge = &d }),
			want:   []string{"remove app:used-long-ago refs=app:used-long-ago delete", "skipped app:used-lately RecentlyUsed"},
		},
		"nothing selected": {
			images: []runtime.Image{img("a", "app:1")},
			spec:   spec("other:*"),
			want:   nil,
		},
		"unused image": {
			images: []runtime.Image{img("a", "app:1")},
			spec:   spec("app:1"),
			want:   []string{"remove app:1 refs=app:1 delete"},
		},
		"blocking stopped containers go first": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{ctr("c1", "a", runtime.StateExited), ctr("c2", "a", runtime.StateDead), neverStarted},
			spec:       spec("app:1"),
			want:       []string{"remove app:1 refs=app:1 delete containers=c1,c2,never"},
		},
		"running container blocks": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{ctr("web", "a", runtime.StateRunning)},
			spec:       spec("app:1"),
			want:       []string{"blocked app:1 RunningContainer"},
		},
		"paused and restarting containers block": {
			images:     []runtime.Image{img("a", "app:1"), img("b", "app:2")},
			containers: []runtime.Container{ctr("p", "a", runtime.StatePaused), ctr("r", "b", runtime.StateRestarting)},
			spec:       spec("app:*"),
			want:       []string{"blocked app:1 RunningContainer", "blocked app:2 RunningContainer"},
		},
		"a running container blocks even with force, and its stopped siblings stay": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{ctr("web", "a", runtime.StateRunning), ctr("old", "a", runtime.StateExited)},
			spec:       with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.Force = true }),
			want:       []string{"blocked app:1 RunningContainer"},
		},
		"running container blocks an untag too": {
			images:     []runtime.Image{img("a", "app:1", "app:2")},
			containers: []runtime.Container{ctr("web", "a", runtime.StateRunning)},
			spec:       spec("app:1"),
			want:       []string{"blocked app:1 RunningContainer"},
		},
		"action Keep blocks": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{ctr("c1", "a", runtime.StateExited)},
			spec:       with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.StoppedContainers.Action = v1alpha1.StoppedContainersKeep }),
			want:       []string{"blocked app:1 KeptStoppedContainer"},
		},
		"action Keep with force: the article's first answer": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{ctr("c1", "a", runtime.StateExited)},
			spec: with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) {
				s.StoppedContainers.Action = v1alpha1.StoppedContainersKeep
				s.Force = true
			}),
			want: []string{"remove app:1 refs=app:1 delete force"},
		},
		"recently stopped container blocks": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{recent, ctr("c1", "a", runtime.StateExited)},
			spec:       with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.StoppedContainers.MinStoppedAge = dur("1h") }),
			want:       []string{"blocked app:1 StoppedRecently"},
		},
		"recently stopped container with force: the others go, the image is forced": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{recent, ctr("c1", "a", runtime.StateExited)},
			spec: with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) {
				s.StoppedContainers.MinStoppedAge = dur("1h")
				s.Force = true
			}),
			want: []string{"remove app:1 refs=app:1 delete force containers=c1"},
		},
		"never-started container counts from its creation": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{neverStarted},
			spec:       with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.StoppedContainers.MinStoppedAge = dur("49h") }),
			want:       []string{"blocked app:1 StoppedRecently"},
		},
		"Kubernetes-managed container blocks without opt-in": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{kubelet},
			spec:       spec("app:1"),
			want:       []string{"blocked app:1 KubernetesManaged"},
		},
		"force does not take a Kubernetes-managed container's image": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{kubelet},
			spec:       with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.Force = true }),
			want:       []string{"blocked app:1 KubernetesManaged"},
		},
		"Kubernetes-managed container goes with opt-in": {
			images:     []runtime.Image{img("a", "app:1")},
			containers: []runtime.Container{kubelet},
			spec:       with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.StoppedContainers.IncludeKubernetesManaged = true }),
			want:       []string{"remove app:1 refs=app:1 delete containers=kubelet"},
		},
		"too young": {
			images: []runtime.Image{young},
			spec:   with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.MinImageAge = dur("1h") }),
			want:   []string{"skipped app:young TooYoung"},
		},
		"an arrival nobody knows is now, never the build date": {
			images: []runtime.Image{pulled},
			spec:   with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.MinImageAge = dur("1h") }),
			want:   []string{"skipped app:pulled TooYoung"},
		},
		"sandbox images by name, tag or digest": {
			images: []runtime.Image{img("p1", "registry.k8s.io/pause:3.9"), img("p2", "rancher/mirrored-pause:3.6"),
				img("p3", "k8s.gcr.io/pause-amd64:3.1"), digestPause, img("n", "registry.example.com/paused:1")},
			spec: spec("**"),
			want: []string{"remove registry.example.com/paused:1 refs=registry.example.com/paused:1 delete",
				"skipped k8s.gcr.io/pause-amd64:3.1 Protected", "skipped rancher/mirrored-pause:3.6 Protected",
				"skipped registry.example.com/k8s/pause@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff Protected",
				"skipped registry.k8s.io/pause:3.9 Protected"},
		},
		"extra sandbox image by flag": {
			images:    []runtime.Image{img("s", "registry.example.com/infra/sandbox:1")},
			spec:      spec("**"),
			protected: []string{"registry.example.com/infra/sandbox:*"},
			want:      []string{"skipped registry.example.com/infra/sandbox:1 Protected"},
		},
		"excluded": {
			images: []runtime.Image{img("a", "app:1"), img("b", "app:2")},
			spec:   with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.Exclude = []v1alpha1.ImagePattern{"app:2"} }),
			want:   []string{"remove app:1 refs=app:1 delete", "skipped app:2 Excluded"},
		},
		"excluded by ID wins over a tag match": {
			images: []runtime.Image{img("a", "app:1")},
			spec: with(spec("app:1"), func(s *v1alpha1.ImageCleanupPolicySpec) {
				s.Exclude = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(id("a")[:19])}
			}),
			want: []string{"skipped app:1 Excluded"},
		},
		"excluded tag keeps a multi-tag image, the other tag goes": {
			images:     []runtime.Image{img("a", "app:1", "app:keep")},
			containers: []runtime.Container{ctr("c1", "a", runtime.StateExited)},
			spec:       with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.Exclude = []v1alpha1.ImagePattern{"app:keep"} }),
			want:       []string{"remove app:1 refs=app:1"},
		},
		"multi-tag image, some tags match: untag only, containers stay": {
			images:     []runtime.Image{img("a", "app:1", "app:2", "other:1")},
			containers: []runtime.Container{ctr("c1", "a", runtime.StateExited)},
			spec:       spec("app:*"),
			want:       []string{"remove app:1 refs=app:1,app:2"},
		},
		"multi-tag image, every tag matches: deleted tag by tag": {
			images:     []runtime.Image{img("a", "app:1", "app:2")},
			containers: []runtime.Container{ctr("c1", "a", runtime.StateExited)},
			spec:       spec("app:*"),
			want:       []string{"remove app:1 refs=app:1,app:2 delete containers=c1"},
		},
		"ID prefix selects the whole image": {
			images: []runtime.Image{img("a", "app:1", "other:2")},
			spec:   spec("sha256:" + id("a")[7:19]),
			want:   []string{"remove app:1 refs=app:1,other:2 delete"},
		},
		"full ID": {
			images: []runtime.Image{img("a")},
			spec:   spec(id("a")),
			want:   []string{"remove " + runtime.ShortID(id("a")) + " refs=id:" + runtime.ShortID(id("a")) + " delete"},
		},
		"digest-only image by its digest": {
			images: []runtime.Image{digestOnly},
			spec:   spec("registry.example.com/ci/app@sha256:" + strings.Repeat("d", 64)),
			want:   []string{"remove " + digestOnly.RepoDigests[0] + " refs=" + digestOnly.RepoDigests[0] + " delete"},
		},
		"digest-only image by its repository": {
			images: []runtime.Image{digestOnly, tagAndDigest},
			spec:   spec("registry.example.com/ci/**"),
			want: []string{
				"remove " + digestOnly.RepoDigests[0] + " refs=" + digestOnly.RepoDigests[0] + " delete",
				"remove registry.example.com/ci/app:1 refs=registry.example.com/ci/app:1," + tagAndDigest.RepoDigests[0] + " delete",
			},
		},
		"pause images are protected": {
			images: []runtime.Image{img("p", "registry.k8s.io/pause:3.9"), img("q", "k8s.gcr.io/pause-amd64:3.1")},
			spec:   spec("**"),
			want:   []string{"skipped k8s.gcr.io/pause-amd64:3.1 Protected", "skipped registry.k8s.io/pause:3.9 Protected"},
		},
		"sandbox images are protected whatever their name": {
			images:     []runtime.Image{img("pauselike", "mirror.example.com/sandbox:1")},
			containers: []runtime.Container{sandbox},
			spec:       spec("**"),
			want:       []string{"skipped mirror.example.com/sandbox:1 Protected"},
		},
		"the agent's own image is protected": {
			images:    []runtime.Image{img("agent", "imagecleanup/agent:v1"), img("a", "app:1")},
			spec:      spec("**"),
			protected: []string{"imagecleanup/agent:v1"},
			want:      []string{"remove app:1 refs=app:1 delete", "skipped imagecleanup/agent:v1 Protected"},
		},
		"dangling images, not used by any container": {
			images:     []runtime.Image{img("d1"), img("d2"), img("a", "app:1")},
			containers: []runtime.Container{ctr("c", "d2", runtime.StateExited)},
			spec:       with(spec("other:1"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.Dangling = true }),
			want:       []string{"remove " + runtime.ShortID(id("d1")) + " refs=id:" + runtime.ShortID(id("d1")) + " delete"},
		},
		"dangling off leaves untagged images": {
			images: []runtime.Image{img("d1")},
			spec:   spec("app:*"),
			want:   nil,
		},
		"dependent child image blocks its parent": {
			images: []runtime.Image{img("a", "app:1"), child},
			spec:   spec("app:1"),
			want:   []string{"blocked app:1 DependentChildren"},
		},
		"child and parent both selected: child first": {
			images: []runtime.Image{img("a", "app:1"), child},
			spec:   spec("app:*"),
			want:   []string{"remove app:child refs=app:child delete", "remove app:1 refs=app:1 delete"},
		},
		"an intermediate image goes with its child": {
			images: []runtime.Image{img("a", "app:1"), intermediate, grandchild},
			spec:   spec("app:*"),
			want:   []string{"remove app:grandchild refs=app:grandchild delete", "remove app:1 refs=app:1 delete"},
		},
		"maxImagesPerSweep takes the oldest": {
			images: []runtime.Image{img("a", "app:1"), older, oldest},
			spec:   with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.MaxImagesPerSweep = 2 }),
			want:   []string{"remove app:oldest refs=app:oldest delete", "remove app:older refs=app:older delete", "skipped app:1 Deferred"},
		},
		"maxImagesPerSweep takes the child before its older parent": {
			images: []runtime.Image{img("a", "app:1"), child},
			spec:   with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.MaxImagesPerSweep = 1 }),
			want:   []string{"remove app:child refs=app:child delete", "skipped app:1 Deferred"},
		},
		"maxImagesPerSweep looks through an untagged intermediate": {
			images: []runtime.Image{img("a", "app:1"), intermediate, grandchild, oldest},
			spec:   with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) { s.MaxImagesPerSweep = 2 }),
			want:   []string{"remove app:oldest refs=app:oldest delete", "remove app:grandchild refs=app:grandchild delete", "skipped app:1 Deferred"},
		},
		"everything, with guards": {
			images:     []runtime.Image{img("a", "app:1"), img("b", "db:1"), young, img("p", "registry.k8s.io/pause:3.9")},
			containers: []runtime.Container{ctr("db", "b", runtime.StateRunning)},
			spec: with(spec("**"), func(s *v1alpha1.ImageCleanupPolicySpec) {
				s.MinImageAge = dur("1h")
			}),
			want: []string{"remove app:1 refs=app:1 delete", "blocked db:1 RunningContainer", "skipped app:young TooYoung", "skipped registry.k8s.io/pause:3.9 Protected"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			opts, err := plan.OptionsFor(&tc.spec, tc.protected, runtimefake.Docker.Capabilities)
			if err != nil {
				t.Fatal(err)
			}
			inv := runtime.Inventory{Images: tc.images, Containers: tc.containers}
			got := summary(plan.Make(&inv, &opts, now))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// What the clock holds back says when it lets it go, and every decision
// carries the image's size: a preview counts both (the report's decisions).
func TestDecisionsSayWhenAndHowBig(t *testing.T) {
	young := img("young", "app:young")
	young.Arrived, young.Size = now.Add(-10*time.Minute), 300
	used := img("used", "app:used")
	used.LastUsed, used.Size = now.Add(-time.Hour), 200
	excluded := img("excluded", "app:excluded")
	excluded.Size = 100
	inv := runtime.Inventory{Images: []runtime.Image{young, used, excluded}}
	s := with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.MinImageAge, s.MaxUnusedAge = dur("1h"), dur("24h")
		s.Exclude = []v1alpha1.ImagePattern{"app:excluded"}
	})
	opts, err := plan.OptionsFor(&s, nil, runtimefake.Docker.Capabilities)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]plan.Decision{}
	for _, d := range plan.Make(&inv, &opts, now).Skipped {
		got[d.Image] = d
	}
	for image, want := range map[string]plan.Decision{
		"app:young":    {Reason: plan.TooYoung, Size: 300, EligibleAt: now.Add(50 * time.Minute)},
		"app:used":     {Reason: plan.RecentlyUsed, Size: 200, EligibleAt: now.Add(23 * time.Hour)},
		"app:excluded": {Reason: plan.Excluded, Size: 100},
	} {
		d := got[image]
		if d.Reason != want.Reason || d.Size != want.Size || !d.EligibleAt.Equal(want.EligibleAt) {
			t.Errorf("%s: %s size %d eligible %s; want %s size %d eligible %s", image, d.Reason, d.Size, d.EligibleAt, want.Reason, want.Size, want.EligibleAt)
		}
	}
}

func TestCandidatesInspectOnlyWhatMatters(t *testing.T) {
	recent := img("a", "app:1")
	recent.Arrived = now.Add(-10 * time.Minute) // the runtime may prove it older
	inv := runtime.Inventory{
		Images: []runtime.Image{recent, img("b", "other:1"), img("c", "app:2"), img("d", "app:3")},
		Containers: []runtime.Container{
			ctr("stopped", "a", runtime.StateExited),
			ctr("running", "a", runtime.StateRunning),
			ctr("created", "a", runtime.StateCreated),
			ctr("unrelated", "b", runtime.StateExited),
		},
	}
	s := with(spec("app:*"), func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.MinImageAge = dur("1h")
		s.StoppedContainers.MinStoppedAge = dur("1h")
		s.Exclude = []v1alpha1.ImagePattern{"app:2"}
	})
	opts, err := plan.OptionsFor(&s, nil, runtimefake.Docker.Capabilities)
	if err != nil {
		t.Fatal(err)
	}
	images, containers := plan.Candidates(&inv, &opts, now)
	if !slices.Equal(images, []string{id("a")}) || !slices.Equal(containers, []string{cid("stopped")}) {
		t.Fatalf("Candidates = %v, %v; want only the recent image a and its exited container", images, containers)
	}

	s.MinImageAge, s.StoppedContainers.MinStoppedAge = dur("0s"), dur("0s")
	opts, _ = plan.OptionsFor(&s, nil, runtimefake.Docker.Capabilities)
	if images, containers := plan.Candidates(&inv, &opts, now); len(images)+len(containers) > 0 {
		t.Fatalf("with no age guards nothing needs inspecting, got %v %v", images, containers)
	}
}

func TestFormatDurationAsAPolicyWritesIt(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 45 * time.Second: "45s",
		time.Hour + 2*time.Second: "1h0m2s", 1500 * time.Millisecond: "2s", 0: "0s",
	} {
		if got := plan.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
