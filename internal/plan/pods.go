package plan

import (
	"strings"

	"github.com/distribution/reference"

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
//
// A short name (no registry: nginx, ubi8/ubi-minimal) is the runtime's to
// resolve: Docker and containerd read docker.io/library/nginx, CRI-O goes
// through registries.conf (its unqualified-search-registries and short-name
// aliases). It keeps every image with its path and tag in any registry.
type PodIndex struct {
	tags map[match.Ref]string
	// short are the short names' paths (as written, and without library/)
	// and tags, for images of any registry.
	short   map[match.Ref]string
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
	p := PodIndex{tags: map[match.Ref]string{}, short: map[match.Ref]string{}, digests: map[string]string{}, ids: map[string]string{}, prefixes: map[string]string{}}
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
			if path, ok := shortPath(ref); ok {
				for _, key := range pathKeys(path) {
					p.short[match.Ref{Name: key, Tag: tag.Tag}] = pi.Pod
				}
			}
		}
	}
	return p
}

// shortPath is the repository path of a reference written without a
// registry (nginx:1.27 is nginx), false for one with a registry.
func shortPath(ref string) (string, bool) {
	name, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	first, _, nested := strings.Cut(name, "/")
	if nested && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return "", false
	}
	return name, true
}

// pathKeys are a path and, for one under library/ (Docker Hub's official
// images), the path without it.
func pathKeys(path string) []string {
	if short, ok := strings.CutPrefix(path, "library/"); ok {
		return []string{path, short}
	}
	return []string{path}
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
		named, err := reference.ParseNormalizedNamed(t)
		if err != nil {
			continue
		}
		if ref, err := match.ParseTag(t); err == nil {
			if pod, ok := p.tags[ref]; ok {
				return pod
			}
			for _, key := range pathKeys(reference.Path(named)) {
				if pod, ok := p.short[match.Ref{Name: key, Tag: ref.Tag}]; ok {
					return pod
				}
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
