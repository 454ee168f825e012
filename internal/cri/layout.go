package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

var _ runtime.RootProver = (*Runtime)(nil)

// ProvesRoot implements runtime.RootProver: root, on this machine, is the
// folder the runtime's ImageFsInfo names when the records of the
// runtime's containers lie beside it, as the runtime lays them out.
// containers/storage (CRI-O) names its image store, <storage
// root>/<driver>-images, and keeps a folder per container in
// <driver>-containers; containerd names its root, whose CRI keeps a folder
// per container in io.containerd.grpc.v1.cri/containers. Container IDs are
// drawn at random on each node, where image IDs are the same on every
// machine that holds the image: another disk mounted at the same path (a
// remote runtime's path on the CLI's machine, a podman of its own) holds
// the same images, never the same containers. A runtime with images but
// no container cannot be proven (give the folder: --data-root); empty says
// it holds neither: nothing proves it, and nothing could be removed.
func (r *Runtime) ProvesRoot(ctx context.Context, info runtime.Info, root string) (proven, empty bool, err error) {
	if root == "" {
		return false, false, nil
	}
	containers, err := r.ListContainers(ctx)
	if err != nil {
		return false, false, fmt.Errorf("list containers: %w", err)
	}
	folder := containersFolder(info, root)
	for _, c := range containers {
		if isID(c.ID) && isDir(filepath.Join(folder, c.ID)) {
			return true, false, nil
		}
	}
	if len(containers) > 0 {
		return false, false, nil
	}
	images, err := r.ListImages(ctx)
	if err != nil {
		return false, false, fmt.Errorf("list images: %w", err)
	}
	return false, len(images) == 0, nil
}

// containersFolder is where the runtime keeps a folder per container,
// given the folder its ImageFsInfo names.
func containersFolder(info runtime.Info, root string) string {
	if info.ImageStore == runtime.ContainerdStore {
		return filepath.Join(root, "io.containerd.grpc.v1.cri", "containers")
	}
	driver := strings.TrimSuffix(filepath.Base(root), "-images")
	return filepath.Join(filepath.Dir(root), driver+"-containers")
}

// isID reports whether s is a container ID as the CRI runtimes draw them:
// 64 lowercase hex digits (nothing else can name a folder beside root).
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
