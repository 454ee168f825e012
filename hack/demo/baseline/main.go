// Command baseline is the smallest controller-runtime manager of the agent's
// kind: client-go's scheme, one controller that watches ConfigMaps and does
// nothing, its cache, no metrics or health endpoints. make demo runs it next
// to the agent, idle as long, so that the agent's resident memory has a
// baseline measured in the same run: what Go, client-go and
// controller-runtime cost before any of the agent's own code.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func main() {
	// --kubeconfig is controller-runtime's flag.
	pprof := flag.String("pprof-bind-address", "", "where to serve Go's profiles")
	flag.Parse()
	if err := run(*pprof); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(pprof string) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Metrics: server.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		PprofBindAddress: pprof}) // the heap profile's MemStats, as the agent serves them
	if err != nil {
		return err
	}
	nothing := reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, nil })
	if err := ctrl.NewControllerManagedBy(mgr).For(&corev1.ConfigMap{}).Complete(nothing); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
