package match_test

import (
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/match"
)

// FuzzCompile: no input panics or hangs the compiler or the matcher, and
// every pattern that the CRD's rules accept compiles (the agent never meets a
// policy the API server took and it cannot read). The corpus in
// testdata/fuzz holds the inputs that once broke that.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		"busybox", "**", "docker.io/**", "**:2/95_4", "registry.example.com/ci/**", "app:pr-*",
		"sha256:0123456789ab", "app@sha256:" + hex64, "*.example.com/a/**:*", "localhost:5000/x", "**/pause:*",
	} {
		f.Add(seed, "docker.io/myorg/app:1")
	}
	f.Fuzz(func(t *testing.T, pattern, tag string) {
		ok := valid(pattern)
		p, err := match.Compile(pattern)
		if ok && err != nil {
			t.Fatalf("%q is valid but does not compile: %v", pattern, err)
		}
		if err != nil {
			return
		}
		set := match.Set{p}
		set.Select(match.Image{ID: "sha256:" + hex64, RepoTags: []string{tag}, RepoDigests: []string{tag}})
		set.MatchTag(tag)
	})
}
