package controllers

import (
	"errors"
	"fmt"
	"strings"
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
	"github.com/imagecleanup/image-cleanup-operator/internal/schedule"
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
	nightly := selecting(4, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
		p.Spec.Schedule = &v1alpha1.Schedule{Windows: []v1alpha1.Window{{Start: "22:00", End: "04:00"}}}
	})
	midday := withSpec(nightly, func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Schedule.Windows[0] = v1alpha1.Window{Start: "11:00", End: "13:00"}
	})
	noon := withSpec(nightly, func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Schedule.Windows[0] = v1alpha1.Window{Start: "12:00", End: "16:00"}
	})
	watchedNightly := withSpec(nightly, func(s *v1alpha1.ImageCleanupPolicySpec) { s.DiskUsage = watched.Spec.DiskUsage })
	watchedNightlyOnly := withSpec(watchedNightly, func(s *v1alpha1.ImageCleanupPolicySpec) { s.Schedule.DiskPressure = v1alpha1.DiskPressureInWindows })
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

		// now is 12:00 UTC; nightly opens at 22:00.
		"outside its windows, never swept": {situation{policy: nightly, node: worker},
			decision{step: stepWriteIdle, phase: v1alpha1.PhaseSkipped, reason: v1alpha1.ReportReasonOutsideWindow, wait: 10 * time.Hour}},
		"outside its windows, a new generation": {situation{policy: nightly, node: worker, report: swept(3, time.Minute, v1alpha1.PhaseSucceeded)},
			decision{step: stepWriteIdle, phase: v1alpha1.PhaseSkipped, reason: v1alpha1.ReportReasonOutsideWindow, wait: 10 * time.Hour}},
		"outside its windows, already reported so": {situation{policy: nightly, node: worker, report: heldForWindow(4)},
			decision{step: stepWait, wait: 10 * time.Hour}},
		"outside its windows, the interval gone: waits without a write": {situation{policy: nightly, node: worker, report: swept(4, 2*interval, v1alpha1.PhaseSucceeded)},
			decision{step: stepWait, wait: 10 * time.Hour}},
		"outside its windows, failed: the retry waits too": {situation{policy: nightly, node: worker, report: swept(4, time.Hour, v1alpha1.PhaseFailed)},
			decision{step: stepWait, wait: 10 * time.Hour}},
		"outside its windows, the interval not gone": {situation{policy: nightly, node: worker, report: swept(4, time.Minute, v1alpha1.PhaseSucceeded)},
			decision{step: stepWait, wait: interval - time.Minute}},
		"outside its windows, a full disk sweeps (Anytime)": {situation{policy: watchedNightly, node: worker, report: swept(4, 10*time.Minute, v1alpha1.PhaseSucceeded), disk: &full},
			decision{step: stepSweep, trigger: "disk"}},
		"outside its windows, a full disk waits (InWindows)": {situation{policy: watchedNightlyOnly, node: worker, report: swept(4, 10*time.Minute, v1alpha1.PhaseSucceeded), disk: &full},
			decision{step: stepWait, wait: 10 * time.Hour}},
		"outside its windows, a held generation and a full disk (Anytime)": {situation{policy: watchedNightly, node: worker, report: heldForWindow(4), disk: &full},
			decision{step: stepSweep, trigger: "window"}},
		"outside its windows, a new generation and a full disk (Anytime)": {situation{policy: watchedNightly, node: worker, report: swept(3, time.Minute, v1alpha1.PhaseSucceeded), disk: &full},
			decision{step: stepSweep, trigger: "generation"}},
		"outside its windows, a new generation and a full disk (InWindows)": {situation{policy: watchedNightlyOnly, node: worker, report: swept(3, time.Minute, v1alpha1.PhaseSucceeded), disk: &full},
			decision{step: stepWriteIdle, phase: v1alpha1.PhaseSkipped, reason: v1alpha1.ReportReasonOutsideWindow, wait: 10 * time.Hour}},
		"outside its windows, a dry run runs": {situation{policy: withSpec(nightly, func(s *v1alpha1.ImageCleanupPolicySpec) { s.DryRun = true }), node: worker},
			decision{step: stepSweep, trigger: "generation"}},
		"in its window, the sweep it held": {situation{policy: midday, node: worker, report: heldForWindow(4)},
			decision{step: stepSweep, trigger: "window"}},
		"in its window, a sweep a closing window stopped": {situation{policy: midday, node: worker, report: stoppedByWindow(4, 20*time.Hour)},
			decision{step: stepSweep, trigger: "window"}},
		"in its window, the interval": {situation{policy: midday, node: worker, report: swept(4, interval, v1alpha1.PhaseSucceeded)},
			decision{step: stepSweep, trigger: "interval"}},
		"in its window, the interval not gone": {situation{policy: midday, node: worker, report: swept(4, time.Minute, v1alpha1.PhaseSucceeded)},
			decision{step: stepWait, wait: interval - time.Minute}},
		"a window opening now: this node's turn has not come": {situation{policy: noon, node: worker, report: heldForWindow(4)},
			decision{step: stepWait, wait: agent.windowOffset(noon, schedule.State{Opened: now, Closes: now.Add(4 * time.Hour)})}},
		"a time zone this build does not know": {situation{policy: withSpec(nightly, func(s *v1alpha1.ImageCleanupPolicySpec) { s.Schedule.TimeZone = "Mars/Olympus_Mons" }), node: worker},
			decision{step: stepWriteIdle, phase: v1alpha1.PhaseFailed, reason: v1alpha1.ReportReasonInvalidPolicy}},
	}
	if agent.windowOffset(noon, schedule.State{Opened: now, Closes: now.Add(4 * time.Hour)}) == 0 {
		t.Fatal("pick a node whose turn in a window is not its first second")
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

func withSpec(p *v1alpha1.ImageCleanupPolicy, change func(*v1alpha1.ImageCleanupPolicySpec)) *v1alpha1.ImageCleanupPolicy {
	p = p.DeepCopy()
	change(&p.Spec)
	return p
}

// heldForWindow is the report of a generation that a closed window held.
func heldForWindow(gen int64) *v1alpha1.ImageCleanupReportStatus {
	return &v1alpha1.ImageCleanupReportStatus{PolicyGeneration: gen, Phase: v1alpha1.PhaseSkipped, Reason: v1alpha1.ReportReasonOutsideWindow}
}

// stoppedByWindow is the report of a sweep that a closing window stopped.
func stoppedByWindow(gen int64, ago time.Duration) *v1alpha1.ImageCleanupReportStatus {
	r := swept(gen, ago, v1alpha1.PhaseSkipped)
	r.Reason = v1alpha1.ReportReasonOutsideWindow
	return r
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
		"a closing window stopped it": {out: cleanup.Outcome{Result: apply.Result{Stopped: "the policy's window closed", Refused: true, Refusal: &windowClosedError{}}},
			want: verdict{phase: v1alpha1.PhaseSkipped, reason: "OutsideWindow", windowClosed: true, ran: true}},
		"a closing window stopped it after a failed call": {out: cleanup.Outcome{Result: apply.Result{Stopped: "the policy's window closed", Refused: true, Refusal: &windowClosedError{}, Failed: []apply.Failure{{Image: "a"}}}},
			want: verdict{phase: v1alpha1.PhaseFailed, reason: "RemovalFailed", errorKind: "removal", retry: true, ran: true}},
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

// A schedule over a fleet, with a fake clock: from noon to 22:30, 200 nodes
// sweep a new generation only once the 22:00 window opens, each once, spread
// over its first minutes; each reports the held generation once, Skipped.
func TestAWindowHoldsAFleetAndSpreadsItsStart(t *testing.T) {
	policy := selecting(2, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
		p.Spec.Schedule = &v1alpha1.Schedule{TimeZone: "Europe/Berlin", Windows: []v1alpha1.Window{{Start: "23:00", End: "05:00"}}}
	})
	opens := now.Add(10 * time.Hour) // 23:00 in Berlin is 22:00 UTC
	worker := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"group": "ci"}}}
	const nodes = 200
	sweeps := make([][]time.Time, nodes)
	idleWrites := make([]int, nodes)
	reports := make([]*v1alpha1.ImageCleanupReportStatus, nodes)
	for i := range reports {
		reports[i] = swept(1, time.Hour, v1alpha1.PhaseSucceeded)
	}
	ticks := []time.Time{now, now.Add(time.Hour)}
	for tick := opens.Add(-10 * time.Minute); tick.Before(opens.Add(30 * time.Minute)); tick = tick.Add(10 * time.Second) {
		ticks = append(ticks, tick)
	}
	for _, tick := range ticks {
		for i := range nodes {
			tm := timing{node: fmt.Sprintf("node-%03d", i)}
			s := situation{policy: policy, node: worker, report: reports[i], generationSeen: now, now: tick}
			switch d := tm.decide(&s); d.step {
			case stepSweep:
				sweeps[i] = append(sweeps[i], tick)
				reports[i] = swept(2, 0, v1alpha1.PhaseSucceeded)
				reports[i].LastSweepTime = &metav1.Time{Time: tick}
			case stepWriteIdle:
				idleWrites[i]++
				st := idleStatus(reports[i], 2, d.phase, d.reason, d.message)
				reports[i] = &st
				if want := "2026-11-27T23:00:00+01:00"; !strings.Contains(d.message, want) {
					t.Fatalf("node %d: %q does not say the window opens at %s", i, d.message, want)
				}
			}
		}
	}
	perMinute := map[int]int{}
	for i, ss := range sweeps {
		if len(ss) != 1 || idleWrites[i] != 1 {
			t.Fatalf("node %d swept %d times and wrote %d idle reports; want once each", i, len(ss), idleWrites[i])
		}
		if ss[0].Before(opens) || ss[0].After(opens.Add(maxWindowSpread)) {
			t.Fatalf("node %d swept at %s; the window opens at %s", i, ss[0], opens)
		}
		perMinute[int(ss[0].Sub(opens)/time.Minute)]++
	}
	for minute, n := range perMinute {
		if n > 2*nodes/10 {
			t.Fatalf("%d of %d nodes swept in minute %d of the window: not spread", n, nodes, minute)
		}
	}
}
