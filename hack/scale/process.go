package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
)

// harnessMemory prints what this process (the agents and the aggregator
// replicas) holds after the idle time, per agent: what limits how many
// nodes one machine can simulate. With a profile folder it also writes the
// heap and goroutine profiles there (dir/harness.heap.pprof,
// dir/harness.goroutine.pprof).
func harnessMemory(n int, dir string) error {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("this process (agents and aggregators): %s resident; Go heap in use %.2f MiB per agent; %.0f goroutines per agent\n",
		processRSS("self"), float64(ms.HeapInuse)/(1<<20)/float64(n), float64(runtime.NumGoroutine())/float64(n))
	if dir == "" {
		return nil
	}
	for _, name := range []string{"heap", "goroutine"} {
		f, err := os.Create(filepath.Join(dir, "harness."+name+".pprof"))
		if err != nil {
			return err
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// apiServerMetrics reads the API server's /metrics; nil when it cannot.
func apiServerMetrics(ctx context.Context, cfg *rest.Config) map[string]*dto.MetricFamily {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil
	}
	// envtest's Host ends in a slash, and //metrics is not found.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: the API server's metrics:", err)
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "scale: the API server's metrics:", resp.Status)
		return nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: the API server's metrics:", err)
	}
	return families
}

// startProfiles profiles this process's CPU into dir/harness.pprof until the
// returned stop is called, and has the API server profile its own into
// dir/apiserver.pprof over the wave's first minute (its length is fixed
// when asked; stop waits for it).
func startProfiles(ctx context.Context, cfg *rest.Config, dir string) (stop func(), err error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, "harness.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := strings.TrimSuffix(cfg.Host, "/") + "/debug/pprof/profile?seconds=60"
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale: the API server's profile:", err)
			return
		}
		defer resp.Body.Close()
		out, err := os.Create(filepath.Join(dir, "apiserver.pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale: the API server's profile:", err)
			return
		}
		defer out.Close()
		if _, err := io.Copy(out, resp.Body); err != nil {
			fmt.Fprintln(os.Stderr, "scale: the API server's profile:", err)
		}
	}()
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		<-done
	}, nil
}

// childPID finds the envtest process of this harness whose command line
// names binary (kube-apiserver, etcd).
func childPID(binary string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if strings.Contains(string(cmd), binary) && strings.Contains(string(stat), " "+strconv.Itoa(os.Getpid())+" ") {
			return pid
		}
	}
	return 0
}

func apiServerRSS() string { return processRSS(strconv.Itoa(childPID("kube-apiserver"))) }

// processRSS is the resident size /proc/<pid>/status gives ("self" for this
// process).
func processRSS(pid string) string {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// cpuSeconds is the user and system CPU time pid has used (0 when unknown).
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(fields[11], 64)
	s, _ := strconv.ParseFloat(fields[12], 64)
	return (u + s) / 100
}

// cpuSplit is the CPU time used so far by the API server, etcd and this
// process (the agents, the aggregator replicas and the harness), to show
// what of the two cores a wave took.
type cpuSplit struct{ apiServer, etcd, harness float64 }

func cpuNow() cpuSplit {
	return cpuSplit{cpuSeconds(childPID("kube-apiserver")), cpuSeconds(childPID("etcd")), cpuSeconds(os.Getpid())}
}

func (c cpuSplit) since(before cpuSplit) string {
	return fmt.Sprintf("API server %.1f s, etcd %.1f s, agents and aggregators %.1f s",
		c.apiServer-before.apiServer, c.etcd-before.etcd, c.harness-before.harness)
}
