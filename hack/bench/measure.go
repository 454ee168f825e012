package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

type method struct {
	name string
	run  func(repo string) error
}

type measurement struct {
	times []time.Duration
	calls map[string]int
	// busy is the engine's time by endpoint; beforeDelete the time from
	// the first call to the first removal, each round.
	busy         map[string]time.Duration
	beforeDelete []time.Duration
}

func (m measurement) median() time.Duration { return median(m.times) }

func median(times []time.Duration) time.Duration {
	t := append([]time.Duration(nil), times...)
	sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
	return t[len(t)/2]
}

// formatBusy lists the endpoints by the time they took, longest first.
func formatBusy(busy map[string]time.Duration) string {
	keys := make([]string, 0, len(busy))
	for k := range busy {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return busy[keys[i]] > busy[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%s", k, busy[k].Round(time.Millisecond))
	}
	return strings.Join(parts, " ")
}

func total(calls map[string]int) int {
	n := 0
	for _, v := range calls {
		n += v
	}
	return n
}

func format(calls map[string]int) string {
	keys := make([]string, 0, len(calls))
	for k := range calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, calls[k])
	}
	return strings.Join(parts, " ")
}
