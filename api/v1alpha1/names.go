package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Names the API promises: how reports are named and labelled, so that
// clients (the CLI, tests, dashboards) find a node's report without a list.

const maxNameLength = 253 // a DNS subdomain, as object names are

// ReportName names the report of (policy, node): "<policy>.<node>" when
// neither has a dot, else (or when too long) the two, cut short, and a hash
// of both. Plain names have exactly one dot and hashed ones at least two, so
// no two pairs share a name.
func ReportName(policy, node string) string {
	if !strings.Contains(policy, ".") && !strings.Contains(node, ".") && len(policy)+1+len(node) <= maxNameLength {
		return policy + "." + node
	}
	h := shortHash(policy + "/" + node)
	return strings.TrimRight(cut(policy, 100), ".-") + "." + strings.TrimRight(cut(node, 100), ".-") + "." + h
}

// LabelValueFor fits a name into a label value (at most 63 characters): long
// names are cut and end in a hash of the whole.
func LabelValueFor(name string) string {
	if len(name) <= 63 {
		return name
	}
	return strings.TrimRight(cut(name, 54), ".-_") + "-" + shortHash(name)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:8]
}

// ReportLabels are the labels every report carries.
func ReportLabels(policy, node string) map[string]string {
	return map[string]string{LabelPolicy: LabelValueFor(policy), LabelNode: LabelValueFor(node)}
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
