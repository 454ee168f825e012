package cleanup_test

import (
	"context"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// The harness both runtimes' scenarios share: a policy as the API server
// would admit it, and a sweep that fails the test on any error.

// policySpec selects what patterns say, without age guards, adjusted, and
// admitted as the API server would (defaults filled in).
func policySpec(t *testing.T, adjust func(*v1alpha1.ImageCleanupPolicySpec), patterns ...string) v1alpha1.ImageCleanupPolicySpec {
	t.Helper()
	var p v1alpha1.ImageCleanupPolicy
	for _, pat := range patterns {
		p.Spec.Images = append(p.Spec.Images, v1alpha1.ImagePattern(pat))
	}
	zero := v1alpha1.Duration("0s")
	p.Spec.MinImageAge, p.Spec.StoppedContainers.MinStoppedAge = &zero, &zero
	if adjust != nil {
		adjust(&p.Spec)
	}
	if errs := policyschema.Check(&p); len(errs) > 0 {
		t.Fatalf("test policy is invalid: %v", errs.ToAggregate())
	}
	return p.Spec
}

// sweepOn runs one sweep of spec on rt at now; an error, or a removal that
// failed, fails the test.
func sweepOn(t *testing.T, rt runtime.Runtime, spec v1alpha1.ImageCleanupPolicySpec, now time.Time) cleanup.Outcome {
	t.Helper()
	out, err := cleanup.NewSweep(rt, &spec, now, cleanup.Options{}).Run(context.Background())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if len(out.Result.Failed) > 0 {
		t.Fatalf("sweep failures: %+v", out.Result.Failed)
	}
	return out
}
