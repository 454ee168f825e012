package v1alpha1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestReportNamesAreValidAndDistinct(t *testing.T) {
	long := strings.Repeat("n", 253)
	pairs := [][2]string{
		{"ci", "worker-1"},
		{"a.b", "c"}, {"a", "b.c"}, // the same dotted string, two pairs
		{"policy", "ip-10-0-0-1.ec2.internal"},
		{long, long}, {long, "x"}, {"x", long},
		{strings.Repeat("p", 200), strings.Repeat("q", 53)},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		name := ReportName(p[0], p[1])
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("ReportName(%q, %q) = %q: %v", p[0], p[1], name, errs)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("%v and %v share the name %q", p, other, name)
		}
		seen[name] = p
	}
	if got := ReportName("ci", "worker-1"); got != "ci.worker-1" {
		t.Errorf("a short pair should read plainly, got %q", got)
	}
}

func TestLabelValues(t *testing.T) {
	for _, name := range []string{"worker-1", strings.Repeat("n", 63), strings.Repeat("n", 64), strings.Repeat("a.b-", 60)} {
		v := LabelValueFor(name)
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("LabelValueFor(%q) = %q: %v", name, v, errs)
		}
	}
	if LabelValueFor(strings.Repeat("n", 64)) == LabelValueFor(strings.Repeat("n", 65)) {
		t.Error("two long names share a label value")
	}
}
