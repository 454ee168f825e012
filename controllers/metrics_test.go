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

// A sweep that never reached the runtime has no duration, no blocked count:
// only its error.
func TestASweepThatDidNotRunCountsOnlyItsError(t *testing.T) {
	m := newAgentMetrics()
	st := &v1alpha1.ImageCleanupReportStatus{Phase: v1alpha1.PhaseFailed}
	m.observeSweep("p", verdict{phase: v1alpha1.PhaseFailed, errorKind: "runtime", retry: true}, st, &cleanup.Outcome{}, time.Second)
	if testutil.CollectAndCount(m.sweepDuration) != 0 || testutil.CollectAndCount(m.blockedImages) != 0 {
		t.Error("a sweep that did not run has a duration or a blocked count")
	}
	if testutil.ToFloat64(m.sweepErrorsTotal.WithLabelValues("p", "runtime")) != 1 {
		t.Error("its error is not counted")
	}
}

// The binary registers the series once; the same names twice on one
// registry is an error, not a silent second set.
func TestAgentMetricsRegisterOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newAgentMetrics()
	if err := m.register(reg, "node-a"); err != nil {
		t.Fatal(err)
	}
	if err := newAgentMetrics().register(reg, "node-a"); err == nil {
		t.Fatal("a second agent's series of the same node on the same registry")
	}
	if err := newAgentMetrics().register(nil, "node-a"); err != nil {
		t.Fatalf("no registry: %v", err)
	}
	// Every series names the node.
	m.interval.WithLabelValues("p").Set(3600)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			node := ""
			for _, l := range metric.GetLabel() {
				if l.GetName() == "node" {
					node = l.GetValue()
				}
			}
			if node != "node-a" {
				t.Errorf("%s %v has no node label", f.GetName(), metric.GetLabel())
			}
		}
	}
}

// Issue 21, point 4: the last successful sweep is known after a restart,
// from the report, before the agent sweeps again; failed sweeps do not move
// it, an older report does not move it back.
func TestLastSuccessfulSweepSurvivesARestart(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	policy := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	report := func(phase v1alpha1.ReportPhase, at time.Time) *v1alpha1.ImageCleanupReportStatus {
		return &v1alpha1.ImageCleanupReportStatus{Phase: phase, LastSweepTime: &metav1.Time{Time: at}}
	}
	restarted := newAgentMetrics()
	restarted.observePolicy(policy, report(v1alpha1.PhaseFailed, t0))
	if testutil.CollectAndCount(restarted.lastSuccess) != 0 {
		t.Fatal("a failed sweep counts as a successful one")
	}
	restarted.observePolicy(policy, report(v1alpha1.PhaseBlocked, t0))
	last := func() float64 { return testutil.ToFloat64(restarted.lastSuccess.WithLabelValues("p")) }
	if last() != float64(t0.Unix()) {
		t.Fatalf("after a restart: %v, want the report's %v", last(), t0.Unix())
	}
	failed := verdict{phase: v1alpha1.PhaseFailed, errorKind: "runtime", retry: true}
	restarted.observeSweep("p", failed, report(v1alpha1.PhaseFailed, t0.Add(time.Hour)), &cleanup.Outcome{}, time.Second)
	if last() != float64(t0.Unix()) {
		t.Fatal("a failed sweep moved the last successful one")
	}
	swept := verdict{phase: v1alpha1.PhaseSucceeded, ran: true}
	restarted.observeSweep("p", swept, report(v1alpha1.PhaseSucceeded, t0.Add(2*time.Hour)), &cleanup.Outcome{}, time.Second)
	restarted.observePolicy(policy, report(v1alpha1.PhaseSucceeded, t0)) // a stale read
	if last() != float64(t0.Add(2*time.Hour).Unix()) {
		t.Fatalf("last successful sweep %v, want the later sweep's %v", last(), t0.Add(2*time.Hour).Unix())
	}
	restarted.forgetPolicy("p")
	if testutil.CollectAndCount(restarted.lastSuccess) != 0 || testutil.CollectAndCount(restarted.interval) != 0 {
		t.Fatal("a forgotten policy keeps its series")
	}
}

// The watermarks and the interval a node applies are series, as ratios,
// gone with the diskUsage that set them.
func TestWatermarksAndIntervalFollowThePolicy(t *testing.T) {
	m := newAgentMetrics()
	inodes, lowInodes := int32(90), int32(80)
	p := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.ImageCleanupPolicySpec{
		DiskUsage: &v1alpha1.DiskUsage{HighPercent: 75, LowPercent: 65, HighInodesPercent: &inodes, LowInodesPercent: &lowInodes}}}
	m.observePolicy(p, nil)
	for _, c := range []struct {
		vec      *prometheus.GaugeVec
		resource string
		want     float64
	}{{m.highWatermark, "space", 0.75}, {m.lowWatermark, "space", 0.65}, {m.highWatermark, "inodes", 0.9}, {m.lowWatermark, "inodes", 0.8}} {
		if got := testutil.ToFloat64(c.vec.WithLabelValues("p", c.resource)); got != c.want {
			t.Errorf("%s watermark %v, want %v", c.resource, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.interval.WithLabelValues("p")); got != (&v1alpha1.ImageCleanupPolicySpec{}).IntervalDuration().Seconds() {
		t.Errorf("interval %v, want the default's seconds", got)
	}
	p.Spec.Suspend = true
	m.observePolicy(p, nil)
	if testutil.CollectAndCount(m.interval) != 0 {
		t.Error("a suspended policy has an interval: alerts would wait for its sweeps")
	}
	p.Spec.DiskUsage = nil
	m.observePolicy(p, nil)
	if testutil.CollectAndCount(m.highWatermark)+testutil.CollectAndCount(m.lowWatermark) != 0 {
		t.Error("watermarks of a policy without diskUsage")
	}
}
