package cleanup

import (
	"context"
	"fmt"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Sweep is one sweep of a policy on one runtime, from its plan to its
// commit. Run plans, records in the image clock the removals it begins,
// applies them with the re-checks, and settles the result; Commit has the
// caller tell the result (the agent writes its report, the CLI prints it)
// and then drops the records of what the result counted. What the result
// could not count (a removal that failed, on a runtime that could not be
// listed afterwards, may have been done) stays on record for the next
// sweep of the policy, which counts what the runtime lost of it.
type Sweep struct {
	rt   runtime.Runtime
	spec *v1alpha1.ImageCleanupPolicySpec
	now  time.Time
	mark time.Time
	opts Options
	// harvested: Run counted the earlier sweeps' records into its outcome,
	// so that telling it tells them.
	harvested bool
}

// NewSweep prepares a sweep of spec at now (the caller's clock, from
// which ages are measured; the caller also times the sweep).
func NewSweep(rt runtime.Runtime, spec *v1alpha1.ImageCleanupPolicySpec, now time.Time, opts Options) *Sweep {
	if opts.Clock == nil {
		opts.Clock = imageclock.InMemory()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = apply.DefaultConcurrency
	}
	return &Sweep{rt: rt, spec: spec, now: now, mark: markAfter(now, opts.ReportedThrough), opts: opts}
}

// markAfter is the instant a sweep begun at now is known by in the image
// clock's journal and in its report (countedThrough): now, to the
// microsecond a report keeps, unless that is not after the last reported
// sweep's (a clock that did not move, or was set back), then a microsecond
// after it. Records of sweeps up to a report's mark are the ones it told,
// so each sweep's mark must come after the last reported one; ages are
// still measured from now.
func markAfter(now, reported time.Time) time.Time {
	mark := now.Truncate(time.Microsecond)
	if !reported.IsZero() && !mark.After(reported) {
		mark = reported.Truncate(time.Microsecond).Add(time.Microsecond)
	}
	return mark
}

// Run applies the policy once. An error means the sweep could not run
// (invalid policy, runtime unreachable, wrapping ErrInvalidPolicy,
// ErrRuntime, ErrDisk), or its clock could not be saved (ErrState: the
// outcome is still returned, what was removed was removed); per-image
// failures are in the result instead.
func (s *Sweep) Run(ctx context.Context) (Outcome, error) {
	rt, spec, now, opts := s.rt, s.spec, s.now, s.opts
	popts, err := plan.OptionsFor(spec, opts.Protected, rt.Capabilities())
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	inv, err := Collect(ctx, rt)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrRuntime, err)
	}
	opts.Clock.Observe(&inv, now)
	out := Outcome{Recovered: opts.Clock.Journal().Harvest(opts.Policy, &inv, opts.ReportedThrough, s.mark), Harvested: true, Mark: s.mark,
		Returned: opts.Clock.Returns(opts.Policy, now), Unhonoured: Unhonoured(spec, rt.Capabilities())}
	s.harvested = true
	// From here on, an error returns the outcome too: what the harvest
	// counted must reach the report that drops its records.
	popts.Unfinished = opts.Clock.Journal().UnfinishedFor(opts.Policy)
	popts.PodImages = opts.PodImages
	if spec.DiskUsage != nil {
		if out.Disk, err = measureBefore(spec.DiskUsage, &popts, opts.Disk); err != nil {
			return out, fmt.Errorf("%w: %w", ErrDisk, err)
		}
		if out.Disk.Pressure == "" && popts.UnusedFor == 0 {
			// Under the watermarks, and no maxUnusedAge: nothing to do.
			return out, save(opts.Clock)
		}
	}
	imageIDs, containerIDs := plan.Candidates(&inv, &popts, now)
	if err := inspect(ctx, rt, opts.Clock, &inv, imageIDs, containerIDs, opts.Concurrency); err != nil {
		return out, fmt.Errorf("%w: %w", ErrRuntime, err)
	}
	out.Plan = plan.Make(&inv, &popts, now)
	if spec.DryRun || opts.PlanOnly {
		out.Result = apply.DryRun(&out.Plan)
		return out, save(opts.Clock)
	}

	// Remember the removals before they start: if the runtime or this
	// process dies half-way, the next sweep finishes them and counts what
	// went. The record stays until the sweep is committed.
	opts.Clock.Journal().Begin(opts.Policy, s.mark, removals(&out.Plan))
	if err := save(opts.Clock); err != nil {
		out.Plan, out.Result = plan.Plan{}, apply.Result{}
		return out, err // nothing removed: no record, no removal
	}
	applyOpts := apply.Options{RemoveVolumes: spec.StoppedContainers.RemoveVolumes, Concurrency: opts.Concurrency, Proceed: opts.Proceed, Pods: opts.Pods,
		Recent: recentSince(opts.Clock, &popts, now)}
	if out.Disk != nil && out.Disk.Pressure != "" {
		// One at a time, in order, asking the disk before each: the sweep
		// stops as soon as usage is under the low watermarks.
		applyOpts.Concurrency, applyOpts.Enough = 1, enoughWhenBelowLow(spec.DiskUsage, opts.Disk)
	}
	out.Result = apply.Run(ctx, rt, &out.Plan, applyOpts)
	listed := true
	if len(out.Result.Failed) > 0 || out.Result.Stopped != "" {
		listed = settle(ctx, rt, &out)
	}
	for _, ri := range out.Result.RemovedImages {
		if ri.Deleted {
			// Watched for a return; and forgotten (if it comes back, it
			// arrives again), unless it is back already.
			if !opts.Clock.Departed(ri.ImageID, imageclock.Departure{Policy: opts.Policy, Image: ri.Image, Refs: ri.Refs, Bytes: ri.Bytes, At: now}) {
				opts.Clock.ImageGone(ri.ImageID)
			}
		}
	}
	if !listed {
		// What failed may still have been done, and no listing says: the
		// result cannot count it, the next sweep's harvest will, whatever
		// this one's report says.
		unsettled(opts.Clock, opts.Policy, &out)
	}
	if out.Disk != nil {
		measureAfter(spec.DiskUsage, out.Disk, &out.Result, opts.Disk)
	}
	return out, save(opts.Clock)
}

// unsettled marks in the clock the begun removals of the actions that
// failed (and the untagged parents their deletion may have pruned): the
// runtime may have done them, and the result does not count them, but for
// the containers it counts.
func unsettled(clock *imageclock.Clock, policy string, out *Outcome) {
	if len(out.Result.Failed) == 0 {
		return
	}
	failed := map[string]bool{}
	for _, f := range out.Result.Failed {
		failed[f.ImageID] = true
	}
	removed := map[string]bool{}
	for _, c := range out.Result.RemovedContainers {
		removed[c.ID] = true
	}
	for _, a := range out.Plan.Actions {
		if !failed[a.ImageID] {
			continue
		}
		var counted []string
		for _, c := range a.Containers {
			if removed[c.ID] {
				counted = append(counted, c.ID)
			}
		}
		clock.Journal().Unsettled(policy, a.ImageID, counted)
		for _, parent := range a.PruneParents {
			clock.Journal().Unsettled(policy, parent, nil)
		}
	}
}

// Commit has tell tell the sweep's outcome (write the report, print the
// result), then drops the records of the removals the sweep began and its
// result counted, and of what its harvest counted: told, they are counted.
// If tell fails, the records stay, and the next sweep of the policy counts
// what they hold (the agent writes the same status again first). Unsettled
// records stay whatever tell says.
// The error is tell's, or one that wraps ErrState: the records could not
// be saved as dropped (the next sweep drops them, as its report is newer).
// A sweep that could not list the runtime told nothing of the records:
// they stay.
func (s *Sweep) Commit(tell func() error) error {
	if err := tell(); err != nil {
		return err
	}
	if !s.harvested {
		return nil
	}
	s.opts.Clock.Journal().Reported(s.opts.Policy, s.mark)
	return save(s.opts.Clock)
}
