// Command pauseimage writes a pod sandbox image as a docker-save archive, for
// a private containerd that cannot pull one (no registry can be reached):
// FROM scratch, holding the tests' sleeper, whose entrypoint waits for a
// signal as the pause program does. hack/containerd.sh imports it with ctr
// under the name its CRI pins as the sandbox image.
//
//	go run ./hack/pauseimage -name registry.k8s.io/pause:3.10 -o pause.tar
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
)

func main() {
	name := flag.String("name", "registry.k8s.io/pause:3.10", "the image's reference")
	out := flag.String("o", "pause.tar", "where to write the archive")
	flag.Parse()
	if err := write(*name, *out); err != nil {
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

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
