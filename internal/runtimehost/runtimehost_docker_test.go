package runtimehost_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtimehost"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

func runtimeAt(t *testing.T, host string) *docker.Runtime {
	t.Helper()
	rt, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

// Finding 6 of the second review, on the real runtimes: the two private
// runtimes of make test run on one machine (Docker 20.10 takes its ID from
// /etc/docker/key.json, so they may share it), and each gets a clock of
// its own in one state folder, held by one process at a time.
func TestTwoRuntimesOnOneMachineKeepTwoClocks(t *testing.T) {
	testenv.Docker(t)
	_, smallHost, _ := testenv.SmallDocker(t)
	ctx := context.Background()
	dir := t.TempDir()
	a, err := runtimehost.Open(ctx, runtimeAt(t, testenv.DockerHost(t)), runtimehost.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := runtimehost.Open(ctx, runtimeAt(t, smallHost), runtimehost.Options{StateDir: dir})
	if err != nil {
		t.Fatalf("the second engine's clock: %v", err)
	}
	defer b.Close()
	t.Logf("engine IDs %q and %q, data roots %s and %s", a.Info.ID, b.Info.ID, a.Info.RootDir, b.Info.RootDir)
	if _, err := runtimehost.Open(ctx, runtimeAt(t, testenv.DockerHost(t)), runtimehost.Options{StateDir: dir}); err == nil {
		t.Fatal("a second process opened a clock that is held")
	}
}

// Finding 7 of the second review, on the real runtime: the data root the
// runtime reports is measured once it is shown to be the runtime's here.
func TestTheRuntimesDataRootIsProvenHere(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.ImportImage(t, cli, "itest.local/"+testenv.UniqueName("proof")+"/app:1")
	ctx := context.Background()
	h, err := runtimehost.Open(ctx, runtimeAt(t, testenv.DockerHost(t)), runtimehost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := h.Disk(ctx)()
	if err != nil {
		t.Fatalf("the private engine's own data root, on this machine: %v", err)
	}
	// Under the containerd store the images are in containerd's root: the
	// private Docker 29 runs its containerd where dockerd puts the one it
	// runs itself, under the data root, and it is found there.
	want := h.Info.RootDir
	if testenv.ContainerdStore(t, cli) {
		want = filepath.Join(h.Info.RootDir, "containerd", "daemon")
	}
	if u.Path != want {
		t.Errorf("measured %s, want %s (image store %s)", u.Path, want, h.Info.ImageStore)
	}
}
