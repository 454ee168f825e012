package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// Issue 21, point 6b: exclude belongs to its policy. On a node whose agent
// protects nothing more, a policy that does not exclude an image removes it,
// whatever another policy excludes; on a node whose agent protects it
// (--protect-images, the chart's agent.extraProtectedImages) every policy
// leaves it, and says so (Protected).
func TestProtectedImagesHoldForEveryPolicy(t *testing.T) {
	c := apiClient(t)
	group := testenv.UniqueName("protect")
	base, app := "sha256:"+strings.Repeat("b", 64), "sha256:"+strings.Repeat("a", 64)
	runtimeOf := func() *runtimefake.Runtime {
		f := runtimefake.New()
		old := time.Now().Add(-48 * time.Hour)
		f.AddImage(runtime.Image{ID: base, RepoTags: []string{"protect.local/base:1"}, Created: old, LastTagTime: old, Size: 10})
		f.AddImage(runtime.Image{ID: app, RepoTags: []string{"protect.local/app:1"}, Created: old, LastTagTime: old, Size: 20})
		return f
	}
	plain, guarded := testenv.UniqueName("node-plain"), testenv.UniqueName("node-guarded")
	engines := map[string]*runtimefake.Runtime{plain: runtimeOf(), guarded: runtimeOf()}
	for node, f := range engines {
		createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
		startAgentWith(t, node, f, func(o *controllers.AgentOptions) {
			if node == guarded {
				o.ProtectedImages = append(o.ProtectedImages, "protect.local/base:*")
			}
		})
	}
	selector := &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}}
	careful := createPolicy(t, c, testenv.UniqueName("careful"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: selector, Images: []v1alpha1.ImagePattern{"protect.local/**"},
		Exclude: []v1alpha1.ImagePattern{"protect.local/base:*"}, MinImageAge: dur("0s"), Interval: dur("1h"),
	})
	broad := createPolicy(t, c, testenv.UniqueName("broad"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: selector, Images: []v1alpha1.ImagePattern{"protect.local/**"}, MinImageAge: dur("0s"), Interval: dur("1h"),
	})
	for _, p := range []*v1alpha1.ImageCleanupPolicy{careful, broad} {
		for node := range engines {
			eventually(t, fmt.Sprintf("the report of %s on %s", p.Name, node), func() (bool, string) {
				r := getReport(t, c, p.Name, node)
				if r == nil || r.Status.PolicyGeneration != p.Generation {
					return false, "no report yet"
				}
				return true, ""
			})
		}
	}
	eventually(t, "app:1 to go from both nodes", func() (bool, string) {
		return !engines[plain].HasImage(app) && !engines[guarded].HasImage(app), "still there"
	})
	if engines[plain].HasImage(base) {
		t.Error("on the node without protection, the broad policy kept base:1 that only the careful one excludes: exclude is per policy")
	}
	if !engines[guarded].HasImage(base) {
		t.Fatal("the agent's protected image base:1 went")
	}
	eventually(t, "the broad policy's report on the guarded node to say Protected", func() (bool, string) {
		r := getReport(t, c, broad.Name, guarded)
		if r == nil {
			return false, "no report"
		}
		return decisions(r)["Protected"].Images == 1, fmt.Sprintf("%+v", r.Status.Decisions)
	})
}
