package controllers

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// The model's oracle: what the invariants of docs/policy.md allow, from
// the truth the model keeps, by readings of its own. It shares no code
// with the agent's planner or matcher: the model's world is small (a few
// repositories, references written in a few known forms), so each rule is
// written here for that world, plainly.

// violation names the invariant a removal breaks, by its number in
// docs/policy.md ("report" for the line on reports).
func violation(invariant string, format string, args ...any) string {
	return "invariant " + invariant + ": " + fmt.Sprintf(format, args...)
}

// onRemove checks each removal by the agent as it happens, against the
// runtime as it was when the removal's call began.
func (m *lifeModel) onRemove(r runtimefake.Removed) {
	m.mu.Lock()
	defer m.mu.Unlock()
	spec := m.sweeping
	if spec == nil {
		m.violate(violation("8", "%s %s removed outside a sweep", r.Kind, r.Image.ID+r.Container.ID))
		return
	}
	if r.Kind == "container" {
		c := r.Container
		switch {
		case c.MadeBy != "":
			m.violate(violation("1", "container %s, which %s made, removed", c.ID, c.MadeBy))
		case !c.Stopped():
			m.violate(violation("1", "running container %s removed", c.ID))
		case c.KubernetesManaged() && !spec.StoppedContainers.IncludeKubernetesManaged:
			m.violate(violation("1", "the kubelet's container %s removed without includeKubernetesManaged", c.ID))
		}
		delete(m.truth.containers, c.ID)
		if m.counting() {
			m.truth.ctrs++
		}
		return
	}
	img, id := r.Image, r.Image.ID
	if m.departed == nil {
		m.departed = map[string]lifeDeparture{}
	}
	m.departed[id] = lifeDeparture{at: m.sweepStart, now: true}
	// A mid-sweep step that raced the image's re-check fell in its window
	// of one round trip: what it did (a container, a use, a return) is not
	// held against the removal.
	raced := m.raced[id]
	for _, c := range r.Containers {
		if c.ImageID != id || raced && c.MadeBy == "" {
			continue
		}
		switch {
		case c.MadeBy != "":
			m.violate(violation("1", "image %s removed while container %s, which %s made, uses it", id, c.ID, c.MadeBy))
		case !c.Stopped() || !spec.Force:
			m.violate(violation("1", "image %s removed while %s container %s uses it (force %v)", id, c.State, c.ID, spec.Force))
		case c.KubernetesManaged() && !spec.StoppedContainers.IncludeKubernetesManaged:
			m.violate(violation("1", "image %s of the kubelet's container %s removed", id, c.ID))
		}
	}
	if why := excluded(spec, img); why != "" {
		m.violate(violation("2", "image %s removed although %s", id, why))
	}
	for _, tag := range img.RepoTags {
		if strings.HasPrefix(tag, "registry.k8s.io/pause:") || strings.HasPrefix(tag, "agent:") {
			m.violate(violation("3", "protected image %s (%s) removed", id, tag))
		}
	}
	if pod := m.podNaming(img); pod != "" {
		m.violate(violation("4", "image %s removed although pod %s is bound to the node and names it", id, pod))
	}
	if age := m.now.Sub(m.truth.arrived[id]); age < spec.MinImageAgeDuration() && !raced {
		m.violate(violation("5", "image %s removed %s after it arrived, minImageAge %s", id, age, spec.MinImageAgeDuration()))
	}
	if unused := spec.MaxUnusedAgeDuration(); unused > 0 && !m.pressure && !raced {
		if idle := m.now.Sub(later(m.truth.used[id], m.truth.arrived[id])); idle < unused {
			m.violate(violation("6", "image %s removed %s after its last use or arrival, maxUnusedAge %s (arrived %s, used %s)",
				id, idle, unused, m.truth.arrived[id], m.truth.used[id]))
		}
	}
	if img.Pinned {
		m.violate(violation("9", "pinned image %s removed", id))
	}
	if tag := unselectedTag(spec, img); tag != "" {
		m.violate(violation("10", "image %s removed with its tag %s, which the policy does not select", id, tag))
	}
	delete(m.truth.arrived, id)
}

// counting reports whether what the agent removes now counts for the
// policy's report: not once the policy is gone or the node left its
// selector (the report goes with them); m.mu is held.
func (m *lifeModel) counting() bool { return m.policy != nil && m.selected }

// --- references, read the model's way --------------------------------------

// familiar is a tag as the model writes it: Docker Hub's official
// repositories (one path element) without docker.io/library/.
func familiar(ref string) string {
	if rest, ok := strings.CutPrefix(ref, "docker.io/library/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return ref
}

// hexRef matches an image ID or a prefix of one, with or without sha256:.
var hexRef = regexp.MustCompile(`^(sha256:)?[0-9a-f]{1,64}$`)

// names reports whether a reference (as a pod or its status writes it)
// names the image: one of its tags, in either spelling; its ID or a prefix
// of it; its digest, under any repository.
func names(ref string, img runtime.Image) bool {
	for _, scheme := range []string{"docker-pullable://", "docker://", "containerd://"} {
		ref = strings.TrimPrefix(ref, scheme)
	}
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		for _, d := range img.RepoDigests {
			if strings.HasSuffix(d, "@"+digest) {
				return true
			}
		}
		return false
	}
	if hexRef.MatchString(ref) && strings.HasPrefix(img.ID, "sha256:"+strings.TrimPrefix(ref, "sha256:")) {
		return true
	}
	return slices.Contains(img.RepoTags, familiar(ref))
}

// podNaming names a pod not done that names the image, in any of the
// fields the model wrote; "" when none does; m.mu is held.
func (m *lifeModel) podNaming(img runtime.Image) string {
	for _, p := range m.pods {
		for _, ref := range p.refs {
			if names(ref, img) {
				return p.name + " (" + ref + ")"
			}
		}
	}
	return ""
}

// selects reports whether a pattern of the model's policies selects a tag:
// ** every tag; repo/** every tag below repo/; repo:* every tag of repo.
func selects(pattern, tag string) bool {
	name, _, _ := strings.Cut(tag, ":")
	switch {
	case pattern == "**":
		return true
	case strings.HasSuffix(pattern, "/**"):
		return strings.HasPrefix(name, strings.TrimSuffix(pattern, "**"))
	}
	ok, _ := path.Match(pattern, tag)
	return ok
}

// unselectedTag is a tag of img that the policy's images do not select, ""
// when there is none (or the policy selects the image whole: by ID).
func unselectedTag(spec *v1alpha1.ImageCleanupPolicySpec, img runtime.Image) string {
	if len(img.RepoTags) == 0 {
		return ""
	}
	for _, tag := range img.RepoTags {
		selected := false
		for _, p := range spec.Images {
			selected = selected || selects(string(p), tag)
		}
		if !selected {
			return tag
		}
	}
	return ""
}

// excluded says why the policy's exclusions keep the image, "" if they do
// not: by a tag, by a digest reference's repository, by its ID.
func excluded(spec *v1alpha1.ImageCleanupPolicySpec, img runtime.Image) string {
	for _, e := range spec.Exclude {
		pat := string(e)
		for _, tag := range img.RepoTags {
			if selects(pat, tag) {
				return fmt.Sprintf("its tag %s is excluded by %s", tag, pat)
			}
		}
		for _, d := range img.RepoDigests {
			if prefix, ok := strings.CutSuffix(pat, "/**"); ok && strings.HasPrefix(d, prefix+"/") {
				return fmt.Sprintf("its digest reference %s is excluded by %s", d, pat)
			}
		}
		if strings.HasPrefix(pat, "sha256:") && strings.HasPrefix(img.ID, pat) {
			return "its ID is excluded by " + pat
		}
	}
	return ""
}

// repositoriesOf names the repositories of an image's references.
func repositoriesOf(img runtime.Image) []string {
	var out []string
	for _, tag := range img.RepoTags {
		name, _, _ := strings.Cut(tag, ":")
		out = append(out, name)
	}
	for _, d := range img.RepoDigests {
		name, _, _ := strings.Cut(d, "@")
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// settleDepartures marks the images the reconcile deleted as surely
// recorded, unless it was cut short (killed, or the runtime died under it);
// a policy the agent forgot (gone, or no longer selecting the node) takes
// its departures and returns with it, as the agent's clock does.
func (m *lifeModel) settleDepartures(cut bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, d := range m.departed {
		if d.now {
			d.sure, d.now = !cut, false
			m.departed[id] = d
		}
	}
	if m.policy == nil || !m.selected {
		clear(m.departed)
		m.returns = nil
	}
	m.returns = slices.DeleteFunc(m.returns, func(r lifeReturn) bool { return m.now.Sub(r.back) > 2*imageclock.ReturnWindow })
}

// checkReturns: a report counts as returned at most the images the
// policy's sweeps deleted that came back within imageclock.ReturnWindow of
// their removal, and at least those of them that surely did, in the
// ReturnWindow before the sweep, while the agent ran (invariant report).
func (m *lifeModel) checkReturns(st *v1alpha1.ImageCleanupReportStatus) {
	now := m.sweepStart
	upper, lower := 0, 0
	for _, r := range m.returns {
		if r.back.After(now) || r.back.Sub(r.at) > imageclock.ReturnWindow {
			continue
		}
		upper++
		if r.sure && !r.back.Before(now.Add(-imageclock.ReturnWindow)) {
			lower++
		}
	}
	got := 0
	if st.Returned != nil {
		got = int(st.Returned.Images)
	}
	if got > upper || got < lower {
		m.t.Fatalf("invariant report: the report counts %d images returned; between %d and %d came back within %s of their removal (returns %+v)",
			got, lower, upper, imageclock.ReturnWindow, m.returns)
	}
}

// unsureDepartures: what the agent was told of the removals so far may be
// lost (a gap in the runtime's events, a restart): their returns may go
// uncounted.
func (m *lifeModel) unsureDepartures() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, d := range m.departed {
		d.sure = false
		m.departed[id] = d
	}
}
