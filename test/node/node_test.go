// Package node_test runs the product as users deploy it, on a real node:
// the install (test/node/overlay on config/default) applied with kubectl to
// the single-node cluster of hack/cluster.sh, whose kubelet runs pods through
// cri-dockerd on the node's own dockerd, or through the CRI of its own
// containerd (the tests of the install and of the kubelet's world run on
// both; hack/test.sh names them). The agent is a DaemonSet pod with
// its ServiceAccount's permissions only; these tests talk to it through
// kubectl, the API and the node's runtime, as an operator would.
package node_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

const (
	namespace  = "image-cleanup-system"
	agentSA    = "image-cleanup-agent"
	agentLabel = "app.kubernetes.io/component=agent"
)

// node is the test node and the handles to it.
type node struct {
	name, kubectl, kubeconfig, kubeletRoot, pauseImage, agentImage string
	rt                                                             nodeRuntime
	docker                                                         *client.Client // nil on a containerd node
	api                                                            ctrlclient.Client
}

func init() { logf.SetLogger(logr.Discard()) }

var (
	installOnce sync.Once
	installErr  error
)

// testNode returns the node with the product installed (once per run, with
// the commands the README gives), or skips (fails in CI) without a node.
func testNode(t *testing.T) *node {
	t.Helper()
	n := &node{
		name:        os.Getenv("TEST_CLUSTER_NODE"),
		kubectl:     os.Getenv("TEST_CLUSTER_KUBECTL"),
		kubeconfig:  os.Getenv("TEST_CLUSTER_KUBECONFIG"),
		kubeletRoot: os.Getenv("TEST_CLUSTER_KUBELET_ROOT"),
		pauseImage:  os.Getenv("TEST_CLUSTER_PAUSE_IMAGE"),
		agentImage:  os.Getenv("TEST_CLUSTER_AGENT_IMAGE"),
	}
	if n.name == "" || n.kubectl == "" || n.kubeconfig == "" {
		testenv.Unavailable(t, "no test node: TEST_CLUSTER_* are not set (hack/cluster.sh up)")
	}
	n.rt = nodeRuntimeFor(t)
	if d, ok := n.rt.(dockerNode); ok {
		n.docker = d.cli
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	if n.api, err = ctrlclient.New(cfg, ctrlclient.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	installOnce.Do(func() { installErr = n.install() })
	if installErr != nil {
		t.Fatalf("install: %v", installErr)
	}
	return n
}

// testDockerNode is testNode for a test that drives the node's Docker
// runtime itself; on a containerd node it is unavailable (a failure in CI:
// hack/test.sh runs only the tests of both runtimes there).
func testDockerNode(t *testing.T) *node {
	t.Helper()
	n := testNode(t)
	if n.docker == nil {
		testenv.Unavailable(t, "this test drives the node's Docker engine; the test node runs %s", runtimeName())
	}
	return n
}

// install is the README's "Install on a cluster", with this node's overlay
// and its locally built image.
func (n *node) install() error {
	kustomize := os.Getenv("KUSTOMIZE")
	if kustomize == "" {
		return fmt.Errorf("KUSTOMIZE is not set (make test sets it)")
	}
	deploy := exec.Command("make", "-s", "deploy", "DEPLOY_DIR=test/node/overlay", "IMG="+n.agentImage,
		"KUSTOMIZE="+kustomize, "KUBECTL="+n.kubectl+" --kubeconfig "+n.kubeconfig)
	deploy.Dir = testenv.RepoRoot()
	if out, err := deploy.CombinedOutput(); err != nil {
		return fmt.Errorf("make deploy: %w\n%s", err, out)
	}
	for _, args := range [][]string{
		{"-n", namespace, "rollout", "status", "daemonset/image-cleanup-agent", "--timeout=3m"},
		{"-n", namespace, "rollout", "status", "deployment/image-cleanup-aggregator", "--timeout=3m"},
	} {
		if _, err := n.run(nil, args...); err != nil {
			return fmt.Errorf("%w\n%s", err, n.diagnose())
		}
	}
	return nil
}

// diagnose says why the install is not ready: the namespace's pods and
// events, and the agent's logs (this run's and the previous container's).
func (n *node) diagnose() string {
	var b strings.Builder
	for _, args := range [][]string{
		{"-n", namespace, "get", "pods", "-o", "wide"},
		{"-n", namespace, "describe", "pods"},
		{"-n", namespace, "logs", "-l", agentLabel, "--tail=40", "--all-containers"},
		{"-n", namespace, "logs", "-l", agentLabel, "--tail=40", "--all-containers", "--previous"},
	} {
		out, err := n.run(nil, args...)
		fmt.Fprintf(&b, "$ kubectl %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
		}
	}
	return b.String()
}

// run runs kubectl as the cluster's admin.
func (n *node) run(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(n.kubectl, append([]string{"--kubeconfig", n.kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func (n *node) kubectlOK(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := n.run([]byte(stdin), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyPolicy applies a policy with kubectl and deletes it when the test ends.
func (n *node) applyPolicy(t *testing.T, name, spec string) {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: imagecleanup.io/v1alpha1\nkind: ImageCleanupPolicy\nmetadata:\n  name: %s\nspec:\n%s", name, indent(spec))
	n.kubectlOK(t, doc, "apply", "-f", "-")
	t.Cleanup(func() { _, _ = n.run(nil, "delete", "icp", name, "--ignore-not-found", "--wait=true") })
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// eventually polls cond until it holds or the timeout passes; cond says
// what it saw, for the failure message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last seen: %s", what, timeout, saw)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// sweptReport waits for the node's report of the policy's current generation.
func (n *node) sweptReport(t *testing.T, policy string) *v1alpha1.ImageCleanupReport {
	t.Helper()
	report := &v1alpha1.ImageCleanupReport{}
	eventually(t, 2*time.Minute, "report of "+policy, func() (bool, string) {
		p := &v1alpha1.ImageCleanupPolicy{}
		if err := n.api.Get(context.Background(), ctrlclient.ObjectKey{Name: policy}, p); err != nil {
			return false, err.Error()
		}
		err := n.api.Get(context.Background(), ctrlclient.ObjectKey{Name: v1alpha1.ReportName(policy, n.name)}, report)
		if err != nil {
			return false, err.Error()
		}
		return report.Status.PolicyGeneration == p.Generation && report.Status.Phase != "", fmt.Sprintf("%+v", report.Status)
	})
	return report
}

func (n *node) agentPod(t *testing.T) *corev1.Pod {
	t.Helper()
	pods := &corev1.PodList{}
	sel := ctrlclient.MatchingLabels{"app.kubernetes.io/component": "agent"}
	if err := n.api.List(context.Background(), pods, ctrlclient.InNamespace(namespace), sel); err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			return &pods.Items[i]
		}
	}
	t.Fatalf("no agent pod in %s", namespace)
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podToken is the agent pod's own token, as the kubelet projected it.
func (n *node) podToken(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(n.kubeletRoot, "pods", string(pod.UID), "volumes", "kubernetes.io~projected", "*", "token"))
	if err != nil || len(files) != 1 {
		t.Fatalf("the agent pod's token in the kubelet's folder: %v %v", files, err)
	}
	token, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(token))
}

// asPod runs kubectl with the agent pod's own token instead of the admin's.
func (n *node) asPod(t *testing.T, pod *corev1.Pod, stdin string, args ...string) (string, error) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(n.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cluster := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	base := []string{"--kubeconfig", os.DevNull, "--server", cluster.Server,
		"--certificate-authority", cluster.CertificateAuthority, "--token", n.podToken(t, pod)}
	cmd := exec.Command(n.kubectl, append(base, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestAgentPodIsReadyWithItsOwnIdentity(t *testing.T) {
	n := testNode(t)
	eventually(t, time.Minute, "agent pod Ready", func() (bool, string) {
		p := n.agentPod(t)
		return podReady(p), fmt.Sprintf("%s %v", p.Status.Phase, p.Status.Conditions)
	})
	pod := n.agentPod(t)
	if pod.Spec.NodeName != n.name {
		t.Errorf("agent pod on %q, want %q", pod.Spec.NodeName, n.name)
	}
	if pod.Spec.ServiceAccountName != agentSA {
		t.Errorf("serviceAccountName %q, want %q", pod.Spec.ServiceAccountName, agentSA)
	}
	// No credentials but the ServiceAccount's: no secrets, no kubeconfig.
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			t.Errorf("volume %s mounts secret %s", v.Name, v.Secret.SecretName)
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "KUBECONFIG" {
				t.Errorf("container %s has KUBECONFIG", c.Name)
			}
		}
	}
	// kubectl logs reaches the kubelet (the API server prefers its InternalIP).
	if logs := n.kubectlOK(t, "", "-n", namespace, "logs", pod.Name); !strings.Contains(logs, "starting agent") {
		t.Errorf("kubectl logs of the agent has no start line:\n%s", logs)
	}
	who, err := n.asPod(t, pod, "", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.extra.authentication\\.kubernetes\\.io/node-name[0]}")
	if err != nil || who != "system:serviceaccount:"+namespace+":"+agentSA+" "+n.name {
		t.Errorf("the pod's token is %q (%v), want the agent's ServiceAccount bound to node %s", who, err, n.name)
	}
	// What it may and may not do, asked with its own token.
	for _, tc := range []struct {
		verb, resource string
		want           string
	}{
		{"list", "imagecleanuppolicies.imagecleanup.io", "yes"},
		{"patch", "imagecleanupreports.imagecleanup.io", "yes"},
		{"create", "events.events.k8s.io", "yes"},
		{"get", "nodes/" + n.name, "yes"},
		{"patch", "imagecleanuppolicies.imagecleanup.io --subresource=status", "no"},
		{"list", "pods", "yes"}, // its node's, by field selector: the kubelet's images stay
		{"create", "pods", "no"},
		{"delete", "pods", "no"},
		{"get", "secrets", "no"},
		{"create", "leases.coordination.k8s.io", "no"},
	} {
		args := append([]string{"auth", "can-i", tc.verb}, strings.Fields(tc.resource)...)
		out, _ := n.asPod(t, pod, "", append(args, "--all-namespaces")...)
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("agent can-i %s %s = %q, want %q", tc.verb, tc.resource, got, tc.want)
		}
	}
}

// TestAggregatorElectionIsRecorded: the aggregator's leader election records
// its event with the aggregator's own rights (the RBAC gap the issue found
// with kubectl auth can-i).
func TestAggregatorElectionIsRecorded(t *testing.T) {
	n := testNode(t)
	eventually(t, time.Minute, "a LeaderElection event", func() (bool, string) {
		out, err := n.run(nil, "-n", namespace, "get", "events", "--field-selector", "reason=LeaderElection", "-o", "name")
		return err == nil && strings.TrimSpace(out) != "", out + fmt.Sprint(err)
	})
	out, _ := n.run(nil, "auth", "can-i", "create", "events", "-n", namespace, "--as=system:serviceaccount:"+namespace+":image-cleanup-aggregator")
	if strings.TrimSpace(out) != "yes" {
		t.Errorf("the aggregator may not create events in %s: %q", namespace, out)
	}
}

func TestPolicyAppliedWithKubectlCleansTheNode(t *testing.T) {
	n := testDockerNode(t)
	app1 := testenv.ImportImage(t, n.docker, "e2e.test/app:1")
	app2 := testenv.ImportImage(t, n.docker, "e2e.test/app:2")
	other := testenv.ImportImage(t, n.docker, "e2e.test/other:1")
	c1 := testenv.CreateContainer(t, n.docker, app1, testenv.ContainerOptions{Run: "exit"})
	c2 := testenv.CreateContainer(t, n.docker, app2, testenv.ContainerOptions{})
	c3 := testenv.CreateContainer(t, n.docker, app1, testenv.ContainerOptions{Run: "exit"})

	n.applyPolicy(t, "e2e-app", `images: ["e2e.test/app:*"]
minImageAge: 0s
stoppedContainers:
  minStoppedAge: 0s
`)
	report := n.sweptReport(t, "e2e-app")
	if report.Status.Phase != v1alpha1.PhaseSucceeded || report.Status.ImagesRemoved != 2 || report.Status.ContainersRemoved != 3 {
		t.Errorf("report %+v, want Succeeded, 2 images and 3 containers removed", report.Status)
	}
	for _, id := range []string{app1, app2} {
		if testenv.ImageExists(t, n.docker, id) {
			t.Errorf("image %s is still on the node", id)
		}
	}
	for _, id := range []string{c1, c2, c3} {
		if testenv.ContainerExists(t, n.docker, id) {
			t.Errorf("container %s is still on the node", id)
		}
	}
	if !testenv.ImageExists(t, n.docker, other) {
		t.Error("e2e.test/other:1, which the policy does not select, is gone")
	}
	// What an operator sees.
	eventually(t, time.Minute, "kubectl get icp", func() (bool, string) {
		out, err := n.run(nil, "get", "icp", "e2e-app", "--no-headers", "-o", "custom-columns=READY:.status.conditions[?(@.type=='Ready')].status,IMAGES:.status.imagesRemoved")
		return err == nil && strings.HasPrefix(out, "True"), out + fmt.Sprint(err)
	})
	table := n.kubectlOK(t, "", "get", "icp,icr")
	for _, want := range []string{"e2e-app", "e2e-app." + n.name, "Succeeded"} {
		if !strings.Contains(table, want) {
			t.Errorf("kubectl get icp,icr has no %q:\n%s", want, table)
		}
	}
	t.Logf("kubectl get icp,icr:\n%s", table)
	// The removal is told on the policy, with the aggregator's own rights.
	eventually(t, time.Minute, "a Removed event on the policy", func() (bool, string) {
		out, err := n.run(nil, "get", "events", "-n", "default", "--field-selector", "involvedObject.name=e2e-app,reason=Removed", "-o", "name")
		return err == nil && strings.TrimSpace(out) != "", out + fmt.Sprint(err)
	})
}

func (n *node) createPod(t *testing.T, name, image string, args []string, restart corev1.RestartPolicy) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{Name: "main", Image: image, ImagePullPolicy: corev1.PullNever,
				Command: append([]string{"/sleeper"}, args...)}},
		},
	}
	if err := n.api.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	// Gone before the test's images are removed (cleanups run last first).
	t.Cleanup(func() {
		_ = n.api.Delete(context.Background(), pod)
		eventually(t, time.Minute, "pod "+name+" gone", func() (bool, string) {
			err := n.api.Get(context.Background(), ctrlclient.ObjectKeyFromObject(pod), &corev1.Pod{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
	})
}

func (n *node) waitPodPhase(t *testing.T, name string, phase corev1.PodPhase) {
	t.Helper()
	eventually(t, 2*time.Minute, "pod "+name+" "+string(phase), func() (bool, string) {
		p := &corev1.Pod{}
		if err := n.api.Get(context.Background(), ctrlclient.ObjectKey{Namespace: "default", Name: name}, p); err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == phase, string(p.Status.Phase)
	})
}

// TestKubeletsOwnWorldIsLeftAlone, on either runtime: a policy that takes
// everything, with force, leaves every sandbox and kubelet container, the
// pause image, the running and the completed pods' images and the agent's
// own image; a loose image goes, which proves the policy acted.
func TestKubeletsOwnWorldIsLeftAlone(t *testing.T) {
	n := testNode(t)
	runningRef, running := n.rt.image(t, "e2e.test/running:1")
	doneRef, done := n.rt.image(t, "e2e.test/done:1")
	_, loose := n.rt.image(t, "e2e.test/loose:1")
	// A stopped container outside the kubelet, on Docker; on a CRI node
	// every container is the kubelet's (it removes those of pods it does
	// not know).
	var looseCtr string
	if n.docker != nil {
		looseCtr = testenv.CreateContainer(t, n.docker, loose, testenv.ContainerOptions{Run: "exit"})
	}
	n.createPod(t, "e2e-running", runningRef, []string{"sleep"}, corev1.RestartPolicyAlways)
	n.createPod(t, "e2e-done", doneRef, nil, corev1.RestartPolicyNever)
	n.waitPodPhase(t, "e2e-running", corev1.PodRunning)
	n.waitPodPhase(t, "e2e-done", corev1.PodSucceeded)
	before := n.rt.kubeletContainers(t)

	n.applyPolicy(t, "e2e-everything", `images: ["**"]
force: true
dangling: true
minImageAge: 0s
stoppedContainers:
  minStoppedAge: 0s
`)
	report := n.sweptReport(t, "e2e-everything")
	t.Logf("report: phase %s, removed %v, blocked %+v", report.Status.Phase, report.Status.RemovedImages, report.Status.Blocked)

	if n.rt.hasImage(t, loose) || (looseCtr != "" && testenv.ContainerExists(t, n.docker, looseCtr)) {
		t.Error("the policy left e2e.test/loose:1 or its stopped container: it did not act at all")
	}
	for what, ref := range map[string]string{"running pod's image": running, "completed pod's image": done,
		"pause image": n.pauseImage, "agent's image": n.agentImage} {
		if !n.rt.hasImage(t, ref) {
			t.Errorf("the %s (%s) is gone", what, ref)
		}
	}
	after := n.rt.kubeletContainers(t)
	for id, what := range before {
		if _, ok := after[id]; !ok {
			t.Errorf("kubelet container %s (%s) is gone", id[:12], what)
		}
	}
	blocked := map[string]string{}
	for _, b := range report.Status.Blocked {
		blocked[b.Image] = b.Reason
	}
	if blocked[runningRef] != "RunningContainer" || blocked[doneRef] != "KubernetesManaged" {
		t.Errorf("blocked %v: want %s RunningContainer and %s KubernetesManaged", blocked, runningRef, doneRef)
	}
}

func TestAgentPodDeletedMidSweep(t *testing.T) {
	n := testDockerNode(t)
	const count = 300
	ids, ctrs := make([]string, count), make([]string, count)
	// Seeded four at a time; the helpers that fail the test belong to its
	// own goroutine, so these return errors.
	s := &seed.Docker{Client: n.docker}
	var g errgroup.Group
	g.SetLimit(4)
	for i := range ids {
		g.Go(func() (err error) {
			if ids[i], err = s.Image(context.Background(), fmt.Sprintf("e2e.test/many:%d", i)); err != nil {
				return err
			}
			ctrs[i], err = s.Container(context.Background(), ids[i], seed.Created, seed.ContainerOptions{})
			return err
		})
	}
	t.Cleanup(func() { // what the policy left, if the test failed
		for i := range ids {
			if ctrs[i] != "" {
				_, _ = n.docker.ContainerRemove(context.Background(), ctrs[i], client.ContainerRemoveOptions{Force: true})
			}
			if ids[i] != "" {
				testenv.RemoveImage(n.docker, ids[i])
			}
		}
	})
	if err := g.Wait(); err != nil {
		t.Fatalf("seeding: %v", err)
	}
	// One listing a poll (300 inspects took longer than the sweep on a busy
	// machine); an image the runtime is deleting still counts.
	remaining := func() int {
		listRes, err := n.docker.ImageList(context.Background(), client.ImageListOptions{All: true})
		list := listRes.Items
		if err != nil {
			return count // cannot tell: not fewer
		}
		left := 0
		for _, img := range list {
			if slices.Contains(ids, img.ID) {
				left++
			}
		}
		return left
	}
	old := n.agentPod(t)

	n.applyPolicy(t, "e2e-many", `images: ["e2e.test/many:*"]
minImageAge: 0s
stoppedContainers:
  minStoppedAge: 0s
`)
	// Delete the agent's pod as soon as the sweep has begun.
	var atDelete int
	eventually(t, time.Minute, "the sweep begins", func() (bool, string) {
		atDelete = remaining()
		return atDelete < count, fmt.Sprint(atDelete, " left")
	})
	n.kubectlOK(t, "", "-n", namespace, "delete", "pod", old.Name, "--wait=false")
	if atDelete == 0 {
		t.Fatalf("the sweep ended before the pod could be deleted: make it longer than %d images", count)
	}
	eventually(t, 2*time.Minute, "the old agent pod is gone", func() (bool, string) {
		err := n.api.Get(context.Background(), ctrlclient.ObjectKeyFromObject(old), &corev1.Pod{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	t.Logf("deleted the agent pod with %d of %d images left; %d left when it was gone", atDelete, count, remaining())
	eventually(t, 2*time.Minute, "a new agent pod Ready", func() (bool, string) {
		p := n.agentPod(t)
		return p.UID != old.UID && podReady(p), p.Name
	})
	eventually(t, 2*time.Minute, "every image gone", func() (bool, string) {
		left := remaining()
		return left == 0, fmt.Sprint(left, " left")
	})
	report := n.sweptReport(t, "e2e-many")
	eventually(t, time.Minute, "a report of a whole sweep", func() (bool, string) {
		report = n.sweptReport(t, "e2e-many")
		st := report.Status
		return st.Phase == v1alpha1.PhaseSucceeded && len(st.Errors) == 0 && st.BlockedCount == 0, fmt.Sprintf("%+v", st)
	})
	if report.Status.Totals.ImagesRemoved > count {
		t.Errorf("totals count %d images removed, only %d existed", report.Status.Totals.ImagesRemoved, count)
	}
	left, err := n.docker.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("ancestor", "e2e.test/many:0")})
	if err != nil || len(left.Items) != 0 {
		t.Errorf("containers of the swept images left: %d (%v)", len(left.Items), err)
	}
}

func TestNodeRelabelledOutOfTheSelectorLosesItsReport(t *testing.T) {
	n := testNode(t)
	label := "e2e.imagecleanup.io/clean"
	n.kubectlOK(t, "", "label", "node", n.name, label+"=yes", "--overwrite")
	t.Cleanup(func() { _, _ = n.run(nil, "label", "node", n.name, label+"-") })
	n.applyPolicy(t, "e2e-selected", `nodeSelector:
  matchLabels:
    e2e.imagecleanup.io/clean: "yes"
images: ["e2e.test/nothing:*"]
`)
	n.sweptReport(t, "e2e-selected")
	n.kubectlOK(t, "", "label", "node", n.name, label+"-")
	eventually(t, time.Minute, "the report goes", func() (bool, string) {
		err := n.api.Get(context.Background(), ctrlclient.ObjectKey{Name: v1alpha1.ReportName("e2e-selected", n.name)}, &v1alpha1.ImageCleanupReport{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

func TestAgentTokenWritesOnlyItsOwnNodesReports(t *testing.T) {
	n := testNode(t)
	pod := n.agentPod(t)
	// A second Node (no kubelet behind it) keeps the aggregator from deleting
	// its report as a gone node's.
	other := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "e2e-other-node"}}
	if err := n.api.Create(context.Background(), other); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.api.Delete(context.Background(), other) })
	n.applyPolicy(t, "e2e-forged", `images: ["e2e.test/nothing:*"]`)
	mine := n.sweptReport(t, "e2e-forged").Name
	report := func(name, node, nodeLabel string) string {
		return fmt.Sprintf(`apiVersion: imagecleanup.io/v1alpha1
kind: ImageCleanupReport
metadata:
  name: %s
  labels: {imagecleanup.io/policy: e2e-forged, imagecleanup.io/node: %s}
spec: {policyName: e2e-forged, nodeName: %s}
`, name, nodeLabel, node)
	}
	theirs := v1alpha1.ReportName("e2e-forged", other.Name)
	for name, doc := range map[string]string{
		"another node's report":                        report(theirs, other.Name, other.Name),
		"its name on another node's report":            report(v1alpha1.ReportName("e2e-x", n.name), other.Name, n.name),
		"another node's label on its own report":       report(v1alpha1.ReportName("e2e-x", n.name), n.name, other.Name),
		"its own node under another node's name":       report(v1alpha1.ReportName("e2e-x", other.Name), n.name, n.name),
		"another node's dotted name with its own node": report(v1alpha1.ReportName("e2e-x", "other.node"), n.name, n.name),
	} {
		out, err := n.asPod(t, pod, doc, "create", "-f", "-")
		if err == nil || !strings.Contains(out, "denied request: a node may write only its own reports") {
			t.Errorf("%s: created, or refused for another reason (%v): %s", name, err, out)
		}
	}
	// Another node's report, written by the admin, can be neither changed nor erased.
	n.kubectlOK(t, report(theirs, other.Name, other.Name), "create", "-f", "-")
	for _, args := range [][]string{{"delete", "icr", theirs}, {"label", "icr", theirs, "e2e=forged"}} {
		if out, err := n.asPod(t, pod, "", args...); err == nil || !strings.Contains(out, "denied request: a node may change only its own reports") {
			t.Errorf("the agent's %s of another node's report: %v: %s", args[0], err, out)
		}
	}
	// Its own: allowed.
	for _, args := range [][]string{{"label", "icr", mine, "e2e=own"}, {"delete", "icr", mine}} {
		if out, err := n.asPod(t, pod, "", args...); err != nil {
			t.Errorf("the agent's %s of its own report: %v: %s", args[0], err, out)
		}
	}
}

// TestViewAndEditUsersGetPoliciesByAggregation: the install adds policies
// and reports to the built-in view and edit roles (the controller-manager
// aggregates them); reports stay the agents' to write.
func TestViewAndEditUsersGetPoliciesByAggregation(t *testing.T) {
	n := testNode(t)
	for user, role := range map[string]string{"e2e-viewer": "view", "e2e-editor": "edit"} {
		binding := "e2e-" + role
		n.kubectlOK(t, "", "create", "clusterrolebinding", binding, "--clusterrole="+role, "--user="+user)
		t.Cleanup(func() { _, _ = n.run(nil, "delete", "clusterrolebinding", binding) })
	}
	for _, tc := range []struct {
		user, verb, resource, want string
	}{
		{"e2e-viewer", "list", "imagecleanuppolicies.imagecleanup.io", "yes"},
		{"e2e-viewer", "get", "imagecleanupreports.imagecleanup.io", "yes"},
		{"e2e-viewer", "create", "imagecleanuppolicies.imagecleanup.io", "no"},
		{"e2e-editor", "create", "imagecleanuppolicies.imagecleanup.io", "yes"},
		{"e2e-editor", "delete", "imagecleanuppolicies.imagecleanup.io", "yes"},
		{"e2e-editor", "list", "imagecleanupreports.imagecleanup.io", "yes"},
		{"e2e-editor", "delete", "imagecleanupreports.imagecleanup.io", "no"},
		{"e2e-editor", "patch", "imagecleanuppolicies.imagecleanup.io --subresource=status", "no"},
	} {
		eventually(t, 30*time.Second, tc.user+" "+tc.verb+" "+tc.resource, func() (bool, string) {
			args := append([]string{"auth", "can-i", tc.verb}, strings.Fields(tc.resource)...)
			out, _ := n.run(nil, append(args, "--as="+tc.user)...)
			return strings.TrimSpace(out) == tc.want, out
		})
	}
}

// TestHelmInstallRunsOnTheNode replaces the install with the Helm chart, in
// a namespace of its own, as a Helm user has it: the previous chart version
// (test/node/testdata/chart-0.1.0, whose CRDs were in crds/ and lacked the
// preview's fields) installed into a namespace that README has you create,
// a dry-run policy through it, then helm upgrade to this chart, which must
// bring the new CRD fields to the cluster, keep the policy and, enabled,
// clean the node and report its decisions; helm
// uninstall leaves the CRDs and the policy. It runs last (it takes the
// kustomize install away, CRDs included).
func TestHelmInstallRunsOnTheNode(t *testing.T) {
	n := testDockerNode(t)
	helm := os.Getenv("HELM")
	if helm == "" {
		testenv.Unavailable(t, "HELM is not set (make test installs helm into bin/)")
	}
	undeploy := exec.Command("make", "-s", "undeploy", "DEPLOY_DIR=test/node/overlay", "IMG="+n.agentImage,
		"KUSTOMIZE="+os.Getenv("KUSTOMIZE"), "KUBECTL="+n.kubectl+" --kubeconfig "+n.kubeconfig)
	undeploy.Dir = testenv.RepoRoot()
	if out, err := undeploy.CombinedOutput(); err != nil {
		t.Fatalf("make undeploy: %v\n%s", err, out)
	}
	// A cluster that never had the kustomize install: the previous chart
	// brings its own CRDs.
	crds := []string{"crd", "imagecleanuppolicies.imagecleanup.io", "imagecleanupreports.imagecleanup.io"}
	n.kubectlOK(t, "", append(append([]string{"delete", "--wait"}, crds...), "--ignore-not-found")...)

	// As README says: the namespace first, labelled for the agent's hostPath
	// volumes (Helm keeps its release in it, so it must exist), then the chart.
	const ns = "image-cleanup-helm"
	n.kubectlOK(t, "", "create", "namespace", ns)
	t.Cleanup(func() { _, _ = n.run(nil, "delete", "namespace", ns, "--wait=false") })
	n.kubectlOK(t, "", "label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged")
	helmOK := func(verb, chart string, values ...string) {
		t.Helper()
		repo, tag, _ := strings.Cut(n.agentImage, ":")
		cmd := exec.Command(helm, append([]string{verb, "ico", chart,
			"--kubeconfig", n.kubeconfig, "--namespace", ns, "--wait", "--timeout", "3m",
			"--set", "image.repository=" + repo, "--set", "image.tag=" + tag, "--set", "image.pullPolicy=Never",
			// The test node's paths and API server address, as test/node/overlay has them.
			"--set", "agent.hostRun=/tmp/imagecleanup-node/engine",
			"--set", "agent.dataRoot=/tmp/imagecleanup-node/engine/data",
			"--set", "agent.containerdRoot=/tmp/imagecleanup-node/containerd",
			"--set", "agent.stateDir=/tmp/imagecleanup-node/agent-state",
			"--set-string", "agent.extraEnv[0].name=KUBERNETES_SERVICE_HOST,agent.extraEnv[0].value=10.244.0.1",
			"--set-string", "agent.extraEnv[1].name=KUBERNETES_SERVICE_PORT,agent.extraEnv[1].value=6443",
			"--set-string", "aggregator.extraEnv[0].name=KUBERNETES_SERVICE_HOST,aggregator.extraEnv[0].value=10.244.0.1",
			"--set-string", "aggregator.extraEnv[1].name=KUBERNETES_SERVICE_PORT,aggregator.extraEnv[1].value=6443"}, values...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %s %s: %v\n%s", verb, chart, err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command(helm, "uninstall", "ico", "--kubeconfig", n.kubeconfig, "--namespace", ns, "--wait").Run()
	})
	helmOK("install", filepath.Join(testenv.RepoRoot(), "test", "node", "testdata", "chart-0.1.0"))
	reportSchema := func() string {
		return n.kubectlOK(t, "", "get", "crd", "imagecleanupreports.imagecleanup.io",
			"-o", "jsonpath={.spec.versions[0].schema.openAPIV3Schema.properties.status.properties}")
	}
	if strings.Contains(reportSchema(), `"decisions"`) {
		t.Fatal("the previous chart's report CRD already has status.decisions: the upgrade below would prove nothing")
	}

	// A policy made under the previous release. Its agent runs this tree's
	// image, there being no other here, and this tree's agent writes
	// status.countedThrough on every report, which the previous CRD does not
	// declare: the API server refuses the whole report, as the chart's
	// README warns (CRDs before the workloads; helm upgrade applies them
	// first). The agent says so, naming the field, and writes nothing else.
	const spec = `images: ["e2e.test/helm:*"]
minImageAge: 0s
stoppedContainers:
  minStoppedAge: 0s
`
	n.applyPolicy(t, "e2e-helm", "dryRun: true\n"+spec)
	eventually(t, 2*time.Minute, "the agent under the previous CRD naming the field it may not write", func() (bool, string) {
		out, err := n.run(nil, "-n", ns, "logs", "-l", "app.kubernetes.io/component=agent", "--tail=-1")
		return err == nil && strings.Contains(out, "countedThrough") && strings.Contains(out, "not declared in schema"), lastLines(out, 5) + fmt.Sprint(err)
	})
	if out := n.kubectlOK(t, "", "get", "imagecleanupreports", "-o", "name"); strings.Contains(out, "e2e-helm") {
		t.Fatalf("a report was written under a CRD that does not declare its fields: %s", out)
	}

	// The upgrade, as the chart's README says: the CRDs Helm installed from
	// the previous chart's crds/ belong to no release; the release adopts
	// them, and helm upgrade brings the new schema.
	n.kubectlOK(t, "", append(append([]string{"annotate", "--overwrite"}, crds...), "meta.helm.sh/release-name=ico", "meta.helm.sh/release-namespace="+ns)...)
	n.kubectlOK(t, "", append(append([]string{"label", "--overwrite"}, crds...), "app.kubernetes.io/managed-by=Helm")...)
	// This chart also mounts CRI-O's storage (0.1.0 has no such value):
	// the test node's, not the host's.
	helmOK("upgrade", filepath.Join(testenv.RepoRoot(), "charts", "image-cleanup-operator"),
		"--set", "agent.containersStorage=/tmp/imagecleanup-node/engine/crio/storage")
	if !strings.Contains(reportSchema(), `"decisions"`) {
		t.Fatalf("helm upgrade left the report CRD without status.decisions: %s", reportSchema())
	}
	n.kubectlOK(t, "", "get", "icp", "e2e-helm")

	// The policy made under the old CRD, now enabled, runs through the new
	// release; its report carries the new field.
	img := testenv.ImportImage(t, n.docker, "e2e.test/helm:1")
	ctr := testenv.CreateContainer(t, n.docker, img, testenv.ContainerOptions{Run: "exit"})
	n.applyPolicy(t, "e2e-helm", "dryRun: false\n"+spec)
	report := n.sweptReport(t, "e2e-helm")
	if report.Status.Phase != v1alpha1.PhaseSucceeded || testenv.ImageExists(t, n.docker, img) || testenv.ContainerExists(t, n.docker, ctr) {
		t.Errorf("the upgraded chart's agent did not clean: report %+v", report.Status)
	}
	if !slices.ContainsFunc(report.Status.Decisions, func(d v1alpha1.DecisionCount) bool { return d.Reason == v1alpha1.DecisionRemoved && d.Images == 1 }) {
		t.Errorf("after the upgrade the report's decisions are %+v, want one image Removed", report.Status.Decisions)
	}
	eventually(t, time.Minute, "the policy Ready through the chart's aggregator", func() (bool, string) {
		out, err := n.run(nil, "get", "icp", "e2e-helm", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
		return err == nil && out == "True", out + fmt.Sprint(err)
	})

	// helm uninstall takes the agent and the aggregator, and leaves the
	// CRDs (crds.keep) and with them the policy.
	if out, err := exec.Command(helm, "uninstall", "ico", "--kubeconfig", n.kubeconfig, "--namespace", ns, "--wait").CombinedOutput(); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	n.kubectlOK(t, "", append([]string{"get"}, crds...)...)
	n.kubectlOK(t, "", "get", "icp", "e2e-helm")
	if out, _ := n.run(nil, "-n", ns, "get", "daemonset,deployment", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("helm uninstall left %s", out)
	}
}

// lastLines is the last n lines of out, for a failure message.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
