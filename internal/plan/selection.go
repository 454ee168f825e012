package plan

import (
	"slices"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// selection is what the policy selects of one image, before any guard.
type selection struct {
	img   *runtime.Image
	tags  []string // tags to remove
	whole bool     // selected by ID, digest or dangling: every tag goes
	by    string
	// excludedTags: some tags are excluded, so the image must stay.
	excludedTags bool
	excluded     bool // the exclusion leaves nothing to do
}

func matchImage(img *runtime.Image) match.Image {
	return match.Image{ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests}
}

// ByUnfinished is the By of an image selected because an earlier sweep
// began to remove it and did not finish.
const ByUnfinished = "unfinished removal"

func selectImage(ix *index, img *runtime.Image, opts *Options) (selection, bool) {
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
	return runtime.ShortID(s.img.ID)
}

// Candidates lists what a sweep must inspect before it can plan, at now:
// the images the policy selects that the image clock holds for younger than
// minImageAge (the runtime's LastTagTime may prove them older), and the
// stopped containers that use selected images (for their finish time, when
// minStoppedAge matters, and as the truth of when each image was last used
// when maxUnusedAge or least-recently-used order do: a run the agent did
// not see, because it was down, still shows there). Everything else is
// decided from the lists alone.
func Candidates(inv *runtime.Inventory, opts *Options, now time.Time) (imageIDs, containerIDs []string) {
	ix := newIndex(inv)
	finishTimes := (opts.MinStoppedAge > 0 && !opts.KeepStoppedContainers) || opts.UnusedFor > 0 ||
		opts.Order == v1alpha1.OrderLeastRecentlyUsed
	for i := range inv.Images {
		img := &inv.Images[i]
		s, ok := selectImage(ix, img, opts)
		if !ok || s.excluded {
			continue
		}
		// keepNewest ranks by arrival, which the runtime's LastTagTime may
		// refine for images the clock met together.
		if now.Sub(arrived(img.Arrived, now)) < opts.MinImageAge || opts.KeepNewest > 0 {
			imageIDs = append(imageIDs, img.ID)
		}
		if finishTimes {
			for _, c := range ix.containers[img.ID] {
				if c.Stopped() && c.State != runtime.StateCreated {
					containerIDs = append(containerIDs, c.ID)
				}
			}
		}
	}
	return imageIDs, containerIDs
}

// unselected are the image's tags that are not among selected.
func unselected(img *runtime.Image, selected []string) []string {
	var out []string
	for _, t := range img.RepoTags {
		if !slices.Contains(selected, t) {
			out = append(out, t)
		}
	}
	return out
}
