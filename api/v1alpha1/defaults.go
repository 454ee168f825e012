package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The +kubebuilder:default markers' values, for the accessors below when a
// policy did not come through the API server or internal/policyschema
// (which fill them in from the CRD); a test holds them to the CRD.
const (
	DefaultMinImageAge   Duration = "1h"
	DefaultMinStoppedAge Duration = "1h"
	DefaultInterval      Duration = "1h"
)

// durationOr parses d, or returns the default when d is absent or invalid
// (invalid values never get past validation).
func durationOr(d *Duration, def Duration) time.Duration {
	if d != nil {
		if v, err := d.ParseDuration(); err == nil {
			return v
		}
	}
	v, _ := def.ParseDuration()
	return v
}

// MinImageAgeDuration is spec.minImageAge as a time.Duration.
func (s *ImageCleanupPolicySpec) MinImageAgeDuration() time.Duration {
	return durationOr(s.MinImageAge, DefaultMinImageAge)
}

// IntervalDuration is spec.interval as a time.Duration.
func (s *ImageCleanupPolicySpec) IntervalDuration() time.Duration {
	return durationOr(s.Interval, DefaultInterval)
}

// OrderOrDefault is spec.order, defaulted: LeastRecentlyUsed with a disk
// watermark, OldestFirst without (a CRD default cannot depend on another
// field).
func (s *ImageCleanupPolicySpec) OrderOrDefault() RemovalOrder {
	switch {
	case s.Order != "":
		return s.Order
	case s.DiskUsage != nil:
		return OrderLeastRecentlyUsed
	}
	return OrderOldestFirst
}

// MaxUnusedAgeDuration is spec.maxUnusedAge as a time.Duration; 0 when unset.
func (s *ImageCleanupPolicySpec) MaxUnusedAgeDuration() time.Duration {
	if s.MaxUnusedAge == nil {
		return 0
	}
	d, _ := s.MaxUnusedAge.ParseDuration()
	return d
}

// RolloutWindowDuration is spec.rollout.window as a time.Duration; 0 when unset.
func (s *ImageCleanupPolicySpec) RolloutWindowDuration() time.Duration {
	if s.Rollout == nil || s.Rollout.Window == nil {
		return 0
	}
	d, _ := s.Rollout.Window.ParseDuration()
	return d
}

// MinStoppedAgeDuration is spec.stoppedContainers.minStoppedAge as a time.Duration.
func (s *ImageCleanupPolicySpec) MinStoppedAgeDuration() time.Duration {
	return durationOr(s.StoppedContainers.MinStoppedAge, DefaultMinStoppedAge)
}

// LabelSelector converts the selector to its metav1 form; nil selects everything.
func (s *NodeSelector) LabelSelector() *metav1.LabelSelector {
	if s == nil {
		return &metav1.LabelSelector{}
	}
	out := &metav1.LabelSelector{}
	if len(s.MatchLabels) > 0 {
		out.MatchLabels = make(map[string]string, len(s.MatchLabels))
		for k, v := range s.MatchLabels {
			out.MatchLabels[k] = string(v)
		}
	}
	for _, e := range s.MatchExpressions {
		req := metav1.LabelSelectorRequirement{Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator)}
		for _, v := range e.Values {
			req.Values = append(req.Values, string(v))
		}
		out.MatchExpressions = append(out.MatchExpressions, req)
	}
	return out
}

// Selector parses the node selector; its error names what is wrong, such as
// an invalid label key in matchLabels (the one thing admission cannot check).
func (s *NodeSelector) Selector() (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s.LabelSelector())
}
