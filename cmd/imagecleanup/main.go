// Command imagecleanup plans or applies an ImageCleanupPolicy against one
// Docker engine, without Kubernetes: for plain Docker hosts, CI runners and
// debugging a policy before it goes to a cluster.
//
//	imagecleanup plan  -f policy.yaml [--docker-host HOST] [-o table|json] [--fail-on-blocked]
//	imagecleanup apply -f policy.yaml [--docker-host HOST] [-o table|json] [--fail-on-blocked]
//
// Exit codes: 0 done, 1 error (engine unreachable, a removal failed),
// 2 invalid policy or usage, 3 something stayed blocked (with --fail-on-blocked).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
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
  -f, --filename FILE     the policy, as kubectl apply takes it ("-" reads stdin)
      --docker-host HOST  the engine (default: DOCKER_HOST, else the default socket)
  -o, --output FORMAT     table (default) or json
      --fail-on-blocked   exit 3 when an image stayed blocked

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
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.file == "":
		return o, errors.New("-f policy.yaml is required")
	case o.output != "table" && o.output != "json":
		return o, fmt.Errorf("-o must be table or json, not %q", o.output)
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

	policy, err := loadPolicy(o.file, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "imagecleanup: invalid policy %s: %v\n", o.file, err)
		return exitInvalid
	}
	if policy.Spec.Suspend {
		fmt.Fprintf(stdout, "policy %s is suspended: nothing to do\n", policy.Name)
		return exitOK
	}

	rt, err := docker.New(o.dockerHost)
	if err != nil {
		fmt.Fprintf(stderr, "imagecleanup: %v\n", err)
		return exitError
	}
	defer rt.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = rt.Ping(pingCtx)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "imagecleanup: cannot reach the Docker engine at %s: %v\n", rt.Host(), oneLine(err))
		return exitError
	}

	out, err := cleanup.Sweep(ctx, rt, &policy.Spec, time.Now(), cleanup.Options{PlanOnly: o.mode == "plan"})
	if err != nil {
		if errors.Is(err, cleanup.ErrInvalidPolicy) {
			fmt.Fprintf(stderr, "imagecleanup: invalid policy %s: %v\n", o.file, err)
			return exitInvalid
		}
		fmt.Fprintf(stderr, "imagecleanup: %v\n", oneLine(err))
		return exitError
	}

	doc := newDocument(policy, o.mode, rt.Host(), &out, rt.Calls())
	if o.output == "json" {
		err = writeJSON(stdout, doc)
	} else {
		err = writeTable(stdout, doc)
	}
	if err != nil {
		fmt.Fprintf(stderr, "imagecleanup: writing the result: %v\n", err)
		return exitError
	}
	switch {
	case len(out.Result.Failed) > 0:
		return exitError
	case o.failOnBlocked && len(out.Result.Blocked) > 0:
		return exitBlocked
	}
	return exitOK
}

// loadPolicy reads a policy file as kubectl apply -f takes it: strict YAML
// (an unknown field is an error, as kubectl's strict field validation makes
// it), defaulted and validated like the API server does.
func loadPolicy(file string, stdin io.Reader) (*v1alpha1.ImageCleanupPolicy, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
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
	p.Default()
	if errs := p.Validate(); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return &p, nil
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
