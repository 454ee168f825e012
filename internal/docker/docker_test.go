package docker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// The image clock learns last uses from the engine's event stream: a
// container that runs and exits yields its start and its die, with its ID.
func TestWatchContainersSeesStartAndDie(t *testing.T) {
	cli := testenv.Docker(t)
	rt, err := docker.New(testenv.DockerHost(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[string][]string{}
	done := make(chan error, 1)
	go func() {
		done <- rt.WatchContainers(ctx, func(e engine.ContainerEvent) {
			mu.Lock()
			seen[e.ContainerID] = append(seen[e.ContainerID], e.Action)
			mu.Unlock()
		})
	}()
	time.Sleep(200 * time.Millisecond) // the stream is open before the container starts
	ref := "itest.local/" + testenv.UniqueName("events") + "/app:1"
	testenv.ImportImage(t, cli, ref)
	id := testenv.CreateContainer(t, cli, ref, testenv.ContainerOptions{Run: "exit"})
	for {
		mu.Lock()
		got := append([]string(nil), seen[id]...)
		mu.Unlock()
		if len(got) == 2 && got[0] == "start" && got[1] == "die" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("events of the container: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the watch ended with %v, want the context's end", err)
	}
}

// A host that is not an address is refused before any call.
func TestBadHost(t *testing.T) {
	for _, host := range []string{"bogus://x", "ssh://user@host", "/var/run/docker.sock"} {
		if _, err := docker.New(host); !errors.Is(err, docker.ErrBadHost) {
			t.Errorf("New(%q) = %v, want ErrBadHost", host, err)
		}
	}
}
