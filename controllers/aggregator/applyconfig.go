package aggregator

import (
	"github.com/imagecleanup/image-cleanup-operator/internal/ssa"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	ac "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
)

// policyStatusApplyConfiguration is the aggregator's whole view of a
// policy's status, as server-side apply takes it: the typed status as the
// API stores it (internal/ssa), zeros included, so that what the aggregator
// no longer says (failingNodes) goes.
func policyStatusApplyConfiguration(name string, st *v1alpha1.ImageCleanupPolicyStatus) (*ac.ImageCleanupPolicyApplyConfiguration, error) {
	status, err := ssa.From[ac.ImageCleanupPolicyStatusApplyConfiguration](st)
	if err != nil {
		return nil, err
	}
	return ac.ImageCleanupPolicy(name).WithStatus(status), nil
}
