// Command bench compares `imagecleanup apply` with the article's hand recipe
// (docker rm of the blocking stopped containers, then docker rmi) on
// identical seeds in the private dockerd, and prints the time ratio and the
// Docker Engine API calls each made. Run it with `make bench`.
//
// Every method works through a counting proxy in front of the engine's
// socket, so the calls of the docker CLI and of imagecleanup are counted the
// same way. Each round seeds afresh: images × containers stopped containers
// (a tenth exited, the rest created and never started).
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultproxy"
)

func main() {
	host := flag.String("docker-host", os.Getenv("TEST_DOCKER_HOST"), "the private engine (never the default socket)")
	cliBin := flag.String("imagecleanup", "bin/imagecleanup", "the imagecleanup binary")
	images := flag.Int("images", 50, "target images per seed")
	perImage := flag.Int("containers", 10, "stopped containers per image")
	rounds := flag.Int("rounds", 3, "rounds per method (the median is reported)")
	raw := flag.Bool("raw", false, "also measure the engine's own removal throughput with 1 to 16 calls in flight")
	runtimeCalls := flag.Int("max-runtime-calls", apply.DefaultConcurrency, "imagecleanup apply's --max-runtime-calls")
	hand := flag.Bool("hand", true, "also time the article's hand recipes (one image at a time: slow at 2,000 containers)")
	label := flag.String("label", "", "the engine's name in the closing ratios line (make bench gathers those lines)")
	diskOnly := flag.Bool("disk", false, "measure instead the time from above a disk watermark to under it, on the small engine (TEST_SMALL_DOCKER_HOST)")
	flag.Parse()
	if *diskOnly {
		host, root := os.Getenv("TEST_SMALL_DOCKER_HOST"), os.Getenv("TEST_SMALL_DATA_ROOT")
		if host == "" || root == "" {
			fail("--disk needs the small private dockerd: run it through make bench")
		}
		diskBench(*cliBin, host, root, *rounds)
		return
	}
	if *host == "" || strings.Contains(*host, "/var/run/docker.sock") {
		fail("set --docker-host or TEST_DOCKER_HOST to the private dockerd (hack/dockerd.sh start)")
	}
	b, err := newBench(*host, *images, *perImage)
	if err != nil {
		fail(err.Error())
	}
	defer b.close()
	if err := b.clearEarlierRuns(); err != nil {
		fail(fmt.Sprintf("clearing what an earlier, interrupted run left: %v", err))
	}

	methods := []method{
		{batchedRecipe, b.batchedRecipeCLI},
		{"hand recipe, docker CLI", b.handRecipeCLI},
		{"hand recipe, Engine API", b.handRecipeAPI},
		{applyMethod, func(repo string) error { return b.imagecleanup(*cliBin, repo, *runtimeCalls) }},
		{rawMethod, func(repo string) error { return b.rawRemovals(repo, 8) }},
	}
	if !*hand {
		methods = slices.DeleteFunc(methods, func(m method) bool { return strings.HasPrefix(m.name, "hand recipe") })
	}
	results := make([]measurement, len(methods))
	for r := 0; r < *rounds; r++ {
		for i, m := range methods {
			repo := fmt.Sprintf("%sr%d-m%d", benchRepos, r, i)
			if err := b.seed(repo); err != nil {
				fail(fmt.Sprintf("seed: %v", err))
			}
			b.proxy.Reset()
			start := time.Now()
			if err := m.run(repo); err != nil {
				fail(fmt.Sprintf("%s: %v", m.name, err))
			}
			elapsed := time.Since(start)
			left, err := b.leftovers(repo)
			if err != nil || left != 0 {
				fail(fmt.Sprintf("%s left %d images or containers behind (%v)", m.name, left, err))
			}
			results[i].times = append(results[i].times, elapsed)
			results[i].calls = b.proxy.Calls()
			results[i].busy = b.proxy.Busy()
			results[i].beforeDelete = append(results[i].beforeDelete, b.proxy.BeforeFirstDelete())
		}
	}

	fmt.Printf("seed: %d images, each blocked by %d stopped containers (%d containers); %d rounds, median shown\n\n",
		*images, *perImage, *images**perImage, *rounds)
	base := results[0].median()
	fmt.Printf("%-26s %10s %8s %10s  %s\n", "method", "time", "ratio", "API calls", "calls by endpoint")
	for i, m := range methods {
		med := results[i].median()
		fmt.Printf("%-26s %10s %7.2fx %10d  %s\n", m.name, med.Round(time.Millisecond),
			float64(med)/float64(base), total(results[i].calls), format(results[i].calls))
	}
	fmt.Println("\nratio: time / time of the batched docker CLI recipe in the same run (lower is faster)")
	fmt.Printf("\n%-26s %14s  %s\n", "where the time went", "before removal", "engine time by endpoint (last round; calls in flight together each count whole)")
	for i, m := range methods {
		fmt.Printf("%-26s %14s  %s\n", m.name, median(results[i].beforeDelete).Round(time.Millisecond), formatBusy(results[i].busy))
	}
	if *label != "" {
		// One line per engine, gathered by hack/bench.sh into its summary.
		medianOf := func(name string) time.Duration {
			i := slices.IndexFunc(methods, func(m method) bool { return m.name == name })
			return results[i].median()
		}
		recipe, apply, rawRemovals := medianOf(batchedRecipe), medianOf(applyMethod), medianOf(rawMethod)
		fmt.Printf("\nratios %s: apply/recipe %.2fx apply/raw %.2fx (recipe %s, apply %s, raw %s; %d images x %d containers, median of %d; apply's peak resident %.1f MiB)\n",
			*label, float64(apply)/float64(recipe), float64(apply)/float64(rawRemovals),
			recipe.Round(time.Millisecond), apply.Round(time.Millisecond), rawRemovals.Round(time.Millisecond), *images, *perImage, *rounds,
			float64(b.applyPeak)/(1<<20))
	}
	if *raw {
		b.rawThroughput()
	}
}

// The methods the closing ratios line compares.
const (
	batchedRecipe = "batched recipe, docker CLI"
	applyMethod   = "imagecleanup apply"
	rawMethod     = "raw removals, 8 in flight"
)

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bench:", msg)
	os.Exit(1)
}

type bench struct {
	direct   *client.Client // seeding and checks, not counted
	counted  *client.Client // the API recipe, through the proxy
	proxy    *faultproxy.Proxy
	seeder   *seed.Docker
	images   int
	perImage int

	mu     sync.Mutex
	seeded []string // containers of the current seed
	// applyPeak is the largest resident set an imagecleanup apply reached
	// (its rusage), in bytes: the same sweep code as the agent's.
	applyPeak int64
}

func newBench(host string, images, perImage int) (*bench, error) {
	direct, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, err
	}
	proxy, err := faultproxy.Start(host)
	if err != nil {
		return nil, err
	}
	counted, err := client.New(client.WithHost(proxy.Host()))
	if err != nil {
		return nil, err
	}
	if _, err := seed.Program(); err != nil {
		return nil, err
	}
	return &bench{direct: direct, counted: counted, proxy: proxy, images: images, perImage: perImage, seeder: &seed.Docker{Client: direct}}, nil
}

func (b *bench) close() {
	b.proxy.Close()
	_ = b.direct.Close()
	_ = b.counted.Close()
}
