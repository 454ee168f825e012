package plan

import (
	"slices"
	"strings"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// index is the inventory, looked up by image.
type index struct {
	images     map[string]*runtime.Image
	children   map[string][]string // parent ID → child IDs
	containers map[string][]*runtime.Container
	// sandboxes are the images of pod sandbox containers, in any state.
	sandboxes map[string]bool
	// pods are the images of the pods bound to the node.
	pods PodIndex
	// now is the plan's time (Make).
	now time.Time
}

func newIndex(inv *runtime.Inventory) *index {
	ix := &index{
		images:     make(map[string]*runtime.Image, len(inv.Images)),
		children:   map[string][]string{},
		containers: map[string][]*runtime.Container{},
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
func (ix *index) kept(img *runtime.Image, opts *Options) bool {
	mi := matchImage(img)
	return ix.sandboxes[img.ID] || opts.Exclude.Select(mi).Any() || opts.Protected.Select(mi).Any() ||
		ix.pods.Using(img.ID, img.RepoTags, img.RepoDigests) != ""
}

// keptParent reports whether the policy keeps an untagged parent that it
// would otherwise prune with its last child: kept, arrived less than
// minImageAge ago, or used less than maxUnusedAge ago (found by the model
// test: a parent used a second ago was pruned with its dangling child).
func (ix *index) keptParent(img *runtime.Image, opts *Options) bool {
	if ix.kept(img, opts) {
		return true
	}
	reason, _, _ := ClockGuard(img.Arrived, img.LastUsed, opts, ix.now)
	return reason != ""
}

// prunable returns the chain of untagged parents from parentID up that the
// runtime may prune with the deletion of their child (it deletes each parent
// left without reference and child), or nil when the policy keeps one of
// them (excluded by ID, protected, too young, used lately): then nothing
// may be pruned.
func (ix *index) prunable(parentID string, opts *Options) []string {
	var chain []string
	for id := parentID; id != "" && !slices.Contains(chain, id); { // a cycle no runtime makes ends it
		img := ix.images[id]
		if img == nil || !img.Unreferenced() {
			break // the runtime stops at a referenced parent
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
// image; the runtime lists it only with -a and prunes it with its last child.
func (ix *index) intermediate(img *runtime.Image) bool {
	return img.Untagged() && len(img.RepoDigests) == 0 && len(ix.children[img.ID]) > 0
}

// sandboxImages are the images of pod sandbox containers, in any state.
func sandboxImages(inv *runtime.Inventory) map[string]bool {
	ids := map[string]bool{}
	for i := range inv.Containers {
		if inv.Containers[i].Sandbox {
			ids[inv.Containers[i].ImageID] = true
		}
	}
	return ids
}

// isPauseImage: a tag or digest of a repository whose last path element is
// pause, pause-<arch> or ends in -pause (registry.k8s.io/pause,
// k8s.gcr.io/pause-amd64, rancher/mirrored-pause), the kubelet's sandbox
// image. Digests count: a node can hold the pause image by digest only.
func isPauseImage(img *runtime.Image) bool {
	for _, name := range repositories(img) {
		last := name[strings.LastIndex(name, "/")+1:]
		if last == "pause" || strings.HasPrefix(last, "pause-") || strings.HasSuffix(last, "-pause") {
			return true
		}
	}
	return false
}
