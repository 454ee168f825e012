package controllers

import (
	"github.com/imagecleanup/image-cleanup-operator/internal/ssa"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	ac "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
)

// desiredReport is the one description of a node's report of a policy:
// what the report that exists is compared with, and what is applied.
func desiredReport(policy *v1alpha1.ImageCleanupPolicy, node string, st *v1alpha1.ImageCleanupReportStatus) *v1alpha1.ImageCleanupReport {
	return &v1alpha1.ImageCleanupReport{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ImageCleanupReport"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   v1alpha1.ReportName(policy.Name, node),
			Labels: v1alpha1.ReportLabels(policy.Name, node),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "ImageCleanupPolicy",
				Name: policy.Name, UID: policy.UID, Controller: ptrTo(true),
			}},
		},
		Spec:   v1alpha1.ImageCleanupReportSpec{PolicyName: policy.Name, NodeName: node},
		Status: *st,
	}
}

// reportApplyConfiguration is the report as server-side apply takes it:
// the typed report as the API stores it (internal/ssa), so every field the
// agent owns is applied, and one it no longer sets goes.
func reportApplyConfiguration(r *v1alpha1.ImageCleanupReport) (*ac.ImageCleanupReportApplyConfiguration, error) {
	return ssa.From[ac.ImageCleanupReportApplyConfiguration](r)
}
