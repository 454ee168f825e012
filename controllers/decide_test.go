package controllers

import (
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

var (
	now   = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	agent = timing{node: "worker-1", retryBase: time.Second, retryMax: 5 * time.Minute}
)

func selecting(gen int64, group string, mutate ...func(*v1alpha1.ImageCleanupPolicy)) *v1alpha1.ImageCleanupPolicy {
	hour := v1alpha1.Duration("1h")
	p := &v1alpha1.ImageCleanupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen},
		Spec: v1alpha1.ImageCleanupPolicySpec{
			NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"group": v1alpha1.LabelValue(group)}},
			Interval:     &hour,
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func swept(gen int64, ago time.Duration, phase v1alpha1.ReportPhase) *v1alpha1.ImageCleanupReportStatus {
	return &v1alpha1.ImageCleanupReportStatus{PolicyGeneration: gen, Phase: phase, LastSweepTime: &metav1.Time{Time: now.Add(-ago)}}
}

func pressured(r *v1alpha1.ImageCleanupReportStatus) *v1alpha1.ImageCleanupReportStatus {
	r.Disk = &v1alpha1.DiskStatus{Watermark: "space"}
	return r
}

func TestDecide(t *testing.T) {
	worker := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Labels: map[string]string{"group": "ci"}}}
	interval := agent.interval(selecting(4, "ci"))
	deleting := metav1.NewTime(now)
	ninety, eighty := int32(90), int32(80)
	watched := selecting(4, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
		p.Spec.DiskUsage = &v1alpha1.DiskUsage{HighPercent: 85, LowPercent: 70, HighInodesPercent: &ninety, LowInodesPercent: &eighty}
	})
	full, half, inodesFull := disk.Usage{UsedPercent: 91}, disk.Usage{UsedPercent: 50}, disk.Usage{UsedPercent: 50, InodesUsedPercent: 95}
	tests := map[string]struct {
		s    situation
		want decision
	}{
		"policy gone":       {situation{node: worker}, decision{step: stepDeleteReport}},
		"policy deleting":   {situation{policy: selecting(4, "ci", func(p *v1alpha1.ImageCleanupPolicy) { p.DeletionTimestamp = &deleting }), node: worker}, decision{step: stepDeleteReport}},
		"no Node object":    {situation{policy: selecting(4, "ci")}, decision{step: stepNothing}},
		"not selected":      {situation{policy: selecting(4, "other"), node: worker}, decision{step: stepDeleteReport}},
		"bad node selector": {situation{policy: selecting(4, "ci", func(p *v1alpha1.ImageCleanupPolicy) { p.Spec.NodeSelector.MatchLabels["bad key!"] = "x" }), node: worker}, decision{step: stepWriteIdle, phase: v1alpha1.PhaseFailed}},
		"suspended":         {situation{policy: selecting(4, "ci", func(p *v1alpha1.ImageCleanupPolicy) { p.Spec.Suspend = true }), node: worker}, decision{step: stepWriteIdle, phase: v1alpha1.PhaseSkipped}},
		"never swept":       {situation{policy: selecting(4, "ci"), node: worker}, decision{step: stepSweep, trigger: "generation"}},
		"pods not known yet, the agent just started": {situation{policy: selecting(4, "ci"), node: worker, podsErr: errors.New("not synced"), podsFresh: true},
			decision{step: stepWait, wait: podsRetry}},
		"pods not known": {situation{policy: selecting(4, "ci"), node: worker, podsErr: errors.New("watch failed"), report: swept(4, 10*time.Minute, v1alpha1.PhaseSucceeded), disk: &full},
			decision{step: stepWriteIdle, phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonPodsUnknown, wait: 5 * podsRetry}},
		"new generation": {situation{policy: selecting(4, "ci"), node: worker, report: swept(3, time.Minute, v1alpha1.PhaseSucceeded)}, decision{step: stepSweep, trigger: "generation"}},
		"swept a minute ago": {situation{policy: selecting(4, "ci"), node: worker, report: swept(4, time.Minute, v1alpha1.PhaseSucceeded)},
			decision{step: stepWait, wait: interval - time.Minute}},
		"blocked a minute ago": {situation{policy: selecting(4, "ci"), node: worker, report: swept(4, time.Minute, v1alpha1.PhaseBlocked)},
			decision{step: stepWait, wait: interval - time.Minute}},
		"interval and jitter gone": {situation{policy: selecting(4, "ci"), node: worker, report: swept(4, interval, v1alpha1.PhaseSucceeded)}, decision{step: stepSweep, trigger: "interval"}},
		"failed, first retry due":  {situation{policy: selecting(4, "ci"), node: worker, report: swept(4, time.Second, v1alpha1.PhaseFailed), failures: 1}, decision{step: stepSweep, trigger: "retry"}},
		"failed 4 times, waits 8s": {situation{policy: selecting(4, "ci"), node: worker, report: swept(4, 2*time.Second, v1alpha1.PhaseFailed), failures: 4},
			decision{step: stepWait, wait: 6 * time.Second}},
		"failed, agent restarted": {situation{policy: selecting(4, "ci"), node: worker, report: swept(4, time.Minute, v1alpha1.PhaseFailed)}, decision{step: stepSweep, trigger: "retry"}},
		"disk above high: sweep now": {situation{policy: watched, node: worker, report: swept(4, 10*time.Minute, v1alpha1.PhaseSucceeded), disk: &full},
			decision{step: stepSweep, trigger: "disk"}},
		"disk above high, a pressure sweep a minute ago": {situation{policy: watched, node: worker, report: pressured(swept(4, time.Minute, v1alpha1.PhaseSucceeded)), disk: &full},
			decision{step: stepWait, wait: interval - time.Minute}},
		"disk above high, a calm sweep a minute ago": {situation{policy: watched, node: worker, report: swept(4, time.Minute, v1alpha1.PhaseSucceeded), disk: &full},
			decision{step: stepSweep, trigger: "disk"}},
		"disk under high: the interval": {situation{policy: watched, node: worker, report: swept(4, 10*time.Minute, v1alpha1.PhaseSucceeded), disk: &half},
			decision{step: stepWait, wait: interval - 10*time.Minute}},
		"disk above high, engine failing: the back-off holds": {situation{policy: watched, node: worker, report: swept(4, time.Second, v1alpha1.PhaseFailed), failures: 3, disk: &full},
			decision{step: stepWait, wait: 3 * time.Second}},
		"inodes above high": {situation{policy: watched, node: worker, report: swept(4, 10*time.Minute, v1alpha1.PhaseSucceeded), disk: &inodesFull},
			decision{step: stepSweep, trigger: "disk"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.s.now = now
			got := agent.decide(&tc.s)
			got.message = "" // every field but the words
			if got != tc.want {
				t.Fatalf("decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestIntervalJitter(t *testing.T) {
	p := selecting(1, "ci")
	interval := agent.interval(p)
	if interval < time.Hour || interval >= time.Hour+6*time.Minute {
		t.Fatalf("interval with jitter %s, want within [1h, 1h6m)", interval)
	}
	if other := (timing{node: "worker-2"}).interval(p); other == interval {
		t.Errorf("two nodes got the same jitter (%s); a fleet would sweep in step", other)
	}
}

// Finding: failed sweeps were retried every 5 minutes at most, whatever the
// interval. The back-off doubles, and never passes the interval.
func TestRetryIsCappedAtTheInterval(t *testing.T) {
	short := selecting(1, "ci", func(p *v1alpha1.ImageCleanupPolicy) { d := v1alpha1.Duration("2m"); p.Spec.Interval = &d })
	limit := agent.interval(short)
	prev := time.Duration(0)
	for n := 1; n <= 10; n++ {
		w := agent.retryAfter(short, n)
		if w > limit || (prev > 0 && w != min(2*prev, limit)) {
			t.Fatalf("retry %d waits %s after %s; want doubling, at most the interval %s", n, w, prev, limit)
		}
		prev = w
	}
	if prev != limit {
		t.Fatalf("the back-off settles at %s, want the interval %s", prev, limit)
	}
}

// One verdict per outcome: the phase, the metric label and the retry come
// from the same place.
func TestJudge(t *testing.T) {
	invalid := fmt.Errorf("%w: images: bad", cleanup.ErrInvalidPolicy)
	tests := map[string]struct {
		out    cleanup.Outcome
		err    error
		dryRun bool
		want   verdict
	}{
		"invalid policy": {err: invalid, want: verdict{phase: v1alpha1.PhaseFailed, reason: "InvalidPolicy", errorKind: "invalid_policy"}},
		"engine down": {err: fmt.Errorf("%w: list images: cannot connect", cleanup.ErrRuntime),
			want: verdict{phase: v1alpha1.PhaseFailed, reason: "RuntimeUnavailable", errorKind: "runtime", retry: true}},
		"no runtime": {err: fmt.Errorf("%w: %w: no socket at /host/run/docker.sock", cleanup.ErrRuntime, runtime.ErrNoRuntime),
			want: verdict{phase: v1alpha1.PhaseFailed, reason: "NoRuntime", errorKind: "no_runtime", retry: true}},
		"disk unmeasured": {err: fmt.Errorf("%w: statfs: no such file", cleanup.ErrDisk),
			want: verdict{phase: v1alpha1.PhaseFailed, reason: "DiskUnmeasured", errorKind: "disk", retry: true}},
		"clock not saved, after removals": {err: fmt.Errorf("%w: read-only", cleanup.ErrState),
			out:  cleanup.Outcome{Result: apply.Result{RemovedImages: make([]apply.RemovedImage, 1)}},
			want: verdict{phase: v1alpha1.PhaseFailed, reason: "StateNotSaved", errorKind: "state", retry: true, ran: true}},
		"superseded": {out: cleanup.Outcome{Result: apply.Result{Stopped: "the policy changed", Refused: true}},
			want: verdict{phase: v1alpha1.PhaseSkipped, reason: "Superseded", superseded: true, ran: true}},
		"watermark not reached": {out: cleanup.Outcome{Disk: &cleanup.DiskReport{Pressure: "space", Unreached: true}},
			want: verdict{phase: v1alpha1.PhaseBlocked, reason: "WatermarkNotReached", ran: true}},
		"stopped": {out: cleanup.Outcome{Result: apply.Result{Stopped: "the container runtime stalled"}},
			want: verdict{phase: v1alpha1.PhaseFailed, reason: "SweepStopped", errorKind: "stopped", retry: true, ran: true}},
		"a removal failed": {out: cleanup.Outcome{Result: apply.Result{Failed: []apply.Failure{{Image: "a"}}}},
			want: verdict{phase: v1alpha1.PhaseFailed, reason: "RemovalFailed", errorKind: "removal", retry: true, ran: true}},
		"dry run": {dryRun: true, want: verdict{phase: v1alpha1.PhaseDryRun, ran: true}},
		"blocked": {out: cleanup.Outcome{Result: apply.Result{Blocked: make([]plan.Decision, 2)}}, want: verdict{phase: v1alpha1.PhaseBlocked, ran: true}},
		"clean":   {want: verdict{phase: v1alpha1.PhaseSucceeded, ran: true}},
	}
	for name, tc := range tests {
		got := judge(&tc.out, tc.err, tc.dryRun)
		got.message = "" // every field but the words
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
	}
}

// The rollout window: after a spec change, 200 nodes start their first
// sweep spread over the window, each exactly once, with a fake clock; a
// disk above its watermark does not wait for its turn.
func TestRolloutWindow(t *testing.T) {
	policy := selecting(2, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
		w := v1alpha1.Duration("10m")
		p.Spec.Rollout = &v1alpha1.Rollout{Window: &w}
	})
	worker := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"group": "ci"}}}
	const nodes = 200
	sweeps := make([][]time.Time, nodes)
	reports := make([]*v1alpha1.ImageCleanupReportStatus, nodes)
	for i := range reports {
		reports[i] = swept(1, time.Hour, v1alpha1.PhaseSucceeded) // the old generation
	}
	for tick := now; tick.Before(now.Add(12 * time.Minute)); tick = tick.Add(5 * time.Second) {
		for i := range nodes {
			tm := timing{node: fmt.Sprintf("node-%03d", i), retryBase: time.Second, retryMax: 5 * time.Minute}
			s := situation{policy: policy, node: worker, report: reports[i], generationSeen: now, now: tick}
			if d := tm.decide(&s); d.step == stepSweep {
				sweeps[i] = append(sweeps[i], tick)
				reports[i] = &v1alpha1.ImageCleanupReportStatus{PolicyGeneration: 2, Phase: v1alpha1.PhaseSucceeded, LastSweepTime: &metav1.Time{Time: tick}}
			}
		}
	}
	perMinute := map[int]int{}
	for i, ss := range sweeps {
		if len(ss) != 1 {
			t.Fatalf("node %d swept %d times", i, len(ss))
		}
		if ss[0].After(now.Add(10*time.Minute + 5*time.Second)) {
			t.Fatalf("node %d swept at +%s, after the window", i, ss[0].Sub(now))
		}
		perMinute[int(ss[0].Sub(now)/time.Minute)]++
	}
	for minute, n := range perMinute {
		if n > 2*nodes/10 {
			t.Fatalf("%d of %d nodes swept in minute %d: not spread", n, nodes, minute)
		}
	}
	// A full disk sweeps at once, window or not.
	full := disk.Usage{UsedPercent: 99}
	watched := policy.DeepCopy()
	watched.Spec.DiskUsage = &v1alpha1.DiskUsage{HighPercent: 85, LowPercent: 70}
	s := situation{policy: watched, node: worker, report: swept(1, time.Hour, v1alpha1.PhaseSucceeded), generationSeen: now, now: now, disk: &full}
	if (timing{node: "node-late"}).rolloutOffset(watched) < time.Minute {
		t.Fatal("pick a node with a later turn for this check")
	}
	if d := (timing{node: "node-late"}).decide(&s); d.step != stepSweep {
		t.Fatalf("a full disk waited for the rollout window: %+v", d)
	}
}

// After a sweep, the verdict alone says when to come back.
func TestNextAfterASweep(t *testing.T) {
	p := selecting(4, "ci")
	for name, c := range map[string]struct {
		v        verdict
		failures int
		want     time.Duration
	}{
		"succeeded: the interval":               {verdict{phase: v1alpha1.PhaseSucceeded}, 0, agent.interval(p)},
		"blocked: the interval":                 {verdict{phase: v1alpha1.PhaseBlocked}, 0, agent.interval(p)},
		"superseded: soon, as a safety net":     {verdict{superseded: true}, 0, time.Second},
		"the third failure: the back-off":       {verdict{errorKind: "runtime", retry: true}, 3, 4 * time.Second},
		"an invalid policy: only a spec change": {verdict{errorKind: "invalid_policy"}, 0, 0},
	} {
		if got := agent.next(c.v, p, c.failures); got != c.want {
			t.Errorf("%s: %s, want %s", name, got, c.want)
		}
	}
}
