// Command pauseimage makes a pod sandbox image for a private runtime that
// cannot pull one (no registry can be reached): FROM scratch, holding the
// tests' sleeper, whose entrypoint waits for a signal as the pause program
// does. It writes it as a docker-save archive, which hack/containerd.sh
// imports with ctr under the name its CRI pins as the sandbox image; or it
// serves it on a loopback port as a registry would, for a runtime that can
// only pull (CRI-O, hack/crio.sh), printing the address and serving until
// it is stopped (SIGTERM or SIGINT).
//
//	go run ./hack/pauseimage -name registry.k8s.io/pause:3.10 -o pause.tar
//	go run ./hack/pauseimage -name imagecleanup.test/sandbox:3.10 -serve -addr 127.0.0.1:0
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
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
	flag.Parse()
	run := func() error { return write(*name, *out) }
	if *serving {
		run = func() error { return serve(*name, *address) }
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
// prints, until the process is stopped.
func serve(name, address string) error {
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
