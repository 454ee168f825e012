package runtime

import (
	"maps"
	"sync"
)

// CallCount counts an adapter's calls to its runtime, by method: what the
// CLI prints and the benchmarks compare. The zero value is ready.
type CallCount struct {
	mu sync.Mutex
	n  map[string]int
}

// Add counts one call.
func (c *CallCount) Add(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[method]++
}

// All returns the calls so far.
func (c *CallCount) All() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		return map[string]int{}
	}
	return maps.Clone(c.n)
}
