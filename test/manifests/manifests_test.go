// Package manifests checks what `kustomize build config/default` installs
// against the design: the DaemonSet's security and resources, and RBAC that
// grants no more than the agent uses. And that the samples are valid.
package manifests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAPIServer(m)) }

// build runs kustomize (KUSTOMIZE, installed into bin/ by the Makefile).
func build(t *testing.T, dir string) []map[string]any {
	t.Helper()
	bin := os.Getenv("KUSTOMIZE")
	if bin == "" {
		testenv.Unavailable(t, "KUSTOMIZE is not set (make test installs kustomize into bin/)")
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(bin, "build", filepath.Join(testenv.RepoRoot(), dir))
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	return decode(t, &out)
}

// decode splits a stream of manifests into objects.
func decode(t *testing.T, in io.Reader) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for _, u := range testenv.DecodeManifests(t, in) {
		docs = append(docs, u.Object)
	}
	return docs
}

func find[T any](t *testing.T, docs []map[string]any, kind, name string) *T {
	t.Helper()
	for _, d := range docs {
		md, _ := d["metadata"].(map[string]any)
		if d["kind"] == kind && md["name"] == name {
			raw, _ := yaml.Marshal(d)
			var obj T
			if err := yaml.UnmarshalStrict(raw, &obj); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return &obj
		}
	}
	t.Fatalf("no %s %s in the build", kind, name)
	return nil
}

func TestDaemonSet(t *testing.T) {
	docs := build(t, "config/default")
	ds := find[appsv1.DaemonSet](t, docs, "DaemonSet", "image-cleanup-agent")
	if ds.Namespace != "image-cleanup-system" {
		t.Errorf("namespace %q", ds.Namespace)
	}
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]

	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME does not come from spec.nodeName: %+v", e)
	}
	if env["AGENT_IMAGE"].Value != c.Image {
		t.Errorf("AGENT_IMAGE %q is not the container's image %q", env["AGENT_IMAGE"].Value, c.Image)
	}

	hostPaths := map[string]*corev1.HostPathVolumeSource{}
	for i := range pod.Volumes {
		if hp := pod.Volumes[i].HostPath; hp != nil {
			hostPaths[hp.Path] = hp
		}
	}
	// The runtime's socket is found in the host's /run, read-only: a folder
	// every node has, so the pod starts where a runtime is missing (no
	// hostPath of type Socket, which would hold it in ContainerCreating).
	if run := hostPaths["/run"]; run == nil || run.Type == nil || *run.Type != corev1.HostPathDirectory ||
		!slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/host/run" && m.ReadOnly }) {
		t.Errorf("no read-only mount of the host's /run at /host/run: %+v %+v", pod.Volumes, c.VolumeMounts)
	}
	for path, hp := range hostPaths {
		if hp.Type != nil && (*hp.Type == corev1.HostPathSocket || *hp.Type == corev1.HostPathDirectory && path != "/run") {
			t.Errorf("hostPath %s of type %s: a node without it would never start the agent", path, *hp.Type)
		}
	}
	if _, ok := env["DOCKER_HOST"]; ok {
		t.Error("DOCKER_HOST is set: the agent would talk to Docker on every node, not to the runtime the kubelet uses")
	}
	// The image clock outlives the pod: a folder on the node, given as --state-dir.
	if state := hostPaths["/var/lib/imagecleanup"]; state == nil || state.Type == nil || *state.Type != corev1.HostPathDirectoryOrCreate ||
		!slices.Contains(c.Args, "--state-dir=/var/lib/imagecleanup") {
		t.Errorf("no hostPath folder for the image clock at /var/lib/imagecleanup: %+v %v", pod.Volumes, c.Args)
	}
	// The runtime's data root, read-only: statfs for diskUsage.
	if root := hostPaths["/var/lib/docker"]; root == nil || !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == "/var/lib/docker" && m.ReadOnly
	}) {
		t.Errorf("no read-only mount of the engine's data root at /var/lib/docker: %+v", c.VolumeMounts)
	}
	// containerd's root, read-only, where it is: Docker 29's containerd image
	// store keeps the images there (created empty on a node without it).
	if root := hostPaths["/var/lib/containerd"]; root == nil || root.Type == nil || *root.Type != corev1.HostPathDirectoryOrCreate ||
		!slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.MountPath == "/var/lib/containerd" && m.ReadOnly
		}) {
		t.Errorf("no read-only mount of containerd's root at /var/lib/containerd: %+v %+v", pod.Volumes, c.VolumeMounts)
	}
	// containers/storage's root, read-only, where CRI-O reports its images.
	if root := hostPaths["/var/lib/containers/storage"]; root == nil || root.Type == nil || *root.Type != corev1.HostPathDirectoryOrCreate ||
		!slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.MountPath == "/var/lib/containers/storage" && m.ReadOnly
		}) {
		t.Errorf("no read-only mount of containers/storage at /var/lib/containers/storage: %+v %+v", pod.Volumes, c.VolumeMounts)
	}
	if len(pod.Volumes) != 5 {
		t.Errorf("the agent mounts more than the runtime sockets' folder, its state folder, the data root, containerd's root and containers/storage: %+v", pod.Volumes)
	}

	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container security context %+v", sc)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccomp profile is not RuntimeDefault")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the agent shares a host namespace")
	}
	if !c.Resources.Requests.Cpu().Equal(resource.MustParse("10m")) || !c.Resources.Requests.Memory().Equal(resource.MustParse("24Mi")) {
		t.Errorf("requests %v", c.Resources.Requests)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Error("no memory limit")
	}
	if len(pod.Tolerations) == 0 {
		t.Error("no tolerations")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("probes missing")
	}
	if slices.ContainsFunc(c.Args, func(a string) bool {
		return strings.HasPrefix(a, "--leader-elect") || strings.HasPrefix(a, "--role=aggregator")
	}) {
		t.Error("the agent takes part in an election: only the aggregator Deployment does")
	}
	if pod.ServiceAccountName != "image-cleanup-agent" {
		t.Errorf("service account %q", pod.ServiceAccountName)
	}
}

func rules(rs []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rs {
		verbs := slices.Clone(r.Verbs)
		sort.Strings(verbs)
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				out = append(out, g+"/"+res+": "+strings.Join(verbs, ","))
			}
		}
	}
	sort.Strings(out)
	return out
}

// RBAC is least privilege: exactly what each identity uses. The agent has
// no lease and cannot write policy status; the aggregator cannot create or
// patch reports.
func TestRBAC(t *testing.T) {
	docs := build(t, "config/default")
	for _, id := range []struct {
		name        string
		clusterRole []string
		role        []string
	}{
		{"agent", []string{
			"/nodes: get,list,watch",
			"/pods: get,list,watch",
			"events.k8s.io/events: create,patch",
			"imagecleanup.io/imagecleanuppolicies: get,list,watch",
			"imagecleanup.io/imagecleanupreports: create,delete,get,patch",
		}, nil},
		{"aggregator", []string{
			"/nodes: get,list,watch",
			"events.k8s.io/events: create,patch",
			"imagecleanup.io/imagecleanuppolicies/status: get,patch",
			"imagecleanup.io/imagecleanuppolicies: get,list,watch",
			"imagecleanup.io/imagecleanupreports: delete,get,list,watch",
		}, []string{"/events: create,patch", "/pods: get,list,watch", "coordination.k8s.io/leases: create,get,update"}},
	} {
		cr := find[rbacv1.ClusterRole](t, docs, "ClusterRole", "image-cleanup-"+id.name+"-role")
		if got := rules(cr.Rules); !slices.Equal(got, id.clusterRole) {
			t.Errorf("%s ClusterRole rules:\n  %s\nwant\n  %s", id.name, strings.Join(got, "\n  "), strings.Join(id.clusterRole, "\n  "))
		}
		crb := find[rbacv1.ClusterRoleBinding](t, docs, "ClusterRoleBinding", "image-cleanup-"+id.name+"-rolebinding")
		if crb.RoleRef.Name != cr.Name || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "image-cleanup-"+id.name || crb.Subjects[0].Namespace != "image-cleanup-system" {
			t.Errorf("%s ClusterRoleBinding %+v", id.name, crb)
		}
		if id.role == nil {
			continue
		}
		role := find[rbacv1.Role](t, docs, "Role", "image-cleanup-"+id.name+"-role")
		if got := rules(role.Rules); role.Namespace != "image-cleanup-system" || !slices.Equal(got, id.role) {
			t.Errorf("%s Role in %s: %v", id.name, role.Namespace, got)
		}
	}
	for _, d := range docs {
		if d["kind"] == "ClusterRole" || d["kind"] == "Role" {
			raw, _ := yaml.Marshal(d)
			// Pods are read (the agent: its node's, through a field
			// selector; the aggregator: its namespace's), never written.
			if strings.Contains(string(raw), "'*'") || strings.Contains(string(raw), "secrets") || strings.Contains(string(raw), "pods/") {
				t.Errorf("a role grants wildcards, secrets or pods' subresources:\n%s", raw)
			}
			for _, r := range anyRules(d) {
				if slices.Contains(r.Resources, "pods") && !slices.Equal(r.Verbs, []string{"get", "list", "watch"}) {
					t.Errorf("a role does more than read pods: %v", r)
				}
			}
		}
	}
}

// anyRules are the rules of a ClusterRole or Role document.
func anyRules(d map[string]any) []rbacv1.PolicyRule {
	raw, _ := json.Marshal(d)
	var role rbacv1.ClusterRole
	_ = json.Unmarshal(raw, &role)
	return role.Rules
}

// The aggregator is a Deployment of two replicas, leader-elected, with a
// disruption budget, its own identity, and the same hardening.
func TestAggregatorDeployment(t *testing.T) {
	docs := build(t, "config/default")
	dep := find[appsv1.Deployment](t, docs, "Deployment", "image-cleanup-aggregator")
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 || !slices.Contains(c.Args, "--role=aggregator") ||
		pod.ServiceAccountName != "image-cleanup-aggregator" || len(pod.Volumes) != 0 {
		t.Errorf("aggregator Deployment: replicas %v, args %v, service account %q, volumes %v", dep.Spec.Replicas, c.Args, pod.ServiceAccountName, pod.Volumes)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("aggregator security context %+v / %+v", sc, pod.SecurityContext)
	}
	pdb := find[policyv1.PodDisruptionBudget](t, docs, "PodDisruptionBudget", "image-cleanup-aggregator")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %+v", pdb.Spec)
	}
	if dep.Spec.Template.Spec.Containers[0].Image != find[appsv1.DaemonSet](t, docs, "DaemonSet", "image-cleanup-agent").Spec.Template.Spec.Containers[0].Image {
		t.Error("the aggregator runs another image than the agent")
	}
}

// Every sample is a valid policy, for the CLI's admission and for the API
// server, and changes nothing until edited: `kubectl apply -k
// config/samples` previews, it does not remove.
func TestSamples(t *testing.T) {
	docs := build(t, "config/samples")
	if len(docs) < 4 {
		t.Fatalf("%d samples", len(docs))
	}
	c, err := client.New(testenv.APIServer(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		raw, _ := yaml.Marshal(d)
		var p v1alpha1.ImageCleanupPolicy
		if err := yaml.UnmarshalStrict(raw, &p); err != nil {
			t.Fatalf("sample: %v", err)
		}
		if errs := policyschema.Check(&p); len(errs) > 0 {
			t.Errorf("sample %s: %v", p.Name, errs.ToAggregate())
		}
		if !p.Spec.DryRun {
			t.Errorf("sample %s would remove images as it ships: set dryRun: true", p.Name)
		}
		if w := p.Spec.DiskUsage; w != nil && w.HighPercent >= v1alpha1.KubeletImageGCHighThresholdPercent {
			t.Errorf("sample %s races the kubelet's image GC: highPercent %d", p.Name, w.HighPercent)
		}
		u := &unstructured.Unstructured{Object: d}
		if err := c.Create(context.Background(), u, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("sample %s refused by the API server: %v", p.Name, err)
		}
	}
}

// TestReportWritersPolicyMatchesTheAgent holds the admission policy's
// username to the DaemonSet's ServiceAccount as kustomize renders both: a
// rename of either would silently let every agent write every report.
func TestReportWritersPolicyMatchesTheAgent(t *testing.T) {
	docs := build(t, "config/default")
	ds := find[appsv1.DaemonSet](t, docs, "DaemonSet", "image-cleanup-agent")
	vap := find[admissionregistrationv1.ValidatingAdmissionPolicy](t, docs, "ValidatingAdmissionPolicy", "image-cleanup-report-writers")
	binding := find[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, docs, "ValidatingAdmissionPolicyBinding", "image-cleanup-report-writers")
	want := fmt.Sprintf("request.userInfo.username == 'system:serviceaccount:%s:%s'", ds.Namespace, ds.Spec.Template.Spec.ServiceAccountName)
	if len(vap.Spec.MatchConditions) != 1 || vap.Spec.MatchConditions[0].Expression != want {
		t.Errorf("the policy matches %+v, want %s", vap.Spec.MatchConditions, want)
	}
	if binding.Spec.PolicyName != vap.Name || !slices.Equal(binding.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
		t.Errorf("binding %+v does not deny by policy %s", binding.Spec, vap.Name)
	}
	if vap.Spec.FailurePolicy == nil || *vap.Spec.FailurePolicy != admissionregistrationv1.Fail {
		t.Error("the policy must fail closed")
	}
}

// TestInstallRunsWhereUsersRunIt: what clusters refuse or need, found when
// installing as users do.
func TestInstallRunsWhereUsersRunIt(t *testing.T) {
	docs := build(t, "config/default")
	ds := find[appsv1.DaemonSet](t, docs, "DaemonSet", "image-cleanup-agent")
	agg := find[appsv1.Deployment](t, docs, "Deployment", "image-cleanup-aggregator")
	for name, pod := range map[string]corev1.PodSpec{"agent": ds.Spec.Template.Spec, "aggregator": agg.Spec.Template.Spec} {
		// system-node-critical outside kube-system is refused where a
		// ResourceQuota limits it (GKE).
		if pod.PriorityClassName != "" {
			t.Errorf("%s sets priorityClassName %q", name, pod.PriorityClassName)
		}
		if pod.NodeSelector["kubernetes.io/os"] != "linux" {
			t.Errorf("%s has no kubernetes.io/os: linux node selector", name)
		}
	}
	ns := find[corev1.Namespace](t, docs, "Namespace", "image-cleanup-system")
	// hostPath is refused by the baseline and restricted levels.
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace labels %v: the agent's hostPath volumes need pod-security.kubernetes.io/enforce=privileged", ns.Labels)
	}
}

// TestInstallerIsTheWholeVersionedInstall: make build-installer writes one
// file a user can kubectl apply: every object labelled with the version,
// the image of that version (also as the agent's own protected image), and
// the API server takes it.
func TestInstallerIsTheWholeVersionedInstall(t *testing.T) {
	kustomize := os.Getenv("KUSTOMIZE")
	if kustomize == "" {
		testenv.Unavailable(t, "KUSTOMIZE is not set (make test installs kustomize into bin/)")
	}
	out := filepath.Join(t.TempDir(), "install.yaml")
	img := "registry.example.com/imagecleanup/agent:v9.8.7"
	cmd := exec.Command("make", "-s", "build-installer", "VERSION=v9.8.7", "IMG="+img, "INSTALLER="+out, "KUSTOMIZE="+kustomize)
	cmd.Dir = testenv.RepoRoot()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build-installer: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs := decode(t, f)
	kinds := map[string]int{}
	for _, d := range docs {
		u := unstructured.Unstructured{Object: d}
		kinds[u.GetKind()]++
		if u.GetLabels()["app.kubernetes.io/version"] != "v9.8.7" {
			t.Errorf("%s %s has no version label", u.GetKind(), u.GetName())
		}
	}
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ServiceAccount", "DaemonSet", "Deployment",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if kinds[kind] == 0 {
			t.Errorf("no %s in the installer: %v", kind, kinds)
		}
	}
	ds := find[appsv1.DaemonSet](t, docs, "DaemonSet", "image-cleanup-agent")
	if c := ds.Spec.Template.Spec.Containers[0]; c.Image != img || !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "AGENT_IMAGE" && e.Value == img
	}) {
		t.Errorf("the agent runs %s and protects %v, want %s for both", c.Image, c.Env, img)
	}
	if sel := ds.Spec.Selector.MatchLabels; sel["app.kubernetes.io/version"] != "" {
		t.Error("the version is in the DaemonSet's selector: an upgrade could not change it")
	}
	ns := find[corev1.Namespace](t, docs, "Namespace", "image-cleanup-system")
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace labels %v", ns.Labels)
	}
	// The API server takes every object, as kubectl apply --server-side would.
	c, err := client.New(testenv.APIServer(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		u := &unstructured.Unstructured{Object: d}
		if err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("installer-test"), client.ForceOwnership); err != nil {
			t.Errorf("%s %s refused: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// make undeploy deletes what make deploy applied except the CRDs: deleting
// a CRD deletes every policy and report with it (make uninstall does that,
// when asked).
func TestUndeployLeavesTheCRDs(t *testing.T) {
	kustomize := os.Getenv("KUSTOMIZE")
	if kustomize == "" {
		testenv.Unavailable(t, "KUSTOMIZE is not set (make test installs kustomize into bin/)")
	}
	render := func(args ...string) map[string]int {
		cmd := exec.Command("hack/deploy.sh", append([]string{"config/default", "registry.example.com/agent:1"}, args...)...)
		cmd.Dir, cmd.Env = testenv.RepoRoot(), append(os.Environ(), "KUSTOMIZE="+kustomize)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hack/deploy.sh %v: %v", args, err)
		}
		kinds := map[string]int{}
		for _, d := range decode(t, bytes.NewReader(out)) {
			kinds[(&unstructured.Unstructured{Object: d}).GetKind()]++
		}
		return kinds
	}
	deployed, undeployed := render(), render("--without-crds")
	if deployed["CustomResourceDefinition"] != 2 || undeployed["CustomResourceDefinition"] != 0 {
		t.Fatalf("CRDs: %d deployed, %d undeployed; want 2 and 0", deployed["CustomResourceDefinition"], undeployed["CustomResourceDefinition"])
	}
	delete(deployed, "CustomResourceDefinition")
	if !maps.Equal(deployed, undeployed) {
		t.Errorf("undeploy deletes %v, deploy applied %v", undeployed, deployed)
	}
}

// TestFieldDescriptionsFitKubectlExplain: every field of both kinds says
// what it is, every optional spec field says its default, and none speaks
// of the code behind it.
func TestFieldDescriptionsFitKubectlExplain(t *testing.T) {
	internal := regexp.MustCompile(`\bGo\b|metav1|\bCEL\b|\bstruct\b|kubebuilder|omitempty|\bnil\b|\bpointer\b`)
	for _, file := range []string{"imagecleanup.io_imagecleanuppolicies.yaml", "imagecleanup.io_imagecleanupreports.yaml"} {
		raw, err := os.ReadFile(filepath.Join(testenv.CRDDir(), file))
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, s *apiextensionsv1.JSONSchemaProps, required bool)
		walk = func(path string, s *apiextensionsv1.JSONSchemaProps, required bool) {
			if path == ".status.conditions[]" {
				return // metav1.Condition's own descriptions, as every API has them
			}
			if s.Description == "" && !strings.HasSuffix(path, "[]") {
				t.Errorf("%s %s has no description", crd.Spec.Names.Kind, path)
			}
			if internal.MatchString(s.Description) {
				t.Errorf("%s %s speaks of the code: %q", crd.Spec.Names.Kind, path, s.Description)
			}
			if strings.HasPrefix(path, ".spec.") && crd.Spec.Names.Kind == "ImageCleanupPolicy" && !required &&
				!strings.HasSuffix(path, "[]") && !strings.Contains(s.Description, "Default:") {
				t.Errorf("%s %s does not say its default: %q", crd.Spec.Names.Kind, path, s.Description)
			}
			for name, prop := range s.Properties {
				if path == "" && (name == "apiVersion" || name == "kind" || name == "metadata") {
					continue
				}
				walk(path+"."+name, &prop, slices.Contains(s.Required, name))
			}
			if s.Items != nil && s.Items.Schema != nil {
				walk(path+"[]", s.Items.Schema, true)
			}
		}
		walk("", crd.Spec.Versions[0].Schema.OpenAPIV3Schema, true)
	}
}

// TestUnknownFieldsAsTheAPIServerNamesThem: imagecleanup validate names an
// unknown field by the path the API server's strict field validation gives.
func TestUnknownFieldsAsTheAPIServerNamesThem(t *testing.T) {
	c, err := client.New(testenv.APIServer(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{
		"apiVersion": "imagecleanup.io/v1alpha1", "kind": "ImageCleanupPolicy",
		"metadata": map[string]any{"name": "typos"},
		"spec": map[string]any{"images": []any{"busybox"}, "minImageAg": "1h",
			"stoppedContainers": map[string]any{"actoin": "Remove"}},
	}
	ours, err := policyschema.UnknownFields(obj)
	if err != nil {
		t.Fatal(err)
	}
	if len(ours) != 2 {
		t.Fatalf("unknown fields %v, want 2", ours)
	}
	err = c.Create(context.Background(), &unstructured.Unstructured{Object: obj}, client.DryRunAll, client.FieldValidation("Strict"))
	if err == nil {
		t.Fatal("the API server took a policy with unknown fields")
	}
	for _, path := range ours {
		if !strings.Contains(err.Error(), fmt.Sprintf("unknown field %q", path)) {
			t.Errorf("the API server says %q, which does not name %q as we do", err, path)
		}
	}
}

// Issue 23: at 5,000 nodes the fleet's report writes queued the aggregator's
// lease renewals until it lost its lease, and in the default workload-low
// level, where the whole fleet (one ServiceAccount) is one flow of at most
// 300 queued requests, thousands of report writes were rejected. The
// install's FlowSchemas put the aggregator's lease requests, and only those,
// in the API server's leader-election priority level, and the agents' report
// writes, and only those, in a level of their own, and the agents' events in
// a small one; the aggregator's lists and status writes and the agents'
// other requests stay with the other workloads'. The API server says how it
// classified a request in the response headers of API Priority and Fairness
// (it classifies before it authorizes, so a write refused by RBAC says it
// too).
func TestLeasesReportsAndEventsHaveTheirOwnPriorityLevels(t *testing.T) {
	docs := build(t, "config/default")
	cfg := testenv.APIServer(t)
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	agg := find[appsv1.Deployment](t, docs, "Deployment", "image-cleanup-aggregator")
	ds := find[appsv1.DaemonSet](t, docs, "DaemonSet", "image-cleanup-agent")
	for _, kind := range []string{"PriorityLevelConfiguration", "FlowSchema"} {
		for _, d := range docs {
			if d["kind"] != kind {
				continue
			}
			// Applied, as other tests here install the whole build too.
			u := &unstructured.Unstructured{Object: d}
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.ForceOwnership, client.FieldOwner("manifests-test")); err != nil {
				t.Fatal(err)
			}
		}
	}
	var leaderElection, reports, events flowcontrolv1.PriorityLevelConfiguration
	for name, level := range map[string]*flowcontrolv1.PriorityLevelConfiguration{
		"leader-election": &leaderElection, "image-cleanup-agent-reports": &reports, "image-cleanup-agent-events": &events} {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, level); err != nil {
			t.Fatal(err)
		}
	}
	// priorityLevel sends a request as a service account and returns the
	// priority level the API server put it in.
	priorityLevel := func(serviceAccount, method, path string) (string, error) {
		as := rest.CopyConfig(cfg)
		as.Impersonate = rest.ImpersonationConfig{
			UserName: fmt.Sprintf("system:serviceaccount:%s:%s", agg.Namespace, serviceAccount),
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + agg.Namespace, "system:authenticated"},
		}
		hc, err := rest.HTTPClientFor(as)
		if err != nil {
			return "", err
		}
		req, err := http.NewRequestWithContext(ctx, method, as.Host+path, strings.NewReader("{}"))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/merge-patch+json")
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		_ = resp.Body.Close()
		return resp.Header.Get(flowcontrolv1.ResponseHeaderMatchedPriorityLevelConfigurationUID), nil
	}
	aggregatorSA, agentSA := agg.Spec.Template.Spec.ServiceAccountName, ds.Spec.Template.Spec.ServiceAccountName
	lease := "/apis/coordination.k8s.io/v1/namespaces/" + agg.Namespace + "/leases/imagecleanup-aggregator"
	report := "/apis/imagecleanup.io/v1alpha1/imagecleanupreports/node-1.policy?dryRun=All"
	for _, own := range []struct {
		who, serviceAccount, method, path string
		level                             *flowcontrolv1.PriorityLevelConfiguration
	}{
		{"the aggregator's lease GET", aggregatorSA, http.MethodGet, lease, &leaderElection},
		{"an agent's report write", agentSA, http.MethodPatch, report, &reports},
		{"an agent's event", agentSA, http.MethodPost, "/apis/events.k8s.io/v1/namespaces/default/events?dryRun=All", &events},
	} {
		// The API server takes new FlowSchemas in asynchronously.
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := priorityLevel(own.serviceAccount, own.method, own.path)
			if err != nil {
				t.Fatal(err)
			}
			if got == string(own.level.UID) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s went to priority level %s, not %s (%s)", own.who, got, own.level.Name, own.level.UID)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, other := range []struct{ who, serviceAccount, method, path string }{
		{"the aggregator's list of reports", aggregatorSA, http.MethodGet, "/apis/imagecleanup.io/v1alpha1/imagecleanupreports"},
		{"the aggregator's report write", aggregatorSA, http.MethodPatch, report},
		{"an agent's lease GET", agentSA, http.MethodGet, lease},
		{"an agent's report GET", agentSA, http.MethodGet, "/apis/imagecleanup.io/v1alpha1/imagecleanupreports/node-1.policy"},
		{"an agent's policy write", agentSA, http.MethodPatch, "/apis/imagecleanup.io/v1alpha1/imagecleanuppolicies/policy?dryRun=All"},
		{"the aggregator's event", aggregatorSA, http.MethodPost, "/apis/events.k8s.io/v1/namespaces/default/events?dryRun=All"},
	} {
		got, err := priorityLevel(other.serviceAccount, other.method, other.path)
		if err != nil {
			t.Fatal(err)
		}
		if got == "" || got == string(leaderElection.UID) || got == string(reports.UID) || got == string(events.UID) {
			t.Errorf("%s went to priority level %q: only the aggregator's lease requests belong in leader-election, only the agents' report writes in %s, only their events in %s",
				other.who, got, reports.Name, events.Name)
		}
	}
}
