// Package aggregator is the second role of the manager binary: a small
// Deployment (two replicas, leader-elected between themselves) that
// recomputes each policy's status from the nodes' reports and deletes the
// reports of nodes that are gone or no longer selected. The DaemonSet's
// pods never take part in the election: followers poll the lease, which
// at 1,000 nodes was ~300 requests/s for nothing.
package aggregator

import (
	"cmp"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// LeaseName names the aggregator's lease.
const LeaseName = "imagecleanup-aggregator"

// Options configure the aggregator's manager.
type Options struct {
	// LeaseNamespace holds the lease (the install's namespace).
	LeaseNamespace         string
	MetricsBindAddress     string // "0" disables
	HealthProbeBindAddress string // "" or "0" disables
	PprofBindAddress       string // Go's profiles; "" or "0" disables
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election
	// (controller-runtime's defaults when zero: 15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// StatusInterval is the least time between two status writes of one
	// policy while it changes (default 10s): every agent watches policies,
	// so a status written at every report would reach every node.
	StatusInterval time.Duration
	// SkipNameValidation allows several aggregators in one process (tests).
	SkipNameValidation bool
	// Agents finds the agent's pods, to tell which selected nodes run no
	// agent; nil: every node counts as having one.
	Agents *AgentPods
	// Metrics is where the policies' series are registered (the binary
	// gives controller-runtime's registry); nil: nowhere.
	Metrics prometheus.Registerer
	// Logger is the manager's; zero: controller-runtime's global logger.
	Logger logr.Logger
}

// NewManager builds the aggregator's manager with the given scheme.
func NewManager(cfg *rest.Config, scheme *runtime.Scheme, o Options) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		PprofBindAddress:              o.PprofBindAddress,
		LeaderElection:                true,
		LeaderElectionID:              LeaseName,
		LeaderElectionNamespace:       cmp.Or(o.LeaseNamespace, "image-cleanup-system"),
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 nonZero(o.LeaseDuration),
		RenewDeadline:                 nonZero(o.RenewDeadline),
		RetryPeriod:                   nonZero(o.RetryPeriod),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(o.SkipNameValidation)},
		Cache:                         cacheOptions(o.Agents),
		Logger:                        o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	metrics := newPolicyMetrics()
	if err := metrics.register(o.Metrics); err != nil {
		return nil, err
	}
	r := &aggregateReconciler{reader: mgr.GetClient(), writer: mgr.GetClient(), interval: cmp.Or(o.StatusInterval, 10*time.Second),
		clock: clock.RealClock{}, agents: o.Agents, metrics: metrics, recorder: mgr.GetEventRecorder("imagecleanup-aggregator")}
	if err := r.setupWithManager(mgr, o.SkipNameValidation); err != nil {
		return nil, err
	}
	return mgr, nil
}

func nonZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}
