package plan

import (
	"fmt"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Options are a policy's decisions in the planner's terms.
type Options struct {
	Images                   match.Set
	Exclude                  match.Set
	Dangling                 bool
	MinImageAge              time.Duration
	KeepStoppedContainers    bool
	MinStoppedAge            time.Duration
	IncludeKubernetesManaged bool
	Force                    bool
	MaxImages                int
	// Protected names images never removed: the agent's own image, and
	// sandbox images given by flag (a CRI shim's --pod-infra-container-image).
	Protected match.Set
	// Order is the order of removal (and of maxImagesPerSweep's budget).
	Order v1alpha1.RemovalOrder
	// KeepNewest keeps the N most recently arrived candidates of each
	// repository.
	KeepNewest int
	// UnusedFor, when set, makes only images unused for at least this long
	// candidates (maxUnusedAge, when the disk is not under pressure).
	UnusedFor time.Duration
	// Unfinished are images whose removal by this policy began in an earlier
	// sweep and did not finish: they are selected whole if they lost every
	// reference on the way, since no pattern can name them any more.
	Unfinished map[string]bool
	// PodImages are the images the pods bound to this node name: never
	// removed, whatever else the policy says (includeKubernetesManaged and
	// force included).
	PodImages []PodImage
	// Runtime is what the runtime can do: the rules that depend on it ask
	// here (per-reference untag, forced removal).
	Runtime runtime.Capabilities
}

// OptionsFor reads a (defaulted, valid) policy spec for a runtime that can
// do what caps say. protected are extra references or IDs never to remove.
func OptionsFor(spec *v1alpha1.ImageCleanupPolicySpec, protected []string, caps runtime.Capabilities) (Options, error) {
	images, err := match.CompileSet(patterns(spec.Images))
	if err != nil {
		return Options{}, fmt.Errorf("images: %w", err)
	}
	exclude, err := match.CompileSet(patterns(spec.Exclude))
	if err != nil {
		return Options{}, fmt.Errorf("exclude: %w", err)
	}
	prot, err := match.CompileSet(protected)
	if err != nil {
		return Options{}, fmt.Errorf("protected images: %w", err)
	}
	return Options{
		Images:                   images,
		Exclude:                  exclude,
		Dangling:                 spec.Dangling,
		MinImageAge:              spec.MinImageAgeDuration(),
		KeepStoppedContainers:    spec.StoppedContainers.Action == v1alpha1.StoppedContainersKeep,
		MinStoppedAge:            spec.MinStoppedAgeDuration(),
		IncludeKubernetesManaged: spec.StoppedContainers.IncludeKubernetesManaged,
		Force:                    spec.Force,
		MaxImages:                int(spec.MaxImagesPerSweep),
		Protected:                prot,
		Order:                    spec.OrderOrDefault(),
		KeepNewest:               int(spec.KeepNewest),
		UnusedFor:                spec.MaxUnusedAgeDuration(),
		Runtime:                  caps,
	}, nil
}

func patterns(in []v1alpha1.ImagePattern) []string {
	out := make([]string, len(in))
	for i, p := range in {
		out[i] = string(p)
	}
	return out
}
