package testenv_test

import (
	"context"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// The article's error, reproduced on the private runtime: an image used by a
// stopped container cannot be removed without force, by ID or by tag. This
// proves the tests see the real runtime's behaviour.
func TestStoppedContainerBlocksImageRemoval(t *testing.T) {
	cli := testenv.Docker(t)
	ctx := context.Background()
	ref := "harness.test/" + testenv.UniqueName("article") + ":v1"
	id := testenv.BuildImage(t, cli, ref)

	ctr := testenv.CreateContainer(t, cli, ref, testenv.ContainerOptions{Run: "exit"})
	inspect, err := cli.ContainerInspect(ctx, ctr, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if inspect.Container.State.Status != "exited" {
		t.Fatalf("container state = %q, want exited", inspect.Container.State.Status)
	}

	_, err = cli.ImageRemove(ctx, id, client.ImageRemoveOptions{})
	if !cerrdefs.IsConflict(err) || !strings.Contains(err.Error(), "image is being used by stopped container") {
		t.Fatalf("removing by ID: err = %v, want the conflict 'image is being used by stopped container'", err)
	}
	_, err = cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{})
	if !cerrdefs.IsConflict(err) {
		t.Fatalf("removing by tag: err = %v, want a conflict", err)
	}
	if !testenv.ImageExists(t, cli, id) {
		t.Fatal("the image is gone although its removal failed")
	}

	// The article's second answer: remove the container, then the image.
	if _, err := cli.ContainerRemove(ctx, ctr, client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
		t.Fatalf("removing after the container is gone: %v", err)
	}
	if testenv.ImageExists(t, cli, id) {
		t.Fatal("the image is still there")
	}
}

func TestImportedImagesAreDistinct(t *testing.T) {
	cli := testenv.Docker(t)
	a := testenv.ImportImage(t, cli)
	b := testenv.ImportImage(t, cli)
	if a == b {
		t.Fatalf("two imports gave the same image %s", a)
	}
	running := testenv.CreateContainer(t, cli, a, testenv.ContainerOptions{Run: "sleep"})
	inspect, err := cli.ContainerInspect(context.Background(), running, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !inspect.Container.State.Running {
		t.Fatalf("container of %s is %s, want running", a, inspect.Container.State.Status)
	}
}

func TestDockerRefusesTheDefaultSocket(t *testing.T) {
	t.Setenv(testenv.DockerHostEnv, "unix:///var/run/docker.sock")
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		testenv.DockerHost(ft)
	}()
	if !ft.failed {
		t.Fatal("DockerHost accepted the machine's default socket")
	}
}

// fatalRecorder records a Fatalf instead of failing the real test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
func (f *fatalRecorder) Helper()               {}
