package main

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/filters"
)

// countingProxy forwards a unix socket to the engine's and counts the API
// requests by endpoint ("DELETE /containers/{id}"), whoever makes them.
type countingProxy struct {
	dir    string
	ln     net.Listener
	server *http.Server

	mu    sync.Mutex
	calls map[string]int
}

var versionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

// endpoint names a request without the object it is about:
// DELETE /images/{ref}, GET /containers/{id}/json, GET /containers/json.
func endpoint(method, path string) string {
	path = versionPrefix.ReplaceAllString(path, "")
	for _, kind := range []string{"/containers/", "/images/"} {
		rest, ok := strings.CutPrefix(path, kind)
		if !ok || rest == "json" {
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

func startProxy(engineSocket string) (*countingProxy, error) {
	dir, err := os.MkdirTemp("", "bench-proxy-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "docker.sock"))
	if err != nil {
		return nil, err
	}
	p := &countingProxy{dir: dir, ln: ln, calls: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", engineSocket)
		}},
	}
	p.server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.calls[endpoint(r.Method, r.URL.Path)]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.server.Serve(ln) }()
	return p, nil
}

func (p *countingProxy) host() string { return "unix://" + p.ln.Addr().String() }

func (p *countingProxy) reset() {
	p.mu.Lock()
	p.calls = map[string]int{}
	p.mu.Unlock()
}

func (p *countingProxy) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.calls)
}

func (p *countingProxy) close() {
	_ = p.server.Close()
	_ = os.RemoveAll(p.dir)
}

func ancestor(ref string) filters.Args { return filters.NewArgs(filters.Arg("ancestor", ref)) }
