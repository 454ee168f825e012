package node_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// nodeRuntime is a test's hold on the runtime the node's kubelet runs pods
// through (hack/cluster.sh brings the node up on Docker through cri-dockerd,
// on containerd's CRI, or on CRI-O): the tests of the kubelet's world run on
// each.
type nodeRuntime interface {
	// image puts an image holding the sleeper on the node, as a pull
	// would, and returns the reference pods name it by (with
	// imagePullPolicy Never) and its ID. It goes when the test ends.
	image(t *testing.T, name string) (ref, id string)
	// hasImage reports whether ref (a reference or an ID) names an image.
	hasImage(t *testing.T, ref string) bool
	// kubeletContainers are every container the kubelet made, sandboxes
	// included, running or not: ID → what it is.
	kubeletContainers(t *testing.T) map[string]string
	// runningContainers counts the running containers of the image.
	runningContainers(t *testing.T, imageID string) int
	// keep keeps what brings the image back with the same ID (a docker
	// save; the registry, for a pull) and returns what brings it back.
	keep(t *testing.T, ref string) (bringBack func())
}

// runtimeName is the runtime the test node was brought up with.
func runtimeName() string {
	if r := os.Getenv("TEST_CLUSTER_RUNTIME"); r != "" {
		return r
	}
	return "docker"
}

// nodeRuntimeFor connects to the test node's runtime.
func nodeRuntimeFor(t *testing.T) nodeRuntime {
	t.Helper()
	if runtimeName() != "docker" {
		return &criNode{cri: testenv.NodeCRI(t), reg: testenv.StartRegistry(t)}
	}
	return dockerNode{cli: testenv.NodeDocker(t)}
}

// dockerNode is the node's dockerd, where images are imported.
type dockerNode struct{ cli *client.Client }

func (d dockerNode) image(t *testing.T, name string) (string, string) {
	t.Helper()
	return name, testenv.ImportImage(t, d.cli, name)
}

func (d dockerNode) keep(t *testing.T, ref string) func() {
	t.Helper()
	ctx := context.Background()
	rc, err := d.cli.ImageSave(ctx, []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		res, err := d.cli.ImageLoad(ctx, bytes.NewReader(saved))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res)
		_ = res.Close()
	}
}

func (d dockerNode) hasImage(t *testing.T, ref string) bool {
	t.Helper()
	return testenv.ImageExists(t, d.cli, ref)
}

func (d dockerNode) kubeletContainers(t *testing.T) map[string]string {
	t.Helper()
	list, err := d.cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", "io.kubernetes.pod.name")})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list.Items {
		out[c.ID] = c.Labels["io.kubernetes.pod.name"] + " " + c.Labels["io.kubernetes.docker.type"] + " " + string(c.State)
	}
	return out
}

func (d dockerNode) runningContainers(t *testing.T, imageID string) int {
	t.Helper()
	list, err := d.cli.ContainerList(context.Background(), client.ContainerListOptions{
		Filters: make(client.Filters).Add("ancestor", imageID).Add("status", "running")})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// criNode is the node's CRI runtime (containerd, CRI-O), as the kubelet uses
// it; images are pulled from a registry of the test, as a kubelet pulls.
type criNode struct {
	cri *testenv.CRI
	reg *testenv.Registry
}

func (c *criNode) image(t *testing.T, name string) (string, string) {
	t.Helper()
	repository, tag, ok := strings.Cut(name, ":")
	if !ok {
		t.Fatalf("image %s has no tag", name)
	}
	ref := c.reg.Host + "/" + name
	return ref, c.cri.ImageBuilt(c.reg, repository, time.Now(), tag)
}

func (c *criNode) keep(t *testing.T, ref string) func() {
	return func() { c.cri.Pull(ref) }
}

func (c *criNode) hasImage(t *testing.T, ref string) bool {
	t.Helper()
	return c.cri.HasImage(ref)
}

func (c *criNode) kubeletContainers(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]string{}
	pods, err := c.cri.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.GetItems() {
		if name, ok := p.GetLabels()["io.kubernetes.pod.name"]; ok {
			out[p.GetId()] = name + " sandbox " + p.GetState().String()
		}
	}
	containers, err := c.cri.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ctr := range containers.GetContainers() {
		if name, ok := ctr.GetLabels()["io.kubernetes.pod.name"]; ok {
			out[ctr.GetId()] = name + " " + ctr.GetMetadata().GetName() + " " + ctr.GetState().String()
		}
	}
	return out
}

func (c *criNode) runningContainers(t *testing.T, imageID string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.cri.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ctr := range res.GetContainers() {
		if ctr.GetImageId() == imageID || ctr.GetImageRef() == imageID {
			n++
		}
	}
	return n
}
