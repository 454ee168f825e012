package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"

	"testing"

	"github.com/imagecleanup/image-cleanup-operator/controllers/aggregator"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// kstatusOf computes what Flux, `kubectl wait`-style tools and cli-utils'
// appliers see: kstatus on the object as the API server serves it.
func kstatusOf(t *testing.T, u *unstructured.Unstructured) (status.Status, string) {
	t.Helper()
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status, res.Message
}

// served is the policy as the API server serves it.
func served(t *testing.T, c client.Client, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.SchemeGroupVersion.WithKind("ImageCleanupPolicy"))
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return u
}

// gitopsView is what a user of each tool sees: kstatus (Flux's default, and
// kubectl-style waiting), the shipped Flux healthCheckExprs and the shipped
// Argo CD health check.
type gitopsView struct {
	kstatus status.Status
	flux    string
	argo    string
}

func viewOf(t *testing.T, c client.Client, name string) (gitopsView, string) {
	t.Helper()
	u := served(t, c, name)
	k, msg := kstatusOf(t, u)
	argo, argoMsg := argoHealth(t, u.Object)
	return gitopsView{kstatus: k, flux: fluxHealth(t, u.Object), argo: argo}, msg + " | argo: " + argoMsg
}

func waitView(t *testing.T, c client.Client, name string, want gitopsView) {
	t.Helper()
	eventually(t, name+" to look "+fmt.Sprint(want), func() (bool, string) {
		got, msg := viewOf(t, c, name)
		return got == want, fmt.Sprintf("%+v: %s; status %s", got, msg, statusLine(getPolicy(t, c, name)))
	})
}

var (
	inProgress = gitopsView{kstatus: status.InProgressStatus, flux: "InProgress", argo: "Progressing"}
	current    = gitopsView{kstatus: status.CurrentStatus, flux: "Current", argo: "Healthy"}
	failed     = gitopsView{kstatus: status.FailedStatus, flux: "Failed", argo: "Degraded"}
	suspended  = gitopsView{kstatus: status.CurrentStatus, flux: "Current", argo: "Suspended"}
)

// TestKstatusSeesWhatAUserWould: for kstatus, the shipped Flux expressions
// and the shipped Argo CD health check, a new policy is in progress (not
// done before anything happened), then in progress while nodes have not
// reported, done when they all did, failed when nodes fail or find it
// invalid, and done (Suspended for Argo CD) when suspended.
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
	if got, msg := viewOf(t, c, policy.Name); got != inProgress {
		t.Fatalf("a new policy looks %+v (%s), want %+v", got, msg, inProgress)
	}

	// Progressing: one of two nodes has applied it.
	startAggregator(t)
	runtimeA := runtimefake.WithStaleImage(nodeA)
	startAgent(t, nodeA, runtimeA)
	eventually(t, "node a to report", func() (bool, string) {
		return getPolicy(t, c, policy.Name).Status.NodesReported == 1, statusLine(getPolicy(t, c, policy.Name))
	})
	if got, msg := viewOf(t, c, policy.Name); got != inProgress {
		t.Fatalf("one of two nodes reported: %+v (%s), want %+v", got, msg, inProgress)
	}

	// Ready: both have.
	runtimeB := runtimefake.WithStaleImage(nodeB)
	startAgent(t, nodeB, runtimeB)
	waitView(t, c, policy.Name, current)

	// Failing: node b's runtime is down when the spec changes (1 of 2 nodes).
	runtimeB.SetDown(true)
	updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.MinImageAge = dur("2h") })
	waitView(t, c, policy.Name, failed)
	runtimeB.SetDown(false)
	waitView(t, c, policy.Name, current)

	// Suspended: done, not waiting.
	updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.Suspend = true })
	waitView(t, c, policy.Name, suspended)

	// Invalid on the nodes (a selector key the CRD cannot check): Failed.
	invalid := spec
	invalid.NodeSelector = &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group), "bad key!": "x"}}
	bad := createPolicy(t, c, testenv.UniqueName("kstatus-invalid"), invalid)
	waitView(t, c, bad.Name, failed)
}

// Issue 18: a selected node where no agent runs (here: no agent pod on it)
// is named in the status and does not hold the policy back: kstatus, the
// Flux expressions and Argo CD all say done, and Ready's reason says why.
func TestNodesWithoutAnAgentAreNamedNotWaitedFor(t *testing.T) {
	c := apiClient(t)
	group := testenv.UniqueName("agentless")
	withAgent, without := testenv.UniqueName("node-agent"), testenv.UniqueName("node-none")
	labels := map[string]string{"imagecleanup.test/group": group}
	createNode(t, c, withAgent, labels)
	createNode(t, c, without, labels)
	podLabels := map[string]string{"app.kubernetes.io/component": "agent", "imagecleanup.test/group": group}
	agentPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: testenv.UniqueName("agent"), Namespace: leaseNamespace, Labels: podLabels},
		Spec:       corev1.PodSpec{NodeName: withAgent, Containers: []corev1.Container{{Name: "agent", Image: "imagecleanup/agent:test"}}},
	}
	if err := c.Create(context.Background(), agentPod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), agentPod, client.GracePeriodSeconds(0)) })
	agentPod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := c.Status().Update(context.Background(), agentPod); err != nil {
		t.Fatal(err)
	}
	startAggregatorWith(t, func(o *aggregator.Options) {
		o.Agents = &aggregator.AgentPods{Namespace: leaseNamespace, Selector: k8slabels.SelectorFromSet(podLabels)}
	})
	startAgent(t, withAgent, runtimefake.WithStaleImage(withAgent))
	policy := createPolicy(t, c, testenv.UniqueName("agentless"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"ci.local/**"},
		Interval:     dur("1m"),
	})
	waitView(t, c, policy.Name, current)
	p := getPolicy(t, c, policy.Name)
	ready := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
	if p.Status.NodesWithoutAgent != 1 || !slices.Equal(p.Status.AgentlessNodes, []string{without}) ||
		ready == nil || ready.Reason != v1alpha1.ReasonAppliedWhereAgentsRun || !strings.Contains(ready.Message, without) {
		t.Fatalf("status %s, Ready %+v", statusLine(p), ready)
	}
}
