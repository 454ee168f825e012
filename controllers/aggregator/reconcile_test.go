package aggregator

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
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
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	policy := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 1}}
	writes := 0
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(policy, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}).
		WithStatusSubresource(policy).
		WithIndex(&v1alpha1.ImageCleanupReport{}, reportPolicyIndex, func(o client.Object) []string {
			return []string{o.(*v1alpha1.ImageCleanupReport).Spec.PolicyName}
		}).
		WithInterceptorFuncs(interceptor.Funcs{SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			writes++
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		}}).Build()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(now)
	r := &aggregateReconciler{reader: c, writer: c, interval: 10 * time.Second, clock: clk}
	reconcile := func() ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	addReport := func(node string) {
		t.Helper()
		rep := report(node, 1, v1alpha1.PhaseSucceeded, 1)
		if err := c.Create(context.Background(), &rep); err != nil {
			t.Fatal(err)
		}
	}
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
