package controllers

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/schedule"
)

// The node controller decides, then acts, as the runtime does: decide is a
// pure function of what the reconcile read, and Reconcile carries out the
// decision. A sweep's outcome is judged once, into a verdict that drives the
// report's phase, the metric, the log and the requeue.

// step is what a reconcile does for one policy on this node.
type step int

const (
	// stepNothing: nothing to do until an event brings the policy back.
	stepNothing step = iota
	// stepDeleteReport: the policy is gone or does not select this node.
	stepDeleteReport
	// stepWriteIdle: no sweep, but the report says why (phase, reason,
	// message); with a wait, come back then.
	stepWriteIdle
	// stepWait: the policy is not due; come back after the wait.
	stepWait
	// stepSweep: sweep now.
	stepSweep
)

// situation is what a reconcile read: plain data, so that decide is tested
// as a table without an API server.
type situation struct {
	// policy is nil when it is gone.
	policy *v1alpha1.ImageCleanupPolicy
	// node is nil when this node's Node object does not exist (yet).
	node *corev1.Node
	// report is this node's report of the policy, nil when there is none.
	report *v1alpha1.ImageCleanupReportStatus
	// failures counts the sweeps of this policy that failed in a row.
	failures int
	// disk is the data filesystem now, for a policy with diskUsage; nil
	// when not measured.
	disk *disk.Usage
	// generationSeen is when this agent first saw the policy's generation.
	generationSeen time.Time
	now            time.Time
	// pods are the images the pods bound to this node name; podsErr says
	// why they are not known (then no sweep), podsFresh that the agent has
	// just started (then it waits without reporting).
	pods      []plan.PodImage
	podsErr   error
	podsFresh bool
}

// policyName names the policy read, "" when it is gone.
func (s *situation) policyName() string {
	if s.policy == nil {
		return ""
	}
	return s.policy.Name
}

// decision is what to do, with what it needs.
type decision struct {
	step    step
	phase   v1alpha1.ReportPhase // stepWriteIdle
	reason  string               // stepWriteIdle
	message string               // stepWriteIdle
	wait    time.Duration        // stepWait, stepWriteIdle
	// trigger says why a sweep runs now: generation, interval, retry, disk,
	// window (a sweep the schedule held, or a closing window stopped).
	trigger string
}

// podsRetry is how soon the agent looks again at the pods of its node when
// it does not know them yet.
const podsRetry = 2 * time.Second

// diskRetry is the least time between a sweep that ran above a high
// watermark and the next one the disk starts: a full disk that sweeping
// cannot bring down (nothing left that the policy may remove) is not swept
// every tick.
const diskRetry = 5 * time.Minute

// timing is the agent's rhythm: the jitter of this node and the back-off
// after failed sweeps.
type timing struct {
	node                string
	retryBase, retryMax time.Duration
}

// maxJitter spreads a fleet's sweeps over this fraction of the interval, so
// that nodes do not all sweep (and write reports) in the same second.
const maxJitter = 0.1

// interval is the policy's interval plus this node's jitter: a fixed
// fraction (up to maxJitter) drawn from the node and policy names, so each
// node keeps its own steady rhythm.
func (t timing) interval(policy *v1alpha1.ImageCleanupPolicy) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(t.node + "/" + policy.Name))
	frac := float64(h.Sum32()%1000) / 1000 * maxJitter
	d := policy.Spec.IntervalDuration()
	return d + time.Duration(frac*float64(d))
}

// rolloutOffset is this node's place in the policy's rollout window: a
// fixed fraction of it, drawn from the node and policy names.
func (t timing) rolloutOffset(policy *v1alpha1.ImageCleanupPolicy) time.Duration {
	w := policy.Spec.RolloutWindowDuration()
	if w <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.node + "\x00" + policy.Name))
	return time.Duration(h.Sum64() % uint64(w))
}

// retryAfter is the wait after the n-th failed sweep in a row: doubling
// from retryBase, at most retryMax, and never longer than the interval.
func (t timing) retryAfter(policy *v1alpha1.ImageCleanupPolicy, failures int) time.Duration {
	d := t.retryBase
	for i := 1; i < failures && d < t.retryMax; i++ {
		d *= 2
	}
	return min(d, t.retryMax, t.interval(policy))
}

// next is when to come back after a sweep, by its verdict (0: only when an
// event brings the policy back): at the interval, or after the back-off of
// the failures in a row, capped at it.
func (t timing) next(v verdict, policy *v1alpha1.ImageCleanupPolicy, failures int) time.Duration {
	switch {
	case v.superseded, v.windowClosed:
		// The policy or this node changed under the sweep: the change's own
		// event brings the policy back; this is a safety net. A closed
		// window: decide says how long until the next.
		return time.Second
	case v.retry:
		return t.retryAfter(policy, failures)
	case v.errorKind != "":
		return 0 // an invalid policy: the report says why; a spec change brings it back
	}
	return t.interval(policy)
}

// decide says what to do with one policy on this node. The report is the
// memory of the last sweep, so a restarted agent does not sweep before its
// time; a failed sweep is retried with back-off, capped at the interval.
func (t timing) decide(s *situation) decision {
	p := s.policy
	switch {
	case p == nil || !p.DeletionTimestamp.IsZero():
		// Garbage collection removes reports with their policy; do it here
		// too, where no collector runs (envtest) or it lags.
		return decision{step: stepDeleteReport}
	case s.node == nil:
		return decision{step: stepNothing} // the Node watch brings us back
	}
	selector, err := p.Spec.NodeSelector.Selector()
	switch {
	case err != nil:
		// Permanent until the spec changes, which brings us back.
		return decision{step: stepWriteIdle, phase: v1alpha1.PhaseFailed, message: "spec.nodeSelector: " + err.Error()}
	case !selector.Matches(labels.Set(s.node.Labels)):
		return decision{step: stepDeleteReport}
	}
	sched, err := schedule.Parse(p.Spec.Schedule)
	switch {
	case err != nil:
		return decision{step: stepWriteIdle, phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonInvalidPolicy, message: err.Error()}
	case p.Spec.Suspend:
		return decision{step: stepWriteIdle, phase: v1alpha1.PhaseSkipped, message: "the policy is suspended"}
	case s.podsErr != nil && s.podsFresh:
		return decision{step: stepWait, wait: podsRetry} // the agent has just started: its cache syncs
	case s.podsErr != nil:
		// Fail closed: a pod about to start on this node may need any image.
		return decision{step: stepWriteIdle, phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonPodsUnknown,
			message: s.podsErr.Error(), wait: 5 * podsRetry}
	}
	return t.inWindow(s, sched, t.due(s))
}

// due says whether the policy is due for a sweep on this node, leaving
// its schedule aside.
func (t timing) due(s *situation) decision {
	p, r := s.policy, s.report
	if r != nil && r.PolicyGeneration == p.Generation && r.Reason == v1alpha1.ReportReasonOutsideWindow {
		// Held for a window, or stopped by its closing: the sweep is owed.
		return decision{step: stepSweep, trigger: "window"}
	}
	if r == nil || r.LastSweepTime == nil || r.PolicyGeneration != p.Generation {
		// A new generation: at once, or at this node's offset in the
		// rollout window; a disk above its watermark does not wait.
		if left := s.generationSeen.Add(t.rolloutOffset(p)).Sub(s.now); left > 0 && !aboveHigh(p.Spec.DiskUsage, s.disk) {
			return decision{step: stepWait, wait: left}
		}
		return decision{step: stepSweep, trigger: "generation"}
	}
	// A full disk does not wait for the interval; a failing runtime keeps its
	// back-off, full disk or not.
	if r.Phase != v1alpha1.PhaseFailed && aboveHigh(p.Spec.DiskUsage, s.disk) &&
		(!pressureSweep(r) || s.now.Sub(r.LastSweepTime.Time) >= diskRetry) {
		return decision{step: stepSweep, trigger: "disk"}
	}
	wait, trigger := t.interval(p), "interval"
	if r.Phase == v1alpha1.PhaseFailed {
		// A restarted agent does not know how many failed before: one.
		wait, trigger = t.retryAfter(p, max(s.failures, 1)), "retry"
	}
	if left := r.LastSweepTime.Add(wait).Sub(s.now); left > 0 {
		return decision{step: stepWait, wait: left}
	}
	return decision{step: stepSweep, trigger: trigger}
}

// inWindow holds a due sweep for the policy's schedule. A dry run removes
// nothing and runs at any time; a sweep due while the disk is above its
// high watermark (whatever made it due) runs at any time unless the
// schedule says InWindows. Outside the windows the
// node waits for the next one: a generation it has not swept is reported
// Skipped (OutsideWindow) once, so the policy reads as applied; a sweep
// due by interval or retry waits without a write. Inside a window, the
// nodes it holds start at their own offset (windowOffset), not all in its
// first second.
func (t timing) inWindow(s *situation, sched *schedule.Schedule, d decision) decision {
	p, r := s.policy, s.report
	pressure := aboveHigh(p.Spec.DiskUsage, s.disk)
	if d.step != stepSweep || p.Spec.Schedule == nil || p.Spec.DryRun || pressure && sched.DiskAnytime {
		return d
	}
	st := sched.At(s.now)
	if st.Open {
		if left := st.Opened.Add(t.windowOffset(p, st)).Sub(s.now); left > 0 && !pressure {
			return decision{step: stepWait, wait: left}
		}
		return d
	}
	wait := st.NextOpen.Sub(s.now)
	if st.NextOpen.IsZero() { // no window opens within the days looked at: look again later
		wait = 24 * time.Hour
	}
	if r != nil && r.PolicyGeneration == p.Generation && (r.Reason == v1alpha1.ReportReasonOutsideWindow || d.trigger != "generation") {
		return decision{step: stepWait, wait: wait}
	}
	return decision{step: stepWriteIdle, phase: v1alpha1.PhaseSkipped, reason: v1alpha1.ReportReasonOutsideWindow,
		message: outsideWindowMessage(sched, st), wait: wait}
}

// outsideWindowMessage says when the node sweeps next.
func outsideWindowMessage(sched *schedule.Schedule, st schedule.State) string {
	return "outside the policy's windows: the next opens at " + st.NextOpen.In(sched.Zone()).Format(time.RFC3339) +
		" (" + sched.Zone().String() + ")"
}

// maxWindowSpread bounds windowOffset.
const maxWindowSpread = 10 * time.Minute

// windowOffset is this node's place in the start of a window: a fixed
// fraction (from the node and policy names) of a tenth of the window's
// length, at most maxWindowSpread, so a fleet that a window held does not
// sweep, and write reports, in the same second.
func (t timing) windowOffset(policy *v1alpha1.ImageCleanupPolicy, st schedule.State) time.Duration {
	spread := min(time.Duration(float64(st.Closes.Sub(st.Opened))*maxJitter), maxWindowSpread)
	if spread <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.node + "\x00window\x00" + policy.Name))
	return time.Duration(h.Sum64() % uint64(spread))
}

// pressureSweep reports whether the last sweep already ran above a high
// watermark: then the next disk-started sweep waits diskRetry.
func pressureSweep(r *v1alpha1.ImageCleanupReportStatus) bool {
	return r.Disk != nil && r.Disk.Watermark != ""
}

// aboveHigh reports whether the filesystem is above a high watermark.
func aboveHigh(w *v1alpha1.DiskUsage, u *disk.Usage) bool {
	return w != nil && u != nil && cleanup.Watermarks(w).Above(*u) != ""
}

// verdict is what a sweep came to, judged once.
type verdict struct {
	phase   v1alpha1.ReportPhase
	message string
	// reason is the report's reason of a Failed phase.
	reason string
	// errorKind labels imagecleanup_sweep_errors_total; "" when none.
	errorKind string
	// ran: the sweep read the runtime and its outcome holds real figures
	// (removals, blocked images, disk), even when it then failed.
	ran bool
	// retry: the sweep failed in a way a later try may mend (runtime down,
	// stalled, a removal failed); an invalid policy waits for a new spec.
	retry bool
	// superseded: the policy or this node changed under the sweep, which
	// stopped before its next removal; the change brings the policy back.
	superseded bool
	// windowClosed: the schedule's window closed under the sweep, which
	// stopped before its next removal; the next window brings it back.
	windowClosed bool
}

// judge classifies a sweep that ran (out) or could not run (err).
func judge(out *cleanup.Outcome, err error, dryRun bool) verdict {
	v := judgeCause(out, err, dryRun)
	v.ran = err == nil || errors.Is(err, cleanup.ErrState)
	return v
}

func judgeCause(out *cleanup.Outcome, err error, dryRun bool) verdict {
	r := &out.Result
	switch {
	case errors.Is(err, cleanup.ErrInvalidPolicy):
		return verdict{phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonInvalidPolicy, message: err.Error(), errorKind: "invalid_policy"}
	case errors.Is(err, cleanup.ErrDisk):
		return verdict{phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonDiskUnmeasured, message: err.Error(),
			errorKind: "disk", retry: true}
	case errors.Is(err, runtime.ErrNoRuntime):
		return verdict{phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonNoRuntime, message: err.Error(),
			errorKind: "no_runtime", retry: true}
	case errors.Is(err, cleanup.ErrState):
		return verdict{phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonStateNotSaved, message: err.Error(),
			errorKind: "state", retry: true}
	case err != nil:
		return verdict{phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonRuntimeUnavailable, message: err.Error(),
			errorKind: "runtime", retry: true}
	case r.Refused && errors.As(r.Refusal, new(*windowClosedError)) && len(r.Failed) == 0:
		return verdict{phase: v1alpha1.PhaseSkipped, reason: v1alpha1.ReportReasonOutsideWindow,
			message: "the sweep stopped before its next removal: " + r.Stopped, windowClosed: true}
	case r.Refused && errors.As(r.Refusal, new(*windowClosedError)):
		return verdict{phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonRemovalFailed,
			message:   fmt.Sprintf("%d of the sweep's runtime calls failed, then the window closed: %s", len(r.Failed), r.Stopped),
			errorKind: "removal", retry: true}
	case r.Refused:
		return verdict{phase: v1alpha1.PhaseSkipped, reason: v1alpha1.ReportReasonSuperseded,
			message: "the sweep stopped before its next removal: " + r.Stopped, superseded: true}
	case r.Stopped != "":
		return verdict{phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonSweepStopped, message: "the sweep stopped early: " + r.Stopped,
			errorKind: "stopped", retry: true}
	case len(r.Failed) > 0:
		return verdict{phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonRemovalFailed,
			message: fmt.Sprintf("%d of the sweep's runtime calls failed", len(r.Failed)), errorKind: "removal", retry: true}
	case dryRun:
		return verdict{phase: v1alpha1.PhaseDryRun, message: "dry run: the lists say what a sweep would remove"}
	case out.Disk != nil && out.Disk.Unreached:
		return verdict{phase: v1alpha1.PhaseBlocked, reason: v1alpha1.ReportReasonWatermarkNotReached,
			message: fmt.Sprintf("the disk is still %.0f %% used, above its low watermark: nothing more that the policy may remove", out.Disk.After.UsedPercent)}
	case len(r.Blocked) > 0:
		return verdict{phase: v1alpha1.PhaseBlocked, message: fmt.Sprintf("%d target images stay blocked", len(r.Blocked))}
	}
	return verdict{phase: v1alpha1.PhaseSucceeded}
}
