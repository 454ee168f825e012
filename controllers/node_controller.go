package controllers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
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

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
)

// +kubebuilder:rbac:groups=imagecleanup.io,resources=imagecleanuppolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=imagecleanup.io,resources=imagecleanupreports,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// maxJitter spreads a fleet's sweeps over this fraction of the interval, so
// that nodes do not all sweep (and write reports) in the same second.
const maxJitter = 0.1

// NodeReconciler applies every policy to this node's engine: the agent runs
// one on every node. It sweeps a policy when its generation changed or its
// interval elapsed, one sweep at a time (the controller runs one reconcile
// at a time), and writes this node's report of it.
type NodeReconciler struct {
	// Client reads from the agent's scoped cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server itself, for when the cache lags
	// behind this agent's own last write.
	APIReader client.Reader
	Node      string
	Runtime   engine.Runtime
	Recorder  events.EventRecorder
	Clock     clock.Clock
	Protected []string
	// Images is the node's image clock: arrivals, last uses, removals begun.
	Images *nodeClock
	// SweepTimeout bounds one sweep.
	SweepTimeout time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the back-off after a failed sweep.
	RetryBaseDelay, RetryMaxDelay time.Duration

	mu sync.Mutex
	// written is the last sweep time this agent wrote, by policy.
	written map[string]time.Time
}

// Reconcile implements reconcile.Reconciler for one policy.
func (r *NodeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("policy", req.Name, "node", r.Node)
	ctx = logf.IntoContext(ctx, log)

	var policy v1alpha1.ImageCleanupPolicy
	if err := r.Client.Get(ctx, req.NamespacedName, &policy); err != nil {
		if apierrors.IsNotFound(err) {
			// Garbage collection removes reports with their policy; do it here
			// too, where no collector runs (envtest) or it lags.
			return ctrl.Result{}, r.deleteReport(ctx, req.Name)
		}
		return ctrl.Result{}, err
	}
	if !policy.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.deleteReport(ctx, policy.Name)
	}

	var node corev1.Node
	if err := r.Client.Get(ctx, types.NamespacedName{Name: r.Node}, &node); err != nil {
		if apierrors.IsNotFound(err) {
			// The Node watch brings us back when it appears.
			log.Info("waiting for this node's Node object")
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	report, err := r.currentReport(ctx, policy.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if r.cacheLags(policy.Name, report) {
		// A reconcile right after our own write: read the report itself, or
		// this node would sweep again for nothing.
		if report, err = r.liveReport(ctx, policy.Name); err != nil {
			return ctrl.Result{}, err
		}
	}
	prev := &v1alpha1.ImageCleanupReportStatus{}
	if report != nil {
		prev = &report.Status
	}

	selector, err := policy.Spec.NodeSelector.Selector()
	if err != nil {
		// Permanent until the spec changes, which brings us back.
		st := idleStatus(prev, policy.Generation, v1alpha1.PhaseFailed, "spec.nodeSelector: "+err.Error())
		return ctrl.Result{}, r.writeReport(ctx, &policy, report, st)
	}
	if !selector.Matches(labels.Set(node.Labels)) {
		return ctrl.Result{}, r.deleteReport(ctx, policy.Name)
	}
	if policy.Spec.Suspend {
		return ctrl.Result{}, r.writeReport(ctx, &policy, report, idleStatus(prev, policy.Generation, v1alpha1.PhaseSkipped, "the policy is suspended"))
	}

	now := r.Clock.Now()
	if wait := r.untilDue(&policy, report, now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	sweepCtx, cancel := context.WithTimeout(ctx, r.SweepTimeout)
	var out cleanup.Outcome
	images, sweepErr := r.Images.get(sweepCtx)
	if sweepErr == nil {
		out, sweepErr = cleanup.Sweep(sweepCtx, r.Runtime, &policy.Spec, now, cleanup.Options{
			Policy: policy.Name, Clock: images, Protected: r.Protected,
		})
	}
	cancel()
	st := sweepStatus(prev, policy.Generation, now, policy.Spec.DryRun, &out, sweepErr)
	observeSweep(policy.Name, &st, &out, sweepErr)
	r.recordEvents(&policy, prev, &st)
	if err := r.writeReport(ctx, &policy, report, st); err != nil {
		return ctrl.Result{}, err
	}
	logSweep(log, &out, &st)

	switch {
	case errors.Is(sweepErr, cleanup.ErrInvalidPolicy):
		return ctrl.Result{}, nil // the report says why; a spec change brings us back
	case sweepErr != nil:
		// Engine unreachable and the like: back off and try again, never exit.
		return ctrl.Result{}, fmt.Errorf("sweep: %w", sweepErr)
	case out.Result.Stopped != "":
		return ctrl.Result{}, fmt.Errorf("sweep stopped early: %s", out.Result.Stopped)
	case len(out.Result.Failed) > 0:
		return ctrl.Result{}, fmt.Errorf("sweep: %d engine calls failed", len(out.Result.Failed))
	}
	return ctrl.Result{RequeueAfter: r.interval(&policy)}, nil
}

// logSweep logs a sweep with the project's stable keys: a line per removal
// at verbosity 1, a line per failed removal always.
func logSweep(log logr.Logger, out *cleanup.Outcome, st *v1alpha1.ImageCleanupReportStatus) {
	for _, c := range out.Result.RemovedContainers {
		log.V(1).Info("removed stopped container", "container", engine.DisplayContainer(c.Name, c.ID), "dryRun", out.Result.DryRun)
	}
	for _, ri := range out.Result.RemovedImages {
		log.V(1).Info("removed image", "image", ri.Image, "deleted", ri.Deleted, "forced", ri.Forced, "dryRun", out.Result.DryRun)
	}
	for _, b := range out.Result.Blocked {
		log.V(1).Info("image blocked", "image", b.Image, "reason", b.Reason, "message", b.Message)
	}
	for _, f := range out.Result.Failed {
		log.Info("image removal failed", "image", f.Image, "error", f.Error)
	}
	log.Info("swept", "phase", st.Phase, "images", st.ImagesRemoved, "containers", st.ContainersRemoved,
		"blocked", st.BlockedCount, "duration", st.LastSweepDuration)
}

// untilDue returns how long until the policy is due on this node; zero or
// less means now. The report is the memory of the last sweep, so a restarted
// agent does not sweep again before its time.
func (r *NodeReconciler) untilDue(policy *v1alpha1.ImageCleanupPolicy, report *v1alpha1.ImageCleanupReport, now time.Time) time.Duration {
	if report == nil || report.Status.LastSweepTime == nil ||
		report.Status.PolicyGeneration != policy.Generation ||
		report.Status.Phase == v1alpha1.PhaseFailed {
		return 0
	}
	return report.Status.LastSweepTime.Add(r.interval(policy)).Sub(now)
}

// interval is the policy's interval plus this node's jitter: a fixed
// fraction (up to maxJitter) drawn from the node and policy names, so each
// node keeps its own steady rhythm.
func (r *NodeReconciler) interval(policy *v1alpha1.ImageCleanupPolicy) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(r.Node + "/" + policy.Name))
	frac := float64(h.Sum32()%1000) / 1000 * maxJitter
	d := policy.Spec.IntervalDuration()
	return d + time.Duration(frac*float64(d))
}

func (r *NodeReconciler) currentReport(ctx context.Context, policy string) (*v1alpha1.ImageCleanupReport, error) {
	var report v1alpha1.ImageCleanupReport
	err := r.Client.Get(ctx, types.NamespacedName{Name: ReportName(policy, r.Node)}, &report)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &report, nil
}

// cacheLags reports whether the cached report is older than the last one
// this agent wrote.
func (r *NodeReconciler) cacheLags(policy string, cached *v1alpha1.ImageCleanupReport) bool {
	r.mu.Lock()
	written, ok := r.written[policy]
	r.mu.Unlock()
	return ok && (cached == nil || cached.Status.LastSweepTime == nil || cached.Status.LastSweepTime.Time.Before(written))
}

func (r *NodeReconciler) liveReport(ctx context.Context, policy string) (*v1alpha1.ImageCleanupReport, error) {
	var report v1alpha1.ImageCleanupReport
	err := r.APIReader.Get(ctx, types.NamespacedName{Name: ReportName(policy, r.Node)}, &report)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil // deleted since: the sweep writes it anew
	case err != nil:
		return nil, err
	}
	return &report, nil
}

func (r *NodeReconciler) remember(policy string, st *v1alpha1.ImageCleanupReportStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.written == nil {
		r.written = map[string]time.Time{}
	}
	if st.LastSweepTime == nil {
		delete(r.written, policy)
		return
	}
	r.written[policy] = st.LastSweepTime.Time
}

func (r *NodeReconciler) deleteReport(ctx context.Context, policy string) error {
	report, err := r.currentReport(ctx, policy)
	if err != nil || report == nil {
		return err
	}
	return client.IgnoreNotFound(r.Client.Delete(ctx, report, client.Preconditions{UID: &report.UID}))
}

// fieldManager is this node's server-side apply field manager.
func (r *NodeReconciler) fieldManager() string { return cut("imagecleanup-agent/"+r.Node, 128) }

// writeReport applies the report when it differs from the stored one: at
// most one write per sweep, none when nothing changed.
func (r *NodeReconciler) writeReport(ctx context.Context, policy *v1alpha1.ImageCleanupPolicy, existing *v1alpha1.ImageCleanupReport, st v1alpha1.ImageCleanupReportStatus) error {
	desired := &v1alpha1.ImageCleanupReport{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ImageCleanupReport"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   ReportName(policy.Name, r.Node),
			Labels: reportLabels(policy.Name, r.Node),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "ImageCleanupPolicy",
				Name: policy.Name, UID: policy.UID, Controller: ptrTo(true),
			}},
		},
		Spec:   v1alpha1.ImageCleanupReportSpec{PolicyName: policy.Name, NodeName: r.Node},
		Status: st,
	}
	if existing != nil && equality.Semantic.DeepEqual(existing.Status, desired.Status) &&
		equality.Semantic.DeepEqual(existing.Spec, desired.Spec) &&
		equality.Semantic.DeepEqual(existing.OwnerReferences, desired.OwnerReferences) &&
		labels.Equals(existing.Labels, desired.Labels) {
		return nil
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(r.fieldManager()), client.ForceOwnership); err != nil {
		return err
	}
	r.remember(policy.Name, &st)
	return nil
}

// recordEvents tells of removals and of failures on the policy: nothing for
// a sweep that changed nothing, one event when a node starts failing.
func (r *NodeReconciler) recordEvents(policy *v1alpha1.ImageCleanupPolicy, prev, st *v1alpha1.ImageCleanupReportStatus) {
	if r.Recorder == nil {
		return
	}
	switch {
	case st.Phase == v1alpha1.PhaseFailed && (prev.Phase != v1alpha1.PhaseFailed || prev.Message != st.Message):
		r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, "SweepFailed", "Sweep", "node %s: %s", r.Node, st.Message)
	case st.Phase != v1alpha1.PhaseDryRun && (st.ImagesRemoved > 0 || st.ContainersRemoved > 0):
		r.Recorder.Eventf(policy, nil, corev1.EventTypeNormal, "Removed", "Sweep",
			"node %s: removed %d images and %d stopped containers, about %d bytes", r.Node, st.ImagesRemoved, st.ContainersRemoved, st.BytesReclaimed)
	}
}

// SetupWithManager registers the controller: policies (spec changes only),
// this node's Node (label changes), and this node's reports (deletions, so a
// report removed by hand comes back).
func (r *NodeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	allPolicies := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return policyRequests(ctx, mgr.GetCache())
	})
	reportDeleted := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("imagecleanup-node").
		For(&v1alpha1.ImageCleanupPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Node{}, allPolicies, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&v1alpha1.ImageCleanupReport{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.(*v1alpha1.ImageCleanupReport).Spec.PolicyName}}}
		}), builder.WithPredicates(reportDeleted)).
		WithOptions(controller.Options{
			// One sweep at a time on this node's engine, whatever the number of policies.
			MaxConcurrentReconciles: 1,
			NeedLeaderElection:      ptrTo(false),
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](r.RetryBaseDelay, r.RetryMaxDelay),
		}).
		Complete(r)
}

// policyRequests asks for a reconcile of every policy: what a change of a
// Node's labels calls for.
func policyRequests(ctx context.Context, reader client.Reader) []reconcile.Request {
	var list v1alpha1.ImageCleanupPolicyList
	if err := reader.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "listing policies")
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}}
	}
	return reqs
}

func ptrTo[T any](v T) *T { return &v }
