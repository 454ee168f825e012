// Command manager is image-cleanup-operator's controller binary, in one of
// two roles:
//
//   - agent (the default): a DaemonSet pod on every node; it talks to the
//     node's container runtime (the Docker engine, or containerd or CRI-O
//     through the CRI) through its socket, applies every policy that
//     selects the node and writes the node's reports;
//   - aggregator: a small Deployment, leader-elected between its replicas,
//     that recomputes each policy's status from the reports.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/controllers/aggregator"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/connect"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/version"
)

func main() {
	switch err := run(os.Args[1:], os.Stdout); {
	case errors.Is(err, flag.ErrHelp): // --help: usage printed, on stdout
	case err != nil:
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

// flags are the command line of both roles.
type flags struct {
	role                  string
	agent                 controllers.AgentOptions
	aggregator            aggregator.Options
	dockerHost, protected string
	runtimeEndpoint       string
	hostRun               string
	callTimeout           time.Duration
	zap                   zap.Options
	version               bool
}

func parse(args []string, stdout io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.StringVar(&f.role, "role", "agent", "agent (the DaemonSet, one per node) or aggregator (the Deployment that writes policy status)")
	fs.StringVar(&f.agent.NodeName, "node-name", os.Getenv("NODE_NAME"), "agent: the node it cleans (default $NODE_NAME, from the downward API)")
	fs.StringVar(&f.dockerHost, "docker-host", "", "agent: the node's Docker engine (unix:///var/run/docker.sock); default: $DOCKER_HOST, else the runtime the node's kubelet uses")
	fs.StringVar(&f.runtimeEndpoint, "runtime-endpoint", "", "agent: the node's CRI runtime socket (unix:///run/containerd/containerd.sock); default: the runtime the node's kubelet uses")
	fs.StringVar(&f.hostRun, "host-run", "/host/run", "agent: where the host's /run is mounted, to find the runtime the node's kubelet uses (the Node's status.nodeInfo.containerRuntimeVersion) by its socket")
	fs.StringVar(&f.protected, "protect-images", os.Getenv("AGENT_IMAGE"), "agent: comma-separated references, IDs or patterns never to remove: its own image (default $AGENT_IMAGE), and the node's sandbox image if its name does not end in pause")
	fs.StringVar(&f.agent.StateDir, "state-dir", "/var/lib/imagecleanup", "agent: folder of the node's image clock (a hostPath); it must outlive the pod")
	fs.DurationVar(&f.agent.DiskTick, "disk-tick", 30*time.Second, "agent: how often policies with diskUsage look at the disk (a statfs, no API write)")
	fs.StringVar(&f.agent.DataRoot, "data-root", "", "agent: where the runtime's data root is mounted, for policies with diskUsage (default: the data root the runtime reports, mounted at the same path)")
	fs.StringVar(&f.agent.ContainerdRoot, "containerd-root", "", "agent: where containerd's root is mounted, for policies with diskUsage on a runtime with the containerd image store (default: where the runtime says it is, else where its kind keeps it: for Docker, under the data root and at /var/lib/containerd)")
	fs.DurationVar(&f.callTimeout, "call-timeout", 0, "agent: deadline of one runtime removal (default: the runtime adapter's, 1m); reads get 30s")
	fs.DurationVar(&f.agent.SweepTimeout, "sweep-timeout", 10*time.Minute, "agent: deadline of one sweep")
	fs.IntVar(&f.agent.RuntimeCalls, "max-runtime-calls", apply.DefaultConcurrency,
		fmt.Sprintf("agent: most runtime calls of a sweep under way at once (1 to %d); the node's kubelet uses the same runtime", apply.MaxConcurrency))
	deprecatedCalls := fs.Int("max-engine-calls", 0, "agent: deprecated: use --max-runtime-calls")
	fs.DurationVar(&f.aggregator.StatusInterval, "status-interval", 10*time.Second, "aggregator: least time between two status writes of one policy while it changes (every agent watches policies)")
	fs.StringVar(&f.aggregator.LeaseNamespace, "leader-election-namespace", envOr("POD_NAMESPACE", "image-cleanup-system"), "aggregator: namespace of its lease")
	agentSelector := fs.String("agent-selector", "app.kubernetes.io/name=image-cleanup-operator,app.kubernetes.io/component=agent",
		"aggregator: labels of the agent's pods, in the aggregator's namespace, to tell which selected nodes run no agent; empty counts every node as having one")
	metrics := fs.String("metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	probes := fs.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	pprof := fs.String("pprof-bind-address", "0", "address of Go's profiles (/debug/pprof/heap, ...), to measure memory and CPU; 0 disables it")
	f.zap.BindFlags(fs)
	config.RegisterFlags(fs) // --kubeconfig
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f.version {
		return f, nil
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	if given["max-engine-calls"] {
		if given["max-runtime-calls"] && *deprecatedCalls != f.agent.RuntimeCalls {
			return nil, errors.New("--max-engine-calls is the deprecated name of --max-runtime-calls: give one")
		}
		fmt.Fprintln(os.Stderr, "warning: --max-engine-calls is deprecated: use --max-runtime-calls")
		f.agent.RuntimeCalls = *deprecatedCalls
	}
	if f.callTimeout < 0 {
		return nil, errors.New("--call-timeout must not be negative (0: the runtime adapter's default)")
	}
	f.agent.MetricsBindAddress, f.agent.HealthProbeBindAddress = *metrics, *probes
	f.aggregator.MetricsBindAddress, f.aggregator.HealthProbeBindAddress = *metrics, *probes
	f.agent.PprofBindAddress, f.aggregator.PprofBindAddress = *pprof, *pprof
	for _, img := range strings.Split(f.protected, ",") {
		if img = strings.TrimSpace(img); img != "" {
			f.agent.ProtectedImages = append(f.agent.ProtectedImages, img)
		}
	}
	if *agentSelector != "" {
		sel, err := labels.Parse(*agentSelector)
		if err != nil {
			return nil, fmt.Errorf("--agent-selector: %w", err)
		}
		f.aggregator.Agents = &aggregator.AgentPods{Namespace: f.aggregator.LeaseNamespace, Selector: sel}
	}
	switch f.role {
	case "agent":
		if f.agent.NodeName == "" {
			return nil, controllers.ErrNoNodeName
		}
		if err := apply.CheckConcurrency(f.agent.RuntimeCalls); err != nil {
			return nil, fmt.Errorf("--max-runtime-calls %w", err)
		}
		if f.dockerHost != "" && f.runtimeEndpoint != "" {
			return nil, connect.ErrBothEndpoints
		}
	case "aggregator":
	default:
		return nil, fmt.Errorf("--role must be agent or aggregator, not %q", f.role)
	}
	return f, nil
}

func run(args []string, stdout io.Writer) error {
	f, err := parse(args, stdout)
	if err != nil {
		return err
	}
	if f.version {
		_, err := fmt.Fprintln(stdout, "manager", version.Get())
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
	log := ctrl.Log.WithName("setup")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	if f.role == "aggregator" {
		f.aggregator.Metrics = ctrlmetrics.Registry // served at /metrics
		mgr, err := aggregator.NewManager(cfg, controllers.Scheme(), f.aggregator)
		if err != nil {
			return err
		}
		log.Info("starting aggregator", "version", version.Version, "leaseNamespace", f.aggregator.LeaseNamespace)
		return mgr.Start(ctrl.SetupSignalHandler())
	}
	ctx := ctrl.SetupSignalHandler()
	rt, err := openRuntime(ctx, cfg, f)
	if err != nil {
		return err
	}
	defer rt.Close()
	f.agent.Runtime = rt
	f.agent.Metrics = ctrlmetrics.Registry // served at /metrics
	mgr, err := controllers.NewAgent(cfg, f.agent)
	if err != nil {
		return err
	}
	log.Info("starting agent", "version", version.Version, "node", f.agent.NodeName, "runtime", rt.Host(), "protected", f.agent.ProtectedImages)
	return mgr.Start(ctx)
}

// openRuntime opens the runtime named by flag, or else the one the node's
// kubelet uses. Where there is none the agent supports, it still runs, on a
// runtime whose every call says so: each policy's report then gives the
// reason (NoRuntime), and the pod is not Ready, instead of a pod that never
// starts.
func openRuntime(ctx context.Context, cfg *rest.Config, f *flags) (connect.Runtime, error) {
	endpoint, err := connect.Choose(f.dockerHost, f.runtimeEndpoint, func() (connect.Endpoint, error) {
		return nodeRuntime(ctx, cfg, f.agent.NodeName, f.hostRun)
	})
	if errors.Is(err, runtime.ErrNoRuntime) {
		ctrl.Log.WithName("setup").Error(err, "the agent cannot clean this node")
		return connect.Missing(err), nil
	}
	if err != nil {
		return nil, err
	}
	return connect.Open(endpoint, f.callTimeout)
}

// nodeRuntime is the socket, under the host's /run, of the runtime the
// node's kubelet reports; where the Node cannot be read, the first socket
// present.
func nodeRuntime(ctx context.Context, cfg *rest.Config, node, hostRun string) (connect.Endpoint, error) {
	candidates := connect.Sockets(hostRun)
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return connect.Find(candidates)
	}
	var n corev1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: node}, &n); err != nil {
		return connect.Find(candidates)
	}
	ofNode, err := connect.ForNode(n.Status.NodeInfo.ContainerRuntimeVersion, candidates)
	if err != nil {
		return connect.Endpoint{}, err
	}
	return connect.Find(ofNode)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
