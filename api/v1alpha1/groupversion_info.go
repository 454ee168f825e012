// Package v1alpha1 holds the imagecleanup.io/v1alpha1 API: ImageCleanupPolicy,
// what a cluster admin declares, and ImageCleanupReport, what each node's agent
// did about it.
//
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +groupName=imagecleanup.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "imagecleanup.io", Version: "v1alpha1"}

	// SchemeGroupVersion is GroupVersion under the name generated code
	// (the apply configurations) looks for.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ImageCleanupPolicy{}, &ImageCleanupPolicyList{},
		&ImageCleanupReport{}, &ImageCleanupReportList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
