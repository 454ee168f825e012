package controllers

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
)

func TestPolicySeriesGoWithThePolicy(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	st := &v1alpha1.ImageCleanupReportStatus{Phase: v1alpha1.PhaseSucceeded, ImagesRemoved: 2, LastSweepTime: &metav1.Time{Time: start}}
	observeSweep("gone-soon", verdict{phase: v1alpha1.PhaseSucceeded, ran: true}, st, &cleanup.Outcome{}, time.Second)
	observeSweep("stays", verdict{phase: v1alpha1.PhaseSucceeded, ran: true}, st, &cleanup.Outcome{}, time.Second)
	if got := testutil.ToFloat64(lastSweepTimestamp.WithLabelValues("stays")); got != float64(start.Unix()) {
		t.Fatalf("last sweep timestamp %v, want %v", got, start.Unix())
	}
	forgetPolicyMetrics("gone-soon")
	for name, vec := range map[string]interface{ DeleteLabelValues(...string) bool }{
		"sweeps": sweepsTotal, "images": imagesRemovedTotal, "timestamp": lastSweepTimestamp, "blocked": blockedImages,
	} {
		labels := []string{"gone-soon"}
		if name == "sweeps" {
			labels = append(labels, string(v1alpha1.PhaseSucceeded))
		}
		if vec.DeleteLabelValues(labels...) {
			t.Errorf("%s still had a series of the forgotten policy", name)
		}
	}
	if testutil.ToFloat64(imagesRemovedTotal.WithLabelValues("stays")) != 2 {
		t.Error("another policy's series went too")
	}
	if testutil.CollectAndCount(buildInfo) != 1 {
		t.Error("no build info")
	}
}
