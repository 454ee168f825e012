package version

import (
	"strings"
	"testing"
)

func TestStringNamesTheRelease(t *testing.T) {
	defer func(v string) { Version = v }(Version)
	Version = "v1.2.3"
	i := Get()
	if i.Version != "v1.2.3" || !strings.HasPrefix(i.String(), "v1.2.3") || i.GoVersion == "" {
		t.Fatalf("%+v %q", i, i.String())
	}
	i.Revision, i.Modified = "0123456789abcdef", true
	if got := i.String(); !strings.Contains(got, "(0123456789ab, modified)") {
		t.Fatalf("%q", got)
	}
}
