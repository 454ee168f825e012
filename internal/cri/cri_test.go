package cri_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/cri"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtimehost"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultgrpc"
)

// containerEvents is the CRI's container-event stream, as the proxy names it.
const containerEvents = "/runtime.v1.RuntimeService/GetContainerEvents"

// runtimeBehind is the adapter on the runtime behind a fault proxy that
// fault sets up.
func runtimeBehind(t *testing.T, c *testenv.CRI, fault func(*faultgrpc.Proxy)) *cri.Runtime {
	t.Helper()
	proxy, err := faultgrpc.Start(c.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	fault(proxy)
	return runtimeAt(t, proxy.Endpoint())
}

func runtimeFor(t *testing.T, c *testenv.CRI) *cri.Runtime {
	t.Helper()
	return runtimeAt(t, c.Endpoint)
}

// runtimeAt is the adapter on the socket at endpoint, closed when the test
// ends.
func runtimeAt(t *testing.T, endpoint string) *cri.Runtime {
	t.Helper()
	rt, err := cri.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

// measured is what a CRI runtime was measured to do where runtimes
// differ (docs/runtime-behaviour.md): the tests expect of each its own.
type measured struct {
	// store is Info.ImageStore; containerdRoot: Info names containerd's
	// root, where the images' content is.
	store          string
	containerdRoot bool
	// containerEvents: GetContainerEvents serves events (CRI-O's default
	// serves none: its stream ends at once).
	containerEvents bool
	// removesImageInUse: RemoveImage removes an image a stopped container
	// uses (containerd); CRI-O refuses, which the adapter says as a
	// conflict.
	removesImageInUse bool
}

var runtimes = map[string]measured{
	testenv.ContainerdName: {store: runtime.ContainerdStore, containerdRoot: true, containerEvents: true, removesImageInUse: true},
	testenv.CRIOName:       {store: "cri"},
}

func measuredOf(t *testing.T, c *testenv.CRI) measured {
	t.Helper()
	m, ok := runtimes[c.Name]
	if !ok {
		t.Fatalf("no measurements of the runtime %q: measure it, then add it to runtimes", c.Name)
	}
	return m
}

// The adapter on a real CRI runtime: what it lists, in the runtime's
// words, and the CRI's rules it stands between: a running container is
// refused (the CRI would stop it), an image goes with every reference.
func TestCRIAdapter(t *testing.T) {
	c := testenv.CRIRuntime(t)
	want := measuredOf(t, c)
	rt := runtimeFor(t, c)
	ctx := context.Background()
	reg := testenv.StartRegistry(t)
	repo := testenv.UniqueName("cri/app")
	id := c.Image(reg, repo, "1", "one")
	exited := c.Container(id, seed.Exited, nil)
	running := c.Container(id, seed.Running, map[string]string{"io.kubernetes.pod.name": "p"})
	created := c.Container(id, seed.Created, nil)

	info, err := rt.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != c.Name || info.ImageStore != want.store || (info.ContainerdRoot != "") != want.containerdRoot || info.RootDir == "" {
		t.Fatalf("info %+v, want the store %q", info, want.store)
	}
	images, err := rt.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(images, func(img runtime.Image) bool { return img.ID == id })
	if i < 0 {
		t.Fatalf("%s not listed in %+v", id, images)
	}
	img := images[i]
	if want := []string{reg.Host + "/" + repo + ":1", reg.Host + "/" + repo + ":one"}; !slices.Equal(slices.Sorted(slices.Values(img.RepoTags)), want) || len(img.RepoDigests) != 1 || img.Pinned {
		t.Fatalf("image %+v, want tags %v and one digest", img, want)
	}
	if !slices.ContainsFunc(images, func(img runtime.Image) bool { return img.Pinned }) {
		t.Fatal("the sandbox image is not pinned")
	}
	if want.containerdRoot && !runtimehost.HoldsContent(info.ContainerdRoot, images) {
		t.Fatalf("containerd's root %s holds none of the images' content", info.ContainerdRoot)
	}
	if proven, empty, err := rt.ProvesRoot(ctx, info, info.RootDir); err != nil || !proven || empty {
		t.Fatalf("the runtime's own root %s is not proven: %v, %v, %v", info.RootDir, proven, empty, err)
	}
	// Another disk at the same path holds the same images (their IDs are
	// the same on every machine), never the same containers: records of
	// every image, in either runtime's layout, prove nothing.
	decoy := filepath.Join(t.TempDir(), filepath.Base(info.RootDir))
	for _, img := range images {
		algo, hex, ok := strings.Cut(img.ID, ":")
		if !ok {
			algo, hex = "sha256", img.ID
		}
		for _, record := range []string{filepath.Join(decoy, hex), filepath.Join(decoy, "io.containerd.content.v1.content", "blobs", algo, hex)} {
			if err := os.MkdirAll(record, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if proven, _, err := rt.ProvesRoot(ctx, info, decoy); err != nil || proven {
		t.Fatalf("a folder holding records of the runtime's images, but none of its containers, is proven its root: %v, %v", proven, err)
	}
	users, err := rt.ContainersUsing(ctx, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, u := range users {
		states[u.ID] = u.State
	}
	if states[exited] != runtime.StateExited || states[running] != runtime.StateRunning || states[created] != runtime.StateCreated {
		t.Fatalf("containers of the image: %v", states)
	}
	state, finished, err := rt.ContainerFinishedAt(ctx, exited)
	if err != nil || state != runtime.StateExited || time.Since(finished) > time.Minute {
		t.Fatalf("finished at %s (%s, %v)", finished, state, err)
	}
	if err := rt.RemoveContainer(ctx, running, false); !errors.Is(err, runtime.ErrConflict) || c.State(running) != 1 {
		t.Fatalf("removing a running container: %v; its state now %s", err, c.State(running))
	}
	for _, ctr := range []string{exited, created} {
		if err := rt.RemoveContainer(ctx, ctr, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.RemoveContainer(ctx, exited, false); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("removing a container twice: %v", err)
	}

	// containerd removes an image a container uses, CRI-O refuses: the
	// adapter passes on what the runtime does (a refusal as a conflict),
	// and the executor's re-check keeps such images on every runtime
	// (internal/apply).
	inUse := c.Image(reg, testenv.UniqueName("cri/in-use"), "1")
	c.Container(inUse, seed.Exited, nil)
	_, err = rt.RemoveImage(ctx, inUse, runtime.RemoveImageOptions{})
	if want.removesImageInUse && (err != nil || c.HasImage(inUse)) || !want.removesImageInUse && (!errors.Is(err, runtime.ErrConflict) || !c.HasImage(inUse)) {
		t.Fatalf("removing an image a stopped container uses: %v (image there: %v), want removed: %v", err, c.HasImage(inUse), want.removesImageInUse)
	}

	// One reference removes all.
	other := c.Image(reg, testenv.UniqueName("cri/other"), "a", "b")
	del, err := rt.RemoveImage(ctx, reg.Host+"/"+"x:none", runtime.RemoveImageOptions{})
	if !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("removing an image that is not there: %+v, %v", del, err)
	}
	img2, err := rt.InspectImage(ctx, other)
	if err != nil || len(img2.RepoTags) != 2 || img2.Created.IsZero() {
		t.Fatalf("inspect: %+v, %v", img2, err)
	}
	if del, err = rt.RemoveImage(ctx, img2.RepoTags[0], runtime.RemoveImageOptions{}); err != nil || !slices.Equal(del.Gone, []string{other}) {
		t.Fatalf("remove by one tag: %+v, %v", del, err)
	}
	if c.HasImage(other) {
		t.Fatal("the image stayed with its other tag")
	}
	if _, err := rt.RemoveImage(ctx, id, runtime.RemoveImageOptions{Force: true}); err == nil {
		t.Fatal("a forced removal on the CRI")
	}
}

// Following: the CRI's container events become the runtime's, and images
// that come and go are seen by the next listing.
func TestCRIEvents(t *testing.T) {
	followEvents(t, false)
}

// A runtime that serves no container events ends their stream at once
// (CRI-O without enable_pod_events, its default; found when the CRI tier
// first ran on CRI-O: the adapter took the end for a failure and followed
// nothing, so every retry was a gap and no image ever grew old): the
// adapter lists containers as often as images, and a container made since
// the last listing, exited or not, uses its image then.
func TestCRIEventsWhereTheRuntimeSendsNone(t *testing.T) {
	followEvents(t, true)
}

// A runtime that served container events and then ends their stream has
// broken it, not shown it serves none: following ends with an error (the
// agent follows again, from a gap, which counts every image as used), and
// does not fall back to listings that miss what happens between them.
func TestCRIEventStreamEndedAfterEventsIsABreakOnContainerd(t *testing.T) {
	c := testenv.Containerd(t)
	rt := runtimeBehind(t, c, func(p *faultgrpc.Proxy) { p.EndAfter(containerEvents, 1) })
	reg := testenv.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Events(ctx, time.Time{}, true, func(runtime.Event) {}) }()
	time.Sleep(300 * time.Millisecond) // the stream is open
	c.Container(c.Image(reg, testenv.UniqueName("cri/broken"), "1"), seed.Exited, nil)
	if err := <-done; err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ended its container events") {
		t.Fatalf("following a stream that ended after an event: %v, want it broken", err)
	}
}

// A stream that ends cleanly before any event, but not at once, is a
// runtime that served it and stopped (a restart on a quiet node), not one
// that serves none: following ends with an error (the agent follows
// again, from a gap), and does not fall back for good to listings, which
// would lose the container events a later runtime sends (found by an
// adversarial read: CRI-O with enable_pod_events, restarted, made the
// agent poll until its own restart).
func TestCRIEventStreamEndedQuietlyLaterIsABreak(t *testing.T) {
	c := testenv.CRIRuntime(t)
	rt := runtimeBehind(t, c, func(p *faultgrpc.Proxy) { p.EndQuietlyAfter(containerEvents, 6*time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rt.Events(ctx, time.Time{}, true, func(runtime.Event) {}); err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ended its container events") {
		t.Fatalf("following a stream that ended quietly after 6 s: %v, want it broken", err)
	}
}

// followEvents follows the runtime, directly or (endAtOnce) through a
// proxy that ends its container events' stream at once, as CRI-O does.
func followEvents(t *testing.T, endAtOnce bool) {
	c := testenv.CRIRuntime(t)
	rt := runtimeFor(t, c)
	noEvents := endAtOnce || !measuredOf(t, c).containerEvents
	if endAtOnce {
		rt = runtimeBehind(t, c, func(p *faultgrpc.Proxy) { p.EndAtOnce(containerEvents) })
	}
	rt.ImagePoll = 200 * time.Millisecond
	reg := testenv.StartRegistry(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Read at once: containerd hands a new stream what it queued while
	// nobody listened, and a stream not read holds the runtime's calls.
	got := make(chan runtime.Event, 1<<16)
	done := make(chan error, 1)
	go func() { done <- rt.Events(ctx, time.Now().Add(-time.Hour), true, func(e runtime.Event) { got <- e }) }()
	if e := <-got; e.Kind != runtime.EventGap {
		t.Fatalf("first event %+v: a since in the past is a gap (no replay)", e)
	}
	if e := <-got; e.Kind != runtime.EventNow {
		t.Fatalf("second event %+v", e)
	}
	time.Sleep(300 * time.Millisecond) // the baseline listing
	id := c.Image(reg, testenv.UniqueName("cri/ev"), "1")
	ctr := c.Container(id, seed.Exited, nil)
	want := map[string]bool{"ImageArrived " + id: true, "ContainerCreated " + ctr: true, "ContainerStarted " + ctr: true, "ContainerStopped " + ctr: true}
	if noEvents {
		want = map[string]bool{"ImageArrived " + id: true, "ContainerStarted " + ctr: true} // a use, from a listing
	}
	deadline := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case e := <-got:
			delete(want, string(e.Kind)+" "+e.ID)
			if e.Kind.OfContainer() && e.ID == ctr && e.Image != id {
				t.Fatalf("event %+v: image %q, want %s", e, e.Image, id)
			}
		case <-deadline:
			t.Fatalf("events never seen: %v", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow ended with %v", err)
	}
}
