package plan_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

var (
	tagPool = []string{"app:1", "app:2", "app:pr-7", "db:1", "registry.example.com/ci/x:pr-1", "registry.example.com/ci/team/y:2",
		"registry.k8s.io/pause:3.9", "agent:v1", "busybox:latest", "busybox:1.36"}
	patternPool = []string{"app:*", "app:1", "db", "db:1", "**", "registry.example.com/ci/**", "busybox", "**:latest", "app:pr-*", "*/*:*"}
	statePool   = []string{runtime.StateRunning, runtime.StatePaused, runtime.StateRestarting, runtime.StateRemoving,
		runtime.StateExited, runtime.StateCreated, runtime.StateDead}
)

func pick[T any](r *rand.Rand, from []T, n int) []T {
	out := make([]T, 0, n)
	for _, i := range r.Perm(len(from))[:min(n, len(from))] {
		out = append(out, from[i])
	}
	return out
}

// randomInventory also returns when the image clock first saw each image.
// A CRI runtime has no parent images, and pins some.
func randomInventory(r *rand.Rand, cri bool) (runtime.Inventory, map[string]time.Time) {
	var inv runtime.Inventory
	firstSeen := map[string]time.Time{}
	unusedTags := pick(r, tagPool, len(tagPool))
	for i := range 1 + r.IntN(10) {
		im := runtime.Image{
			ID:      id(fmt.Sprintf("img-%d", i)),
			Created: now.Add(-time.Duration(r.IntN(96)) * time.Hour),
			Size:    int64(1000 * (i + 1)),
		}
		for n := r.IntN(3); n > 0 && len(unusedTags) > 0; n-- {
			im.RepoTags, unusedTags = append(im.RepoTags, unusedTags[0]), unusedTags[1:]
		}
		if r.IntN(5) == 0 {
			im.RepoDigests = []string{fmt.Sprintf("registry.example.com/ci/x@sha256:%064x", i)}
		}
		if i > 0 && r.IntN(4) == 0 && !cri {
			im.ParentID = inv.Images[r.IntN(i)].ID
		}
		if cri && r.IntN(6) == 0 {
			im.Pinned = true
		}
		if r.IntN(4) == 0 {
			im.LastTagTime = now.Add(-time.Duration(r.IntN(120)) * time.Minute)
		}
		inv.Images = append(inv.Images, im)
		firstSeen[im.ID] = now.Add(-time.Duration(r.IntN(180)) * time.Minute)
	}
	for i := range r.IntN(12) {
		c := runtime.Container{
			ID:      cid(fmt.Sprintf("c-%d", i)),
			Name:    fmt.Sprintf("c-%d", i),
			ImageID: inv.Images[r.IntN(len(inv.Images))].ID,
			State:   statePool[r.IntN(len(statePool))],
			Created: now.Add(-time.Duration(r.IntN(48)) * time.Hour),
		}
		if c.State != runtime.StateCreated {
			c.FinishedAt = now.Add(-time.Duration(r.IntN(180)) * time.Minute)
		}
		switch r.IntN(6) {
		case 0:
			c.Labels = map[string]string{"io.kubernetes.pod.name": "p"}
		case 1:
			c.Labels, c.Sandbox = map[string]string{"io.kubernetes.docker.type": "podsandbox"}, true
		}
		inv.Containers = append(inv.Containers, c)
	}
	return inv, firstSeen
}

// throughTheClock runs the inventory through an image clock that saw each
// image first at firstSeen, then reads the runtime's LastTagTime as a sweep
// does, and stamps the arrivals the planner reads.
func throughTheClock(inv *runtime.Inventory, firstSeen map[string]time.Time) {
	clock := imageclock.InMemory()
	order := slices.SortedFunc(maps.Keys(firstSeen), func(a, b string) int { return firstSeen[a].Compare(firstSeen[b]) })
	for i, id := range order {
		var seen runtime.Inventory
		for _, im := range inv.Images {
			if slices.Contains(order[:i+1], im.ID) {
				seen.Images = append(seen.Images, im)
			}
		}
		clock.Observe(&seen, firstSeen[id])
	}
	clock.Observe(inv, now)
	for i := range inv.Images {
		clock.ProvenBy(&inv.Images[i])
	}
}

func randomSpec(r *rand.Rand) v1alpha1.ImageCleanupPolicySpec {
	var p v1alpha1.ImageCleanupPolicy
	for _, s := range pick(r, patternPool, 1+r.IntN(3)) {
		p.Spec.Images = append(p.Spec.Images, v1alpha1.ImagePattern(s))
	}
	for _, s := range pick(r, tagPool, r.IntN(3)) {
		p.Spec.Exclude = append(p.Spec.Exclude, v1alpha1.ImagePattern(s))
	}
	ages := []v1alpha1.Duration{"0s", "30m", "1h", "24h"}
	p.Spec.MinImageAge = &ages[r.IntN(len(ages))]
	p.Spec.StoppedContainers.MinStoppedAge = &ages[r.IntN(len(ages))]
	p.Spec.Dangling = r.IntN(2) == 0
	p.Spec.Force = r.IntN(2) == 0
	p.Spec.StoppedContainers.Action = []v1alpha1.StoppedContainerAction{v1alpha1.StoppedContainersRemove, v1alpha1.StoppedContainersKeep}[r.IntN(2)]
	p.Spec.StoppedContainers.IncludeKubernetesManaged = p.Spec.StoppedContainers.Action == v1alpha1.StoppedContainersRemove && r.IntN(2) == 0
	p.Spec.MaxImagesPerSweep = int32(r.IntN(4))
	policyschema.Default(&p)
	return p.Spec
}

// The safety rules hold for every plan, and the runtime afterwards shows it:
// 2,000 random inventories and policies, fixed seed, on each runtime's
// rules (Docker's, and containerd's CRI, which removes an image with every
// reference and checks no container). While the plan is applied, containers
// start, and new ones are created, at random moments: one that started or
// was created before the re-check of a removal protects its image (every
// tag it had then).
func TestPlanSafetyProperties(t *testing.T) {
	for _, runtime := range []struct {
		name string
		cri  bool
	}{{"docker", false}, {"cri", true}} {
		t.Run(runtime.name, func(t *testing.T) { planSafetyProperties(t, runtime.cri) })
	}
}

func planSafetyProperties(t *testing.T, cri bool) {
	r := rand.New(rand.NewPCG(2026, 11))
	caps := runtimefake.Docker.Capabilities
	if cri {
		caps = runtimefake.CRI.Capabilities
	}
	actions := 0
	for round := range 2000 {
		inv, firstSeen := randomInventory(r, cri)
		throughTheClock(&inv, firstSeen)
		s := randomSpec(r)
		opts, err := plan.OptionsFor(&s, []string{"agent:v1"}, caps)
		if err != nil {
			t.Fatal(err)
		}
		p := plan.Make(&inv, &opts, now)
		actions += len(p.Actions)
		describe := func() string { return fmt.Sprintf("round %d\nspec %+v\ninventory %+v\nplan %+v", round, s, inv, p) }
		checkPlan(t, &inv, &opts, &p, describe)
		checkClock(t, &inv, &opts, &p, firstSeen, describe)

		fake := runtimefake.New()
		if cri {
			fake.Rules = runtimefake.CRI
		}
		for _, im := range inv.Images {
			fake.AddImage(im)
		}
		for _, c := range inv.Containers {
			fake.AddContainer(c)
		}
		meanwhile := anotherHandMeanwhile(r, fake, &inv)
		// One action at a time, so that "before the re-check" is well defined.
		apply.Run(context.Background(), fake, &p, apply.Options{Concurrency: 1})
		checkRuntime(t, &inv, &opts, fake, describe)
		for _, st := range meanwhile.started {
			if missing := slices.DeleteFunc(slices.Clone(st.tags), func(tag string) bool { return slices.Contains(fake.Tags(st.imageID), tag) }); len(missing) > 0 {
				t.Errorf("container %s started before a re-check, yet its image lost %v\n%s", st.name, missing, describe())
			}
		}
		if !opts.Force || cri {
			// Without force, a container created before the re-check keeps
			// its image (with force, on Docker, stopped ones do not).
			for _, c := range meanwhile.created {
				if !fake.HasImage(c.imageID) {
					t.Errorf("container %s was created before a re-check, yet its image %s is gone\n%s", c.name, c.imageID, describe())
				}
			}
		}
		if t.Failed() {
			return
		}
	}
	least := 1000
	if cri {
		least = 600 // fewer: an image goes only with all its tags selected
	}
	if actions < least {
		t.Fatalf("only %d actions in 2000 rounds: the generator does not exercise removal", actions)
	}
}

type startedContainer struct {
	name, imageID string
	tags          []string // the image's tags when it started
}

type meanwhile struct {
	started, created []startedContainer
}

// anotherHandMeanwhile starts a random stopped container of the runtime, or
// creates a new stopped one on a random image, now and then, as the
// executor re-checks an image (the call that lists the image's containers)
// or removes a container: another hand at work during the sweep.
func anotherHandMeanwhile(r *rand.Rand, fake *runtimefake.Runtime, inv *runtime.Inventory) *meanwhile {
	m := &meanwhile{}
	fake.BeforeCall = func(method, _ string) {
		if (method != "ContainersUsing" && method != "RemoveContainer") || r.IntN(3) != 0 {
			return
		}
		if r.IntN(4) == 0 {
			im := inv.Images[r.IntN(len(inv.Images))]
			if !fake.HasImage(im.ID) {
				return
			}
			name := fmt.Sprintf("meanwhile-%d", len(m.created))
			fake.AddContainer(runtime.Container{ID: cid(name), Name: name, ImageID: im.ID, State: runtime.StateCreated, Created: now})
			m.created = append(m.created, startedContainer{name: name, imageID: im.ID, tags: fake.Tags(im.ID)})
			return
		}
		if len(inv.Containers) == 0 {
			return
		}
		c := inv.Containers[r.IntN(len(inv.Containers))]
		if !c.Stopped() || !fake.HasContainer(c.ID) || !fake.HasImage(c.ImageID) {
			return
		}
		fake.SetState(c.ID, runtime.StateRunning)
		m.started = append(m.started, startedContainer{name: c.Name, imageID: c.ImageID, tags: fake.Tags(c.ImageID)})
	}
	return m
}

// checkClock: an image is removed only if it arrived at least minImageAge
// ago by the clock, its first sighting, or earlier only where the runtime's
// LastTagTime proves it; never by its build date.
func checkClock(t *testing.T, inv *runtime.Inventory, opts *plan.Options, p *plan.Plan, firstSeen map[string]time.Time, describe func() string) {
	t.Helper()
	for _, a := range p.Actions {
		arrived := firstSeen[a.ImageID]
		for _, im := range inv.Images {
			if im.ID == a.ImageID && !im.LastTagTime.IsZero() && im.LastTagTime.Before(arrived) {
				arrived = im.LastTagTime
			}
		}
		if now.Sub(arrived) < opts.MinImageAge {
			t.Errorf("plan removes %s, which arrived %s ago (minImageAge %s)\n%s", a.Image, now.Sub(arrived), opts.MinImageAge, describe())
		}
	}
}

func checkPlan(t *testing.T, inv *runtime.Inventory, opts *plan.Options, p *plan.Plan, describe func() string) {
	t.Helper()
	containers := map[string]runtime.Container{}
	inUse := map[string]bool{}
	sandbox := map[string]bool{}
	for _, c := range inv.Containers {
		containers[c.ID] = c
		if !c.Stopped() {
			inUse[c.ImageID] = true
		}
		if c.Sandbox {
			sandbox[c.ImageID] = true
		}
	}
	images := map[string]runtime.Image{}
	for _, im := range inv.Images {
		images[im.ID] = im
	}
	for _, a := range p.Actions {
		im := images[a.ImageID]
		if inUse[a.ImageID] {
			t.Errorf("plan removes %s, used by a running container\n%s", a.Image, describe())
		}
		if sandbox[a.ImageID] || opts.Protected.Select(match.Image{ID: im.ID, RepoTags: im.RepoTags}).Any() || slices.ContainsFunc(im.RepoTags, func(s string) bool { return strings.Contains(s, "pause") }) {
			t.Errorf("plan removes protected %s\n%s", a.Image, describe())
		}
		excl := opts.Exclude.Select(match.Image{ID: im.ID, RepoTags: im.RepoTags, RepoDigests: im.RepoDigests})
		if excl.Whole || a.Delete && len(excl.Tags) > 0 {
			t.Errorf("plan removes excluded %s\n%s", a.Image, describe())
		}
		for _, ref := range a.Refs {
			if opts.Exclude.MatchTag(ref) {
				t.Errorf("plan untags excluded %s\n%s", ref, describe())
			}
		}
		for _, c := range a.Containers {
			ctr := containers[c.ID]
			if !ctr.Stopped() {
				t.Errorf("plan removes %s container %s\n%s", ctr.State, c.Name, describe())
			}
			if ctr.KubernetesManaged() && !opts.IncludeKubernetesManaged {
				t.Errorf("plan removes Kubernetes container %s without opt-in\n%s", c.Name, describe())
			}
			if ctr.ImageID != a.ImageID {
				t.Errorf("plan removes container %s of another image\n%s", c.Name, describe())
			}
		}
	}
	if opts.MaxImages > 0 && len(p.Actions) > opts.MaxImages {
		t.Errorf("%d actions over maxImagesPerSweep %d\n%s", len(p.Actions), opts.MaxImages, describe())
	}
}

// checkRuntime: after applying, running containers and what they use, excluded
// tags and protected images are all still there, and so is everything the
// policy does not select.
func checkRuntime(t *testing.T, inv *runtime.Inventory, opts *plan.Options, fake *runtimefake.Runtime, describe func() string) {
	t.Helper()
	selectedWhole := map[string]bool{}
	for _, im := range inv.Images {
		sel := opts.Images.Select(match.Image{ID: im.ID, RepoTags: im.RepoTags, RepoDigests: im.RepoDigests})
		// dangling: true selects untagged images whole; the runtime also
		// prunes untagged parents with their last child.
		selectedWhole[im.ID] = sel.Whole || im.Untagged()
		for _, tag := range im.RepoTags {
			if !sel.Whole && !opts.Images.MatchTag(tag) && !slices.Contains(fake.Tags(im.ID), tag) {
				t.Errorf("tag %s, which the policy does not select, is gone\n%s", tag, describe())
			}
		}
	}
	for _, c := range inv.Containers {
		img := match.Image{}
		for _, im := range inv.Images {
			if im.ID == c.ImageID {
				img = match.Image{ID: im.ID, RepoTags: im.RepoTags, RepoDigests: im.RepoDigests}
			}
		}
		if !selectedWhole[c.ImageID] && len(opts.Images.Select(img).Tags) == 0 && !fake.HasContainer(c.ID) {
			t.Errorf("container %s of an image the policy does not select is gone\n%s", c.Name, describe())
		}
	}
	for _, c := range inv.Containers {
		if !c.Stopped() || (c.KubernetesManaged() && !opts.IncludeKubernetesManaged) {
			if !fake.HasContainer(c.ID) {
				t.Errorf("container %s (%s) is gone\n%s", c.Name, c.State, describe())
			}
			if !fake.HasImage(c.ImageID) {
				t.Errorf("image %s of container %s (%s) is gone\n%s", c.ImageID, c.Name, c.State, describe())
			}
		}
		if !c.Stopped() {
			for _, im := range inv.Images {
				if im.ID == c.ImageID && !slices.Equal(fake.Tags(im.ID), slices.Sorted(slices.Values(im.RepoTags))) {
					t.Errorf("image %v of running container %s lost tags: now %v\n%s", im.RepoTags, c.Name, fake.Tags(im.ID), describe())
				}
			}
		}
	}
	for _, im := range inv.Images {
		for _, tag := range im.RepoTags {
			protected := opts.Exclude.MatchTag(tag) || strings.Contains(tag, "pause") || opts.Protected.MatchTag(tag)
			if protected && !slices.Contains(fake.Tags(im.ID), tag) {
				t.Errorf("excluded or protected tag %s is gone\n%s", tag, describe())
			}
		}
		if im.Pinned && !fake.HasImage(im.ID) {
			t.Errorf("pinned image %s is gone\n%s", im.ID, describe())
		}
	}
	if !opts.Force || !opts.Runtime.ForceRemoval {
		// Without a forced removal, no container, in any state, is left
		// without its image.
		for _, c := range inv.Containers {
			if fake.HasContainer(c.ID) && !fake.HasImage(c.ImageID) {
				t.Errorf("container %s (%s) stays, its image %s is gone\n%s", c.Name, c.State, c.ImageID, describe())
			}
		}
	}
}
