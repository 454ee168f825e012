package testenv

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/moby/moby/client"
)

// Registry is a tiny read-only image registry (the v2 pull API) on a
// loopback port, so tests can pull as a kubelet does: pulled images have
// repo digests and no LastTagTime, as in a cluster. Plain HTTP: dockerd
// and containerd take 127.0.0.0/8 registries as insecure by default, and
// hack/crio.sh says so in CRI-O's registries.conf.
type Registry struct {
	// Host is host:port, the registry part of references.
	Host string

	mu        sync.Mutex
	blobs     map[string][]byte // digest → content
	manifests map[string][]byte // repository/tag or repository/digest → manifest
}

const manifestType = "application/vnd.docker.distribution.manifest.v2+json"

// StartRegistry serves an empty registry until the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg, stop := ServeRegistry(ln)
	t.Cleanup(stop)
	return reg
}

// ServeRegistry serves an empty registry on ln until stop: for the tools
// that are not tests (hack/pauseimage serves a runtime its sandbox image).
func ServeRegistry(ln net.Listener) (reg *Registry, stop func()) {
	reg = &Registry{Host: ln.Addr().String(), blobs: map[string][]byte{}, manifests: map[string][]byte{}}
	srv := &http.Server{Handler: reg, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return reg, func() { _ = srv.Close() }
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Push makes an image FROM scratch holding the sleeper, built at created,
// and serves it as repository:tag. It returns the manifest digest, for
// repository@digest references.
func (reg *Registry) Push(t testing.TB, repository, tag string, created time.Time) string {
	t.Helper()
	return reg.push(t, repository, tag, created, rootfs(t))
}

// PushSized is Push of an image that also holds mib MiB of random bytes
// (they do not compress): what fills a small disk.
func (reg *Registry) PushSized(t testing.TB, repository, tag string, mib int) string {
	t.Helper()
	payload := make([]byte, mib<<20)
	_, _ = rand.Read(payload) // crypto/rand does not fail
	layer := seed.Tar(seed.File{Name: "sleeper", Mode: 0o755, Data: program(t)},
		seed.File{Name: "unique", Mode: 0o644, Data: []byte(UniqueName("image"))},
		seed.File{Name: "payload", Mode: 0o644, Data: payload})
	return reg.push(t, repository, tag, time.Now(), layer)
}

func (reg *Registry) push(t testing.TB, repository, tag string, created time.Time, layer []byte) string {
	t.Helper()
	d, err := reg.PutImage(repository, tag, []string{"/sleeper"}, created, layer)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// PutImage serves an image of one layer (an uncompressed tar), with its
// entrypoint, built at created, as repository:tag, and returns its manifest
// digest.
func (reg *Registry) PutImage(repository, tag string, entrypoint []string, created time.Time, layer []byte) (string, error) {
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": created.UTC().Format(time.RFC3339),
		"config": map[string]any{"Entrypoint": entrypoint},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digestOf(layer)}},
	})
	if err != nil {
		return "", err
	}
	return reg.PutBuilt(repository, tag, config, layer)
}

// PutBuilt serves an image already built, its config and its layers
// (uncompressed tars, in order, as a docker-save archive holds them), as
// repository:tag, and returns its manifest digest.
func (reg *Registry) PutBuilt(repository, tag string, config []byte, layers ...[]byte) (string, error) {
	var described []any
	var blobs [][]byte
	for _, layer := range layers {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(layer)
		_ = zw.Close()
		blobs = append(blobs, gz.Bytes())
		described = append(described, map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": gz.Len(), "digest": digestOf(gz.Bytes())})
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": manifestType,
		"config": map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": digestOf(config)},
		"layers": described,
	})
	if err != nil {
		return "", err
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reg.blobs[digestOf(config)] = config
	for _, b := range blobs {
		reg.blobs[digestOf(b)] = b
	}
	d := digestOf(manifest)
	reg.manifests[repository+"/"+tag] = manifest
	reg.manifests[repository+"/"+d] = manifest
	return d, nil
}

// Alias serves the manifest of repository:tag under another tag too: one
// image, two references.
func (reg *Registry) Alias(t testing.TB, repository, tag, alias string) {
	t.Helper()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	m, ok := reg.manifests[repository+"/"+tag]
	if !ok {
		t.Fatalf("alias of %s:%s, which was never pushed", repository, tag)
	}
	reg.manifests[repository+"/"+alias] = m
}

// ServeHTTP answers /v2/, manifests and blobs, GET and HEAD.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v2/")
	if path == "" || path == r.URL.Path {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		return
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	var body []byte
	var ok bool
	if repo, ref, found := strings.Cut(path, "/manifests/"); found {
		body, ok = reg.manifests[repo+"/"+ref]
		w.Header().Set("Content-Type", manifestType)
		w.Header().Set("Docker-Content-Digest", digestOf(body))
	} else if _, d, found := strings.Cut(path, "/blobs/"); found {
		body, ok = reg.blobs[d]
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", d)
	}
	if !ok {
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// PullImage pulls ref (from a Registry) into the runtime and returns the
// image ID; the image is removed when the test ends.
func PullImage(t testing.TB, cli *client.Client, ref string) string {
	t.Helper()
	rc, err := cli.ImagePull(context.Background(), ref, client.ImagePullOptions{})
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := drainJSONStream(rc); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	info, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	t.Cleanup(func() { RemoveImage(cli, info.ID) })
	return info.ID
}
