package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// sleeper is a container of a test image running the sleeper with args.
func sleeper(name, image string, args ...string) corev1.Container {
	return corev1.Container{Name: name, Image: image, ImagePullPolicy: corev1.PullNever, Command: append([]string{"/sleeper"}, args...)}
}

// createPodSpec creates a pod in default and deletes it when the test ends.
func (n *node) createPodSpec(t *testing.T, name string, spec corev1.PodSpec) {
	t.Helper()
	spec.TerminationGracePeriodSeconds = new(int64)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: spec}
	if err := n.api.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.deletePod(t, name) })
}

func (n *node) deletePod(t *testing.T, name string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	_ = n.api.Delete(context.Background(), pod)
	eventually(t, time.Minute, "pod "+name+" gone", func() (bool, string) {
		err := n.api.Get(context.Background(), ctrlclient.ObjectKeyFromObject(pod), &corev1.Pod{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// waitPod waits until the pod (in namespace default) satisfies cond.
func (n *node) waitPod(t *testing.T, name, what string, cond func(*corev1.Pod) bool) {
	t.Helper()
	eventually(t, 2*time.Minute, "pod "+name+" "+what, func() (bool, string) {
		p := &corev1.Pod{}
		if err := n.api.Get(context.Background(), ctrlclient.ObjectKey{Namespace: "default", Name: name}, p); err != nil {
			return false, err.Error()
		}
		return cond(p), fmt.Sprintf("%s %+v %+v", p.Status.Phase, p.Status.InitContainerStatuses, p.Status.ContainerStatuses)
	})
}

func initRunning(p *corev1.Pod) bool {
	return len(p.Status.InitContainerStatuses) > 0 && p.Status.InitContainerStatuses[0].State.Running != nil
}

// crashLooping: the container has crashed and been restarted, and is not
// running now. The kubelet shows the wait between restarts as Waiting
// "CrashLoopBackOff" only once its pod worker has synced the pod during
// the back-off; on a loaded machine it can report the last exit
// (Terminated) for the whole wait, restart after restart (seen in CI on
// containerd: four restarts in two minutes, never Waiting). Either state
// is a pod between two restarts.
func crashLooping(p *corev1.Pod) bool {
	if len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	s := p.Status.ContainerStatuses[0]
	return s.RestartCount >= 1 && s.State.Running == nil &&
		(s.State.Terminated != nil || s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff")
}

// Issue 18, on a real kubelet (this file sorts before node_test.go, whose
// last test replaces the install with the Helm chart's): a policy that takes everything, with force
// and the kubelet's containers included, sweeps while a pod runs its init
// container, while another waits between two restarts of a crashing
// container, and while a static pod runs its init container. Their images
// (imagePullPolicy Never: a removed one never comes back) stay, and the
// pods start afterwards; a loose image goes, which proves the policy acted.
// A pod deleted releases its images.
func TestPodsBoundToTheNodeKeepTheirImages(t *testing.T) {
	n := testNode(t)
	staticDir := os.Getenv("TEST_CLUSTER_STATIC_PODS")
	if staticDir == "" {
		testenv.Unavailable(t, "the test node has no static pod folder (TEST_CLUSTER_STATIC_PODS)")
	}
	lateRef, late := n.rt.image(t, "e2e.test/late:1")
	initRef, _ := n.rt.image(t, "e2e.test/init:1")
	crashRef, crash := n.rt.image(t, "e2e.test/crash:1")
	staticRef, static := n.rt.image(t, "e2e.test/static:1")
	staticInitRef, _ := n.rt.image(t, "e2e.test/static-init:1")
	_, loose := n.rt.image(t, "e2e.test/loose-pods:1")
	keptImages := map[string]string{"the init-phase pod's main image": late, "the crashing pod's image": crash,
		"the static pod's main image": static}
	// On containerd (through cri-dockerd the kubelet starts neither:
	// measured, ErrImageNeverPull for sha256:<12 hex>; nor on CRI-O, which
	// resolves an ID's prefix only without its algorithm, where the kubelet
	// finds neither form: measured, ErrImageNeverPull): a pod that names
	// its image by a short ID, as containerd resolves it, with an init
	// container first, so that no container of that image exists yet.
	if runtimeName() == "containerd" {
		_, byShortID := n.rt.image(t, "e2e.test/short-id:1")
		shortInitRef, _ := n.rt.image(t, "e2e.test/short-id-init:1")
		n.createPodSpec(t, "e2e-short-id", corev1.PodSpec{
			InitContainers: []corev1.Container{sleeper("init", shortInitRef, "sleep", "40s")},
			Containers:     []corev1.Container{sleeper("main", "sha256:"+strings.TrimPrefix(byShortID, "sha256:")[:12], "sleep")},
		})
		keptImages["the image a pod names by a short ID"] = byShortID
	}
	// On the CRI runtimes (containerd, CRI-O; not through cri-dockerd): an
	// image volume, whose image the kubelet ensures again at every start
	// of the pod's container.
	if runtimeName() != "docker" {
		volumeRef, volume := n.rt.image(t, "e2e.test/volume:1")
		podRef, _ := n.rt.image(t, "e2e.test/volume-pod:1")
		n.createPodSpec(t, "e2e-volume", corev1.PodSpec{
			Containers: []corev1.Container{sleeper("main", podRef, "sleep")},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				Image: &corev1.ImageVolumeSource{Reference: volumeRef, PullPolicy: corev1.PullNever}}}},
		})
		keptImages["the image a pod mounts as a volume"] = volume
	}

	n.createPodSpec(t, "e2e-init", corev1.PodSpec{
		InitContainers: []corev1.Container{sleeper("init", initRef, "sleep", "40s")},
		Containers:     []corev1.Container{sleeper("main", lateRef, "sleep")},
	})
	n.createPodSpec(t, "e2e-crash", corev1.PodSpec{Containers: []corev1.Container{sleeper("main", crashRef, "fail")}})
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: e2e-static, namespace: default}
spec:
  terminationGracePeriodSeconds: 0
  initContainers:
  - {name: init, image: %s, imagePullPolicy: Never, command: [/sleeper, sleep, 40s]}
  containers:
  - {name: main, image: %s, imagePullPolicy: Never, command: [/sleeper, sleep]}
`, staticInitRef, staticRef)
	staticFile := filepath.Join(staticDir, "e2e-static.yaml")
	if err := os.WriteFile(staticFile, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	mirror := "e2e-static-" + n.name
	t.Cleanup(func() {
		_ = os.Remove(staticFile)
		eventually(t, 2*time.Minute, "the static pod gone", func() (bool, string) {
			err := n.api.Get(context.Background(), ctrlclient.ObjectKey{Namespace: "default", Name: mirror}, &corev1.Pod{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
	})
	n.waitPod(t, "e2e-init", "in its init phase", initRunning)
	n.waitPod(t, mirror, "in its init phase", initRunning)
	n.waitPod(t, "e2e-crash", "between two restarts", crashLooping)
	if runtimeName() == "containerd" {
		n.waitPod(t, "e2e-short-id", "in its init phase", initRunning)
	}
	if runtimeName() != "docker" {
		n.waitPod(t, "e2e-volume", "running with its image volume", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	}

	n.applyPolicy(t, "e2e-pods", `images: ["**"]
force: true
dangling: true
minImageAge: 0s
stoppedContainers:
  minStoppedAge: 0s
  includeKubernetesManaged: true
`)
	report := n.sweptReport(t, "e2e-pods")
	t.Logf("report: phase %s, removed %v, blocked %+v", report.Status.Phase, report.Status.RemovedImages, report.Status.Blocked)
	if n.rt.hasImage(t, loose) {
		t.Fatal("the policy left e2e.test/loose-pods:1: it did not act at all")
	}
	for what, id := range keptImages {
		if !n.rt.hasImage(t, id) {
			t.Errorf("%s went", what)
		}
	}
	if t.Failed() {
		return
	}
	running := func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }
	n.waitPod(t, "e2e-init", "running after its init container", running)
	n.waitPod(t, mirror, "running after its init container", running)
	if runtimeName() == "containerd" {
		n.waitPod(t, "e2e-short-id", "running after its init container", running)
	}

	// The pod goes: its image is the policy's again, once the kubelet has
	// stopped its container (a running one keeps it, pod or not).
	n.deletePod(t, "e2e-init")
	eventually(t, time.Minute, "the deleted pod's container to stop", func() (bool, string) {
		running := n.rt.runningContainers(t, late)
		return running == 0, fmt.Sprint(running, " running")
	})
	n.kubectlOK(t, "", "patch", "icp", "e2e-pods", "--type=merge", "-p", `{"spec":{"interval":"2h"}}`)
	again := n.sweptReport(t, "e2e-pods")
	eventually(t, time.Minute, "the image of a deleted pod to go", func() (bool, string) {
		return !n.rt.hasImage(t, late), fmt.Sprintf("e2e.test/late:1 still there; report %s %s, removed %v, blocked %+v",
			again.Status.Phase, again.Status.Message, again.Status.RemovedImages, again.Status.Blocked)
	})
}
