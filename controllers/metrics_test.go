package controllers

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
)

// A policy's series go with it, and only its own: another policy's stay,
// and so do another agent's in the same process (make scale, the e2e tests
// run many agents side by side).
func TestPolicySeriesGoWithThePolicy(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	st := &v1alpha1.ImageCleanupReportStatus{Phase: v1alpha1.PhaseSucceeded, ImagesRemoved: 2, LastSweepTime: &metav1.Time{Time: start}}
	swept := verdict{phase: v1alpha1.PhaseSucceeded, ran: true}
	m, other := newAgentMetrics(), newAgentMetrics()
	for _, agent := range []*agentMetrics{m, other} {
		agent.observeSweep("gone-soon", swept, st, &cleanup.Outcome{}, time.Second)
		agent.observeSweep("stays", swept, st, &cleanup.Outcome{}, time.Second)
	}
	if got := testutil.ToFloat64(m.lastSweepTimestamp.WithLabelValues("stays")); got != float64(start.Unix()) {
		t.Fatalf("last sweep timestamp %v, want %v", got, start.Unix())
	}
	m.forgetPolicy("gone-soon")
	for name, vec := range map[string]interface{ DeleteLabelValues(...string) bool }{
		"sweeps": m.sweepsTotal, "images": m.imagesRemovedTotal, "timestamp": m.lastSweepTimestamp, "blocked": m.blockedImages,
	} {
		labels := []string{"gone-soon"}
		if name == "sweeps" {
			labels = append(labels, string(v1alpha1.PhaseSucceeded))
		}
		if vec.DeleteLabelValues(labels...) {
			t.Errorf("%s still had a series of the forgotten policy", name)
		}
	}
	if testutil.ToFloat64(m.imagesRemovedTotal.WithLabelValues("stays")) != 2 {
		t.Error("another policy's series went too")
	}
	if testutil.ToFloat64(other.imagesRemovedTotal.WithLabelValues("gone-soon")) != 2 {
		t.Error("another agent's series of the policy went too")
	}
	if testutil.CollectAndCount(m.buildInfo) != 1 {
		t.Error("no build info")
	}
}

// A sweep that never reached the engine has no duration, no blocked count:
// only its error.
func TestASweepThatDidNotRunCountsOnlyItsError(t *testing.T) {
	m := newAgentMetrics()
	st := &v1alpha1.ImageCleanupReportStatus{Phase: v1alpha1.PhaseFailed}
	m.observeSweep("p", verdict{phase: v1alpha1.PhaseFailed, errorKind: "engine", retry: true}, st, &cleanup.Outcome{}, time.Second)
	if testutil.CollectAndCount(m.sweepDuration) != 0 || testutil.CollectAndCount(m.blockedImages) != 0 {
		t.Error("a sweep that did not run has a duration or a blocked count")
	}
	if testutil.ToFloat64(m.sweepErrorsTotal.WithLabelValues("p", "engine")) != 1 {
		t.Error("its error is not counted")
	}
}

// The binary registers the series once; the same names twice on one
// registry is an error, not a silent second set.
func TestAgentMetricsRegisterOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := newAgentMetrics().register(reg); err != nil {
		t.Fatal(err)
	}
	if err := newAgentMetrics().register(reg); err == nil {
		t.Fatal("a second agent's series on the same registry")
	}
	if err := newAgentMetrics().register(nil); err != nil {
		t.Fatalf("no registry: %v", err)
	}
}
