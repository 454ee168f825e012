// Package apply carries out a plan against an engine. The engine checks again
// at every delete: a conflict (a container started meanwhile, a child image
// built meanwhile) becomes a blocked outcome, not an error, and "not found"
// counts as done. Nothing is removed that the plan does not name.
package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

// Options tune the executor.
type Options struct {
	// RemoveVolumes removes the anonymous volumes of removed containers.
	RemoveVolumes bool
	// Concurrency bounds the image actions under way at once (default 4).
	Concurrency int
	// CallTimeout bounds each engine call (default 2m: deleting a large
	// image can take a while on a slow disk).
	CallTimeout time.Duration
}

// RemovedImage is one action carried out.
type RemovedImage struct {
	ImageID string   `json:"imageID"`
	Image   string   `json:"image"`
	Refs    []string `json:"refs"`
	// Deleted: the image itself went, not only references to it.
	Deleted bool  `json:"deleted"`
	Bytes   int64 `json:"bytes"`
	Forced  bool  `json:"forced,omitempty"`
}

// Failure is an engine call that failed for another reason than a conflict.
type Failure struct {
	ImageID string `json:"imageID"`
	Image   string `json:"image"`
	Error   string `json:"error"`
}

// Result is what a sweep did.
type Result struct {
	DryRun            bool                `json:"dryRun"`
	RemovedImages     []RemovedImage      `json:"removedImages"`
	RemovedContainers []plan.ContainerRef `json:"removedContainers"`
	Blocked           []plan.Decision     `json:"blocked"`
	Skipped           []plan.Decision     `json:"skipped"`
	Failed            []Failure           `json:"failed"`
	BytesReclaimed    int64               `json:"bytesReclaimed"`
	Duration          time.Duration       `json:"-"`
}

// DryRun is the result a real run would aim for: every action as planned.
func DryRun(p *plan.Plan) Result {
	r := Result{DryRun: true, Blocked: p.Blocked, Skipped: p.Skipped}
	for _, a := range p.Actions {
		r.RemovedContainers = append(r.RemovedContainers, a.Containers...)
		ri := RemovedImage{ImageID: a.ImageID, Image: a.Image, Refs: a.Refs, Deleted: a.Delete, Forced: a.Force}
		if a.Delete {
			ri.Bytes = a.Size
		}
		r.RemovedImages = append(r.RemovedImages, ri)
		r.BytesReclaimed += ri.Bytes
	}
	r.normalize()
	return r
}

// outcome is what one action came to.
type outcome struct {
	image      *RemovedImage
	containers []plan.ContainerRef
	blocked    *plan.Decision
	failure    *Failure
}

// Run carries out the plan, wave after wave (an image after those built on
// it), up to Concurrency actions at once within a wave.
func Run(ctx context.Context, rt engine.Runtime, p *plan.Plan, opts Options) Result {
	start := time.Now()
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Minute
	}
	r := Result{Blocked: append([]plan.Decision(nil), p.Blocked...), Skipped: p.Skipped}
	for _, wave := range waves(p.Actions) {
		outcomes := make([]outcome, len(wave))
		sem := make(chan struct{}, opts.Concurrency)
		var wg sync.WaitGroup
		for i := range wave {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				outcomes[i] = runAction(ctx, rt, &wave[i], opts)
			}()
		}
		wg.Wait()
		for _, o := range outcomes {
			r.RemovedContainers = append(r.RemovedContainers, o.containers...)
			if o.image != nil {
				r.RemovedImages = append(r.RemovedImages, *o.image)
				r.BytesReclaimed += o.image.Bytes
			}
			if o.blocked != nil {
				r.Blocked = append(r.Blocked, *o.blocked)
			}
			if o.failure != nil {
				r.Failed = append(r.Failed, *o.failure)
			}
		}
	}
	r.normalize()
	r.Duration = time.Since(start)
	return r
}

func waves(actions []plan.Action) [][]plan.Action {
	var out [][]plan.Action
	for _, a := range actions {
		for len(out) <= a.Wave {
			out = append(out, nil)
		}
		out[a.Wave] = append(out[a.Wave], a)
	}
	return out
}

func runAction(ctx context.Context, rt engine.Runtime, a *plan.Action, opts Options) outcome {
	var o outcome
	blocked := func(msg string) outcome {
		o.blocked = &plan.Decision{ImageID: a.ImageID, Image: a.Image, Reason: plan.Conflict, Message: msg}
		return o
	}
	failed := func(err error) outcome {
		o.failure = &Failure{ImageID: a.ImageID, Image: a.Image, Error: err.Error()}
		return o
	}

	for _, c := range a.Containers {
		err := call(ctx, opts, func(ctx context.Context) error { return rt.RemoveContainer(ctx, c.ID, opts.RemoveVolumes) })
		switch {
		case err == nil || errors.Is(err, engine.ErrNotFound):
			o.containers = append(o.containers, c)
		case errors.Is(err, engine.ErrConflict):
			// It started since the plan: it stays, and so does the image.
			return blocked(fmt.Sprintf("container %s: %v", engine.DisplayContainer(c.Name, c.ID), err))
		default:
			return failed(fmt.Errorf("remove container %s: %w", engine.DisplayContainer(c.Name, c.ID), err))
		}
	}

	if a.Force {
		// With force the engine untags an image even while a container runs
		// it; so look again, just before, for a container that started.
		var users []engine.Container
		err := call(ctx, opts, func(ctx context.Context) (err error) {
			users, err = rt.ContainersUsing(ctx, a.ImageID)
			return err
		})
		if err != nil {
			return failed(fmt.Errorf("check containers of %s: %w", a.Image, err))
		}
		for _, c := range users {
			if !c.Stopped() {
				return blocked(fmt.Sprintf("%s container %s started using it", c.State, c.Display()))
			}
		}
	}

	ri := &RemovedImage{ImageID: a.ImageID, Image: a.Image, Forced: a.Force}
	for i, ref := range a.Refs {
		// Force only where it is needed: the last reference, which deletes the image.
		force := a.Force && i == len(a.Refs)-1
		var del engine.Deleted
		err := call(ctx, opts, func(ctx context.Context) (err error) {
			del, err = rt.RemoveImage(ctx, ref, force)
			return err
		})
		switch {
		case err == nil:
			if ref != a.ImageID {
				ri.Refs = append(ri.Refs, ref)
			}
			for _, id := range del.Deleted {
				if id == a.ImageID {
					ri.Deleted = true
				}
			}
		case errors.Is(err, engine.ErrNotFound):
			// Gone already: the engine drops digest references with the
			// last tag, or another hand was quicker.
			if ref == a.ImageID {
				ri.Deleted = true
			}
		case errors.Is(err, engine.ErrConflict):
			o.image = keep(ri)
			return blocked(err.Error())
		default:
			o.image = keep(ri)
			return failed(fmt.Errorf("remove image %s: %w", ref, err))
		}
		if ri.Deleted {
			break
		}
	}
	if ri.Deleted {
		ri.Bytes = a.Size
	}
	o.image = keep(ri)
	return o
}

// keep returns the removal if it did anything.
func keep(ri *RemovedImage) *RemovedImage {
	if len(ri.Refs) == 0 && !ri.Deleted {
		return nil
	}
	return ri
}

func call(ctx context.Context, opts Options, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, opts.CallTimeout)
	defer cancel()
	return f(ctx)
}

// normalize sorts every list, so that results compare and print the same
// whatever the order work finished in.
func (r *Result) normalize() {
	sort.Slice(r.RemovedImages, func(i, j int) bool {
		if r.RemovedImages[i].Image != r.RemovedImages[j].Image {
			return r.RemovedImages[i].Image < r.RemovedImages[j].Image
		}
		return r.RemovedImages[i].ImageID < r.RemovedImages[j].ImageID
	})
	sort.Slice(r.RemovedContainers, func(i, j int) bool { return r.RemovedContainers[i].ID < r.RemovedContainers[j].ID })
	sort.Slice(r.Failed, func(i, j int) bool { return r.Failed[i].Image < r.Failed[j].Image })
	plan.SortDecisions(r.Blocked)
}
