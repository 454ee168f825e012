package docker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/moby/moby/client"
)

// The image clock learns from the engine's events: a container that runs,
// exits and is removed yields its create, start, die and destroy, naming
// the image it was created from; an image deleted yields its delete.
func TestEventsFollow(t *testing.T) {
	cli, rt := engineUnderTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[string][]string{}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- rt.Events(ctx, time.Time{}, true, func(e runtime.Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.Kind == runtime.EventNow {
				close(ready)
				return
			}
			seen[e.ID] = append(seen[e.ID], string(e.Kind)+" "+e.Image)
		})
	}()
	<-ready
	ref := "itest.local/" + testenv.UniqueName("events") + "/app:1"
	img := testenv.ImportImage(t, cli, ref)
	id := testenv.CreateContainer(t, cli, ref, testenv.ContainerOptions{Run: "exit"})
	testenv.RemoveContainer(t, cli, id)
	testenv.RemoveImage(cli, img)
	want := []string{"ContainerCreated " + ref, "ContainerStarted " + ref, "ContainerStopped " + ref, "ContainerRemoved " + ref}
	for {
		mu.Lock()
		got, gotImage := slices.Clone(seen[id]), slices.Clone(seen[img])
		mu.Unlock()
		if slices.Equal(got, want) && slices.Contains(gotImage, "ImageRemoved ") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("events of the container: %q, want %q; of the image: %q", got, want, gotImage)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the stream ended with %v, want the context's end", err)
	}
}

// A replay from a past time delivers what the engine still holds, then the
// engine's present; when more events than the engine keeps came since, a
// gap comes first, so the clock knows that it cannot know.
func TestEventsReplayAndGap(t *testing.T) {
	cli, rt := engineUnderTest(t)
	ctx := context.Background()
	replay := func(since time.Time) (actions []string, gap, now time.Time) {
		t.Helper()
		err := rt.Events(ctx, since, false, func(e runtime.Event) {
			switch e.Kind {
			case runtime.EventGap:
				gap = e.Time
			case runtime.EventNow:
				now = e.Time
			default:
				actions = append(actions, string(e.Kind))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return actions, gap, now
	}
	_, _, before := replay(time.Now().Add(-time.Millisecond))
	ref := "itest.local/" + testenv.UniqueName("replay") + "/app:1"
	img := testenv.ImportImage(t, cli, ref)
	testenv.RemoveImage(cli, img)
	actions, gap, now := replay(before)
	if !slices.Contains(actions, string(runtime.ImageRemoved)) || !gap.IsZero() || !now.After(before) {
		t.Fatalf("replay since %s: %v, gap %v, now %v", before, actions, gap, now)
	}
	// 300 tag and untag events push the delete out of the engine's buffer.
	noise := testenv.ImportImage(t, cli, "itest.local/"+testenv.UniqueName("noise")+"/app:0")
	for i := range 150 {
		tag := fmt.Sprintf("itest.local/noise/app:%d", i)
		if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: noise, Target: tag}); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	actions, gap, _ = replay(before)
	if gap.IsZero() || slices.Contains(actions, string(runtime.ImageRemoved)) {
		t.Fatalf("after 300 events the replay since %s shows no gap (%v) or still the delete", before, gap)
	}
}

// engineUnderTest is the private engine, held for the test, through the
// client and through the adapter (closed when the test ends).
func engineUnderTest(t *testing.T) (*client.Client, *docker.Runtime) {
	t.Helper()
	cli := testenv.Docker(t)
	rt, err := docker.New(testenv.DockerHost(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return cli, rt
}

// A host that is not an address is refused before any call.
func TestBadHost(t *testing.T) {
	for _, host := range []string{"bogus://x", "ssh://user@host", "/var/run/docker.sock"} {
		if _, err := docker.New(host); !errors.Is(err, docker.ErrBadHost) {
			t.Errorf("New(%q) = %v, want ErrBadHost", host, err)
		}
	}
}

// Issue 19: the engine says what it is and where it keeps images: the
// classic store's driver on Docker 20.10, containerd on Docker 29's default.
func TestInfoNamesTheEngineAndItsImageStore(t *testing.T) {
	cli, rt := engineUnderTest(t)
	info, err := rt.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := runtime.ContainerdStore
	if !testenv.ContainerdStore(t, cli) {
		want = "overlay2"
	}
	if info.Name != "docker" || info.Version == "" || info.ImageStore != want {
		t.Fatalf("info %+v, want docker, a version and image store %s", info, want)
	}
}

// The client (github.com/moby/moby/client) negotiates the API version with
// each engine: Docker 20.10's 1.41 and Docker 29's 1.56 are both spoken as
// the engine speaks them, never a newer one it would refuse.
func TestAPIVersionIsNegotiated(t *testing.T) {
	cli, rt := engineUnderTest(t)
	ctx := context.Background()
	if err := rt.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	server, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rt.APIVersion(); got != server.APIVersion {
		t.Errorf("the adapter speaks API %s to an engine of API %s (engine %s)", got, server.APIVersion, server.Version)
	}
	if _, err := rt.ListImages(ctx); err != nil {
		t.Errorf("a call at the negotiated version: %v", err)
	}
	t.Logf("engine %s, API %s (minimum %s)", server.Version, server.APIVersion, server.MinAPIVersion)
}

// Force on an image a stopped container uses, by reference and by ID. The
// engines differ by reference: Docker 20.10 untags and deletes it, Docker
// 29's containerd store only untags it, leaving it dangling (untagged, with
// its container). By ID both delete it and keep the container: a forced
// removal goes by ID (docs/runtime-behaviour.md), the same on both.
func TestForceOnAnImageInUse(t *testing.T) {
	cli, rt := engineUnderTest(t)
	ctx := context.Background()
	containerd := testenv.ContainerdStore(t, cli)
	for _, by := range []string{"reference", "ID"} {
		ref := "itest.local/" + testenv.UniqueName("force") + "/app:1"
		id := testenv.ImportImage(t, cli, ref)
		c := testenv.CreateContainer(t, cli, ref, testenv.ContainerOptions{Run: "exit"})
		target := ref
		if by == "ID" {
			target = id
		}
		if _, err := rt.RemoveImage(ctx, target, runtime.RemoveImageOptions{Force: true}); err != nil {
			t.Fatalf("force by %s: %v", by, err)
		}
		wantLeft := by == "reference" && containerd
		if left := testenv.ImageExists(t, cli, id); left != wantLeft {
			t.Errorf("force by %s on the %s store: image left %v, want %v", by, store(containerd), left, wantLeft)
		}
		if testenv.ImageExists(t, cli, ref) {
			t.Errorf("force by %s: the tag stays", by)
		}
		if !testenv.ContainerExists(t, cli, c) {
			t.Errorf("force by %s removed the container", by)
		}
	}
}

func store(containerd bool) string {
	if containerd {
		return "containerd"
	}
	return "classic"
}

// The sandbox (pause) container of a pod the kubelet runs through
// cri-dockerd is told by its label; the planner keeps its image.
func TestASandboxIsToldByCriDockerdsLabel(t *testing.T) {
	cli, rt := engineUnderTest(t)
	ref := "itest.local/" + testenv.UniqueName("sandbox") + "/pause:1"
	img := testenv.ImportImage(t, cli, ref)
	sandbox := testenv.CreateContainer(t, cli, img, testenv.ContainerOptions{Labels: map[string]string{"io.kubernetes.docker.type": "podsandbox"}})
	plain := testenv.CreateContainer(t, cli, img, testenv.ContainerOptions{Labels: map[string]string{"io.kubernetes.docker.type": "container"}})
	containers, err := rt.ListContainers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range containers {
		if c.ID == sandbox || c.ID == plain {
			seen[c.ID] = c.Sandbox
		}
	}
	if len(seen) != 2 || !seen[sandbox] || seen[plain] {
		t.Fatalf("sandbox flags %v, want %s a sandbox and %s not", seen, sandbox, plain)
	}
}
