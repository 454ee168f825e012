package plan_test

import (
	"strings"
	"testing"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// Issue 18: the images of pods bound to the node stay, whether or not a
// container of them exists yet, resolved as the runtime resolves
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
	kubelet := ctr("crashing", "by-status", runtime.StateExited)
	kubelet.Labels = map[string]string{"io.kubernetes.pod.name": "job-7"}
	s := with(spec("**"), func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Force = true
		s.StoppedContainers.IncludeKubernetesManaged = true
	})
	opts, err := plan.OptionsFor(&s, nil, runtimefake.Docker.Capabilities)
	if err != nil {
		t.Fatal(err)
	}
	opts.PodImages = pods
	inv := runtime.Inventory{Images: []runtime.Image{byTag, byDigest, byStatus, loose}, Containers: []runtime.Container{kubelet}}
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

// A pod names its image in every form the runtime resolves: a tag written
// short or in full, a digest reference (with or without a tag, under the
// image's repository or another), the image's ID in full or as a prefix,
// with or without sha256:, and the kubelet's status forms with a scheme.
// Each keeps the image; references to other images do not.
func TestPodReferencesResolveAsTheRuntimeDoes(t *testing.T) {
	nginx := img("nginx-1.27", "nginx:1.27")
	digest := "sha256:" + strings.Repeat("d", 64)
	nginx.RepoDigests = []string{"nginx@" + digest}
	hex := strings.TrimPrefix(nginx.ID, "sha256:")
	other := strings.TrimPrefix(id("other"), "sha256:")
	for ref, keeps := range map[string]bool{
		"nginx:1.27":                        true,
		"docker.io/library/nginx:1.27":      true,
		"library/nginx:1.27":                true,
		"nginx@" + digest:                   true,
		"nginx:1.27@" + digest:              true,
		"nginx:other@" + digest:             true,
		"mirror.local/nginx@" + digest:      true, // the same content, pulled by another name
		"docker-pullable://nginx@" + digest: true,
		nginx.ID:                            true,
		"docker://" + nginx.ID:              true,
		"containerd://" + nginx.ID:          true,
		hex:                                 true, // a bare ID
		"sha256:" + hex[:12]:                true, // a short ID, as docker ps prints it
		hex[:12]:                            true,
		hex[:5]:                             true, // the runtime resolves any unambiguous prefix
		"nginx":                             false,
		"nginx:1.26":                        false,
		"nginx@sha256:" + strings.Repeat("e", 64): false,
		"sha256:" + other[:12]:                    false,
		other[:12]:                                false,
		"sha256:":                                 false,
		"":                                        false,
	} {
		ix := plan.PodsNaming([]plan.PodImage{{Ref: ref, Pod: "ns/pod (container c)"}})
		if got := ix.Using(nginx.ID, nginx.RepoTags, nginx.RepoDigests) != ""; got != keeps {
			t.Errorf("a pod naming %q keeps %s: %v, want %v", ref, nginx.ID, got, keeps)
		}
	}
}

// CRI-O lists an image's ID without sha256:, where a pod's status and a
// short ID name it with or without: they still meet.
func TestPodReferencesMeetAnIDListedWithoutItsAlgorithm(t *testing.T) {
	bare := strings.TrimPrefix(id("crio-image"), "sha256:")
	for _, ref := range []string{"sha256:" + bare, bare, "sha256:" + bare[:12], bare[:12]} {
		if plan.PodsNaming([]plan.PodImage{{Ref: ref, Pod: "ns/pod"}}).Using(bare, nil, nil) == "" {
			t.Errorf("a pod naming %q does not keep the image listed as %s", ref, bare)
		}
	}
}

// A short name is resolved by the runtime, not by a rule every runtime
// shares: Docker and containerd read app:1 as docker.io/library/app:1,
// CRI-O through registries.conf (its unqualified-search-registries and
// short-name aliases: registry.local:5000/app:1 on an air-gapped node). A
// pod that names an image by a short name keeps every image with that path
// and tag in any registry; a name with a registry keeps only its own.
func TestAShortNameKeepsItsImageInAnyRegistry(t *testing.T) {
	for ref, cases := range map[string]map[string]bool{
		"app:1": {"registry.local:5000/app:1": true, "docker.io/library/app:1": true, "quay.io/team/app:1": false,
			"registry.local:5000/app:2": false},
		"ubi8/ubi-minimal": {"registry.access.redhat.com/ubi8/ubi-minimal:latest": true, "ubi8/ubi-minimal:latest": true,
			"registry.access.redhat.com/ubi9/ubi-minimal:latest": false},
		"registry.local:5000/app:1": {"registry.local:5000/app:1": true, "mirror.local/app:1": false, "app:1": false},
		"docker.io/app:1":           {"app:1": true, "registry.local:5000/app:1": false},
	} {
		ix := plan.PodsNaming([]plan.PodImage{{Ref: ref, Pod: "ns/pod"}})
		for tag, keeps := range cases {
			if got := ix.Using(id(tag), []string{tag}, nil) != ""; got != keeps {
				t.Errorf("a pod naming %q keeps the image tagged %s: %v, want %v", ref, tag, got, keeps)
			}
		}
	}
}
