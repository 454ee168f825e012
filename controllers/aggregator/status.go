package aggregator

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

const maxFailingNodes = 10

// aggregation is the policy status recomputed from the reports, and the
// reports that no longer belong (their node is gone or not selected).
type aggregation struct {
	status v1alpha1.ImageCleanupPolicyStatus
	stale  []v1alpha1.ImageCleanupReport
}

// aggregate recomputes a policy's status from the nodes and its reports. It
// is a pure function: the same inputs give the same status, so the
// aggregator writes only when something changed.
func aggregate(policy *v1alpha1.ImageCleanupPolicy, nodes []corev1.Node, reports []v1alpha1.ImageCleanupReport) aggregation {
	st := v1alpha1.ImageCleanupPolicyStatus{
		ObservedGeneration: policy.Generation,
		Conditions:         slices.Clone(policy.Status.Conditions),
	}
	selector, err := policy.Spec.NodeSelector.Selector()
	if err != nil {
		msg := "spec.nodeSelector: " + err.Error()
		setConditions(&st, policy.Generation, false, v1alpha1.ReasonInvalidNodeSelector, msg, true, v1alpha1.ReasonInvalidNodeSelector, msg)
		return aggregation{status: st}
	}
	selected := map[string]bool{}
	for _, n := range nodes {
		if selector.Matches(labels.Set(n.Labels)) {
			selected[n.Name] = true
		}
	}
	st.NodesMatched = int32(len(selected))
	var agg aggregation
	for _, r := range reports {
		if !selected[r.Spec.NodeName] {
			agg.stale = append(agg.stale, r)
			continue
		}
		tally(&st, policy.Generation, &r)
	}
	sort.Strings(st.FailingNodes)
	if len(st.FailingNodes) > maxFailingNodes {
		st.FailingNodes = st.FailingNodes[:maxFailingNodes]
	}
	judgePolicy(&st, policy)
	agg.status = st
	return agg
}

// tally adds one selected node's report to the status.
func tally(st *v1alpha1.ImageCleanupPolicyStatus, generation int64, r *v1alpha1.ImageCleanupReport) {
	s := &r.Status
	st.ImagesRemoved += s.Totals.ImagesRemoved
	st.ContainersRemoved += s.Totals.ContainersRemoved
	st.BytesReclaimed += s.Totals.BytesReclaimed
	if s.PolicyGeneration != generation {
		return // not yet at this generation: not reported
	}
	st.NodesReported++
	switch s.Phase {
	case v1alpha1.PhaseFailed:
		st.NodesFailed++
		st.FailingNodes = append(st.FailingNodes, r.Spec.NodeName)
	case v1alpha1.PhaseBlocked:
		st.NodesBlocked++
	case v1alpha1.PhaseSucceeded, v1alpha1.PhaseDryRun, v1alpha1.PhaseSkipped:
		st.NodesSucceeded++
	}
}

// judgePolicy sets Ready and Degraded from the tallies.
func judgePolicy(st *v1alpha1.ImageCleanupPolicyStatus, policy *v1alpha1.ImageCleanupPolicy) {
	gen := policy.Generation
	healthy := func(ready bool, reason, msg string) {
		setConditions(st, gen, ready, reason, msg, false, v1alpha1.ReasonNoFailures, "no node failed")
	}
	switch {
	case st.NodesFailed > 0:
		msg := fmt.Sprintf("%d of %d nodes failed: %s", st.NodesFailed, st.NodesMatched, strings.Join(st.FailingNodes, ", "))
		setConditions(st, gen, false, v1alpha1.ReasonNodesFailed, msg, true, v1alpha1.ReasonNodesFailed, msg)
	case st.NodesMatched == 0:
		healthy(true, v1alpha1.ReasonNoNodesSelected, "no node matches spec.nodeSelector")
	case st.NodesReported < st.NodesMatched:
		healthy(false, v1alpha1.ReasonWaitingForNodes, fmt.Sprintf("%d of %d nodes applied generation %d", st.NodesReported, st.NodesMatched, gen))
	case policy.Spec.Suspend:
		healthy(true, v1alpha1.ReasonSuspended, "the policy is suspended on every node")
	default:
		healthy(true, v1alpha1.ReasonAllNodesApplied, fmt.Sprintf("%d nodes applied generation %d", st.NodesMatched, gen))
	}
}

// setConditions sets Ready and Degraded at the policy's generation.
func setConditions(st *v1alpha1.ImageCleanupPolicyStatus, generation int64,
	ready bool, readyReason, readyMsg string, degraded bool, degradedReason, degradedMsg string) {
	status := func(b bool) metav1.ConditionStatus {
		if b {
			return metav1.ConditionTrue
		}
		return metav1.ConditionFalse
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: status(ready),
		Reason: readyReason, Message: readyMsg, ObservedGeneration: generation})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: status(degraded),
		Reason: degradedReason, Message: degradedMsg, ObservedGeneration: generation})
}
