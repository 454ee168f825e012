// Package plan decides what one sweep of a policy removes from one runtime.
// Make is a pure function of the inventory, the policy and the time: the
// plan is data that can be printed, tested, dry-run and then applied by
// internal/apply.
package plan

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Reason says why a target image is not removed.
type Reason string

// Blocking reasons: something on the node keeps the image; reports show them.
const (
	RunningContainer     Reason = "RunningContainer"     // a running, paused or restarting container uses it
	KeptStoppedContainer Reason = "KeptStoppedContainer" // stoppedContainers.action is Keep
	StoppedRecently      Reason = "StoppedRecently"      // a container stopped less than minStoppedAge ago
	KubernetesManaged    Reason = "KubernetesManaged"    // a kubelet's container, without includeKubernetesManaged
	DependentChildren    Reason = "DependentChildren"    // other images are built on it
	Conflict             Reason = "Conflict"             // the runtime refused at delete time
	Changed              Reason = "ChangedSincePlan"     // re-read just before a removal, the image or its containers had changed
	// OtherClient: a container that another client of the runtime made
	// (containerd's own API: ctr, nerdctl, BuildKit) uses it, whatever its
	// state; the agent never removes such containers.
	OtherClient Reason = "OtherClient"
	// OtherReferences: the runtime removes an image with every reference at
	// once (containerd's CRI), and the policy does not select all of them:
	// what it selects cannot go alone.
	OtherReferences Reason = "OtherReferences"
)

// Skipping reasons: the policy's own guards; not a problem.
const (
	Excluded  Reason = "Excluded"  // an exclude entry matches
	Protected Reason = "Protected" // a pod sandbox (pause) image, or the agent's own
	// PodOnNode: a pod bound to this node names it; the kubelet will run it
	// (its container may not exist yet).
	PodOnNode Reason = "PodOnNode"
	TooYoung  Reason = "TooYoung" // arrived less than minImageAge ago
	Deferred  Reason = "Deferred" // over maxImagesPerSweep; next sweep
	// RecentlyUsed: used (or arrived) less than maxUnusedAge ago, and the
	// disk is not above its high watermark.
	RecentlyUsed Reason = "RecentlyUsed"
	// KeptNewest: among the keepNewest most recent of its repository.
	KeptNewest Reason = "KeptNewest"
	// BelowLowWatermark: the disk went under lowPercent before its turn.
	BelowLowWatermark Reason = "BelowLowWatermark"
	// Interrupted: the sweep stopped (deadline, stalled runtime) before it.
	Interrupted Reason = "Interrupted"
)

// Decision is a target image that stays, and why.
type Decision struct {
	ImageID string `json:"imageID"`
	// Image is the reference the policy matched, or the short ID.
	Image   string `json:"image"`
	Reason  Reason `json:"reason"`
	Message string `json:"message,omitempty"`
	// Size is the image's size: what keeping it keeps on the disk, at most.
	Size int64 `json:"size,omitempty"`
	// EligibleAt is when the image clock lets it go, for TooYoung (arrival
	// plus minImageAge) and RecentlyUsed (last use plus maxUnusedAge), if
	// nothing else keeps it by then.
	EligibleAt time.Time `json:"eligibleAt,omitzero"`
}

// ContainerRef names a container to remove.
type ContainerRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Action removes one image's selected references, after the stopped
// containers that would block it.
type Action struct {
	ImageID string `json:"imageID"`
	Image   string `json:"image"`
	// By is the images entry that selected it (or "dangling").
	By string `json:"by"`
	// Containers are removed first (never forced).
	Containers []ContainerRef `json:"containers,omitempty"`
	// Refs are removed one by one; tags are untagged. With Whole, they go
	// together with the image.
	Refs []string `json:"refs"`
	// Whole: the image is removed by ID in one call, every reference with
	// it; the runtime cannot remove one reference alone (containerd's CRI).
	// The policy selects every one of Refs.
	Whole bool `json:"whole,omitempty"`
	// Delete: the image itself goes (its last reference is among Refs, or it
	// is removed by ID).
	Delete bool `json:"delete"`
	// Force: kept stopped containers still use the image and the policy
	// says force; those containers can no longer start.
	Force bool `json:"force,omitempty"`
	// Kept are the IDs of those kept stopped containers: the only ones,
	// besides Containers, that may use the image when it is deleted.
	Kept []string `json:"kept,omitempty"`
	// PruneParents are the untagged parents the runtime may delete with the
	// image when it leaves them without children (as a runtime prunes them by default):
	// set only when the policy may remove each of them (none is excluded
	// or protected); empty, the runtime is asked not to prune.
	PruneParents []string `json:"pruneParents,omitempty"`
	// Size is the image's size, an upper bound of what deleting it frees.
	Size int64 `json:"size"`
	// Wave orders deletions: an image goes after the images built on it.
	Wave      int       `json:"wave"`
	ArrivedAt time.Time `json:"arrivedAt"`
	// BuiltAt is the image's build date (Created): what "newest" means to
	// keepNewest, and the tie-breaker of the removal order.
	BuiltAt time.Time `json:"builtAt"`
	// LastUsedAt is the last start or stop of one of its containers, else
	// its arrival: the key of least-recently-used order.
	LastUsedAt time.Time `json:"lastUsedAt"`
}

// Plan is what a sweep will do, in order.
type Plan struct {
	Actions []Action   `json:"actions"`
	Blocked []Decision `json:"blocked"`
	Skipped []Decision `json:"skipped"`
}

// Make plans one sweep. The plan never removes a running container, an image
// a running container uses, an excluded or protected image, or a
// Kubernetes-managed container without opt-in.
func Make(inv *runtime.Inventory, opts *Options, now time.Time) Plan {
	ix := newIndex(inv)
	ix.pods = PodsNaming(opts.PodImages)
	ix.now = now
	var p Plan
	actions := map[string]*Action{}
	for _, id := range slices.Sorted(maps.Keys(ix.images)) {
		s, ok := selectImage(ix, ix.images[id], opts)
		if !ok {
			continue
		}
		a, d := decideImage(ix, &s, ix.sandboxes[id], opts, now)
		switch {
		case a != nil:
			actions[id] = a
		case d.Reason.Blocks():
			p.Blocked = append(p.Blocked, d)
		default:
			p.Skipped = append(p.Skipped, d)
		}
	}
	p.order(ix, actions, opts)
	SortDecisions(p.Blocked)
	SortDecisions(p.Skipped)
	return p
}

// decideImage applies the guards, in order, to one selected image: it
// returns the action, or the decision that keeps the image.
func decideImage(ix *index, s *selection, sandboxed bool, opts *Options, now time.Time) (*Action, Decision) {
	img := s.img
	keep := func(r Reason, msg string) (*Action, Decision) {
		return nil, Decision{ImageID: img.ID, Image: s.display(), Reason: r, Message: msg, Size: img.Size}
	}
	switch {
	case s.excluded:
		return keep(Excluded, "an exclude entry matches")
	case sandboxed:
		return keep(Protected, "a pod sandbox uses it")
	case isPauseImage(img):
		return keep(Protected, "pod sandbox (pause) images are never removed")
	case opts.Protected.Select(matchImage(img)).Any():
		return keep(Protected, "the agent's own image, or one given to --protect-images")
	case img.Pinned:
		return keep(Protected, "the runtime pins it (its sandbox image, or one it was told to keep)")
	}
	if c := firstInUse(ix.containers[img.ID]); c != nil {
		return keep(InUseBy(c))
	}
	if pod := ix.pods.Using(img.ID, img.RepoTags, img.RepoDigests); pod != "" {
		return keep(PodOnNode, "pod "+pod+" is bound to this node and names it: the kubelet runs it, or will")
	}
	if reason, detail, eligible := ClockGuard(img.Arrived, img.LastUsed, opts, now); reason != "" {
		_, d := keep(reason, detail)
		d.EligibleAt = eligible
		return nil, d
	}
	a := &Action{ImageID: img.ID, Image: s.display(), By: s.by, Size: img.Size, ArrivedAt: arrived(img.Arrived, now),
		LastUsedAt: lastUsed(img.Arrived, img.LastUsed, now), BuiltAt: img.Created}
	if !s.deletes() {
		if !opts.Runtime.UntagByReference {
			return keep(OtherReferences, "the runtime removes an image with all its references at once, and the policy does not select "+
				strings.Join(unselected(img, s.tags), ", "))
		}
		// Untagging while other tags stay: containers keep their image.
		a.Refs = s.tags
		return a, Decision{}
	}
	a.Delete = true
	a.Whole = !opts.Runtime.UntagByReference
	a.PruneParents = ix.prunable(img.ParentID, opts)
	// Every reference, digests included, so the image goes with the last
	// one; by ID only when it has none. Never by ID otherwise: a tag added
	// since the plan would go with it.
	a.Refs = append(slices.Clone(s.tags), img.RepoDigests...)
	if len(a.Refs) == 0 {
		a.Refs = []string{img.ID}
	}
	var kept, kubeletKeeps []*runtime.Container
	var keptWhy Reason
	for _, c := range ix.containers[img.ID] {
		why := keepReason(c, opts, now)
		if why == "" {
			a.Containers = append(a.Containers, ContainerRef{ID: c.ID, Name: c.Name})
			continue
		}
		keptWhy = cmp.Or(keptWhy, why)
		kept = append(kept, c)
		if c.KubernetesManaged() && !opts.IncludeKubernetesManaged {
			kubeletKeeps = append(kubeletKeeps, c)
		}
	}
	// Force never takes the image of a kubelet's container: the kubelet
	// restarts it from that image (and imagePullPolicy Never cannot pull it
	// back), so the image is the kubelet's until includeKubernetesManaged.
	if len(kubeletKeeps) > 0 {
		return keep(KubernetesManaged, keptMessage(KubernetesManaged, kubeletKeeps, opts))
	}
	if len(kept) > 0 && !opts.Force {
		return keep(keptWhy, keptMessage(keptWhy, kept, opts))
	}
	if len(kept) > 0 && !opts.Runtime.ForceRemoval {
		return keep(keptWhy, keptMessage(keptWhy, kept, opts)+"; force is not honoured: the runtime has no forced removal")
	}
	a.Force = len(kept) > 0
	for _, c := range kept {
		a.Kept = append(a.Kept, c.ID)
	}
	slices.Sort(a.Kept)
	sortContainers(a.Containers)
	return a, Decision{}
}

// Blocks reports whether the reason is a blocking one (shown as blocked),
// rather than one of the policy's own guards (skipped).
func (r Reason) Blocks() bool {
	switch r {
	case Excluded, Protected, PodOnNode, TooYoung, Deferred, Interrupted, RecentlyUsed, KeptNewest, BelowLowWatermark:
		return false
	}
	return true
}
