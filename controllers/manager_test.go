package controllers

import (
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// /readyz fails while the runtime does not answer.
func TestRuntimeReadiness(t *testing.T) {
	f := runtimefake.New()
	check := runtimeCheck(f)
	req := httptest.NewRequest("GET", "/readyz", nil)
	if err := check(req); err != nil {
		t.Fatalf("engine up: %v", err)
	}
	f.SetDown(true)
	if err := check(req); err == nil || !strings.Contains(err.Error(), "container runtime") {
		t.Fatalf("engine down: %v", err)
	}
}

// The agent refuses to start without its node's name, or with a protected
// image it cannot read; it says why.
func TestNewAgentRefusesBadOptions(t *testing.T) {
	cfg := &rest.Config{Host: "http://127.0.0.1:1"}
	for name, tc := range map[string]struct {
		opts AgentOptions
		want string
	}{
		"no node name":        {AgentOptions{Runtime: runtimefake.New()}, "no node name: set NODE_NAME"},
		"no runtime":          {AgentOptions{NodeName: "n"}, "no container runtime"},
		"bad protected image": {AgentOptions{NodeName: "n", Runtime: runtimefake.New(), ProtectedImages: []string{"Not An Image"}}, "protected images"},
	} {
		if _, err := NewAgent(cfg, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, tc.want)
		}
	}
}
