package aggregator

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

func node(name string, labels map[string]string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func report(nodeName string, gen int64, phase v1alpha1.ReportPhase, images int64) v1alpha1.ImageCleanupReport {
	return v1alpha1.ImageCleanupReport{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.ReportName("p", nodeName)},
		Spec:       v1alpha1.ImageCleanupReportSpec{PolicyName: "p", NodeName: nodeName},
		Status: v1alpha1.ImageCleanupReportStatus{PolicyGeneration: gen, Phase: phase,
			Totals: v1alpha1.SweepTotals{ImagesRemoved: images, ContainersRemoved: 2 * images, BytesReclaimed: 100 * images}},
	}
}

func policyGen(gen int64, sel *v1alpha1.NodeSelector) *v1alpha1.ImageCleanupPolicy {
	return &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen}, Spec: v1alpha1.ImageCleanupPolicySpec{NodeSelector: sel}}
}

func cond(st *v1alpha1.ImageCleanupPolicyStatus, typ string) string {
	c := meta.FindStatusCondition(st.Conditions, typ)
	if c == nil {
		return "none"
	}
	return string(c.Status) + "/" + c.Reason
}

func TestAggregate(t *testing.T) {
	ci := &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"pool": "ci"}}
	ciNodes := []corev1.Node{node("a", map[string]string{"pool": "ci"}), node("b", map[string]string{"pool": "ci"}), node("web", map[string]string{"pool": "web"})}
	tests := map[string]struct {
		policy                                        *v1alpha1.ImageCleanupPolicy
		nodes                                         []corev1.Node
		reports                                       []v1alpha1.ImageCleanupReport
		matched, reported, succeeded, blocked, failed int32
		images                                        int64
		ready, degraded                               string
		failing, stale                                []string
	}{
		"all applied": {
			policy: policyGen(2, ci), nodes: ciNodes,
			reports: []v1alpha1.ImageCleanupReport{report("a", 2, v1alpha1.PhaseSucceeded, 3), report("b", 2, v1alpha1.PhaseBlocked, 1)},
			matched: 2, reported: 2, succeeded: 1, blocked: 1, images: 4,
			ready: "True/AllNodesApplied", degraded: "False/NoFailures",
		},
		"one node behind": {
			policy: policyGen(3, ci), nodes: ciNodes,
			reports: []v1alpha1.ImageCleanupReport{report("a", 3, v1alpha1.PhaseSucceeded, 3), report("b", 2, v1alpha1.PhaseSucceeded, 1)},
			matched: 2, reported: 1, succeeded: 1, images: 4,
			ready: "False/WaitingForNodes", degraded: "False/NoFailures",
		},
		"a failure degrades": {
			policy: policyGen(1, ci), nodes: ciNodes,
			reports: []v1alpha1.ImageCleanupReport{report("a", 1, v1alpha1.PhaseFailed, 0), report("b", 1, v1alpha1.PhaseSucceeded, 1)},
			matched: 2, reported: 2, succeeded: 1, failed: 1, images: 1,
			ready: "False/NodesFailed", degraded: "True/NodesFailed", failing: []string{"a"},
		},
		"reports of unselected and gone nodes are stale": {
			policy: policyGen(1, ci), nodes: ciNodes,
			reports: []v1alpha1.ImageCleanupReport{report("a", 1, v1alpha1.PhaseSucceeded, 1), report("web", 1, v1alpha1.PhaseSucceeded, 5), report("gone", 1, v1alpha1.PhaseFailed, 5)},
			matched: 2, reported: 1, succeeded: 1, images: 1,
			ready: "False/WaitingForNodes", degraded: "False/NoFailures", stale: []string{"web", "gone"},
		},
		"no node selected": {
			policy: policyGen(1, &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"pool": "gpu"}}), nodes: ciNodes,
			ready: "True/NoNodesSelected", degraded: "False/NoFailures",
		},
		"no selector selects every node": {
			policy: policyGen(1, nil), nodes: ciNodes,
			reports: []v1alpha1.ImageCleanupReport{report("a", 1, v1alpha1.PhaseDryRun, 0), report("b", 1, v1alpha1.PhaseSucceeded, 0), report("web", 1, v1alpha1.PhaseSkipped, 0)},
			matched: 3, reported: 3, succeeded: 3,
			ready: "True/AllNodesApplied", degraded: "False/NoFailures",
		},
		"invalid selector": {
			policy: policyGen(1, &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"bad key": "x"}}), nodes: ciNodes,
			ready: "False/InvalidNodeSelector", degraded: "True/InvalidNodeSelector",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			agg := aggregate(tc.policy, tc.nodes, nil, tc.reports, now)
			st := agg.status
			if st.ObservedGeneration != tc.policy.Generation {
				t.Errorf("observedGeneration %d", st.ObservedGeneration)
			}
			if st.NodesMatched != tc.matched || st.NodesReported != tc.reported || st.NodesSucceeded != tc.succeeded ||
				st.NodesBlocked != tc.blocked || st.NodesFailed != tc.failed || st.ImagesRemoved != tc.images ||
				st.ContainersRemoved != 2*tc.images || st.BytesReclaimed != 100*tc.images {
				t.Errorf("counts %+v", st)
			}
			if got := cond(&st, v1alpha1.ConditionReady); got != tc.ready {
				t.Errorf("Ready %s, want %s", got, tc.ready)
			}
			if got := cond(&st, v1alpha1.ConditionDegraded); got != tc.degraded {
				t.Errorf("Degraded %s, want %s", got, tc.degraded)
			}
			if !slices.Equal(st.FailingNodes, tc.failing) {
				t.Errorf("failing %v", st.FailingNodes)
			}
			var stale []string
			for _, r := range agg.stale {
				stale = append(stale, r.Spec.NodeName)
			}
			if !slices.Equal(stale, tc.stale) {
				t.Errorf("stale %v, want %v", stale, tc.stale)
			}
		})
	}
}

// now is the aggregator's clock in these tests.
var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// aggregate is pure: the same inputs give the same status, its conditions'
// times included (they come from the clock it is given). Recomputing an
// unchanged status later gives an equal one: transition times stay, so the
// aggregator does not write.
func TestAggregateIsStable(t *testing.T) {
	p := policyGen(1, nil)
	nodes := []corev1.Node{node("a", nil)}
	reports := []v1alpha1.ImageCleanupReport{report("a", 1, v1alpha1.PhaseSucceeded, 1)}
	first := aggregate(p, nodes, nil, reports, now).status
	if again := aggregate(p, nodes, nil, reports, now).status; !equality.Semantic.DeepEqual(first, again) {
		t.Fatalf("the same inputs, two statuses:\n%+v\n%+v", first, again)
	}
	for _, c := range first.Conditions {
		if !c.LastTransitionTime.Time.Equal(now) {
			t.Fatalf("%s changed at %s, not at the given time %s", c.Type, c.LastTransitionTime, now)
		}
	}
	p.Status = first
	second := aggregate(p, nodes, nil, reports, now.Add(time.Hour)).status
	if !slices.EqualFunc(first.Conditions, second.Conditions, func(a, b metav1.Condition) bool { return a == b }) {
		t.Fatalf("conditions changed:\n%+v\n%+v", first.Conditions, second.Conditions)
	}
}

func TestFailingNodesAreBounded(t *testing.T) {
	var nodes []corev1.Node
	var reports []v1alpha1.ImageCleanupReport
	for _, n := range []string{"n00", "n01", "n02", "n03", "n04", "n05", "n06", "n07", "n08", "n09", "n10", "n11"} {
		nodes = append(nodes, node(n, nil))
		reports = append(reports, report(n, 1, v1alpha1.PhaseFailed, 0))
	}
	st := aggregate(policyGen(1, nil), nodes, nil, reports, now).status
	if st.NodesFailed != 12 || len(st.FailingNodes) != 10 || st.FailingNodes[0] != "n00" {
		t.Fatalf("%d failed, failing %v", st.NodesFailed, st.FailingNodes)
	}
}

// TestConditionsForKstatus: Reconciling and Stalled, the conditions kstatus
// reads, are never True together, and Stalled wins.
func TestConditionsForKstatus(t *testing.T) {
	many := func(n int) []corev1.Node {
		out := make([]corev1.Node, n)
		for i := range out {
			out[i] = node(string(rune('a'+i)), nil)
		}
		return out
	}
	invalid := report("a", 1, v1alpha1.PhaseFailed, 0)
	invalid.Status.Reason = v1alpha1.ReportReasonInvalidPolicy
	invalid.Status.Message = "spec.nodeSelector: bad key"
	suspended := policyGen(1, nil)
	suspended.Spec.Suspend = true
	tests := map[string]struct {
		policy                                *v1alpha1.ImageCleanupPolicy
		nodes                                 []corev1.Node
		reports                               []v1alpha1.ImageCleanupReport
		ready, degraded, reconciling, stalled string
	}{
		"no report yet": {policy: policyGen(1, nil), nodes: many(2),
			ready: "False/WaitingForNodes", degraded: "False/NoFailures", reconciling: "True/WaitingForNodes", stalled: "False/Progressing"},
		"all reported": {policy: policyGen(1, nil), nodes: many(2),
			reports: []v1alpha1.ImageCleanupReport{report("a", 1, v1alpha1.PhaseSucceeded, 1), report("b", 1, v1alpha1.PhaseBlocked, 0)},
			ready:   "True/AllNodesApplied", degraded: "False/NoFailures", reconciling: "False/AllNodesReported", stalled: "False/Progressing"},
		"invalid on a node, others still to come": {policy: policyGen(1, nil), nodes: many(20),
			reports: []v1alpha1.ImageCleanupReport{invalid},
			ready:   "False/InvalidPolicy", degraded: "True/InvalidPolicy", reconciling: "False/InvalidPolicy", stalled: "True/InvalidPolicy"},
		"one failing node of 20 is under the threshold": {policy: policyGen(1, nil), nodes: many(20),
			reports: append(succeededOn(many(20)[1:]), report("a", 1, v1alpha1.PhaseFailed, 0)),
			ready:   "False/NodesFailed", degraded: "True/NodesFailed", reconciling: "False/AllNodesReported", stalled: "False/Progressing"},
		"two failing nodes of 20 reach it": {policy: policyGen(1, nil), nodes: many(20),
			reports: append(succeededOn(many(20)[2:]), report("a", 1, v1alpha1.PhaseFailed, 0), report("b", 1, v1alpha1.PhaseFailed, 0)),
			ready:   "False/NodesFailed", degraded: "True/NodesFailed", reconciling: "False/NodesFailed", stalled: "True/NodesFailed"},
		"the only node failing": {policy: policyGen(1, nil), nodes: many(1),
			reports: []v1alpha1.ImageCleanupReport{report("a", 1, v1alpha1.PhaseFailed, 0)},
			ready:   "False/NodesFailed", degraded: "True/NodesFailed", reconciling: "False/NodesFailed", stalled: "True/NodesFailed"},
		"suspended": {policy: suspended, nodes: many(1),
			reports: []v1alpha1.ImageCleanupReport{report("a", 1, v1alpha1.PhaseSkipped, 0)},
			ready:   "True/Suspended", degraded: "False/NoFailures", reconciling: "False/AllNodesReported", stalled: "False/Progressing"},
		"invalid node selector": {policy: policyGen(1, &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"bad key!": "x"}}), nodes: many(1),
			ready: "False/InvalidNodeSelector", degraded: "True/InvalidNodeSelector", reconciling: "False/InvalidNodeSelector", stalled: "True/InvalidNodeSelector"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := aggregate(tc.policy, tc.nodes, nil, tc.reports, now).status
			got := []string{cond(&st, "Ready"), cond(&st, "Degraded"), cond(&st, "Reconciling"), cond(&st, "Stalled")}
			want := []string{tc.ready, tc.degraded, tc.reconciling, tc.stalled}
			if !slices.Equal(got, want) {
				t.Errorf("Ready, Degraded, Reconciling, Stalled = %v, want %v", got, want)
			}
			for _, c := range st.Conditions {
				if c.ObservedGeneration != tc.policy.Generation {
					t.Errorf("%s at generation %d, want %d", c.Type, c.ObservedGeneration, tc.policy.Generation)
				}
			}
		})
	}
}

func succeededOn(nodes []corev1.Node) []v1alpha1.ImageCleanupReport {
	out := make([]v1alpha1.ImageCleanupReport, len(nodes))
	for i, n := range nodes {
		out[i] = report(n.Name, 1, v1alpha1.PhaseSucceeded, 0)
	}
	return out
}

// Issue 18: a selected node where no agent runs (no supported runtime, a
// taint the DaemonSet does not tolerate) does not hold Ready back for ever;
// the status names it. A node whose agent applied the generation and then
// went (a restart) is not one of them.
func TestNodesWithoutAgent(t *testing.T) {
	nodes := []corev1.Node{node("a", nil), node("b", nil), node("containerd-1", nil), node("tainted", nil)}
	agents := map[string]bool{"a": true, "b": true}
	reports := []v1alpha1.ImageCleanupReport{
		report("a", 1, v1alpha1.PhaseSucceeded, 1),
		report("b", 1, v1alpha1.PhaseSucceeded, 1),
		report("tainted", 1, v1alpha1.PhaseSucceeded, 1), // reported, then its agent went
	}
	st := aggregate(policyGen(1, nil), nodes, agents, reports, now).status
	if st.NodesWithoutAgent != 1 || !slices.Equal(st.AgentlessNodes, []string{"containerd-1"}) {
		t.Fatalf("without agent: %d %v", st.NodesWithoutAgent, st.AgentlessNodes)
	}
	if got := cond(&st, v1alpha1.ConditionReady); got != "True/AppliedWhereAgentsRun" {
		t.Fatalf("Ready %s", got)
	}
	if got := cond(&st, v1alpha1.ConditionReconciling); got != "False/AllNodesReported" {
		t.Fatalf("Reconciling %s", got)
	}
	ready := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	if want := "3 of 4 nodes applied generation 1; 1 selected nodes run no agent: containerd-1"; ready.Message != want {
		t.Fatalf("Ready message %q, want %q", ready.Message, want)
	}
	// A node with an agent that has not reported still holds Ready back.
	st = aggregate(policyGen(1, nil), nodes, agents, reports[1:], now).status
	if got := cond(&st, v1alpha1.ConditionReady); got != "False/WaitingForNodes" {
		t.Fatalf("Ready %s, want waiting for node a", got)
	}
	// Without knowledge of the agents, every node counts as having one.
	st = aggregate(policyGen(1, nil), nodes, nil, reports, now).status
	if st.NodesWithoutAgent != 0 || cond(&st, v1alpha1.ConditionReady) != "False/WaitingForNodes" {
		t.Fatalf("without agent knowledge: %+v", st)
	}
}

// Issue 18: a disk watermark at or above the kubelet's image GC threshold
// races the kubelet; the status says so.
func TestKubeletGCWarning(t *testing.T) {
	p := policyGen(1, nil)
	p.Spec.DiskUsage = &v1alpha1.DiskUsage{HighPercent: 84, LowPercent: 70}
	if st := aggregate(p, nil, nil, nil, now).status; len(st.Warnings) != 0 {
		t.Fatalf("warnings at 84 %%: %v", st.Warnings)
	}
	p.Spec.DiskUsage.HighPercent = 85
	if st := aggregate(p, nil, nil, nil, now).status; len(st.Warnings) != 1 {
		t.Fatalf("no warning at 85 %%: %v", st.Warnings)
	}
}

// What a dry run would remove is summed over the current dry-run reports
// only: a real sweep's removals and a report of an older generation are
// not previews of this spec.
func TestAggregateSumsWhatDryRunsWouldRemove(t *testing.T) {
	preview := func(node string, gen int64, phase v1alpha1.ReportPhase, images int32, bytes int64) v1alpha1.ImageCleanupReport {
		r := report(node, gen, phase, 0)
		r.Status.ImagesRemoved, r.Status.BytesReclaimed = images, bytes
		return r
	}
	nodes := []corev1.Node{node("a", nil), node("b", nil), node("c", nil), node("d", nil)}
	reports := []v1alpha1.ImageCleanupReport{
		preview("a", 2, v1alpha1.PhaseDryRun, 3, 300),
		preview("b", 2, v1alpha1.PhaseDryRun, 4, 400),
		preview("c", 2, v1alpha1.PhaseSucceeded, 5, 500), // removed, not a preview
		preview("d", 1, v1alpha1.PhaseDryRun, 6, 600),    // the spec before
	}
	st := aggregate(policyGen(2, nil), nodes, nil, reports, now).status
	if st.ImagesWouldRemove != 7 || st.BytesWouldReclaim != 700 {
		t.Fatalf("would remove %d images, %d bytes; want 7 and 700", st.ImagesWouldRemove, st.BytesWouldReclaim)
	}
}

// The status says whether the schedule's window is open, when it next opens
// and closes, and the aggregator comes back when that changes.
func TestAggregateSaysTheWindow(t *testing.T) {
	nightly := policyGen(1, nil)
	nightly.Spec.Schedule = &v1alpha1.Schedule{TimeZone: "Europe/Berlin", Windows: []v1alpha1.Window{{Start: "23:00", End: "05:00"}}}
	utc := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	for name, c := range map[string]struct {
		now, nextOpen, closes, changes string
		state                          v1alpha1.WindowState
	}{
		"closed at noon": {"2026-12-08T12:00:00Z", "2026-12-08T22:00:00Z", "", "2026-12-08T22:00:00Z", v1alpha1.WindowClosed},
		"open at night":  {"2026-12-08T23:00:00Z", "2026-12-09T22:00:00Z", "2026-12-09T04:00:00Z", "2026-12-09T04:00:00Z", v1alpha1.WindowOpen},
	} {
		agg := aggregate(nightly, nil, nil, nil, utc(c.now))
		w := agg.status.Window
		if w == nil || w.State != c.state || !w.NextOpen.Time.Equal(utc(c.nextOpen)) || (c.closes == "") != (w.Closes == nil) ||
			w.Closes != nil && !w.Closes.Time.Equal(utc(c.closes)) || !agg.windowChanges.Equal(utc(c.changes)) {
			t.Errorf("%s: window %+v, changes at %s; want %s, next open %s, closes %q, changes at %s", name, w, agg.windowChanges, c.state, c.nextOpen, c.closes, c.changes)
		}
	}
	if agg := aggregate(policyGen(1, nil), nil, nil, nil, utc("2026-12-08T12:00:00Z")); agg.status.Window != nil || !agg.windowChanges.IsZero() {
		t.Errorf("no schedule: window %+v, changes at %s; want none", agg.status.Window, agg.windowChanges)
	}
}

// The nodes' returns are summed while their sweep is less than a day old,
// whatever generation removed them; the aggregator comes back when the
// oldest that counts ages out.
func TestAggregateSumsRecentReturns(t *testing.T) {
	now := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	returned := func(node string, ago time.Duration, images int32) v1alpha1.ImageCleanupReport {
		r := report(node, 1, v1alpha1.PhaseSucceeded, 0)
		r.Status.LastSweepTime = &metav1.Time{Time: now.Add(-ago)}
		r.Status.Returned = &v1alpha1.ReturnedImages{Images: images, Bytes: 10 * int64(images)}
		return r
	}
	nodes := []corev1.Node{node("a", nil), node("b", nil), node("c", nil)}
	reports := []v1alpha1.ImageCleanupReport{returned("a", time.Hour, 2), returned("b", 3*time.Hour, 3), returned("c", 25*time.Hour, 7)}
	agg := aggregate(policyGen(2, nil), nodes, nil, reports, now)
	if agg.status.ImagesReturned != 5 || agg.status.BytesReturned != 50 || !agg.recomputeAt().Equal(now.Add(21*time.Hour)) {
		t.Fatalf("returned %d images, %d bytes, recompute at %s; want 5, 50, when b's sweep is a day old",
			agg.status.ImagesReturned, agg.status.BytesReturned, agg.recomputeAt())
	}
}
