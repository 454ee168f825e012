package v1alpha1_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// A report an agent wrote when countedThrough kept seconds is read, as is
// one to the microsecond; a report is written to the microsecond. Found
// in review: with metav1.MicroTime, one old report failed every list of
// reports, and the agents and the aggregator with it.
func TestCountedThroughReadsEveryFormItWasWrittenIn(t *testing.T) {
	for written, want := range map[string]time.Time{
		"2026-12-07T20:04:38Z":        time.Date(2026, 12, 7, 20, 4, 38, 0, time.UTC),
		"2026-12-07T20:04:38.001500Z": time.Date(2026, 12, 7, 20, 4, 38, 1500000, time.UTC),
		"2026-12-07T21:04:38+01:00":   time.Date(2026, 12, 7, 20, 4, 38, 0, time.UTC),
	} {
		var st v1alpha1.ImageCleanupReportStatus
		if err := json.Unmarshal([]byte(`{"countedThrough":"`+written+`"}`), &st); err != nil {
			t.Fatalf("%s: %v", written, err)
		}
		if st.CountedThrough == nil || !st.CountedThrough.Equal(want) {
			t.Fatalf("%s read as %v, want %s", written, st.CountedThrough, want)
		}
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
		if err != nil {
			t.Fatal(err)
		}
		var back v1alpha1.ImageCleanupReportStatus
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &back); err != nil || !back.CountedThrough.Equal(want) {
			t.Fatalf("%s through unstructured: %v, %v", written, back.CountedThrough, err)
		}
	}
	mark := v1alpha1.NewPreciseTime(time.Date(2026, 12, 7, 20, 4, 38, 1500999, time.FixedZone("CET", 3600)))
	out, err := json.Marshal(v1alpha1.ImageCleanupReportStatus{CountedThrough: &mark})
	if err != nil || !strings.Contains(string(out), `"countedThrough":"2026-12-07T19:04:38.001500Z"`) {
		t.Fatalf("written %s, %v; want the microsecond, in UTC", out, err)
	}
	read := v1alpha1.NewPreciseTime(time.Date(2026, 12, 7, 19, 4, 38, 1500001, time.UTC).In(time.FixedZone("CET", 3600)))
	if !equality.Semantic.DeepEqual(v1alpha1.ImageCleanupReportStatus{CountedThrough: &mark}, v1alpha1.ImageCleanupReportStatus{CountedThrough: &read}) {
		t.Fatal("two reports of one instant differ to equality.Semantic (the agent would write again)")
	}
	if out, _ := json.Marshal(v1alpha1.ImageCleanupReportStatus{}); strings.Contains(string(out), "countedThrough") {
		t.Fatalf("an unset countedThrough is written: %s", out)
	}
}
