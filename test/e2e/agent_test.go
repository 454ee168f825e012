// Package e2e runs node agents against envtest's API server and real (private
// dockerd) or fake runtimes, end to end: policies in, runtimes cleaned, reports
// and policy status out.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAPIServer(m)) }

// One node with a real runtime: a policy cleans it, the report and the policy
// status say so; a spec change sweeps again; dry run changes nothing; a
// relabelled node drops its report; a deleted policy takes its reports along.
func TestAgentEndToEnd(t *testing.T) {
	startAggregator(t)
	c := apiClient(t)
	cli := testenv.Docker(t)
	rt, err := docker.New(testenv.DockerHost(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	repo := "e2e.local/" + testenv.UniqueName("agent")
	node := testenv.UniqueName("node")
	group := testenv.UniqueName("group")
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})

	keep := testenv.ImportImage(t, cli, repo+"/keep:1")
	old := testenv.ImportImage(t, cli, repo+"/app:1")
	c1 := testenv.CreateContainer(t, cli, repo+"/app:1", testenv.ContainerOptions{Run: "exit"})
	c2 := testenv.CreateContainer(t, cli, repo+"/app:1", testenv.ContainerOptions{})

	a := startAgent(t, node, rt)

	// Dry run first: the report lists the plan, the runtime keeps everything.
	spec := v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{v1alpha1.ImagePattern(repo + "/**")},
		Exclude:      []v1alpha1.ImagePattern{v1alpha1.ImagePattern(repo + "/keep:*")},
		MinImageAge:  dur("0s"),
		StoppedContainers: v1alpha1.StoppedContainersPolicy{
			MinStoppedAge: dur("0s"),
		},
		DryRun:   true,
		Interval: dur("1m"),
	}
	policy := createPolicy(t, c, testenv.UniqueName("e2e"), spec)
	eventually(t, "the dry-run report", func() (bool, string) {
		r := getReport(t, c, policy.Name, node)
		if r == nil {
			return false, "no report"
		}
		return r.Status.Phase == v1alpha1.PhaseDryRun && r.Status.ImagesRemoved == 1 && r.Status.ContainersRemoved == 2, string(r.Status.Phase) + ": " + r.Status.Message
	})
	if !testenv.ImageExists(t, cli, old) || !testenv.ContainerExists(t, cli, c1) {
		t.Fatal("a dry run changed the engine")
	}
	if files, _ := filepath.Glob(filepath.Join(a.stateDir, "engine-*.json")); len(files) != 1 {
		t.Fatalf("the image clock is not kept in the state folder: %v", files)
	}
	r := getReport(t, c, policy.Name, node)
	if r.Status.Totals.ImagesRemoved != 0 || !slices.Equal(r.Status.RemovedImages, []string{repo + "/app:1 (deleted)"}) {
		t.Fatalf("dry-run report %+v", r.Status)
	}
	if r.Labels[v1alpha1.LabelPolicy] != policy.Name || r.Labels[v1alpha1.LabelNode] != node ||
		len(r.OwnerReferences) != 1 || r.OwnerReferences[0].UID != policy.UID {
		t.Fatalf("report metadata %+v", r.ObjectMeta)
	}

	// The real thing: a spec change sweeps at once.
	p := updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.DryRun = false })
	eventually(t, "the blocking containers and the image to go", func() (bool, string) {
		gone := !testenv.ImageExists(t, cli, old) && !testenv.ContainerExists(t, cli, c1) && !testenv.ContainerExists(t, cli, c2)
		return gone, "still there"
	})
	eventually(t, "the policy to be Ready at its generation", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		ok, msg := ready(p)
		return ok && p.Status.NodesMatched == 1 && p.Status.NodesSucceeded == 1 && p.Status.ImagesRemoved == 1 && p.Status.ContainersRemoved == 2, msg
	})
	r = getReport(t, c, policy.Name, node)
	if r.Status.Phase != v1alpha1.PhaseSucceeded || r.Status.PolicyGeneration != p.Generation || r.Status.Totals.Sweeps != 2 || r.Status.BytesReclaimed <= 0 {
		t.Fatalf("report %+v", r.Status)
	}
	if e := r.Status.Runtime; e == nil || e.Name != "docker" || e.Version == "" || e.ImageStore == "" {
		t.Fatalf("the report does not say which engine the node runs: %+v", e)
	}
	if !testenv.ImageExists(t, cli, keep) {
		t.Fatal("the excluded image went")
	}
	checkRemovedEvent(t, c, policy.Name)
	checkMetrics(t, a.metrics, policy.Name)

	// Relabel the node: not selected any more, its report goes.
	var n corev1.Node
	if err := c.Get(ctx, types.NamespacedName{Name: node}, &n); err != nil {
		t.Fatal(err)
	}
	n.Labels["imagecleanup.test/group"] = "elsewhere"
	if err := c.Update(ctx, &n); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the report of an unselected node to go", func() (bool, string) {
		return getReport(t, c, policy.Name, node) == nil, "report still there"
	})
	eventually(t, "the policy to count no node", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		return p.Status.NodesMatched == 0, "still matched"
	})

	// Back in the group, then the policy goes: its report goes with it.
	n.Labels["imagecleanup.test/group"] = group
	if err := c.Update(ctx, &n); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a report again", func() (bool, string) { return getReport(t, c, policy.Name, node) != nil, "no report" })
	if err := c.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the report of a deleted policy to go", func() (bool, string) {
		return getReport(t, c, policy.Name, node) == nil, "report still there"
	})
}

// Three agents, one API server: the aggregated status counts them; one
// node's runtime going down makes it Failed and the policy Degraded; its
// return heals both.
func TestSeveralNodes(t *testing.T) {
	startAggregator(t)
	c := apiClient(t)
	group := testenv.UniqueName("group")
	nodes := []string{testenv.UniqueName("node-a"), testenv.UniqueName("node-b"), testenv.UniqueName("node-c")}
	engines := map[string]*runtimefake.Runtime{}
	for _, n := range nodes {
		createNode(t, c, n, map[string]string{"imagecleanup.test/group": group})
		engines[n] = runtimefake.WithStaleImage(n)
		startAgent(t, n, engines[n])
	}
	other := testenv.UniqueName("node-other") // not selected
	createNode(t, c, other, map[string]string{"imagecleanup.test/group": "other"})
	otherRuntime := runtimefake.WithStaleImage(other)
	startAgent(t, other, otherRuntime)

	policy := createPolicy(t, c, testenv.UniqueName("fleet"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"ci.local/**"},
		MinImageAge:  dur("1h"),
		Interval:     dur("1m"),
	})
	eventually(t, "three nodes to report and the policy to be Ready", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		ok, msg := ready(p)
		return ok && p.Status.NodesMatched == 3 && p.Status.NodesReported == 3 && p.Status.NodesSucceeded == 3 &&
			p.Status.ImagesRemoved == 3 && p.Status.ContainersRemoved == 3 && p.Status.BytesReclaimed == 3000, msg
	})
	for _, n := range nodes {
		if engines[n].TotalCalls() == 0 || engines[n].HasImage("sha256:"+strings.Repeat("a", 64)) {
			t.Fatalf("node %s was not cleaned", n)
		}
	}
	if otherRuntime.Calls()["ListImages"] != 0 || getReport(t, c, policy.Name, other) != nil {
		t.Fatal("an unselected node swept or reported")
	}

	// node-b's runtime goes down; a spec change makes every node sweep.
	down := nodes[1]
	engines[down].SetDown(true)
	updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.MinImageAge = dur("2h") })
	eventually(t, "node-b Failed and the policy Degraded", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		deg := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionDegraded)
		r := getReport(t, c, policy.Name, down)
		ok := p.Status.ObservedGeneration == p.Generation && p.Status.NodesFailed == 1 && p.Status.NodesSucceeded == 2 &&
			slices.Equal(p.Status.FailingNodes, []string{down}) && deg != nil && deg.Status == metav1.ConditionTrue &&
			r != nil && r.Status.Phase == v1alpha1.PhaseFailed && strings.Contains(r.Status.Message, "the runtime is down")
		return ok, "status " + statusLine(p)
	})

	engines[down].SetDown(false)
	eventually(t, "node-b to recover and the policy to be Ready again", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		deg := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionDegraded)
		ok, msg := ready(p)
		return ok && p.Status.NodesFailed == 0 && len(p.Status.FailingNodes) == 0 && deg != nil && deg.Status == metav1.ConditionFalse, msg
	})
}

// checkRemovedEvent: the removal is told on the policy, once, by the
// aggregator, with what the policy's nodes removed since the last count.
func checkRemovedEvent(t *testing.T, c client.Client, policy string) {
	t.Helper()
	eventually(t, "a Removed event on the policy", func() (bool, string) {
		var events eventsv1.EventList
		if err := c.List(context.Background(), &events); err != nil {
			return false, err.Error()
		}
		var notes []string
		for _, e := range events.Items {
			if e.Regarding.Kind == "ImageCleanupPolicy" && e.Regarding.Name == policy && e.Reason == "Removed" {
				notes = append(notes, e.ReportingController+": "+e.Note)
			}
		}
		return len(notes) == 1 && strings.HasPrefix(notes[0], "imagecleanup-aggregator: images removed: 1, stopped containers removed: 2,"), fmt.Sprintf("%q", notes)
	})
}

// checkMetrics: the sweep shows on the agent's registry.
func checkMetrics(t *testing.T, reg prometheus.Gatherer, policy string) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "policy" && l.GetValue() == policy {
					values[f.GetName()] += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	if values["imagecleanup_images_removed_total"] != 1 || values["imagecleanup_containers_removed_total"] != 2 ||
		values["imagecleanup_sweeps_total"] != 2 || values["imagecleanup_sweep_duration_seconds"] != 2 {
		t.Errorf("metrics of policy %s: %v", policy, values)
	}
}

func statusLine(p *v1alpha1.ImageCleanupPolicy) string {
	var conds []string
	for _, c := range p.Status.Conditions {
		conds = append(conds, c.Type+"="+string(c.Status)+"("+c.Reason+")")
	}
	return strings.Join(conds, " ") + " failing=" + strings.Join(p.Status.FailingNodes, ",")
}

// An idle agent, with nothing to remove, makes no API writes and no runtime
// calls between its intervals.
func TestIdleAgentIsQuiet(t *testing.T) {
	startAggregator(t)
	c := apiClient(t)
	node := testenv.UniqueName("node-idle")
	group := testenv.UniqueName("group")
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
	f := runtimefake.New()
	a := startAgent(t, node, f)
	policy := createPolicy(t, c, testenv.UniqueName("idle"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"nothing.local/**"},
		Interval:     dur("1m"),
	})
	eventually(t, "the first sweep to settle", func() (bool, string) {
		ok, msg := ready(getPolicy(t, c, policy.Name))
		return ok, msg
	})
	time.Sleep(time.Second) // let the last watch events land
	calls, writes := f.TotalCalls(), a.writes.n.Load()
	if calls == 0 || writes == 0 {
		t.Fatalf("the first sweep made %d engine calls and %d writes; the counters are not wired", calls, writes)
	}
	if got := a.writes.reports.Load(); got != 1 {
		t.Errorf("the sweep wrote its report %d times, want once", got)
	}
	// A status-only update of the policy (as the aggregator makes) wakes nothing.
	p := getPolicy(t, c, policy.Name)
	p.Status.Conditions = append(p.Status.Conditions, metav1.Condition{Type: "Touched", Status: metav1.ConditionTrue,
		Reason: "Test", Message: "a status-only change", LastTransitionTime: metav1.Now()})
	if err := c.Status().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	// Once the agent's cache holds the update, a reconcile it caused would
	// start at once; give it a moment to show, and see that none does.
	eventually(t, "the agent's cache to see the status update", func() (bool, string) {
		var cached v1alpha1.ImageCleanupPolicy
		if err := a.mgr.GetCache().Get(context.Background(), client.ObjectKeyFromObject(p), &cached); err != nil {
			return false, err.Error()
		}
		return cached.ResourceVersion == p.ResourceVersion, "cache at " + cached.ResourceVersion
	})
	time.Sleep(time.Second)
	if got := f.TotalCalls(); got != calls {
		t.Errorf("idle agent made %d engine calls between intervals: %v", got-calls, f.Calls())
	}
	if got := a.writes.n.Load(); got != writes {
		t.Errorf("idle agent made %d API writes between intervals", got-writes)
	}
	if n := a.writes.leases.Load(); n != 0 {
		t.Errorf("the agent made %d lease requests: only the aggregator elects", n)
	}
	t.Logf("first sweep: %d engine calls, %d API writes of the node controller (%d of the report); none after a status-only update",
		calls, writes, a.writes.reports.Load())
}

// The agent's cache holds its own Node, and refuses to start an informer
// for anything it was not scoped for; the pods bound to its node have a
// cache of their own, asked for with a field selector (its cost grows with
// one node's pods, never with the cluster's).
func TestAgentCacheIsScoped(t *testing.T) {
	c := apiClient(t)
	group := map[string]string{"imagecleanup.test/group": testenv.UniqueName("scoped")}
	node := testenv.UniqueName("node-self")
	createNode(t, c, node, group)
	otherNode := testenv.UniqueName("node-else")
	createNode(t, c, otherNode, group)

	a := startAgent(t, node, runtimefake.New())
	agentCache := a.mgr.GetCache()
	ctx := context.Background()
	var nodes corev1.NodeList
	eventually(t, "the node informer to list", func() (bool, string) {
		if err := agentCache.List(ctx, &nodes); err != nil {
			return false, err.Error()
		}
		return len(nodes.Items) == 1, fmt.Sprintf("listed %d nodes", len(nodes.Items))
	})
	if nodes.Items[0].Name != node {
		t.Fatalf("the cache holds node %s", nodes.Items[0].Name)
	}
	var n corev1.Node
	if err := agentCache.Get(ctx, client.ObjectKey{Name: otherNode}, &n); err == nil {
		t.Fatal("the cache returned another node")
	}
	bindPod(t, c, node, "ci.local/app:1")
	var pods corev1.PodList
	if err := agentCache.List(ctx, &pods); !errors.As(err, new(*cache.ErrResourceNotCached)) {
		t.Fatalf("listing pods from the agent's main cache: %v, want ErrResourceNotCached (they have a cache of their own)", err)
	}
	var podRequests []string
	eventually(t, "the agent to watch its node's pods", func() (bool, string) {
		a.writes.mu.Lock()
		podRequests = slices.Clone(a.writes.podRequests)
		a.writes.mu.Unlock()
		return len(podRequests) > 0, "no request for pods"
	})
	for _, q := range podRequests {
		if !strings.Contains(q, "fieldSelector=spec.nodeName%3D"+node) {
			t.Fatalf("a request for pods without this node's field selector: %q", q)
		}
	}
	var secrets corev1.SecretList
	if err := agentCache.List(ctx, &secrets); !errors.As(err, new(*cache.ErrResourceNotCached)) {
		t.Fatalf("listing secrets from the agent's cache: %v, want ErrResourceNotCached", err)
	}

	// Reports are not cached at all: every report write would reach every
	// node's informer; the agent reads its own report by GET and remembers it.
	var reports v1alpha1.ImageCleanupReportList
	if err := agentCache.List(ctx, &reports); !errors.As(err, new(*cache.ErrResourceNotCached)) {
		t.Fatalf("listing reports from the agent's cache: %v, want ErrResourceNotCached", err)
	}
}

// The agent maps the few kinds it reads and writes itself: it asks the API
// server for no discovery, which a fleet's rollout would otherwise ask of it
// once per node (all groups' resources, every time; 0.2 MB of mappings per
// agent that it never reads). Its mappings are the API server's.
func TestAgentAsksNoDiscovery(t *testing.T) {
	startAggregator(t)
	c := apiClient(t)
	node := testenv.UniqueName("node-nodisc")
	group := testenv.UniqueName("group")
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
	var mu sync.Mutex
	var discovery []string
	record := func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if isDiscovery(req.URL.Path) {
				mu.Lock()
				discovery = append(discovery, req.Method+" "+req.URL.Path)
				mu.Unlock()
			}
			return next.RoundTrip(req)
		})
	}
	a := startAgentOn(t, node, runtimefake.WithStaleImage(node), record, nil)
	policy := createPolicy(t, c, testenv.UniqueName("nodisc"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"ci.local/**"},
	})
	eventually(t, "the agent's report", func() (bool, string) {
		var r v1alpha1.ImageCleanupReport
		err := c.Get(context.Background(), client.ObjectKey{Name: v1alpha1.ReportName(policy.Name, node)}, &r)
		return err == nil && r.Status.Phase == v1alpha1.PhaseSucceeded, fmt.Sprintf("report: %v %s", err, r.Status.Phase)
	})
	bindPod(t, c, node, "ci.local/app:1") // its pods' cache maps pods too
	eventually(t, "the agent's pods cache to see the pod", func() (bool, string) {
		a.writes.mu.Lock()
		defer a.writes.mu.Unlock()
		return len(a.writes.podRequests) > 0, "no request for pods"
	})
	mu.Lock()
	if len(discovery) > 0 {
		t.Errorf("the agent asked for discovery: %v", discovery)
	}
	mu.Unlock()

	cfg := testenv.APIServer(t)
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	for _, gvk := range []schema.GroupVersionKind{
		corev1.SchemeGroupVersion.WithKind("Node"), corev1.SchemeGroupVersion.WithKind("Pod"),
		v1alpha1.GroupVersion.WithKind("ImageCleanupPolicy"), v1alpha1.GroupVersion.WithKind("ImageCleanupReport"),
	} {
		want, err := served.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("the agent cannot map %s: %v", gvk, err)
			continue
		}
		if got.Resource != want.Resource || got.Scope.Name() != want.Scope.Name() {
			t.Errorf("the agent maps %s to %s (%s), the API server serves it as %s (%s)", gvk, got.Resource, got.Scope.Name(), want.Resource, want.Scope.Name())
		}
	}
}

// isDiscovery says whether path asks for discovery: the lists of groups,
// versions and resources (/api, /apis, /api/v1, /apis/<group>/<version>).
func isDiscovery(path string) bool {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch parts[0] {
	case "api":
		return len(parts) <= 2
	case "apis":
		return len(parts) <= 3
	}
	return false
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// The aggregator is a Deployment of two replicas: one leads; when it goes
// the other takes over; while none runs, agents keep sweeping and
// reporting, and the status catches up when one returns. Agents never
// touch the lease.
func TestAggregatorHandover(t *testing.T) {
	c := apiClient(t)
	group := testenv.UniqueName("group")
	var agents []*agent
	for _, n := range []string{testenv.UniqueName("node-a"), testenv.UniqueName("node-b"), testenv.UniqueName("node-c")} {
		createNode(t, c, n, map[string]string{"imagecleanup.test/group": group})
		agents = append(agents, startAgent(t, n, runtimefake.WithStaleImage(n)))
	}
	stopFirst := startAggregator(t) // alone, so it leads
	policy := createPolicy(t, c, testenv.UniqueName("handover"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"ci.local/**"},
		MinImageAge:  dur("1h"),
		Interval:     dur("1m"),
	})
	bump := func() int64 {
		t.Helper()
		p := updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.DryRun = !s.DryRun })
		return p.Generation // as the API server answered
	}
	readyWithNodes(t, c, policy.Name, 3, "Ready with the first aggregator leading")
	stopSecond := startAggregator(t)

	stopFirst() // the leader goes: the second replica takes over
	bump()
	readyWithNodes(t, c, policy.Name, 3, "Ready again under the second replica")

	stopSecond()
	gen := bump()
	eventually(t, "the agents to report the new generation with no aggregator", func() (bool, string) {
		for _, a := range agents {
			r := getReport(t, c, policy.Name, a.node)
			if r == nil || r.Status.PolicyGeneration != gen {
				got := "no report"
				if r != nil {
					got = fmt.Sprintf("generation %d (%s: %s)", r.Status.PolicyGeneration, r.Status.Phase, r.Status.Message)
				}
				return false, fmt.Sprintf("node %s: %s, want generation %d", a.node, got, gen)
			}
		}
		return true, ""
	})
	if p := getPolicy(t, c, policy.Name); p.Status.ObservedGeneration == gen {
		t.Fatal("the status moved with no aggregator running")
	}
	startAggregator(t)
	readyWithNodes(t, c, policy.Name, 3, "the status to catch up when an aggregator returns")
	for _, a := range agents {
		if n := a.writes.leases.Load(); n != 0 {
			t.Errorf("agent %s made %d lease requests", a.node, n)
		}
	}
}
