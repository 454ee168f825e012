package connect_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/connect"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// The one place a runtime is chosen: a flag wins, then $DOCKER_HOST, then
// what is found; both flags are a usage error.
func TestChoose(t *testing.T) {
	found := func() (connect.Endpoint, error) {
		return connect.Endpoint{Kind: connect.CRI, Address: "unix:///found.sock"}, nil
	}
	t.Setenv("DOCKER_HOST", "")
	tests := map[string]struct {
		docker, cri, env string
		want             connect.Endpoint
		err              error
	}{
		"docker flag":  {docker: "unix:///d.sock", want: connect.Endpoint{Kind: connect.Docker, Address: "unix:///d.sock"}},
		"cri flag":     {cri: "unix:///c.sock", want: connect.Endpoint{Kind: connect.CRI, Address: "unix:///c.sock"}},
		"both":         {docker: "unix:///d.sock", cri: "unix:///c.sock", err: connect.ErrBothEndpoints},
		"DOCKER_HOST":  {env: "unix:///env.sock", want: connect.Endpoint{Kind: connect.Docker}},
		"found":        {want: connect.Endpoint{Kind: connect.CRI, Address: "unix:///found.sock"}},
		"flag and env": {cri: "unix:///c.sock", env: "unix:///env.sock", want: connect.Endpoint{Kind: connect.CRI, Address: "unix:///c.sock"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tc.env)
			got, err := connect.Choose(tc.docker, tc.cri, found)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// The node's kubelet names its runtime; the agent opens that one's socket,
// and a runtime it does not support is said so.
func TestForNode(t *testing.T) {
	candidates := connect.Sockets("/host/run")
	for version, want := range map[string]string{
		"docker://29.0.0":     "unix:///host/run/docker.sock",
		"containerd://2.1.4":  "unix:///host/run/containerd/containerd.sock",
		"cri-o://1.34.0":      "unix:///host/run/crio/crio.sock",
		"remote://1.0":        "",
		"":                    "",
		"containerd-like://1": "",
	} {
		got, err := connect.ForNode(version, candidates)
		if got.Address != want || (want == "") != errors.Is(err, connect.ErrNoRuntime) {
			t.Errorf("%q: %+v, %v; want %q", version, got, err, want)
		}
	}
}

// Find takes the first socket present, and only a socket: a folder or a
// file of that name does not count.
func TestFind(t *testing.T) {
	run := t.TempDir()
	candidates := connect.Sockets(run)
	if _, err := connect.Find(candidates); !errors.Is(err, connect.ErrNoRuntime) {
		t.Fatalf("nothing there: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(run, "docker.sock"), 0o755); err != nil { // what a hostPath DirectoryOrCreate leaves
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(run, "crio.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.MkdirAll(filepath.Join(run, "crio"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(run, "crio.sock"), filepath.Join(run, "crio", "crio.sock")); err != nil {
		t.Fatal(err)
	}
	got, err := connect.Find(candidates)
	if err != nil || got.Runtime != "cri-o" {
		t.Fatalf("found %+v, %v; want CRI-O's socket", got, err)
	}
}

// Where no runtime is found, every call says so, and says why.
func TestMissingRuntimeSaysWhy(t *testing.T) {
	_, why := connect.Find(connect.Sockets(t.TempDir()))
	rt := connect.Missing(why)
	ctx := context.Background()
	_, listErr := rt.ListImages(ctx)
	for _, err := range []error{rt.Ping(ctx), listErr, rt.RemoveContainer(ctx, "x", false)} {
		if !errors.Is(err, runtime.ErrNoRuntime) || err.Error() != why.Error() {
			t.Fatalf("%v, want %v", err, why)
		}
	}
}
