package controllers

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
)

// sweepStatus is the report status after a sweep that ran (out) or could
// not run (err). Totals carry over from prev; a dry run adds nothing to them.
func sweepStatus(prev *v1alpha1.ImageCleanupReportStatus, generation int64, start time.Time, dryRun bool,
	out *cleanup.Outcome, err error) v1alpha1.ImageCleanupReportStatus {
	st := v1alpha1.ImageCleanupReportStatus{
		PolicyGeneration: generation,
		LastSweepTime:    &metav1.Time{Time: start.Truncate(time.Second)},
		Totals:           prev.Totals,
	}
	st.Totals.Sweeps++
	if err != nil {
		st.Phase = v1alpha1.PhaseFailed
		st.Message = err.Error()
		st.LastSweepDuration = time.Since(start).Round(time.Millisecond).String()
		return st
	}
	r := &out.Result
	st.LastSweepDuration = r.Duration.Round(time.Millisecond).String()
	st.ImagesRemoved = int32(len(r.RemovedImages))
	st.ContainersRemoved = int32(len(r.RemovedContainers))
	st.BytesReclaimed = r.BytesReclaimed
	for i, ri := range r.RemovedImages {
		if i == v1alpha1.MaxReportedItems {
			break
		}
		st.RemovedImages = append(st.RemovedImages, removedImageLine(&ri))
	}
	for i, c := range r.RemovedContainers {
		if i == v1alpha1.MaxReportedItems {
			break
		}
		st.RemovedContainers = append(st.RemovedContainers, engine.DisplayContainer(c.Name, c.ID))
	}
	st.BlockedCount = int32(len(r.Blocked))
	for i, b := range r.Blocked {
		if i == v1alpha1.MaxReportedItems {
			break
		}
		st.Blocked = append(st.Blocked, v1alpha1.BlockedImage{Image: b.Image, Reason: string(b.Reason), Message: b.Message})
	}
	for i, f := range r.Failed {
		if i == v1alpha1.MaxReportedErrors {
			break
		}
		st.Errors = append(st.Errors, fmt.Sprintf("%s: %s", f.Image, f.Error))
	}

	switch {
	case r.Stopped != "":
		st.Phase = v1alpha1.PhaseFailed
		st.Message = "the sweep stopped early: " + r.Stopped
	case len(r.Failed) > 0:
		st.Phase = v1alpha1.PhaseFailed
		st.Message = fmt.Sprintf("%d of the sweep's engine calls failed", len(r.Failed))
	case dryRun:
		st.Phase = v1alpha1.PhaseDryRun
		st.Message = "dry run: the lists say what a sweep would remove"
	case len(r.Blocked) > 0:
		st.Phase = v1alpha1.PhaseBlocked
		st.Message = fmt.Sprintf("%d target images stay blocked", len(r.Blocked))
	default:
		st.Phase = v1alpha1.PhaseSucceeded
	}
	if !dryRun {
		st.Totals.ImagesRemoved += int64(st.ImagesRemoved)
		st.Totals.ContainersRemoved += int64(st.ContainersRemoved)
		st.Totals.BytesReclaimed += st.BytesReclaimed
	}
	return st
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
