package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// The report the agent applies is the report it compares with: its name,
// labels, owner and spec, and its whole status, zeros included; nothing of
// the server's own metadata.
func TestTheAppliedReportIsTheDesiredOne(t *testing.T) {
	policy := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "0123"}}
	at := metav1.NewTime(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	counted := v1alpha1.NewPreciseTime(at.Add(1500 * time.Microsecond))
	desired := desiredReport(policy, "node-1", &v1alpha1.ImageCleanupReportStatus{Phase: v1alpha1.PhaseSucceeded, LastSweepTime: &at, CountedThrough: &counted})
	apply, err := reportApplyConfiguration(desired)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(apply)
	want, _ := json.Marshal(desired)
	want = []byte(strings.Replace(string(want), `"creationTimestamp":null,`, "", 1))
	if string(got) != string(want) {
		t.Fatalf("applied %s\nwant    %s", got, want)
	}
	for _, field := range []string{`"name":"p.node-1"`, `"ownerReferences":[{`, `"imagesRemoved":0`, `"countedThrough":"2026-12-07T12:00:00.001500Z"`} {
		if !strings.Contains(string(got), field) {
			t.Errorf("the applied report lacks %s: %s", field, got)
		}
	}
	if strings.Contains(string(got), "creationTimestamp") || strings.Contains(string(got), "resourceVersion") {
		t.Errorf("the applied report carries the server's metadata: %s", got)
	}
}
