package e2e

import (
	"errors"
	"fmt"
	"testing"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/connect"
	"github.com/imagecleanup/image-cleanup-operator/internal/cri"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultgrpc"
)

// One policy, three nodes (issue 20): one on the Docker engine, one on
// containerd through its CRI, one where the agent finds no runtime. The
// first two are cleaned, each report names its runtime; the third reports
// NoRuntime, and the policy says it failed there.
func TestOnePolicyDockerAndContainerd(t *testing.T) {
	startAggregator(t)
	c := apiClient(t)
	cli := testenv.Docker(t)
	crictl := testenv.Containerd(t)
	dockerRT, err := docker.New(testenv.DockerHost(t))
	if err != nil {
		t.Fatal(err)
	}
	criRT, err := cri.New(crictl.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = criRT.Close() })
	reg := testenv.StartRegistry(t)
	u := testenv.UniqueName("mixed")
	group := testenv.UniqueName("group")
	labels := map[string]string{"imagecleanup.test/group": group}
	dockerNode, criNode, bareNode := u+"-docker", u+"-containerd", u+"-bare"
	for _, n := range []string{dockerNode, criNode, bareNode} {
		createNode(t, c, n, labels)
	}

	onDocker := testenv.ImportImage(t, cli, "e2e.local/"+u+"/app:1")
	dockerCtr := testenv.CreateContainer(t, cli, "e2e.local/"+u+"/app:1", testenv.ContainerOptions{Run: "exit"})
	onContainerd := crictl.Image(reg, u+"/app", "1")
	criCtr := crictl.Container(onContainerd, seed.Exited, nil)

	startAgent(t, dockerNode, dockerRT)
	startAgent(t, criNode, criRT)
	_, why := connect.Find(connect.Sockets(t.TempDir()))
	startAgent(t, bareNode, connect.Missing(why))

	policy := createPolicy(t, c, testenv.UniqueName("mixed"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector:      &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:            []v1alpha1.ImagePattern{v1alpha1.ImagePattern("e2e.local/" + u + "/**"), v1alpha1.ImagePattern(reg.Host + "/" + u + "/**")},
		MinImageAge:       dur("0s"),
		StoppedContainers: v1alpha1.StoppedContainersPolicy{MinStoppedAge: dur("0s")},
		Interval:          dur("1m"),
	})
	eventually(t, "both runtimes cleaned", func() (bool, string) {
		gone := !testenv.ImageExists(t, cli, onDocker) && !testenv.ContainerExists(t, cli, dockerCtr) &&
			!crictl.HasImage(onContainerd) && !crictl.HasContainer(criCtr)
		return gone, "still there"
	})
	for node, name := range map[string]string{dockerNode: "docker", criNode: "containerd"} {
		eventually(t, "the report of "+node, func() (bool, string) {
			r := getReport(t, c, policy.Name, node)
			if r == nil {
				return false, "no report"
			}
			e := r.Status.Runtime
			return r.Status.Phase == v1alpha1.PhaseSucceeded && r.Status.ImagesRemoved == 1 && r.Status.ContainersRemoved == 1 &&
				e != nil && e.Name == name, string(r.Status.Phase) + ": " + r.Status.Message
		})
	}
	eventually(t, "the bare node's report", func() (bool, string) {
		r := getReport(t, c, policy.Name, bareNode)
		if r == nil {
			return false, "no report"
		}
		return r.Status.Phase == v1alpha1.PhaseFailed && r.Status.Reason == v1alpha1.ReportReasonNoRuntime, r.Status.Reason + ": " + r.Status.Message
	})
	eventually(t, "the policy to count the bare node as failed", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		return p.Status.NodesSucceeded == 2 && p.Status.NodesFailed == 1, statusLine(p)
	})
	if !errors.Is(why, runtime.ErrNoRuntime) {
		t.Fatalf("the missing runtime's error %v", why)
	}
}

// containerd dies under a removal while the agent sweeps (it deleted the
// image's record and died before it answered): that sweep's report cannot
// count the removal, the runtime being gone; once containerd is back, the
// next sweep's report does. The report's totals count every image exactly
// once (they used to stay short of what the runtime lost).
func TestAReportCountsWhatARuntimeKilledUnderARemovalDid(t *testing.T) {
	c := apiClient(t)
	crictl := testenv.Containerd(t)
	proxy, err := faultgrpc.Start(crictl.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	rt, err := cri.New(proxy.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	reg := testenv.StartRegistry(t)
	u := testenv.UniqueName("killed")
	var ids []string
	for i := range 6 {
		ids = append(ids, crictl.Image(reg, u+"/app", fmt.Sprint(i+1)))
	}
	node := u + "-node"
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": u})
	proxy.DieAt("/runtime.v1.ImageService/RemoveImage")
	startAgent(t, node, rt)
	policy := createPolicy(t, c, u, v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(u)}},
		Images:       []v1alpha1.ImagePattern{v1alpha1.ImagePattern(reg.Host + "/" + u + "/**")},
		MinImageAge:  dur("0s"),
	})
	eventually(t, "a sweep under the dying runtime to fail", func() (bool, string) {
		r := getReport(t, c, policy.Name, node)
		if r == nil {
			return false, "no report"
		}
		return r.Status.Phase == v1alpha1.PhaseFailed, string(r.Status.Phase) + ": " + r.Status.Message
	})
	proxy.Revive()
	eventually(t, "every image gone and counted once", func() (bool, string) {
		r := getReport(t, c, policy.Name, node)
		left := 0
		for _, id := range ids {
			if crictl.HasImage(id) {
				left++
			}
		}
		return left == 0 && r.Status.Phase == v1alpha1.PhaseSucceeded && r.Status.Totals.ImagesRemoved == int64(len(ids)),
			fmt.Sprintf("%d images left; report %s, totals %d images: %s", left, r.Status.Phase, r.Status.Totals.ImagesRemoved, r.Status.Message)
	})
}
