// Package cleanup runs one sweep of a policy on one runtime (Sweep): list,
// bring the image clock up to date, inspect the candidates, plan, record
// the removals it begins, apply them (or not, in a dry run), settle the
// books from a fresh listing if anything went wrong, and commit: the
// caller tells the result, then the records go. The node agent's
// reconcile, the CLI and the model test of the agent's life all drive it.
package cleanup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Options of a sweep that do not come from the policy.
type Options struct {
	// Policy names the policy, for the removals the clock remembers.
	Policy string
	// Clock is the runtime's image clock; nil means a fresh one in memory,
	// where every image arrives now unless the runtime proves otherwise.
	Clock *imageclock.Clock
	// Protected are references, IDs or patterns never removed (the agent's
	// own image, sandbox images given by flag).
	Protected []string
	// PlanOnly plans without applying, whatever the policy says.
	PlanOnly bool
	// Concurrency bounds the runtime calls under way at once (default 8).
	Concurrency int
	// Disk measures the runtime's data filesystem; a policy with diskUsage
	// needs it.
	Disk func() (disk.Usage, error)
	// ReportedThrough is the start of the policy's last sweep whose report
	// is written (zero: none known): removals begun by sweeps up to then
	// are not recovered again.
	ReportedThrough time.Time
	// Proceed, if set, is asked before every destructive call: an error
	// (the policy changed, the node left its selector) stops the sweep.
	Proceed func() error
	// PodImages are the images the pods bound to this node name: they stay.
	PodImages []plan.PodImage
	// Pods, if set, says what the pods bound to this node name now: asked
	// again before every destructive call on an image (apply.Options.Pods).
	Pods func() ([]plan.PodImage, error)
}

// Outcome is a sweep: its plan and what applying it did.
type Outcome struct {
	Plan   plan.Plan
	Result apply.Result
	// Disk is set for a policy with diskUsage.
	Disk *DiskReport
	// Recovered is what earlier sweeps of the policy removed and never
	// reported (the process or the runtime died): counted now.
	Recovered imageclock.Recovered
	// Harvested: the sweep listed the runtime and counted, in Recovered,
	// what earlier sweeps' records hold; its report tells them, and the
	// records of sweeps up to its start are settled.
	Harvested bool
	// Mark is the instant the sweep is known by in the journal (Sweep.Mark):
	// what its report says it counted through, when Harvested.
	Mark time.Time
	// Returned are the images the policy's sweeps deleted that came back
	// within imageclock.ReturnWindow of their removal, seen in the
	// ReturnWindow up to this sweep: what the policy removes and the node
	// needs again.
	Returned []imageclock.Return
	// Unhonoured says which of the policy's fields this runtime cannot
	// honour, and what they mean here instead (never silently different).
	Unhonoured []string
}

// Unhonoured lists the policy's fields a runtime with caps cannot honour,
// each with what it means there.
func Unhonoured(spec *v1alpha1.ImageCleanupPolicySpec, caps runtime.Capabilities) []string {
	var out []string
	if spec.Force && !caps.ForceRemoval {
		out = append(out, "force is not honoured: this runtime has no forced removal, so an image that kept stopped containers use stays blocked")
	}
	if spec.StoppedContainers.RemoveVolumes && !caps.ContainerVolumes {
		out = append(out, "stoppedContainers.removeVolumes has no effect: this runtime's containers have no volumes of their own (a pod's volumes are the kubelet's)")
	}
	return out
}

// DiskReport is the data filesystem around a sweep.
type DiskReport struct {
	Before, After disk.Usage
	// Pressure says which watermark was above high ("space" or "inodes"),
	// "" when none: then only images unused for maxUnusedAge went.
	Pressure string
	// Unreached: under pressure, the sweep ended with the disk still above
	// its low watermark (nothing left that the policy may remove).
	Unreached bool
	// AfterErr is why the disk could not be measured after the sweep: After
	// then repeats Before, and the bytes reclaimed are the images' sizes.
	AfterErr error
}

// ErrNoDataRoot is a policy with diskUsage and nothing to measure the
// runtime's data filesystem with.
var ErrNoDataRoot = errors.New("diskUsage needs the runtime's data root: give --data-root (the agent's DaemonSet mounts it)")

// Causes of a sweep that could not run, or not to its end; the error wraps
// one of them, so that callers judge it without reading messages.
var (
	// ErrInvalidPolicy: the policy cannot be planned (a new spec is needed).
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrRuntime: the runtime could not be listed or inspected.
	ErrRuntime = errors.New("runtime")
	// ErrDisk: a policy with diskUsage, and the disk cannot be measured.
	ErrDisk = errors.New("disk")
	// ErrState: the image clock cannot be saved (the outcome is still
	// returned: what was removed was removed).
	ErrState = errors.New("image clock")
)

// recentSince is the re-check's reading of the image clock, by the plan's
// own rules (plan.ClockGuard with popts, as the disk's pressure left them)
// at the plan's now: an image, or an untagged parent its deletion would
// prune, that arrived or was used since the plan, more recently than the
// policy allows, stays.
// The plan passed these rules on the same records; only what the clock
// learned since (the agent's follower applies the runtime's events as they
// come) can fail them now. An image the clock no longer knows (it left, and
// its return is not applied yet) counts as arrived now.
func recentSince(clock *imageclock.Clock, popts *plan.Options, now time.Time) func(a *plan.Action) (plan.Reason, string) {
	return func(a *plan.Action) (plan.Reason, string) {
		for _, id := range append([]string{a.ImageID}, a.PruneParents...) {
			what := "it"
			if id != a.ImageID {
				what = "its untagged parent " + runtime.ShortID(id) + ", which its deletion would prune,"
			}
			rec, _ := clock.Record(id)
			if reason, detail, _ := plan.ClockGuard(rec.Arrived, rec.LastUsed, popts, now); reason != "" {
				return reason, what + " changed since the plan: " + detail
			}
		}
		return "", ""
	}
}

// save saves the clock, the error wrapping ErrState.
func save(c *imageclock.Clock) error {
	if err := c.Save(); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return nil
}

// Watermarks are a policy's diskUsage in the terms of internal/disk; the
// agent's disk trigger and the sweep read the marks the same way.
func Watermarks(w *v1alpha1.DiskUsage) disk.Watermarks {
	m := disk.Watermarks{High: float64(w.HighPercent), Low: float64(w.LowPercent)}
	if w.HighInodesPercent != nil && w.LowInodesPercent != nil {
		m.Inodes, m.HighInodes, m.LowInodes = true, float64(*w.HighInodesPercent), float64(*w.LowInodesPercent)
	}
	return m
}

// measureBefore measures the data filesystem before a sweep and says
// whether it is under pressure; under pressure every candidate may go,
// else only those unused for maxUnusedAge.
func measureBefore(w *v1alpha1.DiskUsage, popts *plan.Options, measure func() (disk.Usage, error)) (*DiskReport, error) {
	if measure == nil {
		return nil, ErrNoDataRoot
	}
	before, err := measure()
	if err != nil {
		return nil, fmt.Errorf("diskUsage: %w", err)
	}
	r := &DiskReport{Before: before, After: before, Pressure: Watermarks(w).Above(before)}
	if r.Pressure != "" {
		popts.UnusedFor = 0
	}
	return r, nil
}

// enoughWhenBelowLow says enough once space (and inodes, if watched) are
// under their low watermarks. A failed measurement is not enough.
func enoughWhenBelowLow(w *v1alpha1.DiskUsage, measure func() (disk.Usage, error)) func() (bool, string) {
	return func() (bool, string) {
		u, err := measure()
		if err != nil || !Watermarks(w).Below(u) {
			return false, ""
		}
		return true, fmt.Sprintf("the disk is under its low watermark: %.1f %% used (lowPercent %d)", u.UsedPercent, w.LowPercent)
	}
}

// measureAfter measures again and counts what the sweep freed as the
// filesystem shows it, not the sum of image sizes (layers are shared).
func measureAfter(w *v1alpha1.DiskUsage, r *DiskReport, res *apply.Result, measure func() (disk.Usage, error)) {
	after, err := measure()
	if err != nil {
		r.AfterErr = err
		return
	}
	r.After = after
	r.Unreached = r.Pressure != "" && !Watermarks(w).Below(after)
	res.BytesReclaimed = 0
	if r.Before.UsedBytes > after.UsedBytes {
		res.BytesReclaimed = int64(r.Before.UsedBytes - after.UsedBytes)
	}
}

// removals are the plan's actions as the clock remembers them, with the
// untagged parents the runtime may prune on the way.
func removals(p *plan.Plan) []imageclock.Removal {
	out := make([]imageclock.Removal, 0, len(p.Actions))
	for _, a := range p.Actions {
		for _, parent := range a.PruneParents {
			out = append(out, imageclock.Removal{ImageID: parent, Image: runtime.ShortID(parent)})
		}
		r := imageclock.Removal{ImageID: a.ImageID, Image: a.Image, Refs: a.Refs}
		if len(a.Containers) > 0 {
			r.Containers = make(map[string]string, len(a.Containers))
			for _, c := range a.Containers {
				r.Containers[c.ID] = c.Name
			}
		}
		out = append(out, r)
	}
	return out
}

// settle rebuilds the result of failed actions from a fresh listing, so that
// the report counts what the runtime shows (a call can fail on this side and
// succeed on the runtime's). It has its own short deadline: the sweep's may
// be spent. It reports whether it could list: when not, the clock's begun
// removals let the next sweep count what went.
func settle(ctx context.Context, rt Lister, out *Outcome) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	inv, err := Collect(ctx, rt)
	if err != nil {
		return false
	}
	out.Result.Recount(&out.Plan, &inv)
	return true
}

// Lister lists what a runtime holds.
type Lister interface {
	ListImages(ctx context.Context) ([]runtime.Image, error)
	ListContainers(ctx context.Context) ([]runtime.Container, error)
}

// Collect lists the runtime's images and containers: one call each, both
// under way at once (on a containerd store an image listing can take as
// long as a hundred container removals, docs/testing.md). The order of the two does not
// matter to safety: a container created after its listing began is missed
// whichever came first, and the executor's re-check before each removal is
// what stands between such a container and its image.
func Collect(ctx context.Context, rt Lister) (runtime.Inventory, error) {
	var inv runtime.Inventory
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if inv.Images, err = rt.ListImages(gctx); err != nil {
			return fmt.Errorf("list images: %w", err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if inv.Containers, err = rt.ListContainers(gctx); err != nil {
			return fmt.Errorf("list containers: %w", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return runtime.Inventory{}, err
	}
	return inv, nil
}

// inspect fills in what the lists do not tell: whether the runtime proves
// candidate images older than the clock thinks (their last tag time), and
// when candidate containers finished. What vanished since the list is
// dropped from the inventory. The first other error ends the inspection.
func inspect(ctx context.Context, rt runtime.Runtime, clock *imageclock.Clock, inv *runtime.Inventory, imageIDs, containerIDs []string, concurrency int) error {
	imageAt := indexOf(len(inv.Images), func(i int) string { return inv.Images[i].ID })
	containerAt := indexOf(len(inv.Containers), func(i int) string { return inv.Containers[i].ID })
	var mu sync.Mutex
	gone := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	// notFound records a vanished object; any other error ends the group.
	notFound := func(id string, err error) error {
		if !errors.Is(err, runtime.ErrNotFound) {
			return err
		}
		mu.Lock()
		gone[id] = true
		mu.Unlock()
		return nil
	}
	for _, id := range imageIDs {
		g.Go(func() error {
			cur, err := rt.InspectImage(gctx, id)
			if err != nil {
				return notFound(id, fmt.Errorf("inspect image %s: %w", runtime.ShortID(id), err))
			}
			img := &inv.Images[imageAt[id]]
			img.LastTagTime = cur.LastTagTime
			if img.Created.IsZero() {
				img.Created = cur.Created // the CRI lists no build date; its image status has it
			}
			clock.ProvenBy(img)
			return nil
		})
	}
	for _, id := range containerIDs {
		g.Go(func() error {
			state, finished, err := rt.ContainerFinishedAt(gctx, id)
			if err != nil {
				return notFound(id, fmt.Errorf("inspect container %s: %w", runtime.ShortID(id), err))
			}
			c := &inv.Containers[containerAt[id]]
			c.State, c.FinishedAt = state, finished
			clock.ImageUsed(c.ImageID, finished) // a run the events may have missed
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(gone) > 0 {
		inv.Images = slices.DeleteFunc(inv.Images, func(i runtime.Image) bool { return gone[i.ID] })
		inv.Containers = slices.DeleteFunc(inv.Containers, func(c runtime.Container) bool { return gone[c.ID] })
	}
	for i := range inv.Images {
		if r, ok := clock.Record(inv.Images[i].ID); ok {
			inv.Images[i].LastUsed = r.LastUsed
		}
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
