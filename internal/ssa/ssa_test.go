package ssa_test

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	ac "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/ssa"
)

// What is applied is what the API stores: zeros the API keeps are sent
// (so an apply clears them), fields it omits when empty are not, and
// nothing is lost on the way.
func TestAnApplyConfigurationSaysWhatTheObjectSays(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	for name, st := range map[string]v1alpha1.ImageCleanupPolicyStatus{
		"empty": {},
		"full": {ObservedGeneration: 3, NodesMatched: 2, FailingNodes: []string{"a"}, Warnings: []string{"w"},
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "R", LastTransitionTime: at}}},
	} {
		got, err := ssa.From[ac.ImageCleanupPolicyStatusApplyConfiguration](&st)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&st)
		if applied, _ := json.Marshal(got); string(applied) != string(want) {
			t.Errorf("%s: applied %s, the object says %s", name, applied, want)
		}
		if got.NodesReported == nil || *got.NodesReported != 0 {
			t.Errorf("%s: a zero the API keeps is not applied (nodesReported %v)", name, got.NodesReported)
		}
		if name == "empty" && got.FailingNodes != nil {
			t.Errorf("empty: a list the API omits when empty is applied: %v", got.FailingNodes)
		}
	}
}
