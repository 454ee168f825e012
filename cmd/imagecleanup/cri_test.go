package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultgrpc"
)

// The same CLI on containerd's CRI (issue 20): plan changes nothing, apply
// removes the stopped container and then the image, a running container's
// image is blocked, and the document says which runtime it was.
func TestCRIPlanAndApply(t *testing.T) {
	c := testenv.CRIRuntime(t)
	reg := testenv.StartRegistry(t)
	repo := testenv.UniqueName("cli")
	id := c.Image(reg, repo+"/app", "1")
	ctr := c.Container(id, seed.Exited, nil)
	busy := c.Image(reg, repo+"/busy", "1")
	c.Container(busy, seed.Running, nil)
	policy := writePolicy(t, policyYAML("  images: [\""+reg.Host+"/"+repo+"/**\"]\n  minImageAge: 0s\n  stoppedContainers: {minStoppedAge: 0s}\n"))

	code, stdout, stderr := runCLI("plan", "-f", policy, "--runtime-endpoint", c.Endpoint)
	if code != exitOK || !strings.Contains(stdout, "would remove 1 image (1 deleted") || !strings.Contains(stdout, "RunningContainer") {
		t.Fatalf("plan: exit %d\n%s%s", code, stdout, stderr)
	}
	if !c.HasImage(id) || !c.HasContainer(ctr) {
		t.Fatal("plan changed the runtime")
	}
	code, stdout, stderr = runCLI("apply", "-f", policy, "--runtime-endpoint", c.Endpoint, "-o", "json", "--fail-on-blocked")
	if code != exitBlocked {
		t.Fatalf("apply: exit %d, want %d (blocked)\n%s%s", code, exitBlocked, stdout, stderr)
	}
	var doc document
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, stdout)
	}
	if doc.Endpoint != c.Endpoint || doc.Summary.ImagesDeleted != 1 || doc.Summary.ContainersRemoved != 1 || doc.Summary.Blocked != 1 ||
		doc.Blocked[0].ImageID != busy || doc.APICalls["ListImages"] != 1 {
		t.Fatalf("unexpected document: %+v", doc)
	}
	if c.HasImage(id) || c.HasContainer(ctr) || !c.HasImage(busy) {
		t.Fatal("apply did not do what it reported")
	}
}

// A Docker host and a CRI endpoint together are a usage error.
func TestOneRuntimeOnly(t *testing.T) {
	policy := writePolicy(t, policyYAML("  images: [busybox]\n"))
	code, _, stderr := runCLI("plan", "-f", policy, "--docker-host", "unix:///a.sock", "--runtime-endpoint", "unix:///b.sock")
	if code != exitInvalid || !strings.Contains(stderr, "not both") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// removeImageMethod is the CRI's image removal, as the proxy names it.
const removeImageMethod = "/runtime.v1.ImageService/RemoveImage"

// countScene is n images of one repository (tags 1..n) on the private
// containerd, a policy that selects them all, a proxy in front of the
// runtime that can stall it or let it die, and a state folder.
type countScene struct {
	c      *testenv.CRI
	ids    []string
	policy string
	proxy  *faultgrpc.Proxy
	state  string
}

func newCountScene(t *testing.T, n int) *countScene {
	t.Helper()
	s := &countScene{c: testenv.CRIRuntime(t), state: t.TempDir()}
	reg := testenv.StartRegistry(t)
	repo := testenv.UniqueName("cli-count")
	for i := range n {
		s.ids = append(s.ids, s.c.Image(reg, repo, fmt.Sprint(i+1)))
	}
	s.policy = writePolicy(t, policyYAML("  images: [\""+reg.Host+"/"+repo+":*\"]\n  minImageAge: 0s\n"))
	proxy, err := faultgrpc.Start(s.c.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	s.proxy = proxy
	return s
}

// applyJSON runs apply with JSON output and reads its document.
func applyJSON(t *testing.T, args ...string) (int, document) {
	t.Helper()
	code, stdout, stderr := runCLI(append([]string{"apply", "-o", "json"}, args...)...)
	var doc document
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("apply: exit %d, no document: %v\n%s%s", code, err, stdout, stderr)
	}
	return code, doc
}

// counted is what one output counts as gone of the images: removed by the
// run, and recovered from an earlier one.
func counted(doc document) int { return doc.Summary.ImagesRemoved + doc.Summary.ImagesRecovered }

// A CLI run killed mid-sweep: what the runtime lost by its hand is counted
// by the next run's output, once ("recovered"), and by no later one. (The
// killed run printed nothing; the next one used to count only its own.)
func TestCRIRunKilledMidSweepIsCountedByTheNextOutput(t *testing.T) {
	s := newCountScene(t, 6)
	c, ids, policy, proxy, state := s.c, s.ids, s.policy, s.proxy, s.state
	proxy.StallAfter(removeImageMethod, 2)

	args, _ := json.Marshal([]string{"apply", "-f", policy, "--runtime-endpoint", proxy.Endpoint(), "--state-dir", state, "--max-runtime-calls", "1"})
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), cliChildArgs+"="+string(args))
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for proxy.Calls(removeImageMethod) <= 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = child.Process.Kill() // stalled on its third removal, two done
	_ = child.Wait()
	gone := 0
	for _, id := range ids {
		if !c.HasImage(id) {
			gone++
		}
	}
	if gone != 2 {
		t.Fatalf("the killed run removed %d images, want 2", gone)
	}

	code, doc := applyJSON(t, "-f", policy, "--runtime-endpoint", c.Endpoint, "--state-dir", state)
	if code != exitOK || doc.Summary.ImagesRecovered != 2 || doc.Recovered == nil || counted(doc) != len(ids) {
		t.Fatalf("the next run (exit %d) counts %d removed and %d recovered, want %d in all: %+v",
			code, doc.Summary.ImagesRemoved, doc.Summary.ImagesRecovered, len(ids), doc.Recovered)
	}
	if _, again := applyJSON(t, "-f", policy, "--runtime-endpoint", c.Endpoint, "--state-dir", state); counted(again) != 0 {
		t.Fatalf("a later run counts them again: %+v", again.Summary)
	}
}

// containerd killed under a removal (it deleted the image's record, and
// died before it answered): the run cannot list the runtime afterwards, so
// its output cannot count the removal; the next run's does, once.
func TestCRIRuntimeKilledUnderARemovalIsCountedByTheNextRun(t *testing.T) {
	s := newCountScene(t, 6)
	c, ids, policy, proxy, state := s.c, s.ids, s.policy, s.proxy, s.state
	proxy.DieAt(removeImageMethod)

	code, first := applyJSON(t, "-f", policy, "--runtime-endpoint", proxy.Endpoint(), "--state-dir", state)
	if code != exitError || first.Summary.Failed == 0 {
		t.Fatalf("the run under a dying runtime: exit %d, %+v", code, first.Summary)
	}
	proxy.Revive()
	_, second := applyJSON(t, "-f", policy, "--runtime-endpoint", proxy.Endpoint(), "--state-dir", state)
	for _, id := range ids {
		if c.HasImage(id) {
			t.Fatalf("image %s is still there after the second run: %+v", id, second)
		}
	}
	if total := counted(first) + counted(second); total != len(ids) || second.Summary.ImagesRecovered == 0 {
		t.Fatalf("the outputs count %d+%d images gone, want %d in all (the second recovering what the first could not count)",
			counted(first), counted(second), len(ids))
	}
}
