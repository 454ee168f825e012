package testenv_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

func runScript(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", name), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/%s %v: %v", name, args, err)
	}
	return strings.TrimSpace(string(out))
}

// A preset KUBEBUILDER_ASSETS wins: nothing is built.
func TestEnvtestAssetsHonoursPreset(t *testing.T) {
	if got := runScript(t, []string{"KUBEBUILDER_ASSETS=/opt/my-assets"}, "envtest-assets.sh"); got != "/opt/my-assets" {
		t.Fatalf("printed %q", got)
	}
}

// Starting the private dockerd again while it runs changes nothing: same
// address, same process.
func TestDockerdScriptIsIdempotent(t *testing.T) {
	host := testenv.DockerHost(t)
	testenv.Docker(t) // it answers
	dir := filepath.Dir(strings.TrimPrefix(host, "unix://"))
	env := []string{"IMAGECLEANUP_DOCKERD_DIR=" + dir}
	if host == os.Getenv("TEST_DOCKER29_HOST") { // the pass on Docker 29 (hack/test.sh)
		env = append(env, "IMAGECLEANUP_DOCKERD_BIN_DIR="+os.Getenv("IMAGECLEANUP_DOCKER29_BIN_DIR"))
	}
	if runScript(t, env, "dockerd.sh", "env") != "export DOCKER_HOST="+host {
		testenv.Unavailable(t, "the private dockerd of this run is not the one hack/dockerd.sh manages in this checkout")
	}
	pidFile := filepath.Join(dir, "dockerd.pid")
	before, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := runScript(t, env, "dockerd.sh", "start"); got != host {
			t.Fatalf("start printed %q, want %q", got, host)
		}
	}
	after, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatalf("a second start replaced dockerd %s with %s", before, after)
	}
}
