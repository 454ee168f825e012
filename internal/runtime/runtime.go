// Package runtime is this project's model of a container runtime: what it
// holds (images, containers), the few calls the cleanup needs, behind the
// Runtime interface, and what only some runtimes can do (Capabilities).
// internal/docker implements it with the Docker Engine API, internal/cri
// with the Kubelet's Container Runtime Interface (containerd, CRI-O); the
// fake in internal/runtime/runtimefake implements either in memory for table
// tests.
package runtime

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Errors a Runtime wraps, so callers decide without knowing an adapter's types.
var (
	// ErrNotFound: the image or container is not there (any more).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the runtime refuses because of its state, such as a
	// container using the image, or a container that is running.
	ErrConflict = errors.New("conflict")
	// ErrNoRuntime: there is no supported runtime to talk to.
	ErrNoRuntime = errors.New("no supported container runtime found")
)

// Image is one image as the runtime lists it.
type Image struct {
	ID string
	// RepoTags are the image's tags as the runtime lists them, in familiar
	// form (busybox:latest); empty for an untagged image (no "<none>:<none>").
	RepoTags    []string
	RepoDigests []string
	ParentID    string
	Created     time.Time
	Size        int64
	// LastTagTime is filled in by Inspect for candidate images only; zero
	// when unknown or never tagged. A pull or a load leaves it zero.
	LastTagTime time.Time
	// Arrived is when the image came to this node, from the image clock
	// (internal/imageclock); zero when nobody knows, which the planner reads
	// as "just now". Never the build date (Created).
	Arrived time.Time
	// LastUsed is the latest start or stop of a container of the image,
	// from the image clock; zero when none was seen.
	LastUsed time.Time
	// Pinned: the runtime keeps the image and says so (the CRI's pinned,
	// containerd's sandbox image); never removed.
	Pinned bool
}

// Untagged reports whether the image has no tag (listings show <none>).
func (i *Image) Untagged() bool { return len(i.RepoTags) == 0 }

// Unreferenced reports whether the image has neither tag nor digest: the
// runtime can then only name it by ID.
func (i *Image) Unreferenced() bool { return len(i.RepoTags) == 0 && len(i.RepoDigests) == 0 }

// Container states, as the runtime names them.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StatePaused     = "paused"
	StateRestarting = "restarting"
	StateRemoving   = "removing"
	StateExited     = "exited"
	StateDead       = "dead"
	// StateUnknown is a state the runtime does not say (or says in words
	// of its own): in use.
	StateUnknown = "unknown"
)

// Container is one container as the runtime lists it.
type Container struct {
	ID      string
	Name    string // without the leading slash
	ImageID string
	State   string
	Labels  map[string]string
	Created time.Time
	// FinishedAt is filled in by Inspect for candidate containers only.
	FinishedAt time.Time
	// MadeBy names another client of the runtime that made the container,
	// outside the API the cleanup removes containers through (containerd's
	// own API: ctr, nerdctl, BuildKit); empty for the runtime's own. Such a
	// container uses its image whatever its state, and is never removed.
	MadeBy string
	// Sandbox: the container is a pod's sandbox (pause) container; the
	// adapter tells (through the CRI, sandboxes are not containers at all).
	Sandbox bool
}

// Stopped reports whether the container is exited, created (never started)
// or dead, and is the runtime's own. Every other state, known or not, and
// every container another client made, counts as in use.
func (c *Container) Stopped() bool {
	if c.MadeBy != "" {
		return false
	}
	switch c.State {
	case StateExited, StateCreated, StateDead:
		return true
	}
	return false
}

// StoppedAt is when the container finished, or when it was created if it
// never ran.
func (c *Container) StoppedAt() time.Time {
	if !c.FinishedAt.IsZero() {
		return c.FinishedAt
	}
	return c.Created
}

// KubernetesManaged reports whether the kubelet (through the CRI, or a
// shim in front of the runtime) made the container: it carries io.kubernetes.* labels.
func (c *Container) KubernetesManaged() bool {
	for k := range c.Labels {
		if strings.HasPrefix(k, "io.kubernetes.") {
			return true
		}
	}
	return false
}

// Display names the container for people: name and short ID.
func (c *Container) Display() string {
	return DisplayContainer(c.Name, c.ID)
}

// DisplayContainer names a container for people: name (short ID).
func DisplayContainer(name, id string) string {
	if name == "" {
		return ShortID(id)
	}
	return name + " (" + ShortID(id) + ")"
}

// ShortID is the 12-digit form of an ID, as runtimes' listings show it.
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Inventory is what the runtime holds at one moment.
type Inventory struct {
	Images     []Image
	Containers []Container
}

// ImageRemoval is what one image removal did.
type ImageRemoval struct {
	// Gone lists what went: the image and the untagged parents pruned
	// with it (a runtime may list the layers it deleted too).
	Gone []string
}

// RemoveImageOptions are the runtime's options of an image removal.
type RemoveImageOptions struct {
	// Force removes the image although stopped containers use it; by tag,
	// it also untags an image a running container uses.
	Force bool
	// PruneParents also deletes the untagged parents that the deletion leaves
	// without reference and child.
	PruneParents bool
}

// Info is what the runtime says of itself.
type Info struct {
	// ID identifies the runtime's instance, in its own terms; the image
	// clock keeps one state file per runtime.
	ID string
	// RootDir is the runtime's data root, as the runtime reports it.
	RootDir string
	// Name and Version say which runtime it is ("docker", "29.0.0").
	Name, Version string
	// ImageStore says where it keeps images: "containerd" (containerd's
	// content and snapshots, whoever runs them), the
	// graph driver of the classic store ("overlay2"), or "cri" (a CRI
	// runtime that is not containerd).
	ImageStore string
	// ContainerdRoot is containerd's root when the runtime is containerd
	// itself (its CRI): the images' content is there. Empty otherwise.
	ContainerdRoot string
}

// ContainerdStore is Info.ImageStore of a runtime that keeps its images in
// containerd's store: their data is under containerd's root.
const ContainerdStore = "containerd"

// EventKind is what an event tells, in no runtime's own words: each
// adapter maps its runtime's events (its API's actions, the CRI's
// container event types, a poller's differences) onto these.
type EventKind string

const (
	ContainerCreated EventKind = "ContainerCreated"
	ContainerStarted EventKind = "ContainerStarted"
	ContainerStopped EventKind = "ContainerStopped"
	ContainerRemoved EventKind = "ContainerRemoved"
	// ImageArrived: pulled, loaded or imported; ID is what names it (the
	// reference pulled, or its ID).
	ImageArrived EventKind = "ImageArrived"
	ImageRemoved EventKind = "ImageRemoved"
	// ImageRetagged: a reference was added to the image or taken from it.
	ImageRetagged EventKind = "ImageRetagged"
	// EventGap: the runtime may have dropped events between the since asked
	// for and Time (its buffer turned over); nothing is known of that span.
	EventGap EventKind = "Gap"
	// EventNow marks the end of the replay: Time is the runtime's present,
	// and every event before it was delivered.
	EventNow EventKind = "Now"
)

// OfContainer says whether the event is about a container.
func (k EventKind) OfContainer() bool {
	switch k {
	case ContainerCreated, ContainerStarted, ContainerStopped, ContainerRemoved:
		return true
	}
	return false
}

// Event is what the runtime tells of a container or an image.
type Event struct {
	Kind EventKind
	// ID is the container's ID, or the image's: its ID, or for an arrival
	// by pull the reference pulled.
	ID string
	// Image is, for a container event, the image the container was created
	// from as it was named (a reference or an ID).
	Image string
	Time  time.Time
}

// Capabilities are what a runtime can do beyond what every runtime does
// (list, inspect, remove a stopped container, remove an image by ID). The
// planner asks for them; it never asks which runtime it is.
type Capabilities struct {
	// UntagByReference: removing one reference (a tag, a digest reference)
	// leaves the image and its other references (an untag).
	// Without it, removing an image removes every reference with it
	// (containerd's CRI), so an image goes only when the policy selects all
	// of them.
	UntagByReference bool
	// ForceRemoval: the runtime removes an image that stopped containers
	// use when asked to. Without it, a policy's force is
	// not honoured: such images stay, blocked.
	ForceRemoval bool
	// ContainerVolumes: a container has anonymous volumes of its own that
	// can go with it. Without it, removeVolumes has nothing to remove.
	ContainerVolumes bool
}

// RootProver is a runtime whose adapter knows its layout on disk, and so
// can show, on this machine, that root is where the runtime keeps its data:
// proven says it is; empty says the runtime holds nothing that could show
// it (and nothing that could be removed).
type RootProver interface {
	ProvesRoot(ctx context.Context, info Info, root string) (proven, empty bool, err error)
}

// ContainerdRootFinder is a runtime whose images are in a containerd store
// that does not say where its root is: its adapter names the places to
// look, from the runtime's data root as it is seen here.
type ContainerdRootFinder interface {
	ContainerdRoots(dataRoot string) []string
}

// Runtime is the part of a container runtime the cleanup uses.
// Implementations wrap ErrNotFound and ErrConflict, and bound every call
// with a timeout.
type Runtime interface {
	// Capabilities say what this runtime can do beyond the common calls.
	Capabilities() Capabilities
	// ListImages lists every image, intermediate ones included.
	ListImages(ctx context.Context) ([]Image, error)
	// ListContainers lists every container, stopped ones included.
	ListContainers(ctx context.Context) ([]Container, error)
	// InspectImage returns one image as it is now: its references and its
	// last tag time.
	InspectImage(ctx context.Context, id string) (Image, error)
	// ContainerFinishedAt returns the container's current state and when it
	// finished (zero if it never ran).
	ContainerFinishedAt(ctx context.Context, id string) (state string, finishedAt time.Time, err error)
	// RemoveContainer removes a container that is not running (never forced).
	RemoveContainer(ctx context.Context, id string, removeVolumes bool) error
	// RemoveImage removes one reference (tag, digest reference or ID), and the
	// image with its last reference; without UntagByReference, the image
	// with every reference.
	RemoveImage(ctx context.Context, ref string, opts RemoveImageOptions) (ImageRemoval, error)
	// ContainersUsing lists, in one call, the containers in any state whose
	// image is one of imageIDs (none when imageIDs is empty).
	ContainersUsing(ctx context.Context, imageIDs []string) ([]Container, error)
	// Ping checks that the runtime answers.
	Ping(ctx context.Context) error
	// Info says which runtime this is and where it keeps its data.
	Info(ctx context.Context) (Info, error)
	// Events calls f for every container and image event from since on,
	// oldest first: first those the runtime still holds (it keeps a bounded
	// number; a first EventGap says that some since then may be lost), then
	// an EventNow with the runtime's present, then, with follow, the new ones
	// until ctx ends or the stream breaks (the error says why). Without
	// follow it returns after the EventNow. A zero since replays nothing.
	Events(ctx context.Context, since time.Time, follow bool, f func(Event)) error
}
