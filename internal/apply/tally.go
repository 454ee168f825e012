package apply

import (
	"slices"
	"strings"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// Tally is how many of a sweep's images got one decision, and their size.
type Tally struct {
	// Reason is Removed, WouldRemove (a dry run), RemovalFailed, or the
	// reason the images stayed.
	Reason string `json:"reason"`
	Images int    `json:"images"`
	// Bytes: what the removals freed (an untagged reference frees nothing),
	// or the sizes of the images kept.
	Bytes int64 `json:"bytes"`
	// EligibleFrom is the earliest EligibleAt of the images (TooYoung,
	// RecentlyUsed): when the image clock first lets one of them go.
	EligibleFrom time.Time `json:"eligibleFrom,omitzero"`
}

// Tallies counts the result by decision, sorted by reason: nothing is left
// out, where a report's lists stop at a few examples.
func (r *Result) Tallies() []Tally {
	by := map[string]*Tally{}
	add := func(reason string, bytes int64, eligible time.Time) {
		t := by[reason]
		if t == nil {
			t = &Tally{Reason: reason}
			by[reason] = t
		}
		t.Images++
		t.Bytes += bytes
		if !eligible.IsZero() && (t.EligibleFrom.IsZero() || eligible.Before(t.EligibleFrom)) {
			t.EligibleFrom = eligible
		}
	}
	removed := v1alpha1.DecisionRemoved
	if r.DryRun {
		removed = v1alpha1.DecisionWouldRemove
	}
	for _, ri := range r.RemovedImages {
		add(removed, ri.Bytes, time.Time{})
	}
	for range r.Failed {
		add(v1alpha1.DecisionRemovalFailed, 0, time.Time{})
	}
	for _, d := range slices.Concat(r.Blocked, r.Skipped) {
		add(string(d.Reason), d.Size, d.EligibleAt)
	}
	out := make([]Tally, 0, len(by))
	for _, t := range by {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Tally) int { return strings.Compare(a.Reason, b.Reason) })
	return out
}
