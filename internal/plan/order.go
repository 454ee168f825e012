package plan

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

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
func repositories(img *runtime.Image) []string {
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
		placed[a.ImageID] = true // no cycles in a real runtime; be safe anyway
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
// go with their last child, as the runtime prunes them, unless the policy
// keeps them (excluded by ID, protected).
func blockedByChildren(ix *index, actions map[string]*Action, order []*Action, opts *Options) map[string]string {
	memo := map[string]bool{}
	var goes func(id string) bool
	goes = func(id string) bool {
		if v, ok := memo[id]; ok {
			return v
		}
		memo[id] = false // no cycles in a real runtime; be safe anyway
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
	return runtime.ShortID(id)
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
