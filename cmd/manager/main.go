// Command manager is the node agent of image-cleanup-operator. It runs as a
// DaemonSet pod on every node, talks to the node's Docker engine through its
// socket, applies every ImageCleanupPolicy that selects the node and writes
// the node's ImageCleanupReports. One pod, elected leader, also aggregates
// the reports into each policy's status.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o           controllers.AgentOptions
		dockerHost  string
		agentImages string
		callTimeout time.Duration
		zapOpts     = zap.Options{}
		fs          = flag.NewFlagSet("manager", flag.ContinueOnError)
		defaultLENS = envOr("POD_NAMESPACE", "image-cleanup-system")
	)
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "the node this agent cleans (default $NODE_NAME, from the downward API)")
	fs.StringVar(&dockerHost, "docker-host", "", "the node's Docker engine (default $DOCKER_HOST, else unix:///var/run/docker.sock)")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "elect one pod to aggregate reports into policy status (the DaemonSet sets it)")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", defaultLENS, "namespace of the aggregator's lease")
	fs.StringVar(&agentImages, "protect-images", os.Getenv("AGENT_IMAGE"), "comma-separated references, IDs or patterns never to remove: the agent's own image (default $AGENT_IMAGE), and the node's sandbox image if its name does not end in pause")
	fs.StringVar(&o.StateDir, "state-dir", "/var/lib/imagecleanup", "folder of the node's image clock (a hostPath); it must outlive the pod")
	fs.DurationVar(&o.DiskTick, "disk-tick", 30*time.Second, "how often policies with diskUsage look at the disk (a statfs, no API write)")
	fs.StringVar(&o.DataRoot, "data-root", "", "where the engine's data root is mounted, for policies with diskUsage (default: the engine's DockerRootDir, mounted at the same path)")
	fs.DurationVar(&callTimeout, "call-timeout", docker.DefaultRemoveTimeout, "deadline of one engine removal; reads get 30s")
	fs.DurationVar(&o.SweepTimeout, "sweep-timeout", 10*time.Minute, "deadline of one sweep")
	zapOpts.BindFlags(fs)
	config.RegisterFlags(fs) // --kubeconfig
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if o.NodeName == "" {
		return fmt.Errorf("no node name: set NODE_NAME (the DaemonSet takes it from spec.nodeName) or --node-name")
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	for _, img := range strings.Split(agentImages, ",") {
		if img = strings.TrimSpace(img); img != "" {
			o.ProtectedImages = append(o.ProtectedImages, img)
		}
	}
	rt, err := docker.New(dockerHost)
	if err != nil {
		return err
	}
	defer rt.Close()
	rt.RemoveTimeout = callTimeout
	o.Runtime = rt

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	mgr, err := controllers.NewAgent(cfg, o)
	if err != nil {
		return err
	}
	log.Info("starting agent", "node", o.NodeName, "docker", rt.Host(), "leaderElection", o.LeaderElection, "protected", o.ProtectedImages)
	return mgr.Start(ctrl.SetupSignalHandler())
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
