package main

import (
	"strings"
	"testing"
)

func TestParseRoles(t *testing.T) {
	if f, err := parse([]string{"--node-name", "n1"}); err != nil || f.role != "agent" || f.agent.NodeName != "n1" {
		t.Fatalf("agent: %+v %v", f, err)
	}
	t.Setenv("NODE_NAME", "")
	if _, err := parse(nil); err == nil || !strings.Contains(err.Error(), "no node name") {
		t.Fatalf("an agent without a node name: %v", err)
	}
	if f, err := parse([]string{"--role", "aggregator"}); err != nil || f.aggregator.LeaseNamespace == "" {
		t.Fatalf("aggregator: %+v %v", f, err)
	}
	if _, err := parse([]string{"--role", "leader"}); err == nil {
		t.Fatal("an unknown role was accepted")
	}
}
