package aggregator

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	ac "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
)

// The aggregator writes the policy's whole status by server-side apply,
// with a typed apply configuration: every field set, zeros included, so that
// what it no longer says (failingNodes) goes. A round-trip test holds the
// mapping to the API type.

// policyStatusApplyConfiguration is the aggregator's whole view of a policy's status.
func policyStatusApplyConfiguration(name string, st *v1alpha1.ImageCleanupPolicyStatus) *ac.ImageCleanupPolicyApplyConfiguration {
	status := ac.ImageCleanupPolicyStatus().
		WithNodesMatched(st.NodesMatched).
		WithNodesReported(st.NodesReported).
		WithNodesSucceeded(st.NodesSucceeded).
		WithNodesBlocked(st.NodesBlocked).
		WithNodesFailed(st.NodesFailed).
		WithImagesRemoved(st.ImagesRemoved).
		WithContainersRemoved(st.ContainersRemoved).
		WithBytesReclaimed(st.BytesReclaimed).
		WithImagesWouldRemove(st.ImagesWouldRemove).
		WithBytesWouldReclaim(st.BytesWouldReclaim).
		WithFailingNodes(st.FailingNodes...).
		WithNodesWithoutAgent(st.NodesWithoutAgent).
		WithAgentlessNodes(st.AgentlessNodes...).
		WithWarnings(st.Warnings...)
	if st.ObservedGeneration != 0 {
		status.WithObservedGeneration(st.ObservedGeneration)
	}
	for i := range st.Conditions {
		status.WithConditions(conditionApplyConfiguration(&st.Conditions[i]))
	}
	return ac.ImageCleanupPolicy(name).WithStatus(status)
}

func conditionApplyConfiguration(c *metav1.Condition) *metav1ac.ConditionApplyConfiguration {
	return metav1ac.Condition().
		WithType(c.Type).WithStatus(c.Status).WithObservedGeneration(c.ObservedGeneration).
		WithLastTransitionTime(c.LastTransitionTime).WithReason(c.Reason).WithMessage(c.Message)
}
