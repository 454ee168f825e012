package e2e

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/controllers/aggregator"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// series is one exported series: a metric name and its labels.
type series struct {
	name   string
	labels map[string]string
}

// exported gathers the series of registries, as a scrape sees them.
func exported(t *testing.T, regs ...*prometheus.Registry) []series {
	t.Helper()
	var out []series
	for _, reg := range regs {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				out = append(out, series{name: f.GetName(), labels: labels})
			}
		}
	}
	return out
}

// alertRule is one alert of the PrometheusRule.
type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// ruleFile is the spec of config/monitoring's PrometheusRule: a Prometheus
// rule file (groups of rules).
func ruleFile(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &rule); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// alertRules are the alerts of a rule file, by name.
func alertRules(t *testing.T, file []byte) map[string]alertRule {
	t.Helper()
	var groups struct {
		Groups []struct {
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(file, &groups); err != nil {
		t.Fatal(err)
	}
	out := map[string]alertRule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r
		}
	}
	return out
}

// alertSeries are what an alert's expression names: the metrics
// (imagecleanup_*) and the labels it groups or matches by (by (...), on
// (...)) or selects ({label="..."}). The rules are written so that these
// patterns find them all.
var (
	metricName  = regexp.MustCompile(`\bimagecleanup_[a-z_]+\b`)
	groupLabels = regexp.MustCompile(`\b(?:by|on)\s*\(([^)]*)\)`)
	selectors   = regexp.MustCompile(`[{,]\s*([a-z_]+)\s*=`)
)

// Issue 21, point 4: every alert of config/monitoring (and the chart) names
// only series that a real agent and a real aggregator export after a sweep,
// with every label it groups, matches or selects by; each has a for, a
// severity and a summary; and promtool, told a story per alert in the label
// sets those series carry, sees each fire when it should and only then.
func TestAlertsFireOnTheSeriesTheProductExports(t *testing.T) {
	aggregatorMetrics := prometheus.NewRegistry()
	startAggregatorWith(t, func(o *aggregator.Options) { o.Metrics = aggregatorMetrics })
	c := apiClient(t)
	group := testenv.UniqueName("monitoring")
	node := testenv.UniqueName("node-monitored")
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
	dataRoot := t.TempDir()
	a := startAgentWith(t, node, runtimefake.WithStaleImage(node), func(o *controllers.AgentOptions) { o.DataRoot = dataRoot })
	policy := createPolicy(t, c, testenv.UniqueName("monitored"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:       []v1alpha1.ImagePattern{"ci.local/**"},
		MinImageAge:  dur("0s"),
		// Every disk is above 1 %: the sweep measures it and exports it.
		DiskUsage: &v1alpha1.DiskUsage{HighPercent: 1, LowPercent: 0},
		Interval:  dur("1h"),
	})
	eventually(t, "the policy's status, from the node's report", func() (bool, string) {
		p := getPolicy(t, c, policy.Name)
		return p.Status.ObservedGeneration == p.Generation && p.Status.NodesReported == 1, fmt.Sprintf("%+v", p.Status)
	})
	// metric name → the label names its series carry
	labelsOf := map[string]map[string]bool{}
	var real []series
	eventually(t, "the series of a sweep", func() (bool, string) {
		clear(labelsOf)
		real = exported(t, a.metrics, aggregatorMetrics)
		for _, s := range real {
			if labelsOf[s.name] == nil {
				labelsOf[s.name] = map[string]bool{}
			}
			for l := range s.labels {
				labelsOf[s.name][l] = true
			}
		}
		return labelsOf["imagecleanup_last_successful_sweep_timestamp_seconds"] != nil && labelsOf["imagecleanup_disk_used_ratio"] != nil &&
			labelsOf["imagecleanup_policy_condition"] != nil, fmt.Sprint(slices.Sorted(maps.Keys(labelsOf)))
	})
	if !labelsOf["imagecleanup_disk_used_ratio"]["node"] {
		t.Fatalf("the agent's series carry no node label: %v", labelsOf["imagecleanup_disk_used_ratio"])
	}

	file := ruleFile(t)
	rules := alertRules(t, file)
	if len(rules) < 5 {
		t.Fatalf("%d alerts in config/monitoring", len(rules))
	}
	for alert, r := range rules {
		if r.For == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
			t.Errorf("%s: for %q, labels %v, annotations %v: want a for, a severity and a summary", alert, r.For, r.Labels, r.Annotations)
		}
		names := metricName.FindAllString(r.Expr, -1)
		if len(names) == 0 {
			t.Errorf("%s names no series: %s", alert, r.Expr)
		}
		var used []string
		for _, m := range groupLabels.FindAllStringSubmatch(r.Expr, -1) {
			for _, l := range strings.Split(m[1], ",") {
				used = append(used, strings.TrimSpace(l))
			}
		}
		for _, m := range selectors.FindAllStringSubmatch(r.Expr, -1) {
			used = append(used, m[1])
		}
		for _, name := range names {
			if _, ok := labelsOf[name]; !ok {
				t.Errorf("%s names %s, which neither the agent nor the aggregator exports", alert, name)
			}
		}
		for _, l := range used {
			if !slices.ContainsFunc(names, func(n string) bool { return labelsOf[n][l] }) {
				t.Errorf("%s groups, matches or selects by %q, which no series it names carries", alert, l)
			}
		}
	}
	checkAlertsWithPromtool(t, file, rules, real)
}
