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
	// registry/app@sha256:…, an image ID or a prefix of one) or as its
	// status resolved it (an image ID, docker-pullable://registry/app@sha256:…).
	Ref string
	// Pod names the pod (namespace/name) and what in it names the image
	// (a container, an image volume), for reports.
	Pod string
}

// PodIndex looks up the images that pods bound to the node name, the way
// the runtime resolves references, and where a reference could be read two
// ways, both: tags normalized (nginx is docker.io/library/nginx:latest);
// digest references by their digest, under any repository (the same
// content); image IDs in full, and prefixes of them, with or without
// sha256: (Docker and containerd resolve an unambiguous prefix of any
// length, and a bare hex name is tried as an ID when no tag has it).
type PodIndex struct {
	tags    map[match.Ref]string
	digests map[string]string // sha256:<hex>, the digest alone
	ids     map[string]string // full image IDs
	// prefixes are shorter sha256:<hex> prefixes of image IDs; rare.
	prefixes map[string]string
}

// idLength is the length of an image ID's hex digits.
const idLength = 64

// schemes are what the kubelet puts before an image ID in a pod's status.
var schemes = []string{"docker-pullable://", "docker://", "containerd://", "cri-o://"}

// PodsNaming indexes what the pods bound to the node name.
func PodsNaming(refs []PodImage) PodIndex {
	p := PodIndex{tags: map[match.Ref]string{}, digests: map[string]string{}, ids: map[string]string{}, prefixes: map[string]string{}}
	for _, pi := range refs {
		ref := pi.Ref
		for _, scheme := range schemes {
			ref = strings.TrimPrefix(ref, scheme)
		}
		if hex := strings.TrimPrefix(ref, "sha256:"); isHex(hex) && len(hex) <= idLength {
			if len(hex) == idLength {
				p.ids["sha256:"+hex] = pi.Pod
			} else {
				p.prefixes["sha256:"+hex] = pi.Pod
			}
		}
		if _, digest, err := match.ParseDigest(ref); err == nil {
			// name:tag@digest pulls by digest: the digest is what the node holds.
			p.digests[digest] = pi.Pod
			continue
		}
		if tag, err := match.ParseTag(ref); err == nil {
			p.tags[tag] = pi.Pod
		}
	}
	return p
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Using names a pod that uses an image with this ID and these references,
// "" when none does.
func (p PodIndex) Using(id string, tags, digests []string) string {
	if !strings.HasPrefix(id, "sha256:") && isHex(id) {
		id = "sha256:" + id // CRI-O lists an image's ID as its bare digits
	}
	if pod, ok := p.ids[id]; ok {
		return pod
	}
	for prefix, pod := range p.prefixes {
		if strings.HasPrefix(id, prefix) {
			return pod
		}
	}
	for _, t := range tags {
		if ref, err := match.ParseTag(t); err == nil {
			if pod, ok := p.tags[ref]; ok {
				return pod
			}
		}
	}
	for _, d := range digests {
		if _, digest, err := match.ParseDigest(d); err == nil {
			if pod, ok := p.digests[digest]; ok {
				return pod
			}
		}
	}
	return ""
}
