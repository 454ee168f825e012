package controllers

import (
	"context"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// The event follower reconnects to a runtime that is down with a back-off
// on the agent's clock: 1 s, then 2 s, and so on; nothing happens between.
func TestEventFollowerBacksOffOnTheAgentsClock(t *testing.T) {
	f := runtimefake.New()
	f.SetDown(true)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	n := &nodeHost{rt: f, clock: clk, metrics: newAgentMetrics()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Start(ctx) }()
	attempts := func() int { return f.Calls()["Info"] }
	// The fake clock moves the follower at once, so the whole test takes
	// milliseconds; back-offs on the real clock would take 7 s. (A deadline
	// of half a second per attempt failed on a loaded machine.)
	// Two waiters mean the follower waits on its back-off: the other one is
	// the save ticker. (Waiting for any waiter let a step land before the
	// back-off began, which then never ended within the test: CI failed so.)
	start := time.Now()
	waitFor := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for attempts() != want || clk.Waiters() != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%d attempts, want %d", attempts(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(1)
	for i, delay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		clk.Step(delay - time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		if got := attempts(); got != i+1 {
			t.Fatalf("attempt %d came before its %s back-off", got, delay)
		}
		clk.Step(time.Millisecond)
		waitFor(i + 2)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("three back-offs took %s of real time: the follower waits on the real clock", took)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
