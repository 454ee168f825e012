package match

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// FuzzCompile: no input panics or hangs the compiler or the matcher, and
// every pattern that validation accepts compiles (the agent never meets a
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
		valid := len(v1alpha1.ValidateImagePattern(pattern, field.NewPath("p"))) == 0
		p, err := Compile(pattern)
		if valid && err != nil {
			t.Fatalf("%q is valid but does not compile: %v", pattern, err)
		}
		if err != nil {
			return
		}
		set := Set{p}
		set.Select(Image{ID: "sha256:" + hex64, RepoTags: []string{tag}, RepoDigests: []string{tag}})
		set.MatchTag(tag)
	})
}
