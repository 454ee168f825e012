package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultproxy"
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
		"unknown command": {[]string{"remove", "-f", "x"}, `unknown command "remove" for "imagecleanup"`},
		"unknown flag":    {[]string{"plan", "--bogus"}, "unknown flag: --bogus"},
		"no file":         {[]string{"plan"}, "-f policy.yaml is required"},
		"bad output":      {[]string{"plan", "-f", "x", "-o", "xml"}, "--output must be table, json or yaml"},
		"missing file":    {[]string{"plan", "-f", "/nonexistent/policy.yaml"}, "no such file"},
		"invalid pattern": {[]string{"apply", "-f", writePolicy(t, policyYAML("  images: [\"Busy Box\"]\n"))}, `* spec.images[0]: Invalid value: "Busy Box": must not contain spaces`},
		"unknown field":   {[]string{"apply", "-f", writePolicy(t, policyYAML("  images: [busybox]\n  forse: true\n"))}, `* unknown field "spec.forse"`},
		"wrong kind":      {[]string{"apply", "-f", writePolicy(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")}, "want imagecleanup.io/v1alpha1 and ImageCleanupPolicy"},
		"two policies":    {[]string{"plan", "-f", writePolicy(t, policyYAML("  images: [a]\n")+"---\n"+policyYAML("  images: [b]\n"))}, "2 ImageCleanupPolicies; plan and apply take one"},
		"empty file":      {[]string{"plan", "-f", writePolicy(t, "")}, "0 ImageCleanupPolicies"},
		"no policy among others": {[]string{"plan", "-f", writePolicy(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: y}\n")},
			"0 ImageCleanupPolicies"},
		"bad metadata": {[]string{"plan", "-f", writePolicy(t, strings.Replace(policyYAML("  images: [a]\n"), "metadata:", "metadata:\n  lables: {a: b}", 1))},
			`* unknown field "metadata.lables"`},
		"interval": {[]string{"plan", "-f", writePolicy(t, policyYAML("  images: [busybox]\n  interval: 10s\n"))}, "interval must be at least 1m"},
		"two reasons": {[]string{"plan", "-f", writePolicy(t, policyYAML("  images: [busybox]\n  interval: 10s\n  maxImagesPerSweep: -1\n"))},
			"* spec.maxImagesPerSweep"},
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
			checkErrorLines(t, stderr)
		})
	}
}

// checkErrorLines: "error: " first, as kubectl; then one reason per line
// ("* "), or where to find the usage.
func checkErrorLines(t *testing.T, stderr string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "error: ") {
		t.Fatalf("the error does not start with \"error: \": %q", stderr)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "* ") && !strings.HasPrefix(l, "See 'imagecleanup") {
			t.Fatalf("line %q is neither a reason nor the usage hint:\n%s", l, stderr)
		}
	}
}

func TestHelpVersionAndCompletion(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"plan", "--help"}, {"help", "validate"}} {
		code, stdout, stderr := runCLI(args...)
		if code != exitOK || !strings.Contains(stdout, "Usage:") || stderr != "" {
			t.Errorf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
	if code, stdout, _ := runCLI("plan", "--help"); code != exitOK || !strings.Contains(stdout, "-f, --filename") || !strings.Contains(stdout, "--protect-images") {
		t.Errorf("plan --help does not list its flags GNU-style:\n%s", stdout)
	}
	code, stdout, _ := runCLI("version")
	if code != exitOK || !strings.HasPrefix(stdout, "imagecleanup v") {
		t.Errorf("version: exit %d %q", code, stdout)
	}
	code, stdout, _ = runCLI("version", "-o", "json")
	var v struct{ Version, GoVersion string }
	if err := json.Unmarshal([]byte(stdout), &v); code != exitOK || err != nil || v.Version == "" || v.GoVersion == "" {
		t.Errorf("version -o json: exit %d %v %q", code, err, stdout)
	}
	if code, stdout, _ := runCLI("--version"); code != exitOK || !strings.HasPrefix(stdout, "imagecleanup v") {
		t.Errorf("--version: exit %d %q", code, stdout)
	}
	if code, stdout, _ := runCLI("completion", "bash"); code != exitOK || !strings.Contains(stdout, "__start_imagecleanup") {
		t.Errorf("completion bash: exit %d", code)
	}
}

func TestValidateIsOffline(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.yaml", policyYAML("  images: [busybox]\n"))
	write("typo.yaml", policyYAML("  images: [busybox]\n  minImageAg: 1h\n  interval: 10s\n"))
	write("others.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"+policyYAML("  images: [app]\n"))
	write("notes.txt", "not a policy")

	// No runtime, no cluster: DOCKER_HOST and KUBECONFIG point nowhere.
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	t.Setenv("KUBECONFIG", "/nonexistent")
	code, stdout, stderr := runCLI("validate", "-f", good)
	if code != exitOK || !strings.Contains(stdout, `ImageCleanupPolicy "test" is valid`) || stderr != "" {
		t.Fatalf("a valid policy: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI("validate", "-f", dir)
	if code != exitInvalid {
		t.Fatalf("a folder with an invalid policy: exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{`typo.yaml: ImageCleanupPolicy "test" is invalid:`, `* unknown field "spec.minImageAg"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "good.yaml") || !strings.Contains(stdout, "others.yaml (document 2)") || strings.Contains(stdout+stderr, "notes.txt") {
		t.Errorf("the folder's policies, and only those, are checked:\n%s%s", stdout, stderr)
	}
	// The same file's other reasons, once the typo is fixed: one per line.
	code, _, stderr = runCLI("validate", "-f", write("fixed.yaml", policyYAML("  images: [busybox]\n  minImageAge: 1h\n  interval: 10s\n")))
	if code != exitInvalid || !strings.Contains(stderr, "* spec.interval") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

func TestUnreachableRuntimeExitsOne(t *testing.T) {
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
	// -o yaml is the JSON document, field for field.
	code, stdout, _ = runCLI("apply", "-f", policy, "--docker-host", "unix:///nonexistent.sock", "-o", "yaml")
	var doc document
	if err := yaml.UnmarshalStrict([]byte(stdout), &doc); code != exitOK || err != nil || doc.Kind != "SweepResult" || !doc.Suspended {
		t.Fatalf("-o yaml: exit %d, %v\n%s", code, err, stdout)
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
	if code != exitOK || !strings.Contains(stdout, "would remove 1 image (1 deleted") || !strings.Contains(stdout, "RunningContainer") ||
		!strings.Contains(stdout, "BY REASON") {
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
	if len(doc.Decisions) != 2 || doc.Decisions[0].Reason != "Removed" || doc.Decisions[0].Images != 1 ||
		doc.Decisions[0].Bytes != doc.Summary.BytesReclaimed || doc.Decisions[1].Reason != "RunningContainer" || doc.Decisions[1].Images != 1 {
		t.Fatalf("decisions %+v: want 1 Removed with the bytes reclaimed, 1 RunningContainer", doc.Decisions)
	}
	if testenv.ImageExists(t, cli, id) || testenv.ContainerExists(t, cli, c) || !testenv.ImageExists(t, cli, busy) {
		t.Fatal("apply did not do what it reported")
	}
}

// cliChildArgs, set in the environment, makes the test binary run the CLI
// with these arguments (a JSON list) instead of the tests: a CLI process
// that a test can kill.
const cliChildArgs = "IMAGECLEANUP_TEST_CLI_ARGS"

// The tests never write the image clock into the user's home.
func TestMain(m *testing.M) {
	if args := os.Getenv(cliChildArgs); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Exit(run(context.Background(), argv, os.Stdin, os.Stdout, os.Stderr))
	}
	dir, err := os.MkdirTemp("", "imagecleanup-cli-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_STATE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Finding 6: -f /dev/zero grew memory without bound.
func TestEndlessFileIsRefused(t *testing.T) {
	code, _, stderr := runCLI("plan", "-f", "/dev/zero")
	if code != exitInvalid || !strings.Contains(stderr, "larger than 1048576 bytes") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// blockingReader never yields a byte, like a terminal nobody types into.
type blockingReader struct{ unblock chan struct{} }

func (b blockingReader) Read([]byte) (int, error) {
	<-b.unblock
	return 0, io.EOF
}

// Finding 6: an endless stdin ignored SIGINT. The signal's context ends the read.
func TestSignalWhileReadingStdin(t *testing.T) {
	stdin := blockingReader{unblock: make(chan struct{})}
	defer close(stdin.unblock)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"plan", "-f", "-"}, stdin, &out, &errOut) }()
	select {
	case code := <-done:
		if code != exitError || !strings.Contains(errOut.String(), "interrupted") {
			t.Fatalf("exit %d, stderr %q", code, errOut.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the CLI kept reading after the signal")
	}
}

// Finding 8: the output contract. A suspended policy with -o json prints a
// JSON document; a bad --docker-host is a usage error; **:2/95_4 is refused
// before any runtime is contacted.
func TestOutputContract(t *testing.T) {
	suspended := writePolicy(t, policyYAML("  images: [\"**\"]\n  suspend: true\n"))
	code, stdout, stderr := runCLI("apply", "-f", suspended, "-o", "json", "--docker-host", "unix:///nonexistent.sock")
	var doc document
	if code != exitOK || json.Unmarshal([]byte(stdout), &doc) != nil || !doc.Suspended || doc.RemovedImages == nil {
		t.Fatalf("suspended, -o json: exit %d\n%s%s", code, stdout, stderr)
	}
	valid := writePolicy(t, policyYAML("  images: [busybox]\n"))
	if code, _, stderr := runCLI("plan", "-f", valid, "--docker-host", "bogus://x"); code != exitInvalid || !strings.Contains(stderr, "--docker-host") {
		t.Fatalf("bad --docker-host: exit %d, stderr %q", code, stderr)
	}
	fuzzed := writePolicy(t, policyYAML("  images: [\"**:2/95_4\"]\n"))
	if code, _, stderr := runCLI("plan", "-f", fuzzed, "--docker-host", "unix:///nonexistent.sock"); code != exitInvalid || !strings.Contains(stderr, "whole path segments") {
		t.Fatalf("**:2/95_4: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI("plan", "-f", valid, "--protect-images", "Bad Ref"); code != exitInvalid {
		t.Fatalf("bad --protect-images: exit %d, stderr %q", code, stderr)
	}
	// --max-engine-calls is the deprecated name of --max-runtime-calls.
	for _, name := range []string{"--max-runtime-calls", "--max-engine-calls"} {
		for _, n := range []string{"0", "65"} {
			if code, _, stderr := runCLI("apply", "-f", valid, name, n, "--docker-host", "unix:///nonexistent.sock"); code != exitInvalid ||
				!strings.Contains(stderr, "--max-runtime-calls must be 1 to 64") {
				t.Fatalf("%s %s: exit %d, stderr %q", name, n, code, stderr)
			}
		}
	}
}

// Finding 6: a runtime that answers _ping and stalls on a list hung the
// CLI; now the sweep's deadline (or the call's) ends it with exit 1.
func TestStalledRuntimeEndsTheCLI(t *testing.T) {
	testenv.Docker(t)
	proxy, err := faultproxy.Start(testenv.DockerHost(t))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.On(faultproxy.Rule{Method: http.MethodGet, Path: regexp.MustCompile(`^/images/json$`), Stall: true})
	policy := writePolicy(t, policyYAML("  images: [busybox]\n"))
	start := time.Now()
	code, _, stderr := runCLI("plan", "-f", policy, "--docker-host", proxy.Host(), "--timeout", "1s")
	if code != exitError || !strings.Contains(stderr, "did not answer in time") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("took %s", elapsed)
	}
}

// apply keeps the image clock in --state-dir, one file per runtime.
func TestStateDirHoldsTheClock(t *testing.T) {
	testenv.Docker(t)
	dir := t.TempDir()
	policy := writePolicy(t, policyYAML("  images: [cli.local/nothing/**]\n"))
	if code, stdout, stderr := runCLI("apply", "-f", policy, "--docker-host", testenv.DockerHost(t), "--state-dir", dir); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "engine-*.json"))
	if len(files) != 1 {
		t.Fatalf("state files %v", files)
	}
}

// diskUsage through the CLI: --data-root is measured with statfs; above the
// high watermark the policy's images go, under it nothing does. The data
// root here is a private tmpfs filled by the test (the runtime's own disk is
// the machine's, which the test does not fill).
func TestDiskUsageWithDataRoot(t *testing.T) {
	cli := testenv.Docker(t)
	host := testenv.DockerHost(t)
	root := t.TempDir()
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=16m"); err != nil {
		testenv.Unavailable(t, "cannot mount a tmpfs (%v): the test needs root", err)
	}
	defer func() { _ = syscall.Unmount(root, 0) }()
	repo := "cli.local/" + testenv.UniqueName("disk")
	id := testenv.ImportImage(t, cli, repo+"/app:1")
	policy := writePolicy(t, policyYAML("  images: [\""+repo+"/**\"]\n  minImageAge: 0s\n  diskUsage: {highPercent: 50, lowPercent: 40}\n"))
	// The folder that holds the images: the data root, or containerd's root
	// under the containerd store (Docker 29), where a data root is not enough.
	flag := "--data-root"
	if testenv.ContainerdStore(t, cli) {
		flag = "--containerd-root"
	}

	code, stdout, stderr := runCLI("apply", "-f", policy, "--docker-host", host, flag, root, "-o", "json")
	var doc document
	if code != exitOK || json.Unmarshal([]byte(stdout), &doc) != nil || doc.Disk == nil || doc.Disk.Watermark != "" || !testenv.ImageExists(t, cli, id) {
		t.Fatalf("under the watermark: exit %d, image there %v\n%s%s", code, testenv.ImageExists(t, cli, id), stdout, stderr)
	}
	if err := os.WriteFile(filepath.Join(root, "fill"), make([]byte, 12<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI("apply", "-f", policy, "--docker-host", host, flag, root, "-o", "json")
	doc = document{}
	if code != exitOK || json.Unmarshal([]byte(stdout), &doc) != nil || doc.Disk == nil || doc.Disk.Watermark != "space" || doc.Disk.UsedPercentBefore < 70 {
		t.Fatalf("above the watermark: exit %d\n%s%s", code, stdout, stderr)
	}
	if testenv.ImageExists(t, cli, id) {
		t.Fatal("above the high watermark the policy's image should go")
	}
	if code, _, stderr := runCLI("apply", "-f", policy, "--docker-host", host, flag, filepath.Join(root, "missing")); code != exitError || !strings.Contains(stderr, flag) {
		t.Fatalf("a missing data root: exit %d, %q", code, stderr)
	}
}

// Issue 21, point 6: validate in CI must not pass on nothing, and says what
// is wrong in words: a missing apiVersion, a path that is not there (not a
// usage error), a file or folder without a policy (an error, not exit 0).
func TestValidateSaysWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noAPI := write("noapi.yaml", "kind: ImageCleanupPolicy\nmetadata:\n  name: x\nspec:\n  images: [\"a:1\"]\n")
	code, _, stderr := runCLI("validate", "-f", noAPI)
	if code != exitInvalid || !strings.Contains(stderr, "got no apiVersion and \"ImageCleanupPolicy\"") || strings.Contains(stderr, "%!") {
		t.Errorf("a missing apiVersion: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI("validate", "-f", filepath.Join(dir, "missing.yaml"))
	if code != exitError || !strings.Contains(stderr, "no such file") || strings.Contains(stderr, "--help") {
		t.Errorf("a missing file: exit %d, %q (an error, not a usage hint)", code, stderr)
	}
	other := write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
	for _, path := range []string{other, write("empty.yaml", "# nothing here\n"), t.TempDir()} {
		if code, _, stderr := runCLI("validate", "-f", path); code != exitError || !strings.Contains(stderr, "no ") {
			t.Errorf("%s holds no policy: exit %d, %q", path, code, stderr)
		}
	}
	good := writePolicy(t, policyYAML("  images: [\"a:1\"]\n"))
	if code, _, stderr := runCLI("validate", "-f", good, "-f", other); code != exitOK {
		t.Errorf("a policy beside another kind: exit %d, %q", code, stderr)
	}
}

// Issue 21, point 6: a v1 List (kubectl get -o yaml) is checked item by
// item, not skipped; plan reads the same files validate reads, and takes
// the one policy among other kinds; help shows bool flags as flags.
func TestPlanAndValidateReadTheSameFiles(t *testing.T) {
	list := writePolicy(t, "apiVersion: v1\nkind: List\nitems:\n- apiVersion: imagecleanup.io/v1alpha1\n  kind: ImageCleanupPolicy\n"+
		"  metadata: {name: listed}\n  spec: {images: 5}\n")
	code, _, stderr := runCLI("validate", "-f", list)
	if code != exitInvalid || !strings.Contains(stderr, "(item 1): ImageCleanupPolicy \"listed\" is invalid") {
		t.Errorf("an invalid policy in a List: exit %d, %q", code, stderr)
	}
	mixed := writePolicy(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n---\n"+policyYAML("  images: [\"a:1\"]\n"))
	if code, _, stderr := runCLI("validate", "-f", mixed); code != exitOK {
		t.Errorf("validate, a policy beside a Namespace: exit %d, %q", code, stderr)
	}
	// plan gets past reading the file: it is the runtime it cannot reach.
	code, _, stderr = runCLI("plan", "-f", mixed, "--docker-host", "unix:///nonexistent.sock")
	if code != exitError || !strings.Contains(stderr, "cannot reach") {
		t.Errorf("plan, a policy beside a Namespace: exit %d, %q", code, stderr)
	}
	_, stdout, _ := runCLI("apply", "--help")
	if strings.Contains(stdout, "[=true|false]") || !strings.Contains(stdout, "--fail-on-blocked ") {
		t.Errorf("bool flags in help:\n%s", stdout)
	}
}
