package connect_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
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
	for version, want := range map[string][]string{
		"docker://29.0.0":          {"unix:///host/run/docker.sock"},
		"containerd://2.1.4":       {"unix:///host/run/k3s/containerd/containerd.sock", "unix:///host/run/k0s/containerd.sock", "unix:///host/run/containerd/containerd.sock", "unix:///host/run/containerd.sock"},
		"containerd://1.7.23-k3s2": {"unix:///host/run/k3s/containerd/containerd.sock", "unix:///host/run/k0s/containerd.sock", "unix:///host/run/containerd/containerd.sock", "unix:///host/run/containerd.sock"},
		"cri-o://1.34.0":           {"unix:///host/run/crio/crio.sock"},
		"remote://1.0":             nil,
		"":                         nil,
		"containerd-like://1":      nil,
	} {
		got, err := connect.ForNode(version, candidates)
		var addresses []string
		for _, e := range got {
			addresses = append(addresses, e.Address)
		}
		if !slices.Equal(addresses, want) || (want == nil) != errors.Is(err, connect.ErrNoRuntime) {
			t.Errorf("%q: %v, %v; want %q", version, addresses, err, want)
		}
	}
}

// Each distribution's containerd is found where it keeps its socket, with
// the host folder the agent mounts at /host/run: the host's /run (the
// default), or the folder the chart's agent.distribution mounts.
func TestEveryDistributionsSocketIsFound(t *testing.T) {
	for name, c := range map[string]struct{ mounted, socket, version string }{
		"containerd":               {"/run", "containerd/containerd.sock", "containerd://2.1.4"},
		"k3s, the host's /run":     {"/run", "k3s/containerd/containerd.sock", "containerd://1.7.23-k3s2"},
		"k3s, /run/k3s":            {"/run/k3s", "containerd/containerd.sock", "containerd://1.7.23-k3s2"},
		"RKE2, the host's /run":    {"/run", "k3s/containerd/containerd.sock", "containerd://1.7.23-k3s1"},
		"k0s, the host's /run":     {"/run", "k0s/containerd.sock", "containerd://1.7.24"},
		"k0s, /run/k0s":            {"/run/k0s", "containerd.sock", "containerd://1.7.24"},
		"microk8s, its run folder": {"/var/snap/microk8s/common/run", "containerd.sock", "containerd://1.6.28"},
		"CRI-O":                    {"/run", "crio/crio.sock", "cri-o://1.34.0"},
	} {
		t.Run(name, func(t *testing.T) {
			run := t.TempDir() // stands for the mounted folder
			path := filepath.Join(run, c.socket)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ofNode, err := connect.ForNode(c.version, connect.Sockets(run))
			if err != nil {
				t.Fatal(err)
			}
			got, err := connect.Find(ofNode)
			if err != nil || got.Address != "unix://"+path {
				t.Fatalf("with %s mounted: found %+v, %v; want %s", c.mounted, got, err, path)
			}
			if found, err := connect.Find(connect.Sockets(run)); err != nil || found.Address != "unix://"+path {
				t.Fatalf("without the node's word (the CLI): %+v, %v; want %s", found, err, path)
			}
		})
	}
}

// A distribution's node that also runs a system containerd (for builds,
// say) is cleaned where its kubelet's pods run: the distribution's.
func TestADistributionsSocketComesBeforeASystemContainerd(t *testing.T) {
	run := t.TempDir()
	for _, path := range []string{"containerd/containerd.sock", "k3s/containerd/containerd.sock"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(run, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("unix", filepath.Join(run, path))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	ofNode, err := connect.ForNode("containerd://1.7.23-k3s2", connect.Sockets(run))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := connect.Find(ofNode); err != nil || got.Address != "unix://"+filepath.Join(run, "k3s/containerd/containerd.sock") {
		t.Fatalf("found %+v, %v; want k3s's socket", got, err)
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
