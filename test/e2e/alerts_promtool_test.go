package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// A rule test of promtool (`promtool test rules`): series over time, and the
// alerts expected to fire at given times.
type (
	ruleTestFile struct {
		RuleFiles          []string   `json:"rule_files"`
		EvaluationInterval string     `json:"evaluation_interval"`
		Tests              []ruleTest `json:"tests"`
	}
	ruleTest struct {
		Name          string          `json:"name"`
		Interval      string          `json:"interval"`
		InputSeries   []inputSeries   `json:"input_series"`
		AlertRuleTest []alertRuleTest `json:"alert_rule_test"`
	}
	inputSeries struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	alertRuleTest struct {
		EvalTime  string          `json:"eval_time"`
		Alertname string          `json:"alertname"`
		ExpAlerts []expectedAlert `json:"exp_alerts"`
	}
	expectedAlert struct {
		ExpLabels      map[string]string `json:"exp_labels"`
		ExpAnnotations map[string]string `json:"exp_annotations"`
	}
)

// alertCase is one alert's story: the series of a node or policy that should
// set it off and of one that should not, and when it fires.
type alertCase struct {
	alert string
	// series: metric name → values (promtool's notation) for the bad and
	// the good object; the good one differs in its node or policy label.
	bad, good map[string]string
	// goodLabel is the label that tells the good object from the bad one.
	goodLabel string
	// quiet is a time at which the alert must not fire yet, fires one at
	// which it fires for the bad object only.
	quiet, fires string
	// value is the alert's $value when it fires.
	value string
	// pick selects which real series tell the story, where a metric has
	// several and the alert matches them by a label.
	pick map[string]string
}

var alertCases = []alertCase{{
	alert: "ImageCleanupNodeNotCleaning", goodLabel: "node",
	// The bad node's last successful sweep stays at time 0, the good one's
	// follows the clock; both apply the policy hourly.
	bad: map[string]string{
		"imagecleanup_last_successful_sweep_timestamp_seconds": "0x300",
		"imagecleanup_policy_interval_seconds":                 "3600x300",
	},
	good: map[string]string{
		"imagecleanup_last_successful_sweep_timestamp_seconds": "0+60x300",
		"imagecleanup_policy_interval_seconds":                 "3600x300",
	},
	// Three intervals (3 h) and then 15 minutes.
	quiet: "3h5m", fires: "3h20m",
}, {
	alert: "ImageCleanupNodeNeverCleaned", goodLabel: "node",
	bad: map[string]string{
		"imagecleanup_policy_interval_seconds": "3600x300",
	},
	good: map[string]string{
		"imagecleanup_last_successful_sweep_timestamp_seconds": "0+60x300",
		"imagecleanup_policy_interval_seconds":                 "3600x300",
	},
	quiet: "2h50m", fires: "3h5m", value: "3600",
}, {
	alert: "ImageCleanupDiskAboveHighWatermark", goodLabel: "node",
	bad: map[string]string{
		"imagecleanup_disk_used_ratio":           "0.95x120",
		"imagecleanup_disk_high_watermark_ratio": "0.85x120",
	},
	good: map[string]string{
		"imagecleanup_disk_used_ratio":           "0.5x120",
		"imagecleanup_disk_high_watermark_ratio": "0.85x120",
	},
	quiet: "50m", fires: "1h5m", value: "0.95",
	pick: map[string]string{"resource": "space"},
}, {
	alert: "ImageCleanupPolicyStalled", goodLabel: "policy",
	bad:   map[string]string{"imagecleanup_policy_condition": "1x60"},
	good:  map[string]string{"imagecleanup_policy_condition": "0x60"},
	quiet: "10m", fires: "20m", value: "1",
}, {
	alert: "ImageCleanupRemovesWhatNodesNeedAgain", goodLabel: "policy",
	bad:   map[string]string{"imagecleanup_policy_images_returned": "6x120"},
	good:  map[string]string{"imagecleanup_policy_images_returned": "4x120"},
	quiet: "50m", fires: "1h5m", value: "6",
}, {
	alert: "ImageCleanupNodesWithoutAgent", goodLabel: "policy",
	bad:   map[string]string{"imagecleanup_policy_nodes": "2x60"},
	good:  map[string]string{"imagecleanup_policy_nodes": "0x60"},
	quiet: "25m", fires: "35m", value: "2",
}}

// selectorValues finds the label values an alert selects by
// ({type="Stalled"}): the series of its story carry them.
var selectorValues = regexp.MustCompile(`\b(imagecleanup_[a-z_]+)\{([a-z_]+)="([^"]*)"\}`)

// checkAlertsWithPromtool runs promtool over a rule file and its alerts:
// `check rules` (syntax, templates), then `test rules` with a story per
// alert, told in the label sets of real, the series a real agent and
// aggregator exported. An alert must fire for the object whose series
// should set it off, with the labels and the rendered annotations an
// operator will read, and not for the healthy one.
func checkAlertsWithPromtool(t *testing.T, rulesYAML []byte, rules map[string]alertRule, real []series) {
	t.Helper()
	promtool := os.Getenv("PROMTOOL")
	if promtool == "" {
		testenv.Unavailable(t, "PROMTOOL is not set (make test installs promtool into bin/)")
	}
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, rulesYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}

	file := ruleTestFile{RuleFiles: []string{rulesFile}, EvaluationInterval: "1m"}
	covered := map[string]bool{}
	for _, c := range alertCases {
		r, ok := rules[c.alert]
		if !ok {
			t.Errorf("the alert %s is gone from config/monitoring: tell its story again", c.alert)
			continue
		}
		covered[c.alert] = true
		test := ruleTest{Name: c.alert, Interval: "1m"}
		var firing map[string]string
		for _, side := range []string{"bad", "good"} {
			values := c.bad
			if side == "good" {
				values = c.good
			}
			for _, name := range slices.Sorted(maps.Keys(values)) {
				labels := realSeries(t, c.alert, name, r.Expr, c.pick, real)
				if _, ok := labels[c.goodLabel]; !ok {
					t.Fatalf("%s: the real %s has no %s label: %v", c.alert, name, c.goodLabel, labels)
				}
				labels[c.goodLabel] += "-" + side
				if side == "bad" && firing == nil {
					firing = labels
				}
				test.InputSeries = append(test.InputSeries, inputSeries{Series: promSeries(name, labels), Values: values[name]})
			}
		}
		// The alert keeps the labels it groups by, and adds its own.
		expLabels := map[string]string{}
		for _, m := range groupLabels.FindAllStringSubmatch(r.Expr, -1) {
			for _, l := range strings.Split(m[1], ",") {
				l = strings.TrimSpace(l)
				expLabels[l] = firing[l]
			}
		}
		maps.Copy(expLabels, r.Labels)
		test.AlertRuleTest = []alertRuleTest{
			{EvalTime: c.quiet, Alertname: c.alert, ExpAlerts: []expectedAlert{}},
			{EvalTime: c.fires, Alertname: c.alert, ExpAlerts: []expectedAlert{{
				ExpLabels: expLabels, ExpAnnotations: renderAnnotations(t, c.alert, r.Annotations, expLabels, c.value),
			}}},
		}
		file.Tests = append(file.Tests, test)
	}
	for alert := range rules {
		if !covered[alert] {
			t.Errorf("the alert %s has no story in alertCases: add one, so promtool evaluates it", alert)
		}
	}
	testsYAML, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	testsFile := filepath.Join(dir, "tests.yaml")
	if err := os.WriteFile(testsFile, testsYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "test", "rules", testsFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s\nthe tests:\n%s", err, out, testsYAML)
	}
}

// realSeries are the labels of a series the product exported under name,
// one the alert's selectors ({type="Stalled"}) and the story's pick select.
func realSeries(t *testing.T, alert, name, expr string, pick map[string]string, real []series) map[string]string {
	t.Helper()
	selected := maps.Clone(pick)
	if selected == nil {
		selected = map[string]string{}
	}
	for _, m := range selectorValues.FindAllStringSubmatch(expr, -1) {
		if m[1] == name {
			selected[m[2]] = m[3]
		}
	}
	for _, s := range real {
		if s.name == name && hasLabels(s.labels, selected) {
			return maps.Clone(s.labels)
		}
	}
	t.Fatalf("%s: no series of %s with %v was exported, to tell its story with", alert, name, selected)
	return nil
}

// hasLabels: labels has every label of want, with its value.
func hasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// promSeries writes a series in PromQL's notation.
func promSeries(name string, labels map[string]string) string {
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		pairs = append(pairs, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// templateRef is what the alerts' annotations use of Prometheus' templates.
var templateRef = regexp.MustCompile(`\{\{\s*\$(labels\.([a-z_]+)|value)\s*\}\}`)

// renderAnnotations renders the annotations as Prometheus will, for the
// references the alerts use; a reference to a label the alert does not
// carry is an error here (Prometheus would render it empty).
func renderAnnotations(t *testing.T, alert string, annotations, labels map[string]string, value string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, text := range annotations {
		out[k] = templateRef.ReplaceAllStringFunc(text, func(ref string) string {
			m := templateRef.FindStringSubmatch(ref)
			if m[1] == "value" {
				if value == "" {
					t.Errorf("%s: its %s uses $value; say the value in its alertCase", alert, k)
				}
				return value
			}
			v, ok := labels[m[2]]
			if !ok {
				t.Errorf("%s: its %s names the label %q, which the alert does not carry (it renders empty)", alert, k, m[2])
			}
			return v
		})
		if strings.Contains(out[k], "{{") {
			t.Errorf("%s: its %s has a template this test cannot render: %s", alert, k, text)
		}
	}
	return out
}
