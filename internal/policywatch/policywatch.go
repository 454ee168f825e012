// Package policywatch is what the node agent and the aggregator both watch
// besides policies: Nodes, whose labels decide which policies select them.
// A Node is cached trimmed to those labels, and a change of its labels (or a
// Node that comes or goes) asks for a reconcile of every policy.
package policywatch

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// TrimNode is a cache transform: a Node trimmed to what selection needs
// (name and labels); its status churns and is large.
func TrimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: n.Name, UID: n.UID, Labels: n.Labels, ResourceVersion: n.ResourceVersion,
	}}, nil
}

// EveryPolicy asks for a reconcile of every policy the reader holds,
// whatever the event: what a change of a Node's labels calls for, since
// any policy may select that Node now, or no longer.
func EveryPolicy(reader client.Reader) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
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
	})
}

// NodeLabelsChanged lets through a Node that comes, goes, or whose labels
// change; not its status, which churns.
func NodeLabelsChanged() builder.WatchesOption {
	return builder.WithPredicates(predicate.LabelChangedPredicate{})
}
