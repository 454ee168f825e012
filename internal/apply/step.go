package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// step is the progress of one action, and how it ends.
type step struct {
	a  *plan.Action
	o  outcome
	ri RemovedImage
}

func (s *step) blocked(r plan.Reason, msg string) outcome {
	if len(s.ri.Refs) > 0 {
		msg += "; already removed: " + strings.Join(s.ri.Refs, ", ")
	}
	s.o.blocked = &plan.Decision{ImageID: s.a.ImageID, Image: s.a.Image, Reason: r, Message: msg, Size: s.a.Size}
	return s.o
}

func (s *step) skipped(r plan.Reason, msg string) outcome {
	if len(s.ri.Refs) > 0 {
		msg += "; already removed: " + strings.Join(s.ri.Refs, ", ")
	}
	s.o.skipped = &plan.Decision{ImageID: s.a.ImageID, Image: s.a.Image, Reason: r, Message: msg, Size: s.a.Size}
	return s.o
}

func (s *step) failed(err error) outcome {
	msg := err.Error()
	if len(s.ri.Refs) > 0 {
		msg += "; already removed: " + strings.Join(s.ri.Refs, ", ")
	}
	s.o.failure = &Failure{ImageID: s.a.ImageID, Image: s.a.Image, Error: msg}
	return s.o
}

// prunedWith notes the untagged parents the runtime deleted with the image
// (it also lists the layers it deleted, which are not images).
func (s *step) prunedWith(del runtime.ImageRemoval) {
	for _, id := range del.Gone {
		if slices.Contains(s.a.PruneParents, id) {
			s.o.pruned = append(s.o.pruned, RemovedImage{ImageID: id, Image: runtime.ShortID(id), Refs: []string{}, Deleted: true, PrunedWith: s.a.Image})
		}
	}
}

// stopped ends an action the sweep stopped before its next destructive
// call: what went so far is reported, the rest is Interrupted.
func (s *step) stopped() outcome {
	if len(s.ri.Refs) > 0 {
		return s.done()
	}
	s.o.interrupted = true
	return s.o
}

func (s *step) done() outcome {
	if s.ri.Deleted {
		s.ri.Bytes = s.a.Size
	}
	if len(s.ri.Refs) > 0 || s.ri.Deleted {
		s.o.image = &s.ri
	}
	return s.o
}

func (x *executor) run(ctx context.Context, a *plan.Action) outcome {
	s := &step{a: a, ri: RemovedImage{ImageID: a.ImageID, Image: a.Image, Refs: []string{}, Forced: a.Force}}
	if end := x.removeContainers(ctx, s); end != nil {
		return end()
	}
	if a.Force || a.Whole {
		return x.deleteWhole(ctx, s)
	}
	for _, ref := range a.Refs {
		cur, gone, stop := x.recheck(ctx, s)
		if stop != nil {
			return *stop
		}
		if gone {
			return s.done() // another hand removed it: done, but not by us
		}
		if ref == a.ImageID {
			if !cur.Unreferenced() {
				return s.blocked(plan.Changed, "it was tagged since the plan: "+strings.Join(append(cur.RepoTags, cur.RepoDigests...), ", "))
			}
		} else if !hasRef(&cur, ref) {
			continue // untagged or moved to another image since the plan: not ours to remove
		}
		var del runtime.ImageRemoval
		refused, err := x.destroy(func() (err error) {
			del, err = x.rt.RemoveImage(ctx, ref, runtime.RemoveImageOptions{PruneParents: len(a.PruneParents) > 0})
			return err
		})
		if refused {
			return s.stopped()
		}
		switch err := x.check(ctx, err); {
		case err == nil:
			if ref != a.ImageID {
				s.ri.Refs = append(s.ri.Refs, ref)
			}
			if slices.Contains(del.Gone, a.ImageID) {
				s.ri.Deleted = true
				s.prunedWith(del)
				return s.done()
			}
		case errors.Is(err, runtime.ErrNotFound):
			// Another hand was quicker.
		case errors.Is(err, runtime.ErrConflict):
			return s.blocked(plan.Conflict, err.Error())
		default:
			return s.failed(fmt.Errorf("remove image %s: %w", ref, err))
		}
	}
	return s.done()
}

// removeContainers removes the action's stopped containers, several at once.
// The first that is refused (it started since the plan), fails, or meets a
// refusal of Proceed ends the action: no further removal of its containers
// begins, those under way finish and count. It returns how the action ends,
// or nil when every container went.
func (x *executor) removeContainers(ctx context.Context, s *step) (end func() outcome) {
	var mu sync.Mutex
	ended := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return end != nil
	}
	endWith := func(f func() outcome) {
		if end == nil {
			end = f
		}
	}
	removals := make([]func(), len(s.a.Containers))
	for i, c := range s.a.Containers {
		removals[i] = func() {
			_ = x.call(func() error {
				if ended() {
					return nil
				}
				if !x.proceed() {
					mu.Lock()
					endWith(s.stopped)
					mu.Unlock()
					return nil
				}
				err := x.check(ctx, x.rt.RemoveContainer(ctx, c.ID, x.opts.RemoveVolumes))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil || errors.Is(err, runtime.ErrNotFound):
					s.o.containers = append(s.o.containers, c)
				case errors.Is(err, runtime.ErrConflict):
					// It started since the plan: it stays, and so does the image.
					endWith(func() outcome {
						return s.blocked(plan.RunningContainer, fmt.Sprintf("container %s started since the plan: %v", runtime.DisplayContainer(c.Name, c.ID), err))
					})
				default:
					endWith(func() outcome {
						return s.failed(fmt.Errorf("remove container %s: %w", runtime.DisplayContainer(c.Name, c.ID), err))
					})
				}
				return nil
			})
		}
	}
	x.fanOut(removals...)
	return end
}

// deleteWhole removes the image by ID, every reference with it: with force
// (the runtime deletes it although stopped containers use it, and refuses
// while a running container does), or on a runtime that cannot remove one
// reference alone and may not check containers at all (containerd's CRI).
// The re-check just before makes sure that no reference appeared that the
// plan did not mean to remove and, without force, that no container of any
// state uses the image.
func (x *executor) deleteWhole(ctx context.Context, s *step) outcome {
	a := s.a
	cur, gone, stop := x.recheck(ctx, s)
	if stop != nil {
		return *stop
	}
	if gone {
		return s.done()
	}
	if extra := refsNotIn(&cur, a.Refs); len(extra) > 0 {
		return s.blocked(plan.Changed, "it was tagged since the plan: "+strings.Join(extra, ", "))
	}
	var del runtime.ImageRemoval
	refused, err := x.destroy(func() (err error) {
		del, err = x.rt.RemoveImage(ctx, a.ImageID, runtime.RemoveImageOptions{Force: a.Force, PruneParents: len(a.PruneParents) > 0})
		return err
	})
	if refused {
		return s.stopped()
	}
	switch err := x.check(ctx, err); {
	case err == nil:
		s.ri.Refs = refsOnly(a.Refs, a.ImageID)
		s.ri.Deleted = true
		s.prunedWith(del)
		return s.done()
	case errors.Is(err, runtime.ErrNotFound):
		return s.done() // another hand was quicker
	case errors.Is(err, runtime.ErrConflict):
		return s.blocked(plan.Conflict, err.Error())
	default:
		return s.failed(fmt.Errorf("remove image %s: %w", runtime.ShortID(a.ImageID), err))
	}
}
