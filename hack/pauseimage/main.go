// Command pauseimage makes a pod sandbox image for a private runtime that
// cannot pull one (no registry can be reached): FROM scratch, holding the
// tests' sleeper, whose entrypoint waits for a signal as the pause program
// does. It writes it as a docker-save archive, which hack/containerd.sh
// imports with ctr under the name its CRI pins as the sandbox image; or it
// serves it on a loopback port as a registry would, for a runtime that can
// only pull (CRI-O, hack/crio.sh), printing the address and serving until
// it is stopped (SIGTERM or SIGINT); with -archive, beside it, the images
// of a docker-save archive (the agent's, for the test node on CRI-O). A
// registry serves paths without their domain: the runtime maps the
// images' domains to this address.
//
//	go run ./hack/pauseimage -name registry.k8s.io/pause:3.10 -o pause.tar
//	go run ./hack/pauseimage -name imagecleanup.test/sandbox:3.10 -serve -addr 127.0.0.1:0
//	go run ./hack/pauseimage -name imagecleanup.test/sandbox:3.10 -serve -archive agent.tar
package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

func main() {
	name := flag.String("name", "registry.k8s.io/pause:3.10", "the image's reference")
	out := flag.String("o", "pause.tar", "where to write the archive")
	serving := flag.Bool("serve", false, "serve the image as a registry instead, until stopped")
	address := flag.String("addr", "127.0.0.1:0", "with -serve: where (port 0: a free one)")
	archive := flag.String("archive", "", "with -serve: also serve the images of this docker-save archive, under their tags")
	flag.Parse()
	run := func() error { return write(*name, *out) }
	if *serving {
		run = func() error { return serve(*name, *address, *archive) }
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pauseimage:", err)
		os.Exit(1)
	}
}

func write(name, out string) error {
	program, err := seed.Program()
	if err != nil {
		return err
	}
	layer := seed.Rootfs(program, "pause")
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
		"config": map[string]any{"Entrypoint": []string{"/sleeper", "pause"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{name}, "Layers": []string{"layer.tar"}}})
	if err != nil {
		return err
	}
	archive := seed.Tar(
		seed.File{Name: "config.json", Mode: 0o644, Data: config},
		seed.File{Name: "layer.tar", Mode: 0o644, Data: layer},
		seed.File{Name: "manifest.json", Mode: 0o644, Data: manifest},
	)
	return os.WriteFile(out, archive, 0o644)
}

// serve serves the image under its repository and tag at address, which it
// prints, with the images of archive if given, until the process is
// stopped.
func serve(name, address, archive string) error {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return err
	}
	tag := "latest"
	if tagged, ok := ref.(reference.Tagged); ok {
		tag = tagged.Tag()
	}
	program, err := seed.Program()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return err
	}
	reg, stop := testenv.ServeRegistry(ln)
	defer stop()
	if _, err := reg.PutImage(reference.Path(ref), tag, []string{"/sleeper", "pause"}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		seed.Rootfs(program, "pause")); err != nil {
		return err
	}
	if archive != "" {
		if err := serveArchive(reg, archive); err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
	}
	fmt.Println(reg.Host)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	<-ctx.Done()
	return nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// serveArchive serves every image of a docker-save archive (its
// manifest.json: each image's config, layers and tags) under each of its
// tags.
func serveArchive(reg *testenv.Registry, path string) error {
	files, err := readTar(path)
	if err != nil {
		return err
	}
	var images []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &images); err != nil {
		return fmt.Errorf("not a docker-save archive (manifest.json): %w", err)
	}
	for _, img := range images {
		config, ok := files[img.Config]
		if !ok {
			return fmt.Errorf("no %s in the archive", img.Config)
		}
		var layers [][]byte
		for _, l := range img.Layers {
			layer, ok := files[l]
			if !ok {
				return fmt.Errorf("no %s in the archive", l)
			}
			layers = append(layers, layer)
		}
		for _, t := range img.RepoTags {
			ref, err := reference.ParseNormalizedNamed(t)
			if err != nil {
				return err
			}
			tagged, ok := ref.(reference.Tagged)
			if !ok {
				return fmt.Errorf("%s has no tag", t)
			}
			if _, err := reg.PutBuilt(reference.Path(ref), tagged.Tag(), config, layers...); err != nil {
				return err
			}
		}
	}
	return nil
}

// readTar reads every regular file of a tar into memory, by name, and
// each symbolic link as the file it names (docker save links a layer that
// two images share).
func readTar(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	links := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			for name, target := range links {
				if data, ok := files[filepath.Join(filepath.Dir(name), target)]; ok {
					files[name] = data
				}
			}
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeSymlink {
			links[h.Name] = h.Linkname
			continue
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if files[h.Name], err = io.ReadAll(tr); err != nil {
			return nil, err
		}
	}
}
