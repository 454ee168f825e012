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
// folder the runtime's ImageFsInfo names when it holds a record of one of
// the runtime's images, as the runtime lays them out. containers/storage
// (CRI-O) names its image store, <storage root>/<driver>-images, with a
// folder per image named by the image's ID; containerd names its root,
// whose content store keeps each image's manifest as a blob named by the
// image's ID. Another disk mounted at the same path has none of them.
// empty says the runtime holds no image: nothing proves it, and nothing
// could be removed.
func (r *Runtime) ProvesRoot(ctx context.Context, info runtime.Info, root string) (proven, empty bool, err error) {
	if root == "" {
		return false, false, nil
	}
	images, err := r.ListImages(ctx)
	if err != nil {
		return false, false, fmt.Errorf("list images: %w", err)
	}
	for _, img := range images {
		algo, hex, ok := strings.Cut(img.ID, ":")
		if !ok {
			algo, hex = "sha256", img.ID // containers/storage's IDs have no algorithm
		}
		if isDir(filepath.Join(root, hex)) || exists(filepath.Join(root, "io.containerd.content.v1.content", "blobs", algo, hex)) {
			return true, false, nil
		}
	}
	return false, len(images) == 0, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
