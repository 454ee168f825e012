package aggregator

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// The status apply configuration says exactly what the API type says, for
// every field, full or empty.
func TestStatusApplyConfigurationMatchesTheType(t *testing.T) {
	full := v1alpha1.ImageCleanupPolicyStatus{
		ObservedGeneration: 7,
		Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, ObservedGeneration: 7,
			LastTransitionTime: metav1.NewTime(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)), Reason: "R", Message: "m"}},
		NodesMatched: 1, NodesReported: 2, NodesSucceeded: 3, NodesBlocked: 4, NodesFailed: 5,
		ImagesRemoved: 6, ContainersRemoved: 7, BytesReclaimed: 8, FailingNodes: []string{"a", "b"},
		NodesWithoutAgent: 9, AgentlessNodes: []string{"c"}, Warnings: []string{"w"},
	}
	// A field added to the type and not to this test fails here: every
	// field of full must be set.
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("field %s of the test status is not set", v.Type().Field(i).Name)
		}
	}
	for _, st := range []v1alpha1.ImageCleanupPolicyStatus{full, {}} {
		want, _ := json.Marshal(st)
		got, _ := json.Marshal(policyStatusApplyConfiguration("p", &st).Status)
		var wm, gm any
		_ = json.Unmarshal(want, &wm)
		_ = json.Unmarshal(got, &gm)
		if !reflect.DeepEqual(wm, gm) {
			t.Fatalf("the apply configuration says\n%s\nthe API type\n%s", got, want)
		}
	}
}
