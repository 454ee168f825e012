package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/cri"
)

// On every runtime: an image the policy removed and the node pulls again
// is counted returned by the next sweep's report, and by the policy.
func TestAnImagePulledAgainIsCountedReturned(t *testing.T) {
	n := testNode(t)
	ref, id := n.rt.image(t, "e2e.test/returns:1")
	bringBack := n.rt.keep(t, ref)
	n.applyPolicy(t, "e2e-returns", fmt.Sprintf("images: [%q]\nminImageAge: 0s\n", ref))
	report := n.sweptReport(t, "e2e-returns")
	if n.rt.hasImage(t, id) || report.Status.Returned != nil {
		t.Fatalf("after the first sweep: image still there %v, report %+v", n.rt.hasImage(t, id), report.Status)
	}
	if runtimeName() != "docker" {
		// The CRI tells of no image event: the agent sees an image leave at
		// its next listing (every cri.ImagePoll). Back before that, it never
		// left as far as the agent can tell (docs/policy.md, "Returns").
		time.Sleep(cri.ImagePoll + 5*time.Second)
	}
	bringBack()
	if !n.rt.hasImage(t, id) {
		t.Fatal("the image did not come back with the same ID")
	}
	n.kubectlOK(t, "", "patch", "icp", "e2e-returns", "--type=merge", "-p", `{"spec":{"interval":"2h"}}`)
	report = n.sweptReport(t, "e2e-returns")
	if r := report.Status.Returned; r == nil || r.Images != 1 || len(r.Recent) != 1 || !strings.Contains(r.Recent[0], "returns:1 (back after ") {
		t.Fatalf("the report of the sweep after the image came back: %+v", report.Status)
	}
	eventually(t, 2*time.Minute, "the policy to count the return", func() (bool, string) {
		out, err := n.run(nil, "get", "icp", "e2e-returns", "-o", "jsonpath={.status.imagesReturned}")
		return err == nil && strings.TrimSpace(out) == "1", out + fmt.Sprint(err)
	})
}
