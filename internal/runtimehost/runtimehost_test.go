package runtimehost_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtimehost"
)

// Finding 7 of the second review: the CLI measured the path the runtime
// reports as its data root on its own machine, where it may be another
// disk (a remote runtime, another mount namespace); a full local disk then
// removed every selected image. The path is measured only once it holds
// what the runtime keeps there.
func TestDataRootMustBeProven(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	f := runtimefake.New()
	f.RootDir = root
	id := strings.Repeat("c", 64)
	f.AddImage(runtime.Image{ID: "sha256:" + strings.Repeat("a", 64)})
	f.AddContainer(runtime.Container{ID: id, ImageID: "sha256:" + strings.Repeat("a", 64), State: runtime.StateExited})

	h, err := runtimehost.Open(ctx, f, runtimehost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Disk(ctx)(); !errors.Is(err, runtimehost.ErrNotProven) {
		t.Fatalf("an unproven data root was measured: %v", err)
	}
	// The runtime's container folder is there: it is the runtime's.
	if err := os.MkdirAll(filepath.Join(root, "containers", id), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Disk(ctx)(); err != nil {
		t.Fatalf("a proven data root: %v", err)
	}
	// A data root given by the caller is taken at its word.
	given, err := runtimehost.Open(ctx, f, runtimehost.Options{DataRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := given.Disk(ctx)(); err != nil {
		t.Fatalf("a given data root: %v", err)
	}
}

// Docker 23 and later write their ID into the data root: proof enough.
func TestRuntimeIDFileProves(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "engine-id"), []byte("fake\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok, _, err := runtimefake.New().ProvesRoot(context.Background(), runtime.Info{ID: "fake"}, root)
	if err != nil || !ok {
		t.Fatalf("engine-id did not prove the data root: %v %v", ok, err)
	}
}

// Issue 19, point 3: under the containerd image store the images are in
// containerd's root, not the data root. The folder measured is the one that
// holds the content of the runtime's images, and the measure says which.
func TestContainerdStoreMeasuresContainerdsRoot(t *testing.T) {
	ctx := context.Background()
	dataRoot := t.TempDir()
	// The data root is provably the runtime's...
	if err := os.WriteFile(filepath.Join(dataRoot, "engine-id"), []byte("fake\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := runtimefake.New()
	f.RootDir, f.ImageStore = dataRoot, runtime.ContainerdStore
	digest := strings.Repeat("d", 64)
	f.AddImage(runtime.Image{ID: "sha256:" + digest, RepoTags: []string{"app:1"}})

	h, err := runtimehost.Open(ctx, f, runtimehost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// ...but the images are not there, and no containerd root holds them.
	if u, err := h.Disk(ctx)(); !errors.Is(err, runtimehost.ErrNotProven) {
		t.Fatalf("measured %q though no containerd root holds the images: %v", u.Path, err)
	}
	// The containerd dockerd runs itself keeps its root under the data root.
	managed := filepath.Join(dataRoot, "containerd", "daemon")
	blobs := filepath.Join(managed, "io.containerd.content.v1.content", "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blobs, digest), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := h.Disk(ctx)()
	if err != nil || u.Path != managed || h.ImageRoot() != managed {
		t.Fatalf("measured %q (image root %q, %v), want containerd's root %s", u.Path, h.ImageRoot(), err, managed)
	}

	// A containerd root given by the caller is taken at its word.
	given := t.TempDir()
	g, err := runtimehost.Open(ctx, f, runtimehost.Options{ContainerdRoot: given})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := g.Disk(ctx)(); err != nil || u.Path != given {
		t.Fatalf("a given containerd root: measured %q, %v", u.Path, err)
	}

	// The classic store measures the data root, whatever is beside it.
	f.ImageStore = "overlay2"
	c, err := runtimehost.Open(ctx, f, runtimehost.Options{ContainerdRoot: given})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := c.Disk(ctx)(); err != nil || u.Path != dataRoot {
		t.Fatalf("the classic store: measured %q, %v, want the data root %s", u.Path, err, dataRoot)
	}
}

// layoutUnknown is a runtime whose adapter does not know its layout on
// disk (no runtime.RootProver): only what it lists.
type layoutUnknown struct{ f *runtimefake.Runtime }

func (l layoutUnknown) Info(ctx context.Context) (runtime.Info, error) { return l.f.Info(ctx) }
func (l layoutUnknown) ListImages(ctx context.Context) ([]runtime.Image, error) {
	return l.f.ListImages(ctx)
}
func (l layoutUnknown) ListContainers(ctx context.Context) ([]runtime.Container, error) {
	return l.f.ListContainers(ctx)
}

// A runtime whose layout the agent does not know is never measured at the
// path it reports: not even where Docker's files would prove it; a folder
// given by the caller is.
func TestAnUnknownLayoutIsNotProven(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	f := runtimefake.New()
	f.RootDir = root
	id := strings.Repeat("c", 64)
	f.AddImage(runtime.Image{ID: "sha256:" + strings.Repeat("a", 64)})
	f.AddContainer(runtime.Container{ID: id, ImageID: "sha256:" + strings.Repeat("a", 64), State: runtime.StateExited})
	if err := os.MkdirAll(filepath.Join(root, "containers", id), 0o700); err != nil {
		t.Fatal(err)
	}
	h, err := runtimehost.Open(ctx, layoutUnknown{f}, runtimehost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Disk(ctx)(); !errors.Is(err, runtimehost.ErrNotProven) || !strings.Contains(err.Error(), "--data-root") {
		t.Fatalf("a runtime of unknown layout was measured, or not told what to give: %v", err)
	}
	given, err := runtimehost.Open(ctx, layoutUnknown{f}, runtimehost.Options{DataRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := given.Disk(ctx)(); err != nil {
		t.Fatalf("a given folder: %v", err)
	}
}
