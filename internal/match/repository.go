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

// InRepository reports whether one of the references (tags or digest
// references, in any of the lists) is in the repository.
func InRepository(repo string, refLists ...[]string) bool {
	for _, refs := range refLists {
		for _, ref := range refs {
			if RepositoryOf(ref) == repo {
				return true
			}
		}
	}
	return false
}
