package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// On every runtime: a policy whose schedule has no window open does not
// sweep (its report says when it will, kubectl get icp says Closed), and
// sweeps once its schedule opens a window now.
func TestNoSweepOutsideTheWindow(t *testing.T) {
	n := testNode(t)
	ref, id := n.rt.image(t, "e2e.test/window:1")
	hour := time.Now().UTC().Hour()
	at := func(h int) string { return fmt.Sprintf("%02d:00", (h+24)%24) }
	policy := func(start, end string) string {
		return fmt.Sprintf(`images: [%q]
minImageAge: 0s
schedule:
  timeZone: UTC
  windows:
  - {start: %q, end: %q}
`, ref, start, end)
	}

	n.applyPolicy(t, "e2e-window", policy(at(hour+2), at(hour+3))) // closed for an hour at least
	report := n.sweptReport(t, "e2e-window")
	if report.Status.Phase != v1alpha1.PhaseSkipped || report.Status.Reason != v1alpha1.ReportReasonOutsideWindow ||
		!strings.Contains(report.Status.Message, "the next opens at") {
		t.Fatalf("report outside the window: %+v", report.Status)
	}
	if !n.rt.hasImage(t, id) {
		t.Fatal("the image went outside the window")
	}
	eventually(t, 2*time.Minute, "kubectl get icp to say the window is closed", func() (bool, string) {
		out, err := n.run(nil, "get", "icp", "e2e-window")
		return err == nil && strings.Contains(out, "Closed") && strings.Contains(out, "T"+at(hour+2)), out + fmt.Sprint(err)
	})

	n.kubectlOK(t, "", "patch", "icp", "e2e-window", "--type=merge", "-p",
		fmt.Sprintf(`{"spec":{"schedule":{"windows":[{"start":%q,"end":%q}]}}}`, at(hour-1), at(hour+2))) // open for an hour at least
	report = n.sweptReport(t, "e2e-window")
	if report.Status.Phase != v1alpha1.PhaseSucceeded || n.rt.hasImage(t, id) {
		t.Fatalf("report inside the window: %+v; the image is still there: %v", report.Status, n.rt.hasImage(t, id))
	}
	eventually(t, 2*time.Minute, "kubectl get icp to say the window is open", func() (bool, string) {
		out, err := n.run(nil, "get", "icp", "e2e-window")
		return err == nil && strings.Contains(out, "Open"), out + fmt.Sprint(err)
	})
}
