// Package apply carries out a plan against an engine. Nothing is removed
// that the plan does not name, and a plan is stale by the time it runs, so:
//
//   - just before every destructive call (untag, delete by ID, forced
//     delete) the executor re-reads what the decision depended on: the
//     image's containers and its current references. A container that
//     started, or was created, or a reference that moved or appeared since
//     the plan, stops the action with a reason. The window that remains is
//     one engine round trip. Then it asks the caller what the engine cannot
//     say (Options.Pods, Options.Recent): a pod bound to the node since, or
//     an arrival or a use since, keeps the image;
//   - the engine checks again at every delete: a conflict is a blocked
//     outcome, not an error, and "not found" counts as done;
//   - a forced removal deletes by ID, where the engine itself refuses an
//     image a running container uses (by tag, -f untags it anyway);
//   - an engine call that runs out of time means the engine is stalled: the
//     sweep stops instead of waiting call after call.
package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

// DefaultConcurrency is how many engine calls, and image actions, are under
// way at once by default. Measured on dockerd 20.10 (make bench --raw):
// container removals per second rise from 1 to 4 calls in flight and level
// off after; 8 keeps the engine busy while an action waits on its re-check.
const DefaultConcurrency = 8

// MaxConcurrency is the most a user may set (--max-engine-calls): every
// call holds a connection and the node's kubelet shares the engine. Docker
// 20.10 levelled off at 4 calls in flight; Docker 29's containerd store was
// still faster at 64 than at 32 on a backlog of 2,000 containers
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
	// Concurrency bounds the engine calls under way at once, and the image
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

// RemovedImage is one action carried out.
type RemovedImage struct {
	ImageID string `json:"imageID"`
	Image   string `json:"image"`
	// Refs are the references removed; empty (never null) for an image
	// deleted by ID.
	Refs []string `json:"refs"`
	// Deleted: the image itself went, not only references to it.
	Deleted bool  `json:"deleted"`
	Bytes   int64 `json:"bytes"`
	Forced  bool  `json:"forced,omitempty"`
	// PrunedWith names the image whose deletion took this untagged parent
	// with it (the engine prunes it; its bytes are counted in that image's).
	PrunedWith string `json:"prunedWith,omitempty"`
}

// Failure is an engine call that failed for another reason than a conflict.
type Failure struct {
	ImageID string `json:"imageID"`
	Image   string `json:"image"`
	Error   string `json:"error"`
}

// Result is what a sweep did. Each planned image is in at most one of
// RemovedImages, Blocked, Skipped and Failed: in none when it vanished
// (another hand removed it) before its removal; untagged parents the engine
// pruned with an image are in RemovedImages too.
type Result struct {
	DryRun            bool                `json:"dryRun"`
	RemovedImages     []RemovedImage      `json:"removedImages"`
	RemovedContainers []plan.ContainerRef `json:"removedContainers"`
	Blocked           []plan.Decision     `json:"blocked"`
	Skipped           []plan.Decision     `json:"skipped"`
	Failed            []Failure           `json:"failed"`
	BytesReclaimed    int64               `json:"bytesReclaimed"`
	// Stopped says why the sweep stopped before the end of its plan (a
	// stalled engine, the sweep's deadline, Proceed's refusal); empty when
	// it did not.
	Stopped string `json:"stopped,omitempty"`
	// Refused: it stopped because Options.Proceed refused (the policy
	// changed), not because of a fault.
	Refused bool `json:"-"`
}

// DryRun is the result a real run would aim for: every action as planned.
func DryRun(p *plan.Plan) Result {
	r := Result{DryRun: true, Blocked: p.Blocked, Skipped: p.Skipped}
	for _, a := range p.Actions {
		r.RemovedContainers = append(r.RemovedContainers, a.Containers...)
		ri := RemovedImage{ImageID: a.ImageID, Image: a.Image, Refs: refsOnly(a.Refs, a.ImageID), Deleted: a.Delete, Forced: a.Force}
		if a.Delete {
			ri.Bytes = a.Size
		}
		r.RemovedImages = append(r.RemovedImages, ri)
		r.BytesReclaimed += ri.Bytes
	}
	r.normalize()
	return r
}

// refsOnly drops the image's own ID from a list of references.
func refsOnly(refs []string, id string) []string {
	out := []string{}
	for _, ref := range refs {
		if ref != id {
			out = append(out, ref)
		}
	}
	return out
}

// outcome is what one action came to: containers removed, and one of
// image, blocked, failure, interrupted, or not needed any more.
type outcome struct {
	containers  []plan.ContainerRef
	image       *RemovedImage
	pruned      []RemovedImage // untagged parents the engine deleted with it
	blocked     *plan.Decision
	skipped     *plan.Decision // a reason to keep it that came up since the plan
	failure     *Failure
	interrupted bool
	enough      string // why the action was not needed
}

// executor runs one plan; stop ends the sweep early.
type executor struct {
	rt   engine.Runtime
	opts Options
	// slots holds one token per engine call under way: an action fans out
	// its container removals and its re-check's two reads, and the engine
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
	refused bool // Proceed refused
}

// Run carries out the plan, wave after wave (an image after those built on
// it), up to Concurrency actions at once within a wave; with a Concurrency
// of 1, one action after the other in the plan's order. It stops starting
// actions when ctx ends, the engine stalls or Proceed refuses; those not
// started are skipped as Interrupted.
func Run(ctx context.Context, rt engine.Runtime, p *plan.Plan, opts Options) Result {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	x := &executor{rt: rt, opts: opts, stop: cancel, slots: make(chan struct{}, opts.Concurrency)}
	x.users = &sharedListing{list: func(ctx context.Context, imageIDs []string) (users []engine.Container, err error) {
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
	r.Refused = x.refused
	r.normalize()
	return r
}

func (r *Result) add(a *plan.Action, o outcome, x *executor) {
	r.RemovedContainers = append(r.RemovedContainers, o.containers...)
	switch {
	case o.image != nil:
		r.RemovedImages = append(r.RemovedImages, *o.image)
		r.RemovedImages = append(r.RemovedImages, o.pruned...)
		r.BytesReclaimed += o.image.Bytes
	case o.blocked != nil:
		r.Blocked = append(r.Blocked, *o.blocked)
	case o.skipped != nil:
		r.Skipped = append(r.Skipped, *o.skipped)
	case o.failure != nil:
		r.Failed = append(r.Failed, *o.failure)
	case o.interrupted:
		r.Skipped = append(r.Skipped, plan.Decision{ImageID: a.ImageID, Image: a.Image, Reason: plan.Interrupted,
			Message: "the sweep stopped before it: " + x.reason(), Size: a.Size})
	case o.enough != "":
		r.Skipped = append(r.Skipped, plan.Decision{ImageID: a.ImageID, Image: a.Image, Reason: plan.BelowLowWatermark, Message: o.enough, Size: a.Size})
	}
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
			x.stopped, x.refused = err.Error(), true
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

// call makes one engine call in a slot of its own.
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

// check classifies an engine error: a call that ran out of time while the
// sweep still had time means the engine is stalled, and the sweep stops.
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

// prunedWith notes the untagged parents the engine deleted with the image
// (it also lists the layers it deleted, which are not images).
func (s *step) prunedWith(del engine.Deleted) {
	for _, id := range del.Deleted {
		if slices.Contains(s.a.PruneParents, id) {
			s.o.pruned = append(s.o.pruned, RemovedImage{ImageID: id, Image: engine.ShortID(id), Refs: []string{}, Deleted: true, PrunedWith: s.a.Image})
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
		var del engine.Deleted
		refused, err := x.destroy(func() (err error) {
			del, err = x.rt.RemoveImage(ctx, ref, engine.RemoveImageOptions{Prune: len(a.PruneParents) > 0})
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
			if slices.Contains(del.Deleted, a.ImageID) {
				s.ri.Deleted = true
				s.prunedWith(del)
				return s.done()
			}
		case errors.Is(err, engine.ErrNotFound):
			// Another hand was quicker.
		case errors.Is(err, engine.ErrConflict):
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
				case err == nil || errors.Is(err, engine.ErrNotFound):
					s.o.containers = append(s.o.containers, c)
				case errors.Is(err, engine.ErrConflict):
					// It started since the plan: it stays, and so does the image.
					endWith(func() outcome {
						return s.blocked(plan.RunningContainer, fmt.Sprintf("container %s started since the plan: %v", engine.DisplayContainer(c.Name, c.ID), err))
					})
				default:
					endWith(func() outcome {
						return s.failed(fmt.Errorf("remove container %s: %w", engine.DisplayContainer(c.Name, c.ID), err))
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
// (the engine deletes it although stopped containers use it, and refuses
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
	var del engine.Deleted
	refused, err := x.destroy(func() (err error) {
		del, err = x.rt.RemoveImage(ctx, a.ImageID, engine.RemoveImageOptions{Force: a.Force, Prune: len(a.PruneParents) > 0})
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
	case errors.Is(err, engine.ErrNotFound):
		return s.done() // another hand was quicker
	case errors.Is(err, engine.ErrConflict):
		return s.blocked(plan.Conflict, err.Error())
	default:
		return s.failed(fmt.Errorf("remove image %s: %w", engine.ShortID(a.ImageID), err))
	}
}

// recheck re-reads the image and its containers just before a destructive
// call, both reads under way at once (both begin after every earlier call
// of the action ended). It returns the image as it is now, or gone when it
// is no longer there, or the outcome that ends the action: a container
// runs it, or (for a deletion, with or without force) a container the plan
// did not weigh uses it.
func (x *executor) recheck(ctx context.Context, s *step) (cur engine.Image, gone bool, stop *outcome) {
	a := s.a
	var (
		users           []engine.Container
		err, inspectErr error
	)
	x.fanOut(func() {
		users, err = x.users.using(ctx, a.ImageID)
	}, func() {
		inspectErr = x.call(func() (err error) {
			cur, err = x.rt.InspectImage(ctx, a.ImageID)
			return err
		})
	})
	if err = x.check(ctx, err); err != nil {
		o := s.failed(fmt.Errorf("re-check containers of %s: %w", a.Image, err))
		return cur, false, &o
	}
	// The plan weighed these: the containers it removed, and with force the
	// stopped ones it leaves behind. Any other container of an image to be
	// deleted came since (a kubelet's, perhaps, whose image force must not
	// take).
	weighed := map[string]bool{}
	for _, c := range a.Containers {
		weighed[c.ID] = true
	}
	for _, id := range a.Kept {
		weighed[id] = true
	}
	for i := range users {
		c := &users[i]
		switch {
		case !c.Stopped():
			reason, msg := plan.InUseBy(c)
			o := s.blocked(reason, msg+" (since the plan)")
			return cur, false, &o
		case a.Delete && !weighed[c.ID]:
			o := s.blocked(plan.Changed, fmt.Sprintf("container %s was created on it since the plan", c.Display()))
			return cur, false, &o
		}
	}
	switch err = x.check(ctx, inspectErr); {
	case errors.Is(err, engine.ErrNotFound):
		return cur, true, nil
	case err != nil:
		o := s.failed(fmt.Errorf("re-check image %s: %w", a.Image, err))
		return cur, false, &o
	}
	return cur, false, x.keep(s, &cur)
}

// keep asks, last thing before a destructive call, what the agent knows now
// that the plan could not: the pods bound to the node, and the image
// clock.
func (x *executor) keep(s *step, cur *engine.Image) *outcome {
	if o := x.podsKeep(s, cur); o != nil {
		return o
	}
	if x.opts.Recent == nil {
		return nil
	}
	if reason, msg := x.opts.Recent(s.a); reason != "" {
		o := s.skipped(reason, msg)
		return &o
	}
	return nil
}

// podsKeep asks what the pods bound to the node name now: a pod bound since
// the plan that names the image, or an untagged parent its deletion would
// prune, keeps the action's image. When the pods cannot be seen, the sweep
// stops.
func (x *executor) podsKeep(s *step, cur *engine.Image) *outcome {
	if x.opts.Pods == nil {
		return nil
	}
	pods, err := x.opts.Pods()
	if err != nil {
		x.refuse(err.Error())
		o := s.stopped()
		return &o
	}
	ix := plan.PodsNaming(pods)
	pod, what := ix.Using(cur.ID, cur.RepoTags, cur.RepoDigests), "it"
	for _, parent := range s.a.PruneParents {
		if pod != "" {
			break
		}
		pod, what = ix.Using(parent, nil, nil), "its untagged parent "+engine.ShortID(parent)+", which its deletion would prune"
	}
	if pod == "" {
		return nil
	}
	o := s.skipped(plan.PodOnNode, "pod "+pod+" was bound to this node since the plan and names "+what)
	return &o
}

// hasRef reports whether ref (a tag or digest reference) still names img.
func hasRef(img *engine.Image, ref string) bool {
	for _, r := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
		if sameRef(r, ref) {
			return true
		}
	}
	return false
}

// refsNotIn returns the image's references that are not among refs.
func refsNotIn(img *engine.Image, refs []string) []string {
	var extra []string
	for _, r := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
		if !slices.ContainsFunc(refs, func(p string) bool { return sameRef(r, p) }) {
			extra = append(extra, r)
		}
	}
	return extra
}

// sameRef compares references in normalized form (busybox is
// docker.io/library/busybox:latest).
func sameRef(a, b string) bool {
	if a == b {
		return true
	}
	if ta, err := match.ParseTag(a); err == nil {
		tb, err := match.ParseTag(b)
		return err == nil && ta == tb
	}
	na, da, err1 := match.ParseDigest(a)
	nb, db, err2 := match.ParseDigest(b)
	return err1 == nil && err2 == nil && na == nb && da == db
}

// Recount corrects the result of failed actions by what the engine shows
// now (inv, listed after the sweep): a call can fail on this side and still
// have been done by the engine. Containers that are gone count as removed;
// a deletion whose image is gone counts as done, and its failure goes. It
// returns the deletions left unfinished: images still there without any
// reference, which no pattern can select any more.
func (r *Result) Recount(p *plan.Plan, inv *engine.Inventory) (unfinished []string) {
	images := map[string]*engine.Image{}
	for i := range inv.Images {
		images[inv.Images[i].ID] = &inv.Images[i]
	}
	containers := map[string]bool{}
	for _, c := range inv.Containers {
		containers[c.ID] = true
	}
	counted := map[string]bool{}
	for _, c := range r.RemovedContainers {
		counted[c.ID] = true
	}
	failed := map[string]bool{}
	for _, f := range r.Failed {
		failed[f.ImageID] = true
	}
	for _, a := range p.Actions {
		img := images[a.ImageID]
		if a.Delete && img != nil && img.Unreferenced() {
			unfinished = append(unfinished, a.ImageID)
		}
		if !failed[a.ImageID] {
			continue
		}
		for _, c := range a.Containers {
			if !containers[c.ID] && !counted[c.ID] {
				r.RemovedContainers = append(r.RemovedContainers, c)
			}
		}
		if a.Delete && img == nil {
			r.RemovedImages = append(r.RemovedImages, RemovedImage{ImageID: a.ImageID, Image: a.Image,
				Refs: refsOnly(a.Refs, a.ImageID), Deleted: true, Bytes: a.Size, Forced: a.Force})
			r.BytesReclaimed += a.Size
			r.Failed = slices.DeleteFunc(r.Failed, func(f Failure) bool { return f.ImageID == a.ImageID })
		}
	}
	r.normalize()
	return unfinished
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
	plan.SortDecisions(r.Skipped)
}
