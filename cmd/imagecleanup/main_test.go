package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

func writePolicy(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func policyYAML(spec string) string {
	return "apiVersion: imagecleanup.io/v1alpha1\nkind: ImageCleanupPolicy\nmetadata:\n  name: test\nspec:\n" + spec
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestInvalidInputExitsTwo(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"no mode":         {[]string{}, "plan or apply"},
		"unknown mode":    {[]string{"remove", "-f", "x"}, "plan or apply"},
		"no file":         {[]string{"plan"}, "-f policy.yaml is required"},
		"bad output":      {[]string{"plan", "-f", "x", "-o", "xml"}, "table or json"},
		"missing file":    {[]string{"plan", "-f", "/nonexistent/policy.yaml"}, "no such file"},
		"invalid pattern": {[]string{"apply", "-f", writePolicy(t, policyYAML("  images: [\"Busy Box\"]\n"))}, `spec.images[0]: Invalid value: "Busy Box": must not contain spaces`},
		"unknown field":   {[]string{"apply", "-f", writePolicy(t, policyYAML("  images: [busybox]\n  forse: true\n"))}, `unknown field "forse"`},
		"wrong kind":      {[]string{"apply", "-f", writePolicy(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")}, "kind ImageCleanupPolicy"},
		"two policies":    {[]string{"plan", "-f", writePolicy(t, policyYAML("  images: [a]\n")+"---\n"+policyYAML("  images: [b]\n"))}, "2 YAML documents"},
		"empty file":      {[]string{"plan", "-f", writePolicy(t, "")}, "0 YAML documents"},
		"interval":        {[]string{"plan", "-f", writePolicy(t, policyYAML("  images: [busybox]\n  interval: 10s\n"))}, "interval must be at least 1m"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(tc.args...)
			if code != exitInvalid {
				t.Fatalf("exit %d, want %d; stderr %q", code, exitInvalid, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Fatalf("stderr %q does not say %q", stderr, tc.want)
			}
			if first, _, _ := strings.Cut(stderr, "\n"); !strings.HasPrefix(first, "imagecleanup: ") {
				t.Fatalf("the error is not on one line of its own: %q", stderr)
			}
		})
	}
}

func TestUnreachableEngineExitsOne(t *testing.T) {
	policy := writePolicy(t, policyYAML("  images: [busybox]\n"))
	code, _, stderr := runCLI("plan", "-f", policy, "--docker-host", "unix://"+filepath.Join(t.TempDir(), "no.sock"))
	if code != exitError || !strings.Contains(stderr, "cannot reach the Docker engine") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestSuspendedPolicyDoesNothing(t *testing.T) {
	policy := writePolicy(t, policyYAML("  images: [\"**\"]\n  suspend: true\n  minImageAge: 0s\n"))
	code, stdout, _ := runCLI("apply", "-f", policy, "--docker-host", "unix:///nonexistent.sock")
	if code != exitOK || !strings.Contains(stdout, "suspended") {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
}

// plan changes nothing, apply removes, JSON is what docs/cli.md says, and
// --fail-on-blocked turns a blocked image into exit 3. On the private dockerd.
func TestPlanAndApply(t *testing.T) {
	cli := testenv.Docker(t)
	host := testenv.DockerHost(t)
	repo := "cli.local/" + testenv.UniqueName("cli")
	id := testenv.ImportImage(t, cli, repo+"/app:1")
	c := testenv.CreateContainer(t, cli, repo+"/app:1", testenv.ContainerOptions{Run: "exit"})
	busy := testenv.ImportImage(t, cli, repo+"/busy:1")
	testenv.CreateContainer(t, cli, repo+"/busy:1", testenv.ContainerOptions{Run: "sleep"})
	policy := writePolicy(t, policyYAML("  images: [\""+repo+"/**\"]\n  minImageAge: 0s\n  stoppedContainers: {minStoppedAge: 0s}\n"))

	code, stdout, stderr := runCLI("plan", "-f", policy, "--docker-host", host)
	if code != exitOK || !strings.Contains(stdout, "would remove 1 images") || !strings.Contains(stdout, "RunningContainer") {
		t.Fatalf("plan: exit %d\n%s%s", code, stdout, stderr)
	}
	if !testenv.ImageExists(t, cli, id) || !testenv.ContainerExists(t, cli, c) {
		t.Fatal("plan changed the engine")
	}

	code, stdout, stderr = runCLI("apply", "-f", policy, "--docker-host", host, "-o", "json", "--fail-on-blocked")
	if code != exitBlocked {
		t.Fatalf("apply: exit %d, want %d (blocked)\n%s%s", code, exitBlocked, stdout, stderr)
	}
	var doc document
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, stdout)
	}
	if doc.Kind != "SweepResult" || doc.Mode != "apply" || doc.DryRun || doc.Summary.ImagesDeleted != 1 ||
		doc.Summary.ContainersRemoved != 1 || doc.Summary.Blocked != 1 || doc.Blocked[0].ImageID != busy || doc.APICalls["ImageList"] != 1 {
		t.Fatalf("unexpected document: %+v", doc)
	}
	if testenv.ImageExists(t, cli, id) || testenv.ContainerExists(t, cli, c) || !testenv.ImageExists(t, cli, busy) {
		t.Fatal("apply did not do what it reported")
	}
}
