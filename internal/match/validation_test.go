package match_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
)

// The matcher against the API server's own rules (the CRD, run by
// internal/policyschema without its Go checks): everything the API server
// admits must compile, or agents would fail on policies the cluster took.

const (
	hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id    = "sha256:" + hex64
)

// valid: the CRD's rules accept the pattern as an images entry.
func valid(pattern string) bool { return len(policyschema.PatternErrors(pattern)) == 0 }

// Everything the API accepts compiles: the agent never meets a pattern it
// cannot read. Random strings near the grammar's edges, fixed seed.
func TestEveryValidPatternCompiles(t *testing.T) {
	pieces := []string{"a", "b9", "app", "-", "__", ".", "/", ":", "*", "**", "@", "sha256:", "0123456789ab", hex64,
		"A", "5000", "registry.example.com", "localhost", "index.docker.io", "docker.io", "library", "x:1.2"}
	r := rand.New(rand.NewPCG(7, 7))
	accepted := 0
	for range 20000 {
		var b strings.Builder
		for n := 1 + r.IntN(7); n > 0; n-- {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		s := b.String()
		if !valid(s) {
			continue
		}
		accepted++
		if _, err := match.Compile(s); err != nil {
			t.Errorf("%q is valid but does not compile: %v", s, err)
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d valid patterns generated", accepted)
	}
}

// Property: an exclude entry written as a prefix of a repository's path
// followed by /** (or **:*) excludes every tag and digest of that
// repository, in every spelling Docker accepts for it.
func TestExcludedPrefixAlwaysWins(t *testing.T) {
	domains := []string{"", "docker.io/", "index.docker.io/", "registry.example.com/", "localhost:5000/", "r.io:443/"}
	segs := []string{"a", "app", "team", "library", "my-org", "x_y", "ci", "pause", "v1.2"}
	r := rand.New(rand.NewPCG(11, 3))
	for range 3000 {
		domain := domains[r.IntN(len(domains))]
		path := make([]string, 1+r.IntN(4))
		for i := range path {
			path[i] = segs[r.IntN(len(segs))]
		}
		repo := domain + strings.Join(path, "/")
		tag := repo + ":" + []string{"1", "latest", "pr-7"}[r.IntN(3)]
		digest := repo + "@sha256:" + hex64
		// Proper prefixes: the registry alone (when written), then path segments.
		var prefixes []string
		if domain != "" {
			prefixes = append(prefixes, strings.TrimSuffix(domain, "/"))
		}
		for n := 1; n < len(path); n++ {
			prefixes = append(prefixes, domain+strings.Join(path[:n], "/"))
		}
		prefixes = append(prefixes, "") // "**" alone
		for _, prefix := range prefixes {
			for _, suffix := range []string{"/**", "/**:*"} {
				exclude := strings.TrimPrefix(prefix+suffix, "/")
				if prefix == "" && suffix == "/**:*" {
					exclude = "**:*"
				}
				if !valid(exclude) {
					continue // a prefix the API refuses cannot be written
				}
				set, err := match.CompileSet([]string{exclude})
				if err != nil {
					t.Fatalf("%s: %v", exclude, err)
				}
				sel := set.Select(match.Image{ID: id, RepoTags: []string{tag}, RepoDigests: []string{digest}})
				if len(sel.Tags) != 1 {
					t.Fatalf("exclude %q does not cover tag %q", exclude, tag)
				}
				if strings.HasSuffix(suffix, "/**") && !set.Select(match.Image{ID: id, RepoDigests: []string{digest}}).Whole {
					t.Fatalf("exclude %q does not cover the untagged image %q", exclude, digest)
				}
			}
		}
	}
}

// Finding: **:2/95_4 passed validation and was refused by the matcher only
// on the node. Validation and compilation give the same verdict.
func TestValidationAndCompileAgree(t *testing.T) {
	for _, p := range []string{"**:2/95_4", "**:5000/app", "a/**:1/b", "**:tag", "registry:5000/**:x"} {
		ok := valid(p)
		_, err := match.Compile(p)
		if ok != (err == nil) {
			t.Errorf("%q: valid %v, compile error %v", p, ok, err)
		}
	}
}
