package aggregator

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/schedule"
)

const maxFailingNodes = 10

// aggregation is the policy status recomputed from the reports, and the
// reports that no longer belong (their node is gone or not selected).
type aggregation struct {
	status v1alpha1.ImageCleanupPolicyStatus
	stale  []v1alpha1.ImageCleanupReport
	// windowChanges is when the schedule's window next opens or closes:
	// the status says so then. Zero without a schedule.
	windowChanges time.Time
	// returnsAge is when the oldest report whose returns count grows too
	// old to count (zero: none counts).
	returnsAge time.Time
}

// recomputeAt is when the status changes by time alone (zero: never).
func (a *aggregation) recomputeAt() time.Time {
	switch {
	case a.windowChanges.IsZero():
		return a.returnsAge
	case a.returnsAge.IsZero():
		return a.windowChanges
	}
	return minTime(a.windowChanges, a.returnsAge)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// aggregate recomputes a policy's status from the nodes, the nodes where
// an agent runs (nil: not known, every node counts as having one) and the
// policy's reports; now stamps a condition that changes. It is a pure
// function: the same inputs give the same status, so the aggregator writes
// only when something changed.
func aggregate(policy *v1alpha1.ImageCleanupPolicy, nodes []corev1.Node, agents map[string]bool, reports []v1alpha1.ImageCleanupReport, now time.Time) aggregation {
	st := v1alpha1.ImageCleanupPolicyStatus{
		ObservedGeneration: policy.Generation,
		Conditions:         slices.Clone(policy.Status.Conditions),
		Warnings:           warnings(&policy.Spec),
	}
	var agg aggregation
	st.Window, agg.windowChanges = window(policy.Spec.Schedule, now)
	selector, err := policy.Spec.NodeSelector.Selector()
	if err != nil {
		setConditions(&st, policy.Generation, now, health{stalled: true, reason: v1alpha1.ReasonInvalidNodeSelector,
			message: "spec.nodeSelector: " + err.Error()})
		agg.status = st
		return agg
	}
	selected := map[string]bool{}
	for _, n := range nodes {
		if selector.Matches(labels.Set(n.Labels)) {
			selected[n.Name] = true
		}
	}
	st.NodesMatched = int32(len(selected))
	var invalid []*v1alpha1.ImageCleanupReport
	current := map[string]bool{} // nodes that applied this generation
	for i := range reports {
		r := &reports[i]
		if !selected[r.Spec.NodeName] {
			agg.stale = append(agg.stale, *r)
			continue
		}
		if r.Status.PolicyGeneration == policy.Generation {
			current[r.Spec.NodeName] = true
		}
		if tally(&st, policy.Generation, r) {
			invalid = append(invalid, r)
		}
		if ages, ok := countReturns(&st, r, now); ok && (agg.returnsAge.IsZero() || ages.Before(agg.returnsAge)) {
			agg.returnsAge = ages
		}
	}
	for name := range selected {
		if agents != nil && !agents[name] && !current[name] {
			st.NodesWithoutAgent++
			st.AgentlessNodes = append(st.AgentlessNodes, name)
		}
	}
	st.FailingNodes = firstSorted(st.FailingNodes)
	st.AgentlessNodes = firstSorted(st.AgentlessNodes)
	setConditions(&st, policy.Generation, now, judgePolicy(&st, policy, invalid))
	agg.status = st
	return agg
}

// window is the state of the policy's schedule at now, and when it next
// changes; none without a schedule, or with one the nodes refuse (their
// reports say why).
func window(spec *v1alpha1.Schedule, now time.Time) (*v1alpha1.WindowStatus, time.Time) {
	if spec == nil {
		return nil, time.Time{}
	}
	sched, err := schedule.Parse(spec)
	if err != nil {
		return nil, time.Time{}
	}
	at := sched.At(now)
	w := &v1alpha1.WindowStatus{State: v1alpha1.WindowClosed}
	if !at.NextOpen.IsZero() {
		w.NextOpen = &metav1.Time{Time: at.NextOpen.UTC()}
	}
	changes := at.NextOpen
	if at.Open {
		w.State, w.Closes = v1alpha1.WindowOpen, &metav1.Time{Time: at.Closes.UTC()}
		changes = at.Closes
	}
	return w, changes
}

// countReturns adds a report's returns to the status while its sweep is
// less than imageclock.ReturnWindow old (a node that has not swept since,
// say between weekly windows, no longer says anything of the last day),
// whatever generation removed them; it returns when they stop counting.
func countReturns(st *v1alpha1.ImageCleanupPolicyStatus, r *v1alpha1.ImageCleanupReport, now time.Time) (time.Time, bool) {
	s := &r.Status
	if s.Returned == nil || s.LastSweepTime == nil {
		return time.Time{}, false
	}
	ages := s.LastSweepTime.Add(imageclock.ReturnWindow)
	if !now.Before(ages) {
		return time.Time{}, false
	}
	st.ImagesReturned += int64(s.Returned.Images)
	st.BytesReturned += s.Returned.Bytes
	return ages, true
}

// firstSorted sorts node names and keeps the first few.
func firstSorted(names []string) []string {
	sort.Strings(names)
	return names[:min(len(names), maxFailingNodes)]
}

// warnings names settings of the spec that work against the node.
func warnings(spec *v1alpha1.ImageCleanupPolicySpec) []string {
	var out []string
	if w := spec.DiskUsage; w != nil && w.HighPercent >= v1alpha1.KubeletImageGCHighThresholdPercent {
		out = append(out, fmt.Sprintf("diskUsage.highPercent %d is at or above the kubelet's default image garbage collection threshold (%d %%): "+
			"the two race to remove images; choose a lower one (docs/policy.md, \"The kubelet's own image GC\")",
			w.HighPercent, v1alpha1.KubeletImageGCHighThresholdPercent))
	}
	return out
}

// expected counts the selected nodes that should report: those where an
// agent runs, or that reported this generation anyway.
func expected(st *v1alpha1.ImageCleanupPolicyStatus) int32 {
	return st.NodesMatched - st.NodesWithoutAgent
}

// tally adds one selected node's report to the status, and says whether
// the node found the current generation invalid.
func tally(st *v1alpha1.ImageCleanupPolicyStatus, generation int64, r *v1alpha1.ImageCleanupReport) (invalid bool) {
	s := &r.Status
	st.ImagesRemoved += s.Totals.ImagesRemoved
	st.ContainersRemoved += s.Totals.ContainersRemoved
	st.BytesReclaimed += s.Totals.BytesReclaimed
	if s.PolicyGeneration != generation {
		return false // not yet at this generation: not reported
	}
	st.NodesReported++
	switch s.Phase {
	case v1alpha1.PhaseFailed:
		st.NodesFailed++
		st.FailingNodes = append(st.FailingNodes, r.Spec.NodeName)
		return s.Reason == v1alpha1.ReportReasonInvalidPolicy
	case v1alpha1.PhaseBlocked:
		st.NodesBlocked++
	case v1alpha1.PhaseSucceeded, v1alpha1.PhaseDryRun, v1alpha1.PhaseSkipped:
		st.NodesSucceeded++
	}
	if s.Phase == v1alpha1.PhaseDryRun {
		st.ImagesWouldRemove += int64(s.ImagesRemoved)
		st.BytesWouldReclaim += s.BytesReclaimed
	}
	return false
}

// health is the policy's state, judged once; setConditions spells it as
// the four conditions.
type health struct {
	ready, stalled bool
	// reason and message: why Ready is what it is (and why it is Stalled).
	reason, message string
}

// judgePolicy judges the policy from the tallies. Stalled (no progress
// without a change: the policy is invalid on a node, or too many nodes fail)
// wins over waiting for nodes, so kstatus says Failed, not InProgress.
func judgePolicy(st *v1alpha1.ImageCleanupPolicyStatus, policy *v1alpha1.ImageCleanupPolicy, invalid []*v1alpha1.ImageCleanupReport) health {
	gen := policy.Generation
	failed := fmt.Sprintf("%d of %d nodes failed: %s", st.NodesFailed, st.NodesMatched, strings.Join(st.FailingNodes, ", "))
	switch {
	case len(invalid) > 0:
		return health{stalled: true, reason: v1alpha1.ReasonInvalidPolicy,
			message: fmt.Sprintf("%d nodes cannot apply generation %d (node %s: %s)", len(invalid), gen, invalid[0].Spec.NodeName, invalid[0].Status.Message)}
	case st.NodesFailed > 0 && int64(st.NodesFailed)*100 >= int64(v1alpha1.StalledFailingPercent)*int64(st.NodesMatched):
		return health{stalled: true, reason: v1alpha1.ReasonNodesFailed, message: failed}
	case st.NodesFailed > 0:
		return health{reason: v1alpha1.ReasonNodesFailed, message: failed}
	case st.NodesMatched == 0:
		return health{ready: true, reason: v1alpha1.ReasonNoNodesSelected, message: "no node matches spec.nodeSelector"}
	case st.NodesReported < expected(st):
		return health{reason: v1alpha1.ReasonWaitingForNodes, message: progress(st, gen)}
	case policy.Spec.Suspend:
		return health{ready: true, reason: v1alpha1.ReasonSuspended, message: "the policy is suspended on every node"}
	case st.NodesWithoutAgent > 0:
		return health{ready: true, reason: v1alpha1.ReasonAppliedWhereAgentsRun, message: progress(st, gen)}
	}
	return health{ready: true, reason: v1alpha1.ReasonAllNodesApplied, message: progress(st, gen)}
}

func progress(st *v1alpha1.ImageCleanupPolicyStatus, gen int64) string {
	msg := fmt.Sprintf("%d of %d nodes applied generation %d", st.NodesReported, st.NodesMatched, gen)
	if st.NodesWithoutAgent > 0 {
		msg += fmt.Sprintf("; %d selected nodes run no agent: %s", st.NodesWithoutAgent, strings.Join(st.AgentlessNodes, ", "))
	}
	return msg
}

// setConditions sets Ready, Degraded, Reconciling and Stalled at the
// policy's generation.
func setConditions(st *v1alpha1.ImageCleanupPolicyStatus, generation int64, now time.Time, h health) {
	set := func(kind string, on bool, reason, message string) {
		status := metav1.ConditionFalse
		if on {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: kind, Status: status,
			Reason: reason, Message: message, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now)})
	}
	set(v1alpha1.ConditionReady, h.ready, h.reason, h.message)
	if st.NodesFailed > 0 || h.stalled {
		set(v1alpha1.ConditionDegraded, true, h.reason, h.message)
	} else {
		set(v1alpha1.ConditionDegraded, false, v1alpha1.ReasonNoFailures, "no node failed")
	}
	switch {
	case h.stalled:
		set(v1alpha1.ConditionReconciling, false, h.reason, "stalled: "+h.message)
	case st.NodesReported < expected(st):
		set(v1alpha1.ConditionReconciling, true, v1alpha1.ReasonWaitingForNodes, progress(st, generation))
	default:
		set(v1alpha1.ConditionReconciling, false, v1alpha1.ReasonAllNodesReported, progress(st, generation))
	}
	if h.stalled {
		set(v1alpha1.ConditionStalled, true, h.reason, h.message)
	} else {
		set(v1alpha1.ConditionStalled, false, v1alpha1.ReasonProgressing, "the policy can make progress")
	}
}
