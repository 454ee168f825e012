// Package enginehost prepares what a sweep needs of one engine, for the
// node agent and the CLI alike: who the engine is, its image clock (one
// file per engine's store, held by one process at a time), and the
// filesystem that holds its images, measured only where it is provably the
// engine's.
package enginehost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
)

// Options say where the state is kept and where the data root is.
type Options struct {
	// StateDir holds the image clock; "" keeps it in memory only.
	StateDir string
	// DataRoot is where the engine's data root is seen from here; "" means
	// the engine's own path (DockerRootDir), which must then be provably
	// the engine's on this machine. A given path is taken at its word.
	DataRoot string
}

// Host is one engine, ready to sweep.
type Host struct {
	Runtime engine.Runtime
	Info    engine.Info
	Clock   *imageclock.Clock
	// Warning is set when the clock had to start afresh (a corrupt file).
	Warning error

	dataRoot string
	given    bool // the caller named the data root

	mu     sync.Mutex
	proven bool
}

// Open asks the engine who it is and opens its image clock.
func Open(ctx context.Context, rt engine.Runtime, o Options) (*Host, error) {
	info, err := rt.Info(ctx)
	if err != nil {
		return nil, err
	}
	h := &Host{Runtime: rt, Info: info, dataRoot: o.DataRoot, given: o.DataRoot != ""}
	if h.dataRoot == "" {
		h.dataRoot = info.RootDir
	}
	if o.StateDir == "" {
		h.Clock = imageclock.InMemory()
		return h, nil
	}
	h.Clock, h.Warning, err = imageclock.Open(o.StateDir, imageclock.EngineKey{ID: info.ID, RootDir: info.RootDir})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Close releases the image clock.
func (h *Host) Close() { h.Clock.Close() }

// DataRoot is where the images' filesystem is measured.
func (h *Host) DataRoot() string { return h.dataRoot }

// ErrNotProven is a data root this machine cannot show to be the engine's.
var ErrNotProven = errors.New("cannot show that it is the engine's data root on this machine")

// Disk measures the filesystem that holds the engine's images. A path the
// engine reported is measured only once it is shown to be the engine's:
// a remote engine, or one in another mount namespace, reports a path that
// may exist here and be another disk, whose fullness would then trigger
// removals on the engine.
func (h *Host) Disk(ctx context.Context) func() (disk.Usage, error) {
	return func() (disk.Usage, error) {
		if err := h.prove(ctx); err != nil {
			return disk.Usage{}, err
		}
		u, err := disk.Measure(h.dataRoot)
		if err != nil {
			return disk.Usage{}, fmt.Errorf("%w (give --data-root where the engine's data root is seen from here)", err)
		}
		return u, nil
	}
}

func (h *Host) prove(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.given || h.proven {
		return nil
	}
	ok, empty, err := Proves(ctx, h.Runtime, h.Info, h.dataRoot)
	if err != nil {
		return err
	}
	if empty {
		return nil // nothing to remove, nothing to lose: measure, and look again next time
	}
	if !ok {
		return fmt.Errorf("%s: %w (a remote engine, or another mount namespace?): give the data root as it is seen here (--data-root)", h.dataRoot, ErrNotProven)
	}
	h.proven = true
	return nil
}

// Proves reports whether root, on this machine, is the engine's data root:
// it holds the engine's own ID file, or the folder of one of its
// containers, or the record of one of its images. The engine writes those
// there; another disk at the same path does not have them. empty says that
// the engine holds no container and no image: nothing can prove it, and
// nothing could be removed.
func Proves(ctx context.Context, rt engine.Runtime, info engine.Info, root string) (proven, empty bool, err error) {
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
