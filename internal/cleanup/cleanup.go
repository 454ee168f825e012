// Package cleanup runs one sweep of a policy on one engine: list, inspect the
// candidates, plan, then apply (or not, in a dry run). The CLI and the node
// agent both call Sweep.
package cleanup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

// Options of a sweep that do not come from the policy.
type Options struct {
	// Protected are references or IDs never removed (the agent's own image).
	Protected []string
	// PlanOnly plans without applying, whatever the policy says.
	PlanOnly bool
	// Concurrency bounds the engine calls under way at once (default 4).
	Concurrency int
}

// Outcome is a sweep: its plan and what applying it did.
type Outcome struct {
	Plan   plan.Plan
	Result apply.Result
	// Inspected counts the images and containers inspected.
	Inspected int
}

// ErrInvalidPolicy wraps the errors of a policy that cannot be planned.
var ErrInvalidPolicy = errors.New("invalid policy")

// Sweep applies the policy spec once. An error means the sweep could not
// run (invalid policy, engine unreachable); per-image failures are in the
// result instead.
func Sweep(ctx context.Context, rt engine.Runtime, spec *v1alpha1.ImageCleanupPolicySpec, now time.Time, opts Options) (Outcome, error) {
	start := time.Now()
	popts, err := plan.OptionsFor(spec, opts.Protected)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	inv, err := Collect(ctx, rt)
	if err != nil {
		return Outcome{}, err
	}
	imageIDs, containerIDs := plan.Candidates(&inv, &popts)
	if err := inspect(ctx, rt, &inv, imageIDs, containerIDs, opts.Concurrency); err != nil {
		return Outcome{}, err
	}
	out := Outcome{Plan: plan.Make(&inv, &popts, now), Inspected: len(imageIDs) + len(containerIDs)}
	if spec.DryRun || opts.PlanOnly {
		out.Result = apply.DryRun(&out.Plan)
	} else {
		out.Result = apply.Run(ctx, rt, &out.Plan, apply.Options{
			RemoveVolumes: spec.StoppedContainers.RemoveVolumes,
			Concurrency:   opts.Concurrency,
		})
	}
	out.Result.Duration = time.Since(start)
	return out, nil
}

// Collect lists the engine's images and containers: one call each.
func Collect(ctx context.Context, rt engine.Runtime) (engine.Inventory, error) {
	images, err := rt.ListImages(ctx)
	if err != nil {
		return engine.Inventory{}, fmt.Errorf("list images: %w", err)
	}
	containers, err := rt.ListContainers(ctx)
	if err != nil {
		return engine.Inventory{}, fmt.Errorf("list containers: %w", err)
	}
	return engine.Inventory{Images: images, Containers: containers}, nil
}

// inspect fills in what the lists do not tell: when candidate images were
// last tagged, and when candidate containers finished. What vanished since
// the list is dropped from the inventory.
func inspect(ctx context.Context, rt engine.Runtime, inv *engine.Inventory, imageIDs, containerIDs []string, concurrency int) error {
	if concurrency <= 0 {
		concurrency = 4
	}
	imageAt := indexOf(len(inv.Images), func(i int) string { return inv.Images[i].ID })
	containerAt := indexOf(len(inv.Containers), func(i int) string { return inv.Containers[i].ID })
	gone := map[string]bool{}
	var mu sync.Mutex
	var firstErr error
	note := func(id string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(err, engine.ErrNotFound) {
			gone[id] = true
		} else if firstErr == nil {
			firstErr = err
		}
	}

	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, id := range imageIDs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t, err := rt.ImageLastTagTime(ctx, id)
			if err != nil {
				note(id, fmt.Errorf("inspect image %s: %w", engine.ShortID(id), err))
				return
			}
			inv.Images[imageAt[id]].LastTagTime = t
		}()
	}
	for _, id := range containerIDs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			state, finished, err := rt.ContainerFinishedAt(ctx, id)
			if err != nil {
				note(id, fmt.Errorf("inspect container %s: %w", engine.ShortID(id), err))
				return
			}
			c := &inv.Containers[containerAt[id]]
			c.State, c.FinishedAt = state, finished
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if len(gone) > 0 {
		inv.Images = dropGone(inv.Images, gone, func(i engine.Image) string { return i.ID })
		inv.Containers = dropGone(inv.Containers, gone, func(c engine.Container) string { return c.ID })
	}
	return nil
}

func indexOf(n int, id func(int) string) map[string]int {
	m := make(map[string]int, n)
	for i := 0; i < n; i++ {
		m[id(i)] = i
	}
	return m
}

func dropGone[T any](items []T, gone map[string]bool, id func(T) string) []T {
	out := items[:0]
	for _, it := range items {
		if !gone[id(it)] {
			out = append(out, it)
		}
	}
	return out
}
