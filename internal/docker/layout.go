package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

var (
	_ runtime.RootProver           = (*Runtime)(nil)
	_ runtime.ContainerdRootFinder = (*Runtime)(nil)
)

// SystemContainerdRoot is containerd's default root: where a Docker that
// uses the node's containerd (as Docker's own packages install it) keeps
// its images under the containerd store.
const SystemContainerdRoot = "/var/lib/containerd"

// ContainerdRoots implements runtime.ContainerdRootFinder: the containerd
// that dockerd runs itself keeps its root under the data root
// (containerd/daemon); a Docker on the node's containerd keeps its images
// at SystemContainerdRoot.
func (r *Runtime) ContainerdRoots(dataRoot string) []string { return ContainerdRoots(dataRoot) }

// ContainerdRoots are the places Docker's containerd store may be, for a
// data root seen here at dataRoot ("" when unknown).
func ContainerdRoots(dataRoot string) []string {
	if dataRoot == "" {
		return []string{SystemContainerdRoot}
	}
	return []string{filepath.Join(dataRoot, "containerd", "daemon"), SystemContainerdRoot}
}

// Lister lists what an engine holds.
type Lister interface {
	ListImages(ctx context.Context) ([]runtime.Image, error)
	ListContainers(ctx context.Context) ([]runtime.Container, error)
}

// ProvesRoot implements engine.RootProver by the Docker engine's layout of
// its data root (ProvesDataRoot).
func (r *Runtime) ProvesRoot(ctx context.Context, info runtime.Info, root string) (proven, empty bool, err error) {
	return ProvesDataRoot(ctx, r, info, root)
}

// ProvesDataRoot reports whether root, on this machine, is the engine's data root:
// it holds the engine's own ID file, or the folder of one of its
// containers, or the record of one of its images. The engine writes those
// there; another disk at the same path does not have them. empty says that
// the engine holds no container and no image: nothing can prove it, and
// nothing could be removed.
func ProvesDataRoot(ctx context.Context, rt Lister, info runtime.Info, root string) (proven, empty bool, err error) {
	if root == "" {
		return false, false, nil
	}
	if id, err := os.ReadFile(filepath.Join(root, "engine-id")); err == nil && strings.TrimSpace(string(id)) == info.ID {
		return true, false, nil // Docker 23 and later
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	containers, err := rt.ListContainers(ctx)
	if err != nil {
		return false, false, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range containers {
		if exists(filepath.Join(root, "containers", c.ID)) {
			return true, false, nil
		}
	}
	images, err := rt.ListImages(ctx)
	if err != nil {
		return false, false, fmt.Errorf("list images: %w", err)
	}
	stores, _ := filepath.Glob(filepath.Join(root, "image", "*", "imagedb", "content", "sha256"))
	for _, img := range images {
		for _, store := range stores {
			if exists(filepath.Join(store, strings.TrimPrefix(img.ID, "sha256:"))) {
				return true, false, nil
			}
		}
	}
	return false, len(containers) == 0 && len(images) == 0, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
