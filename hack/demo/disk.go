package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dockerclient "github.com/moby/moby/client"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
)

// smallEngine is the second private engine, whose data root is a 300 MiB
// disk: the disk-hygiene part of the demo.
type smallEngine struct {
	host, dataRoot string
	docker         *dockerclient.Client
	agent          *exec.Cmd
	filler         string
}

func (e *smallEngine) cleanup() {
	stopProcess(e.agent)
	if e.filler != "" {
		_ = os.Remove(e.filler)
	}
	if e.docker != nil {
		removeLabelled(e.docker)
		e.docker.Close()
	}
}

const buildMiB = 20

// diskDemo shows a disk-hygiene policy: a builder node whose engine keeps
// its data on a 300 MiB disk, builds run one after another, then the disk
// fills and the agent frees it, least recently used first, down to the low
// watermark.
func (d *demo) diskDemo(ctx context.Context, c client.Client, kubeconfig, node string) error {
	e := &d.small
	if e.host == "" || e.dataRoot == "" {
		return errors.New("no small private engine: run the demo through `make demo`")
	}
	var err error
	if e.docker, err = dockerclient.New(dockerclient.WithHost(e.host)); err != nil {
		return err
	}
	removeLabelled(e.docker)
	d.step("disk hygiene: a second node, %s, whose engine keeps its data on a 300 MiB disk (%s)", node, e.dataRoot)
	if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"node.kubernetes.io/pool": "builders"}}}); err != nil {
		return err
	}
	if e.agent, _, err = d.agentProcess(kubeconfig, node, e.host, "agent-small", "--data-root", e.dataRoot, "--disk-tick", "1s"); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the agent follows the engine's container events from its start

	s := &seed.Docker{Client: e.docker, Labels: map[string]string{demoLabel: "true"}}
	var builds []string
	for i := 1; i <= 6; i++ {
		ref := fmt.Sprintf("builder.local/app:%d", i)
		id, err := s.ImageOfSize(ctx, buildMiB<<20, ref)
		if err != nil {
			return err
		}
		if _, err := s.Container(ctx, id, seed.Exited, seed.ContainerOptions{}); err != nil {
			return err
		}
		builds = append(builds, ref)
	}
	fmt.Printf("    6 builds of %d MiB, builder.local/app:1 to :6, each run once in that order (app:1 least recently)\n", buildMiB)
	before := usage(e.dataRoot)
	high, low := int32(before)+8, int32(before)-12
	d.step("kubectl apply: policy disk-hygiene, diskUsage {highPercent: %d, lowPercent: %d} (disk at %.0f %%)", high, low, before)
	fmt.Println("    (the demo sets the watermarks around what it just filled; a cluster would use 75/65, under the kubelet's 85, see config/samples/disk-hygiene.yaml)")
	zero := v1alpha1.Duration("0s")
	policy := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "disk-hygiene"}, Spec: v1alpha1.ImageCleanupPolicySpec{
		NodeSelector: &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"node.kubernetes.io/pool": "builders"}},
		Images:       []v1alpha1.ImagePattern{"builder.local/**"},
		MinImageAge:  &zero, StoppedContainers: v1alpha1.StoppedContainersPolicy{MinStoppedAge: &zero},
		DiskUsage: &v1alpha1.DiskUsage{HighPercent: high, LowPercent: low},
	}}
	if err := c.Create(ctx, policy); err != nil {
		return err
	}
	if _, err := d.waitDisk(ctx, c, node, ""); err != nil {
		return err
	}
	fmt.Printf("    under the watermark: the agent looks every second, removes nothing\n")

	e.filler = filepath.Join(e.dataRoot, "demo-filler")
	if err := os.WriteFile(e.filler, make([]byte, 36<<20), 0o600); err != nil {
		return err
	}
	d.step("something else writes 36 MiB to that disk: %.0f %% used, above %d %%", usage(e.dataRoot), high)
	report, err := d.waitDisk(ctx, c, node, "space")
	if err != nil {
		return err
	}
	var went, stayed []string
	for _, ref := range builds {
		if _, err := e.docker.ImageInspect(ctx, ref); err != nil {
			went = append(went, ref)
		} else {
			stayed = append(stayed, ref)
		}
	}
	d.step("the agent swept at once (no interval wait): disk %d %% → %d %% (low %d %%)",
		report.Status.Disk.UsedPercentBefore, report.Status.Disk.UsedPercentAfter, low)
	fmt.Printf("    went, least recently used first: %s\n    stayed: %s\n", strings.Join(went, ", "), strings.Join(stayed, ", "))
	return d.idleCost(e.agent)
}

// idleCost compares, over the same 10 seconds, the CPU time of the agent
// that looks at its disk every second with the agent that has no disk
// policy, and their resident memory.
func (d *demo) idleCost(diskAgent *exec.Cmd) error {
	const window = 10 * time.Second
	d.step("idle cost of the disk tick, over %s (the demo's tick is 1 s; the default is 30 s)", window)
	cpu0, base0 := cpuTime(diskAgent.Process.Pid), cpuTime(d.agent.Process.Pid)
	time.Sleep(window)
	cpu, base := cpuTime(diskAgent.Process.Pid)-cpu0, cpuTime(d.agent.Process.Pid)-base0
	fmt.Printf("    agent with the disk policy: %s CPU, %s resident\n", cpu, statusField(diskAgent.Process.Pid, "VmRSS"))
	fmt.Printf("    agent without one (same run): %s CPU, %s resident\n", base, statusField(d.agent.Process.Pid, "VmRSS"))
	return nil
}

// cpuTime is a process's user and system CPU time so far.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces): utime is the 14th
	// field of the line, stime the 15th, in clock ticks (100 a second).
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// waitDisk waits for the node's report of disk-hygiene with that watermark.
func (d *demo) waitDisk(ctx context.Context, c client.Client, node, watermark string) (*v1alpha1.ImageCleanupReport, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var r v1alpha1.ImageCleanupReport
		if err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.ReportName("disk-hygiene", node)}, &r); err == nil &&
			r.Status.Disk != nil && r.Status.Disk.Watermark == watermark {
			return &r, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(d.workDir, "agent-small.log"))
	return nil, fmt.Errorf("no report with watermark %q after 60s; agent log:\n%s", watermark, log)
}

func usage(path string) float64 {
	u, err := disk.Measure(path)
	if err != nil {
		return 0
	}
	return u.UsedPercent
}
