package controllers

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// sweepStatus is the report status after a sweep judged v, which started at
// start and took elapsed. Totals carry over from prev; a dry run adds
// nothing to them. What earlier sweeps removed and never reported (the
// agent or the runtime died mid-sweep) is counted here, marked as such, so
// that the reports add up to what the runtime lost.
func sweepStatus(prev *v1alpha1.ImageCleanupReportStatus, generation int64, start time.Time, elapsed time.Duration,
	v verdict, out *cleanup.Outcome) v1alpha1.ImageCleanupReportStatus {
	r := &out.Result
	rec := &out.Recovered
	st := v1alpha1.ImageCleanupReportStatus{
		PolicyGeneration:  generation,
		Phase:             v.phase,
		Reason:            v.reason,
		Message:           v.message,
		LastSweepTime:     &metav1.Time{Time: start.Truncate(time.Second)},
		CountedThrough:    prev.CountedThrough,
		LastSweepDuration: elapsed.Round(time.Millisecond).String(),
		ImagesRemoved:     int32(len(r.RemovedImages) + len(rec.Images)),
		ContainersRemoved: int32(len(r.RemovedContainers) + len(rec.Containers)),
		BytesReclaimed:    r.BytesReclaimed,
		BlockedCount:      int32(len(r.Blocked)),
		RemovedImages: append(firstN(r.RemovedImages, v1alpha1.MaxReportedItems, removedImageLine),
			firstN(rec.Images, v1alpha1.MaxReportedItems-min(len(r.RemovedImages), v1alpha1.MaxReportedItems), recoveredLine)...),
		RemovedContainers: append(firstN(r.RemovedContainers, v1alpha1.MaxReportedItems, func(c *plan.ContainerRef) string {
			return runtime.DisplayContainer(c.Name, c.ID)
		}), firstN(rec.Containers, v1alpha1.MaxReportedItems-min(len(r.RemovedContainers), v1alpha1.MaxReportedItems), recoveredLine)...),
		Blocked: firstN(r.Blocked, v1alpha1.MaxReportedItems, func(b *plan.Decision) v1alpha1.BlockedImage {
			return v1alpha1.BlockedImage{Image: b.Image, Reason: string(b.Reason), Message: b.Message}
		}),
		Errors:    firstN(r.Failed, v1alpha1.MaxReportedErrors, func(f *apply.Failure) string { return f.Image + ": " + f.Error }),
		Decisions: firstN(r.Tallies(), v1alpha1.MaxDecisionCounts, decisionCount),
		Totals:    prev.Totals,
	}
	if d := out.Disk; d != nil {
		st.Disk = &v1alpha1.DiskStatus{
			UsedPercentBefore: int32(d.Before.UsedPercent), UsedPercentAfter: int32(d.After.UsedPercent),
			InodesUsedPercentBefore: int32(d.Before.InodesUsedPercent), InodesUsedPercentAfter: int32(d.After.InodesUsedPercent),
			Watermark: d.Pressure, Path: d.Before.Path,
		}
	}
	if d := out.Disk; d != nil && d.AfterErr != nil {
		note := fmt.Sprintf("the disk could not be measured after the sweep (%v): usedPercentAfter repeats the measure before it", d.AfterErr)
		st.Message = strings.TrimPrefix(st.Message+"; "+note, "; ")
	}
	for _, note := range out.Unhonoured {
		st.Message = strings.TrimPrefix(st.Message+"; "+note, "; ")
	}
	if out.Harvested {
		mark := v1alpha1.NewPreciseTime(out.Mark)
		st.CountedThrough = &mark
		st.Returned = returnedStatus(out.Returned)
	} else {
		st.Returned = prev.Returned // the runtime was not listed: nothing new is known
	}
	st.Totals.Sweeps++
	if !rec.Empty() {
		st.Totals.Sweeps++ // the interrupted one, never reported
		note := fmt.Sprintf("counted here: %d images and %d stopped containers that a sweep begun at %s removed before it was interrupted",
			len(rec.Images), len(rec.Containers), rec.Since.UTC().Format(time.RFC3339))
		st.Message = strings.TrimPrefix(st.Message+"; "+note, "; ")
	}
	if v.phase != v1alpha1.PhaseDryRun {
		st.Totals.ImagesRemoved += int64(st.ImagesRemoved)
		st.Totals.ContainersRemoved += int64(st.ContainersRemoved)
		st.Totals.BytesReclaimed += st.BytesReclaimed
	} else {
		st.Totals.ImagesRemoved += int64(len(rec.Images))
		st.Totals.ContainersRemoved += int64(len(rec.Containers))
	}
	return st
}

// returnedStatus counts the returns of the policy's removals; nil when
// none.
func returnedStatus(returns []imageclock.Return) *v1alpha1.ReturnedImages {
	if len(returns) == 0 {
		return nil
	}
	out := &v1alpha1.ReturnedImages{Images: int32(len(returns))}
	for i := len(returns) - 1; i >= 0; i-- {
		r := &returns[i]
		out.Bytes += r.Bytes
		if len(out.Recent) < v1alpha1.MaxReturnedItems {
			out.Recent = append(out.Recent, fmt.Sprintf("%s (back after %s)", r.Image, r.Returned.Sub(r.At).Round(time.Second)))
		}
	}
	return out
}

// firstN maps the first n items (a report's lists are bounded).
func firstN[T, U any](items []T, n int, f func(*T) U) []U {
	var out []U
	for i := range items[:min(n, len(items))] {
		out = append(out, f(&items[i]))
	}
	return out
}

// decisionCount is a tally as the report says it. The API keeps times to
// the second: eligibleFrom is rounded up, never before the image may go.
func decisionCount(t *apply.Tally) v1alpha1.DecisionCount {
	d := v1alpha1.DecisionCount{Reason: t.Reason, Images: int32(t.Images), Bytes: t.Bytes}
	if !t.EligibleFrom.IsZero() {
		d.EligibleFrom = &metav1.Time{Time: t.EligibleFrom.Add(time.Second - 1).Truncate(time.Second)}
	}
	return d
}

// recoveredLine names a removal of an interrupted sweep.
func recoveredLine(name *string) string { return *name + " (removed by an interrupted sweep)" }

// removedImageLine names a removal: the reference, and whether the image
// itself went.
func removedImageLine(ri *apply.RemovedImage) string {
	switch {
	case ri.PrunedWith != "":
		return ri.Image + " (untagged parent, pruned with " + ri.PrunedWith + ")"
	case ri.Deleted && ri.Forced:
		return ri.Image + " (deleted, forced)"
	case ri.Deleted:
		return ri.Image + " (deleted)"
	}
	return ri.Image + " (untagged)"
}

// idleStatus is the report status of a policy this node does not sweep now
// (suspended, or a node selector that cannot be read): the phase says why,
// the last sweep's figures stay.
func idleStatus(prev *v1alpha1.ImageCleanupReportStatus, generation int64, phase v1alpha1.ReportPhase, reason, message string) v1alpha1.ImageCleanupReportStatus {
	st := *prev.DeepCopy()
	st.PolicyGeneration = generation
	st.Phase = phase
	st.Reason = reason
	st.Message = message
	return st
}
