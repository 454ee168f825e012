package cleanup_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/cri"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// BenchmarkCRISweepAgainstCrictl measures, on the private containerd, one
// sweep of a policy over 100 images each used by 10 exited containers
// (1,000; CRI_BENCH_IMAGES and CRI_BENCH_CONTAINERS change that), against the same objects removed raw with crictl (crictl rm of
// every container, then crictl rmi of every image: what a person would
// type, with no check at all) in the same run. It reports the sweep's time,
// crictl's, and their ratio. Run by make bench-cri (hack/bench-cri.sh).
func BenchmarkCRISweepAgainstCrictl(b *testing.B) {
	crictl := os.Getenv("CRICTL")
	if crictl == "" {
		testenv.Unavailable(b, "CRICTL names no crictl binary (hack/bench-cri.sh sets it)")
	}
	c := testenv.CRIRuntime(b)
	rt, err := cri.New(c.Endpoint)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	reg := testenv.StartRegistry(b)
	images, perImage := sizeFromEnv(b, "CRI_BENCH_IMAGES", 100), sizeFromEnv(b, "CRI_BENCH_CONTAINERS", 10)
	seedAll := func(repo string) (imageIDs, containerIDs []string) {
		for i := range images {
			id := c.Image(reg, fmt.Sprintf("%s/app-%d", repo, i), "1")
			imageIDs = append(imageIDs, id)
			containerIDs = append(containerIDs, c.Containers(id, seed.Exited, perImage)...)
		}
		return imageIDs, containerIDs
	}
	var sweepTime, crictlTime time.Duration
	for range b.N {
		b.StopTimer()
		repo := testenv.UniqueName("bench")
		seedAll(repo)
		var p v1alpha1.ImageCleanupPolicy
		p.Spec.Images = []v1alpha1.ImagePattern{v1alpha1.ImagePattern(reg.Host + "/" + repo + "/**")}
		zero := v1alpha1.Duration("0s")
		p.Spec.MinImageAge, p.Spec.StoppedContainers.MinStoppedAge = &zero, &zero
		if errs := policyschema.Check(&p); len(errs) > 0 {
			b.Fatal(errs.ToAggregate())
		}
		b.StartTimer()
		start := time.Now()
		out, err := cleanup.NewSweep(rt, &p.Spec, time.Now(), cleanup.Options{}).Run(context.Background())
		sweepTime += time.Since(start)
		b.StopTimer()
		if err != nil || len(out.Result.RemovedImages) != images || len(out.Result.RemovedContainers) != images*perImage {
			b.Fatalf("sweep: %v; removed %d images, %d containers", err, len(out.Result.RemovedImages), len(out.Result.RemovedContainers))
		}

		imageIDs, containerIDs := seedAll(testenv.UniqueName("bench"))
		start = time.Now()
		run := func(args ...string) {
			cmd := exec.Command(crictl, append([]string{"--runtime-endpoint", c.Endpoint, "--image-endpoint", c.Endpoint, "--timeout", "5m"}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("crictl %s: %v\n%s", args[0], err, out)
			}
		}
		run(append([]string{"rm"}, containerIDs...)...)
		run(append([]string{"rmi"}, imageIDs...)...)
		crictlTime += time.Since(start)
		for _, id := range imageIDs[:3] {
			if c.HasImage(id) {
				b.Fatalf("crictl left %s", strings.TrimPrefix(id, "sha256:")[:12])
			}
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(sweepTime.Seconds()/n, "sweep-s")
	b.ReportMetric(crictlTime.Seconds()/n, "crictl-s")
	b.ReportMetric(float64(sweepTime)/float64(crictlTime), "sweep/crictl")
}

// sizeFromEnv reads a positive count from the environment, def when unset.
func sizeFromEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive count", name, v)
	}
	return n
}
