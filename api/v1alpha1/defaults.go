package v1alpha1

// Defaults, the same as the +kubebuilder:default markers.
const (
	DefaultMinImageAge   Duration = "1h"
	DefaultMinStoppedAge Duration = "1h"
	DefaultInterval      Duration = "1h"
)

// Default fills in what the API server would default, for policies that do
// not come through it (the CLI reads them from files).
func (p *ImageCleanupPolicy) Default() {
	spec := &p.Spec
	if spec.MinImageAge == "" {
		spec.MinImageAge = DefaultMinImageAge
	}
	if spec.Interval == "" {
		spec.Interval = DefaultInterval
	}
	if spec.StoppedContainers.Action == "" {
		spec.StoppedContainers.Action = StoppedContainersRemove
	}
	if spec.StoppedContainers.MinStoppedAge == "" {
		spec.StoppedContainers.MinStoppedAge = DefaultMinStoppedAge
	}
}
