package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// The disk tick runs on the agent's clock: nothing before the first tick,
// then every policy with diskUsage, and only those, at each tick.
func TestDiskTickFollowsTheAgentsClock(t *testing.T) {
	withDisk := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "disk"},
		Spec: v1alpha1.ImageCleanupPolicySpec{Images: []v1alpha1.ImagePattern{"**"}, DiskUsage: &v1alpha1.DiskUsage{}}}
	plain := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "plain"},
		Spec: v1alpha1.ImageCleanupPolicySpec{Images: []v1alpha1.ImagePattern{"**"}}}
	reader := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(withDisk, plain).Build()
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	out := make(chan event.GenericEvent)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- (&diskTicker{reader: reader, clock: clk, every: 30 * time.Second, out: out}).Start(ctx)
	}()
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond) // the ticker is set up
	}
	clk.Step(29 * time.Second)
	select {
	case e := <-out:
		t.Fatalf("%s brought back before the first tick", e.Object.GetName())
	case <-time.After(50 * time.Millisecond):
	}
	for tick := range 2 {
		clk.Step(30 * time.Second)
		if e := <-out; e.Object.GetName() != "disk" {
			t.Fatalf("tick %d brought back %s, which has no diskUsage", tick, e.Object.GetName())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
