package aggregator

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// Status writes of one policy are coalesced: the first at once, then at
// most one per interval while reports keep changing, carrying every change.
func TestStatusWritesAreCoalesced(t *testing.T) {
	writes := 0
	c := fakeCluster(func() error { writes++; return nil })
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(now)
	r := &aggregateReconciler{reader: c, writer: c, interval: 10 * time.Second, clock: clk}
	reconcile := func() ctrl.Result { t.Helper(); return reconcileP(t, r) }
	addReport := func(node string) { t.Helper(); putReport(t, c, report(node, 1, v1alpha1.PhaseSucceeded, 1)) }
	reconcile() // a new policy: written at once
	if writes != 1 {
		t.Fatalf("%d writes for a new policy", writes)
	}
	addReport("n1")
	clk.SetTime(now.Add(time.Second))
	if res := reconcile(); writes != 1 || res.RequeueAfter != 9*time.Second {
		t.Fatalf("a change 1 s after a write: %d writes, requeue %s", writes, res.RequeueAfter)
	}
	addReport("n2")
	clk.SetTime(now.Add(10 * time.Second))
	reconcile()
	var got v1alpha1.ImageCleanupPolicy
	if err := c.Get(context.Background(), types.NamespacedName{Name: "p"}, &got); err != nil {
		t.Fatal(err)
	}
	if writes != 2 || got.Status.NodesReported != 2 {
		t.Fatalf("after the interval: %d writes, %d nodes reported", writes, got.Status.NodesReported)
	}
	// The conditions' times are the aggregator's clock, not the wall's:
	// Reconciling turned False (all reported) at the second write.
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReconciling); c == nil || !c.LastTransitionTime.Time.Equal(now.Add(10*time.Second)) {
		t.Fatalf("Reconciling %+v, want its transition at %s", c, now.Add(10*time.Second))
	}
}

// fakeCluster holds policy p and nodes n1 and n2; write is called before
// each status write, which fails with the error it returns.
func fakeCluster(write func() error) client.Client {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	policy := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 1}}
	return fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(policy, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}).
		WithStatusSubresource(policy).
		WithIndex(&v1alpha1.ImageCleanupReport{}, reportPolicyIndex, func(o client.Object) []string {
			return []string{o.(*v1alpha1.ImageCleanupReport).Spec.PolicyName}
		}).
		WithInterceptorFuncs(interceptor.Funcs{SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			if err := write(); err != nil {
				return err
			}
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		}}).Build()
}

func reconcileP(t *testing.T, r *aggregateReconciler) ctrl.Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// putReport creates or replaces a node's report.
func putReport(t *testing.T, c client.Client, rep v1alpha1.ImageCleanupReport) {
	t.Helper()
	var old v1alpha1.ImageCleanupReport
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(&rep), &old); err == nil {
		rep.ResourceVersion = old.ResourceVersion
		if err := c.Update(context.Background(), &rep); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := c.Create(context.Background(), &rep); err != nil {
		t.Fatal(err)
	}
}

// What the nodes removed is told on the policy by the aggregator: one
// Removed event per status write in which the totals grew, with what they
// grew by; none when they did not; once for a write that failed and was
// retried; none from a replica that takes over and finds the count
// written.
func TestRemovalsAreToldOncePerStatusWriteThatCountsThem(t *testing.T) {
	failNext := false
	c := fakeCluster(func() error {
		if failNext {
			failNext = false
			return errors.New("the API server is away")
		}
		return nil
	})
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(now)
	rec := events.NewFakeRecorder(10)
	r := &aggregateReconciler{reader: c, writer: c, interval: 10 * time.Second, clock: clk, recorder: rec}
	told := func() []string {
		var out []string
		for {
			select {
			case e := <-rec.Events:
				out = append(out, e)
			default:
				return out
			}
		}
	}
	later := func() { clk.SetTime(clk.Now().Add(10 * time.Second)) }

	reconcileP(t, r) // the first status: nothing removed yet
	if got := told(); len(got) != 0 {
		t.Fatalf("a status with nothing removed told %q", got)
	}
	putReport(t, c, report("n1", 1, v1alpha1.PhaseSucceeded, 1))
	putReport(t, c, report("n2", 1, v1alpha1.PhaseSucceeded, 2))
	later()
	reconcileP(t, r)
	want := "Normal Removed images removed: 3, stopped containers removed: 6, about 300 bytes freed (since the last count; in all 3 images, 6 stopped containers)"
	if got := told(); len(got) != 1 || got[0] != want {
		t.Fatalf("told %q, want %q", got, want)
	}

	// n1 sweeps again and removes 4 more; the write fails once.
	putReport(t, c, report("n1", 1, v1alpha1.PhaseSucceeded, 5))
	later()
	failNext = true
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}}); err == nil {
		t.Fatal("the failed write was not returned")
	}
	if got := told(); len(got) != 0 {
		t.Fatalf("a failed write told %q", got)
	}
	later()
	reconcileP(t, r)
	want = "Normal Removed images removed: 4, stopped containers removed: 8, about 400 bytes freed (since the last count; in all 7 images, 14 stopped containers)"
	if got := told(); len(got) != 1 || got[0] != want {
		t.Fatalf("after the retry told %q, want %q", got, want)
	}

	// A sweep that removed nothing changes the report, not the totals.
	rep := report("n2", 1, v1alpha1.PhaseSucceeded, 2)
	rep.Status.Message = "nothing to remove"
	putReport(t, c, rep)
	later()
	reconcileP(t, r)
	// A replica taking over finds the count written.
	standby := &aggregateReconciler{reader: c, writer: c, interval: 10 * time.Second, clock: clk, recorder: rec}
	reconcileP(t, standby)
	if got := told(); len(got) != 0 {
		t.Fatalf("nothing new removed, yet told %q", got)
	}
}
