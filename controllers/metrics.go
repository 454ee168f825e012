package controllers

import (
	"cmp"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/version"
)

// agentMetrics are one agent's series. The binary registers them once on
// controller-runtime's registry (served at /metrics); agents that run side
// by side in one process (tests, make scale) each keep their own, so that
// one agent forgetting a policy never deletes another's series. Labels are
// the policy and, for sweeps, the phase; the node is the scrape target's own.
type agentMetrics struct {
	sweepsTotal, imagesRemovedTotal, containersRemovedTotal, bytesReclaimedTotal *prometheus.CounterVec
	sweepErrorsTotal, sweepTriggers, diskSweepsTotal                             *prometheus.CounterVec
	sweepDuration                                                                *prometheus.HistogramVec
	blockedImages, diskUsedPercent, lastSweepTimestamp, buildInfo, engineInfo    *prometheus.GaugeVec
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
			Name: "imagecleanup_sweep_errors_total", Help: "Sweeps that could not run or had failed engine calls, by kind.",
		}, []string{"policy", "kind"}),
		sweepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imagecleanup_sweep_duration_seconds", Help: "Duration of sweeps.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8), // 10ms to about 3 minutes
		}, []string{"policy"}),
		blockedImages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_blocked_images", Help: "Target images blocked after the last sweep.",
		}, []string{"policy"}),
		diskUsedPercent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_disk_used_percent", Help: "Use of the engine's data filesystem after the last sweep of a policy with diskUsage, by resource (space, inodes).",
		}, []string{"resource"}),
		sweepTriggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_sweep_triggers_total", Help: "Sweeps by what started them: generation, interval, retry, disk.",
		}, []string{"policy", "trigger"}),
		diskSweepsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagecleanup_disk_sweeps_total", Help: "Sweeps of policies with diskUsage, by the high watermark usage was above (space, inodes, or none).",
		}, []string{"policy", "watermark"}),
		lastSweepTimestamp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_last_sweep_timestamp_seconds", Help: "When the last sweep of a policy started (Unix time): alert when it is too old.",
		}, []string{"policy"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_build_info", Help: "Always 1; the labels say which build runs.",
		}, []string{"version", "revision", "goversion"}),
		engineInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imagecleanup_engine_info", Help: "Always 1; the labels say which container engine the node runs, and where it keeps images.",
		}, []string{"engine", "version", "image_store"}),
	}
	v := version.Get()
	m.buildInfo.WithLabelValues(v.Version, v.Revision, v.GoVersion).Set(1)
	return m
}

// register puts the series on a registry; nil registers nowhere.
func (m *agentMetrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range m.all() {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("agent metrics: %w", err)
		}
	}
	return nil
}

func (m *agentMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.sweepsTotal, m.imagesRemovedTotal, m.containersRemovedTotal, m.bytesReclaimedTotal,
		m.sweepErrorsTotal, m.sweepDuration, m.blockedImages, m.diskUsedPercent, m.diskSweepsTotal, m.sweepTriggers,
		m.lastSweepTimestamp, m.buildInfo, m.engineInfo}
}

// perPolicy are the series labelled by policy, forgotten with it.
func (m *agentMetrics) perPolicy() []interface{ DeletePartialMatch(prometheus.Labels) int } {
	return []interface{ DeletePartialMatch(prometheus.Labels) int }{m.sweepsTotal, m.imagesRemovedTotal,
		m.containersRemovedTotal, m.bytesReclaimedTotal, m.sweepErrorsTotal, m.sweepDuration, m.blockedImages,
		m.sweepTriggers, m.diskSweepsTotal, m.lastSweepTimestamp}
}

// observeEngine says which engine the node runs: one series, replaced when
// the engine changes (an upgrade).
func (m *agentMetrics) observeEngine(info engine.Info) {
	m.engineInfo.Reset()
	m.engineInfo.WithLabelValues(info.Name, info.Version, info.ImageStore).Set(1)
}

// forgetPolicyMetrics drops a policy's series when the node stops applying
// it (deleted, or the node left its selector): a scrape then shows only
// policies that exist, and their number stays bounded.
func (m *agentMetrics) forgetPolicy(policy string) {
	for _, vec := range m.perPolicy() {
		vec.DeletePartialMatch(prometheus.Labels{"policy": policy})
	}
}

// observeSweep counts a sweep by its verdict.
func (m *agentMetrics) observeSweep(policy string, v verdict, st *v1alpha1.ImageCleanupReportStatus, out *cleanup.Outcome, elapsed time.Duration) {
	m.sweepsTotal.WithLabelValues(policy, string(st.Phase)).Inc()
	if st.LastSweepTime != nil {
		m.lastSweepTimestamp.WithLabelValues(policy).Set(float64(st.LastSweepTime.Unix()))
	}
	if v.errorKind != "" {
		m.sweepErrorsTotal.WithLabelValues(policy, v.errorKind).Inc()
	}
	if !v.ran {
		return
	}
	m.sweepDuration.WithLabelValues(policy).Observe(elapsed.Seconds())
	if d := out.Disk; d != nil {
		m.diskUsedPercent.WithLabelValues("space").Set(d.After.UsedPercent)
		m.diskUsedPercent.WithLabelValues("inodes").Set(d.After.InodesUsedPercent)
		m.diskSweepsTotal.WithLabelValues(policy, cmp.Or(d.Pressure, "none")).Inc()
	}
	m.blockedImages.WithLabelValues(policy).Set(float64(len(out.Result.Blocked)))
	if st.Phase == v1alpha1.PhaseDryRun {
		return
	}
	m.imagesRemovedTotal.WithLabelValues(policy).Add(float64(st.ImagesRemoved))
	m.containersRemovedTotal.WithLabelValues(policy).Add(float64(st.ContainersRemoved))
	m.bytesReclaimedTotal.WithLabelValues(policy).Add(float64(st.BytesReclaimed))
}
