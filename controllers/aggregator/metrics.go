package aggregator

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// policyMetrics are the aggregator's series: each policy's state as its
// status says it, for alerts (Stalled, selected nodes without an agent)
// without kube-state-metrics. The elected replica computes them; a
// standby's are empty. A nil *policyMetrics observes nothing.
type policyMetrics struct {
	condition, nodes, returned *prometheus.GaugeVec
}

func newPolicyMetrics() *policyMetrics {
	return &policyMetrics{
		condition: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_policy_condition", Help: "A policy's conditions (Ready, Degraded, Reconciling, Stalled): 1 when True, 0 otherwise.",
		}, []string{"policy", "type"}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_policy_nodes", Help: "A policy's nodes by state: matched, reported (the current generation), succeeded, blocked, failed, without_agent.",
		}, []string{"policy", "state"}),
		returned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_policy_images_returned",
			Help: "Images the policy removed that came back (pulled again) within 24 hours, summed over its nodes' reports of the last 24 hours (each as of its sweep): what it removes and the nodes need again.",
		}, []string{"policy"}),
	}
}

// register puts the series on a registry; nil registers nowhere.
func (m *policyMetrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.condition, m.nodes, m.returned} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("aggregator metrics: %w", err)
		}
	}
	return nil
}

// observe sets a policy's series from the status computed for it.
func (m *policyMetrics) observe(policy string, st *v1alpha1.ImageCleanupPolicyStatus) {
	if m == nil {
		return
	}
	m.condition.DeletePartialMatch(prometheus.Labels{"policy": policy})
	for _, c := range st.Conditions {
		v := 0.0
		if c.Status == "True" {
			v = 1
		}
		m.condition.WithLabelValues(policy, c.Type).Set(v)
	}
	for state, n := range map[string]int32{"matched": st.NodesMatched, "reported": st.NodesReported, "succeeded": st.NodesSucceeded,
		"blocked": st.NodesBlocked, "failed": st.NodesFailed, "without_agent": st.NodesWithoutAgent} {
		m.nodes.WithLabelValues(policy, state).Set(float64(n))
	}
	m.returned.WithLabelValues(policy).Set(float64(st.ImagesReturned))
}

// forget drops a deleted policy's series.
func (m *policyMetrics) forget(policy string) {
	if m == nil {
		return
	}
	m.condition.DeletePartialMatch(prometheus.Labels{"policy": policy})
	m.nodes.DeletePartialMatch(prometheus.Labels{"policy": policy})
	m.returned.DeletePartialMatch(prometheus.Labels{"policy": policy})
}
