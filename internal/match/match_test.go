package match

import (
	"strings"
	"testing"
)

const (
	hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id    = "sha256:" + hex64
)

func TestPatternMatchesTags(t *testing.T) {
	tests := map[string]struct {
		pattern string
		yes, no []string
	}{
		"familiar name is latest": {
			"busybox",
			[]string{"busybox:latest", "docker.io/library/busybox:latest", "library/busybox", "index.docker.io/library/busybox:latest"},
			[]string{"busybox:1.36", "other/busybox:latest", "registry.example.com/busybox:latest"},
		},
		"explicit tag": {
			"busybox:1.36",
			[]string{"busybox:1.36", "docker.io/library/busybox:1.36"},
			[]string{"busybox:latest", "busybox:1.36.1"},
		},
		"wildcard tag": {
			"busybox:*",
			[]string{"busybox:latest", "busybox:1.36"},
			[]string{"busyboxes:1", "team/busybox:1"},
		},
		"tag prefix": {
			"myapp:pr-*",
			[]string{"myapp:pr-1", "myapp:pr-", "docker.io/library/myapp:pr-77-abc"},
			[]string{"myapp:1.0", "myapp:main-pr-1"},
		},
		"double star below a registry path": {
			"registry.example.com/ci/**",
			[]string{"registry.example.com/ci/app:1", "registry.example.com/ci/team/app:latest", "registry.example.com/ci/a/b/c:x"},
			[]string{"registry.example.com/ci:1", "registry.example.com/cd/app:1", "other.example.com/ci/app:1"},
		},
		"star within a segment": {
			"registry.example.com/team-*/app",
			[]string{"registry.example.com/team-a/app:latest", "registry.example.com/team-a/app:1"},
			[]string{"registry.example.com/team-a/b/app:latest", "registry.example.com/team/app:latest"},
		},
		"star in the domain": {
			"*.example.com/app:*",
			[]string{"registry.example.com/app:1", "x.example.com/app:latest"},
			[]string{"example.com/app:1", "registry.example.com/team/app:1"},
		},
		"star is normalized like a name": {
			"*/app:*",
			[]string{"team/app:1", "docker.io/other/app:2", "app:1"}, // app is docker.io/library/app
			[]string{"registry.example.com/team/app:1", "a/b/app:1"},
		},
		"everything": {
			"**",
			[]string{"busybox:latest", "registry.example.com/a/b/c:1", "localhost:5000/x:y"},
			nil,
		},
		"every latest tag": {
			"**:latest",
			[]string{"busybox:latest", "registry.example.com/a/b:latest"},
			[]string{"busybox:1"},
		},
		"pause anywhere": {
			"**/pause:*",
			[]string{"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.2", "docker.io/library/pause:latest", "pause:1"},
			[]string{"registry.k8s.io/pause-amd64:3.1", "registry.k8s.io/pauser:1"},
		},
		"registry with port": {
			"localhost:5000/app",
			[]string{"localhost:5000/app:latest"},
			[]string{"localhost:5001/app:latest", "app:latest"},
		},
		"dot in a wildcard segment is literal": {
			"registry.example.com/a.*",
			[]string{"registry.example.com/a.b:latest"},
			[]string{"registry.example.com/axb:latest"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := Compile(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range tc.yes {
				ref, err := ParseTag(tag)
				if err != nil {
					t.Fatal(err)
				}
				if !p.MatchesTag(ref) {
					t.Errorf("%s does not match %s (%s)", tc.pattern, tag, ref)
				}
			}
			for _, tag := range tc.no {
				ref, err := ParseTag(tag)
				if err != nil {
					t.Fatal(err)
				}
				if p.MatchesTag(ref) {
					t.Errorf("%s matches %s (%s)", tc.pattern, tag, ref)
				}
			}
		})
	}
}

func TestSelect(t *testing.T) {
	img := Image{
		ID:          id,
		RepoTags:    []string{"app:1", "app:2", "registry.example.com/team/app:1"},
		RepoDigests: []string{"app@sha256:" + strings.Repeat("a", 64)},
	}
	tests := map[string]struct {
		patterns []string
		whole    bool
		tags     []string
	}{
		"one tag":                    {[]string{"app:1"}, false, []string{"app:1"}},
		"tags of one repository":     {[]string{"app:*"}, false, []string{"app:1", "app:2"}},
		"every tag":                  {[]string{"**"}, false, []string{"app:1", "app:2", "registry.example.com/team/app:1"}},
		"full ID":                    {[]string{id}, true, nil},
		"ID prefix":                  {[]string{"sha256:0123456789ab"}, true, nil},
		"other ID":                   {[]string{"sha256:0123456789ac"}, false, nil},
		"digest":                     {[]string{"app@sha256:" + strings.Repeat("a", 64)}, true, nil},
		"digest of another repo":     {[]string{"other@sha256:" + strings.Repeat("a", 64)}, false, nil},
		"wildcard repo with tags":    {[]string{"docker.io/**"}, false, []string{"app:1", "app:2"}},
		"latest only, none here":     {[]string{"app"}, false, nil},
		"tag and ID both":            {[]string{"app:2", id}, true, []string{"app:2"}},
		"tagged digest is by digest": {[]string{"app:9@sha256:" + strings.Repeat("a", 64)}, true, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			set, err := CompileSet(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			sel := set.Select(img)
			if sel.Whole != tc.whole || strings.Join(sel.Tags, ",") != strings.Join(tc.tags, ",") {
				t.Fatalf("Select = whole %v tags %v, want whole %v tags %v", sel.Whole, sel.Tags, tc.whole, tc.tags)
			}
			if sel.Any() && sel.By == "" {
				t.Fatal("a selection does not say which entry made it")
			}
		})
	}
}

// An untagged image that keeps a digest is selected by a tagless wildcard
// pattern of its repository, and by nothing that names a tag.
func TestSelectUntaggedByRepository(t *testing.T) {
	img := Image{ID: id, RepoDigests: []string{"registry.example.com/ci/app@sha256:" + strings.Repeat("b", 64)}}
	for pattern, want := range map[string]bool{
		"registry.example.com/ci/**":   true,
		"registry.example.com/ci/*":    true,
		"registry.example.com/ci/*:*":  false,
		"registry.example.com/ci/app":  false,
		"registry.example.com/cd/**":   false,
		"**":                           true,
		"registry.example.com/ci/app*": true,
	} {
		set, err := CompileSet([]string{pattern})
		if err != nil {
			t.Fatal(err)
		}
		if got := set.Select(img).Whole; got != want {
			t.Errorf("%s selects the untagged image: %v, want %v", pattern, got, want)
		}
	}
}

func TestCompileRefusesWhatValidationRefuses(t *testing.T) {
	for _, bad := range []string{"", "sha256:abc", "sha256:XYZXYZXYZXYZ", "app*@sha256:" + hex64, "app@sha256:12", "Bad/Name", "a**"} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("Compile(%q) succeeded", bad)
		}
	}
}

func TestNormalizePattern(t *testing.T) {
	for raw, want := range map[string]string{
		"busybox":                    "docker.io/library/busybox",
		"bus*":                       "docker.io/library/bus*",
		"docker.io/x*":               "docker.io/library/x*",
		"index.docker.io/team/*":     "docker.io/team/*",
		"team/*:1":                   "docker.io/team/*",
		"*.example.com/a/**":         "*.example.com/a/**",
		"localhost:5000/*":           "localhost:5000/*",
		"**/pause:*":                 "**/pause",
		"**":                         "**",
		"registry.example.com/ci/**": "registry.example.com/ci/**",
		"library/*x":                 "docker.io/library/*x",
	} {
		name, _, _, err := normalizePattern(raw)
		if err != nil || name != want {
			t.Errorf("normalizePattern(%q) = %q, %v; want %q", raw, name, err, want)
		}
	}
}

// Finding: exclude docker.io/** did not cover docker.io/myorg/app (normalizing
// added library/ to the ** path), so images: ["**"] removed myorg/app:1.
func TestDoubleStarAfterDockerHubCoversEveryRepository(t *testing.T) {
	for _, pattern := range []string{"docker.io/**", "index.docker.io/**", "docker.io/**:*"} {
		set, err := CompileSet([]string{pattern})
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"myorg/app:1", "docker.io/myorg/team/app:2", "busybox:latest", "library/busybox:1"} {
			if !set.MatchTag(tag) {
				t.Errorf("%s does not cover %s", pattern, tag)
			}
		}
		if set.MatchTag("registry.example.com/myorg/app:1") {
			t.Errorf("%s covers another registry", pattern)
		}
	}
}
