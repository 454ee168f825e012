package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// Finding 8 of the second safety review (issue 17): deleting the policy,
// suspending it, setting dryRun, or relabelling the node out of its
// selector did not stop a sweep that had begun (measured: the policy
// deleted with 292 of 300 images left, all 300 went in the next 11 s). A
// change now stops the sweep before its next destructive call: only the
// calls under way finish. The report, when there still is one, counts
// exactly what went.
func TestAChangeStopsTheSweep(t *testing.T) {
	const images = 300
	changes := map[string]func(t *testing.T, c client.Client, p *v1alpha1.ImageCleanupPolicy, node string){
		"policy deleted": func(t *testing.T, c client.Client, p *v1alpha1.ImageCleanupPolicy, _ string) {
			if err := c.Delete(context.Background(), p); err != nil {
				t.Error(err)
			}
		},
		"suspended": func(t *testing.T, c client.Client, p *v1alpha1.ImageCleanupPolicy, _ string) {
			patchSpec(t, c, p, func(s *v1alpha1.ImageCleanupPolicySpec) { s.Suspend = true })
		},
		"dry run": func(t *testing.T, c client.Client, p *v1alpha1.ImageCleanupPolicy, _ string) {
			patchSpec(t, c, p, func(s *v1alpha1.ImageCleanupPolicySpec) { s.DryRun = true })
		},
		"node relabelled": func(t *testing.T, c client.Client, _ *v1alpha1.ImageCleanupPolicy, node string) {
			var n corev1.Node
			if err := c.Get(context.Background(), types.NamespacedName{Name: node}, &n); err != nil {
				t.Error(err)
				return
			}
			n.Labels["imagecleanup.test/group"] = "elsewhere"
			if err := c.Update(context.Background(), &n); err != nil {
				t.Error(err)
			}
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			c := apiClient(t)
			node := testenv.UniqueName("node")
			group := testenv.UniqueName("group")
			createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
			f := runtimefake.New()
			old := time.Now().Add(-48 * time.Hour)
			for i := range images {
				id := fmt.Sprintf("sha256:%064x", i+1)
				f.AddImage(runtime.Image{ID: id, RepoTags: []string{fmt.Sprintf("ci.local/app:%d", i)}, Created: old, LastTagTime: old, Size: 1000})
			}
			name := testenv.UniqueName("stop")
			target := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
			var removals atomic.Int64
			var once sync.Once
			f.BeforeCall = func(method, _ string) {
				if method != "RemoveImage" {
					return
				}
				if removals.Add(1) == 20 {
					once.Do(func() { go change(t, c, target, node) })
				}
				time.Sleep(30 * time.Millisecond) // a real runtime's pace
			}
			startAgent(t, node, f)
			p := createPolicy(t, c, name, v1alpha1.ImageCleanupPolicySpec{
				NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
				Images:       []v1alpha1.ImagePattern{"ci.local/**"},
				MinImageAge:  dur("0s"),
				Interval:     dur("1h"),
			})
			// The sweep stops, and nothing more goes for a while.
			var left int
			eventually(t, "the sweep to stop", func() (bool, string) {
				before := remaining(f, images)
				time.Sleep(500 * time.Millisecond)
				left = remaining(f, images)
				return left == before && removals.Load() >= 20, fmt.Sprintf("%d images left", left)
			})
			if left < images/2 {
				t.Fatalf("the sweep went on after the change: %d of %d images left", left, images)
			}
			if name != "suspended" {
				return
			}
			// The report says it stopped, and counts what went.
			eventually(t, "the report to count what went", func() (bool, string) {
				r := getReport(t, c, p.Name, node)
				if r == nil {
					return false, "no report"
				}
				return r.Status.Totals.ImagesRemoved == int64(images-left), fmt.Sprintf("totals %+v, %d went; %s: %s",
					r.Status.Totals, images-left, r.Status.Phase, r.Status.Message)
			})
		})
	}
}

func remaining(f *runtimefake.Runtime, n int) int {
	left := 0
	for i := range n {
		if f.HasImage(fmt.Sprintf("sha256:%064x", i+1)) {
			left++
		}
	}
	return left
}

// patchSpec changes a policy's spec as a user would (a new generation); it
// runs on a goroutine of its own, so it reports with t.Error.
func patchSpec(t *testing.T, c client.Client, p *v1alpha1.ImageCleanupPolicy, change func(*v1alpha1.ImageCleanupPolicySpec)) {
	for range 10 {
		var cur v1alpha1.ImageCleanupPolicy
		if err := c.Get(context.Background(), types.NamespacedName{Name: p.Name}, &cur); err != nil {
			t.Error(err)
			return
		}
		change(&cur.Spec)
		err := c.Update(context.Background(), &cur)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "modified") {
			t.Error(err)
			return
		}
	}
}
