// Package runtimehost prepares what a sweep needs of one runtime, for the
// node agent and the CLI alike: who the runtime is, its image clock (one
// file per runtime's store, held by one process at a time), and the
// filesystem that holds its images, measured only where it is provably the
// runtime's.
package runtimehost

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Options say where the state is kept and where the data root is.
type Options struct {
	// StateDir holds the image clock; "" keeps it in memory only.
	StateDir string
	// DataRoot is where the runtime's data root is seen from here; "" means
	// the path the runtime reports (Info.RootDir), which must then be provably
	// the runtime's on this machine. A given path is taken at its word.
	DataRoot string
	// ContainerdRoot is where containerd's root is seen from here, for a
	// runtime that keeps its images in containerd's store: the images are
	// there, not under the data root. "" takes the root the runtime names,
	// or else looks where its adapter says (runtime.ContainerdRootFinder),
	// and measures a folder only once it is shown to hold the runtime's
	// images. A given path is taken at its word.
	ContainerdRoot string
	// Measure measures the filesystem of a path (default disk.Measure).
	Measure func(path string) (disk.Usage, error)
}

// Host is one runtime, ready to sweep.
type Host struct {
	Runtime Runtime
	Info    runtime.Info
	Clock   *imageclock.Clock
	// Warning is set when the clock had to start afresh (a corrupt file).
	Warning error

	measure  func(path string) (disk.Usage, error)
	dataRoot string
	given    bool // the caller named the data root
	// containerdRoots are where containerd's root may be: one given or
	// named root, or the places the adapter says to look. nil for a store
	// that is not containerd's.
	containerdRoots []string
	givenContainerd bool

	mu        sync.Mutex
	proven    bool
	imageRoot string // the folder measured: the data root, or containerd's root
}

// Runtime is what the host reads of a runtime: what it is, and what it
// holds, to prove where its images are on disk.
type Runtime interface {
	Info(ctx context.Context) (runtime.Info, error)
	ListImages(ctx context.Context) ([]runtime.Image, error)
	ListContainers(ctx context.Context) ([]runtime.Container, error)
}

// Open asks the runtime who it is and opens its image clock.
func Open(ctx context.Context, rt Runtime, o Options) (*Host, error) {
	info, err := rt.Info(ctx)
	if err != nil {
		return nil, err
	}
	h := &Host{Runtime: rt, Info: info, dataRoot: o.DataRoot, given: o.DataRoot != "", measure: o.Measure}
	if h.measure == nil {
		h.measure = disk.Measure
	}
	if h.dataRoot == "" {
		h.dataRoot = info.RootDir
	}
	h.imageRoot = h.dataRoot
	if info.ImageStore == runtime.ContainerdStore {
		switch {
		case o.ContainerdRoot != "":
			h.containerdRoots, h.givenContainerd = []string{o.ContainerdRoot}, true
			h.imageRoot = o.ContainerdRoot
		case info.ContainerdRoot != "":
			// containerd itself, through its CRI: it says where its root is.
			h.containerdRoots = []string{info.ContainerdRoot}
			h.imageRoot = info.ContainerdRoot
		default:
			h.containerdRoots = []string{} // none known: --containerd-root is needed
			if finder, ok := rt.(runtime.ContainerdRootFinder); ok {
				h.containerdRoots = finder.ContainerdRoots(h.dataRoot)
			}
		}
	}
	if o.StateDir == "" {
		h.Clock = imageclock.InMemory()
		return h, nil
	}
	h.Clock, h.Warning, err = imageclock.Open(o.StateDir, imageclock.StoreKey{ID: info.ID, RootDir: info.RootDir})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Close releases the image clock.
func (h *Host) Close() { h.Clock.Close() }

// DataRoot is where the runtime's data root is seen from here.
func (h *Host) DataRoot() string { return h.dataRoot }

// ImageRoot is the folder whose filesystem holds the images, and is
// measured: the data root, or containerd's root under the containerd store
// (the first place that holds the runtime's images, once one was found).
func (h *Host) ImageRoot() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.imageRoot
}

// ErrNotProven is a data root this machine cannot show to be the runtime's.
var ErrNotProven = errors.New("cannot show that it is the runtime's data root on this machine")

// Disk measures the filesystem that holds the runtime's images. A path the
// runtime reported is measured only once it is shown to be the runtime's:
// a remote runtime, or one in another mount namespace, reports a path that
// may exist here and be another disk, whose fullness would then trigger
// removals on the runtime.
func (h *Host) Disk(ctx context.Context) func() (disk.Usage, error) {
	return func() (disk.Usage, error) {
		root, err := h.prove(ctx)
		if err != nil {
			return disk.Usage{}, err
		}
		u, err := h.measure(root)
		if err != nil {
			flag := "--data-root"
			if h.containerdRoots != nil {
				flag = "--containerd-root"
			}
			return disk.Usage{}, fmt.Errorf("%w (give %s where it is seen from here)", err, flag)
		}
		return u, nil
	}
}

// prove returns the folder to measure, once shown to be the runtime's.
func (h *Host) prove(ctx context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.containerdRoots != nil {
		return h.proveContainerd(ctx)
	}
	if h.given || h.proven {
		return h.imageRoot, nil
	}
	prover, known := h.Runtime.(runtime.RootProver)
	if !known {
		return "", fmt.Errorf("%s: %w (the runtime's layout on disk is not known here): give the folder of its images as it is seen here (--data-root)", h.dataRoot, ErrNotProven)
	}
	ok, empty, err := prover.ProvesRoot(ctx, h.Info, h.dataRoot)
	if err != nil {
		return "", err
	}
	if empty {
		return h.imageRoot, nil // nothing to remove, nothing to lose: measure, and look again next time
	}
	if !ok {
		return "", fmt.Errorf("%s: %w (a remote runtime, or another mount namespace?): give the data root as it is seen here (--data-root)", h.dataRoot, ErrNotProven)
	}
	h.proven = true
	return h.imageRoot, nil
}

// proveContainerd finds containerd's root among the places to look: the
// first that holds the content of one of the runtime's images.
func (h *Host) proveContainerd(ctx context.Context) (string, error) {
	if h.givenContainerd || h.proven {
		return h.imageRoot, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	images, err := h.Runtime.ListImages(ctx)
	if err != nil {
		return "", fmt.Errorf("list images: %w", err)
	}
	if len(images) == 0 {
		// Nothing to remove, nothing to lose: measure the first place that
		// exists, and look again next time.
		for _, root := range h.containerdRoots {
			if exists(root) {
				h.imageRoot = root
				return root, nil
			}
		}
		return "", fmt.Errorf("containerd's root: none of %s exists here: give it as it is seen here (--containerd-root)", cmp.Or(strings.Join(h.containerdRoots, ", "), "the places this runtime keeps it (none known)"))
	}
	for _, root := range h.containerdRoots {
		if HoldsContent(root, images) {
			h.imageRoot, h.proven = root, true
			return root, nil
		}
	}
	return "", fmt.Errorf("containerd's root: %w in %s: give it as it is seen here (--containerd-root)", ErrNotProven, strings.Join(h.containerdRoots, ", "))
}

// HoldsContent reports whether root is a containerd root holding the
// content of one of images: under the containerd store an image's ID is
// the digest of its manifest or index, a blob of containerd's content store.
func HoldsContent(root string, images []runtime.Image) bool {
	blobs := filepath.Join(root, "io.containerd.content.v1.content", "blobs")
	for _, img := range images {
		algo, hex, ok := strings.Cut(img.ID, ":")
		if ok && exists(filepath.Join(blobs, algo, hex)) {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
