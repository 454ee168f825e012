package main

import "testing"

// The harness counts the agents' requests by verb and resource.
func TestResourceOf(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/nodes/node-1":                                         "nodes",
		"/api/v1/pods":                                                 "pods",
		"/api/v1/namespaces/default/events":                            "events",
		"/apis/events.k8s.io/v1/namespaces/default/events":             "events",
		"/api/v1/namespaces/image-cleanup-system":                      "namespaces",
		"/apis/coordination.k8s.io/v1/namespaces/ns/leases/aggregator": "leases",
		"/apis/imagecleanup.io/v1alpha1/imagecleanupreports/p.node-1":  "imagecleanupreports",
		"/apis/imagecleanup.io/v1alpha1/imagecleanuppolicies/p/status": "imagecleanuppolicies",
		"/metrics": "/metrics",
	} {
		if got := resourceOf(path); got != want {
			t.Errorf("resourceOf(%q) = %q, want %q", path, got, want)
		}
	}
}
