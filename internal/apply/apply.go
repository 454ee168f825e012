// Package apply carries out a plan against a runtime. Nothing is removed
// that the plan does not name, and a plan is stale by the time it runs, so:
//
//   - just before every destructive call (untag, delete by ID, forced
//     delete) the executor re-reads what the decision depended on: the
//     image's containers and its current references. A container that
//     started, or was created, or a reference that moved or appeared since
//     the plan, stops the action with a reason. The window that remains is
//     one runtime round trip. Then it asks the caller what the runtime cannot
//     say (Options.Pods, Options.Recent): a pod bound to the node since, or
//     an arrival or a use since, keeps the image;
//   - the runtime checks again at every delete: a conflict is a blocked
//     outcome, not an error, and "not found" counts as done;
//   - a forced removal deletes by ID, where the runtime itself refuses an
//     image a running container uses (by tag, -f untags it anyway);
//   - a runtime call that runs out of time means the runtime is stalled: the
//     sweep stops instead of waiting call after call.
package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// DefaultConcurrency is how many runtime calls, and image actions, are under
// way at once by default. Measured (make bench --raw, docs/testing.md):
// container removals per second rise from 1 to 4 calls in flight and level
// off after on the slowest runtime measured; 8 keeps the runtime busy while
// an action waits on its re-check.
const DefaultConcurrency = 8

// MaxConcurrency is the most a user may set (--max-runtime-calls): every
// call holds a connection and the node's kubelet shares the runtime. The
// slowest runtime measured levelled off at 4 calls in flight, the fastest
// was still faster at 64 than at 32 on a backlog of 2,000 containers
// (docs/testing.md), which is where the bound stops it.
const MaxConcurrency = 64

// CheckConcurrency refuses what a user may not set.
func CheckConcurrency(n int) error {
	if n < 1 || n > MaxConcurrency {
		return fmt.Errorf("must be 1 to %d, not %d", MaxConcurrency, n)
	}
	return nil
}

// Options tune the executor.
type Options struct {
	// RemoveVolumes removes the anonymous volumes of removed containers.
	RemoveVolumes bool
	// Concurrency bounds the runtime calls under way at once, and the image
	// actions (default 8). With 1, everything goes one after the other in
	// the plan's order.
	Concurrency int
	// Enough, if set, is asked before each action starts; when it says
	// enough (the disk is under its low watermark), the rest of the plan is
	// skipped as BelowLowWatermark with its message.
	Enough func() (bool, string)
	// Proceed, if set, is asked just before every destructive call; an
	// error (the policy changed since the plan) stops the sweep there: calls
	// under way finish, nothing more starts.
	Proceed func() error
	// Pods, if set, says what the pods bound to the node name now. It is
	// asked with the re-check before every destructive call on an image: a
	// pod bound since the plan that names the image (or an untagged parent
	// its deletion would prune) keeps it, skipped as PodOnNode. An error
	// (the pods cannot be seen) stops the sweep there.
	Pods func() ([]plan.PodImage, error)
	// Recent, if set, is asked with the re-check too, after Pods: whether
	// the image (or an untagged parent its deletion would prune) arrived
	// again, or was used, since the plan, too recently for the policy (the
	// agent's image clock, which its event follower keeps current): a
	// reason skips the action with its message.
	Recent func(a *plan.Action) (plan.Reason, string)
}

// outcome is what one action came to: containers removed, and one of
// image, blocked, failure, interrupted, or not needed any more.
type outcome struct {
	containers  []plan.ContainerRef
	image       *RemovedImage
	pruned      []RemovedImage // untagged parents the runtime deleted with it
	blocked     *plan.Decision
	skipped     *plan.Decision // a reason to keep it that came up since the plan
	failure     *Failure
	interrupted bool
	enough      string // why the action was not needed
}

// executor runs one plan; stop ends the sweep early.
type executor struct {
	rt   Runtime
	opts Options
	// slots holds one token per runtime call under way: an action fans out
	// its container removals and its re-check's two reads, and the runtime
	// still sees at most Concurrency calls, so that the last actions of a
	// wave keep it as busy as the first (it sat half idle while they
	// removed their containers one by one).
	slots chan struct{}
	// users makes the re-checks' container listings, one for every
	// re-check that asks while the one before is under way.
	users *sharedListing

	stop    context.CancelFunc
	mu      sync.Mutex
	stopped string
	refused bool  // Proceed refused
	refusal error // with this
}

// Runtime is what the executor calls: the removals, and the reads of its
// re-check.
type Runtime interface {
	InspectImage(ctx context.Context, id string) (runtime.Image, error)
	ContainersUsing(ctx context.Context, imageIDs []string) ([]runtime.Container, error)
	RemoveContainer(ctx context.Context, id string, removeVolumes bool) error
	RemoveImage(ctx context.Context, ref string, opts runtime.RemoveImageOptions) (runtime.ImageRemoval, error)
}

// Run carries out the plan, wave after wave (an image after those built on
// it), up to Concurrency actions at once within a wave; with a Concurrency
// of 1, one action after the other in the plan's order. It stops starting
// actions when ctx ends, the runtime stalls or Proceed refuses; those not
// started are skipped as Interrupted.
func Run(ctx context.Context, rt Runtime, p *plan.Plan, opts Options) Result {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	x := &executor{rt: rt, opts: opts, stop: cancel, slots: make(chan struct{}, opts.Concurrency)}
	x.users = &sharedListing{list: func(ctx context.Context, imageIDs []string) (users []runtime.Container, err error) {
		err = x.call(func() error {
			users, err = rt.ContainersUsing(ctx, imageIDs)
			return err
		})
		return users, err
	}}

	r := Result{Blocked: slices.Clone(p.Blocked), Skipped: slices.Clone(p.Skipped)}
	for _, wave := range batches(p.Actions, opts.Concurrency) {
		outcomes := make([]outcome, len(wave))
		var g errgroup.Group
		g.SetLimit(opts.Concurrency)
		for i := range wave {
			g.Go(func() error {
				if runCtx.Err() != nil || x.reason() != "" { // stopped before this one's turn
					if ctx.Err() != nil {
						x.halt("the sweep's deadline passed")
					}
					outcomes[i].interrupted = true
					return nil
				}
				if enough, why := x.enough(); enough {
					outcomes[i].enough = why
					return nil
				}
				outcomes[i] = x.run(runCtx, &wave[i])
				return nil
			})
		}
		_ = g.Wait() // actions report through their outcome
		for i, o := range outcomes {
			r.add(&wave[i], o, x)
		}
	}
	r.Stopped = x.reason()
	r.Refused, r.Refusal = x.refused, x.refusal
	r.normalize()
	return r
}

// enough asks Options.Enough, one caller at a time (it measures the disk).
func (x *executor) enough() (bool, string) {
	if x.opts.Enough == nil {
		return false, ""
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.opts.Enough()
}

// halt stops the sweep for a reason (the first one wins), and cancels the
// calls under way.
func (x *executor) halt(reason string) {
	x.refuse(reason)
	x.stop()
}

// refuse stops the sweep for a reason (the first one wins): no new action
// starts, calls under way finish.
func (x *executor) refuse(reason string) {
	x.mu.Lock()
	if x.stopped == "" {
		x.stopped = reason
	}
	x.mu.Unlock()
}

// proceed asks Options.Proceed before a destructive call; a refusal stops
// the sweep.
func (x *executor) proceed() bool {
	if x.reason() != "" {
		return false
	}
	if x.opts.Proceed == nil {
		return true
	}
	if err := x.opts.Proceed(); err != nil {
		x.mu.Lock()
		if x.stopped == "" { // the first reason wins, and says what it was
			x.stopped, x.refused, x.refusal = err.Error(), true, err
		}
		x.mu.Unlock()
		return false
	}
	return true
}

func (x *executor) reason() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stopped
}

// destroy makes one destructive call in a slot of its own, and asks
// Proceed once it holds the slot, right before the call: a change made
// while it waited for a slot stops it. refused: Proceed (or an earlier
// stop) refused, and nothing was called.
func (x *executor) destroy(f func() error) (refused bool, err error) {
	x.slots <- struct{}{}
	defer func() { <-x.slots }()
	if !x.proceed() {
		return true, nil
	}
	return false, f()
}

// call makes one runtime call in a slot of its own.
func (x *executor) call(f func() error) error {
	x.slots <- struct{}{}
	defer func() { <-x.slots }()
	return f()
}

// fanOut runs fs at once, as many as Concurrency allows (with 1, one after
// the other in their order), and waits for them.
func (x *executor) fanOut(fs ...func()) {
	var g errgroup.Group
	g.SetLimit(x.opts.Concurrency)
	for _, f := range fs {
		g.Go(func() error { f(); return nil })
	}
	_ = g.Wait()
}

// check classifies a runtime error: a call that ran out of time while the
// sweep still had time means the runtime is stalled, and the sweep stops.
func (x *executor) check(ctx context.Context, err error) error {
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		x.halt("the container runtime stalled: " + err.Error())
	}
	return err
}

// batches are the plan's waves, or with a concurrency of 1 each action
// alone, in the plan's order (least recently used first, a parent right
// after its children).
func batches(actions []plan.Action, concurrency int) [][]plan.Action {
	if concurrency == 1 {
		out := make([][]plan.Action, len(actions))
		for i := range actions {
			out[i] = actions[i : i+1]
		}
		return out
	}
	return waves(actions)
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
