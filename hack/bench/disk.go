package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
)

// diskBench measures, on an engine whose data root is a small disk, the
// time from a disk above its high watermark to under its low one:
// `imagecleanup apply` with diskUsage (one image at a time, measuring the
// disk before each) against raw removals of the same number of images and
// their containers, with 1 and 8 calls in flight.
func diskBench(cliBin, host, dataRoot string, rounds int) {
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		fail(err.Error())
	}
	defer cli.Close()
	const images, perImage, mib = 10, 5, 20
	var apply, raw1, raw8 []time.Duration
	var removed int
	var before, after float64
	for r := range rounds {
		repo := fmt.Sprintf("bench-disk.local/r%d", r)
		ids := seedDisk(cli, repo+"-a", images, perImage, mib)
		u := measure(dataRoot)
		high, low := int32(math.Floor(u))-5, int32(math.Floor(u))-30
		start := time.Now()
		removed, before, after = applyDisk(cliBin, host, dataRoot, repo+"-a", high, low)
		apply = append(apply, time.Since(start))
		clearSeed(cli, ids)
		for _, n := range []int{1, 8} {
			ids := seedDisk(cli, fmt.Sprintf("%s-raw%d", repo, n), images, perImage, mib)
			start := time.Now()
			rawRemove(cli, ids[:removed], n)
			if n == 1 {
				raw1 = append(raw1, time.Since(start))
			} else {
				raw8 = append(raw8, time.Since(start))
			}
			clearSeed(cli, ids)
		}
	}
	base := measurement{times: raw8}.median()
	fmt.Printf("\ndisk watermark: %d images of %d MiB with %d stopped containers each on a 300 MiB disk; %d rounds, median\n",
		images, mib, perImage, rounds)
	fmt.Printf("usage %.1f %% → %.1f %%: %d images and their containers went\n", before, after, removed)
	for _, row := range []struct {
		name  string
		times []time.Duration
	}{{"imagecleanup apply, diskUsage", apply}, {"raw removals, 1 in flight", raw1}, {"raw removals, 8 in flight", raw8}} {
		med := measurement{times: row.times}.median()
		fmt.Printf("%-32s %10s %7.2fx\n", row.name, med.Round(time.Millisecond), float64(med)/float64(base))
	}
	fmt.Println("ratio: time / raw removals with 8 in flight of the same images, same run")
}

type seededImage struct {
	id         string
	containers []string
}

func seedDisk(cli *client.Client, repo string, images, perImage, mib int) []seededImage {
	ctx := context.Background()
	s := &seed.Docker{Client: cli}
	var out []seededImage
	for i := range images {
		id, err := s.ImageOfSize(ctx, mib<<20, fmt.Sprintf("%s/app:%d", repo, i))
		if err != nil {
			fail(err.Error())
		}
		img := seededImage{id: id}
		for range perImage {
			c, err := s.Container(ctx, id, seed.Created, seed.ContainerOptions{})
			if err != nil {
				fail(err.Error())
			}
			img.containers = append(img.containers, c)
		}
		out = append(out, img)
	}
	return out
}

func applyDisk(cliBin, host, dataRoot, repo string, high, low int32) (removed int, before, after float64) {
	policy := fmt.Sprintf(`apiVersion: imagecleanup.io/v1alpha1
kind: ImageCleanupPolicy
metadata: {name: bench-disk}
spec:
  images: ["%s/**"]
  minImageAge: 0s
  stoppedContainers: {minStoppedAge: 0s}
  diskUsage: {highPercent: %d, lowPercent: %d}
`, repo, high, low)
	f, err := os.CreateTemp("", "bench-disk-*.yaml")
	if err != nil {
		fail(err.Error())
	}
	defer os.Remove(f.Name())
	_, _ = f.WriteString(policy)
	f.Close()
	state, _ := os.MkdirTemp("", "bench-disk-state-")
	defer os.RemoveAll(state)
	var stdout bytes.Buffer
	cmd := exec.Command(cliBin, "apply", "-f", f.Name(), "--docker-host", host, "--data-root", dataRoot, "--state-dir", state, "-o", "json")
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fail(fmt.Sprintf("imagecleanup apply: %v\n%s", err, stdout.String()))
	}
	var doc struct {
		Summary struct{ ImagesDeleted int }
		Disk    struct{ UsedPercentBefore, UsedPercentAfter float64 }
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		fail(err.Error())
	}
	if doc.Disk.UsedPercentAfter >= float64(low) {
		fail(fmt.Sprintf("apply left the disk at %.1f %%, not under %d %%", doc.Disk.UsedPercentAfter, low))
	}
	return doc.Summary.ImagesDeleted, doc.Disk.UsedPercentBefore, doc.Disk.UsedPercentAfter
}

func rawRemove(cli *client.Client, images []seededImage, n int) {
	ctx := context.Background()
	var g errgroup.Group
	g.SetLimit(n)
	for _, img := range images {
		for _, c := range img.containers {
			g.Go(func() error { _, err := cli.ContainerRemove(ctx, c, client.ContainerRemoveOptions{}); return err })
		}
	}
	if err := g.Wait(); err != nil {
		fail(err.Error())
	}
	for _, img := range images {
		g.Go(func() error {
			_, err := cli.ImageRemove(ctx, img.id, client.ImageRemoveOptions{PruneChildren: true})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		fail(err.Error())
	}
}

// clearSeed removes whatever of a seed is left.
func clearSeed(cli *client.Client, images []seededImage) {
	ctx := context.Background()
	for _, img := range images {
		for _, c := range img.containers {
			_, _ = cli.ContainerRemove(ctx, c, client.ContainerRemoveOptions{Force: true})
		}
		_, _ = cli.ImageRemove(ctx, img.id, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}
}

func measure(path string) float64 {
	u, err := disk.Measure(path)
	if err != nil {
		fail(err.Error())
	}
	return u.UsedPercent
}
