package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// pulledImages is a node's runtime as the preview walk-through finds it
// (docs/preview.md): three images pulled a while ago, as a kubelet pulls
// (no LastTagTime: only the agent's clock says when they arrived), one of
// them used by a stopped container, one by a running one.
func pulledImages(node string) *runtimefake.Runtime {
	f := runtimefake.New()
	old := time.Now().Add(-48 * time.Hour)
	for i, img := range []struct {
		ref   string
		size  int64
		state string
	}{
		{"preview.local/app:1", 1000, runtime.StateExited},
		{"preview.local/app:2", 2000, runtime.StateRunning},
		{"preview.local/base:1", 500, ""},
	} {
		id := previewImageID(i)
		f.AddImage(runtime.Image{ID: id, RepoTags: []string{img.ref}, Created: old, Size: img.size})
		if img.state != "" {
			f.AddContainer(runtime.Container{ID: strings.Repeat(fmt.Sprint(i+4), 64), Name: fmt.Sprintf("%s-%d", node, i),
				ImageID: id, State: img.state, Created: old, FinishedAt: old})
		}
	}
	return f
}

// twoPulledNodes starts the aggregator and two agents whose runtimes hold
// pulledImages, on nodes of a group of their own; it returns the client,
// the selector of the group and the runtimes by node.
func twoPulledNodes(t *testing.T, prefix string) (client.Client, *v1alpha1.NodeSelector, map[string]*runtimefake.Runtime) {
	t.Helper()
	startAggregator(t)
	c := apiClient(t)
	group := testenv.UniqueName(prefix)
	engines := map[string]*runtimefake.Runtime{}
	for _, n := range []string{testenv.UniqueName("node-a"), testenv.UniqueName("node-b")} {
		createNode(t, c, n, map[string]string{"imagecleanup.test/group": group})
		engines[n] = pulledImages(n)
		startAgent(t, n, engines[n])
	}
	return c, &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}}, engines
}

func previewImageID(i int) string { return "sha256:" + strings.Repeat(fmt.Sprint(i+1), 64) }

// imagesLeft counts the walk-through's images still on the runtime.
func imagesLeft(f *runtimefake.Runtime) int {
	n := 0
	for i := range 3 {
		if f.HasImage(previewImageID(i)) {
			n++
		}
	}
	return n
}

// decisions are a report's counts by reason.
func decisions(r *v1alpha1.ImageCleanupReport) map[string]v1alpha1.DecisionCount {
	out := map[string]v1alpha1.DecisionCount{}
	for _, d := range r.Status.Decisions {
		out[d.Reason] = d
	}
	return out
}

// oneImage: the decision counts one image of the size given.
func oneImage(d v1alpha1.DecisionCount, bytes int64) bool {
	return d.Images == 1 && d.Bytes == bytes
}

// The walk-through of docs/preview.md, on envtest with two nodes: a dry
// run counts, on every node, what would go and what stays and why, with
// sizes; under minImageAge the images the clock holds back are counted with
// the time the first of them becomes eligible; the policy sums what would go
// and `kubectl get icp` shows it with the dry-run flag; enabling removes
// exactly what the preview said.
func TestPreviewBeforeEnabling(t *testing.T) {
	c, group, engines := twoPulledNodes(t, "preview")
	start := time.Now()
	policy := createPolicy(t, c, testenv.UniqueName("preview"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: group,
		Images:       []v1alpha1.ImagePattern{"preview.local/**"},
		Exclude:      []v1alpha1.ImagePattern{"preview.local/base:*"},
		MinImageAge:  dur("1h"),
		DryRun:       true,
		Interval:     dur("1h"),
	})
	current := func(p *v1alpha1.ImageCleanupPolicy, node string) (*v1alpha1.ImageCleanupReport, string) {
		r := getReport(t, c, p.Name, node)
		if r == nil || r.Status.PolicyGeneration != p.Generation {
			return nil, "no report of generation " + fmt.Sprint(p.Generation)
		}
		return r, fmt.Sprintf("%s %+v", r.Status.Phase, r.Status.Decisions)
	}

	// 1. Just installed: the clock met the images at the agent's first
	// sweep, so minImageAge holds back what would otherwise go, and says
	// until when.
	for node := range engines {
		eventually(t, "the first preview of "+node, func() (bool, string) {
			r, saw := current(policy, node)
			if r == nil {
				return false, saw
			}
			d := decisions(r)
			young := d["TooYoung"]
			ok := r.Status.Phase == v1alpha1.PhaseDryRun && len(d) == 3 &&
				oneImage(d["Excluded"], 500) && oneImage(d["RunningContainer"], 2000) && oneImage(young, 1000) &&
				young.EligibleFrom != nil && !young.EligibleFrom.Time.Before(start.Add(time.Hour).Truncate(time.Second)) &&
				young.EligibleFrom.Time.Before(time.Now().Add(time.Hour+time.Second))
			return ok, saw
		})
	}
	eventually(t, "the policy to say nothing would go yet", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		ok, msg := ready(p)
		return ok && p.Status.NodesReported == 2 && p.Status.ImagesWouldRemove == 0, msg
	})

	// 2. Without the clock's hold (minImageAge 0s), still a dry run: what
	// would go, node by node and summed.
	p := updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.MinImageAge = dur("0s") })
	for node := range engines {
		eventually(t, "the second preview of "+node, func() (bool, string) {
			r, saw := current(p, node)
			if r == nil {
				return false, saw
			}
			d := decisions(r)
			return r.Status.Phase == v1alpha1.PhaseDryRun && len(d) == 3 && oneImage(d["WouldRemove"], 1000) &&
				oneImage(d["Excluded"], 500) && oneImage(d["RunningContainer"], 2000), saw
		})
	}
	eventually(t, "the policy to sum what would go", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		ok, msg := ready(p)
		return ok && p.Status.ImagesWouldRemove == 2 && p.Status.BytesWouldReclaim == 2000 && p.Status.ImagesRemoved == 0, msg
	})
	row := policyRow(t, policy.Name)
	if row["DryRun"] != true || row["Would remove"] != float64(2) {
		t.Errorf("kubectl get icp shows %v: want DryRun true and Would remove 2", row)
	}
	for node, f := range engines {
		if imagesLeft(f) != 3 {
			t.Fatalf("the dry run changed %s's engine", node)
		}
	}

	// 3. Enabled: exactly what the preview said goes.
	p = updateSpec(t, c, policy.Name, func(s *v1alpha1.ImageCleanupPolicySpec) { s.DryRun = false })
	for node, f := range engines {
		eventually(t, "the sweep of "+node, func() (bool, string) {
			r, saw := current(p, node)
			if r == nil {
				return false, saw
			}
			d := decisions(r)
			return oneImage(d["Removed"], 1000) && d["WouldRemove"].Images == 0 && imagesLeft(f) == 2 && !f.HasImage(previewImageID(0)), saw
		})
	}
	eventually(t, "the policy to count the removals, and nothing that would go", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		ok, msg := ready(p)
		return ok && p.Status.ImagesRemoved == 2 && p.Status.BytesReclaimed == 2000 && p.Status.ImagesWouldRemove == 0, msg
	})
	if row := policyRow(t, policy.Name); row["DryRun"] == true || row["Would remove"] != float64(0) {
		t.Errorf("kubectl get icp shows %v after enabling", row)
	}
}

// policyRow is the policy's row as `kubectl get icp` prints it (the API
// server's table, its default columns only), by column name.
func policyRow(t *testing.T, name string) map[string]any {
	t.Helper()
	cfg := testenv.APIServer(t)
	cfg.GroupVersion = &v1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	body, err := rc.Get().Resource("imagecleanuppolicies").Name(name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("the policy as a table: %v (%d rows): %s", err, len(table.Rows), body)
	}
	row := map[string]any{}
	for i, col := range table.ColumnDefinitions {
		if col.Priority == 0 {
			row[col.Name] = table.Rows[0].Cells[i]
		}
	}
	return row
}
