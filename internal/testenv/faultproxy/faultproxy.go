// Package faultproxy sits between a Docker client and an engine, on a unix
// socket of its own, and forwards every request. Rules make chosen requests
// misbehave: run a hook before or after the engine sees them (another hand
// at work at that exact moment), answer late, never answer, or answer with
// an error after the engine did the work. Races and engine faults then
// happen where a test wants them, every time.
//
// It does not import testing, so benchmarks and demos can use it too.
package faultproxy

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Rule makes the requests it matches misbehave. Zero fields do nothing.
type Rule struct {
	// Method (GET, DELETE, ...) and Path, matched against the path without
	// the API version (/images/busybox:1, /containers/json); Query, if set,
	// must be a substring of the raw query.
	Method string
	Path   *regexp.Regexp
	Query  string
	// Times is how many matching requests the rule acts on (0: all).
	Times int

	// Before runs before the request goes to the engine; After runs once the
	// engine has answered, before the client gets the answer.
	Before, After func(r *http.Request)
	// Delay holds the answer back this long (the engine has done the work).
	Delay time.Duration
	// Stall never answers: the request hangs until the client gives up.
	Stall bool
	// FailStatus, if set, replaces the engine's answer with this status and
	// FailMessage, after the engine did the work (the client thinks it
	// failed; it did not).
	FailStatus  int
	FailMessage string

	fired int
}

// Proxy is one running proxy.
type Proxy struct {
	dir    string
	ln     net.Listener
	server *http.Server
	rp     *httputil.ReverseProxy

	mu    sync.Mutex
	rules []*Rule
	calls map[string]int
	// busy sums the time requests took, by endpoint; first and
	// firstDelete are when the first request and the first DELETE came.
	busy               map[string]time.Duration
	first, firstDelete time.Time
}

var versionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

// Start proxies to the engine at engineHost (unix:///path).
func Start(engineHost string) (*Proxy, error) {
	socket, ok := strings.CutPrefix(engineHost, "unix://")
	if !ok {
		return nil, fmt.Errorf("faultproxy: %s is not a unix socket", engineHost)
	}
	dir, err := os.MkdirTemp("", "faultproxy-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "docker.sock"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := &Proxy{dir: dir, ln: ln, calls: map[string]int{}, busy: map[string]time.Duration{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker" },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}},
		FlushInterval: -1, // event streams pass through as they come
	}
	p.server = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.server.Serve(ln) }()
	return p, nil
}

// Host is the address to give the client.
func (p *Proxy) Host() string { return "unix://" + p.ln.Addr().String() }

// On adds a rule; the first matching rule that still fires wins.
func (p *Proxy) On(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &r)
}

// Reset drops every rule and count.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules, p.calls, p.busy = nil, map[string]int{}, map[string]time.Duration{}
	p.first, p.firstDelete = time.Time{}, time.Time{}
}

// Busy returns the time the engine's answers took, summed by endpoint
// (calls in flight together each count whole).
func (p *Proxy) Busy() map[string]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.busy)
}

// BeforeFirstDelete is the time from the first request to the first DELETE
// (a client's reading and planning before it removes anything); zero when
// no DELETE came.
func (p *Proxy) BeforeFirstDelete() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.firstDelete.IsZero() {
		return 0
	}
	return p.firstDelete.Sub(p.first)
}

// Calls returns how many requests went by, keyed "METHOD /path" with the
// object named: DELETE /images/{ref}, GET /containers/json.
func (p *Proxy) Calls() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.calls)
}

// Close stops the proxy; requests still hanging are cut.
func (p *Proxy) Close() {
	_ = p.server.Close()
	_ = os.RemoveAll(p.dir)
}

// endpoint names a request without the object it is about:
// DELETE /images/{ref}, GET /containers/{id}/json, GET /containers/json.
func endpoint(method, path string) string {
	path = versionPrefix.ReplaceAllString(path, "")
	for _, kind := range []string{"/containers/", "/images/"} {
		rest, ok := strings.CutPrefix(path, kind)
		if !ok || rest == "json" || rest == "load" || rest == "create" {
			continue
		}
		suffix := ""
		if strings.HasSuffix(rest, "/json") {
			suffix = "/json"
		}
		path = kind + "{id}" + suffix
	}
	return method + " " + path
}

// match counts the request (at now, on endpoint ep) and finds its rule.
func (p *Proxy) match(r *http.Request, ep string, now time.Time) *Rule {
	path := versionPrefix.ReplaceAllString(r.URL.Path, "")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[ep]++
	if p.first.IsZero() {
		p.first = now
	}
	if r.Method == http.MethodDelete && p.firstDelete.IsZero() {
		p.firstDelete = now
	}
	for _, rule := range p.rules {
		if (rule.Method != "" && rule.Method != r.Method) ||
			(rule.Path != nil && !rule.Path.MatchString(path)) ||
			(rule.Query != "" && !strings.Contains(r.URL.RawQuery, rule.Query)) ||
			(rule.Times > 0 && rule.fired >= rule.Times) {
			continue
		}
		rule.fired++
		return rule
	}
	return nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	start, ep := time.Now(), endpoint(r.Method, r.URL.Path)
	defer func() {
		p.mu.Lock()
		p.busy[ep] += time.Since(start)
		p.mu.Unlock()
	}()
	rule := p.match(r, ep, start)
	if rule == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	if rule.Stall {
		<-r.Context().Done()
		return
	}
	if rule.Before != nil {
		rule.Before(r)
	}
	// The engine's answer is recorded, then held, replaced or passed on.
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r.WithContext(context.WithoutCancel(r.Context())))
	if rule.After != nil {
		rule.After(r)
	}
	if rule.Delay > 0 {
		select {
		case <-time.After(rule.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if rule.FailStatus != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rule.FailStatus)
		_, _ = fmt.Fprintf(w, "{\"message\":%q}\n", rule.FailMessage)
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
