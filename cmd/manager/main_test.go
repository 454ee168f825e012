package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseRoles(t *testing.T) {
	if f, err := parse([]string{"--node-name", "n1"}, io.Discard); err != nil || f.role != "agent" || f.agent.NodeName != "n1" {
		t.Fatalf("agent: %+v %v", f, err)
	}
	t.Setenv("NODE_NAME", "")
	if _, err := parse(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "no node name") {
		t.Fatalf("an agent without a node name: %v", err)
	}
	if f, err := parse([]string{"--role", "aggregator"}, io.Discard); err != nil || f.aggregator.LeaseNamespace == "" {
		t.Fatalf("aggregator: %+v %v", f, err)
	}
	if _, err := parse([]string{"--role", "leader"}, io.Discard); err == nil {
		t.Fatal("an unknown role was accepted")
	}
	if _, err := parse([]string{"--node-name", "n1", "--max-runtime-calls", "4", "--max-engine-calls", "16"}, io.Discard); err == nil {
		t.Fatal("both names of the calls-in-flight flag, with different values, were accepted")
	}
	if _, err := parse([]string{"--node-name", "n1", "--call-timeout", "-1s"}, io.Discard); err == nil {
		t.Fatal("a negative --call-timeout was accepted")
	}
	// --max-engine-calls is the deprecated name of --max-runtime-calls.
	for _, name := range []string{"--max-runtime-calls", "--max-engine-calls"} {
		if f, err := parse([]string{"--node-name", "n1", name, "16"}, io.Discard); err != nil || f.agent.RuntimeCalls != 16 {
			t.Fatalf("%s 16: %+v %v", name, f, err)
		}
		for _, n := range []string{"0", "65"} {
			if _, err := parse([]string{"--node-name", "n1", name, n}, io.Discard); err == nil || !strings.Contains(err.Error(), "--max-runtime-calls must be 1 to 64") {
				t.Fatalf("%s %s: %v", name, n, err)
			}
		}
	}
}

// TestHelpAndVersion: --help and --version answer on stdout and succeed
// (main exits 0 on flag.ErrHelp), without a node name or a cluster.
func TestHelpAndVersion(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	var out bytes.Buffer
	if err := run([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-role") {
		t.Fatalf("--help: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run([]string{"--version"}, &out); err != nil || !strings.HasPrefix(out.String(), "manager v") {
		t.Fatalf("--version: %v %q", err, out.String())
	}
}
