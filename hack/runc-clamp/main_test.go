package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClampRaisesOnlyNegativeScores(t *testing.T) {
	cases := map[string]struct {
		config      string
		wantChanged bool
		wantAdj     string
	}{
		"sandbox -998":  {`{"process":{"oomScoreAdj":-998,"user":{"uid":0}},"linux":{"resources":{"memory":{"limit":9007199254740993}}}}`, true, "0"},
		"positive kept": {`{"process":{"oomScoreAdj":1000}}`, false, "1000"},
		"absent":        {`{"process":{}}`, false, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, changed, err := clamp([]byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.wantChanged {
				t.Fatalf("changed = %v, want %v", changed, tc.wantChanged)
			}
			var spec struct {
				Process map[string]json.RawMessage `json:"process"`
				Linux   struct {
					Resources struct {
						Memory struct {
							Limit json.RawMessage `json:"limit"`
						} `json:"memory"`
					} `json:"resources"`
				} `json:"linux"`
			}
			if err := json.Unmarshal(out, &spec); err != nil {
				t.Fatal(err)
			}
			if got := string(spec.Process["oomScoreAdj"]); got != tc.wantAdj {
				t.Errorf("oomScoreAdj = %q, want %q", got, tc.wantAdj)
			}
			// Large integers must survive the round trip exactly.
			if lim := string(spec.Linux.Resources.Memory.Limit); lim != "" && lim != "9007199254740993" {
				t.Errorf("memory limit rewritten to %s", lim)
			}
		})
	}
}

func TestOnlyCreateAndRunTouchTheBundle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	write := func() {
		if err := os.WriteFile(path, []byte(`{"process":{"oomScoreAdj":-998}}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--root", "/r", "start", "id"}, `{"process":{"oomScoreAdj":-998}}`},
		{[]string{"--root", "/r", "--log", "/l", "create", "--bundle", dir, "id"}, `{"process":{"oomScoreAdj":0}}`},
		{[]string{"run", "--bundle=" + dir, "id"}, `{"process":{"oomScoreAdj":0}}`},
	} {
		write()
		if err := clampBundle(tc.args); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != tc.want {
			t.Errorf("%v: config.json = %s, want %s", tc.args, got, tc.want)
		}
	}
}

func TestHugepageLimitsGoOnlyWhereNoControllerTakesThem(t *testing.T) {
	t.Cleanup(func(saved func() bool) func() { return func() { hugetlbAvailable = saved } }(hugetlbAvailable))
	config := `{"linux":{"resources":{"hugepageLimits":[{"pageSize":"2MB","limit":0}],"cpu":{"shares":2}}}}`
	for _, available := range []bool{true, false} {
		hugetlbAvailable = func() bool { return available }
		out, changed, err := clamp([]byte(config))
		if err != nil {
			t.Fatal(err)
		}
		kept := strings.Contains(string(out), "hugepageLimits")
		if changed == available || kept != available || !strings.Contains(string(out), `"shares":2`) {
			t.Errorf("hugetlb available %v: changed %v, config %s", available, changed, out)
		}
	}
}
