package controllers

import (
	"cmp"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/version"
)

// agentMetrics are one agent's series. The binary registers them once on
// controller-runtime's registry (served at /metrics); agents that run side
// by side in one process (tests, make scale) each keep their own, so that
// one agent forgetting a policy never deletes another's series. Labels are
// the policy and, for sweeps, the phase; every series also carries the node
// (a constant label the agent registers them with), so that alerts and
// dashboards name it whatever the scrape configuration keeps of the pod.
type agentMetrics struct {
	sweepsTotal, imagesRemovedTotal, containersRemovedTotal, bytesReclaimedTotal *prometheus.CounterVec
	sweepErrorsTotal, sweepTriggers, diskSweepsTotal                             *prometheus.CounterVec
	sweepDuration                                                                *prometheus.HistogramVec
	blockedImages, returnedImages, diskUsedRatio, lastSweepTimestamp             *prometheus.GaugeVec
	buildInfo, runtimeInfo                                                       *prometheus.GaugeVec
	highWatermark, lowWatermark, interval, lastSuccess                           *prometheus.GaugeVec

	mu sync.Mutex
	// succeeded is when each policy's last successful sweep started, as
	// lastSuccess says it: a report read after a restart moves it only
	// forward.
	succeeded map[string]time.Time
}

func newAgentMetrics() *agentMetrics {
	m := &agentMetrics{
		sweepsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_sweeps_total", Help: "Sweeps run, by policy and phase.",
		}, []string{"policy", "phase"}),
		imagesRemovedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_images_removed_total", Help: "Images (or tags) removed.",
		}, []string{"policy"}),
		containersRemovedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_containers_removed_total", Help: "Stopped containers removed.",
		}, []string{"policy"}),
		bytesReclaimedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_bytes_reclaimed_total", Help: "Estimated bytes freed by deleted images (an upper bound: shared layers count).",
		}, []string{"policy"}),
		sweepErrorsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_sweep_errors_total", Help: "Sweeps that could not run or had failed runtime calls, by kind.",
		}, []string{"policy", "kind"}),
		sweepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imagecleanup_sweep_duration_seconds", Help: "Duration of sweeps.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8), // 10ms to about 3 minutes
		}, []string{"policy"}),
		blockedImages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_blocked_images", Help: "Target images blocked after the last sweep.",
		}, []string{"policy"}),
		returnedImages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_images_returned", Help: "Images the policy removed from this node that came back within 24 hours, over the 24 hours before its last sweep.",
		}, []string{"policy"}),
		diskUsedRatio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_disk_used_ratio", Help: "Use (0 to 1) of the filesystem that holds the images, after the last sweep of a policy with diskUsage, by resource (space, inodes).",
		}, []string{"resource"}),
		highWatermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_disk_high_watermark_ratio", Help: "A policy's diskUsage high watermark (0 to 1), by resource (space, inodes): above it, a sweep frees.",
		}, []string{"policy", "resource"}),
		lowWatermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_disk_low_watermark_ratio", Help: "A policy's diskUsage low watermark (0 to 1), by resource: a sweep that frees stops under it.",
		}, []string{"policy", "resource"}),
		interval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_policy_interval_seconds", Help: "How often this node applies the policy again (its interval).",
		}, []string{"policy"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_last_successful_sweep_timestamp_seconds", Help: "When the last sweep of a policy that did not fail started (Unix time; Succeeded, Blocked or DryRun), " +
				"from the node's report after a restart: alert when it is several intervals old.",
		}, []string{"policy"}),
		sweepTriggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_sweep_triggers_total", Help: "Sweeps by what started them: generation, interval, retry, disk, window.",
		}, []string{"policy", "trigger"}),
		diskSweepsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_disk_sweeps_total", Help: "Sweeps of policies with diskUsage, by the high watermark usage was above (space, inodes, or none).",
		}, []string{"policy", "watermark"}),
		lastSweepTimestamp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_last_sweep_timestamp_seconds", Help: "When the last sweep of a policy started (Unix time), failed ones included.",
		}, []string{"policy"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_build_info", Help: "Always 1; the labels say which build runs.",
		}, []string{"version", "revision", "goversion"}),
		runtimeInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_runtime_info", Help: "Always 1; the labels say which container runtime the node runs, and where it keeps images.",
		}, []string{"runtime", "version", "image_store"}),
		succeeded: map[string]time.Time{},
	}
	v := version.Get()
	m.buildInfo.WithLabelValues(v.Version, v.Revision, v.GoVersion).Set(1)
	return m
}

// register puts the series on a registry, each labelled with the node; nil
// registers nowhere.
func (m *agentMetrics) register(r prometheus.Registerer, node string) error {
	if r == nil {
		return nil
	}
	r = prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, r)
	for _, c := range m.all() {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("agent metrics: %w", err)
		}
	}
	return nil
}

func (m *agentMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.sweepsTotal, m.imagesRemovedTotal, m.containersRemovedTotal, m.bytesReclaimedTotal,
		m.sweepErrorsTotal, m.sweepDuration, m.blockedImages, m.returnedImages, m.diskUsedRatio, m.diskSweepsTotal, m.sweepTriggers,
		m.lastSweepTimestamp, m.buildInfo, m.runtimeInfo, m.highWatermark, m.lowWatermark, m.interval, m.lastSuccess}
}

// perPolicy are the series labelled by policy, forgotten with it.
func (m *agentMetrics) perPolicy() []interface{ DeletePartialMatch(prometheus.Labels) int } {
	return []interface{ DeletePartialMatch(prometheus.Labels) int }{m.sweepsTotal, m.imagesRemovedTotal,
		m.containersRemovedTotal, m.bytesReclaimedTotal, m.sweepErrorsTotal, m.sweepDuration, m.blockedImages,
		m.returnedImages, m.sweepTriggers, m.diskSweepsTotal, m.lastSweepTimestamp, m.highWatermark, m.lowWatermark, m.interval, m.lastSuccess}
}

// observeRuntime says which runtime the node runs: one series, replaced when
// the runtime changes (an upgrade).
func (m *agentMetrics) observeRuntime(info runtime.Info) {
	m.runtimeInfo.Reset()
	m.runtimeInfo.WithLabelValues(info.Name, info.Version, info.ImageStore).Set(1)
}

// forgetPolicyMetrics drops a policy's series when the node stops applying
// it (deleted, or the node left its selector): a scrape then shows only
// policies that exist, and their number stays bounded.
func (m *agentMetrics) forgetPolicy(policy string) {
	for _, vec := range m.perPolicy() {
		vec.DeletePartialMatch(prometheus.Labels{"policy": policy})
	}
	m.mu.Lock()
	delete(m.succeeded, policy)
	m.mu.Unlock()
}

// observePolicy says what the node applies of a policy it read: its interval
// and watermarks, and the last successful sweep its report remembers (what
// a restarted agent knows before it sweeps again).
func (m *agentMetrics) observePolicy(p *v1alpha1.ImageCleanupPolicy, report *v1alpha1.ImageCleanupReportStatus) {
	// A suspended policy is not applied: no interval, so no alert waits
	// for its sweeps.
	if p.Spec.Suspend {
		m.interval.DeleteLabelValues(p.Name)
	} else {
		m.interval.WithLabelValues(p.Name).Set(p.Spec.IntervalDuration().Seconds())
	}
	m.highWatermark.DeletePartialMatch(prometheus.Labels{"policy": p.Name})
	m.lowWatermark.DeletePartialMatch(prometheus.Labels{"policy": p.Name})
	if w := p.Spec.DiskUsage; w != nil {
		m.highWatermark.WithLabelValues(p.Name, "space").Set(float64(w.HighPercent) / 100)
		m.lowWatermark.WithLabelValues(p.Name, "space").Set(float64(w.LowPercent) / 100)
		if w.HighInodesPercent != nil && w.LowInodesPercent != nil {
			m.highWatermark.WithLabelValues(p.Name, "inodes").Set(float64(*w.HighInodesPercent) / 100)
			m.lowWatermark.WithLabelValues(p.Name, "inodes").Set(float64(*w.LowInodesPercent) / 100)
		}
	}
	if report != nil && report.LastSweepTime != nil && succeeded(report.Phase) {
		m.noteSuccess(p.Name, report.LastSweepTime.Time)
	}
}

// succeeded: a sweep in this phase ran and did not fail.
func succeeded(phase v1alpha1.ReportPhase) bool {
	return phase == v1alpha1.PhaseSucceeded || phase == v1alpha1.PhaseBlocked || phase == v1alpha1.PhaseDryRun
}

func (m *agentMetrics) noteSuccess(policy string, start time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if start.After(m.succeeded[policy]) {
		m.succeeded[policy] = start
		m.lastSuccess.WithLabelValues(policy).Set(float64(start.Unix()))
	}
}

// observeSweep counts a sweep by its verdict.
func (m *agentMetrics) observeSweep(policy string, v verdict, st *v1alpha1.ImageCleanupReportStatus, out *cleanup.Outcome, elapsed time.Duration) {
	m.sweepsTotal.WithLabelValues(policy, string(st.Phase)).Inc()
	if st.LastSweepTime != nil {
		m.lastSweepTimestamp.WithLabelValues(policy).Set(float64(st.LastSweepTime.Unix()))
		if succeeded(st.Phase) {
			m.noteSuccess(policy, st.LastSweepTime.Time)
		}
	}
	if v.errorKind != "" {
		m.sweepErrorsTotal.WithLabelValues(policy, v.errorKind).Inc()
	}
	if !v.ran {
		return
	}
	m.sweepDuration.WithLabelValues(policy).Observe(elapsed.Seconds())
	if d := out.Disk; d != nil {
		m.diskUsedRatio.WithLabelValues("space").Set(d.After.UsedPercent / 100)
		m.diskUsedRatio.WithLabelValues("inodes").Set(d.After.InodesUsedPercent / 100)
		m.diskSweepsTotal.WithLabelValues(policy, cmp.Or(d.Pressure, "none")).Inc()
	}
	m.blockedImages.WithLabelValues(policy).Set(float64(len(out.Result.Blocked)))
	returned := 0
	if st.Returned != nil {
		returned = int(st.Returned.Images)
	}
	m.returnedImages.WithLabelValues(policy).Set(float64(returned))
	if st.Phase == v1alpha1.PhaseDryRun {
		return
	}
	m.imagesRemovedTotal.WithLabelValues(policy).Add(float64(st.ImagesRemoved))
	m.containersRemovedTotal.WithLabelValues(policy).Add(float64(st.ContainersRemoved))
	m.bytesReclaimedTotal.WithLabelValues(policy).Add(float64(st.BytesReclaimed))
}
