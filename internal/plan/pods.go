package plan

import (
	"strings"

	"github.com/imagecleanup/image-cleanup-operator/internal/match"
)

// PodImage is an image a pod bound to the node names: the kubelet will run
// it, whether or not a container of it exists yet (an init container still
// running, a volume or a network not ready, a restart to come).
type PodImage struct {
	// Ref is the image as the pod names it (spec: nginx, nginx:1.27,
	// registry/app@sha256:…) or as its status resolved it (an image ID,
	// docker-pullable://registry/app@sha256:…).
	Ref string
	// Pod names the pod (namespace/name) and the container, for reports.
	Pod string
}

// PodIndex looks up the images that pods bound to the node name, the way
// the engine resolves references: tags normalized (nginx is
// docker.io/library/nginx:latest), digest references by name and digest,
// image IDs by ID.
type PodIndex struct {
	tags    map[match.Ref]string
	digests map[string]string // normalized name@digest
	ids     map[string]string
}

// PodsNaming indexes what the pods bound to the node name.
func PodsNaming(refs []PodImage) PodIndex {
	p := PodIndex{tags: map[match.Ref]string{}, digests: map[string]string{}, ids: map[string]string{}}
	for _, pi := range refs {
		ref := pi.Ref
		for _, scheme := range []string{"docker-pullable://", "docker://", "containerd://"} {
			ref = strings.TrimPrefix(ref, scheme)
		}
		if strings.HasPrefix(ref, "sha256:") {
			p.ids[ref] = pi.Pod
			continue
		}
		if name, digest, err := match.ParseDigest(ref); err == nil {
			// name:tag@digest pulls by digest: the digest is what the node holds.
			p.digests[name+"@"+digest] = pi.Pod
			continue
		}
		if tag, err := match.ParseTag(ref); err == nil {
			p.tags[tag] = pi.Pod
		}
	}
	return p
}

// Using names a pod that uses an image with this ID and these references,
// "" when none does.
func (p PodIndex) Using(id string, tags, digests []string) string {
	if pod, ok := p.ids[id]; ok {
		return pod
	}
	for _, t := range tags {
		if ref, err := match.ParseTag(t); err == nil {
			if pod, ok := p.tags[ref]; ok {
				return pod
			}
		}
	}
	for _, d := range digests {
		if name, digest, err := match.ParseDigest(d); err == nil {
			if pod, ok := p.digests[name+"@"+digest]; ok {
				return pod
			}
		}
	}
	return ""
}
