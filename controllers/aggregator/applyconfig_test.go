package aggregator

import (
	"reflect"
	"testing"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/applycheck"
)

// The status apply configuration says exactly what the API type says, for
// every field, full or empty.
func TestStatusApplyConfigurationMatchesTheType(t *testing.T) {
	var full v1alpha1.ImageCleanupPolicyStatus
	applycheck.Fill(reflect.ValueOf(&full).Elem())
	for _, st := range []v1alpha1.ImageCleanupPolicyStatus{full, {}} {
		applycheck.SameJSON(t, "policy status", st, policyStatusApplyConfiguration("p", &st).Status)
	}
}
