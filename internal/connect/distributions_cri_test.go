package connect_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/connect"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// Each distribution's containerd is found where it keeps its socket and
// answers there: the private containerd's socket is bind-mounted at the
// distribution's path under a folder that stands for the one the agent
// mounts at /host/run, as a hostPath mount shows it to the agent's pod.
func TestADistributionsContainerdIsFoundAndAnswers(t *testing.T) {
	c := testenv.Containerd(t)
	socket := strings.TrimPrefix(c.Endpoint, "unix://")
	for name, d := range map[string]struct{ path, version string }{
		"k3s below the host's /run":  {"k3s/containerd/containerd.sock", "containerd://1.7.23-k3s2"},
		"RKE2 below /run/k3s":        {"containerd/containerd.sock", "containerd://1.7.23-k3s1"},
		"k0s below the host's /run":  {"k0s/containerd.sock", "containerd://1.7.24"},
		"microk8s below its run dir": {"containerd.sock", "containerd://1.6.28"},
	} {
		t.Run(name, func(t *testing.T) {
			run := shortTempDir(t) // a socket's path has at most 107 bytes
			path := filepath.Join(run, d.path)
			bindMount(t, socket, path)
			ofNode, err := connect.ForNode(d.version, connect.Sockets(run))
			if err != nil {
				t.Fatal(err)
			}
			e, err := connect.Find(ofNode)
			if err != nil || e.Address != "unix://"+path {
				t.Fatalf("found %+v, %v; want %s", e, err, path)
			}
			rt, err := connect.Open(e, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			info, err := rt.Info(context.Background())
			if err != nil || info.Name != "containerd" || info.ImageStore != runtime.ContainerdStore || info.ContainerdRoot == "" {
				t.Fatalf("the runtime at %s: %+v, %v; want containerd, with the root of its images", path, info, err)
			}
		})
	}
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "run")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// bindMount makes the socket at src appear at dst too, until the test ends.
func bindMount(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		testenv.Unavailable(t, "cannot bind-mount a socket here (%v): root in the host's mount namespace is needed", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dst, syscall.MNT_DETACH) })
}
