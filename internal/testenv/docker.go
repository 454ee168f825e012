package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
)

// DockerHostEnv names the private engine; hack/test.sh sets it. Tests never
// fall back to DOCKER_HOST or the default socket: those hold a user's images.
const DockerHostEnv = "TEST_DOCKER_HOST"

var defaultSockets = []string{
	"unix:///var/run/docker.sock",
	"unix:///run/docker.sock",
}

// DockerHost returns the private engine's address, or skips (fails in CI).
func DockerHost(t testing.TB) string {
	t.Helper()
	return engineHost(t, DockerHostEnv, "private dockerd")
}

// engineHost reads a private engine's address from env; it skips (fails in
// CI) when there is none, and refuses the machine's default engine, which
// holds a user's images.
func engineHost(t testing.TB, env, what string) string {
	t.Helper()
	host := os.Getenv(env)
	if host == "" {
		Unavailable(t, "no %s: %s is not set", what, env)
	}
	if slices.Contains(defaultSockets, host) {
		t.Fatalf("%s=%s is the machine's default engine; tests only use the private ones hack/ starts", env, host)
	}
	return host
}

// SmallDocker returns a client of the second private engine, whose data
// root is a 300 MiB tmpfs (hack/dockerd.sh with a data size), and that data
// root, for disk-pressure tests; it holds the engine like Docker does.
func SmallDocker(t testing.TB) (*client.Client, string, string) {
	t.Helper()
	host := engineHost(t, "TEST_SMALL_DOCKER_HOST", "small private dockerd")
	root := os.Getenv("TEST_SMALL_DATA_ROOT")
	if root == "" {
		Unavailable(t, "no small private dockerd: TEST_SMALL_DATA_ROOT is not set")
	}
	return connect(t, host, "small private dockerd"), host, root
}

// SmallImageRoot is the folder whose filesystem holds the small engine's
// images (the 300 MiB tmpfs): its data root under Docker 20.10's store,
// containerd's root under the containerd store.
func SmallImageRoot(t testing.TB) string {
	t.Helper()
	root := os.Getenv("TEST_SMALL_IMAGE_ROOT")
	if root == "" {
		Unavailable(t, "no small private dockerd: TEST_SMALL_IMAGE_ROOT is not set")
	}
	return root
}

// Docker returns a client of the private engine and holds the engine for this
// test alone until it ends: test packages run in parallel, and a test that
// sweeps the whole engine (dangling images, "**") must not see another's.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	return connect(t, DockerHost(t), "private dockerd")
}

// connect opens a client of a private engine, checks that it answers, and
// holds the engine's lock until the test ends.
func connect(t testing.TB, host, what string) *client.Client {
	t.Helper()
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		t.Fatalf("docker client for %s: %v", host, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		Unavailable(t, "%s at %s does not answer: %v", what, host, err)
	}
	lockRuntime(t, host)
	return cli
}

// lockRuntime takes an exclusive file lock named after the engine's address.
func lockRuntime(t testing.TB, host string) {
	t.Helper()
	name := filepath.Join(os.TempDir(), "imagecleanup-test-engine-"+shortHash(host)+".lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("engine lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("engine lock: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}

func shortHash(s string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// UniqueName returns a lowercase name unique to this run, for repositories
// and containers, so that a test only ever selects what it made.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// program is the static binary the test images run (internal/seed).
func program(t testing.TB) []byte {
	t.Helper()
	prog, err := seed.Program()
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// rootfs is a root filesystem holding the program, unique to this call.
func rootfs(t testing.TB) []byte {
	t.Helper()
	return seed.Rootfs(program(t), UniqueName("image"))
}

// ImportImage makes a new image FROM scratch holding the sleeper, tags it
// with every ref (none makes a dangling image) and returns its ID. The image
// is removed when the test ends, if it is still there.
func ImportImage(t testing.TB, cli *client.Client, refs ...string) string {
	t.Helper()
	id, err := (&seed.Docker{Client: cli}).Image(context.Background(), refs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveImage(cli, id) })
	return id
}

// CommitChild makes a child image of the container's image (docker commit),
// tagged ref; the parent then has a dependent child.
func CommitChild(t testing.TB, cli *client.Client, containerID, ref string) string {
	t.Helper()
	resp, err := cli.ContainerCommit(context.Background(), containerID, client.ContainerCommitOptions{Reference: ref})
	if err != nil {
		t.Fatalf("commit %s: %v", containerID, err)
	}
	t.Cleanup(func() { RemoveImage(cli, resp.ID) })
	return resp.ID
}

// ContainerOptions shape a test container.
type ContainerOptions struct {
	Name   string
	Labels map[string]string
	// Run: "exit" runs it to completion (exited), "sleep" leaves it running,
	// "" only creates it (state created).
	Run string
	// SleepWhenStarted makes a created container sleep once started, so a
	// test can start it later and find it running.
	SleepWhenStarted bool
}

// ContainerdStore reports whether the engine keeps its images in
// containerd's store (the containerd snapshotter: Docker 29's default on a
// new data root) rather than the classic graph-driver store of Docker 20.10.
func ContainerdStore(t testing.TB, cli *client.Client) bool {
	t.Helper()
	infoRes, err := cli.Info(context.Background(), client.InfoOptions{})
	info := infoRes.Info
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range info.DriverStatus {
		if kv[0] == "driver-type" && kv[1] == "io.containerd.snapshotter.v1" {
			return true
		}
	}
	return false
}

// RemoveContainer removes a test's container (forcibly, it is the test's own).
func RemoveContainer(t testing.TB, cli *client.Client, id string) {
	t.Helper()
	if _, err := cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove container %s: %v", id, err)
	}
}

// CreateContainer makes a container of img with no network. It is removed
// (forcibly, it is a test's own) when the test ends.
func CreateContainer(t testing.TB, cli *client.Client, img string, opts ContainerOptions) string {
	t.Helper()
	state := map[string]seed.State{"": seed.Created, "exit": seed.Exited, "sleep": seed.Running}[opts.Run]
	if state == "" {
		t.Fatalf("unknown Run %q", opts.Run)
	}
	id, err := (&seed.Docker{Client: cli}).Container(context.Background(), img, state,
		seed.ContainerOptions{Name: opts.Name, Labels: opts.Labels, SleepWhenStarted: opts.SleepWhenStarted})
	if id != "" {
		t.Cleanup(func() {
			_, _ = cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// RemoveImage removes an image of a test, whatever it takes; errors are
// ignored because the test under way may have removed it already.
func RemoveImage(cli *client.Client, id string) {
	_, _ = cli.ImageRemove(context.Background(), id, client.ImageRemoveOptions{Force: true, PruneChildren: true})
}

// ImageExists reports whether the engine still has the image (by ID or reference).
func ImageExists(t testing.TB, cli *client.Client, ref string) bool {
	t.Helper()
	_, err := cli.ImageInspect(context.Background(), ref)
	if err == nil {
		return true
	}
	if cerrdefs.IsNotFound(err) {
		return false
	}
	t.Fatalf("inspect image %s: %v", ref, err)
	return false
}

// ContainerExists reports whether the engine still has the container.
func ContainerExists(t testing.TB, cli *client.Client, id string) bool {
	t.Helper()
	_, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err == nil {
		return true
	}
	if cerrdefs.IsNotFound(err) {
		return false
	}
	t.Fatalf("inspect container %s: %v", id, err)
	return false
}

// BuildImage builds ref from a Dockerfile FROM scratch that copies in the
// static sleeper, with the engine's classic builder (no registry needed), and
// returns the image ID. The image is removed when the test ends.
func BuildImage(t testing.TB, cli *client.Client, ref string) string {
	t.Helper()
	bin := program(t)
	dockerfile := "FROM scratch\nCOPY sleeper /sleeper\nLABEL imagecleanup.test=" + UniqueName("build") + "\nENTRYPOINT [\"/sleeper\"]\n"
	buildContext := seed.Tar(seed.File{Name: "Dockerfile", Mode: 0o644, Data: []byte(dockerfile)}, seed.File{Name: "sleeper", Mode: 0o755, Data: bin})
	resp, err := cli.ImageBuild(context.Background(), bytes.NewReader(buildContext), client.ImageBuildOptions{
		Tags: []string{ref}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	if err := drainJSONStream(resp.Body); err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	inspect, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatalf("inspect %s after build: %v", ref, err)
	}
	t.Cleanup(func() { RemoveImage(cli, inspect.ID) })
	return inspect.ID
}

// drainJSONStream reads a progress stream to its end and returns its error, if any.
func drainJSONStream(rc io.ReadCloser) error {
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return fmt.Errorf("%s", msg.Error)
		}
	}
}

// NodeDocker returns a client of the test node's engine (hack/cluster.sh),
// the one its kubelet runs pods on, held like Docker holds the private one.
func NodeDocker(t testing.TB) *client.Client {
	t.Helper()
	return connect(t, engineHost(t, "TEST_CLUSTER_DOCKER_HOST", "test node's dockerd (hack/cluster.sh up)"), "test node's dockerd")
}
