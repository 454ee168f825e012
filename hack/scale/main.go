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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/controllers/aggregator"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// counter counts requests by "VERB resource".
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(key string) {
	c.mu.Lock()
	c.n[key]++
	c.mu.Unlock()
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

type counting struct {
	next http.RoundTripper
	c    *counter
}

func (t counting) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := req.Method
	if req.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	t.c.add(verb + " " + resourceOf(req.URL.Path))
	return t.next.RoundTrip(req)
}

// resourceOf names the resource of an API path: /api/v1/<resource>... or
// /apis/<group>/<version>/<resource>..., after namespaces/<namespace>/ for
// a namespaced one.
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) > 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) > 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return path
	}
	if len(parts) > 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	return parts[0]
}

// WrappedRoundTripper lets client-go reach the transport beneath, to cancel
// a request that timed out (k8s.io/apimachinery's RoundTripperWrapper).
func (t counting) WrappedRoundTripper() http.RoundTripper { return t.next }

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

// harnessMemory prints what this process (the agents and the aggregator
// replicas) holds after the idle time, per agent: what limits how many
// nodes one machine can simulate. With a profile folder it also writes the
// heap and goroutine profiles there (dir/harness.heap.pprof,
// dir/harness.goroutine.pprof).
func harnessMemory(n int, dir string) error {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("this process (agents and aggregators): %s resident; Go heap in use %.2f MiB per agent; %.0f goroutines per agent\n",
		processRSS("self"), float64(ms.HeapInuse)/(1<<20)/float64(n), float64(runtime.NumGoroutine())/float64(n))
	if dir == "" {
		return nil
	}
	for _, name := range []string{"heap", "goroutine"} {
		f, err := os.Create(filepath.Join(dir, "harness."+name+".pprof"))
		if err != nil {
			return err
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// The install's namespace and ServiceAccounts (config/default).
const (
	installNamespace = "image-cleanup-system"
	agentSA          = "image-cleanup-agent"
	aggregatorSA     = "image-cleanup-aggregator"
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

// apiServerMetrics reads the API server's /metrics; nil when it cannot.
func apiServerMetrics(ctx context.Context, cfg *rest.Config) map[string]*dto.MetricFamily {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil
	}
	// envtest's Host ends in a slash, and //metrics is not found.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: the API server's metrics:", err)
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "scale: the API server's metrics:", resp.Status)
		return nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: the API server's metrics:", err)
	}
	return families
}

// startProfiles profiles this process's CPU into dir/harness.pprof until the
// returned stop is called, and has the API server profile its own into
// dir/apiserver.pprof over the wave's first minute (its length is fixed
// when asked; stop waits for it).
func startProfiles(ctx context.Context, cfg *rest.Config, dir string) (stop func(), err error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, "harness.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := strings.TrimSuffix(cfg.Host, "/") + "/debug/pprof/profile?seconds=60"
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale: the API server's profile:", err)
			return
		}
		defer resp.Body.Close()
		out, err := os.Create(filepath.Join(dir, "apiserver.pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale: the API server's profile:", err)
			return
		}
		defer out.Close()
		if _, err := io.Copy(out, resp.Body); err != nil {
			fmt.Fprintln(os.Stderr, "scale: the API server's profile:", err)
		}
	}()
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		<-done
	}, nil
}

// counterBy sums a counter family by the values of the labels named, joined
// by "/".
func counterBy(families map[string]*dto.MetricFamily, name string, labels ...string) map[string]int {
	out := map[string]int{}
	for _, m := range families[name].GetMetric() {
		values := make([]string, len(labels))
		for _, l := range m.GetLabel() {
			if i := slices.Index(labels, l.GetName()); i >= 0 {
				values[i] = l.GetValue()
			}
		}
		out[strings.Join(values, "/")] += int(m.GetCounter().GetValue())
	}
	return out
}

// listed prints counts by key ("workload-low/queue-full=12"), or says
// "none".
func listed(d map[string]int) string {
	if len(d) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(d))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, d[k])
	}
	return strings.Join(parts, " ")
}

// API Priority and Fairness's counters of the API server.
const (
	dispatchedRequests = "apiserver_flowcontrol_dispatched_requests_total"
	rejectedRequests   = "apiserver_flowcontrol_rejected_requests_total"
)

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

func diff(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// childPID finds the envtest process of this harness whose command line
// names binary (kube-apiserver, etcd).
func childPID(binary string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if strings.Contains(string(cmd), binary) && strings.Contains(string(stat), " "+strconv.Itoa(os.Getpid())+" ") {
			return pid
		}
	}
	return 0
}

func apiServerRSS() string { return processRSS(strconv.Itoa(childPID("kube-apiserver"))) }

// processRSS is the resident size /proc/<pid>/status gives ("self" for this
// process).
func processRSS(pid string) string {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// cpuSeconds is the user and system CPU time pid has used (0 when unknown).
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(fields[11], 64)
	s, _ := strconv.ParseFloat(fields[12], 64)
	return (u + s) / 100
}

// cpuSplit is the CPU time used so far by the API server, etcd and this
// process (the agents, the aggregator replicas and the harness), to show
// what of the two cores a wave took.
type cpuSplit struct{ apiServer, etcd, harness float64 }

func cpuNow() cpuSplit {
	return cpuSplit{cpuSeconds(childPID("kube-apiserver")), cpuSeconds(childPID("etcd")), cpuSeconds(os.Getpid())}
}

func (c cpuSplit) since(before cpuSplit) string {
	return fmt.Sprintf("API server %.1f s, etcd %.1f s, agents and aggregators %.1f s",
		c.apiServer-before.apiServer, c.etcd-before.etcd, c.harness-before.harness)
}
