// Package seed fills a Docker engine with what tests, the benchmark and the
// demo need: images FROM scratch that hold one static program (no registry
// is needed), tagged as asked, and containers of them in the state asked.
// It does not import testing; internal/testenv wraps it for tests.
package seed

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// State is what a seeded container is left as.
type State string

const (
	// Created is created and never started.
	Created State = "created"
	// Exited is started and run to completion.
	Exited State = "exited"
	// Running is started and sleeping (an hour).
	Running State = "running"
)

var (
	programOnce sync.Once
	program     []byte
	programErr  error
)

// Program is the static binary every seeded image runs, built once per
// process from ./sleeper: it exits at once, or sleeps an hour when its
// argument is "sleep".
func Program() ([]byte, error) {
	programOnce.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		dir, err := os.MkdirTemp("", "imagecleanup-sleeper-")
		if err != nil {
			programErr = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "sleeper")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
		cmd.Dir = filepath.Join(filepath.Dir(self), "sleeper")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			programErr = fmt.Errorf("go build sleeper: %w\n%s", err, out)
			return
		}
		program, programErr = os.ReadFile(bin)
	})
	return program, programErr
}

// Rootfs is a root filesystem (a tar) holding the program as /sleeper and a
// file with unique in it, so that each image made from it has its own ID,
// as real images do.
func Rootfs(program []byte, unique string) []byte {
	return Tar(File{Name: "sleeper", Mode: 0o755, Data: program}, File{Name: "unique", Mode: 0o644, Data: []byte(unique)})
}

// File is one file of an archive made by Tar.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// Tar packs files into a tar archive (an image's root filesystem, a build
// context), with fixed times so the same files give the same bytes.
func Tar(files ...File) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		// Writing to a bytes.Buffer cannot fail.
		_ = tw.WriteHeader(&tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: time.Unix(0, 0)})
		_, _ = tw.Write(f.Data)
	}
	_ = tw.Close()
	return buf.Bytes()
}

// Docker seeds one Docker engine.
type Docker struct {
	Client *client.Client
	// Labels go on every image and container seeded, so that they can be
	// found and cleaned up.
	Labels map[string]string
}

var uniqueness struct {
	sync.Mutex
	n int
}

func unique(refs []string) string {
	uniqueness.Lock()
	defer uniqueness.Unlock()
	uniqueness.n++
	return fmt.Sprintf("%v %d %d %d", refs, os.Getpid(), time.Now().UnixNano(), uniqueness.n)
}

// Image imports a new image holding the program, tags it with every ref
// (none makes a dangling image) and returns its ID.
func (e *Docker) Image(ctx context.Context, refs ...string) (string, error) {
	return e.ImageOfSize(ctx, 0, refs...)
}

// ImageOfSize is Image with a file of size random (incompressible) bytes
// added, to fill a disk.
func (e *Docker) ImageOfSize(ctx context.Context, size int, refs ...string) (string, error) {
	prog, err := Program()
	if err != nil {
		return "", err
	}
	files := []File{{Name: "sleeper", Mode: 0o755, Data: prog}, {Name: "unique", Mode: 0o644, Data: []byte(unique(refs))}}
	if size > 0 {
		payload := make([]byte, size)
		_, _ = rand.Read(payload) // crypto/rand does not fail
		files = append(files, File{Name: "payload", Mode: 0o644, Data: payload})
	}
	changes := []string{`ENTRYPOINT ["/sleeper"]`}
	for k, v := range e.Labels {
		changes = append(changes, "LABEL "+k+"="+v)
	}
	rc, err := e.Client.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(Tar(files...)), SourceName: "-"}, "",
		client.ImageImportOptions{Changes: changes})
	if err != nil {
		return "", fmt.Errorf("import image: %w", err)
	}
	id, err := importedID(rc)
	if err != nil {
		return "", fmt.Errorf("import image: %w", err)
	}
	for _, ref := range refs {
		if _, err := e.Client.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: ref}); err != nil {
			return "", fmt.Errorf("tag %s: %w", ref, err)
		}
	}
	return id, nil
}

// ContainerOptions shape a seeded container.
type ContainerOptions struct {
	Name   string
	Labels map[string]string
	// SleepWhenStarted makes a Created container sleep once started, so
	// that whoever starts it later finds it running.
	SleepWhenStarted bool
}

// Container makes a container of img, with no network, left in state.
func (e *Docker) Container(ctx context.Context, img string, state State, opts ContainerOptions) (string, error) {
	labels := map[string]string{}
	for k, v := range e.Labels {
		labels[k] = v
	}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	cfg := &container.Config{Image: img, Labels: labels}
	if state == Running || opts.SleepWhenStarted {
		cfg.Cmd = []string{"sleep"}
	}
	created, err := e.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: &container.HostConfig{NetworkMode: "none"}, Name: opts.Name})
	if err != nil {
		return "", fmt.Errorf("create container of %s: %w", img, err)
	}
	switch state {
	case Created:
	case Exited, Running:
		if _, err := e.Client.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
			return created.ID, fmt.Errorf("start container %s: %w", created.ID, err)
		}
		if state == Exited {
			if err := waitStopped(ctx, e.Client, created.ID); err != nil {
				return created.ID, fmt.Errorf("wait for container %s: %w", created.ID, err)
			}
		}
	default:
		return created.ID, fmt.Errorf("unknown container state %q", state)
	}
	return created.ID, nil
}

// waitStopped waits until a started container is no longer running.
func waitStopped(ctx context.Context, cli *client.Client, id string) error {
	wait := cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-wait.Result:
	case err := <-wait.Error:
		return err
	}
	// Docker 29 answers the wait when the task exits, and may list the
	// container as running a moment longer: wait until it says it stopped.
	for range 200 {
		res, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return err
		}
		if res.Container.State != nil && !res.Container.State.Running {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("container %s still runs 10 s after it exited", id)
}

// importedID reads the image ID from the progress stream of an import, and
// closes it.
func importedID(rc io.ReadCloser) (string, error) {
	defer rc.Close()
	dec := json.NewDecoder(rc)
	var id string
	for {
		var msg struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return "", err
		}
		if msg.Error != "" {
			return "", fmt.Errorf("%s", msg.Error)
		}
		if strings.HasPrefix(msg.Status, "sha256:") {
			id = strings.TrimSpace(msg.Status)
		}
	}
	if id == "" {
		return "", fmt.Errorf("no image ID in the import response")
	}
	return id, nil
}
