package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/controllers/aggregator"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

const leaseNamespace = "image-cleanup-system"

var logOnce sync.Once

// writeCounter counts the API writes of an agent's node controller, and
// among them the writes of its reports. Lease renewals (the election's
// heartbeat) and the aggregator's work (policy status, deleting stale
// reports: the leader may be any agent of the test process, for any test's
// policies) are not counted.
type writeCounter struct {
	n, reports, leases atomic.Int64
	// podRequests are the agent's requests for pods (lists and watches).
	mu          sync.Mutex
	podRequests []string
}

type countingTransport struct {
	next http.RoundTripper
	c    *writeCounter
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	path := req.URL.Path
	if strings.Contains(path, "/leases") {
		t.c.leases.Add(1)
	}
	if strings.HasSuffix(path, "/pods") {
		t.c.mu.Lock()
		t.c.podRequests = append(t.c.podRequests, req.URL.RawQuery)
		t.c.mu.Unlock()
	}
	aggregator := strings.HasSuffix(path, "/status") ||
		(req.Method == http.MethodDelete && strings.Contains(path, "/imagecleanupreports/"))
	if req.Method != http.MethodGet && !strings.Contains(path, "/leases") && !aggregator {
		t.c.n.Add(1)
		if strings.Contains(path, "/imagecleanupreports") {
			t.c.reports.Add(1)
		}
	}
	return t.next.RoundTrip(req)
}

type agent struct {
	node   string
	mgr    ctrl.Manager
	writes *writeCounter
	// stateDir holds the agent's image clock, as the DaemonSet's hostPath does.
	stateDir string
	// metrics is this agent's registry, as its pod's /metrics serves it.
	metrics *prometheus.Registry
}

// startAgent runs one node's agent, as its DaemonSet pod would, until the
// test ends.
func startAgent(t *testing.T, node string, rt runtime.Runtime) *agent {
	t.Helper()
	return startAgentWith(t, node, rt, nil)
}

// startAgentWith lets a test change the agent's options first.
func startAgentWith(t *testing.T, node string, rt runtime.Runtime, adjust func(*controllers.AgentOptions)) *agent {
	t.Helper()
	return startAgentOn(t, node, rt, nil, adjust)
}

// startAgentOn also puts wrap between the agent and the API server.
func startAgentOn(t *testing.T, node string, rt runtime.Runtime, wrap func(http.RoundTripper) http.RoundTripper, adjust func(*controllers.AgentOptions)) *agent {
	t.Helper()
	logOnce.Do(func() { log.SetLogger(zap.New(zap.WriteTo(testWriter{}), zap.UseDevMode(true))) })
	cfg := testenv.APIServer(t)
	counter := &writeCounter{}
	stateDir := t.TempDir()
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, c: counter} })
	if wrap != nil {
		cfg.Wrap(wrap)
	}
	reg := prometheus.NewRegistry()
	opts := controllers.AgentOptions{
		NodeName:               node,
		Runtime:                rt,
		ProtectedImages:        []string{"imagecleanup/agent:test"},
		StateDir:               stateDir,
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: "0",
		Metrics:                reg,
		SkipNameValidation:     true,
		RetryBaseDelay:         200 * time.Millisecond,
		RetryMaxDelay:          2 * time.Second,
	}
	if adjust != nil {
		adjust(&opts)
	}
	mgr, err := controllers.NewAgent(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", node, err)
		}
	})
	return &agent{node: node, mgr: mgr, writes: counter, stateDir: stateDir, metrics: reg}
}

// startAggregator runs an aggregator, as one replica of its Deployment,
// until the test ends (or stop is called); elections are fast in tests.
func startAggregator(t *testing.T) (stop func()) {
	t.Helper()
	return startAggregatorWith(t, nil)
}

// aggregatorOptions are an aggregator's options in tests: fast elections
// and status writes, no servers.
func aggregatorOptions() aggregator.Options {
	return aggregator.Options{
		LeaseNamespace: leaseNamespace, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond,
		StatusInterval:     300 * time.Millisecond,
		SkipNameValidation: true,
	}
}

// startAggregatorWith lets a test change the aggregator's options first.
func startAggregatorWith(t *testing.T, adjust func(*aggregator.Options)) (stop func()) {
	t.Helper()
	opts := aggregatorOptions()
	if adjust != nil {
		adjust(&opts)
	}
	mgr, err := aggregator.NewManager(testenv.APIServer(t), controllers.Scheme(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("aggregator: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// testWriter keeps the agents' logs out of the way unless E2E_LOG is set.
type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) {
	if os.Getenv("E2E_LOG") != "" {
		return os.Stderr.Write(p)
	}
	return len(p), nil
}

// apiClient is an uncached client: assertions read what the API server holds.
func apiClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(testenv.APIServer(t), client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return c
}

func createNode(t *testing.T, c client.Client, name string, labels map[string]string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
}

func createPolicy(t *testing.T, c client.Client, name string, spec v1alpha1.ImageCleanupPolicySpec) *v1alpha1.ImageCleanupPolicy {
	t.Helper()
	p := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), p) })
	return p
}

func dur(s string) *v1alpha1.Duration { d := v1alpha1.Duration(s); return &d }

// eventually polls cond until it holds, or fails the test with cond's last word.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last: %s", what, last)
}

func getPolicy(t *testing.T, c client.Client, name string) *v1alpha1.ImageCleanupPolicy {
	t.Helper()
	var p v1alpha1.ImageCleanupPolicy
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// getReport returns the report of (policy, node), or nil when there is none.
func getReport(t *testing.T, c client.Client, policy, node string) *v1alpha1.ImageCleanupReport {
	t.Helper()
	var r v1alpha1.ImageCleanupReport
	err := c.Get(context.Background(), client.ObjectKey{Name: v1alpha1.ReportName(policy, node)}, &r)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &r
}

// ready reports whether the policy's status is current and Ready.
func ready(p *v1alpha1.ImageCleanupPolicy) (bool, string) {
	cond := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
	ok := p.Status.ObservedGeneration == p.Generation && cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == p.Generation
	return ok, fmt.Sprintf("generation %d, status %+v", p.Generation, p.Status)
}

// readyWithNodes waits until the policy is Ready at its generation,
// counting the reports of that many nodes.
func readyWithNodes(t *testing.T, c client.Client, policy string, nodes int32, what string) {
	t.Helper()
	eventually(t, what, func() (bool, string) {
		p := getPolicy(t, c, policy)
		ok, msg := ready(p)
		return ok && p.Status.NodesReported == nodes, msg
	})
}

// bindPod creates a pod bound to the node (as the scheduler binds it; no
// kubelet runs it here) that names the image, and returns its name.
func bindPod(t *testing.T, c client.Client, node, image string) string {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: testenv.UniqueName("pod"), Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Image: image}},
			InitContainers: []corev1.Container{{Name: "init", Image: "ci.local/init:1"}}},
	}
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), p) })
	return p.Name
}

// updateSpec changes a policy's spec as a user would, again on a conflict
// (the aggregator writes the status meanwhile), and returns it as the API
// server answered.
func updateSpec(t *testing.T, c client.Client, name string, change func(*v1alpha1.ImageCleanupPolicySpec)) *v1alpha1.ImageCleanupPolicy {
	t.Helper()
	p := &v1alpha1.ImageCleanupPolicy{}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, p); err != nil {
			return err
		}
		change(&p.Spec)
		return c.Update(context.Background(), p)
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
