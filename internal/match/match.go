// Package match decides which images a policy's images and exclude entries
// select: image references (normalized as the distribution reference
// grammar says), patterns with * and **, digest references and image IDs.
//
// Semantics, also in docs/policy.md:
//   - busybox is docker.io/library/busybox:latest, as every runtime reads it;
//   - * matches within one path segment or within the tag, ** matches one or
//     more whole path segments; a pattern that starts with ** is not
//     normalized (it spans registries), so **/pause:* matches every pause tag;
//   - a pattern with a wildcard in its name and no tag matches every tag, and
//     the untagged images that keep a digest of a matching repository;
//   - repo@sha256:<hex> matches an image by one of its repo digests, and
//     sha256:<hex> (12 to 64 digits) by its ID: both select the whole image.
package match

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// Ref is a normalized repository name and tag, such as
// docker.io/library/busybox and latest.
type Ref struct {
	Name string
	Tag  string
}

func (r Ref) String() string { return r.Name + ":" + r.Tag }

// ParseTag normalizes a tag reference as the runtime lists it (RepoTags, often
// in familiar form like busybox:latest).
func ParseTag(s string) (Ref, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, err
	}
	named = reference.TagNameOnly(named)
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return Ref{}, fmt.Errorf("%s has no tag", s)
	}
	return Ref{Name: named.Name(), Tag: tagged.Tag()}, nil
}

// ParseDigest normalizes a digest reference as the runtime lists it
// (RepoDigests, like busybox@sha256:...), and returns its name and digest.
func ParseDigest(s string) (name, digest string, err error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", "", err
	}
	d, ok := named.(reference.Digested)
	if !ok {
		return "", "", fmt.Errorf("%s has no digest", s)
	}
	return named.Name(), d.Digest().String(), nil
}

type kind int

const (
	byName kind = iota
	byID
	byDigest
)

// Pattern is one compiled entry of images or exclude.
type Pattern struct {
	raw  string
	kind kind

	idPrefix string // byID: sha256:<hex...>

	digestName string // byDigest: normalized name
	digest     string // byDigest: sha256:<64 hex>

	name     *regexp.Regexp // byName: normalized domain/path
	tag      *regexp.Regexp // byName: nil matches every tag
	wildcard bool           // byName: the name has a wildcard
	// everyTag: byName with no tag and a wildcard name, or the tag *: the
	// entry names whole repositories.
	everyTag bool
}

// String is the entry as the policy wrote it.
func (p *Pattern) String() string { return p.raw }

// Compile reads one images or exclude entry. Entries the API server accepts
// always compile; the error is for the CLI's unvalidated input.
func Compile(raw string) (*Pattern, error) {
	switch {
	case raw == "":
		return nil, fmt.Errorf("empty image pattern")
	case strings.HasPrefix(raw, "sha256:"):
		hex := strings.TrimPrefix(raw, "sha256:")
		if len(hex) < 12 || len(hex) > 64 || strings.Trim(hex, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("%q: an image ID is sha256: and 12 to 64 lowercase hex digits", raw)
		}
		return &Pattern{raw: raw, kind: byID, idPrefix: raw}, nil
	case strings.Contains(raw, "@"):
		if strings.Contains(raw, "*") {
			return nil, fmt.Errorf("%q: a digest reference cannot contain wildcards", raw)
		}
		name, digest, err := ParseDigest(raw)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", raw, err)
		}
		return &Pattern{raw: raw, kind: byDigest, digestName: name, digest: digest}, nil
	}
	name, tag, hasTag, err := normalizePattern(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	p := &Pattern{raw: raw, kind: byName, name: nameRegexp(name), wildcard: strings.Contains(name, "*")}
	switch {
	case hasTag:
		p.tag = globRegexp(tag)
		p.everyTag = tag == "*"
	case !p.wildcard:
		p.tag = regexp.MustCompile(`^latest$`) // the grammar's default tag
	default:
		p.everyTag = true
	}
	return p, nil
}

// normalizePattern splits a name pattern into its normalized name and its tag
// (hasTag false when it has none), normalizing as the grammar does: the domain
// defaults to docker.io (index.docker.io is docker.io too), and a
// single-segment path on docker.io gets library/ in front. Stars are swapped
// for a letter while the library parses, so it checks the grammar. A ** path
// is never given library/: it stands for any number of segments, so
// docker.io/** covers docker.io/myorg/app as well as docker.io/library/busybox.
func normalizePattern(raw string) (name, tag string, hasTag bool, err error) {
	rawName := raw
	if i := strings.LastIndex(raw, ":"); i > strings.LastIndex(raw, "/") {
		rawName, tag, hasTag = raw[:i], raw[i+1:], true
	}
	if err := checkSegments(rawName); err != nil {
		return "", "", false, err
	}
	// The library checks the grammar, every pattern included.
	named, err := reference.ParseNormalizedNamed(strings.ReplaceAll(raw, "*", "x"))
	if err != nil {
		return "", "", false, err
	}
	if rawName == "**" || strings.HasPrefix(rawName, "**/") {
		// Spans registries: a domain would make no sense here.
		return rawName, tag, hasTag, nil
	}
	domain, path := reference.Domain(named), rawName
	if first, rest, ok := strings.Cut(rawName, "/"); ok && isDomain(first) {
		path = rest
		if strings.Contains(first, "*") {
			domain = first // a wildcard registry stays as written
		}
	}
	if domain == "docker.io" && !strings.Contains(path, "/") && path != "**" {
		path = "library/" + path
	}
	return domain + "/" + path, tag, hasTag, nil
}

// isDomain tells, as the reference library does, whether the first segment
// of a name is a registry: localhost, or with a dot, a port or capitals.
func isDomain(segment string) bool {
	return segment == "localhost" || strings.ContainsAny(segment, ".:") || strings.ToLower(segment) != segment
}

// checkSegments refuses ** inside a segment, which the API also refuses.
func checkSegments(name string) error {
	for _, seg := range strings.Split(name, "/") {
		if strings.Contains(seg, "**") && seg != "**" {
			return fmt.Errorf("** stands for whole path segments")
		}
	}
	return nil
}

// nameRegexp turns a normalized name pattern into an anchored expression:
// a ** segment is one or more segments, * stays within a segment.
func nameRegexp(name string) *regexp.Regexp {
	segs := strings.Split(name, "/")
	var b strings.Builder
	b.WriteString("^")
	for i, seg := range segs {
		if i > 0 {
			b.WriteString("/")
		}
		if seg == "**" {
			b.WriteString(`[^/]+(?:/[^/]+)*`)
			continue
		}
		b.WriteString(strings.ReplaceAll(regexp.QuoteMeta(seg), `\*`, `[^/]*`))
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func globRegexp(glob string) *regexp.Regexp {
	return regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(glob), `\*`, `.*`) + "$")
}

// MatchesTag reports whether the pattern selects this tag.
func (p *Pattern) MatchesTag(r Ref) bool {
	return p.kind == byName && p.name.MatchString(r.Name) && (p.tag == nil || p.tag.MatchString(r.Tag))
}

// MatchesID reports whether the pattern selects the image with this ID.
func (p *Pattern) MatchesID(id string) bool {
	return p.kind == byID && strings.HasPrefix(id, p.idPrefix)
}

// MatchesDigest reports whether the pattern selects an image by this repo
// digest (normalized name and digest).
func (p *Pattern) MatchesDigest(name, digest string) bool {
	switch p.kind {
	case byDigest:
		return p.digestName == name && p.digest == digest
	case byName:
		// A tagless wildcard pattern selects repositories, digests included.
		return p.wildcard && p.tag == nil && p.name.MatchString(name)
	}
	return false
}

// Set is a compiled images or exclude list.
type Set []*Pattern

// CompileSet compiles every entry; the error names the first bad one.
func CompileSet(raws []string) (Set, error) {
	set := make(Set, 0, len(raws))
	for _, raw := range raws {
		p, err := Compile(raw)
		if err != nil {
			return nil, err
		}
		set = append(set, p)
	}
	return set, nil
}

// Image is what matching needs to know of an image.
type Image struct {
	ID          string
	RepoTags    []string // as the runtime lists them
	RepoDigests []string
}

// Selection is what a Set selects of one image.
type Selection struct {
	// Whole is set when the image is selected by ID or digest, or (for a
	// tagless image) by the repository of one of its digests.
	Whole bool
	// Tags are the RepoTags the set selects, as the runtime lists them.
	Tags []string
	// By is the first entry that selected something, for reports.
	By string
}

// Any reports whether anything of the image is selected.
func (s Selection) Any() bool { return s.Whole || len(s.Tags) > 0 }

// Select returns what the set selects of the image.
func (s Set) Select(img Image) Selection {
	var sel Selection
	note := func(p *Pattern) {
		if sel.By == "" {
			sel.By = p.raw
		}
	}
	for _, p := range s {
		if p.MatchesID(img.ID) {
			sel.Whole = true
			note(p)
		}
	}
	for _, d := range img.RepoDigests {
		name, digest, err := ParseDigest(d)
		if err != nil {
			continue
		}
		for _, p := range s {
			// Repository patterns select by digest only images without tags.
			if (p.kind == byDigest || len(img.RepoTags) == 0) && p.MatchesDigest(name, digest) {
				sel.Whole = true
				note(p)
			}
		}
	}
	for _, t := range img.RepoTags {
		ref, err := ParseTag(t)
		if err != nil {
			continue // not a reference the runtime should have listed
		}
		for _, p := range s {
			if p.MatchesTag(ref) {
				sel.Tags = append(sel.Tags, t)
				note(p)
				break
			}
		}
	}
	return sel
}

// NamesAnyDigest reports whether an entry names one of the image's repo
// digests: the digest itself, or its whole repository (a tagless wildcard
// entry, or one whose tag is *), whether the image has tags or not. An
// exclusion uses it: an image any of whose references is excluded stays.
func (s Set) NamesAnyDigest(img Image) bool {
	for _, d := range img.RepoDigests {
		name, digest, err := ParseDigest(d)
		if err != nil {
			continue
		}
		for _, p := range s {
			switch {
			case p.kind == byDigest && p.MatchesDigest(name, digest):
				return true
			case p.kind == byName && p.everyTag && p.name.MatchString(name):
				return true
			}
		}
	}
	return false
}

// MatchTag reports whether any entry of the set selects the tag.
func (s Set) MatchTag(tag string) bool {
	ref, err := ParseTag(tag)
	if err != nil {
		return false
	}
	for _, p := range s {
		if p.MatchesTag(ref) {
			return true
		}
	}
	return false
}
