// Package testenv gives tests the real parts they run against: the private
// dockerd started by hack/dockerd.sh (named by TEST_DOCKER_HOST) and envtest's
// API server (KUBEBUILDER_ASSETS), both set up by `make test`.
//
// When a part is missing a test skips with a message saying how to get it,
// unless CI is set: then it fails, so CI can never pass by skipping.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") != "" }

// Unavailable skips the test because a real part is missing, or fails it in CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	t.Skipf("%s; run `make test` to start it", msg)
}
