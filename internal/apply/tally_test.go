package apply

import (
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

func TestTallies(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	r := Result{
		RemovedImages: []RemovedImage{{Image: "a:1", Deleted: true, Bytes: 100}, {Image: "a:2"}, {Image: "b:1", Deleted: true, Bytes: 50}},
		Failed:        []Failure{{Image: "c:1", Error: "boom"}},
		Blocked:       []plan.Decision{{Image: "d:1", Reason: plan.RunningContainer, Size: 7}, {Image: "d:2", Reason: plan.RunningContainer, Size: 3}},
		Skipped: []plan.Decision{
			{Image: "e:1", Reason: plan.TooYoung, Size: 10, EligibleAt: at.Add(2 * time.Hour)},
			{Image: "e:2", Reason: plan.TooYoung, Size: 20, EligibleAt: at.Add(time.Hour)},
			{Image: "f:1", Reason: plan.Excluded, Size: 5},
		},
	}
	want := []Tally{
		{Reason: "Excluded", Images: 1, Bytes: 5},
		{Reason: "RemovalFailed", Images: 1},
		{Reason: "Removed", Images: 3, Bytes: 150},
		{Reason: "RunningContainer", Images: 2, Bytes: 10},
		{Reason: "TooYoung", Images: 2, Bytes: 30, EligibleFrom: at.Add(time.Hour)},
	}
	got := r.Tallies()
	if len(got) != len(want) {
		t.Fatalf("tallies %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("tally %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	r.DryRun = true
	if got := r.Tallies(); got[len(got)-1].Reason != "WouldRemove" || got[len(got)-1].Images != 3 {
		t.Errorf("a dry run's removals: %+v, want WouldRemove last", got)
	}
}
