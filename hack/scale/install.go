package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/controllers/aggregator"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// serviceAccount is the identity of a pod of the ServiceAccount, bound to
// node (the agent's token carries its node's name) when node is set.
func serviceAccount(name, node string) rest.ImpersonationConfig {
	as := rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + installNamespace + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + installNamespace, "system:authenticated"},
	}
	if node != "" {
		as.Extra = map[string][]string{"authentication.kubernetes.io/node-name": {node}}
	}
	return as
}

// installIdentities applies what of the install (kustomize build
// config/default) gives the agents and the aggregator their identities and
// their place in API Priority and Fairness: the namespace, ServiceAccounts,
// RBAC, the FlowSchemas and the agents' priority level. The workloads are
// this process, and the report-writers admission policy is left out (its
// cost is not measured).
func installIdentities(ctx context.Context, c client.Client, kustomize string) error {
	out, err := exec.Command(kustomize, "build", filepath.Join("config", "default")).Output()
	if err != nil {
		return fmt.Errorf("kustomize build config/default: %w", err)
	}
	wanted := map[string]bool{"Namespace": true, "ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true,
		"Role": true, "RoleBinding": true, "FlowSchema": true, "PriorityLevelConfiguration": true}
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if !wanted[u.GetKind()] {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.ForceOwnership, client.FieldOwner("scale")); err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// startReplica runs one aggregator replica until ctx ends, starting it
// again (after a second) whenever it stops, and logs to stderr what it
// logs: errors, its lease, its shutdowns.
func startReplica(ctx context.Context, name string, cfg *rest.Config, restarts *atomic.Int64) error {
	logger := zap.New(zap.WriteTo(os.Stderr), zap.ConsoleEncoder()).WithName(name)
	newManager := func() (manager.Manager, error) {
		return aggregator.NewManager(cfg, controllers.Scheme(), aggregator.Options{MetricsBindAddress: "0", HealthProbeBindAddress: "0",
			SkipNameValidation: true, Logger: logger})
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	go func() {
		for {
			err := mgr.Start(ctx)
			if ctx.Err() != nil {
				return
			}
			restarts.Add(1)
			logger.Error(err, "the replica stopped; starting it again, as the kubelet would")
			time.Sleep(time.Second)
			if mgr, err = newManager(); err != nil {
				logger.Error(err, "the replica cannot start")
				return
			}
		}
	}()
	return nil
}

// leaseHolder says who holds the aggregator's lease and how often it
// changed hands.
func leaseHolder(ctx context.Context, c client.Client) (string, int32) {
	var l coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: aggregator.LeaseName}, &l); err != nil {
		return err.Error(), 0
	}
	return ptr.Deref(l.Spec.HolderIdentity, ""), ptr.Deref(l.Spec.LeaseTransitions, 0)
}

// aggregatorReconciles sums controller-runtime's reconcile counter of the
// aggregator's controller over both replicas.
func aggregatorReconciles() int {
	families, _ := ctrlmetrics.Registry.Gather()
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "imagecleanup-aggregator" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return int(total)
}

// waitConverged waits until every selected node (want) reported the
// generation, and until the policy is Ready at it; it returns both times
// since t0. It counts the reports in the harness's own cache (one watch:
// a list of every report ten times a second loaded the API server, and at
// 10,000 nodes timed out).
func waitConverged(ctx context.Context, c client.Client, seen client.Reader, policy string, gen int64, want int, t0 time.Time, within time.Duration) (reports, ready time.Duration, err error) {
	deadline := t0.Add(within)
	for time.Now().Before(deadline) {
		if reports == 0 {
			var list v1alpha1.ImageCleanupReportList
			// Read only: a copy of every report ten times a second would
			// take the CPU the in-process agents need.
			if err := seen.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
				return 0, 0, err
			}
			n := 0
			for _, r := range list.Items {
				if r.Spec.PolicyName == policy && r.Status.PolicyGeneration == gen {
					n++
				}
			}
			if n >= want {
				reports = time.Since(t0)
			}
		}
		var p v1alpha1.ImageCleanupPolicy
		if err := c.Get(ctx, client.ObjectKey{Name: policy}, &p); err != nil {
			return 0, 0, err
		}
		cond := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		if reports > 0 && p.Status.ObservedGeneration == gen && cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == gen {
			return reports, time.Since(t0), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("not converged in %s", within)
}
