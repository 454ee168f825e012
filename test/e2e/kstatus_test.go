package e2e

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine/enginefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// kstatusOf computes what Flux, `kubectl wait`-style tools and cli-utils'
// appliers see: kstatus on the object as the API server serves it.
func kstatusOf(t *testing.T, c client.Client, name string) (status.Status, string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.SchemeGroupVersion.WithKind("ImageCleanupPolicy"))
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, u); err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status, res.Message
}

func waitKstatus(t *testing.T, c client.Client, name string, want status.Status) {
	t.Helper()
	eventually(t, name+" to be "+string(want)+" for kstatus", func() (bool, string) {
		got, msg := kstatusOf(t, c, name)
		return got == want, string(got) + ": " + msg + "; status " + statusLine(getPolicy(t, c, name))
	})
}

// TestKstatusSeesWhatAUserWould: a new policy is in progress (not done
// before anything happened), then in progress while nodes have not
// reported, Current when they all did, Failed when nodes fail or find it
// invalid, and Current when suspended.
func TestKstatusSeesWhatAUserWould(t *testing.T) {
	c := apiClient(t)
	group := testenv.UniqueName("kstatus")
	nodeA, nodeB := testenv.UniqueName("node-a"), testenv.UniqueName("node-b")
	labels := map[string]string{"imagecleanup.test/group": group}
	createNode(t, c, nodeA, labels)
	createNode(t, c, nodeB, labels)
	spec := v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"ci.local/**"},
		Interval:     dur("1m"),
	}

	// New: nothing has looked at it yet (no aggregator runs).
	policy := createPolicy(t, c, testenv.UniqueName("kstatus"), spec)
	if got, msg := kstatusOf(t, c, policy.Name); got != status.InProgressStatus {
		t.Fatalf("a new policy is %s (%s), want InProgress", got, msg)
	}

	// Progressing: one of two nodes has applied it.
	startAggregator(t)
	engineA := enginefake.WithStaleImage(nodeA)
	startAgent(t, nodeA, engineA)
	waitKstatus(t, c, policy.Name, status.InProgressStatus)
	eventually(t, "node a to report", func() (bool, string) {
		return getPolicy(t, c, policy.Name).Status.NodesReported == 1, statusLine(getPolicy(t, c, policy.Name))
	})
	if got, msg := kstatusOf(t, c, policy.Name); got != status.InProgressStatus {
		t.Fatalf("one of two nodes reported: %s (%s), want InProgress", got, msg)
	}

	// Ready: both have.
	engineB := enginefake.WithStaleImage(nodeB)
	startAgent(t, nodeB, engineB)
	waitKstatus(t, c, policy.Name, status.CurrentStatus)

	// Failing: node b's engine is down when the spec changes (1 of 2 nodes).
	engineB.SetDown(true)
	p := getPolicy(t, c, policy.Name)
	p.Spec.MinImageAge = dur("2h")
	if err := c.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	waitKstatus(t, c, policy.Name, status.FailedStatus)
	engineB.SetDown(false)
	waitKstatus(t, c, policy.Name, status.CurrentStatus)

	// Suspended: done, not waiting.
	p = getPolicy(t, c, policy.Name)
	p.Spec.Suspend = true
	if err := c.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	waitKstatus(t, c, policy.Name, status.CurrentStatus)

	// Invalid on the nodes (a selector key the CRD cannot check): Failed.
	invalid := spec
	invalid.NodeSelector = &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group), "bad key!": "x"}}
	bad := createPolicy(t, c, testenv.UniqueName("kstatus-invalid"), invalid)
	waitKstatus(t, c, bad.Name, status.FailedStatus)
}
