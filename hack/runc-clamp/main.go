// Command runc-clamp stands in for runc as the test node's container runtime
// when the machine lacks CAP_SYS_RESOURCE (this sandbox does): cri-dockerd
// gives every pod sandbox oom_score_adj -998, which only that capability may
// set, so runc fails every pod ("can't get final child's PID from pipe").
// Before "create" or "run" it raises a negative process.oomScoreAdj in the
// bundle's config.json to 0, and, on a machine whose cgroups v1 have no
// hugetlb controller (this sandbox), drops linux.resources.hugepageLimits
// (CRI-O sets them for every container of the kubelet's, and runc then
// fails: "cannot set hugetlb limit"; containerd leaves them out there), then
// hands every call, unchanged, to the real runc (RUNC_CLAMP_RUNC, default
// /usr/sbin/runc). hack/cluster.sh and hack/crio.sh use it only when the
// capability is missing.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

func main() {
	if err := clampBundle(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "runc-clamp:", err)
		os.Exit(1)
	}
	runc := os.Getenv("RUNC_CLAMP_RUNC")
	if runc == "" {
		runc = "/usr/sbin/runc"
	}
	args := append([]string{runc}, os.Args[1:]...)
	if err := syscall.Exec(runc, args, os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, "runc-clamp: exec", runc+":", err)
		os.Exit(1)
	}
}

// globalWithValue are runc's global flags that take a separate value.
var globalWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

// clampBundle edits the bundle of a create or run call; other calls pass.
func clampBundle(args []string) error {
	command, bundle := "", "."
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case command == "" && globalWithValue[a]:
			i++
		case (a == "--bundle" || a == "-b") && i+1 < len(args):
			bundle = args[i+1]
			i++
		case len(a) > 9 && a[:9] == "--bundle=":
			bundle = a[9:]
		case command == "" && len(a) > 0 && a[0] != '-':
			command = a
		}
	}
	if command != "create" && command != "run" {
		return nil
	}
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	clamped, changed, err := clamp(data)
	if err != nil || !changed {
		return err
	}
	return os.WriteFile(path, clamped, 0o600)
}

// clamp raises process.oomScoreAdj to 0 when it is negative, and drops
// hugepage limits where no hugetlb controller can take them; every other
// field is kept as it was (numbers included, hence UseNumber).
func clamp(config []byte) ([]byte, bool, error) {
	var spec map[string]any
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.UseNumber()
	if err := dec.Decode(&spec); err != nil {
		return nil, false, fmt.Errorf("config.json: %w", err)
	}
	changed := false
	process, _ := spec["process"].(map[string]any)
	if adj, ok := process["oomScoreAdj"].(json.Number); ok {
		if n, err := adj.Int64(); err == nil && n < 0 {
			process["oomScoreAdj"] = json.Number("0")
			changed = true
		}
	}
	linux, _ := spec["linux"].(map[string]any)
	resources, _ := linux["resources"].(map[string]any)
	if _, ok := resources["hugepageLimits"]; ok && !hugetlbAvailable() {
		delete(resources, "hugepageLimits")
		changed = true
	}
	if !changed {
		return config, false, nil
	}
	out, err := json.Marshal(spec)
	return out, true, err
}

// hugetlbAvailable reports whether the machine can limit hugepages: its
// cgroups (v2 lists its controllers, v1 mounts each) have hugetlb.
var hugetlbAvailable = func() bool {
	if controllers, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return slices.Contains(strings.Fields(string(controllers)), "hugetlb")
	}
	_, err := os.Stat("/sys/fs/cgroup/hugetlb")
	return err == nil
}
