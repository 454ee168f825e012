package aggregator

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// A policy's conditions and node counts as series, replaced at each
// computation and gone with the policy.
func TestPolicyMetrics(t *testing.T) {
	m := newPolicyMetrics()
	if err := m.register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	st := &v1alpha1.ImageCleanupPolicyStatus{NodesMatched: 5, NodesWithoutAgent: 2, Conditions: []metav1.Condition{
		{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse}, {Type: "Stalled", Status: metav1.ConditionTrue}}}
	m.observe("p", st)
	if testutil.ToFloat64(m.condition.WithLabelValues("p", "Stalled")) != 1 || testutil.ToFloat64(m.condition.WithLabelValues("p", "Ready")) != 0 ||
		testutil.ToFloat64(m.nodes.WithLabelValues("p", "without_agent")) != 2 || testutil.ToFloat64(m.nodes.WithLabelValues("p", "matched")) != 5 {
		t.Fatal("the status is not what the series say")
	}
	st.Conditions = st.Conditions[:1]
	m.observe("p", st)
	if testutil.CollectAndCount(m.condition) != 1 {
		t.Error("a condition gone from the status stays a series")
	}
	m.forget("p")
	if testutil.CollectAndCount(m.condition)+testutil.CollectAndCount(m.nodes) != 0 {
		t.Error("a deleted policy keeps its series")
	}
	var none *policyMetrics
	none.observe("p", st) // no registry given: nothing, no panic
}
