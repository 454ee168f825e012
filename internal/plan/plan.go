// Package plan decides what one sweep of a policy removes from one engine.
// Make is a pure function of the inventory, the policy and the time: the
// plan is data that can be printed, tested, dry-run and then applied by
// internal/apply.
package plan

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
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
	Conflict             Reason = "Conflict"             // the engine refused at delete time
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
	// Interrupted: the sweep stopped (deadline, stalled engine) before it.
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
	// says force (docker rmi -f); those containers can no longer start.
	Force bool `json:"force,omitempty"`
	// Kept are the IDs of those kept stopped containers: the only ones,
	// besides Containers, that may use the image when it is deleted.
	Kept []string `json:"kept,omitempty"`
	// PruneParents are the untagged parents the engine may delete with the
	// image when it leaves them without children (docker rmi's default):
	// set only when the policy may remove each of them (none is excluded
	// or protected); empty, the engine is asked not to prune.
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

// Options are a policy's decisions in the planner's terms.
type Options struct {
	Images                   match.Set
	Exclude                  match.Set
	Dangling                 bool
	MinImageAge              time.Duration
	KeepStoppedContainers    bool
	MinStoppedAge            time.Duration
	IncludeKubernetesManaged bool
	Force                    bool
	MaxImages                int
	// Protected names images never removed: the agent's own image, and
	// sandbox images given by flag (a cri-dockerd --pod-infra-container-image).
	Protected match.Set
	// Order is the order of removal (and of maxImagesPerSweep's budget).
	Order v1alpha1.RemovalOrder
	// KeepNewest keeps the N most recently arrived candidates of each
	// repository.
	KeepNewest int
	// UnusedFor, when set, makes only images unused for at least this long
	// candidates (maxUnusedAge, when the disk is not under pressure).
	UnusedFor time.Duration
	// Unfinished are images whose removal by this policy began in an earlier
	// sweep and did not finish: they are selected whole if they lost every
	// reference on the way, since no pattern can name them any more.
	Unfinished map[string]bool
	// PodImages are the images the pods bound to this node name: never
	// removed, whatever else the policy says (includeKubernetesManaged and
	// force included).
	PodImages []PodImage
	// Runtime is what the runtime can do: the rules that depend on it ask
	// here (per-reference untag, forced removal).
	Runtime engine.Capabilities
}

// OptionsFor reads a (defaulted, valid) policy spec for a runtime that can
// do what caps say. protected are extra references or IDs never to remove.
func OptionsFor(spec *v1alpha1.ImageCleanupPolicySpec, protected []string, caps engine.Capabilities) (Options, error) {
	images, err := match.CompileSet(patterns(spec.Images))
	if err != nil {
		return Options{}, fmt.Errorf("images: %w", err)
	}
	exclude, err := match.CompileSet(patterns(spec.Exclude))
	if err != nil {
		return Options{}, fmt.Errorf("exclude: %w", err)
	}
	prot, err := match.CompileSet(protected)
	if err != nil {
		return Options{}, fmt.Errorf("protected images: %w", err)
	}
	return Options{
		Images:                   images,
		Exclude:                  exclude,
		Dangling:                 spec.Dangling,
		MinImageAge:              spec.MinImageAgeDuration(),
		KeepStoppedContainers:    spec.StoppedContainers.Action == v1alpha1.StoppedContainersKeep,
		MinStoppedAge:            spec.MinStoppedAgeDuration(),
		IncludeKubernetesManaged: spec.StoppedContainers.IncludeKubernetesManaged,
		Force:                    spec.Force,
		MaxImages:                int(spec.MaxImagesPerSweep),
		Protected:                prot,
		Order:                    spec.OrderOrDefault(),
		KeepNewest:               int(spec.KeepNewest),
		UnusedFor:                spec.MaxUnusedAgeDuration(),
		Runtime:                  caps,
	}, nil
}

func patterns(in []v1alpha1.ImagePattern) []string {
	out := make([]string, len(in))
	for i, p := range in {
		out[i] = string(p)
	}
	return out
}

// index is the inventory, looked up by image.
type index struct {
	images     map[string]*engine.Image
	children   map[string][]string // parent ID → child IDs
	containers map[string][]*engine.Container
	// sandboxes are the images of pod sandbox containers, in any state.
	sandboxes map[string]bool
	// pods are the images of the pods bound to the node.
	pods PodIndex
	// now is the plan's time (Make).
	now time.Time
}

func newIndex(inv *engine.Inventory) *index {
	ix := &index{
		images:     make(map[string]*engine.Image, len(inv.Images)),
		children:   map[string][]string{},
		containers: map[string][]*engine.Container{},
	}
	for i := range inv.Images {
		img := &inv.Images[i]
		ix.images[img.ID] = img
		if img.ParentID != "" {
			ix.children[img.ParentID] = append(ix.children[img.ParentID], img.ID)
		}
	}
	for i := range inv.Containers {
		c := &inv.Containers[i]
		ix.containers[c.ImageID] = append(ix.containers[c.ImageID], c)
	}
	ix.sandboxes = sandboxImages(inv)
	return ix
}

// kept reports whether an image is excluded (by ID: it has no reference),
// protected or named by a pod on the node, whatever else the policy says of
// it.
func (ix *index) kept(img *engine.Image, opts *Options) bool {
	mi := matchImage(img)
	return ix.sandboxes[img.ID] || opts.Exclude.Select(mi).Any() || opts.Protected.Select(mi).Any() ||
		ix.pods.Using(img.ID, img.RepoTags, img.RepoDigests) != ""
}

// keptParent reports whether the policy keeps an untagged parent that it
// would otherwise prune with its last child: kept, arrived less than
// minImageAge ago, or used less than maxUnusedAge ago (found by the model
// test: a parent used a second ago was pruned with its dangling child).
func (ix *index) keptParent(img *engine.Image, opts *Options) bool {
	if ix.kept(img, opts) {
		return true
	}
	reason, _, _ := ClockGuard(img.Arrived, img.LastUsed, opts, ix.now)
	return reason != ""
}

// prunable returns the chain of untagged parents from parentID up that the
// engine may prune with the deletion of their child (it deletes each parent
// left without reference and child), or nil when the policy keeps one of
// them (excluded by ID, protected, too young, used lately): then nothing
// may be pruned.
func (ix *index) prunable(parentID string, opts *Options) []string {
	var chain []string
	for id := parentID; id != "" && !slices.Contains(chain, id); { // a cycle no engine makes ends it
		img := ix.images[id]
		if img == nil || !img.Unreferenced() {
			break // the engine stops at a referenced parent
		}
		if ix.keptParent(img, opts) {
			return nil
		}
		chain = append(chain, id)
		id = img.ParentID
	}
	return chain
}

// mayPrune reports whether the untagged parents from parentID up may go
// with their child.
func (ix *index) mayPrune(parentID string, opts *Options) bool {
	img := ix.images[parentID]
	return img == nil || !img.Unreferenced() || ix.prunable(parentID, opts) != nil
}

// intermediate: an untagged image with children, a build step of another
// image; the engine lists it only with -a and prunes it with its last child.
func (ix *index) intermediate(img *engine.Image) bool {
	return img.Untagged() && len(img.RepoDigests) == 0 && len(ix.children[img.ID]) > 0
}

// selection is what the policy selects of one image, before any guard.
type selection struct {
	img   *engine.Image
	tags  []string // tags to remove
	whole bool     // selected by ID, digest or dangling: every tag goes
	by    string
	// excludedTags: some tags are excluded, so the image must stay.
	excludedTags bool
	excluded     bool // the exclusion leaves nothing to do
}

func matchImage(img *engine.Image) match.Image {
	return match.Image{ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests}
}

// ByUnfinished is the By of an image selected because an earlier sweep
// began to remove it and did not finish.
const ByUnfinished = "unfinished removal"

func selectImage(ix *index, img *engine.Image, opts *Options) (selection, bool) {
	mi := matchImage(img)
	sel := opts.Images.Select(mi)
	s := selection{img: img, whole: sel.Whole, by: sel.By}
	if !sel.Any() {
		unreferenced := img.Unreferenced() && len(ix.children[img.ID]) == 0
		switch {
		case unreferenced && opts.Unfinished[img.ID]:
			s.whole, s.by = true, ByUnfinished
		case unreferenced && opts.Dangling && len(ix.containers[img.ID]) == 0:
			s.whole, s.by = true, "dangling"
		default:
			return s, false
		}
	}
	excl := opts.Exclude.Select(mi)
	if excl.Whole || opts.Exclude.NamesAnyDigest(mi) {
		// Any excluded reference keeps the image: its digest references
		// would go with its last tag.
		s.excluded = true
		return s, true
	}
	excludedTag := map[string]bool{}
	for _, t := range excl.Tags {
		excludedTag[t] = true
	}
	s.excludedTags = len(excl.Tags) > 0
	candidates := sel.Tags
	if s.whole {
		candidates = mi.RepoTags
	}
	for _, t := range candidates {
		if !excludedTag[t] {
			s.tags = append(s.tags, t)
		}
	}
	if s.excludedTags {
		s.whole = false // an excluded tag stays, and the image with it
	}
	if !s.whole && len(s.tags) == 0 {
		s.excluded = true
	}
	return s, true
}

// deletes reports whether removing the selection deletes the image.
func (s *selection) deletes() bool {
	return !s.excludedTags && (s.whole || len(s.tags) == len(s.img.RepoTags))
}

func (s *selection) display() string {
	if len(s.tags) > 0 {
		return s.tags[0]
	}
	if len(s.img.RepoTags) > 0 {
		return s.img.RepoTags[0]
	}
	if len(s.img.RepoDigests) > 0 {
		return s.img.RepoDigests[0]
	}
	return engine.ShortID(s.img.ID)
}

// Candidates lists what a sweep must inspect before it can plan, at now:
// the images the policy selects that the image clock holds for younger than
// minImageAge (the engine's LastTagTime may prove them older), and the
// stopped containers that use selected images (for their finish time, when
// minStoppedAge matters, and as the truth of when each image was last used
// when maxUnusedAge or least-recently-used order do: a run the agent did
// not see, because it was down, still shows there). Everything else is
// decided from the lists alone.
func Candidates(inv *engine.Inventory, opts *Options, now time.Time) (imageIDs, containerIDs []string) {
	ix := newIndex(inv)
	finishTimes := (opts.MinStoppedAge > 0 && !opts.KeepStoppedContainers) || opts.UnusedFor > 0 ||
		opts.Order == v1alpha1.OrderLeastRecentlyUsed
	for i := range inv.Images {
		img := &inv.Images[i]
		s, ok := selectImage(ix, img, opts)
		if !ok || s.excluded {
			continue
		}
		// keepNewest ranks by arrival, which the engine's LastTagTime may
		// refine for images the clock met together.
		if now.Sub(arrived(img.Arrived, now)) < opts.MinImageAge || opts.KeepNewest > 0 {
			imageIDs = append(imageIDs, img.ID)
		}
		if finishTimes {
			for _, c := range ix.containers[img.ID] {
				if c.Stopped() && c.State != engine.StateCreated {
					containerIDs = append(containerIDs, c.ID)
				}
			}
		}
	}
	return imageIDs, containerIDs
}

// Make plans one sweep. The plan never removes a running container, an image
// a running container uses, an excluded or protected image, or a
// Kubernetes-managed container without opt-in.
func Make(inv *engine.Inventory, opts *Options, now time.Time) Plan {
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
	var kept, kubeletKeeps []*engine.Container
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

// unselected are the image's tags that are not among selected.
func unselected(img *engine.Image, selected []string) []string {
	var out []string
	for _, t := range img.RepoTags {
		if !slices.Contains(selected, t) {
			out = append(out, t)
		}
	}
	return out
}

// order puts the actions in the plan: deletions that images built on them
// would block are blocked, the rest are put in the policy's order with
// each image's children right before it, the budget of maxImagesPerSweep
// takes the first of them (the rest deferred), and each action gets its
// wave.
func (p *Plan) order(ix *index, actions map[string]*Action, opts *Options) {
	p.keepNewest(ix, actions, opts.KeepNewest)
	selected := inOrder(actions, opts.Order)
	waiting := blockedByChildren(ix, actions, selected, opts)
	for _, a := range selected {
		if child, ok := waiting[a.ImageID]; ok {
			p.Blocked = append(p.Blocked, Decision{ImageID: a.ImageID, Image: a.Image, Reason: DependentChildren,
				Message: fmt.Sprintf("image %s is built on it", child), Size: a.Size})
			delete(actions, a.ImageID)
		}
	}
	sequence := childrenFirst(ix, actions, inOrder(actions, opts.Order))
	if opts.MaxImages > 0 && len(sequence) > opts.MaxImages {
		for _, a := range sequence[opts.MaxImages:] {
			p.Skipped = append(p.Skipped, Decision{ImageID: a.ImageID, Image: a.Image, Reason: Deferred,
				Message: fmt.Sprintf("maxImagesPerSweep is %d", opts.MaxImages), Size: a.Size})
			delete(actions, a.ImageID)
		}
		sequence = sequence[:opts.MaxImages]
	}
	assignWaves(ix, actions)
	for _, a := range sequence {
		p.Actions = append(p.Actions, *a)
	}
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

// InUseBy is the reason, and its message, that a container in use (not
// stopped, or another client's) keeps its image.
func InUseBy(c *engine.Container) (Reason, string) {
	if c.MadeBy != "" {
		return OtherClient, fmt.Sprintf("container %s, which %s made, uses it", c.Display(), c.MadeBy)
	}
	return RunningContainer, fmt.Sprintf("%s container %s uses it", c.State, c.Display())
}

func firstInUse(cs []*engine.Container) *engine.Container {
	for _, c := range cs {
		if !c.Stopped() {
			return c
		}
	}
	return nil
}

// keepReason says why a stopped container must stay, or "" if it may go.
func keepReason(c *engine.Container, opts *Options, now time.Time) Reason {
	switch {
	case opts.KeepStoppedContainers:
		return KeptStoppedContainer
	case c.KubernetesManaged() && !opts.IncludeKubernetesManaged:
		return KubernetesManaged
	case now.Sub(c.StoppedAt()) < opts.MinStoppedAge:
		return StoppedRecently
	}
	return ""
}

func keptMessage(why Reason, kept []*engine.Container, opts *Options) string {
	names := make([]string, 0, len(kept))
	for i, c := range kept {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(kept)-3))
			break
		}
		names = append(names, c.Display())
	}
	list := strings.Join(names, ", ")
	switch why {
	case KeptStoppedContainer:
		return "stopped container " + list + " uses it and stoppedContainers.action is Keep"
	case KubernetesManaged:
		return "stopped Kubernetes container " + list + " uses it; the kubelet collects those unless includeKubernetesManaged is set"
	default:
		return fmt.Sprintf("container %s stopped less than %s ago", list, FormatDuration(opts.MinStoppedAge))
	}
}

// arrived is when the image came to the node by the image clock; an image
// the clock does not know arrived now (fail closed: never the build date).
// An arrival later than now (an engine whose clock runs ahead) is now.
func arrived(arrivedAt, now time.Time) time.Time {
	if arrivedAt.IsZero() || arrivedAt.After(now) {
		return now
	}
	return arrivedAt
}

// lastUsed is the key of least-recently-used order: the image's last use by
// the clock, else its arrival (an image no container ran). A use later than
// now is a use now: an engine whose clock runs ahead of the agent's (or of
// the CLI's, on a remote engine) stamps a use that just happened in the
// future, and falling back to the arrival would make it the least recent.
func lastUsed(arrivedAt, lastUsedAt, now time.Time) time.Time {
	switch {
	case lastUsedAt.IsZero():
		return arrived(arrivedAt, now)
	case lastUsedAt.After(now):
		return now
	}
	return lastUsedAt
}

// ClockGuard applies the image clock's rules to one image's records at now:
// minImageAge to its arrival, maxUnusedAge to its last use or arrival,
// whichever is later (an image is idle only as long as the clock has known
// it). It returns TooYoung or RecentlyUsed, why, and when the image may go;
// an empty reason when the clock lets it go. The plan weighs each image and
// each untagged parent with it, and the executor's re-check weighs them
// again with what the clock learned since (internal/cleanup).
func ClockGuard(arrivedAt, lastUsedAt time.Time, opts *Options, now time.Time) (Reason, string, time.Time) {
	arrival := arrived(arrivedAt, now)
	if age := now.Sub(arrival); age < opts.MinImageAge {
		return TooYoung, fmt.Sprintf("arrived %s ago, minImageAge is %s", FormatDuration(age), FormatDuration(opts.MinImageAge)),
			arrival.Add(opts.MinImageAge)
	}
	if opts.UnusedFor <= 0 {
		return "", "", time.Time{}
	}
	since := arrival
	if used := lastUsed(arrivedAt, lastUsedAt, now); used.After(since) {
		since = used
	}
	if idle := now.Sub(since); idle < opts.UnusedFor {
		return RecentlyUsed, fmt.Sprintf("used %s ago, maxUnusedAge is %s", FormatDuration(idle), FormatDuration(opts.UnusedFor)),
			since.Add(opts.UnusedFor)
	}
	return "", "", time.Time{}
}

// sandboxImages are the images of pod sandbox containers, in any state.
func sandboxImages(inv *engine.Inventory) map[string]bool {
	ids := map[string]bool{}
	for i := range inv.Containers {
		if inv.Containers[i].PodSandbox() {
			ids[inv.Containers[i].ImageID] = true
		}
	}
	return ids
}

// isPauseImage: a tag or digest of a repository whose last path element is
// pause, pause-<arch> or ends in -pause (registry.k8s.io/pause,
// k8s.gcr.io/pause-amd64, rancher/mirrored-pause), the kubelet's sandbox
// image. Digests count: a node can hold the pause image by digest only.
func isPauseImage(img *engine.Image) bool {
	for _, name := range repositories(img) {
		last := name[strings.LastIndex(name, "/")+1:]
		if last == "pause" || strings.HasPrefix(last, "pause-") || strings.HasSuffix(last, "-pause") {
			return true
		}
	}
	return false
}

// inOrder lists the actions in the policy's order: least recently used
// first, or oldest arrival first; ties go to the older build, then by ID,
// so plans are stable.
func inOrder(actions map[string]*Action, order v1alpha1.RemovalOrder) []*Action {
	key := func(a *Action) time.Time { return a.ArrivedAt }
	if order == v1alpha1.OrderLeastRecentlyUsed {
		key = func(a *Action) time.Time { return a.LastUsedAt }
	}
	out := slices.Collect(maps.Values(actions))
	sort.Slice(out, func(i, j int) bool {
		if ki, kj := key(out[i]), key(out[j]); !ki.Equal(kj) {
			return ki.Before(kj)
		}
		if !out[i].BuiltAt.Equal(out[j].BuiltAt) {
			return out[i].BuiltAt.Before(out[j].BuiltAt)
		}
		return out[i].ImageID < out[j].ImageID
	})
	return out
}

// keepNewest keeps, in each repository, the n newest builds among the
// actions (by build date, then by arrival, then by ID): skipped as
// KeptNewest. Build date, not arrival: the clock meets together every
// image present when it starts and every image pulled between two sweeps.
// An image counts in every repository one of its references names.
func (p *Plan) keepNewest(ix *index, actions map[string]*Action, n int) {
	if n <= 0 {
		return
	}
	byRepo := map[string][]*Action{}
	for _, a := range actions {
		for _, repo := range repositories(ix.images[a.ImageID]) {
			byRepo[repo] = append(byRepo[repo], a)
		}
	}
	kept := map[string]string{} // image ID → repository it is kept in
	for _, repo := range slices.Sorted(maps.Keys(byRepo)) {
		as := byRepo[repo]
		sort.Slice(as, func(i, j int) bool {
			if !as[i].BuiltAt.Equal(as[j].BuiltAt) {
				return as[i].BuiltAt.After(as[j].BuiltAt)
			}
			if !as[i].ArrivedAt.Equal(as[j].ArrivedAt) {
				return as[i].ArrivedAt.After(as[j].ArrivedAt)
			}
			return as[i].ImageID > as[j].ImageID
		})
		for _, a := range as[:min(n, len(as))] {
			if _, ok := kept[a.ImageID]; !ok {
				kept[a.ImageID] = repo
			}
		}
	}
	for id, repo := range kept {
		a := actions[id]
		p.Skipped = append(p.Skipped, Decision{ImageID: id, Image: a.Image, Reason: KeptNewest,
			Message: fmt.Sprintf("one of the %d newest of %s", n, repo), Size: a.Size})
		delete(actions, id)
	}
}

// repositories names the repositories of an image's references.
func repositories(img *engine.Image) []string {
	seen := map[string]bool{}
	for _, t := range img.RepoTags {
		if ref, err := match.ParseTag(t); err == nil {
			seen[ref.Name] = true
		}
	}
	for _, d := range img.RepoDigests {
		if name, _, err := match.ParseDigest(d); err == nil {
			seen[name] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// childrenFirst lists the actions in the given order, each deletion right
// after the deletions of the images built on it (its prerequisites, found
// through untagged intermediates, which go with their last child): the
// oldest image and what must go before it come first, so that a sweep that
// stops early (the disk is under its low watermark, the budget is spent)
// has removed the least recently used images, not every child first. order
// must hold no action whose prerequisites cannot go (blockedByChildren
// removed those).
func childrenFirst(ix *index, actions map[string]*Action, order []*Action) []*Action {
	rank := make(map[string]int, len(order))
	for i, a := range order {
		rank[a.ImageID] = i
	}
	var prerequisites func(id string) []*Action
	prerequisites = func(id string) []*Action {
		var out []*Action
		for _, child := range ix.children[id] {
			if a := actions[child]; a != nil {
				out = append(out, a)
				continue
			}
			out = append(out, prerequisites(child)...) // an intermediate: look through it
		}
		return out
	}
	placed := make(map[string]bool, len(order))
	out := make([]*Action, 0, len(order))
	var place func(a *Action)
	place = func(a *Action) {
		if placed[a.ImageID] {
			return
		}
		placed[a.ImageID] = true // no cycles in a real engine; be safe anyway
		if a.Delete {
			before := prerequisites(a.ImageID)
			sort.Slice(before, func(i, j int) bool { return rank[before[i].ImageID] < rank[before[j].ImageID] })
			for _, b := range before {
				place(b)
			}
		}
		out = append(out, a)
	}
	for _, a := range order {
		place(a)
	}
	return out
}

// blockedByChildren returns the deleting actions that cannot happen because
// an image built on theirs stays (mapped to that child, for the message).
// Children go first when they are deleted too; untagged intermediate images
// go with their last child, as the engine prunes them, unless the policy
// keeps them (excluded by ID, protected).
func blockedByChildren(ix *index, actions map[string]*Action, order []*Action, opts *Options) map[string]string {
	memo := map[string]bool{}
	var goes func(id string) bool
	goes = func(id string) bool {
		if v, ok := memo[id]; ok {
			return v
		}
		memo[id] = false // no cycles in a real engine; be safe anyway
		img := ix.images[id]
		a := actions[id]
		var v bool
		switch {
		case a != nil && a.Delete:
			v = true
		case a == nil && img != nil && ix.intermediate(img) && len(ix.containers[id]) == 0 && ix.mayPrune(id, opts):
			v = true
		}
		for _, child := range ix.children[id] {
			v = v && goes(child)
		}
		memo[id] = v
		return v
	}
	blocked := map[string]string{}
	for _, a := range order {
		if !a.Delete || goes(a.ImageID) {
			continue
		}
		for _, child := range ix.children[a.ImageID] {
			if !goes(child) {
				blocked[a.ImageID] = describe(ix, child)
				break
			}
		}
	}
	return blocked
}

func describe(ix *index, id string) string {
	if img := ix.images[id]; img != nil {
		if len(img.RepoTags) > 0 {
			return img.RepoTags[0]
		}
	}
	return engine.ShortID(id)
}

// assignWaves: a deletion waits for the deletions of images built on it.
func assignWaves(ix *index, actions map[string]*Action) {
	memo := map[string]int{}
	var wave func(id string) int
	wave = func(id string) int {
		if w, ok := memo[id]; ok {
			return w
		}
		memo[id] = 0
		w := -1
		for _, child := range ix.children[id] {
			w = max(w, wave(child))
		}
		if a := actions[id]; a != nil {
			w++
			a.Wave = w
		}
		memo[id] = w
		return w
	}
	for id := range actions {
		wave(id)
	}
}

func sortContainers(cs []ContainerRef) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
}

// SortDecisions orders decisions by image reference, then ID, so that plans
// and results print the same whatever order they were made in.
func SortDecisions(ds []Decision) {
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].Image != ds[j].Image {
			return ds[i].Image < ds[j].Image
		}
		return ds[i].ImageID < ds[j].ImageID
	})
}

// FormatDuration writes a duration as a policy does (24h, 1h30m, 90s),
// rounded to the second, not as Go does (24h0m0s).
func FormatDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
