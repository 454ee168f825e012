package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
)

// CRIEndpointEnv names the CRI socket of the private runtime under test:
// containerd's (hack/containerd.sh), or CRI-O's (hack/crio.sh) in the CRI
// tier's pass on CRI-O; hack/test.sh sets it. Tests never use a system
// runtime.
const CRIEndpointEnv = "TEST_CRI_ENDPOINT"

var defaultCRISockets = []string{
	"unix:///run/containerd/containerd.sock",
	"unix:///var/run/containerd/containerd.sock",
	"unix:///var/run/crio/crio.sock",
	"unix:///run/crio/crio.sock",
}

// The runtimes' names, as their CRI Version says them.
const (
	ContainerdName = "containerd"
	CRIOName       = "cri-o"
)

// CRI is a test's hold on a private CRI runtime, through the CRI as the
// kubelet speaks it: it pulls images and makes pods and containers, and
// removes what is left of them when the test ends.
type CRI struct {
	t        testing.TB
	Endpoint string
	// Name is the runtime's, as its CRI Version says it (ContainerdName,
	// CRIOName): a test expects what was measured of that runtime.
	Name    string
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
	pod     string
}

// CRIRuntime connects to the private CRI runtime under test (containerd,
// or CRI-O in its pass), or skips (fails in CI), and holds it for this test
// alone until it ends.
func CRIRuntime(t testing.TB) *CRI {
	t.Helper()
	return connectCRI(t, CRIEndpointEnv, "private CRI runtime")
}

// Containerd is CRIRuntime for a test of what only containerd has (its
// own API beside the CRI, its events): on another runtime it skips (fails
// in CI: hack/test.sh leaves such tests, named …OnContainerd, out of the
// passes on other runtimes).
func Containerd(t testing.TB) *CRI {
	t.Helper()
	c := CRIRuntime(t)
	if c.Name != ContainerdName {
		Unavailable(t, "this test needs containerd; the runtime at %s is %s", c.Endpoint, c.Name)
	}
	return c
}

// SmallCRI connects to the second private runtime of the kind under test,
// whose image store is on a 300 MiB tmpfs, for disk-pressure tests.
func SmallCRI(t testing.TB) *CRI {
	t.Helper()
	return connectCRI(t, "TEST_SMALL_CRI_ENDPOINT", "small private CRI runtime")
}

// NodeCRI connects to the test node's CRI runtime (hack/cluster.sh with
// IMAGECLEANUP_NODE_RUNTIME=containerd or crio), the one its kubelet runs
// pods through, and holds it for this test alone until it ends.
func NodeCRI(t testing.TB) *CRI {
	t.Helper()
	return connectCRI(t, "TEST_CLUSTER_CRI_ENDPOINT", "test node's CRI runtime (IMAGECLEANUP_NODE_RUNTIME=containerd or crio hack/cluster.sh up)")
}

func connectCRI(t testing.TB, env, what string) *CRI {
	t.Helper()
	endpoint := os.Getenv(env)
	if endpoint == "" {
		Unavailable(t, "no %s: %s is not set", what, env)
	}
	if slices.Contains(defaultCRISockets, endpoint) {
		t.Fatalf("%s=%s is the machine's own runtime; tests only use the private ones hack/ starts", env, endpoint)
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("CRI client for %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &CRI{t: t, Endpoint: endpoint, Runtime: runtimeapi.NewRuntimeServiceClient(conn), Images: runtimeapi.NewImageServiceClient(conn)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		Unavailable(t, "%s at %s does not answer: %v", what, endpoint, err)
	}
	c.Name = v.GetRuntimeName()
	lockRuntime(t, endpoint)
	return c
}

func (c *CRI) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// Pull pulls ref (from a Registry: the private runtimes reach 127.0.0.1 over plain
// HTTP) as the kubelet does, and returns the image ID; the image is removed
// when the test ends, if it is still there.
func (c *CRI) Pull(ref string) string {
	c.t.Helper()
	ctx, cancel := c.ctx()
	defer cancel()
	res, err := c.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		c.t.Fatalf("pull %s: %v", ref, err)
	}
	id := c.ImageID(res.GetImageRef())
	c.t.Cleanup(func() {
		ctx, cancel := c.ctx()
		defer cancel()
		_, _ = c.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id}})
	})
	return id
}

// ImageID is the ID of the image ref names, "" when there is none.
func (c *CRI) ImageID(ref string) string {
	c.t.Helper()
	ctx, cancel := c.ctx()
	defer cancel()
	res, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		c.t.Fatalf("image status %s: %v", ref, err)
	}
	return res.GetImage().GetId()
}

// HasImage reports whether ref (a reference or an ID) names an image.
func (c *CRI) HasImage(ref string) bool {
	c.t.Helper()
	return c.ImageID(ref) != ""
}

// sandbox is the test's pod, made on first use: host networking (no CNI
// here), removed with its containers when the test ends.
func (c *CRI) sandbox() (string, *runtimeapi.PodSandboxConfig) {
	c.t.Helper()
	name := UniqueName("pod")
	config := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "imagecleanup-test", Uid: name},
		LogDirectory: c.t.TempDir(),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}
	if c.pod != "" {
		return c.pod, config
	}
	ctx, cancel := c.ctx()
	defer cancel()
	res, err := c.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: config})
	if err != nil {
		c.t.Fatalf("run pod sandbox: %v", err)
	}
	c.pod = res.GetPodSandboxId()
	c.t.Cleanup(func() {
		ctx, cancel := c.ctx()
		defer cancel()
		_, _ = c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: c.pod})
		_, _ = c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: c.pod})
	})
	return c.pod, config
}

// Container makes a container of the image in the test's pod and leaves it
// in state: created (never started), exited (ran to completion) or running
// (sleeping an hour). labels go on it (io.kubernetes.* ones make it the
// kubelet's). It returns the container's ID.
func (c *CRI) Container(image string, state seed.State, labels map[string]string) string {
	c.t.Helper()
	pod, podConfig := c.sandbox()
	id, err := c.container(pod, podConfig, image, state, labels)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// userSpecified is the name a pod would give the image, as the kubelet
// passes it beside the image's ID (CRI-O checks signatures against it): its
// first tag or digest, "" when it has none.
func (c *CRI) userSpecified(image string) string {
	ctx, cancel := c.ctx()
	defer cancel()
	res, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil || res.GetImage() == nil {
		return ""
	}
	if names := append(res.GetImage().GetRepoTags(), res.GetImage().GetRepoDigests()...); len(names) > 0 {
		return names[0]
	}
	return ""
}

func (c *CRI) container(pod string, podConfig *runtimeapi.PodSandboxConfig, image string, state seed.State, labels ...map[string]string) (string, error) {
	name := UniqueName("ctr")
	command := []string{"/sleeper"}
	if state == seed.Running {
		command = append(command, "sleep")
	}
	config := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:   &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.userSpecified(image)},
		Command: command, LogPath: name + ".log"}
	if len(labels) > 0 {
		config.Labels = labels[0]
	}
	ctx, cancel := c.ctx()
	defer cancel()
	res, err := c.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podConfig, Config: config})
	if err != nil {
		return "", fmt.Errorf("create container of %s: %w", image, err)
	}
	id := res.GetContainerId()
	if state == seed.Created {
		return id, nil
	}
	if _, err := c.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return id, fmt.Errorf("start container %s: %w", name, err)
	}
	want := runtimeapi.ContainerState_CONTAINER_RUNNING
	if state == seed.Exited {
		want = runtimeapi.ContainerState_CONTAINER_EXITED
	}
	for ctx.Err() == nil {
		st, err := c.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err == nil && st.GetStatus().GetState() == want {
			return id, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return id, fmt.Errorf("container %s did not become %s", name, want)
}

// State is a container's state; CONTAINER_UNKNOWN when it is gone.
func (c *CRI) State(id string) runtimeapi.ContainerState {
	c.t.Helper()
	ctx, cancel := c.ctx()
	defer cancel()
	res, err := c.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return runtimeapi.ContainerState_CONTAINER_UNKNOWN
	}
	return res.GetStatus().GetState()
}

// HasContainer reports whether the container is there.
func (c *CRI) HasContainer(id string) bool {
	c.t.Helper()
	ctx, cancel := c.ctx()
	defer cancel()
	_, err := c.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	return err == nil
}

// Image makes an image FROM scratch holding the sleeper, served by a
// registry of this test, pulled under every tag (repository:tag) given: one
// image, several references. It returns the image ID.
func (c *CRI) Image(reg *Registry, repository string, tags ...string) string {
	c.t.Helper()
	if len(tags) == 0 {
		c.t.Fatal("an image needs a tag to be pulled")
	}
	return c.ImageBuilt(reg, repository, time.Now(), tags...)
}

// ImageBuilt is Image with the image's build date (its config's created).
func (c *CRI) ImageBuilt(reg *Registry, repository string, built time.Time, tags ...string) string {
	c.t.Helper()
	reg.Push(c.t, repository, tags[0], built)
	for _, tag := range tags[1:] {
		reg.Alias(c.t, repository, tags[0], tag)
	}
	var id string
	for _, tag := range tags {
		got := c.Pull(fmt.Sprintf("%s/%s:%s", reg.Host, repository, tag))
		if id != "" && got != id {
			c.t.Fatalf("%s:%s is another image", repository, tag)
		}
		id = got
	}
	return id
}

// Containers makes n containers of the image in state, up to 8 at once
// (as Container does, one by one), and returns their IDs.
func (c *CRI) Containers(image string, state seed.State, n int) []string {
	c.t.Helper()
	pod, podConfig := c.sandbox()
	ids := make([]string, n)
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			id, err := c.container(pod, podConfig, image, state)
			ids[i] = id
			return err
		})
	}
	if err := g.Wait(); err != nil {
		c.t.Fatal(err)
	}
	return ids
}

// CRIBinDirEnv names the folder of containerd's own tools (ctr, crictl),
// which hack/test.sh sets from hack/cri-assets.sh.
const CRIBinDirEnv = "TEST_CRI_BIN_DIR"

// Ctr runs containerd's own client on the private containerd (the test
// holds it by Containerd), in the CRI's
// namespace (k8s.io), as nerdctl or BuildKit would reach it, and returns
// what it printed.
func (c *CRI) Ctr(args ...string) (string, error) {
	c.t.Helper()
	dir := os.Getenv(CRIBinDirEnv)
	if dir == "" {
		Unavailable(c.t, "no ctr: %s is not set (hack/test.sh sets it)", CRIBinDirEnv)
	}
	ctx, cancel := c.ctx()
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "ctr"), append([]string{"--address", strings.TrimPrefix(c.Endpoint, "unix://"), "--namespace", "k8s.io"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// OthersContainer makes, through containerd's own API (ctr, as nerdctl
// would), a container of the image ref names, that the CRI does not list:
// running (with a task) or created (without one). It goes when the test
// ends.
func (c *CRI) OthersContainer(ref string, running bool) string {
	c.t.Helper()
	id := UniqueName("ctr-own")
	args := []string{"container", "create", "--net-host", ref, id, "/sleeper", "sleep"}
	if running {
		args = []string{"run", "-d", "--net-host", ref, id, "/sleeper", "sleep"}
	}
	if _, err := c.Ctr(args...); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		_, _ = c.Ctr("task", "kill", "--signal", "SIGKILL", id)
		_, _ = c.Ctr("task", "rm", "--force", id)
		_, _ = c.Ctr("container", "rm", id)
	})
	return id
}

// OthersTaskRunning reports whether the container made through
// containerd's own API has a running task.
func (c *CRI) OthersTaskRunning(id string) bool {
	c.t.Helper()
	out, err := c.Ctr("task", "ls")
	if err != nil {
		c.t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			return f[2] == "RUNNING"
		}
	}
	return false
}
