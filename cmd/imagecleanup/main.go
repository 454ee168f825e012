// Command imagecleanup plans, applies or validates ImageCleanupPolicies
// without Kubernetes: for plain Docker hosts, CI runners, debugging a policy
// before it goes to a cluster, and linting the policies of a Git repository.
//
//	imagecleanup plan     -f policy.yaml [flags]   show what apply would do
//	imagecleanup apply    -f policy.yaml [flags]   remove what the policy selects
//	imagecleanup validate -f FILE|DIR ...          offline, the API server's verdicts
//	imagecleanup version
//	imagecleanup completion bash|zsh|fish|powershell
//
// Exit codes: 0 done, 1 error (runtime unreachable, a removal failed,
// interrupted), 2 invalid policy or usage, 3 something stayed blocked (with
// --fail-on-blocked).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/connect"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/version"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitInvalid = 2
	exitBlocked = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// codedError carries the exit code of a command that did not end with 0;
// its message, if it has one, is printed once, by run. A sweep can end with
// 1 or 3 and nothing to add to its output: err is nil then.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *codedError) Unwrap() error { return e.err }

// withCode is err with its exit code; nil when there is nothing to report.
func withCode(code int, err error) error {
	if err == nil && code == exitOK {
		return nil
	}
	return &codedError{code: code, err: err}
}

// usageErr is a command line refused: the message ends with where to find
// the usage.
type usageErr struct{ error }

func (e usageErr) Unwrap() error { return e.error }

func usageError(err error) error { return withCode(exitInvalid, usageErr{err}) }

// run executes the command line and returns the exit code. Errors go to
// stderr as kubectl prints them: "error: ", then one reason per line.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(ctx, stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var coded *codedError
	if !errors.As(err, &coded) {
		// cobra's own: an unknown command or flag, a missing argument.
		coded = &codedError{code: exitInvalid, err: usageErr{err}}
	}
	if coded.err == nil {
		return coded.code
	}
	fmt.Fprintf(stderr, "error: %s\n", coded.Error())
	if errors.As(coded.err, new(usageErr)) {
		fmt.Fprintf(stderr, "See '%s --help' for usage.\n", commandPath(root, args))
	}
	return coded.code
}

func isPolicyError(err error) bool {
	var invalid *invalidPolicyError
	return errors.As(err, &invalid)
}

// commandPath is "imagecleanup plan" for a command line that starts with plan.
func commandPath(root *cobra.Command, args []string) string {
	if cmd, _, err := root.Find(args); err == nil {
		return cmd.CommandPath()
	}
	return root.Name()
}

func newRoot(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "imagecleanup",
		Short: "Plan, apply or validate ImageCleanupPolicies against a container runtime, without Kubernetes",
		Long: `imagecleanup runs the node agent's sweep on one container runtime (a Docker engine,
or containerd or CRI-O through the CRI), without Kubernetes: the same policy files, the
same planner, the same safety rules.

Exit codes: 0 done, 1 error, 2 invalid policy or usage, 3 blocked (with --fail-on-blocked).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version.Get().String(),
	}
	root.SetVersionTemplate("imagecleanup {{.Version}}\n")
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.SetContext(ctx)
	root.AddCommand(sweepCommand("plan", "Show what apply would remove; change nothing"),
		sweepCommand("apply", "Remove what the policy selects"),
		validateCommand(), versionCommand())
	return root
}

// sweepOptions are the flags of plan and apply.
type sweepOptions struct {
	mode           string
	file           string
	dockerHost     string
	endpoint       string
	output         string
	failOnBlocked  bool
	stateDir       string
	protect        []string
	dataRoot       string
	containerdRoot string
	timeout        time.Duration
	callTimeout    time.Duration
	runtimeCalls   int
}

func sweepCommand(mode, short string) *cobra.Command {
	o := &sweepOptions{mode: mode}
	cmd := &cobra.Command{
		Use:   mode + " -f policy.yaml",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return usageError(err)
			}
			return withCode(execute(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "filename", "f", "", `the policy, as kubectl apply takes it ("-" reads stdin; at most 1 MiB)`)
	f.StringVar(&o.dockerHost, "docker-host", "", "a Docker engine (unix:///var/run/docker.sock, tcp://...)")
	f.StringVar(&o.endpoint, "runtime-endpoint", "", "a CRI runtime's socket (unix:///run/containerd/containerd.sock); neither flag: $DOCKER_HOST, else the first socket present of Docker, containerd and CRI-O")
	outputFlag(f, &o.output)
	f.BoolVar(&o.failOnBlocked, "fail-on-blocked", false, "exit 3 when an image stayed blocked")
	f.StringVar(&o.stateDir, "state-dir", defaultStateDir(), "where the image clock is kept, one file per runtime")
	f.StringSliceVar(&o.protect, "protect-images", nil, "references or patterns never removed, such as your sandbox image (pause images are protected anyway)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "deadline of the whole sweep")
	f.DurationVar(&o.callTimeout, "call-timeout", 0, "deadline of one runtime removal (default: the runtime adapter's, 1m; reads get 30s)")
	f.IntVar(&o.runtimeCalls, "max-runtime-calls", apply.DefaultConcurrency, fmt.Sprintf("most runtime calls of the sweep under way at once (1 to %d)", apply.MaxConcurrency))
	f.IntVar(&o.runtimeCalls, "max-engine-calls", apply.DefaultConcurrency, "")
	_ = f.MarkDeprecated("max-engine-calls", "use --max-runtime-calls")
	f.StringVar(&o.dataRoot, "data-root", "", "the runtime's data root, measured for a policy's diskUsage (default: the data root the runtime reports, when it is on this machine)")
	f.StringVar(&o.containerdRoot, "containerd-root", "", "containerd's root, measured for a policy's diskUsage when the runtime keeps its images in containerd's store (default: where the runtime says it is, else where its kind keeps it: for Docker, under the data root and at /var/lib/containerd)")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}

func outputFlag(f *pflag.FlagSet, output *string) {
	f.StringVarP(output, "output", "o", "table", "output format: table, json or yaml")
}

func checkOutput(output string) error {
	switch output {
	case "table", "json", "yaml":
		return nil
	}
	return fmt.Errorf(`--output must be table, json or yaml, not %q`, output)
}

func (o *sweepOptions) check() error {
	switch {
	case o.file == "":
		return errors.New("-f policy.yaml is required")
	case o.timeout <= 0 || o.callTimeout < 0:
		return errors.New("--timeout must be positive, and --call-timeout not negative")
	case o.stateDir == "":
		return errors.New("--state-dir must not be empty")
	case o.dockerHost != "" && o.endpoint != "":
		return connect.ErrBothEndpoints
	}
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if err := apply.CheckConcurrency(o.runtimeCalls); err != nil {
		return fmt.Errorf("--max-runtime-calls %w", err)
	}
	for i := range o.protect {
		o.protect[i] = strings.TrimSpace(o.protect[i])
	}
	if _, err := match.CompileSet(o.protect); err != nil {
		return fmt.Errorf("--protect-images: %w", err)
	}
	return nil
}

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

func versionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of imagecleanup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return usageError(err)
			}
			info := version.Get()
			var err error
			if output == "table" {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), "imagecleanup", info)
			} else {
				err = encode(cmd.OutOrStdout(), output, info)
			}
			if err != nil {
				return withCode(exitError, err)
			}
			return nil
		},
	}
	outputFlag(cmd.Flags(), &output)
	return cmd
}
