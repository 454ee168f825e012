// Command imagecleanup plans or applies an ImageCleanupPolicy against one
// Docker engine, without Kubernetes: for plain Docker hosts, CI runners and
// debugging a policy before it goes to a cluster.
//
//	imagecleanup plan  -f policy.yaml [flags]
//	imagecleanup apply -f policy.yaml [flags]
//
// Exit codes: 0 done, 1 error (engine unreachable, a removal failed,
// interrupted), 2 invalid policy or usage, 3 something stayed blocked (with
// --fail-on-blocked).
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitInvalid = 2
	exitBlocked = 3
)

const usage = `imagecleanup plans or applies an ImageCleanupPolicy against a Docker engine.

Usage:
  imagecleanup plan  -f policy.yaml [flags]   show what apply would do; change nothing
  imagecleanup apply -f policy.yaml [flags]   remove what the policy selects

Flags:
  -f, --filename FILE       the policy, as kubectl apply takes it ("-" reads stdin; at most 1 MiB)
      --docker-host HOST    the engine (default: DOCKER_HOST, else the default socket)
  -o, --output FORMAT       table (default) or json
      --fail-on-blocked     exit 3 when an image stayed blocked
      --state-dir DIR       where the image clock is kept, one file per engine
                            (default: $XDG_STATE_HOME/imagecleanup or ~/.local/state/imagecleanup)
      --protect-images LIST comma-separated references or patterns never removed, such as
                            your sandbox image (pause images are protected anyway)
      --timeout DURATION    deadline of the whole sweep (default 10m)
      --call-timeout DUR    deadline of one engine removal (default 1m; reads get 30s)
      --data-root DIR       the engine's data root, measured for a policy's diskUsage
                            (default: the engine's DockerRootDir, when it is on this machine)

Exit codes: 0 done, 1 error, 2 invalid policy, 3 blocked (with --fail-on-blocked).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	mode          string
	file          string
	dockerHost    string
	output        string
	failOnBlocked bool
	stateDir      string
	protect       []string
	dataRoot      string
	timeout       time.Duration
	callTimeout   time.Duration
}

// maxPolicyBytes bounds a policy file: a policy is a few KiB, and
// -f /dev/zero must not eat the machine.
const maxPolicyBytes = 1 << 20

// defaultStateDir is the per-user place of the image clock.
func defaultStateDir() string {
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" {
		return filepath.Join(dir, "imagecleanup")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "imagecleanup")
	}
	return filepath.Join(os.TempDir(), "imagecleanup-state")
}

func parseArgs(args []string) (options, error) {
	var o options
	if len(args) == 0 || (args[0] != "plan" && args[0] != "apply") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return o, flag.ErrHelp
		}
		return o, errors.New("the first argument must be plan or apply")
	}
	o.mode = args[0]
	fs := flag.NewFlagSet("imagecleanup "+o.mode, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.file, "f", "", "")
	fs.StringVar(&o.file, "filename", "", "")
	fs.StringVar(&o.dockerHost, "docker-host", "", "")
	fs.StringVar(&o.output, "o", "table", "")
	fs.StringVar(&o.output, "output", "table", "")
	fs.BoolVar(&o.failOnBlocked, "fail-on-blocked", false, "")
	fs.StringVar(&o.stateDir, "state-dir", defaultStateDir(), "")
	fs.StringVar(&o.dataRoot, "data-root", "", "")
	protect := fs.String("protect-images", "", "")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "")
	fs.DurationVar(&o.callTimeout, "call-timeout", docker.DefaultRemoveTimeout, "")
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	for _, p := range strings.Split(*protect, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.protect = append(o.protect, p)
		}
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.file == "":
		return o, errors.New("-f policy.yaml is required")
	case o.output != "table" && o.output != "json":
		return o, fmt.Errorf("-o must be table or json, not %q", o.output)
	case o.timeout <= 0 || o.callTimeout <= 0:
		return o, errors.New("--timeout and --call-timeout must be positive")
	case o.stateDir == "":
		return o, errors.New("--state-dir must not be empty")
	}
	if _, err := match.CompileSet(o.protect); err != nil {
		return o, fmt.Errorf("--protect-images: %w", err)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "imagecleanup: %v\n\n%s", err, usage)
		return exitInvalid
	}
	code, err := execute(ctx, o, stdin, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "imagecleanup: %s\n", oneLine(err))
	}
	return code
}

// execute runs plan or apply; the error, if any, is the one line to print.
func execute(ctx context.Context, o options, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	policy, err := loadPolicy(ctx, o.file, stdin)
	switch {
	case ctx.Err() != nil:
		return exitError, fmt.Errorf("interrupted while reading %s", o.file)
	case err != nil:
		return exitInvalid, fmt.Errorf("invalid policy %s: %w", o.file, err)
	}
	if policy.Spec.Suspend {
		return write(stdout, o, suspendedDocument(policy, o.mode))
	}
	rt, err := docker.New(o.dockerHost)
	if err != nil {
		return exitInvalid, fmt.Errorf("--docker-host: %w", err)
	}
	defer rt.Close()
	rt.RemoveTimeout = o.callTimeout
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	info, err := engineInfo(ctx, rt)
	if err != nil {
		return exitError, fmt.Errorf("cannot reach the Docker engine at %s: %w", rt.Host(), err)
	}
	clock, err := openClock(info, o.stateDir, stderr)
	if err != nil {
		return exitError, err
	}
	out, err := cleanup.Sweep(ctx, rt, &policy.Spec, time.Now(), cleanup.Options{
		Policy: policy.Name, Clock: clock, Protected: o.protect, PlanOnly: o.mode == "plan",
		Disk: measureDisk(cmp.Or(o.dataRoot, info.RootDir)),
	})
	switch {
	case errors.Is(err, cleanup.ErrInvalidPolicy):
		return exitInvalid, fmt.Errorf("invalid policy %s: %w", o.file, err)
	case err != nil:
		return exitError, err
	}
	if code, err := write(stdout, o, newDocument(policy, o.mode, rt.Host(), &out, rt.Calls())); err != nil {
		return code, err
	}
	switch {
	case len(out.Result.Failed) > 0 || out.Result.Stopped != "":
		return exitError, nil
	case o.failOnBlocked && len(out.Result.Blocked) > 0:
		return exitBlocked, nil
	}
	return exitOK, nil
}

// openClock opens the engine's image clock; a clock that had to start
// afresh says so on stderr.
func openClock(info engine.Info, dir string, stderr io.Writer) (*imageclock.Clock, error) {
	clock, warning, err := imageclock.Open(imageclock.FileFor(dir, info.ID))
	if err != nil {
		return nil, err
	}
	if warning != nil {
		fmt.Fprintf(stderr, "imagecleanup: warning: %s\n", oneLine(warning))
	}
	return clock, nil
}

// measureDisk measures the engine's data filesystem at dataRoot: --data-root,
// else the engine's DockerRootDir, which must then be on this machine.
func measureDisk(dataRoot string) func() (disk.Usage, error) {
	return func() (disk.Usage, error) {
		u, err := disk.Measure(dataRoot)
		if err != nil {
			return disk.Usage{}, fmt.Errorf("%w (give --data-root where the engine's data root is)", err)
		}
		return u, nil
	}
}

// write prints the document in the chosen format.
func write(stdout io.Writer, o options, doc document) (int, error) {
	var err error
	if o.output == "json" {
		err = writeJSON(stdout, doc)
	} else {
		err = writeTable(stdout, doc)
	}
	if err != nil {
		return exitError, fmt.Errorf("writing the result: %w", err)
	}
	return exitOK, nil
}

// engineInfo pings the engine (which settles the API version) and asks
// which engine it is, for the image clock's file.
func engineInfo(ctx context.Context, rt *docker.Runtime) (engine.Info, error) {
	if err := rt.Ping(ctx); err != nil {
		return engine.Info{}, err
	}
	return rt.Info(ctx)
}

// loadPolicy reads a policy file as kubectl apply -f takes it: strict YAML
// (an unknown field is an error, as kubectl's strict field validation makes
// it), defaulted and validated like the API server does.
func loadPolicy(ctx context.Context, file string, stdin io.Reader) (*v1alpha1.ImageCleanupPolicy, error) {
	data, err := readBounded(ctx, file, stdin)
	if err != nil {
		return nil, err
	}
	if n := countDocuments(data); n != 1 {
		return nil, fmt.Errorf("the file holds %d YAML documents; give one policy per file", n)
	}
	var p v1alpha1.ImageCleanupPolicy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		// The YAML library speaks of the JSON it converts to; a person wrote YAML.
		msg := strings.TrimPrefix(oneLine(err), "error unmarshaling JSON: while decoding JSON: ")
		return nil, errors.New(strings.TrimPrefix(msg, "json: "))
	}
	if p.APIVersion != v1alpha1.GroupVersion.String() || p.Kind != "ImageCleanupPolicy" {
		return nil, fmt.Errorf("want apiVersion %s and kind ImageCleanupPolicy, got %q and %q",
			v1alpha1.GroupVersion, p.APIVersion, p.Kind)
	}
	// Admitted as the API server would: from the object as written, so that
	// what the user left out is defaulted and what they wrote is checked.
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	admitted, errs := policyschema.Admit(obj)
	if len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return admitted, nil
}

// readBounded reads at most maxPolicyBytes of the file (or stdin for "-"),
// and gives up when ctx ends (a signal): an endless or never-closing input
// neither fills memory nor hangs.
func readBounded(ctx context.Context, file string, stdin io.Reader) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		in := stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				done <- result{err: err}
				return
			}
			defer f.Close()
			in = f
		}
		data, err := io.ReadAll(io.LimitReader(in, maxPolicyBytes+1))
		if err == nil && len(data) > maxPolicyBytes {
			err = fmt.Errorf("larger than %d bytes: a policy is a few KiB", maxPolicyBytes)
		}
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-ctx.Done():
		return nil, ctx.Err() // the reading goroutine ends with the process
	}
}

// countDocuments counts the non-empty documents of a YAML stream.
func countDocuments(data []byte) int {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	n := 0
	for {
		doc, err := r.Read()
		if err != nil {
			return n
		}
		if len(bytes.TrimSpace(doc)) > 0 && strings.TrimSpace(string(doc)) != "---" {
			n++
		}
	}
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
