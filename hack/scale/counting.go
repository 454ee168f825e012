package main

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
)

// counter counts requests by "VERB resource".
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

type counting struct {
	next http.RoundTripper
	c    *counter
}

// resourceOf names the resource of an API path: /api/v1/<resource>... or
// /apis/<group>/<version>/<resource>..., after namespaces/<namespace>/ for
// a namespaced one.
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) > 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) > 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return path
	}
	if len(parts) > 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	return parts[0]
}

// counterBy sums a counter family by the values of the labels named, joined
// by "/".
func counterBy(families map[string]*dto.MetricFamily, name string, labels ...string) map[string]int {
	out := map[string]int{}
	for _, m := range families[name].GetMetric() {
		values := make([]string, len(labels))
		for _, l := range m.GetLabel() {
			if i := slices.Index(labels, l.GetName()); i >= 0 {
				values[i] = l.GetValue()
			}
		}
		out[strings.Join(values, "/")] += int(m.GetCounter().GetValue())
	}
	return out
}

// listed prints counts by key ("workload-low/queue-full=12"), or says
// "none".
func listed(d map[string]int) string {
	if len(d) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(d))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, d[k])
	}
	return strings.Join(parts, " ")
}

func diff(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (c *counter) add(key string) {
	c.mu.Lock()
	c.n[key]++
	c.mu.Unlock()
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func (t counting) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := req.Method
	if req.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	t.c.add(verb + " " + resourceOf(req.URL.Path))
	return t.next.RoundTrip(req)
}

// WrappedRoundTripper lets client-go reach the transport beneath, to cancel
// a request that timed out (k8s.io/apimachinery's RoundTripperWrapper).
func (t counting) WrappedRoundTripper() http.RoundTripper { return t.next }
