package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// windowed is ciJobs with a schedule whose one window is open from start
// to end (UTC).
func windowed(start, end string) *v1alpha1.ImageCleanupPolicy {
	p := ciJobs()
	p.Spec.Schedule = &v1alpha1.Schedule{Windows: []v1alpha1.Window{{Start: start, End: end}}}
	return p
}

// Outside its windows a new policy is reported Skipped, with when the node
// sweeps, and the runtime is not even listed; the window's opening sweeps.
func TestANewPolicyWaitsForItsWindow(t *testing.T) {
	h := newHarness(t, windowed("22:00", "04:00")) // now is 12:00
	res := h.reconcile(t)
	rep := h.report(t)
	if rep == nil || rep.Status.Phase != v1alpha1.PhaseSkipped || rep.Status.Reason != v1alpha1.ReportReasonOutsideWindow ||
		!strings.Contains(rep.Status.Message, "2026-11-27T22:00:00Z") {
		t.Fatalf("report outside the window: %+v", rep)
	}
	if n := h.rt.Calls()["ListImages"]; n != 0 || res.RequeueAfter != 10*time.Hour {
		t.Fatalf("outside the window: %d listings, back in %s; want none, back at 22:00", n, res.RequeueAfter)
	}
	h.clock.Step(res.RequeueAfter)
	res = h.reconcile(t) // this node's turn in the window
	h.clock.Step(res.RequeueAfter)
	h.reconcile(t)
	if rep := h.report(t); rep.Status.Phase != v1alpha1.PhaseSucceeded || h.rt.HasImage("sha256:"+repeat("a")) {
		t.Fatalf("after the window opened: %+v", rep.Status)
	}
}

// A sweep under way when its window closes stops before its next removal,
// says so, and goes on when the next window opens.
func TestAClosingWindowStopsTheSweep(t *testing.T) {
	h := newHarness(t, windowed("11:00", "13:00")) // now is 12:00
	h.r.RuntimeCalls = 1
	old := now.Add(-48 * time.Hour)
	h.rt.AddImage(runtime.Image{ID: "sha256:" + repeat("b"), RepoTags: []string{"ci.local/app:2"}, LastTagTime: old, Size: 10})
	closes := now.Add(time.Hour)
	h.rt.BeforeCall = func(method, _ string) {
		if method == "RemoveContainer" {
			h.clock.SetTime(closes) // the first removal takes until the window closes
		}
	}
	res := h.reconcile(t)
	rep := h.report(t)
	if rep == nil || rep.Status.Phase != v1alpha1.PhaseSkipped || rep.Status.Reason != v1alpha1.ReportReasonOutsideWindow ||
		rep.Status.ContainersRemoved != 1 || rep.Status.ImagesRemoved != 0 {
		t.Fatalf("report of the sweep the window's close stopped: %+v", rep)
	}
	if !h.rt.HasImage("sha256:"+repeat("a")) || !h.rt.HasImage("sha256:"+repeat("b")) {
		t.Fatal("an image was removed after the window closed")
	}
	h.rt.BeforeCall = nil
	h.clock.Step(res.RequeueAfter)
	lists := h.rt.Calls()["ListImages"]
	res = h.reconcile(t)
	if h.rt.Calls()["ListImages"] != lists || res.RequeueAfter < 21*time.Hour {
		t.Fatalf("after the window closed: listed again, or back in %s; want the next window", res.RequeueAfter)
	}
	for range 3 { // to the window, then this node's turn in it
		h.clock.Step(res.RequeueAfter)
		res = h.reconcile(t)
	}
	if rep := h.report(t); rep.Status.Phase != v1alpha1.PhaseSucceeded || h.rt.HasImage("sha256:"+repeat("a")) || h.rt.HasImage("sha256:"+repeat("b")) {
		t.Fatalf("the next window did not finish the sweep: %+v", rep.Status)
	}
}

// A policy deleted and created again under its name between two
// reconciles (kubectl replace --force) is a new policy: what the agent
// remembered of the old one goes, its removals watched for returns too.
func TestAPolicyReplacedUnderItsNameStartsAfresh(t *testing.T) {
	first := ciJobs()
	first.UID = "uid-1"
	h := newHarness(t, first)
	h.reconcile(t)
	if h.rt.HasImage("sha256:" + repeat("a")) {
		t.Fatal("the first sweep left the image")
	}
	old := ciJobs()
	if err := h.c.Delete(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	again := ciJobs()
	again.UID = "uid-2"
	if err := h.c.Create(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	h.rt.AddImage(runtime.Image{ID: "sha256:" + repeat("a"), RepoTags: []string{"ci.local/app:1"}, Size: 10}) // pulled again
	h.clock.Step(2 * time.Hour)                                                                               // past the interval, within the day
	h.reconcile(t)
	if rep := h.report(t); rep == nil || rep.Status.LastSweepTime == nil || !rep.Status.LastSweepTime.Time.Equal(now.Add(2*time.Hour)) || rep.Status.Returned != nil {
		t.Fatalf("the new policy's report counts the old one's removal as returned: %+v", rep)
	}
}
