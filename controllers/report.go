package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

// sweepStatus is the report status after a sweep judged v, which started at
// start and took elapsed. Totals carry over from prev; a dry run adds
// nothing to them.
func sweepStatus(prev *v1alpha1.ImageCleanupReportStatus, generation int64, start time.Time, elapsed time.Duration,
	v verdict, out *cleanup.Outcome) v1alpha1.ImageCleanupReportStatus {
	r := &out.Result
	st := v1alpha1.ImageCleanupReportStatus{
		PolicyGeneration:  generation,
		Phase:             v.phase,
		Reason:            v.reason,
		Message:           v.message,
		LastSweepTime:     &metav1.Time{Time: start.Truncate(time.Second)},
		LastSweepDuration: elapsed.Round(time.Millisecond).String(),
		ImagesRemoved:     int32(len(r.RemovedImages)),
		ContainersRemoved: int32(len(r.RemovedContainers)),
		BytesReclaimed:    r.BytesReclaimed,
		BlockedCount:      int32(len(r.Blocked)),
		RemovedImages:     firstN(r.RemovedImages, v1alpha1.MaxReportedItems, removedImageLine),
		RemovedContainers: firstN(r.RemovedContainers, v1alpha1.MaxReportedItems, func(c *plan.ContainerRef) string {
			return engine.DisplayContainer(c.Name, c.ID)
		}),
		Blocked: firstN(r.Blocked, v1alpha1.MaxReportedItems, func(b *plan.Decision) v1alpha1.BlockedImage {
			return v1alpha1.BlockedImage{Image: b.Image, Reason: string(b.Reason), Message: b.Message}
		}),
		Errors: firstN(r.Failed, v1alpha1.MaxReportedErrors, func(f *apply.Failure) string { return f.Image + ": " + f.Error }),
		Totals: prev.Totals,
	}
	if d := out.Disk; d != nil {
		st.Disk = &v1alpha1.DiskStatus{
			UsedPercentBefore: int32(d.Before.UsedPercent), UsedPercentAfter: int32(d.After.UsedPercent),
			InodesUsedPercentBefore: int32(d.Before.InodesUsedPercent), InodesUsedPercentAfter: int32(d.After.InodesUsedPercent),
			Watermark: d.Pressure,
		}
	}
	st.Totals.Sweeps++
	if v.phase != v1alpha1.PhaseDryRun {
		st.Totals.ImagesRemoved += int64(st.ImagesRemoved)
		st.Totals.ContainersRemoved += int64(st.ContainersRemoved)
		st.Totals.BytesReclaimed += st.BytesReclaimed
	}
	return st
}

// firstN maps the first n items (a report's lists are bounded).
func firstN[T, U any](items []T, n int, f func(*T) U) []U {
	var out []U
	for i := range items[:min(n, len(items))] {
		out = append(out, f(&items[i]))
	}
	return out
}

// removedImageLine names a removal: the reference, and whether the image
// itself went.
func removedImageLine(ri *apply.RemovedImage) string {
	switch {
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
func idleStatus(prev *v1alpha1.ImageCleanupReportStatus, generation int64, phase v1alpha1.ReportPhase, message string) v1alpha1.ImageCleanupReportStatus {
	st := *prev.DeepCopy()
	st.PolicyGeneration = generation
	st.Phase = phase
	st.Message = message
	return st
}
