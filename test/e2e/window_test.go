package e2e

import (
	"fmt"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// A fleet under a schedule, on the API server: outside the window every
// node reports the policy Skipped (OutsideWindow) and removes nothing, the
// policy is Ready and says Closed and when the window opens (kubectl get
// icp too); once the window is open, the nodes sweep and the policy says
// Open.
func TestAScheduleHoldsTheFleetUntilItsWindow(t *testing.T) {
	c, group, engines := twoPulledNodes(t, "window")
	hour := time.Now().UTC().Hour()
	at := func(h int) string { return fmt.Sprintf("%02d:00", (h+24)%24) }
	opens := time.Now().UTC().Truncate(time.Hour).Add(2 * time.Hour)
	policy := createPolicy(t, c, testenv.UniqueName("window"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: group,
		Images:       []v1alpha1.ImagePattern{"preview.local/**"},
		MinImageAge:  dur("0s"),
		Interval:     dur("1h"),
		Schedule:     &v1alpha1.Schedule{Windows: []v1alpha1.Window{{Start: at(hour + 2), End: at(hour + 3)}}}, // closed for an hour at least
	})
	for node := range engines {
		eventually(t, node+" to report that it waits for the window", func() (bool, string) {
			r := getReport(t, c, policy.Name, node)
			if r == nil || r.Status.PolicyGeneration != policy.Generation {
				return false, "no report of this generation"
			}
			return r.Status.Phase == v1alpha1.PhaseSkipped && r.Status.Reason == v1alpha1.ReportReasonOutsideWindow, fmt.Sprintf("%+v", r.Status)
		})
	}
	eventually(t, "the policy to be Ready, its window Closed", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		ok, msg := ready(p)
		w := p.Status.Window
		return ok && w != nil && w.State == v1alpha1.WindowClosed && w.NextOpen != nil && w.NextOpen.Time.Equal(opens) && w.Closes == nil, msg
	})
	if row := policyRow(t, policy.Name); row["Window"] != "Closed" || row["Next window"] != opens.Format(time.RFC3339) {
		t.Errorf("kubectl get icp shows %v: want Window Closed, Next window %s", row, opens.Format(time.RFC3339))
	}
	for node, f := range engines {
		if imagesLeft(f) != 3 || f.Calls()["RemoveImage"]+f.Calls()["RemoveContainer"] != 0 {
			t.Fatalf("%s removed something outside the window: %v", node, f.Calls())
		}
	}

	p := updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) {
		s.Schedule.Windows[0] = v1alpha1.Window{Start: at(hour - 1), End: at(hour + 2)} // open for an hour at least
	})
	for node, f := range engines {
		eventually(t, "the sweep of "+node+" in its window", func() (bool, string) {
			r := getReport(t, c, p.Name, node)
			if r == nil || r.Status.PolicyGeneration != p.Generation {
				return false, "no report of this generation"
			}
			// The other two go; the running container's image stays, blocked.
			return r.Status.Phase == v1alpha1.PhaseBlocked && r.Status.ImagesRemoved == 2 && imagesLeft(f) == 1, fmt.Sprintf("%+v", r.Status)
		})
	}
	eventually(t, "the policy to say its window is Open", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		ok, msg := ready(p)
		w := p.Status.Window
		return ok && w != nil && w.State == v1alpha1.WindowOpen && w.Closes != nil && w.Closes.Time.Equal(opens), msg
	})
}
