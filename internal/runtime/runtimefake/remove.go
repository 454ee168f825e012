package runtimefake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Removed is one image or container that a call of the API removed, with
// what the runtime held when that call began: what a test checks the
// removal against (a removal's call may take several references first).
type Removed struct {
	// Kind is "image" or "container".
	Kind string
	// Image is the image removed (an untagged parent pruned with it
	// included), or Container the container, as they were.
	Image     runtime.Image
	Container runtime.Container
	// Containers are every container the runtime held.
	Containers []runtime.Container
}

// callState is the runtime when a removal's call began.
type callState struct {
	images     map[string]runtime.Image
	containers []runtime.Container
}

// began copies the runtime for OnRemove; f.mu is held.
func (f *Runtime) began() *callState {
	if f.OnRemove == nil {
		return nil
	}
	st := &callState{images: make(map[string]runtime.Image, len(f.images))}
	for id, img := range f.images {
		c := *img
		c.RepoTags, c.RepoDigests = slices.Clone(img.RepoTags), slices.Clone(img.RepoDigests)
		st.images[id] = c
	}
	for _, c := range f.containers {
		st.containers = append(st.containers, *c)
	}
	return st
}

// RemoveContainer implements runtime.Runtime: a container that is not stopped
// is a conflict (the executor never forces).
func (f *Runtime) RemoveContainer(ctx context.Context, id string, _ bool) error {
	if err := f.enter(ctx, "RemoveContainer", id); err != nil {
		return err
	}
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil || f.unseen(c) { // the CRI knows only its own containers
		return fmt.Errorf("no such container: %s: %w", id, runtime.ErrNotFound)
	}
	if !c.Stopped() {
		return fmt.Errorf("you cannot remove a %s container %s: %w", c.State, runtime.ShortID(id), runtime.ErrConflict)
	}
	st := f.began()
	delete(f.containers, id)
	f.emit(runtime.ContainerRemoved, id, c.ImageID)
	if st != nil {
		f.OnRemove(Removed{Kind: "container", Container: *c, Containers: st.containers})
	}
	return f.dies("RemoveContainer", id)
}

// dies asks DieUnder after a removal the runtime did; f.mu is held.
func (f *Runtime) dies(method, arg string) error {
	if f.DieUnder != nil && f.DieUnder(method, arg) {
		f.down = true
		return fmt.Errorf("the runtime died before it answered %s %s: connection reset", method, runtime.ShortID(arg))
	}
	return nil
}

// RemoveImage implements runtime.Runtime with the runtime's rules:
//   - a tag or digest reference of an image with other tags is only untagged;
//   - the last tag deletes the image, unless a container uses it (conflict;
//     with force: a stopped container's image is deleted, a running one's
//     only untagged) or images are built on it (only untagged);
//   - by ID: conflict when other images are built on it or a running
//     container uses it (even forced), when a stopped one does or it has
//     several tags (unless forced).
func (f *Runtime) RemoveImage(ctx context.Context, ref string, opts runtime.RemoveImageOptions) (runtime.ImageRemoval, error) {
	if err := f.enter(ctx, "RemoveImage", ref); err != nil {
		return runtime.ImageRemoval{}, err
	}
	defer f.mu.Unlock()
	del, err := f.removeImage(ref, opts)
	if err == nil {
		if err = f.dies("RemoveImage", ref); err != nil {
			del = runtime.ImageRemoval{}
		}
	}
	return del, err
}

// removeImage is RemoveImage's work; f.mu is held.
func (f *Runtime) removeImage(ref string, opts runtime.RemoveImageOptions) (runtime.ImageRemoval, error) {
	force := opts.Force
	f.call = f.began()
	img, kind := f.resolve(ref)
	if img == nil {
		return runtime.ImageRemoval{}, fmt.Errorf("no such image: %s: %w", ref, runtime.ErrNotFound)
	}
	if force && !f.Rules.Capabilities.ForceRemoval {
		return runtime.ImageRemoval{}, fmt.Errorf("the runtime has no forced removal")
	}
	if !f.Rules.Capabilities.UntagByReference {
		// The CRI: every reference goes; containerd looks at no container
		// that uses the image, CRI-O refuses while one does.
		if running, stopped := f.users(img.ID); f.Rules.RefusesImageInUse && (running != nil || stopped != nil) {
			return runtime.ImageRemoval{}, fmt.Errorf("image used by %s: image is in use by a container: %w", runtime.ShortID(cmp.Or(running, stopped).ID), runtime.ErrConflict)
		}
		return runtime.ImageRemoval{Gone: f.deleteAndPrune(img.ID, false)}, nil
	}
	running, stopped := f.users(img.ID)
	children := f.children(img.ID)

	if kind != "id" {
		if kind == "tag" {
			img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return sameTag(t, ref) })
		} else {
			img.RepoDigests = slices.DeleteFunc(img.RepoDigests, func(d string) bool { return sameDigest(d, ref) })
		}
		if len(img.RepoTags) > 0 {
			return runtime.ImageRemoval{}, nil
		}
		// Last tag: the runtime drops the digest references with it.
		switch {
		case running != nil && !force:
			f.restore(img, ref, kind)
			return runtime.ImageRemoval{}, fmt.Errorf("unable to remove repository reference %q (must force) - container %s is using its referenced image: %w", ref, runtime.ShortID(running.ID), runtime.ErrConflict)
		case stopped != nil && !force:
			f.restore(img, ref, kind)
			return runtime.ImageRemoval{}, fmt.Errorf("unable to remove repository reference %q (must force) - container %s is using its referenced image: %w", ref, runtime.ShortID(stopped.ID), runtime.ErrConflict)
		case running != nil || len(children) > 0:
			img.RepoDigests = nil
			return runtime.ImageRemoval{}, nil // untagged, kept
		}
		img.RepoDigests = nil
		return runtime.ImageRemoval{Gone: f.deleteAndPrune(img.ID, opts.PruneParents)}, nil
	}

	switch {
	case len(children) > 0:
		return runtime.ImageRemoval{}, fmt.Errorf("unable to delete %s (cannot be forced) - image has dependent child images: %w", runtime.ShortID(img.ID), runtime.ErrConflict)
	case running != nil:
		return runtime.ImageRemoval{}, fmt.Errorf("unable to delete %s (cannot be forced) - image is being used by running container %s: %w", runtime.ShortID(img.ID), runtime.ShortID(running.ID), runtime.ErrConflict)
	case stopped != nil && !force:
		return runtime.ImageRemoval{}, fmt.Errorf("unable to delete %s (must be forced) - image is being used by stopped container %s: %w", runtime.ShortID(img.ID), runtime.ShortID(stopped.ID), runtime.ErrConflict)
	case len(img.RepoTags) > 1 && !force:
		return runtime.ImageRemoval{}, fmt.Errorf("unable to delete %s (must be forced) - image is referenced in multiple repositories: %w", runtime.ShortID(img.ID), runtime.ErrConflict)
	}
	return runtime.ImageRemoval{Gone: f.deleteAndPrune(img.ID, opts.PruneParents)}, nil
}

// resolve finds the image a reference names: "id", "tag" or "digest".
func (f *Runtime) resolve(ref string) (*runtime.Image, string) {
	if strings.HasPrefix(ref, "sha256:") {
		for id, img := range f.images {
			if strings.HasPrefix(id, ref) {
				return img, "id"
			}
		}
		return nil, ""
	}
	for _, img := range f.images {
		for _, t := range img.RepoTags {
			if sameTag(t, ref) {
				return img, "tag"
			}
		}
		for _, d := range img.RepoDigests {
			if sameDigest(d, ref) {
				return img, "digest"
			}
		}
	}
	return nil, ""
}

func (f *Runtime) restore(img *runtime.Image, ref, kind string) {
	if kind == "tag" {
		img.RepoTags = append(img.RepoTags, ref)
	} else {
		img.RepoDigests = append(img.RepoDigests, ref)
	}
}

func (f *Runtime) users(imageID string) (running, stopped *runtime.Container) {
	for _, c := range f.containers {
		if c.ImageID != imageID {
			continue
		}
		if c.Stopped() {
			stopped = c
		} else {
			running = c
		}
	}
	return running, stopped
}

func (f *Runtime) children(id string) []string {
	var out []string
	for cid, img := range f.images {
		if img.ParentID == id {
			out = append(out, cid)
		}
	}
	return out
}

// deleteAndPrune deletes the image and then, with prune, its parents left
// without reference, child or container.
func (f *Runtime) deleteAndPrune(id string, prune bool) []string {
	var deleted []string
	for id != "" {
		img := f.images[id]
		delete(f.images, id)
		f.emit(runtime.ImageRemoved, id, "")
		if f.call != nil {
			f.OnRemove(Removed{Kind: "image", Image: f.call.images[id], Containers: f.call.containers})
		}
		deleted = append(deleted, id)
		parent := f.images[img.ParentID]
		if !prune || parent == nil || len(parent.RepoDigests) > 0 {
			break
		}
		if parent == nil || len(parent.RepoTags) > 0 || len(f.children(parent.ID)) > 0 {
			break
		}
		if r, s := f.users(parent.ID); r != nil || s != nil {
			break
		}
		id = parent.ID
	}
	return deleted
}

func sameTag(a, b string) bool {
	ra, err1 := match.ParseTag(a)
	rb, err2 := match.ParseTag(b)
	return err1 == nil && err2 == nil && ra == rb
}

func sameDigest(a, b string) bool {
	na, da, err1 := match.ParseDigest(a)
	nb, db, err2 := match.ParseDigest(b)
	return err1 == nil && err2 == nil && na == nb && da == db
}
