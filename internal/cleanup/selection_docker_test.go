package cleanup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// A pulled image has no LastTagTime and an old build date; it
// was removed seconds after the pull despite minImageAge: 24h. The image
// clock counts from its first sighting, and remembers it across restarts.
func TestAPulledImageIsYoung(t *testing.T) {
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
		c, warn, err := imageclock.Open(stateDir, imageclock.StoreKey{ID: "private"})
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

// Under images: ["**"], a pause image held by digest only and
// rancher/mirrored-pause were removed. Both are sandbox images by name.
func TestSandboxImagesStayByDigestAndMirror(t *testing.T) {
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

// Exclude: ["docker.io/**"] did not cover docker.io/myorg/app.
func TestExclusionCoversEveryDockerHubRepository(t *testing.T) {
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

// An image pulled by digest from an excluded repository and
// tagged into a selected one stays whole: the excluded digest reference
// would go with the last tag.
func TestExclusionCoversADigestReference(t *testing.T) {
	s := newScenario(t)
	reg := testenv.StartRegistry(t)
	prod := "prod/" + testenv.UniqueName("app")
	digest := reg.Push(t, prod, "1", time.Now().Add(-time.Hour))
	byDigest := reg.Host + "/" + prod + "@" + digest
	id := testenv.PullImage(t, s.cli, byDigest)
	if _, err := s.cli.ImageTag(context.Background(), client.ImageTagOptions{Source: id, Target: s.ref("pr-7")}); err != nil {
		t.Fatal(err)
	}
	spec := s.spec(s.repo + "/**")
	spec.Exclude = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(reg.Host + "/prod/**")}
	out := s.sweep(spec)
	if !testenv.ImageExists(t, s.cli, id) || !testenv.ImageExists(t, s.cli, byDigest) {
		t.Fatalf("the image with an excluded digest reference went: %+v", out.Result)
	}
	if d := decisionFor(out.Result.Skipped, id); d == nil || d.Reason != plan.Excluded {
		t.Fatalf("want it skipped as Excluded: %+v", out.Result)
	}
}

// The runtime pruned an untagged parent with its last child, even
// when the policy excluded it by ID or protected it; now it prunes only
// what the policy may remove, and the result names what it pruned.
func TestPruneRespectsExclusionAndProtection(t *testing.T) {
	for _, how := range []string{"excluded", "protected", "neither"} {
		t.Run(how, func(t *testing.T) {
			s := newScenario(t)
			parent := testenv.ImportImage(t, s.cli, s.ref("base"))
			c := testenv.CreateContainer(t, s.cli, s.ref("base"), testenv.ContainerOptions{})
			child := testenv.CommitChild(t, s.cli, c, s.ref("child"))
			// The parent loses its tag and stays, untagged, under its child.
			if _, err := s.cli.ImageRemove(context.Background(), s.ref("base"), client.ImageRemoveOptions{}); err == nil {
				t.Fatal("the engine untagged a parent used by a container; the scenario is void")
			}
			testenv.RemoveContainer(t, s.cli, c)
			if _, err := s.cli.ImageRemove(context.Background(), s.ref("base"), client.ImageRemoveOptions{}); err != nil {
				t.Fatal(err)
			}
			byID := "sha256:" + strings.TrimPrefix(parent, "sha256:")[:16]
			spec := s.spec(s.ref("child"))
			var protected []string
			switch how {
			case "excluded":
				spec.Exclude = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(byID)}
			case "protected":
				protected = []string{byID}
			}
			out := s.sweepWith(s.rt, spec, time.Now(), cleanup.Options{Protected: protected})
			if testenv.ImageExists(t, s.cli, child) {
				t.Fatalf("the child stayed: %+v", out.Result)
			}
			if keep := how != "neither"; testenv.ImageExists(t, s.cli, parent) != keep {
				t.Fatalf("%s parent present: %v, want %v: %+v", how, !keep, keep, out.Result)
			}
			var pruned []string
			for _, ri := range out.Result.RemovedImages {
				if ri.PrunedWith != "" {
					pruned = append(pruned, ri.ImageID)
				}
			}
			if how == "neither" && (len(pruned) != 1 || pruned[0] != parent) {
				t.Fatalf("the pruned parent is not in the result: %+v", out.Result.RemovedImages)
			}
			if how != "neither" && len(pruned) != 0 {
				t.Fatalf("the result names a prune that did not happen: %+v", out.Result.RemovedImages)
			}
		})
	}
}
