package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// Reconcile with a fake API client, a fake runtime and a fake clock: the
// read-decide-act loop without an API server.

type harness struct {
	r     *nodeReconciler
	c     client.Client
	rt    *runtimefake.Runtime
	clock *clocktesting.FakeClock
}

func newHarness(t *testing.T, policy *v1alpha1.ImageCleanupPolicy, funcs ...interceptor.Funcs) *harness {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Labels: map[string]string{"group": "ci"}}}
	builder := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(node, policy)
	for _, f := range funcs {
		builder = builder.WithInterceptorFuncs(f)
	}
	c := builder.Build()
	f := runtimefake.New()
	old := now.Add(-48 * time.Hour)
	f.AddImage(runtime.Image{ID: "sha256:" + repeat("a"), RepoTags: []string{"ci.local/app:1"}, LastTagTime: old, Size: 10})
	f.AddContainer(runtime.Container{ID: repeat("c"), Name: "job", ImageID: "sha256:" + repeat("a"), State: runtime.StateExited, Created: old, FinishedAt: old})
	clock := clocktesting.NewFakeClock(now)
	metrics := newAgentMetrics()
	r := &nodeReconciler{Client: c, APIReader: c, Node: "worker-1", Runtime: f, Clock: clock, Metrics: metrics,
		Host: &nodeHost{rt: f, metrics: metrics}, SweepTimeout: time.Minute, RetryBaseDelay: time.Second, RetryMaxDelay: 5 * time.Minute}
	return &harness{r: r, c: c, rt: f, clock: clock}
}

func repeat(s string) string { return strings.Repeat(s, 64) }

// ciJobs selects the harness's node and its ci.local images, and lets
// stopped containers go at once.
func ciJobs() *v1alpha1.ImageCleanupPolicy {
	return selecting(1, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
		p.Spec.Images = []v1alpha1.ImagePattern{"ci.local/**"}
		zero := v1alpha1.Duration("0s")
		p.Spec.StoppedContainers.MinStoppedAge = &zero
	})
}

func (h *harness) reconcile(t *testing.T) ctrl.Result {
	t.Helper()
	res, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return res
}

func (h *harness) report(t *testing.T) *v1alpha1.ImageCleanupReport {
	t.Helper()
	var r v1alpha1.ImageCleanupReport
	if err := h.c.Get(context.Background(), types.NamespacedName{Name: v1alpha1.ReportName("p", "worker-1")}, &r); err != nil {
		return nil
	}
	return &r
}

func TestReconcileSweepsThenWaits(t *testing.T) {
	h := newHarness(t, ciJobs())
	res := h.reconcile(t)
	rep := h.report(t)
	if rep == nil || rep.Status.Phase != v1alpha1.PhaseSucceeded || rep.Status.ImagesRemoved != 1 || rep.Status.ContainersRemoved != 1 {
		t.Fatalf("report after the sweep: %+v", rep)
	}
	if h.rt.HasImage("sha256:" + repeat("a")) {
		t.Fatal("the image is still there")
	}
	if res.RequeueAfter < time.Hour {
		t.Fatalf("requeue after %s, want the interval", res.RequeueAfter)
	}
	lists := h.rt.Calls()["ListImages"]
	h.clock.Step(10 * time.Minute)
	if res := h.reconcile(t); res.RequeueAfter <= 0 || h.rt.Calls()["ListImages"] != lists {
		t.Fatalf("a reconcile before the interval swept again (requeue %s)", res.RequeueAfter)
	}
}

// Finding: failed sweeps were returned as errors (logged twice, with a
// stack) and retried up to every 5 minutes whatever the interval. Now the
// report says Failed, Reconcile returns no error, and the retry backs off.
func TestReconcileFailedSweepBacksOff(t *testing.T) {
	h := newHarness(t, selecting(1, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
		p.Spec.Images = []v1alpha1.ImagePattern{"ci.local/**"}
	}))
	h.rt.SetDown(true)
	var waits []time.Duration
	for range 3 {
		res := h.reconcile(t)
		waits = append(waits, res.RequeueAfter)
		h.clock.Step(res.RequeueAfter)
	}
	if waits[0] != time.Second || waits[1] != 2*time.Second || waits[2] != 4*time.Second {
		t.Fatalf("waits %v, want 1s 2s 4s", waits)
	}
	if rep := h.report(t); rep == nil || rep.Status.Phase != v1alpha1.PhaseFailed || rep.Status.Totals.Sweeps != 3 {
		t.Fatalf("report %+v", rep)
	}
	h.rt.SetDown(false)
	if res := h.reconcile(t); res.RequeueAfter < time.Hour {
		t.Fatalf("after a success the rhythm is the interval again, got %s", res.RequeueAfter)
	}
}

func TestReconcileDeletesTheReportOfAGonePolicy(t *testing.T) {
	h := newHarness(t, selecting(1, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
		p.Spec.Images = []v1alpha1.ImagePattern{"nothing.local/**"}
	}))
	h.reconcile(t)
	if h.report(t) == nil {
		t.Fatal("no report")
	}
	var p v1alpha1.ImageCleanupPolicy
	if err := h.c.Get(context.Background(), types.NamespacedName{Name: "p"}, &p); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Delete(context.Background(), &p); err != nil {
		t.Fatal(err)
	}
	h.reconcile(t)
	if h.report(t) != nil {
		t.Fatal("the report of a deleted policy stays")
	}
}

// A suspended policy sweeps nothing and says so.
func TestReconcileSuspended(t *testing.T) {
	h := newHarness(t, selecting(1, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
		p.Spec.Images = []v1alpha1.ImagePattern{"ci.local/**"}
		p.Spec.Suspend = true
	}))
	h.reconcile(t)
	if rep := h.report(t); rep == nil || rep.Status.Phase != v1alpha1.PhaseSkipped || h.rt.Calls()["ListImages"] != 0 {
		t.Fatalf("report %+v, engine calls %v", rep, h.rt.Calls())
	}
}

// failingReportWrites fails the first n report writes, as an API server
// that is away or rejects them would.
func failingReportWrites(n int) interceptor.Funcs {
	return interceptor.Funcs{Apply: func(ctx context.Context, c client.WithWatch, obj kruntime.ApplyConfiguration, opts ...client.ApplyOption) error {
		if n > 0 {
			n--
			return errors.New("the API server is unavailable")
		}
		return c.Apply(ctx, obj, opts...)
	}}
}

// Finding: a failed report write lost the sweep's tallies (the retry swept
// again, found nothing, and reported zero). The retry writes the status the
// sweep computed, and does not sweep.
func TestReportWriteRetriedWithTheComputedStatus(t *testing.T) {
	h := newHarness(t, ciJobs(), failingReportWrites(1))
	if _, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}}); err == nil {
		t.Fatal("a failed write is not returned")
	}
	if h.rt.HasImage("sha256:"+repeat("a")) || h.report(t) != nil {
		t.Fatal("want the sweep done and no report yet")
	}
	lists := h.rt.Calls()["ListImages"]
	h.reconcile(t)
	rep := h.report(t)
	if rep == nil || rep.Status.ImagesRemoved != 1 || rep.Status.ContainersRemoved != 1 || rep.Status.Totals.Sweeps != 1 {
		t.Fatalf("report after the retry: %+v", rep)
	}
	if h.rt.Calls()["ListImages"] != lists {
		t.Fatal("the retry swept again")
	}
}

// A report keeps its sweep's start (countedThrough) to the microsecond, the
// image clock's records of begun removals to the nanosecond, and the next
// sweep drops the records begun at or before countedThrough. A sweep begun
// 0.3 s into a second whose records outlived its report (its first write
// failed and the retry wrote it; or the agent died between the write and
// the clock's save) must not be counted again by the next sweep, as removed
// by an interrupted one (make scale at 5,000 nodes once counted 4,521
// removals of 4,500, when reports kept the second).
func TestARemovalIsCountedOnceWhenItsReportWasWrittenOnRetry(t *testing.T) {
	h := newHarness(t, ciJobs(), failingReportWrites(1))
	h.clock.Step(300 * time.Millisecond)
	if _, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}}); err == nil {
		t.Fatal("a failed write is not returned")
	}
	h.clock.Step(time.Second)
	h.reconcile(t) // the retry writes the sweep's status
	h.clock.Step(2 * time.Hour)
	h.reconcile(t) // the next sweep, at the interval: nothing left to remove
	rep := h.report(t)
	if rep == nil || rep.Status.Totals.Sweeps != 2 || rep.Status.Totals.ImagesRemoved != 1 || rep.Status.Totals.ContainersRemoved != 1 {
		t.Fatalf("after two sweeps, one of which removed 1 image and 1 container: totals %+v, message %q", rep.Status.Totals, rep.Status.Message)
	}
}

// countingReportReads counts the agent's reads of reports.
func countingReportReads(reads *int) interceptor.Funcs {
	return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*v1alpha1.ImageCleanupReport); ok {
			*reads++
		}
		return c.Get(ctx, key, obj, opts...)
	}}
}

// A policy created after the agent started (a create event after the
// cache's initial list) has no report of this node: its first sweep writes
// one without reading it first. One in the initial list may have one, from
// the agent's last run: it is read.
func TestANewPolicysFirstSweepReadsNoReport(t *testing.T) {
	for _, initial := range []bool{false, true} {
		reads := 0
		h := newHarness(t, selecting(1, "ci", func(p *v1alpha1.ImageCleanupPolicy) {
			p.Spec.Images = []v1alpha1.ImagePattern{"ci.local/**"}
		}), countingReportReads(&reads))
		var p v1alpha1.ImageCleanupPolicy
		if err := h.c.Get(context.Background(), client.ObjectKey{Name: "p"}, &p); err != nil {
			t.Fatal(err)
		}
		if !h.r.notingNewPolicies().Create(event.CreateEvent{Object: &p, IsInInitialList: initial}) {
			t.Fatal("the predicate held back a create event")
		}
		h.reconcile(t)
		if want := map[bool]int{false: 0, true: 1}[initial]; reads != want {
			t.Errorf("initial list %t: %d reads of the report, want %d", initial, reads, want)
		}
		if rep := h.report(t); rep == nil || rep.Status.ImagesRemoved != 1 {
			t.Fatalf("initial list %t: report %+v", initial, rep)
		}
	}
}

// A node the policy does not select deletes its report, if it has one: it
// reads it first (for its UID), unless it knows there is none.
func TestANodeNotSelectedReadsNoReportItKnowsItHasNot(t *testing.T) {
	reads := 0
	h := newHarness(t, selecting(1, "other"), countingReportReads(&reads))
	h.reconcile(t) // the agent's first look: one read, none found
	h.reconcile(t) // and again, at the next wave
	if reads != 1 {
		t.Fatalf("%d reads of a report the agent knows it has not, want 1", reads)
	}
	// One it has (from its last run, say) is read and deleted.
	if err := h.c.Create(context.Background(), &v1alpha1.ImageCleanupReport{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.ReportName("p", "worker-1")}}); err != nil {
		t.Fatal(err)
	}
	h.r.forgetReport("p") // as after a restart
	h.reconcile(t)
	if h.report(t) != nil {
		t.Fatal("the report of a node the policy does not select stays")
	}
}

// pacedRemovals is a runtime whose container removals each wait (up to a
// second) until want of them are under way, and which records the most
// that were under way at once.
type pacedRemovals struct {
	runtime.Runtime
	want      int
	mu        sync.Mutex
	now, most int
}

func (p *pacedRemovals) RemoveContainer(ctx context.Context, id string, removeVolumes bool) error {
	p.mu.Lock()
	p.now++
	p.most = max(p.most, p.now)
	p.mu.Unlock()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		p.mu.Lock()
		enough := p.now >= p.want
		p.mu.Unlock()
		if enough {
			break
		}
	}
	err := p.Runtime.RemoveContainer(ctx, id, removeVolumes)
	p.mu.Lock()
	p.now--
	p.mu.Unlock()
	return err
}

// The agent's --max-runtime-calls reaches its sweeps.
func TestTheAgentsSweepKeepsToItsRuntimeCalls(t *testing.T) {
	for _, calls := range []int{1, 3} {
		h := newHarness(t, ciJobs())
		old := now.Add(-48 * time.Hour)
		for i := range 8 {
			h.rt.AddContainer(runtime.Container{ID: repeat(fmt.Sprint(i)), Name: fmt.Sprintf("job-%d", i), ImageID: "sha256:" + repeat("a"),
				State: runtime.StateExited, Created: old, FinishedAt: old})
		}
		paced := &pacedRemovals{Runtime: h.rt, want: calls}
		h.r.Runtime, h.r.RuntimeCalls = paced, calls
		h.reconcile(t)
		if rep := h.report(t); rep == nil || rep.Status.ContainersRemoved != 9 {
			t.Fatalf("--max-engine-calls %d: report %+v", calls, rep)
		}
		if paced.most != calls {
			t.Errorf("--max-engine-calls %d: %d container removals under way at once", calls, paced.most)
		}
	}
}

// A sweep killed after the runtime removed an image; the restarted agent's
// first sweep cannot list the runtime, and writes a report that names its
// own start. The next sweep still counts the killed sweep's removal: that
// report counted nothing, so it settled nothing.
func TestAReportOfASweepThatCouldNotListSettlesNothing(t *testing.T) {
	h := newHarness(t, ciJobs())
	ctx := context.Background()
	killedAt := h.clock.Now().Add(-time.Hour)
	gone := "sha256:" + repeat("b")
	h.rt.AddImage(runtime.Image{ID: gone, RepoTags: []string{"ci.local/gone:1"}})
	imageClock, err := h.r.Host.imageClock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := cleanup.Collect(ctx, h.rt)
	if err != nil {
		t.Fatal(err)
	}
	imageClock.Observe(&inv, killedAt)
	imageClock.Journal().Begin("p", killedAt, []imageclock.Removal{{ImageID: gone, Image: "ci.local/gone:1", Refs: []string{"ci.local/gone:1"}}})
	h.rt.RemoveImageByHand(gone)

	h.rt.SetDown(true)
	h.reconcile(t)
	if rep := h.report(t); rep == nil || rep.Status.Phase != v1alpha1.PhaseFailed {
		t.Fatalf("the sweep under a runtime that does not answer: %+v", rep)
	}
	h.rt.SetDown(false)
	h.clock.Step(time.Minute)
	h.reconcile(t)
	rep := h.report(t)
	if rep == nil || rep.Status.Totals.ImagesRemoved != 2 || !slices.Contains(rep.Status.RemovedImages, "ci.local/gone:1 (removed by an interrupted sweep)") {
		t.Fatalf("want the killed sweep's removal counted beside the sweep's own: %+v", rep.Status)
	}
}
