package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/policywatch"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/schedule"
)

// +kubebuilder:rbac:groups=imagecleanup.io,resources=imagecleanuppolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=imagecleanup.io,resources=imagecleanupreports,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// nodeReconciler applies every policy to this node's runtime: the agent runs
// one on every node. It sweeps a policy when its generation changed or its
// interval elapsed, one sweep at a time (the controller runs one reconcile
// at a time), and writes this node's report of it.
type nodeReconciler struct {
	// Client reads from the agent's scoped cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server itself, for when the cache lags
	// behind this agent's own last write.
	APIReader client.Reader
	Node      string
	Runtime   runtime.Runtime
	Recorder  events.EventRecorder
	Clock     clock.Clock
	Metrics   *agentMetrics
	Protected []string
	// Host is the node's runtime prepared for sweeping: its image clock
	// (arrivals, last uses, removals begun), its disk, its event follower.
	Host *nodeHost
	// Pods are the pods bound to this node, whose images stay.
	Pods nodePods
	// DiskTicks brings policies with diskUsage back every tick, so that a
	// disk crossing its high watermark is swept without waiting.
	DiskTicks chan event.GenericEvent
	// SweepTimeout bounds one sweep.
	SweepTimeout time.Duration
	// RuntimeCalls bounds a sweep's runtime calls under way at once (0: the
	// default).
	RuntimeCalls int
	// RetryBaseDelay and RetryMaxDelay bound the back-off after a failed sweep.
	RetryBaseDelay, RetryMaxDelay time.Duration

	mu sync.Mutex
	// policies holds what the agent remembers of each policy (policystate.go).
	policies map[string]*policyState
}

// Reconcile implements reconcile.Reconciler for one policy: it reads,
// decides (decide.go), and acts.
func (r *nodeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("policy", req.Name, "node", r.Node)
	ctx = logf.IntoContext(ctx, log)

	s, report, err := r.read(ctx, req.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if s.policy != nil {
		r.Metrics.observePolicy(s.policy, s.report)
	}
	if err := r.writeUnwritten(ctx, s, &report); err != nil {
		return ctrl.Result{}, err
	}
	d := r.timing().decide(s)
	switch d.step {
	case stepNothing:
		log.V(1).Info("waiting for this node's Node object")
		return ctrl.Result{}, nil
	case stepDeleteReport:
		r.forget(ctx, req.Name)
		r.Metrics.forgetPolicy(req.Name)
		return ctrl.Result{}, r.deleteReport(ctx, req.Name)
	case stepWriteIdle:
		st := idleStatus(statusOf(report), s.policy.Generation, d.phase, d.reason, d.message)
		return ctrl.Result{RequeueAfter: d.wait}, r.writeReport(ctx, s.policy, report, st)
	case stepWait:
		return ctrl.Result{RequeueAfter: d.wait}, nil
	}
	return r.sweep(ctx, s, report, d.trigger)
}

// read gathers what decide needs: the policy, this node, its report.
func (r *nodeReconciler) read(ctx context.Context, name string) (*situation, *v1alpha1.ImageCleanupReport, error) {
	s := &situation{now: r.Clock.Now(), failures: r.failureStreak(name)}
	var policy v1alpha1.ImageCleanupPolicy
	switch err := r.Client.Get(ctx, types.NamespacedName{Name: name}, &policy); {
	case apierrors.IsNotFound(err):
		return s, nil, nil
	case err != nil:
		return nil, nil, err
	}
	s.policy = &policy
	if r.replaced(name, policy.UID) {
		// The old policy's report goes with it (its owner); what the agent
		// remembers of it must go too: its report, its clock records.
		r.forget(ctx, name)
		r.forgetReport(name)
	}
	s.generationSeen = r.seenGeneration(name, policy.Generation, s.now)
	var node corev1.Node
	switch err := r.Client.Get(ctx, types.NamespacedName{Name: r.Node}, &node); {
	case apierrors.IsNotFound(err):
		return s, nil, nil
	case err != nil:
		return nil, nil, err
	}
	s.node = &node
	report, err := r.currentReport(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if r.Pods != nil {
		s.pods, s.podsErr = r.Pods.images(ctx)
		s.podsFresh = r.Pods.fresh()
	}
	if report != nil {
		s.report = &report.Status
	}
	if policy.Spec.DiskUsage != nil {
		// statfs is cheap; an error here leaves the sweep to report it.
		if u, err := r.Host.disk(ctx)(); err == nil {
			s.disk = &u
		}
	}
	return s, report, nil
}

func statusOf(report *v1alpha1.ImageCleanupReport) *v1alpha1.ImageCleanupReportStatus {
	if report == nil {
		return &v1alpha1.ImageCleanupReportStatus{}
	}
	return &report.Status
}

// sweep runs one sweep of the policy and reports it. The verdict drives the
// report's phase, the metrics, the one log line, and when to come back: at
// the interval, or after a back-off capped at it. A failed sweep is not
// returned as an error: it is reported, logged once, and retried on time.
func (r *nodeReconciler) sweep(ctx context.Context, s *situation, report *v1alpha1.ImageCleanupReport, trigger string) (ctrl.Result, error) {
	policy := s.policy
	sweepCtx, cancel := context.WithTimeout(ctx, r.SweepTimeout)
	var out cleanup.Outcome
	var sw *cleanup.Sweep
	imageClock, err := r.Host.imageClock(sweepCtx)
	if err == nil {
		opts := cleanup.Options{
			Policy: policy.Name, Clock: imageClock, Protected: r.Protected, Disk: r.Host.disk(sweepCtx),
			Proceed: r.stillWanted(ctx, policy, r.underPressure(sweepCtx, policy)), PodImages: s.pods, Concurrency: r.RuntimeCalls,
		}
		if r.Pods != nil {
			opts.Pods = func() ([]plan.PodImage, error) { return r.Pods.images(ctx) }
		}
		// The mark of the latest sweep whose report counted what the runtime
		// lost of the removals begun before it; none: every record counts
		// (a report of an agent from before the field reads so: its records
		// were dropped when it was written, but for one whose agent died in
		// between, which counts again once).
		if s.report != nil && s.report.CountedThrough != nil {
			opts.ReportedThrough = s.report.CountedThrough.Time
		}
		sw = cleanup.NewSweep(r.Runtime, &policy.Spec, s.now, opts)
		out, err = sw.Run(sweepCtx)
	}
	cancel()
	v := judge(&out, err, policy.Spec.DryRun)
	r.Metrics.sweepTriggers.WithLabelValues(policy.Name, trigger).Inc()
	prev := statusOf(report)
	elapsed := r.Clock.Since(s.now)
	st := sweepStatus(prev, policy.Generation, s.now, elapsed, v, &out)
	if info, ok := r.Host.runtimeInfo(); ok {
		st.Runtime = &v1alpha1.RuntimeStatus{Name: info.Name, Version: info.Version, ImageStore: info.ImageStore}
	}
	r.Metrics.observeSweep(policy.Name, v, &st, &out, elapsed)
	r.recordEvents(policy, prev, &st)
	logSweep(logf.FromContext(ctx), &out, &st)
	write := func() error { return r.writeReport(ctx, policy, report, st) }
	if sw != nil {
		err = sw.Commit(write)
	} else {
		err = write()
	}
	switch {
	case errors.Is(err, cleanup.ErrState):
		logf.FromContext(ctx).Error(err, "saving the image clock")
	case err != nil:
		// The sweep happened: its status is written on the retry, never
		// made again by sweeping (that would find nothing, and lose the
		// tallies).
		r.keepUnwritten(policy.Name, &st)
		return ctrl.Result{}, err
	}

	failures := 0
	switch {
	case v.superseded, v.windowClosed:
	case v.retry:
		failures = r.noteFailure(policy.Name)
	default:
		r.noteSuccess(policy.Name)
	}
	return ctrl.Result{RequeueAfter: r.timing().next(v, policy, failures)}, nil
}

func (r *nodeReconciler) timing() timing {
	return timing{node: r.Node, retryBase: r.RetryBaseDelay, retryMax: r.RetryMaxDelay}
}

// stillWanted is asked before every destructive call of a sweep: the policy
// must still exist at the generation the sweep applies, and still select
// this node, and its schedule must still have a window open (unless the
// disk is above its high watermark right then, measured again, and the
// schedule lets such a removal happen at any time). It reads the agent's
// cache, which the watches keep current, so a deletion, a suspension, a
// dryRun or a relabel stops the sweep within moments, not after its last
// removal.
func (r *nodeReconciler) stillWanted(ctx context.Context, swept *v1alpha1.ImageCleanupPolicy, underPressure func() bool) func() error {
	sched, err := schedule.Parse(swept.Spec.Schedule)
	if err != nil { // decide refused the policy before a sweep
		sched = nil
	}
	return func() error {
		if swept.Spec.Schedule != nil && sched != nil {
			if st := sched.At(r.Clock.Now()); !st.Open && !(sched.DiskAnytime && underPressure()) {
				return &windowClosedError{next: outsideWindowMessage(sched, st)}
			}
		}
		var p v1alpha1.ImageCleanupPolicy
		switch err := r.Client.Get(ctx, types.NamespacedName{Name: swept.Name}, &p); {
		case apierrors.IsNotFound(err):
			return &supersededError{"the policy was deleted"}
		case err != nil:
			return &supersededError{"the policy cannot be read: " + err.Error()}
		case !p.DeletionTimestamp.IsZero():
			return &supersededError{"the policy is being deleted"}
		case p.Generation != swept.Generation:
			return &supersededError{fmt.Sprintf("the policy changed (generation %d to %d)", swept.Generation, p.Generation)}
		}
		var node corev1.Node
		if err := r.Client.Get(ctx, types.NamespacedName{Name: r.Node}, &node); err != nil {
			return &supersededError{"this node's Node cannot be read: " + err.Error()}
		}
		selector, err := p.Spec.NodeSelector.Selector()
		if err != nil || !selector.Matches(labels.Set(node.Labels)) {
			return &supersededError{"this node no longer matches the policy's nodeSelector"}
		}
		return nil
	}
}

// underPressure measures the disk now: whether it is above the policy's
// high watermark (false when the policy has none, or it cannot be read).
func (r *nodeReconciler) underPressure(ctx context.Context, policy *v1alpha1.ImageCleanupPolicy) func() bool {
	return func() bool {
		if policy.Spec.DiskUsage == nil {
			return false
		}
		u, err := r.Host.disk(ctx)()
		return err == nil && aboveHigh(policy.Spec.DiskUsage, &u)
	}
}

// windowClosedError stops a sweep whose schedule's window closed.
type windowClosedError struct{ next string }

func (e *windowClosedError) Error() string {
	return "the policy's window closed; " + e.next
}

// supersededError stops a sweep whose policy or node changed under it.
type supersededError struct{ why string }

func (e *supersededError) Error() string { return e.why }

// logSweep logs a sweep with the project's stable keys: one line per sweep,
// and a line per removal, block and failure at verbosity 1.
func logSweep(log logr.Logger, out *cleanup.Outcome, st *v1alpha1.ImageCleanupReportStatus) {
	for _, c := range out.Result.RemovedContainers {
		log.V(1).Info("removed stopped container", "container", runtime.DisplayContainer(c.Name, c.ID), "dryRun", out.Result.DryRun)
	}
	for _, ri := range out.Result.RemovedImages {
		log.V(1).Info("removed image", "image", ri.Image, "deleted", ri.Deleted, "forced", ri.Forced, "dryRun", out.Result.DryRun)
	}
	for _, b := range out.Result.Blocked {
		log.V(1).Info("image blocked", "image", b.Image, "reason", b.Reason, "message", b.Message)
	}
	for _, f := range out.Result.Failed {
		log.V(1).Info("image removal failed", "image", f.Image, "error", f.Error)
	}
	log.Info("swept", "phase", st.Phase, "message", st.Message, "images", st.ImagesRemoved, "containers", st.ContainersRemoved,
		"blocked", st.BlockedCount, "failed", len(out.Result.Failed), "duration", st.LastSweepDuration)
}

// fieldManager is this node's server-side apply field manager.
func (r *nodeReconciler) fieldManager() string {
	name := "imagecleanup-agent/" + r.Node
	if len(name) > 128 {
		name = name[:128]
	}
	return name
}

// writeReport applies the report when it differs from the stored one: at
// most one write per sweep, none when nothing changed.
func (r *nodeReconciler) writeReport(ctx context.Context, policy *v1alpha1.ImageCleanupPolicy, existing *v1alpha1.ImageCleanupReport, st v1alpha1.ImageCleanupReportStatus) error {
	desired := desiredReport(policy, r.Node, &st)
	if existing != nil && equality.Semantic.DeepEqual(existing.Status, desired.Status) &&
		equality.Semantic.DeepEqual(existing.Spec, desired.Spec) &&
		equality.Semantic.DeepEqual(existing.OwnerReferences, desired.OwnerReferences) &&
		labels.Equals(existing.Labels, desired.Labels) {
		return nil
	}
	apply, err := reportApplyConfiguration(desired)
	if err != nil {
		return err
	}
	if err := r.Client.Apply(ctx, apply, client.FieldOwner(r.fieldManager()), client.ForceOwnership); err != nil {
		return err
	}
	r.remember(policy.Name, desired)
	return nil
}

// recordEvents tells of a node's failure on the policy: one event when a
// node starts failing (not again while the message stays the same). What
// the nodes removed is told by the aggregator, once for the fleet
// (controllers/aggregator).
func (r *nodeReconciler) recordEvents(policy *v1alpha1.ImageCleanupPolicy, prev, st *v1alpha1.ImageCleanupReportStatus) {
	if r.Recorder == nil {
		return
	}
	if st.Phase == v1alpha1.PhaseFailed && (prev.Phase != v1alpha1.PhaseFailed || prev.Message != st.Message) {
		r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, "SweepFailed", "Sweep", "node %s: %s", r.Node, st.Message)
	}
}

// SetupWithManager registers the controller: policies (spec changes only),
// this node's Node (label changes) and the disk ticks. Reports are not
// watched: a report removed by hand comes back with the next sweep.
func (r *nodeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("imagecleanup-node").
		WatchesRawSource(source.Channel(r.DiskTicks, &handler.EnqueueRequestForObject{})).
		For(&v1alpha1.ImageCleanupPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}, r.notingNewPolicies())).
		Watches(&corev1.Node{}, policywatch.EveryPolicy(mgr.GetCache()), policywatch.NodeLabelsChanged()).
		WithOptions(controller.Options{
			// One sweep at a time on this node's runtime, whatever the number of policies.
			MaxConcurrentReconciles: 1,
			NeedLeaderElection:      ptrTo(false),
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](r.RetryBaseDelay, r.RetryMaxDelay),
		}).
		Complete(r)
}

// notingNewPolicies lets every event through, and notes the policies
// created after this agent started (a create event after the cache's
// initial list): this node has no report of them, since the node's agent
// is one process at a time (it holds the image clock), so their first sweep
// need not ask the API server for one. At 5,000 nodes those were 5,000
// reads in each new policy's first wave. A policy deleted and created again
// under its name starts a report of its own, without the totals of the
// report the first one left.
func (r *nodeReconciler) notingNewPolicies() predicate.Predicate {
	return predicate.Funcs{CreateFunc: func(e event.CreateEvent) bool {
		if !e.IsInInitialList {
			r.remember(e.Object.GetName(), nil)
		}
		return true
	}}
}

func ptrTo[T any](v T) *T { return &v }
