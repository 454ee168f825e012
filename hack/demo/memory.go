package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// agentPprofAddress is where the demo's agent serves Go's profiles, to tell
// what its resident memory is made of.
const agentPprofAddress = "127.0.0.1:18086"

// baselinePprofAddress is the baseline manager's (hack/demo/baseline).
const baselinePprofAddress = "127.0.0.1:18087"

// ratio is a / b, for two sizes; 0 when b is unknown.
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// memoryBreakdown says what a process's resident memory is made of: the
// pages of its binary (file-backed: code and read-only data the kernel
// shares and can drop), and the anonymous ones: the Go heap in use, the
// goroutine stacks, the runtime's own (GC metadata, span structures, ...),
// and heap memory held but not in use. The Go figures come from the heap
// profile's MemStats (served with --pprof-bind-address).
func memoryBreakdown(pid int, pprofAddress string) string {
	rollup := kibFields(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	rss, anon := rollup["Rss"], rollup["Anonymous"]
	code, rodata := binaryPages(pid)
	out := fmt.Sprintf("%s resident: %s of the binary's pages (code %s, read-only data %s), %s anonymous",
		mib(rss), mib(rss-anon), mib(code), mib(rodata), mib(anon))
	stats, err := goMemStats(pprofAddress)
	if err != nil {
		return out + " (Go's figures: " + err.Error() + ")"
	}
	runtimeOwn := stats["MSpanInuse"] + stats["MCacheInuse"] + stats["BuckHashSys"] + stats["GCSys"] + stats["OtherSys"]
	return out + fmt.Sprintf(" (Go: heap in use %s, stacks %s, runtime's own %s, heap idle not yet returned %s; %d objects)",
		mib(stats["HeapInuse"]), mib(stats["StackInuse"]), mib(runtimeOwn), mib(stats["HeapIdle"]-stats["HeapReleased"]), stats["HeapObjects"])
}

// binaryPages sums the resident pages of the process's executable mapped
// as code (r-x) and as read-only data (r--), from /proc/<pid>/smaps.
func binaryPages(pid int) (code, rodata int64) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var perms string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		switch {
		case len(fields) >= 6 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			perms = ""
			if fields[5] == exe {
				perms = fields[1]
			}
		case len(fields) == 3 && fields[0] == "Rss:" && perms != "":
			v, _ := strconv.ParseInt(fields[1], 10, 64)
			switch perms[:3] {
			case "r-x":
				code += v << 10
			case "r--":
				rodata += v << 10
			}
		}
	}
	return code, rodata
}

// kibFields reads the "Name: N kB" lines of a /proc file, in bytes.
func kibFields(path string) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		if v, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
			out[name] = v << 10
		}
	}
	return out
}

// goMemStats reads the runtime.MemStats that the text heap profile ends
// with ("# HeapInuse = 123").
func goMemStats(address string) (map[string]int64, error) {
	resp, err := http.Get("http://" + address + "/debug/pprof/heap?debug=1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseInt(value, 10, 64); err == nil {
			out[name] = v
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no MemStats in the heap profile of %s", address)
	}
	return out, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
