package controllers

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

func TestSweepStatus(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	prev := &v1alpha1.ImageCleanupReportStatus{Totals: v1alpha1.SweepTotals{Sweeps: 4, ImagesRemoved: 10}}
	out := &cleanup.Outcome{Result: apply.Result{
		RemovedImages:     []apply.RemovedImage{{Image: "app:1", Deleted: true, Bytes: 50}, {Image: "app:2"}},
		RemovedContainers: []plan.ContainerRef{{ID: "0123456789abcdef", Name: "job"}},
		Blocked:           []plan.Decision{{Image: "db:1", Reason: plan.RunningContainer}},
		BytesReclaimed:    50,
	}}
	st := sweepStatus(prev, 3, start, 1500*time.Millisecond, judge(out, nil, false), out)
	if st.Phase != v1alpha1.PhaseBlocked || st.ImagesRemoved != 2 || st.ContainersRemoved != 1 || st.BlockedCount != 1 ||
		st.Totals.Sweeps != 5 || st.Totals.ImagesRemoved != 12 || st.Totals.BytesReclaimed != 50 || st.PolicyGeneration != 3 ||
		st.LastSweepDuration != "1.5s" ||
		!slices.Equal(st.RemovedImages, []string{"app:1 (deleted)", "app:2 (untagged)"}) ||
		!slices.Equal(st.RemovedContainers, []string{"job (0123456789ab)"}) {
		t.Fatalf("status %+v", st)
	}

	want := []v1alpha1.DecisionCount{{Reason: "Removed", Images: 2, Bytes: 50}, {Reason: "RunningContainer", Images: 1}}
	if !slices.Equal(st.Decisions, want) {
		t.Fatalf("decisions %+v, want %+v", st.Decisions, want)
	}

	dry := sweepStatus(prev, 3, start, time.Second, judge(out, nil, true), out)
	if dry.Phase != v1alpha1.PhaseDryRun || dry.Totals.ImagesRemoved != 10 {
		t.Fatalf("a dry run counts in totals: %+v", dry)
	}

	err := errors.New("list images: cannot connect")
	failed := sweepStatus(prev, 3, start, time.Second, judge(&cleanup.Outcome{}, err, false), &cleanup.Outcome{})
	if failed.Phase != v1alpha1.PhaseFailed || failed.Message != "list images: cannot connect" || failed.Totals.Sweeps != 5 {
		t.Fatalf("failed %+v", failed)
	}

	many := &cleanup.Outcome{}
	for range 30 {
		many.Result.Blocked = append(many.Result.Blocked, plan.Decision{Image: "x", Reason: plan.Conflict})
		many.Result.Failed = append(many.Result.Failed, apply.Failure{Image: "y", Error: "boom"})
	}
	bounded := sweepStatus(prev, 1, start, time.Second, judge(many, nil, false), many)
	if len(bounded.Blocked) != v1alpha1.MaxReportedItems || bounded.BlockedCount != 30 || len(bounded.Errors) != v1alpha1.MaxReportedErrors || bounded.Phase != v1alpha1.PhaseFailed {
		t.Fatalf("bounds: %d blocked listed of %d, %d errors", len(bounded.Blocked), bounded.BlockedCount, len(bounded.Errors))
	}
	// The lists stop; the counts do not.
	if want := []v1alpha1.DecisionCount{{Reason: "Conflict", Images: 30}, {Reason: "RemovalFailed", Images: 30}}; !slices.Equal(bounded.Decisions, want) {
		t.Fatalf("decisions %+v, want %+v", bounded.Decisions, want)
	}
}

// A report keeps times to the second: eligibleFrom is rounded up, so it
// never says an image may go before the clock lets it.
func TestDecisionEligibleFromRoundsUp(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for eligible, want := range map[time.Time]time.Time{
		at:                                    at,
		at.Add(time.Millisecond):              at.Add(time.Second),
		at.Add(time.Second - time.Nanosecond): at.Add(time.Second),
	} {
		d := decisionCount(&apply.Tally{Reason: "TooYoung", Images: 1, EligibleFrom: eligible})
		if !d.EligibleFrom.Time.Equal(want) {
			t.Errorf("eligible at %s: eligibleFrom %s, want %s", eligible.Format(time.RFC3339Nano), d.EligibleFrom.Time, want)
		}
	}
	if d := decisionCount(&apply.Tally{Reason: "Excluded", Images: 1}); d.EligibleFrom != nil {
		t.Errorf("an Excluded count has eligibleFrom %v", d.EligibleFrom)
	}
}

// Second review, finding 8: a report whose disk was not measured after the
// sweep says so, and which folder it measured.
func TestSweepStatusSaysTheDiskWasNotMeasuredAfter(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	before := disk.Usage{UsedPercent: 91, Path: "/var/lib/containerd"}
	out := &cleanup.Outcome{Disk: &cleanup.DiskReport{Before: before, After: before, Pressure: "space",
		AfterErr: errors.New("statfs /var/lib/containerd: input/output error")}}
	st := sweepStatus(&v1alpha1.ImageCleanupReportStatus{}, 1, start, time.Second, judge(out, nil, false), out)
	if !strings.Contains(st.Message, "could not be measured after the sweep") || !strings.Contains(st.Message, "input/output error") {
		t.Errorf("message %q does not say the disk went unmeasured", st.Message)
	}
	if st.Disk == nil || st.Disk.Path != "/var/lib/containerd" || st.Disk.UsedPercentBefore != 91 {
		t.Errorf("disk %+v", st.Disk)
	}
}

// A field the node's runtime cannot honour is in the report's message.
func TestSweepStatusSaysWhatTheRuntimeCannotHonour(t *testing.T) {
	out := &cleanup.Outcome{Unhonoured: []string{"force is not honoured: …"}}
	st := sweepStatus(&v1alpha1.ImageCleanupReportStatus{}, 1, time.Now(), time.Second, judge(out, nil, false), out)
	if st.Phase != v1alpha1.PhaseSucceeded || st.Message != "force is not honoured: …" {
		t.Errorf("phase %s, message %q", st.Phase, st.Message)
	}
}

// A report says through which sweep it counted what earlier sweeps' records
// hold: a sweep that listed the runtime moves countedThrough to its mark;
// one that could not keeps it where it was (the records it never read are
// not settled by its lastSweepTime), and says none if none did.
func TestCountedThroughMovesOnlyWithASweepThatCounted(t *testing.T) {
	first, second := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	counted := sweepStatus(&v1alpha1.ImageCleanupReportStatus{}, 1, first, time.Second, verdict{phase: v1alpha1.PhaseSucceeded}, &cleanup.Outcome{Harvested: true, Mark: first})
	if counted.CountedThrough == nil || !counted.CountedThrough.Time.Equal(first) {
		t.Fatalf("after a sweep that counted: countedThrough %v, want %s", counted.CountedThrough, first)
	}
	down := sweepStatus(&counted, 1, second, time.Second, judge(&cleanup.Outcome{}, fmt.Errorf("%w: refused", cleanup.ErrRuntime), false), &cleanup.Outcome{})
	if !down.LastSweepTime.Time.Equal(second) || down.CountedThrough == nil || !down.CountedThrough.Time.Equal(first) {
		t.Fatalf("after a sweep that could not list: lastSweepTime %v, countedThrough %v, want %s and %s", down.LastSweepTime, down.CountedThrough, second, first)
	}
	never := sweepStatus(&v1alpha1.ImageCleanupReportStatus{}, 1, first, time.Second,
		judge(&cleanup.Outcome{}, fmt.Errorf("%w: refused", cleanup.ErrRuntime), false), &cleanup.Outcome{})
	if never.CountedThrough != nil {
		t.Fatalf("a first sweep that could not list says it counted through %v", never.CountedThrough)
	}
}
