package controllers

import (
	"fmt"
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
		Conditions:         append([]metav1.Condition(nil), policy.Status.Conditions...),
	}
	setCond := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason,
			Message: msg, ObservedGeneration: policy.Generation})
	}

	selector, err := policy.Spec.NodeSelector.Selector()
	if err != nil {
		msg := "spec.nodeSelector: " + err.Error()
		setCond(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidNodeSelector, msg)
		setCond(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonInvalidNodeSelector, msg)
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
	var failing []string
	for _, r := range reports {
		if !selected[r.Spec.NodeName] {
			agg.stale = append(agg.stale, r)
			continue
		}
		s := &r.Status
		st.ImagesRemoved += s.Totals.ImagesRemoved
		st.ContainersRemoved += s.Totals.ContainersRemoved
		st.BytesReclaimed += s.Totals.BytesReclaimed
		if s.PolicyGeneration != policy.Generation {
			continue
		}
		st.NodesReported++
		switch s.Phase {
		case v1alpha1.PhaseFailed:
			st.NodesFailed++
			failing = append(failing, r.Spec.NodeName)
		case v1alpha1.PhaseBlocked:
			st.NodesBlocked++
		case v1alpha1.PhaseSucceeded, v1alpha1.PhaseDryRun, v1alpha1.PhaseSkipped:
			st.NodesSucceeded++
		}
	}
	sort.Strings(failing)
	if len(failing) > maxFailingNodes {
		failing = failing[:maxFailingNodes]
	}
	st.FailingNodes = failing

	switch {
	case st.NodesFailed > 0:
		msg := fmt.Sprintf("%d of %d nodes failed: %s", st.NodesFailed, st.NodesMatched, strings.Join(failing, ", "))
		setCond(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNodesFailed, msg)
		setCond(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonNodesFailed, msg)
	case st.NodesMatched == 0:
		setCond(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonNoNodesSelected, "no node matches spec.nodeSelector")
		setCond(v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonNoFailures, "no node failed")
	case st.NodesReported < st.NodesMatched:
		setCond(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonWaitingForNodes,
			fmt.Sprintf("%d of %d nodes applied generation %d", st.NodesReported, st.NodesMatched, policy.Generation))
		setCond(v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonNoFailures, "no node failed")
	default:
		reason, msg := v1alpha1.ReasonAllNodesApplied, fmt.Sprintf("%d nodes applied generation %d", st.NodesMatched, policy.Generation)
		if policy.Spec.Suspend {
			reason, msg = v1alpha1.ReasonSuspended, "the policy is suspended on every node"
		}
		setCond(v1alpha1.ConditionReady, metav1.ConditionTrue, reason, msg)
		setCond(v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonNoFailures, "no node failed")
	}
	agg.status = st
	return agg
}
