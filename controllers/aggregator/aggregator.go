package aggregator

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/policywatch"
)

// The aggregator's rights (config/rbac/aggregator, generated): it reads
// policies, reports and Nodes, writes policy status, deletes stale reports,
// and holds its lease.
//
// +kubebuilder:rbac:groups=imagecleanup.io,resources=imagecleanuppolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=imagecleanup.io,resources=imagecleanuppolicies/status,verbs=get;patch
// +kubebuilder:rbac:groups=imagecleanup.io,resources=imagecleanupreports,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=image-cleanup-system,resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=image-cleanup-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=image-cleanup-system,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// AgentPods names the agent's pods: the DaemonSet's, in its namespace.
type AgentPods struct {
	Namespace string
	Selector  labels.Selector
}

// cacheOptions scope the aggregator's cache: policies, reports and Nodes
// (trimmed to name and labels), and, with agents, only the agent's own pods
// (trimmed to node and readiness). Reading any other type fails instead of
// starting a cluster-wide informer.
func cacheOptions(agents *AgentPods) cache.Options {
	byObject := map[client.Object]cache.ByObject{&corev1.Node{}: {Transform: policywatch.TrimNode}}
	if agents != nil {
		byObject[&corev1.Pod{}] = cache.ByObject{Namespaces: map[string]cache.Config{agents.Namespace: {}},
			Label: agents.Selector, Transform: trimPod}
	}
	return cache.Options{
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ByObject:                    byObject,
	}
}

// setupWithManager runs the aggregator as the manager's controller, on the
// elected replica only. It is fed by policy spec changes, every report
// change, Node label changes (they change which nodes a policy selects),
// and, with agents, an agent pod that comes, goes or changes readiness.
func (r *aggregateReconciler) setupWithManager(mgr ctrl.Manager, skipNameValidation bool) error {
	// Reports by policy: an index, not a label scan per reconcile.
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.ImageCleanupReport{}, reportPolicyIndex, func(o client.Object) []string {
		return []string{o.(*v1alpha1.ImageCleanupReport).Spec.PolicyName}
	}); err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	everyPolicy := policywatch.EveryPolicy(mgr.GetCache())
	b := ctrl.NewControllerManagedBy(mgr).
		Named("imagecleanup-aggregator").
		For(&v1alpha1.ImageCleanupPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.ImageCleanupReport{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.(*v1alpha1.ImageCleanupReport).Spec.PolicyName}}}
		})).
		Watches(&corev1.Node{}, everyPolicy, policywatch.NodeLabelsChanged())
	if r.agents != nil {
		placement := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			before, after := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
			return before.Spec.NodeName != after.Spec.NodeName || agentRuns(before) != agentRuns(after)
		}}
		b = b.Watches(&corev1.Pod{}, everyPolicy, builder.WithPredicates(placement))
	}
	return b.WithOptions(controller.Options{SkipNameValidation: ptr.To(skipNameValidation)}).Complete(r)
}

// trimPod is a cache transform: an agent pod trimmed to its node and its
// readiness.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, Labels: p.Labels,
		ResourceVersion: p.ResourceVersion, DeletionTimestamp: p.DeletionTimestamp}, Spec: corev1.PodSpec{NodeName: p.Spec.NodeName}}
	out.Status.Phase = p.Status.Phase
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out, nil
}

// agentRuns reports whether an agent pod runs and is ready.
func agentRuns(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// aggregateReconciler recomputes each policy's status from its reports and
// deletes the reports of nodes that are gone or no longer selected.
type aggregateReconciler struct {
	reader client.Reader
	writer client.Client
	// interval coalesces status writes; clock times them and stamps the
	// conditions.
	interval time.Duration
	clock    clock.PassiveClock
	agents   *AgentPods
	metrics  *policyMetrics       // nil: none
	recorder events.EventRecorder // nil: none

	mu         sync.Mutex
	computedAt map[string]time.Time // by policy: the last computation
}

// reportPolicyIndex indexes reports by spec.policyName.
const reportPolicyIndex = "spec.policyName"

// untilWritable is how long a policy must wait before its status is
// computed (and written, if it changed) again: at most once per interval,
// the first at once. A report event in between costs a cache read.
func (r *aggregateReconciler) untilWritable(policy string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.computedAt[policy]
	if !ok || r.interval <= 0 {
		return 0
	}
	return last.Add(r.interval).Sub(r.clock.Now())
}

func (r *aggregateReconciler) computed(policy string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.computedAt == nil {
		r.computedAt = map[string]time.Time{}
	}
	r.computedAt[policy] = r.clock.Now()
}

func (r *aggregateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var policy v1alpha1.ImageCleanupPolicy
	if err := r.reader.Get(ctx, req.NamespacedName, &policy); err != nil {
		if apierrors.IsNotFound(err) {
			r.metrics.forget(req.Name)
			// Normally garbage collection's job, through the owner reference.
			reports, err := r.reportsOf(ctx, req.Name)
			if err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{}, r.deleteReports(ctx, reports)
		}
		return ctrl.Result{}, err
	}
	if wait := r.untilWritable(policy.Name); wait > 0 {
		// Coalesce: one computation (a list of Nodes and reports) and at
		// most one write per interval, whatever the number of report events.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	var nodes corev1.NodeList
	if err := r.reader.List(ctx, &nodes); err != nil {
		return ctrl.Result{}, err
	}
	reports, err := r.reportsOf(ctx, policy.Name)
	if err != nil {
		// Never a status computed from no reports: that would say zero.
		return ctrl.Result{}, err
	}
	agents, err := r.agentNodes(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	agg := aggregate(&policy, nodes.Items, agents, reports, r.clock.Now())
	r.computed(policy.Name)
	r.metrics.observe(policy.Name, &agg.status)
	if err := r.deleteReports(ctx, agg.stale); err != nil {
		return ctrl.Result{}, err
	}
	// The status changes by time alone when the schedule's window opens or
	// closes, and when a node's returns grow too old to count: come back
	// then.
	var result ctrl.Result
	if at := agg.recomputeAt(); !at.IsZero() {
		result.RequeueAfter = max(at.Sub(r.clock.Now()), 0) + time.Second
	}
	if equality.Semantic.DeepEqual(policy.Status, agg.status) {
		return result, nil
	}
	// Server-side apply of the whole status: zeros are written, and what the
	// aggregator wrote before and leaves out now (failingNodes) goes.
	apply, err := policyStatusApplyConfiguration(policy.Name, &agg.status)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.writer.Status().Apply(ctx, apply, client.FieldOwner(aggregatorFieldManager), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	r.recordRemovals(&policy, &agg.status)
	return result, nil
}

// recordRemovals tells on the policy what its nodes removed since the
// status last written (policy.Status): one Removed event per status write
// in which the totals grew. One event for the fleet, not one per node: at
// 5,000 nodes those were 4,500 event writes per wave, with their retries
// more than the reports' own (docs/testing.md); each node's removals are
// in its report. Told after the write, so a failed write, retried, is told
// once; a replica taking over compares with the status its predecessor
// wrote.
func (r *aggregateReconciler) recordRemovals(policy *v1alpha1.ImageCleanupPolicy, now *v1alpha1.ImageCleanupPolicyStatus) {
	was := &policy.Status
	images, containers := max(0, now.ImagesRemoved-was.ImagesRemoved), max(0, now.ContainersRemoved-was.ContainersRemoved)
	if r.recorder == nil || images == 0 && containers == 0 {
		return
	}
	r.recorder.Eventf(policy, nil, corev1.EventTypeNormal, "Removed", "Sweep",
		"images removed: %d, stopped containers removed: %d, about %d bytes freed (since the last count; in all %d images, %d stopped containers)",
		images, containers, max(0, now.BytesReclaimed-was.BytesReclaimed), now.ImagesRemoved, now.ContainersRemoved)
}

const aggregatorFieldManager = "imagecleanup-aggregator"

// agentNodes are the nodes where an agent pod runs ready; nil when the
// aggregator does not look (every node counts as having one).
func (r *aggregateReconciler) agentNodes(ctx context.Context) (map[string]bool, error) {
	if r.agents == nil {
		return nil, nil
	}
	var pods corev1.PodList
	if err := r.reader.List(ctx, &pods, client.InNamespace(r.agents.Namespace), client.MatchingLabelsSelector{Selector: r.agents.Selector}); err != nil {
		return nil, fmt.Errorf("listing the agent's pods: %w", err)
	}
	nodes := map[string]bool{}
	for i := range pods.Items {
		if agentRuns(&pods.Items[i]) {
			nodes[pods.Items[i].Spec.NodeName] = true
		}
	}
	return nodes, nil
}

func (r *aggregateReconciler) reportsOf(ctx context.Context, policy string) ([]v1alpha1.ImageCleanupReport, error) {
	var list v1alpha1.ImageCleanupReportList
	if err := r.reader.List(ctx, &list, client.MatchingFields{reportPolicyIndex: policy}); err != nil {
		return nil, fmt.Errorf("listing the reports of %s: %w", policy, err)
	}
	var out []v1alpha1.ImageCleanupReport
	for _, rep := range list.Items {
		if rep.Spec.PolicyName == policy {
			out = append(out, rep)
		}
	}
	return out, nil
}

func (r *aggregateReconciler) deleteReports(ctx context.Context, reports []v1alpha1.ImageCleanupReport) error {
	for i := range reports {
		rep := &reports[i]
		err := r.writer.Delete(ctx, rep, client.Preconditions{UID: &rep.UID})
		switch {
		case err == nil:
			logf.FromContext(ctx).V(1).Info("deleted stale report", "report", rep.Name, "node", rep.Spec.NodeName)
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Gone already, or replaced by a new report of the same name.
		default:
			return err
		}
	}
	return nil
}
