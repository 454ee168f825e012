// Package chart_test renders the Helm chart (charts/image-cleanup-operator)
// with the helm binary the Makefile installs, and holds it to config/default:
// the same objects, the same pod specs, RBAC rules and admission policy, so
// that the two install paths cannot drift. The rendered objects are checked
// against the API server's schemas (envtest), and the values against the
// chart's values.schema.json.
package chart_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAPIServer(m)) }

const namespace = "image-cleanup-system"

var chartDir = filepath.Join(testenv.RepoRoot(), "charts", "image-cleanup-operator")

func tool(t *testing.T, env string) string {
	t.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		testenv.Unavailable(t, "%s is not set (make test installs it into bin/)", env)
	}
	return bin
}

func runTool(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, errOut.String())
	}
	return out.String(), nil
}

// render runs helm template with the values given as --set pairs.
func render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := renderErr(t, set...)
	if err != nil {
		t.Fatalf("helm template %v: %v", set, err)
	}
	return out
}

func renderErr(t *testing.T, set ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	args := []string{"template", "ico", chartDir, "--namespace", namespace, "--kube-version", "1.37.2", "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := runTool(t, tool(t, "HELM"), args...)
	if err != nil {
		return nil, err
	}
	return testenv.DecodeManifests(t, strings.NewReader(out)), nil
}

func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := runTool(t, tool(t, "KUSTOMIZE"), "build", filepath.Join(testenv.RepoRoot(), dir))
	if err != nil {
		t.Fatal(err)
	}
	return testenv.DecodeManifests(t, strings.NewReader(out))
}

func key(u *unstructured.Unstructured) string { return u.GetKind() + "/" + u.GetName() }

func index(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		out[key(o)] = o
	}
	return out
}

// substance is an object without what only says who rendered it: labels
// and annotations of the object itself, the release and version labels of
// its pods, and comments (already gone).
func substance(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "labels")
	unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
	for _, l := range []string{"app.kubernetes.io/instance", "app.kubernetes.io/version"} {
		unstructured.RemoveNestedField(c.Object, "spec", "template", "metadata", "labels", l)
	}
	if rules, ok, _ := unstructured.NestedSlice(c.Object, "rules"); ok {
		_ = unstructured.SetNestedSlice(c.Object, normalizeRules(rules), "rules")
	}
	return c.Object
}

// normalizeRules sorts RBAC rules and their lists: the order says nothing.
func normalizeRules(rules []any) []any {
	for _, r := range rules {
		rule := r.(map[string]any)
		for _, k := range []string{"apiGroups", "resources", "verbs"} {
			if list, ok := rule[k].([]any); ok {
				sort.Slice(list, func(i, j int) bool { return list[i].(string) < list[j].(string) })
			}
		}
	}
	sort.Slice(rules, func(i, j int) bool { return fmtAny(rules[i]) < fmtAny(rules[j]) })
	return rules
}

func fmtAny(v any) string {
	out, _ := yaml.Marshal(v)
	return string(out)
}

// TestChartIsConfigDefault: with the image of config/default and a chart-made
// namespace, the chart renders config/default's objects, field for field
// (labels aside), plus a metrics Service.
func TestChartIsConfigDefault(t *testing.T) {
	chart := index(render(t, "image.tag=dev", "namespace.create=true"))
	kust := index(kustomize(t, "config/default"))
	for k, want := range kust {
		got, ok := chart[k]
		if !ok {
			t.Errorf("the chart has no %s", k)
			continue
		}
		if !reflect.DeepEqual(substance(got), substance(want)) {
			t.Errorf("%s differs from config/default's:\nchart:     %s\nkustomize: %s", k, fmtAny(substance(got)), fmtAny(substance(want)))
		}
	}
	for k := range chart {
		if _, ok := kust[k]; !ok && k != "Service/image-cleanup-metrics" {
			t.Errorf("the chart has %s, config/default does not", k)
		}
	}
	if ns := chart["Namespace/"+namespace]; ns == nil || ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Error("the chart's namespace is not labelled for privileged Pod Security")
	}
}

func TestChartLintsAndRefusesBadValues(t *testing.T) {
	if out, err := runTool(t, tool(t, "HELM"), "lint", "--strict", chartDir); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	for name, set := range map[string]string{
		"unknown value":         "agent.hostRn=/run",
		"relative socket path":  "agent.hostRun=run",
		"bad pull policy":       "image.pullPolicy=Sometimes",
		"zero replicas":         "aggregator.replicas=0",
		"flag without dashes":   "agent.extraArgs[0]=disk-tick=10s",
		"bad status interval":   "aggregator.statusInterval=ten",
		"pod security is typed": "namespace.podSecurityEnforce=open",
		// The agent's hostPath volumes would be refused under restricted.
		"pod security the agent cannot run under": "namespace.podSecurityEnforce=restricted",
		"a quantity that is none":                 "agent.resources.requests.cpu=abc",
		"aggregator flag without dashes":          "aggregator.extraArgs[0]=status-interval=5s",
		"unknown crds value":                      "crds.upgrade=true",
		"a distribution the chart does not know":  "agent.distribution=openshift",
	} {
		if _, err := renderErr(t, set); err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
			t.Errorf("%s (%s): rendered, or failed for another reason: %v", name, set, err)
		}
	}
}

// The chart as a subchart: a parent's global values reach it, and are
// accepted; quantities in their usual spellings are too.
func TestChartTakesGlobalsAndQuantities(t *testing.T) {
	if _, err := renderErr(t, "global.imageRegistry=registry.example.com", "agent.resources.requests.cpu=0.5",
		"agent.resources.limits.memory=1.5Gi", "aggregator.resources.requests.cpu=100m", "agent.resources.requests.memory=64974848"); err != nil {
		t.Fatal(err)
	}
}

// CRDs are templates of the chart, so helm upgrade brings their changes;
// kept on uninstall unless crds.keep=false; left out with crds.enabled=false.
func TestChartCRDs(t *testing.T) {
	crds := func(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
		out := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				out[o.GetName()] = o
			}
		}
		return out
	}
	kust := crds(kustomize(t, "config/default"))
	rendered := crds(render(t))
	if len(rendered) != 2 || len(kust) != 2 {
		t.Fatalf("the chart renders %d CRDs, config/default %d; want both 2", len(rendered), len(kust))
	}
	for name, crd := range rendered {
		if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" || crd.GetLabels()["app.kubernetes.io/instance"] != "ico" {
			t.Errorf("%s: annotations %v, labels %v", name, crd.GetAnnotations(), crd.GetLabels())
		}
		if !reflect.DeepEqual(substance(crd), substance(kust[name])) {
			t.Errorf("%s differs from config/default's", name)
		}
	}
	for name, crd := range crds(render(t, "crds.keep=false")) {
		if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
			t.Errorf("%s is kept though crds.keep=false", name)
		}
	}
	if n := len(crds(render(t, "crds.enabled=false"))); n != 0 {
		t.Errorf("crds.enabled=false renders %d CRDs", n)
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, k string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if key(o) == k {
			return o
		}
	}
	return nil
}

func podSpec(t *testing.T, u *unstructured.Unstructured) corev1.PodSpec {
	t.Helper()
	tmpl, _, _ := unstructured.NestedMap(u.Object, "spec", "template", "spec")
	var spec corev1.PodSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestChartValues(t *testing.T) {
	// Defaults: no namespace object (helm --create-namespace or yours), the
	// chart's appVersion, linux nodes, no priority class.
	objs := render(t)
	if find(t, objs, "Namespace/"+namespace) != nil {
		t.Error("the chart makes the namespace without namespace.create")
	}
	agent := podSpec(t, find(t, objs, "DaemonSet/image-cleanup-agent"))
	if !strings.HasPrefix(agent.Containers[0].Image, "imagecleanup/image-cleanup-operator:v") || agent.PriorityClassName != "" ||
		agent.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("defaults: image %s, priority %q, nodeSelector %v", agent.Containers[0].Image, agent.PriorityClassName, agent.NodeSelector)
	}

	objs = render(t, "image.repository=registry.example.com/ic", "image.tag=v1.2.3", "agent.hostRun=/run/k3s",
		"agent.dataRoot=", "agent.containerdRoot=", "agent.containersStorage=", "agent.priorityClassName=node-agents", "agent.extraProtectedImages={registry.example.com/sandbox:1}",
		"metrics.podMonitor.enabled=true", "metrics.service.enabled=false", "reportWritersPolicy.enabled=false",
		"aggregatedRoles.enabled=false", "aggregator.replicas=1", "namePrefix=ic-")
	agent = podSpec(t, find(t, objs, "DaemonSet/ic-agent"))
	c := agent.Containers[0]
	if c.Image != "registry.example.com/ic:v1.2.3" || agent.PriorityClassName != "node-agents" {
		t.Errorf("image %s, priority %q", c.Image, agent.PriorityClassName)
	}
	if !slices.Contains(c.Args, "--protect-images=registry.example.com/ic:v1.2.3,registry.example.com/sandbox:1") {
		t.Errorf("args %v: the agent's own image and the extra ones are protected", c.Args)
	}
	if len(agent.Volumes) != 2 || agent.Volumes[0].HostPath.Path != "/run/k3s" {
		t.Errorf("volumes %+v: the sockets' folder at its path, no data root, no containerd root", agent.Volumes)
	}
	// One value per distribution: its sockets' folder, its containerd root
	// at the path containerd reports, and no Docker data root.
	for distribution, want := range map[string][2]string{
		"k3s":      {"/run/k3s", "/var/lib/rancher/k3s/agent/containerd"},
		"rke2":     {"/run/k3s", "/var/lib/rancher/rke2/agent/containerd"},
		"k0s":      {"/run/k0s", "/var/lib/k0s/containerd"},
		"microk8s": {"/var/snap/microk8s/common/run", "/var/snap/microk8s/common/var/lib/containerd"},
	} {
		pod := podSpec(t, find(t, render(t, "agent.distribution="+distribution), "DaemonSet/image-cleanup-agent"))
		paths := map[string]string{}
		for _, v := range pod.Volumes {
			if v.HostPath != nil {
				paths[v.Name] = v.HostPath.Path
			}
		}
		mounts := map[string]string{}
		for _, m := range pod.Containers[0].VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		if paths["host-run"] != want[0] || mounts["host-run"] != "/host/run" || paths["containerd-root"] != want[1] ||
			mounts["containerd-root"] != want[1] || paths["docker-data-root"] != "" || paths["containers-storage"] != "" ||
			!slices.Contains(pod.Containers[0].Args, "--containerd-root="+want[1]) {
			t.Errorf("agent.distribution=%s: host paths %v, mounts %v, args %v; want %s at /host/run and %s at its own path, given", distribution, paths, mounts, pod.Containers[0].Args, want[0], want[1])
		}
	}
	// By default every runtime's images can be measured: Docker's data
	// root, containerd's root and CRI-O's storage, each read-only at the
	// path the runtime reports.
	pod := podSpec(t, find(t, render(t), "DaemonSet/image-cleanup-agent"))
	for name, path := range map[string]string{"docker-data-root": "/var/lib/docker", "containerd-root": "/var/lib/containerd",
		"containers-storage": "/var/lib/containers/storage"} {
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == name })
		j := slices.IndexFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == name })
		if i < 0 || j < 0 || pod.Volumes[i].HostPath.Path != path || pod.Containers[0].VolumeMounts[j].MountPath != path || !pod.Containers[0].VolumeMounts[j].ReadOnly {
			t.Errorf("default: %s not mounted read-only at %s: volumes %+v", name, path, pod.Volumes)
		}
	}
	// Docker 29's containerd store at another root than the one it looks
	// at is given to the agent where the chart mounts it.
	pod = podSpec(t, find(t, render(t, "agent.containerdRoot=/data/containerd"), "DaemonSet/image-cleanup-agent"))
	if !slices.Contains(pod.Containers[0].Args, "--containerd-root=/data/containerd") {
		t.Errorf("agent.containerdRoot=/data/containerd: args %v", pod.Containers[0].Args)
	}
	for _, k := range []string{"PodMonitor/ic-metrics"} {
		if find(t, objs, k) == nil {
			t.Errorf("no %s", k)
		}
	}
	for _, k := range []string{"Service/ic-metrics", "ValidatingAdmissionPolicy/ic-report-writers", "ClusterRole/ic-view-role",
		"PodDisruptionBudget/ic-aggregator"} {
		if find(t, objs, k) != nil {
			t.Errorf("%s rendered though turned off", k)
		}
	}
	// Pods say which release and version run them; the aggregator's
	// replicas spread over nodes; affinity and extra args as given.
	objs = render(t, "image.tag=v1.2.3", "aggregator.extraArgs[0]=--status-interval=5s",
		"aggregator.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
		"aggregator.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists")
	for _, k := range []string{"DaemonSet/image-cleanup-agent", "Deployment/image-cleanup-aggregator"} {
		labels, _, _ := unstructured.NestedStringMap(find(t, objs, k).Object, "spec", "template", "metadata", "labels")
		if labels["app.kubernetes.io/instance"] != "ico" || labels["app.kubernetes.io/version"] != "v1.2.3" {
			t.Errorf("%s pod labels %v", k, labels)
		}
	}
	aggregator := podSpec(t, find(t, objs, "Deployment/image-cleanup-aggregator"))
	if len(aggregator.TopologySpreadConstraints) != 1 || aggregator.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" ||
		aggregator.Affinity == nil || aggregator.Affinity.NodeAffinity == nil || !slices.Contains(aggregator.Containers[0].Args, "--status-interval=5s") {
		t.Errorf("aggregator: spread %+v, affinity %+v, args %v", aggregator.TopologySpreadConstraints, aggregator.Affinity, aggregator.Containers[0].Args)
	}
	if spread := podSpec(t, find(t, render(t, "aggregator.spreadAcrossNodes=false"), "Deployment/image-cleanup-aggregator")).TopologySpreadConstraints; len(spread) != 0 {
		t.Errorf("spreadAcrossNodes=false still spreads: %+v", spread)
	}

	vapUser := render(t, "namePrefix=ic-")
	vap := find(t, vapUser, "ValidatingAdmissionPolicy/ic-report-writers")
	conds, _, _ := unstructured.NestedSlice(vap.Object, "spec", "matchConditions")
	if len(conds) != 1 || !strings.Contains(conds[0].(map[string]any)["expression"].(string), "system:serviceaccount:"+namespace+":ic-agent'") {
		t.Errorf("the admission policy does not follow the agent's ServiceAccount: %v", conds)
	}
}

// TestRenderedObjectsPassTheAPIServer: every object the chart renders (a
// PodMonitor aside: its CRD is Prometheus Operator's) is accepted by the API
// server with strict field validation.
func TestRenderedObjectsPassTheAPIServer(t *testing.T) {
	c, err := client.New(testenv.APIServer(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace}}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, o := range render(t, "agent.priorityClassName=system-node-critical", "agent.extraProtectedImages={x:1}") {
		if o.GetKind() == "Namespace" {
			continue
		}
		if err := c.Create(ctx, o, client.DryRunAll, client.FieldValidation("Strict")); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Errorf("%s refused: %v", key(o), err)
		}
	}
}

// The monitoring kit: the chart's alerts and dashboard are config/monitoring's
// (make manifests copies them), off by default; the dashboard is JSON that
// Grafana's sidecar finds by its label.
func TestChartShipsTheMonitoringKit(t *testing.T) {
	for _, o := range render(t) {
		if k := o.GetKind(); k == "PrometheusRule" || (k == "ConfigMap" && strings.Contains(o.GetName(), "dashboard")) {
			t.Errorf("%s rendered by default", key(o))
		}
	}
	objs := render(t, "metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true")
	kit := index(kustomize(t, "config/monitoring"))
	rule, want := find(t, objs, "PrometheusRule/image-cleanup-alerts"), kit["PrometheusRule/image-cleanup-alerts"]
	if rule == nil || want == nil || !reflect.DeepEqual(rule.Object["spec"], want.Object["spec"]) {
		t.Errorf("the chart's alerts differ from config/monitoring's")
	}
	dash, wantDash := find(t, objs, "ConfigMap/image-cleanup-dashboard"), kit["ConfigMap/image-cleanup-dashboard"]
	if dash == nil || wantDash == nil {
		t.Fatalf("no dashboard ConfigMap: chart %v, config/monitoring %v", dash != nil, wantDash != nil)
	}
	got, _, _ := unstructured.NestedString(dash.Object, "data", "dashboard.json")
	wantJSON, _, _ := unstructured.NestedString(wantDash.Object, "data", "dashboard.json")
	var parsed struct {
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal([]byte(got), &parsed); err != nil || len(parsed.Panels) == 0 || strings.TrimSpace(got) != strings.TrimSpace(wantJSON) {
		t.Errorf("the chart's dashboard: %d panels, %v, same as config/monitoring's: %v", len(parsed.Panels), err, strings.TrimSpace(got) == strings.TrimSpace(wantJSON))
	}
	for _, d := range []*unstructured.Unstructured{dash, wantDash} {
		if d.GetLabels()["grafana_dashboard"] != "1" {
			t.Errorf("%s has no grafana_dashboard label: %v", key(d), d.GetLabels())
		}
	}
}
