package plan_test

import (
	"strings"
	"testing"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine/enginefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

// Issue 18: the images of pods bound to the node stay, whether or not a
// container of them exists yet, resolved as the engine resolves
// references: short names, tags, name@digest, name:tag@digest, and the
// image IDs the pods' statuses name. Neither force nor
// includeKubernetesManaged overrides it.
func TestPodsOnTheNodeKeepTheirImages(t *testing.T) {
	digest := "sha256:" + strings.Repeat("d", 64)
	byTag := img("by-tag", "docker.io/library/nginx:latest")
	byDigest := img("by-digest", "registry.example/app:2")
	byDigest.RepoDigests = []string{"registry.example/app@" + digest}
	byStatus := img("by-status", "ci.local/job:7")
	loose := img("loose", "ci.local/loose:1")
	pods := []plan.PodImage{
		{Ref: "nginx", Pod: "web/nginx-1 (container nginx)"}, // the short name, as a pod spec writes it
		{Ref: "registry.example/app:1@" + digest, Pod: "web/app-1 (container app)"},
		{Ref: "docker://" + byStatus.ID, Pod: "ci/job-7 (container job)"},
	}
	// A kubelet's stopped container uses the status-named image, and the
	// policy opts in to kubelet containers with force: the pod still wins.
	kubelet := ctr("crashing", "by-status", engine.StateExited)
	kubelet.Labels = map[string]string{"io.kubernetes.pod.name": "job-7"}
	s := with(spec("**"), func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Force = true
		s.StoppedContainers.IncludeKubernetesManaged = true
	})
	opts, err := plan.OptionsFor(&s, nil, enginefake.Docker)
	if err != nil {
		t.Fatal(err)
	}
	opts.PodImages = pods
	inv := engine.Inventory{Images: []engine.Image{byTag, byDigest, byStatus, loose}, Containers: []engine.Container{kubelet}}
	p := plan.Make(&inv, &opts, now)
	wantPlan(t, p,
		"remove ci.local/loose:1 refs=ci.local/loose:1 delete",
		"skipped ci.local/job:7 PodOnNode",
		"skipped docker.io/library/nginx:latest PodOnNode",
		"skipped registry.example/app:2 PodOnNode")
	if d := p.Skipped[0]; !strings.Contains(d.Message, "ci/job-7") {
		t.Fatalf("the reason does not name the pod: %q", d.Message)
	}
	// The pod is gone: its image is the policy's again.
	opts.PodImages = pods[1:]
	p = plan.Make(&inv, &opts, now)
	if len(p.Actions) != 2 {
		t.Fatalf("after the pod went: %v", summary(p))
	}
}
