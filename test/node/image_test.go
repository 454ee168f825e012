package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// The node runs the image users build: the shipped Dockerfile (its base
// images replaced by local stand-ins through its build arguments), with
// both binaries and the version it stamps.
func TestTheNodeRunsTheShippedImage(t *testing.T) {
	n := testDockerNode(t)
	want := os.Getenv("TEST_CLUSTER_AGENT_VERSION")
	if want == "" {
		t.Fatal("TEST_CLUSTER_AGENT_VERSION is not set (hack/cluster.sh env sets it)")
	}
	ctx := context.Background()
	img, err := n.docker.ImageInspect(ctx, n.agentImage)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Config.Entrypoint; len(got) != 1 || got[0] != "/manager" {
		t.Errorf("entrypoint %q, want the Dockerfile's [/manager]", got)
	}
	pod := n.agentPod(t)
	for _, cs := range pod.Status.ContainerStatuses {
		if !strings.HasSuffix(cs.ImageID, img.ID) {
			t.Errorf("agent container %s runs image %s, not %s (%s)", cs.Name, cs.ImageID, n.agentImage, img.ID)
		}
	}

	// The CLI the Dockerfile puts beside the manager runs, stamped.
	out := runOnce(t, n, n.agentImage, "/imagecleanup", "version", "-o", "json")
	var v struct{ Version string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version != want {
		t.Errorf("imagecleanup version in the image: %q (%v), want version %s", out, err, want)
	}
}

// runOnce runs entrypoint args in a new container of image on the node's
// runtime (no network) and returns what it printed; the container is removed.
func runOnce(t *testing.T, n *node, image string, entrypoint string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := n.docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Entrypoint: []string{entrypoint}, Cmd: args},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_, _ = n.docker.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	}()
	if _, err := n.docker.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	wait := n.docker.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	waitC, errC := wait.Result, wait.Error
	select {
	case w := <-waitC:
		if w.StatusCode != 0 {
			t.Errorf("%s %v exited %d", entrypoint, args, w.StatusCode)
		}
	case err := <-errC:
		t.Fatal(err)
	}
	logs, err := n.docker.ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Logf("%s %v: %s", entrypoint, args, stderr.String())
	}
	return stdout.String()
}
