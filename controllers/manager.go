package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/policywatch"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtimehost"
	"github.com/prometheus/client_golang/prometheus"
)

// AgentOptions configure one node's agent.
type AgentOptions struct {
	// NodeName is the node this agent cleans; required.
	NodeName string
	// Runtime is the node's container runtime (internal/connect opens it).
	Runtime runtime.Runtime
	// ProtectedImages are never removed: the agent's own image, and the
	// node's sandbox image when its name is not a pause one.
	ProtectedImages []string
	// StateDir holds the node's image clock (a hostPath folder); empty keeps
	// it in memory, where every image arrives when the agent first sees it.
	StateDir string
	// DataRoot is where the runtime's data filesystem is mounted, for
	// policies with diskUsage; empty asks the runtime (Info.RootDir).
	DataRoot string
	// ContainerdRoot is where containerd's root is mounted, for a runtime
	// that keeps its images in containerd's store; empty looks for it
	// (runtimehost.Options).
	ContainerdRoot string
	// DiskTick is how often policies with diskUsage look at the disk
	// (default 30s).
	DiskTick time.Duration
	// PodsGrace is how long a starting agent waits quietly for its view of
	// the node's pods before it reports that it has none (default 30s).
	PodsGrace time.Duration

	MetricsBindAddress     string // "0" disables
	HealthProbeBindAddress string // "" or "0" disables
	// PprofBindAddress serves Go's profiles (/debug/pprof); "" or "0"
	// disables, the default.
	PprofBindAddress string
	// Metrics is where the agent's series are registered: the binary gives
	// controller-runtime's registry, served at /metrics. nil: nowhere (agents
	// side by side in one process, each with its own series).
	Metrics prometheus.Registerer

	// Clock times everything the agent decides by: sweeps, intervals,
	// back-offs, the disk tick (default: the wall clock).
	Clock        clock.WithTicker
	SweepTimeout time.Duration
	// RuntimeCalls bounds a sweep's runtime calls under way at once
	// (default apply.DefaultConcurrency).
	RuntimeCalls int
	// RetryBaseDelay and RetryMaxDelay bound the back-off after a failed sweep.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// SkipNameValidation allows several agents in one process (tests).
	SkipNameValidation bool
}

// Scheme knows the built-in types and this project's: the aggregator's, and
// the harnesses' (leases, events).
func Scheme() *kruntime.Scheme {
	return schemeOf(clientgoscheme.AddToScheme, v1alpha1.AddToScheme)
}

// agentScheme knows the types the agent reads and writes, and no other: the
// core group (its Node, its pods; the events it records go through a typed
// client) and this project's: 68 types instead of 752. (The heap it saves
// is small, 0.06 MiB; what it says is which types the agent may touch.)
func agentScheme() *kruntime.Scheme {
	return schemeOf(corev1.AddToScheme, v1alpha1.AddToScheme)
}

func schemeOf(groups ...func(*kruntime.Scheme) error) *kruntime.Scheme {
	s := kruntime.NewScheme()
	for _, add := range groups {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// agentRESTMapper maps the kinds the agent reads and writes, and no other,
// without asking the API server: a dynamic mapper reads discovery when the
// agent starts (every group's resources: a DaemonSet rollout asks it once
// per node) and keeps 0.2 MB of mappings the agent never uses. A kind
// missing here fails as "no matches for kind", and the e2e tests check
// these against the API server's discovery.
func agentRESTMapper(*rest.Config, *http.Client) (meta.RESTMapper, error) {
	m := meta.NewDefaultRESTMapper(nil)
	m.AddSpecific(corev1.SchemeGroupVersion.WithKind("Node"), corev1.SchemeGroupVersion.WithResource("nodes"),
		corev1.SchemeGroupVersion.WithResource("node"), meta.RESTScopeRoot)
	m.AddSpecific(corev1.SchemeGroupVersion.WithKind("Pod"), corev1.SchemeGroupVersion.WithResource("pods"),
		corev1.SchemeGroupVersion.WithResource("pod"), meta.RESTScopeNamespace)
	m.AddSpecific(v1alpha1.GroupVersion.WithKind("ImageCleanupPolicy"), v1alpha1.GroupVersion.WithResource("imagecleanuppolicies"),
		v1alpha1.GroupVersion.WithResource("imagecleanuppolicy"), meta.RESTScopeRoot)
	m.AddSpecific(v1alpha1.GroupVersion.WithKind("ImageCleanupReport"), v1alpha1.GroupVersion.WithResource("imagecleanupreports"),
		v1alpha1.GroupVersion.WithResource("imagecleanupreport"), meta.RESTScopeRoot)
	return m, nil
}

// agentCacheOptions scope the agent's cache: every policy, but only this
// node's Node. Reading any other type from it fails instead of starting a
// cluster-wide informer. (The pods bound to the node have a cache of their
// own, podView's.) A watch that fails tells pods, which then distrusts the
// agent's view of the API for a while.
func agentCacheOptions(node string, pods *podView) cache.Options {
	return cache.Options{
		ReaderFailOnMissingInformer: true,
		// Managed fields are a third of a small object and never read here.
		DefaultTransform:         cache.TransformStripManagedFields(),
		DefaultWatchErrorHandler: pods.watchFailed,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Node{}:                 {Field: fields.OneTermEqualSelector("metadata.name", node), Transform: policywatch.TrimNode},
			&v1alpha1.ImageCleanupPolicy{}: {},
		},
	}
}

// NewAgent builds the manager of one node's agent: the node controller, the
// image clock's event follower and the disk tick; no leader election.
func NewAgent(cfg *rest.Config, o AgentOptions) (ctrl.Manager, error) {
	if err := o.complete(); err != nil {
		return nil, err
	}
	scheme := agentScheme()
	pods := &podView{clock: o.Clock, started: o.Clock.Now(), grace: cmp.Or(o.PodsGrace, 30*time.Second)}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		MapperProvider:         agentRESTMapper,
		Cache:                  agentCacheOptions(o.NodeName, pods),
		Metrics:                metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		PprofBindAddress:       o.PprofBindAddress,
		// No election: every node's agent works on its own node, and the
		// aggregator is a Deployment of its own (controllers/aggregator).
		LeaderElection: false,
		Controller:     config.Controller{SkipNameValidation: ptrTo(o.SkipNameValidation)},
	})
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	// The pods' cache starts once the manager runs, without holding its
	// start back: the agent reports when it cannot see its pods, and sweeps
	// only once it does. It shares the manager's HTTP client (one
	// connection to the API server per agent) and REST mapper.
	podOpts := podCacheOptions(o.NodeName, scheme, pods)
	podOpts.HTTPClient, podOpts.Mapper = mgr.GetHTTPClient(), mgr.GetRESTMapper()
	if pods.cache, err = cache.New(cfg, podOpts); err != nil {
		return nil, fmt.Errorf("the cache of node %s's pods: %w", o.NodeName, err)
	}
	if err := mgr.Add(pods); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("runtime", runtimeCheck(o.Runtime)); err != nil {
		return nil, err
	}
	metrics := newAgentMetrics()
	if err := metrics.register(o.Metrics, o.NodeName); err != nil {
		return nil, err
	}
	nodes := newNodeReconciler(&o, mgr.GetClient(), mgr.GetAPIReader(), pods, metrics)
	nodes.Recorder = mgr.GetEventRecorder("imagecleanup-agent")
	if err := mgr.Add(nodes.Host); err != nil {
		return nil, err
	}
	nodes.DiskTicks = make(chan event.GenericEvent)
	if err := mgr.Add(&diskTicker{reader: mgr.GetCache(), clock: o.Clock, every: cmp.Or(o.DiskTick, diskTick), out: nodes.DiskTicks}); err != nil {
		return nil, err
	}
	if err := nodes.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("node controller: %w", err)
	}
	return mgr, nil
}

// newNodeReconciler is the agent's node controller and its image clock,
// from completed options: the manager runs them, and the model test of the
// agent's life drives the very same pieces.
func newNodeReconciler(o *AgentOptions, c client.Client, reader client.Reader, pods nodePods, metrics *agentMetrics) *nodeReconciler {
	host := &nodeHost{rt: o.Runtime, opts: runtimehost.Options{StateDir: o.StateDir, DataRoot: o.DataRoot, ContainerdRoot: o.ContainerdRoot},
		clock: o.Clock, metrics: metrics}
	return &nodeReconciler{
		Client:         c,
		APIReader:      reader,
		Node:           o.NodeName,
		Runtime:        o.Runtime,
		Clock:          o.Clock,
		Metrics:        metrics,
		Protected:      o.ProtectedImages,
		Host:           host,
		Pods:           pods,
		SweepTimeout:   o.SweepTimeout,
		RuntimeCalls:   o.RuntimeCalls,
		RetryBaseDelay: o.RetryBaseDelay,
		RetryMaxDelay:  o.RetryMaxDelay,
	}
}

// ErrNoNodeName is an agent started without its node's name.
var ErrNoNodeName = errors.New("no node name: set NODE_NAME (the DaemonSet takes it from spec.nodeName) or --node-name")

// complete checks the options and fills in the defaults.
func (o *AgentOptions) complete() error {
	switch {
	case o.NodeName == "":
		return ErrNoNodeName
	case o.Runtime == nil:
		return errors.New("no container runtime")
	}
	if _, err := match.CompileSet(o.ProtectedImages); err != nil {
		return fmt.Errorf("protected images: %w", err)
	}
	o.Clock = cmp.Or[clock.WithTicker](o.Clock, clock.RealClock{})
	o.SweepTimeout = cmp.Or(o.SweepTimeout, 10*time.Minute)
	o.RetryBaseDelay = cmp.Or(o.RetryBaseDelay, time.Second)
	o.RetryMaxDelay = cmp.Or(o.RetryMaxDelay, 5*time.Minute)
	return nil
}

// runtimeCheck is the readiness probe: ready while the node's container runtime answers.
func runtimeCheck(rt runtime.Runtime) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), 3*time.Second)
		defer cancel()
		if err := rt.Ping(ctx); err != nil {
			return fmt.Errorf("container runtime: %w", err)
		}
		return nil
	}
}
