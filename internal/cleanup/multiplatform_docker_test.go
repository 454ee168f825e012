package cleanup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtimehost"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// ociArchive is an OCI image layout, as `docker load` reads it: one image
// index naming a manifest per platform, each with its own config and layer.
type ociArchive struct {
	files        []seed.File
	index        string   // the index's digest
	platformBlob []string // per platform, its manifest's digest
}

func (a *ociArchive) blob(data []byte) (digest string, size int) {
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	a.files = append(a.files, seed.File{Name: "blobs/sha256/" + hexSum, Mode: 0o644, Data: data})
	return "sha256:" + hexSum, len(data)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// multiPlatformArchive makes an image for this machine's platform (the
// sleeper) and for one other (random bytes), both named ref.
func multiPlatformArchive(t *testing.T, ref string, payload int) *ociArchive {
	t.Helper()
	prog, err := seed.Program()
	if err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	a := &ociArchive{}
	var manifests []map[string]any
	for _, arch := range []string{runtime.GOARCH, other} {
		data := make([]byte, payload)
		_, _ = rand.Read(data)
		layer := seed.Tar(seed.File{Name: "sleeper", Mode: 0o755, Data: prog}, seed.File{Name: "payload-" + arch, Mode: 0o644, Data: data})
		layerDigest, layerSize := a.blob(layer)
		config := mustJSON(t, map[string]any{
			"architecture": arch, "os": "linux",
			"config": map[string]any{"Entrypoint": []string{"/sleeper"}},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
		})
		configDigest, configSize := a.blob(config)
		manifest := mustJSON(t, map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configSize},
			"layers": []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layerSize}},
		})
		manifestDigest, manifestSize := a.blob(manifest)
		a.platformBlob = append(a.platformBlob, manifestDigest)
		manifests = append(manifests, map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest, "size": manifestSize,
			"platform": map[string]any{"architecture": arch, "os": "linux"},
		})
	}
	index := mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
	indexDigest, indexSize := a.blob(index)
	a.index = indexDigest
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		t.Fatal(err)
	}
	tag := ""
	if tagged, ok := named.(reference.Tagged); ok {
		tag = tagged.Tag()
	}
	a.files = append(a.files,
		seed.File{Name: "oci-layout", Mode: 0o644, Data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		seed.File{Name: "index.json", Mode: 0o644, Data: mustJSON(t, map[string]any{
			"schemaVersion": 2,
			"manifests": []map[string]any{{
				"mediaType": "application/vnd.oci.image.index.v1+json", "digest": indexDigest, "size": indexSize,
				"annotations": map[string]string{"io.containerd.image.name": named.String(), "org.opencontainers.image.ref.name": tag},
			}},
		})})
	return a
}

// A multi-platform image (an index with a manifest per platform) on Docker
// 29's containerd store: its ID is the index's digest, and a sweep removes
// it whole, the blobs of every platform leaving containerd's content store,
// with the size the runtime lists (every platform's content; an inspect
// says this platform's) counted. The classic stores, 20.10's and 29's, keep
// one platform per image and refuse such an archive (no manifest.json).
func TestMultiPlatformImage(t *testing.T) {
	s := newScenario(t)
	ctx := context.Background()
	ref := s.ref("multi")
	archive := multiPlatformArchive(t, ref, 2<<20)
	res, err := s.cli.ImageLoad(ctx, bytes.NewReader(seed.Tar(archive.files...)))
	if err == nil {
		out, _ := io.ReadAll(res)
		_ = res.Close()
		if bytes.Contains(out, []byte(`"error"`)) {
			err = errorText(out)
		}
	}
	containerd := testenv.ContainerdStore(t, s.cli)
	if err != nil {
		if containerd {
			t.Fatalf("load a multi-platform image: %v", err)
		}
		t.Logf("the classic store refuses an OCI layout: %v", err)
		return
	}
	defer testenv.RemoveImage(s.cli, ref)
	images, err := s.rt.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, size := "", int64(0)
	for _, img := range images {
		for _, tag := range img.RepoTags {
			if tag == ref {
				id, size = img.ID, img.Size
			}
		}
	}
	if id == "" {
		t.Fatalf("%s is not listed after the load", ref)
	}
	defer testenv.RemoveImage(s.cli, id)
	if containerd != (id == archive.index) {
		t.Fatalf("image ID %s (containerd store: %v); the index is %s", id, containerd, archive.index)
	}
	t.Logf("listed as %s, size %d bytes (each platform's layer is 2 MiB and the sleeper)", id, size)

	// The listing counts every platform's content; an inspect, this
	// platform's only. The plan and the report use the listing.
	if img, err := s.rt.InspectImage(ctx, id); err != nil {
		t.Errorf("inspect %s: %v", id, err)
	} else {
		t.Logf("inspected: size %d bytes", img.Size)
	}
	// The folder that holds the images, as the agent finds it (containerd's
	// root under the containerd store, proven by this image's own blobs).
	host, err := runtimehost.Open(ctx, s.rt, runtimehost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	measured, err := host.Disk(ctx)()
	if err != nil {
		t.Fatal(err)
	}
	blob := func(digest string) string {
		return filepath.Join(measured.Path, "io.containerd.content.v1.content", "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
	}
	if _, err := os.Stat(blob(archive.index)); containerd && err != nil {
		t.Fatalf("the index's blob is not in %s, the folder measured: %v", measured.Path, err)
	}
	out := s.sweep(s.spec(ref))
	if len(out.Result.RemovedImages) != 1 || testenv.ImageExists(t, s.cli, ref) || testenv.ImageExists(t, s.cli, id) {
		t.Fatalf("the multi-platform image did not go: %+v", out.Result)
	}
	if out.Result.BytesReclaimed != size {
		t.Errorf("bytes reclaimed %d, the engine reported %d", out.Result.BytesReclaimed, size)
	}
	if !containerd {
		return
	}
	for i, digest := range append([]string{archive.index}, archive.platformBlob...) {
		if _, err := os.Stat(blob(digest)); err == nil {
			t.Errorf("blob %d (%s) is still in containerd's content store", i, digest)
		}
	}
}

type errorText []byte

func (e errorText) Error() string { return string(e) }
