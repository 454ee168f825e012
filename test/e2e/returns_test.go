package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// Churn on the API server: the nodes remove an image, pull it again, and
// the next sweep's report counts it returned (with how long it was gone);
// the policy sums the nodes' returns.
func TestAnImagePulledAgainAfterItsRemovalIsCountedReturned(t *testing.T) {
	c, group, engines := twoPulledNodes(t, "returns")
	policy := createPolicy(t, c, testenv.UniqueName("returns"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector:      group,
		Images:            []v1alpha1.ImagePattern{"preview.local/app:1"},
		MinImageAge:       dur("0s"),
		StoppedContainers: v1alpha1.StoppedContainersPolicy{MinStoppedAge: dur("0s")},
		Interval:          dur("1h"),
	})
	for node, f := range engines {
		eventually(t, "the first sweep of "+node, func() (bool, string) {
			r := getReport(t, c, policy.Name, node)
			return r != nil && r.Status.PolicyGeneration == policy.Generation && !f.HasImage(previewImageID(0)), "not swept"
		})
		if r := getReport(t, c, policy.Name, node); r.Status.Returned != nil {
			t.Fatalf("%s: a return before anything came back: %+v", node, r.Status.Returned)
		}
		// The kubelet pulls it again for a pod.
		f.AddImage(runtime.Image{ID: previewImageID(0), RepoTags: []string{"preview.local/app:1"}, Created: time.Now().Add(-48 * time.Hour), Size: 1000})
	}
	p := updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.Interval = dur("2h") })
	for node := range engines {
		eventually(t, "the next report of "+node+" to count the return", func() (bool, string) {
			r := getReport(t, c, p.Name, node)
			if r == nil || r.Status.PolicyGeneration != p.Generation {
				return false, "no report of this generation"
			}
			ret := r.Status.Returned
			return ret != nil && ret.Images == 1 && ret.Bytes == 1000 && len(ret.Recent) == 1 &&
				strings.HasPrefix(ret.Recent[0], "preview.local/app:1 (back after "), fmt.Sprintf("%+v", ret)
		})
	}
	eventually(t, "the policy to sum the returns", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		ok, msg := ready(p)
		return ok && p.Status.ImagesReturned == 2 && p.Status.BytesReturned == 2000, msg
	})
}
