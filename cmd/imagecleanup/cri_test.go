package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// The same CLI on containerd's CRI (issue 20): plan changes nothing, apply
// removes the stopped container and then the image, a running container's
// image is blocked, and the document says which runtime it was.
func TestPlanAndApplyOnContainerd(t *testing.T) {
	c := testenv.Containerd(t)
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
	if doc.Engine != c.Endpoint || doc.Summary.ImagesDeleted != 1 || doc.Summary.ContainersRemoved != 1 || doc.Summary.Blocked != 1 ||
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
