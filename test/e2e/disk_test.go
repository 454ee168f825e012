package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// Real disk pressure: a runtime whose images' filesystem is a 300 MiB tmpfs
// (Docker 20.10's data root; Docker 29's containerd root, its data root on
// the big disk), filled with 20 MiB images (10 MiB under the containerd
// store, which keeps each twice: the layer's blob and its snapshot). The policy's watermark is crossed by a file written
// into the data root while the agent runs: its disk tick sweeps without
// waiting for the interval, least recently used first (by the container
// runs it saw), and stops as soon as usage is under low. The image of a
// running container, an excluded image and a pause image stay.
func TestDiskPressureOnARealRuntime(t *testing.T) {
	c := apiClient(t)
	cli, host, dataRoot := testenv.SmallDocker(t)
	imageRoot := testenv.SmallImageRoot(t)
	emptyRuntime(t, cli) // a run that died may have left the small disk full
	imageMiB, containerdRoot := 20, ""
	if testenv.ContainerdStore(t, cli) {
		// The small runtime's containerd root is beside its data root (on
		// its own small disk): named, as an operator would on such a node.
		imageMiB, containerdRoot = 10, imageRoot
	}
	empty := usage(t, imageRoot)
	rt, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	node, group := testenv.UniqueName("node-disk"), testenv.UniqueName("group")
	createNode(t, c, node, map[string]string{"imagecleanup.test/group": group})
	startAgentWith(t, node, rt, func(o *controllers.AgentOptions) {
		o.DataRoot, o.ContainerdRoot, o.DiskTick = dataRoot, containerdRoot, 500*time.Millisecond
	})

	s := &seed.Docker{Client: cli}
	repo := "disk.local/" + testenv.UniqueName("lru")
	var lru []string // in order of last use
	var step float64 // one image and its stopped container, in percent of the disk, as the runtime stores them
	for i := range 8 {
		before := usage(t, imageRoot)
		id := seedSized(t, s, cli, imageMiB, fmt.Sprintf("%s/app:%d", repo, i))
		// Run and stop a container: the agent sees it on the event stream.
		seedContainer(t, s, cli, id, seed.Exited)
		lru = append(lru, id)
		if i == 0 {
			step = usage(t, imageRoot) - before
		}
	}
	running := seedSized(t, s, cli, imageMiB, repo+"/busy:1")
	seedContainer(t, s, cli, running, seed.Running)
	excluded := seedSized(t, s, cli, imageMiB, repo+"/keep:1")
	pause := seedSized(t, s, cli, imageMiB, "registry.k8s.io/pause:3.9")

	u0 := usage(t, imageRoot)
	t.Logf("%s: %.1f %% used when empty, %.1f %% seeded; one image %.1f %%", imageRoot, empty, u0, step)
	high := int32(math.Ceil(u0 + step))      // one image more crosses it
	low := high - int32(math.Ceil(3.5*step)) // a few removals get under it
	policy := createPolicy(t, c, testenv.UniqueName("disk"), v1alpha1.ImageCleanupPolicySpec{
		NodeSelector:      &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"imagecleanup.test/group": v1alpha1.LabelValue(group)}},
		Images:            []v1alpha1.ImagePattern{"**"},
		Exclude:           []v1alpha1.ImagePattern{v1alpha1.ImagePattern(repo + "/keep:*")},
		MinImageAge:       dur("0s"),
		StoppedContainers: v1alpha1.StoppedContainersPolicy{MinStoppedAge: dur("0s")},
		DiskUsage:         &v1alpha1.DiskUsage{HighPercent: high, LowPercent: low},
		Interval:          dur("1h"),
	})
	eventually(t, "a calm first sweep (under the watermark)", func() (bool, string) {
		r := getReport(t, c, policy.Name, node)
		return r != nil && r.Status.Disk != nil && r.Status.Disk.Watermark == "", "no calm report yet"
	})
	for _, id := range append(lru, running, excluded, pause) {
		if !testenv.ImageExists(t, cli, id) {
			t.Fatal("under the watermark an image went")
		}
	}

	// The disk fills (another tenant of the filesystem): past high. The
	// agent looks every 500 ms and may sweep before this test measures, so
	// the crossing is checked on the measure before and the filler's size.
	filler := filepath.Join(imageRoot, "filler")
	before := usage(t, imageRoot)
	if before+2*step <= float64(high) {
		t.Fatalf("the filler would not cross the watermark: %.1f %% + %.1f %% <= %d %%", before, 2*step, high)
	}
	if err := os.WriteFile(filler, make([]byte, int(step*2*3*1024*1024)), 0o600); err != nil { // two images' worth
		t.Fatal(err)
	}
	defer os.Remove(filler)
	eventually(t, "a sweep started by the disk", func() (bool, string) {
		r := getReport(t, c, policy.Name, node)
		return r != nil && r.Status.Disk != nil && r.Status.Disk.Watermark == "space", "no pressure report yet"
	})
	if u := usage(t, imageRoot); u >= float64(low) {
		t.Fatalf("the sweep ended at %.1f %%, not under low %d %%", u, low)
	}
	gone := 0
	for gone < len(lru) && !testenv.ImageExists(t, cli, lru[gone]) {
		gone++
	}
	for i, id := range lru[gone:] {
		if !testenv.ImageExists(t, cli, id) {
			r := getReport(t, c, policy.Name, node)
			t.Fatalf("app:%d went before app:%d, which was used less recently; report %+v", gone+i, gone, r.Status)
		}
	}
	if gone == 0 || gone == len(lru) {
		t.Fatalf("%d of %d images went: the sweep should stop as soon as usage is under low", gone, len(lru))
	}
	for name, id := range map[string]string{"running container's": running, "excluded": excluded, "pause": pause} {
		if !testenv.ImageExists(t, cli, id) {
			t.Fatalf("the %s image went", name)
		}
	}
	r := getReport(t, c, policy.Name, node)
	if r.Status.Disk.Path != imageRoot {
		t.Errorf("the report says it measured %q, not the images' filesystem %s", r.Status.Disk.Path, imageRoot)
	}
	t.Logf("usage of %s %d %% → %d %% (high %d, low %d, one image %.1f %%): %d least recently used images went, %d stayed",
		r.Status.Disk.Path, r.Status.Disk.UsedPercentBefore, r.Status.Disk.UsedPercentAfter, high, low, step, gone, len(lru)-gone)
}

func seedSized(t *testing.T, s *seed.Docker, cli *client.Client, mib int, ref string) string {
	t.Helper()
	id, err := s.ImageOfSize(context.Background(), mib<<20, ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.RemoveImage(cli, id) })
	return id
}

// seedContainer makes a container of the image, removed (forcibly) when the
// test ends.
func seedContainer(t *testing.T, s *seed.Docker, cli *client.Client, image string, state seed.State) {
	t.Helper()
	id, err := s.Container(context.Background(), image, state, seed.ContainerOptions{})
	if id != "" {
		t.Cleanup(func() {
			_, _ = cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true})
		})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// emptyRuntime removes every container and image of the small private
// runtime, which only this test uses (it holds the runtime's lock).
func emptyRuntime(t *testing.T, cli *client.Client) {
	t.Helper()
	ctx := context.Background()
	ctrsRes, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	ctrs := ctrsRes.Items
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
	imgsRes, err := cli.ImageList(ctx, client.ImageListOptions{All: true})
	imgs := imgsRes.Items
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		_, _ = cli.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}
}

func usage(t *testing.T, path string) float64 {
	t.Helper()
	u, err := disk.Measure(path)
	if err != nil {
		t.Fatal(err)
	}
	return u.UsedPercent
}
