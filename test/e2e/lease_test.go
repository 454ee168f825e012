package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/controllers/aggregator"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// stallingLeases is a fault point between an aggregator and the API server:
// once set, its lease requests hang until their deadline, as they did
// behind a fleet's burst at 5,000 nodes.
type stallingLeases struct {
	next  http.RoundTripper
	stall *atomic.Bool
}

func (s stallingLeases) RoundTrip(req *http.Request) (*http.Response, error) {
	if s.stall.Load() && strings.Contains(req.URL.Path, "/leases/") {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	return s.next.RoundTrip(req)
}

func (s stallingLeases) WrappedRoundTripper() http.RoundTripper { return s.next }

// Issue 23: the leader's lease renewals stall; it must lose the lease and
// stop (its manager returns, so the binary exits and the Deployment starts
// it again), and the standby must take over, so that the policy's status
// follows the next change instead of freezing for good.
func TestAggregatorWhoseLeaseStallsHandsOver(t *testing.T) {
	c := apiClient(t)
	group := testenv.UniqueName("group")
	for _, n := range []string{testenv.UniqueName("node-a"), testenv.UniqueName("node-b")} {
		createNode(t, c, n, map[string]string{"imagecleanup.test/group": group})
		startAgent(t, n, runtimefake.WithStaleImage(n))
	}
	// The first aggregator, alone so that it leads, through the fault point.
	var stall atomic.Bool
	cfg := rest.CopyConfig(testenv.APIServer(t))
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return stallingLeases{next: rt, stall: &stall} })
	first, err := aggregator.NewManager(cfg, controllers.Scheme(), aggregatorOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	exited := make(chan error, 1)
	go func() { exited <- first.Start(ctx) }()
	select {
	case <-first.Elected():
	case <-time.After(30 * time.Second):
		t.Fatal("the first aggregator was not elected")
	}
	lease := func() string {
		var l coordinationv1.Lease
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: leaseNamespace, Name: aggregator.LeaseName}, &l); err != nil {
			t.Fatal(err)
		}
		return ptr.Deref(l.Spec.HolderIdentity, "")
	}
	firstHolder := lease()
	if firstHolder == "" {
		t.Fatal("the elected aggregator holds no lease")
	}

	policy := createPolicy(t, c, testenv.UniqueName("stalled-lease"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"ci.local/**"},
		MinImageAge:  dur("1h"),
		Interval:     dur("1m"),
	})
	readyWithNodes(t, c, policy.Name, 2, "Ready under the first aggregator")
	startAggregator(t) // the standby, as the Deployment's second replica

	stall.Store(true)
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(err.Error(), "leader election lost") {
			t.Fatalf("the aggregator that lost its lease stopped with %v, want leader election lost (the binary then exits)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the aggregator kept running with its lease renewals stalled")
	}
	updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.DryRun = true })
	readyWithNodes(t, c, policy.Name, 2, "Ready at the new generation under the standby")
	if holder := lease(); holder == firstHolder {
		t.Errorf("the lease is still held by %s", holder)
	}
}
