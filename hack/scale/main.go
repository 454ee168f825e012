// Command scale measures the control-plane cost of the operator with N
// in-process node agents (fake runtimes) and one aggregator against one
// envtest API server: time to all reports and to Ready after a new policy
// and after a spec change, API requests per node by verb and resource
// (leases apart) over an idle minute, the aggregator's status writes, the
// API server's CPU and memory, and the policy's size. The aggregator runs
// as the Deployment runs it: two replicas, each started again when it stops
// (a lost lease stops it); their logs, lease changes and reconciles are
// printed. Run it with `make scale NODES=200`. It is a benchmark, not a test.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

func main() {
	nodes := flag.Int("nodes", 200, "agents (nodes)")
	selected := flag.Float64("selected", 0.9, "share of the nodes the policy selects")
	idle := flag.Duration("idle", time.Minute, "idle time measured")
	within := flag.Duration("converge-within", 5*time.Minute, "how long a wave may take to converge before the run fails")
	kustomize := flag.String("kustomize", "kustomize", "the kustomize binary, to build the install's RBAC and FlowSchema")
	profile := flag.String("profile", "", "a folder to write CPU profiles of the new policy's wave to: the agents' and aggregators' (this process) and the API server's")
	flag.Parse()
	log.SetLogger(logr.Discard())
	if err := run(*nodes, *selected, *idle, *within, *kustomize, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(n int, share float64, idle, within time.Duration, kustomize, profile string) error {
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return err
	}
	defer func() {
		time.Sleep(time.Second) // the managers stop (ctx is cancelled first) before the API server
		_ = env.Stop()
	}()
	c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := installIdentities(ctx, c, kustomize); err != nil {
		return err
	}

	seen, err := cache.New(cfg, cache.Options{Scheme: controllers.Scheme(), DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{&v1alpha1.ImageCleanupReport{}: {}}})
	if err != nil {
		return err
	}
	if _, err := seen.GetInformer(ctx, &v1alpha1.ImageCleanupReport{}); err != nil {
		return err
	}
	go func() { _ = seen.Start(ctx) }()
	if !seen.WaitForCacheSync(ctx) {
		return errors.New("the harness's cache of reports did not sync")
	}

	agents, agg := &counter{n: map[string]int{}}, &counter{n: map[string]int{}}
	dials, dialer := &atomic.Int64{}, &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	wrap := func(cfg *rest.Config, c *counter, as rest.ImpersonationConfig) *rest.Config {
		cfg = rest.CopyConfig(cfg)
		// Each agent and replica a transport of its own, as each pod has: a
		// Dial function keeps client-go from sharing one cached transport
		// between configs. Shared, the 5,000 agents' 15,000 watches filled
		// the HTTP/2 connections (the API server allows 1,000 streams on
		// one) and a wave's requests kept dialling new ones: half the CPU
		// of the API server and of this process went to TLS handshakes.
		cfg.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, address)
		}
		cfg.QPS, cfg.Burst = 1000, 2000
		cfg.Impersonate = as
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return counting{next: rt, c: c} })
		return cfg
	}
	// Two aggregator replicas, as the Deployment runs them, each started
	// again when it stops (a lost lease ends the process; the kubelet
	// restarts the container).
	restarts := &atomic.Int64{}
	for i := range 2 {
		if err := startReplica(ctx, fmt.Sprintf("aggregator-%d", i), wrap(cfg, agg, serviceAccount(aggregatorSA, "")), restarts); err != nil {
			return err
		}
	}

	nSelected := int(float64(n) * share)
	start := time.Now()
	for i := range n {
		name := fmt.Sprintf("node-%05d", i)
		group := "fleet"
		if i >= nSelected {
			group = "other"
		}
		if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"group": group}}}); err != nil {
			return err
		}
		rt := runtimefake.WithStaleImage(name)
		rt.FollowBuffer = 16 // a sweep here tells of a few events; 1,024 held 0.08 MB per agent
		m, err := controllers.NewAgent(wrap(cfg, agents, serviceAccount(agentSA, name)), controllers.AgentOptions{NodeName: name, Runtime: rt,
			MetricsBindAddress: "0", HealthProbeBindAddress: "0", SkipNameValidation: true})
		if err != nil {
			return err
		}
		go func() { _ = m.Start(ctx) }()
	}
	fmt.Printf("%d agents (%d selected) and two aggregator replicas started in %s, %d connections dialled\n", n, nSelected, time.Since(start).Round(time.Millisecond), dials.Load())
	time.Sleep(3 * time.Second)
	// Each agent lists and watches its own Node and the pods bound to it
	// (field selectors): one of each, whatever the fleet's size.
	started := agents.snapshot()
	fmt.Printf("start-up requests per agent:")
	for _, k := range []string{"GET nodes", "WATCH nodes", "GET pods", "WATCH pods"} {
		fmt.Printf("  %s %.2f", k, float64(started[k])/float64(n))
	}
	fmt.Printf("\n\n")

	policy := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "fleet"}, Spec: v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"group": "fleet"}},
		Images:       []v1alpha1.ImagePattern{"ci.local/**"},
	}}
	interval := v1alpha1.Duration("1m")
	policy.Spec.Interval = &interval
	fmt.Printf("%-14s %14s %14s %14s %14s %14s %14s   %s\n", "phase", "all reports", "Ready", "status writes", "agent writes",
		"reconciles", "lease changes", "lease holder")
	phase := func(name string, change func() error, profiling bool) error {
		before, aggBefore, reconcilesBefore := agents.snapshot(), agg.snapshot(), aggregatorReconciles()
		cpuBefore, dialsBefore := cpuNow(), dials.Load()
		if profiling {
			stop, err := startProfiles(ctx, cfg, profile)
			if err != nil {
				return err
			}
			defer stop()
		}
		metricsBefore := apiServerMetrics(ctx, cfg)
		rejectedBefore := counterBy(metricsBefore, rejectedRequests, "priority_level", "reason")
		dispatchedBefore := counterBy(metricsBefore, dispatchedRequests, "priority_level")
		t0 := time.Now()
		if err := change(); err != nil {
			return err
		}
		var p v1alpha1.ImageCleanupPolicy
		if err := c.Get(ctx, client.ObjectKeyFromObject(policy), &p); err != nil {
			return err
		}
		reports, ready, err := waitConverged(ctx, c, seen, p.Name, p.Generation, nSelected, t0, within)
		if err != nil {
			return err
		}
		aggDiff, agDiff := diff(agg.snapshot(), aggBefore), diff(agents.snapshot(), before)
		holder, transitions := leaseHolder(ctx, c)
		fmt.Printf("%-14s %14s %14s %14d %14d %14d %14d   %s\n", name, reports.Round(time.Millisecond), ready.Round(time.Millisecond),
			aggDiff["PATCH imagecleanuppolicies"], agDiff["PATCH imagecleanupreports"], aggregatorReconciles()-reconcilesBefore, transitions, holder)
		fmt.Printf("%-14s CPU: %s; connections dialled by agents and aggregators: %d\n", "", cpuNow().since(cpuBefore), dials.Load()-dialsBefore)
		fmt.Printf("%-14s the agents' requests: %s\n", "", listed(agDiff))
		metricsAfter := apiServerMetrics(ctx, cfg)
		fmt.Printf("%-14s API Priority and Fairness, requests dispatched by level: %s\n", "",
			listed(diff(counterBy(metricsAfter, dispatchedRequests, "priority_level"), dispatchedBefore)))
		fmt.Printf("%-14s rejected by level/reason: %s\n", "",
			listed(diff(counterBy(metricsAfter, rejectedRequests, "priority_level", "reason"), rejectedBefore)))
		return nil
	}
	if err := phase("new policy", func() error { return c.Create(ctx, policy) }, profile != ""); err != nil {
		return err
	}
	// Every removal counted: each selected node removed one image.
	time.Sleep(11 * time.Second) // a status interval, for the last reports to be counted
	var counted v1alpha1.ImageCleanupPolicy
	if err := c.Get(ctx, client.ObjectKeyFromObject(policy), &counted); err != nil {
		return err
	}
	if err := phase("spec change", func() error {
		var p v1alpha1.ImageCleanupPolicy
		if err := c.Get(ctx, client.ObjectKeyFromObject(policy), &p); err != nil {
			return err
		}
		p.Spec.DryRun = true
		return c.Update(ctx, &p)
	}, false); err != nil {
		return err
	}

	before := agents.snapshot()
	cpu0 := cpuNow()
	time.Sleep(idle)
	idleReqs := diff(agents.snapshot(), before)
	fmt.Printf("\nidle %s, requests per node per minute by the agents:\n", idle)
	keys := make([]string, 0, len(idleReqs))
	total := 0
	for k, v := range idleReqs {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	perMin := func(v int) float64 { return float64(v) / float64(n) / idle.Minutes() }
	for _, k := range keys {
		fmt.Printf("  %-36s %8.3f\n", k, perMin(idleReqs[k]))
	}
	fmt.Printf("  %-36s %8.3f (leases: %d in all)\n", "total", perMin(total), idleReqs["GET leases"]+idleReqs["PUT leases"])
	var p v1alpha1.ImageCleanupPolicy
	_ = c.Get(ctx, client.ObjectKeyFromObject(policy), &p)
	raw, _ := json.Marshal(&p)
	fmt.Printf("\npolicy object: %d bytes; API server: %s resident, %.1f s CPU over the idle %s\n",
		len(raw), apiServerRSS(), cpuNow().apiServer-cpu0.apiServer, idle)
	fmt.Printf("removals counted in the status: %d of %d; watchers the API server terminated: %d\n",
		counted.Status.ImagesRemoved, nSelected, counterBy(apiServerMetrics(ctx, cfg), "apiserver_terminated_watchers_total")[""])
	holder, transitions := leaseHolder(ctx, c)
	fmt.Printf("aggregator restarts: %d; lease transitions: %d (holder %s)\n", restarts.Load(), transitions, holder)
	return harnessMemory(n, profile)
}

// The install's namespace and ServiceAccounts (config/default).
const (
	installNamespace = "image-cleanup-system"
	agentSA          = "image-cleanup-agent"
	aggregatorSA     = "image-cleanup-aggregator"
)

// API Priority and Fairness's counters of the API server.
const (
	dispatchedRequests = "apiserver_flowcontrol_dispatched_requests_total"
	rejectedRequests   = "apiserver_flowcontrol_rejected_requests_total"
)
