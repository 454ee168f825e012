package cleanup_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/cri"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtimehost"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// Disk watermarks on a CRI runtime: the small one keeps its images on a
// 300 MiB tmpfs (containerd's root; CRI-O's storage root), whose folder it
// names (ImageFsInfo) and the adapter proves by the images' records there. Above the high watermark, a sweep
// removes the least recently used first (by their containers' finish
// times), and stops under the low one: the most recently used stay.
func TestCRIDiskWatermarks(t *testing.T) {
	c := testenv.SmallCRI(t)
	rt, err := cri.New(c.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx := context.Background()
	host, err := runtimehost.Open(ctx, rt, runtimehost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	measure := host.Disk(ctx)
	usage := func() disk.Usage {
		t.Helper()
		u, err := measure()
		if err != nil {
			t.Fatalf("measure the images' filesystem: %v", err)
		}
		return u
	}
	reg := testenv.StartRegistry(t)
	repo := testenv.UniqueName("disk")
	// A container the policy does not select, as a node always has one (the
	// agent's own): CRI-O's image store is proven by its containers' records.
	c.Container(c.Image(reg, repo+"-anchor", "1"), seed.Exited, nil)
	var lru []string // in order of last use
	var step float64
	for i := range 6 {
		before := usage().UsedPercent
		ref := fmt.Sprintf("%s/%s/app:%d", reg.Host, repo, i)
		reg.PushSized(t, fmt.Sprintf("%s/app", repo), fmt.Sprint(i), 10)
		id := c.Pull(ref)
		c.Container(id, seed.Exited, nil) // its last use, now
		lru = append(lru, id)
		if i == 0 {
			step = usage().UsedPercent - before
		}
		time.Sleep(10 * time.Millisecond) // distinct finish times
	}
	u0 := usage()
	if want := cmp.Or(host.Info.ContainerdRoot, host.Info.RootDir); u0.Path != host.ImageRoot() || host.ImageRoot() != want {
		t.Fatalf("measured %s, the runtime's images are in %s", u0.Path, want)
	}
	high := int32(math.Floor(u0.UsedPercent)) - 1 // above it now
	low := high - int32(math.Ceil(2.5*step))      // three removals get under it
	var p v1alpha1.ImageCleanupPolicy
	p.Spec.Images = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(reg.Host + "/" + repo + "/**")}
	zero := v1alpha1.Duration("0s")
	p.Spec.MinImageAge, p.Spec.StoppedContainers.MinStoppedAge = &zero, &zero
	p.Spec.DiskUsage = &v1alpha1.DiskUsage{HighPercent: high, LowPercent: low}
	if errs := policyschema.Check(&p); len(errs) > 0 {
		t.Fatalf("test policy: %v", errs.ToAggregate())
	}
	t.Logf("%s: %.1f %% used, one image %.1f %%; high %d, low %d", u0.Path, u0.UsedPercent, step, high, low)

	out, err := cleanup.NewSweep(rt, &p.Spec, time.Now(), cleanup.Options{Clock: host.Clock, Disk: measure}).Run(ctx)
	if err != nil || len(out.Result.Failed) > 0 {
		t.Fatalf("sweep: %v %+v", err, out.Result.Failed)
	}
	if out.Disk == nil || out.Disk.Pressure != "space" || out.Disk.After.UsedPercent >= float64(low) {
		t.Fatalf("disk %+v: want a sweep under pressure that ends under %d %%", out.Disk, low)
	}
	gone := 0
	for gone < len(lru) && !c.HasImage(lru[gone]) {
		gone++
	}
	if gone == 0 || gone == len(lru) || slices.ContainsFunc(lru[gone:], func(id string) bool { return !c.HasImage(id) }) {
		t.Fatalf("want the least recently used removed first, and some kept: %d gone; %+v", gone, out.Result)
	}
}
