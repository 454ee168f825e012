// Command agentmem reads the kubelet's summary (GET
// /api/v1/nodes/<node>/proxy/stats/summary) on stdin and prints the memory
// of the agent's container as the kubelet sees it: the working set, which
// is what requests, limits and evictions are weighed against, and the
// resident set. Run by hack/agent-memory.sh.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type memory struct {
	WorkingSetBytes *uint64 `json:"workingSetBytes"`
	RSSBytes        *uint64 `json:"rssBytes"`
	UsageBytes      *uint64 `json:"usageBytes"`
}

type summary struct {
	Pods []struct {
		PodRef struct {
			Name, Namespace string
		} `json:"podRef"`
		Containers []struct {
			Name   string `json:"name"`
			Memory memory `json:"memory"`
		} `json:"containers"`
	} `json:"pods"`
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: agentmem <namespace> <pod name prefix> <container> < summary.json")
		os.Exit(2)
	}
	ns, prefix, container := os.Args[1], os.Args[2], os.Args[3]
	var s summary
	if err := json.NewDecoder(os.Stdin).Decode(&s); err != nil {
		fmt.Fprintln(os.Stderr, "agentmem: the kubelet's summary:", err)
		os.Exit(1)
	}
	for _, p := range s.Pods {
		if p.PodRef.Namespace != ns || !strings.HasPrefix(p.PodRef.Name, prefix) {
			continue
		}
		for _, c := range p.Containers {
			if c.Name == container {
				m := c.Memory
				fmt.Printf("%s/%s: working set %s, resident %s, usage %s (page cache included)\n",
					p.PodRef.Name, c.Name, mib(m.WorkingSetBytes), mib(m.RSSBytes), mib(m.UsageBytes))
				return
			}
		}
	}
	fmt.Fprintf(os.Stderr, "agentmem: no container %s in a pod %s* of namespace %s in the kubelet's summary\n", container, prefix, ns)
	os.Exit(1)
}

func mib(v *uint64) string {
	if v == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MiB", float64(*v)/(1<<20))
}
