package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// fleetImage puts an image, tagged two days ago, in a fake runtime.
func fleetImage(f *runtimefake.Runtime, n int, tag string) string {
	old := time.Now().Add(-48 * time.Hour)
	id := fmt.Sprintf("sha256:%064x", n)
	f.AddImage(runtime.Image{ID: id, RepoTags: []string{tag}, Created: old, LastTagTime: old, Size: 1000})
	return id
}

func everything(group string) v1alpha1.ImageCleanupPolicySpec {
	return v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"**"},
		MinImageAge:  dur("0s"),
		Force:        true,
		StoppedContainers: v1alpha1.StoppedContainersPolicy{
			MinStoppedAge: dur("0s"), IncludeKubernetesManaged: true,
		},
		Interval: dur("1h"),
	}
}

// Issue 18: a pod bound to the node keeps the images it names before any
// container of them exists (an init container runs, a volume is not ready),
// whatever the policy; when the pod goes, so does the protection.
func TestPodsOnTheNodeKeepTheirImages(t *testing.T) {
	c := apiClient(t)
	node := testenv.UniqueName("node")
	group := testenv.UniqueName("group")
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
	f := runtimefake.New()
	app := fleetImage(f, 1, "ci.local/app:1")
	initImage := fleetImage(f, 2, "ci.local/init:1")
	loose := fleetImage(f, 3, "ci.local/loose:1")
	pod := bindPod(t, c, node, "ci.local/app:1") // its init container names ci.local/init:1
	startAgent(t, node, f)
	p := createPolicy(t, c, testenv.UniqueName("pods"), everything(group))
	eventually(t, "the sweep", func() (bool, string) {
		r := getReport(t, c, p.Name, node)
		return r != nil && r.Status.PolicyGeneration == p.Generation, "no report"
	})
	if f.HasImage(loose) || !f.HasImage(app) || !f.HasImage(initImage) {
		t.Fatalf("want the pod's images kept and the loose one gone: app %v, init %v, loose %v", f.HasImage(app), f.HasImage(initImage), f.HasImage(loose))
	}

	// The pod goes; the next sweep (a spec change) may take its images.
	// No kubelet here to finish a graceful deletion: at once.
	if err := c.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: pod}}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the agent's cache sees the deletion
	updateSpec(t, c, p.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.Interval = dur("2h") })
	eventually(t, "the images of a pod that is gone to go", func() (bool, string) {
		return !f.HasImage(app) && !f.HasImage(initImage), "still there"
	})
}

// A pod bound to the node while a sweep runs keeps the image it names from
// that sweep on (docs/policy.md, invariant 4): here it is bound just as the
// agent re-checks the image, after the image's stopped container went and
// before the image's removal. The plan could not know of it; the re-check
// must.
func TestAPodBoundMidSweepKeepsItsImage(t *testing.T) {
	c := apiClient(t)
	node := testenv.UniqueName("node")
	group := testenv.UniqueName("group")
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
	f := runtimefake.New()
	var others []string
	for i := range 20 {
		others = append(others, fleetImage(f, 100+i, fmt.Sprintf("ci.local/other:%d", i)))
	}
	app := fleetImage(f, 1, "ci.local/app:1")
	f.AddContainer(runtime.Container{ID: "app-job", Name: "app-job", ImageID: app, State: runtime.StateExited,
		FinishedAt: time.Now().Add(-48 * time.Hour)})
	var containerGone, bound atomic.Bool
	var pod string
	f.BeforeCall = func(method, arg string) {
		switch {
		case method == "RemoveContainer" && arg == "app-job":
			containerGone.Store(true)
		case method == "InspectImage" && arg == app && containerGone.Load() && !bound.Swap(true):
			// The re-check's read of the image: the pod is bound now, and
			// the agent's watch has a second to hear of it.
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: testenv.UniqueName("pod"), Namespace: "default"},
				Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Image: "ci.local/app:1"}}}}
			if err := c.Create(context.Background(), p); err != nil {
				t.Error(err)
			}
			pod = p.Name
			time.Sleep(time.Second)
		}
	}
	t.Cleanup(func() {
		if pod != "" {
			_ = c.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: pod}})
		}
	})
	startAgent(t, node, f)
	spec := everything(group)
	spec.Force = false
	p := createPolicy(t, c, testenv.UniqueName("bound"), spec)
	var r *v1alpha1.ImageCleanupReport
	eventually(t, "the sweep's report", func() (bool, string) {
		r = getReport(t, c, p.Name, node)
		return r != nil && r.Status.PolicyGeneration == p.Generation, "no report"
	})
	if !bound.Load() {
		t.Fatal("the agent never re-checked the image after removing its container: the test bound no pod")
	}
	if !f.HasImage(app) {
		t.Fatalf("the image of pod %s, bound to the node before its removal, was removed (report: %s: %s)", pod, r.Status.Phase, r.Status.Message)
	}
	if f.HasContainer("app-job") {
		t.Fatal("the image's stopped container, removed before the pod was bound, is still there")
	}
	for _, id := range others {
		if f.HasImage(id) {
			t.Fatalf("image %s, which no pod names, stayed", id)
		}
	}
}

// failingPods fails the agent's requests for pods while on is set, as an
// API server that refuses them (RBAC, an outage) would.
type failingPods struct {
	next http.RoundTripper
	on   *atomic.Bool
}

func (f failingPods) RoundTrip(req *http.Request) (*http.Response, error) {
	if f.on.Load() && strings.HasSuffix(req.URL.Path, "/pods") {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Header: http.Header{},
			Body: http.NoBody, Request: req}, nil
	}
	return f.next.RoundTrip(req)
}

// Issue 18: until the agent sees the pods bound to its node, it does not
// sweep, and its report says why; once it sees them, it sweeps.
func TestNoSweepWithoutThePods(t *testing.T) {
	c := apiClient(t)
	node := testenv.UniqueName("node")
	group := testenv.UniqueName("group")
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
	f := runtimefake.New()
	loose := fleetImage(f, 1, "ci.local/loose:1")
	var refuse atomic.Bool
	refuse.Store(true)
	startAgentOn(t, node, f, func(rt http.RoundTripper) http.RoundTripper { return failingPods{next: rt, on: &refuse} },
		func(o *controllers.AgentOptions) { o.PodsGrace = time.Second })
	p := createPolicy(t, c, testenv.UniqueName("blind"), everything(group))
	eventually(t, "a report that says the pods are not known", func() (bool, string) {
		r := getReport(t, c, p.Name, node)
		if r == nil {
			return false, "no report"
		}
		return r.Status.Phase == v1alpha1.PhaseFailed && r.Status.Reason == v1alpha1.ReportReasonPodsUnknown,
			string(r.Status.Phase) + "/" + r.Status.Reason + ": " + r.Status.Message
	})
	if !f.HasImage(loose) || f.Calls()["ListImages"] > 0 {
		t.Fatalf("the agent swept without knowing the pods: %v", f.Calls())
	}
	refuse.Store(false)
	eventually(t, "a sweep once the pods are known", func() (bool, string) {
		r := getReport(t, c, p.Name, node)
		return r != nil && r.Status.Phase == v1alpha1.PhaseSucceeded && !f.HasImage(loose), fmt.Sprintf("%+v", r.Status)
	})
}
