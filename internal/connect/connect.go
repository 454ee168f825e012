// Package connect chooses and opens the node's container runtime, for the
// node agent and the CLI alike: the Docker Engine API (internal/docker) or a
// CRI runtime (internal/cri), named by flag or found. Everything after it
// sees a runtime.Runtime and the capabilities it states.
package connect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/cri"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Kind is the API a runtime is spoken to with.
type Kind string

const (
	// Docker is the Docker Engine API (Docker 20.10 to 29).
	Docker Kind = "docker"
	// CRI is the Kubelet's Container Runtime Interface (containerd, CRI-O).
	CRI Kind = "cri"
)

// Endpoint is a runtime to open: its API, and its address (a Docker host
// such as unix:///var/run/docker.sock, or a CRI socket).
type Endpoint struct {
	Kind    Kind
	Address string
	// Runtime names what listens there, as the kubelet reports it
	// ("docker", "containerd", "cri-o"); informative.
	Runtime string
}

// Flag names the flag that gives an endpoint of this kind.
func (e Endpoint) Flag() string {
	if e.Kind == CRI {
		return "runtime-endpoint"
	}
	return "docker-host"
}

// Title says what kind of runtime an endpoint is, for messages.
func (e Endpoint) Title() string {
	if e.Kind == CRI {
		return "CRI runtime"
	}
	return "Docker engine"
}

// RuntimeTitle writes a runtime's name (Info.Name) as its makers do.
func RuntimeTitle(name string) string {
	switch name {
	case "docker":
		return "Docker"
	case "cri-o":
		return "CRI-O"
	}
	return name
}

// Runtime is an opened runtime: what the cleanup uses, and what the
// binaries say of it.
type Runtime interface {
	runtime.Runtime
	// Host is the runtime's address.
	Host() string
	// Calls are the API calls made so far, by method.
	Calls() map[string]int
	Close() error
}

// ErrNoRuntime is a node, or a machine, where no supported runtime's socket
// is found.
var ErrNoRuntime = runtime.ErrNoRuntime

// Sockets are where each runtime's socket is, below a folder that stands
// for the host's /run, in this order (where a node has Docker, its images
// are Docker's):
//   - docker.sock: Docker (cri-dockerd nodes keep their images there);
//   - k3s/containerd/containerd.sock: k3s and RKE2, below /run;
//   - k0s/containerd.sock: k0s, below /run;
//   - containerd/containerd.sock: containerd as its packages install it,
//     and k3s's and RKE2's below /run/k3s;
//   - containerd.sock: k0s below /run/k0s, and microk8s below its own run
//     folder, /var/snap/microk8s/common/run;
//   - crio/crio.sock: CRI-O.
//
// The distributions' containerd is containerd (the node reports
// containerd://1.7.23-k3s2, say), so the node's runtime picks among the
// same candidates (ForNode). Theirs come before a system containerd's: a
// distribution's node that also has one (for builds, say) runs its
// kubelet's pods on the distribution's.
func Sockets(run string) []Endpoint {
	socket := func(kind Kind, name string, path ...string) Endpoint {
		return Endpoint{Kind: kind, Runtime: name, Address: "unix://" + filepath.Join(append([]string{run}, path...)...)}
	}
	return []Endpoint{
		socket(Docker, "docker", "docker.sock"),
		socket(CRI, "containerd", "k3s", "containerd", "containerd.sock"),
		socket(CRI, "containerd", "k0s", "containerd.sock"),
		socket(CRI, "containerd", "containerd", "containerd.sock"),
		socket(CRI, "containerd", "containerd.sock"),
		socket(CRI, "cri-o", "crio", "crio.sock"),
	}
}

// Find returns the first of candidates whose socket exists.
func Find(candidates []Endpoint) (Endpoint, error) {
	var looked []string
	for _, c := range candidates {
		path := strings.TrimPrefix(c.Address, "unix://")
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return c, nil
		}
		looked = append(looked, path)
	}
	return Endpoint{}, fmt.Errorf("%w: no socket at %s", ErrNoRuntime, strings.Join(looked, ", "))
}

// ForNode returns the candidates of the runtime the kubelet uses, as the
// Node's status.nodeInfo.containerRuntimeVersion names it
// ("containerd://2.1.4", "docker://29.0.0" through cri-dockerd,
// "cri-o://1.34.0"), in their order; Find picks the one present. A node
// with Docker for builds and containerd for the kubelet is then cleaned
// where the kubelet's images are.
func ForNode(runtimeVersion string, candidates []Endpoint) ([]Endpoint, error) {
	name, _, ok := strings.Cut(runtimeVersion, "://")
	if !ok || name == "" {
		return nil, fmt.Errorf("%w: the node's runtime is %q", ErrNoRuntime, runtimeVersion)
	}
	var out []Endpoint
	for _, c := range candidates {
		if c.Runtime == name {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the node's runtime is %s, which is not supported (docker, containerd, cri-o)", ErrNoRuntime, name)
	}
	return out, nil
}

// ErrBothEndpoints is a usage error: a Docker host and a CRI endpoint.
var ErrBothEndpoints = errors.New("give --docker-host or --runtime-endpoint, not both")

// Choose is the one place a runtime is chosen: the Docker host given, or
// the CRI endpoint given, or $DOCKER_HOST, or else found: found(), which
// the agent asks of its Node and the CLI of the sockets present.
func Choose(dockerHost, criEndpoint string, found func() (Endpoint, error)) (Endpoint, error) {
	switch {
	case dockerHost != "" && criEndpoint != "":
		return Endpoint{}, ErrBothEndpoints
	case dockerHost != "":
		return Endpoint{Kind: Docker, Address: dockerHost}, nil
	case criEndpoint != "":
		return Endpoint{Kind: CRI, Address: criEndpoint}, nil
	case os.Getenv("DOCKER_HOST") != "":
		return Endpoint{Kind: Docker}, nil // the Docker client reads it
	}
	return found()
}

// Open opens the endpoint; removeTimeout bounds one removal (0: the
// adapter's default). Nothing is called yet.
func Open(e Endpoint, removeTimeout time.Duration) (Runtime, error) {
	var rt Runtime
	var timeout *time.Duration // the adapter's own bound of one removal
	switch e.Kind {
	case Docker:
		d, err := docker.New(e.Address)
		if err != nil {
			return nil, err
		}
		rt, timeout = d, &d.RemoveTimeout
	case CRI:
		c, err := cri.New(e.Address)
		if err != nil {
			return nil, err
		}
		rt, timeout = c, &c.RemoveTimeout
	default:
		return nil, fmt.Errorf("unknown runtime API %q", e.Kind)
	}
	if removeTimeout > 0 {
		*timeout = removeTimeout
	}
	return rt, nil
}

// Missing is the runtime of a node where none was found: every call fails
// with err (which wraps ErrNoRuntime), so that the agent still runs and
// reports why on every policy, instead of a pod that never starts.
func Missing(err error) Runtime { return missing{err: err} }

type missing struct{ err error }

func (m missing) Capabilities() runtime.Capabilities                  { return runtime.Capabilities{} }
func (m missing) Host() string                                        { return "none" }
func (m missing) Calls() map[string]int                               { return map[string]int{} }
func (m missing) Close() error                                        { return nil }
func (m missing) Ping(context.Context) error                          { return m.err }
func (m missing) Info(context.Context) (runtime.Info, error)          { return runtime.Info{}, m.err }
func (m missing) ListImages(context.Context) ([]runtime.Image, error) { return nil, m.err }
func (m missing) InspectImage(context.Context, string) (runtime.Image, error) {
	return runtime.Image{}, m.err
}
func (m missing) ListContainers(context.Context) ([]runtime.Container, error) { return nil, m.err }
func (m missing) ContainersUsing(context.Context, []string) ([]runtime.Container, error) {
	return nil, m.err
}
func (m missing) ContainerFinishedAt(context.Context, string) (string, time.Time, error) {
	return "", time.Time{}, m.err
}
func (m missing) RemoveContainer(context.Context, string, bool) error { return m.err }
func (m missing) RemoveImage(context.Context, string, runtime.RemoveImageOptions) (runtime.ImageRemoval, error) {
	return runtime.ImageRemoval{}, m.err
}
func (m missing) Events(context.Context, time.Time, bool, func(runtime.Event)) error { return m.err }
