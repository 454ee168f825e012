package match

import "strings"

// RepositoryOf is a reference's repository, normalized; "" for an ID or
// what does not parse.
func RepositoryOf(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ""
	}
	if name, _, err := ParseDigest(ref); err == nil {
		return name
	}
	if tag, err := ParseTag(ref); err == nil {
		return tag.Name
	}
	return ""
}

// InRepository reports whether one of refs (tags or digest references)
// is in the repository.
func InRepository(refs []string, repo string) bool {
	for _, ref := range refs {
		if RepositoryOf(ref) == repo {
			return true
		}
	}
	return false
}
