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
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"golang.org/x/sync/errgroup"

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
	engineCalls := flag.Int("max-runtime-calls", apply.DefaultConcurrency, "imagecleanup apply's --max-runtime-calls")
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
		{applyMethod, func(repo string) error { return b.imagecleanup(*cliBin, repo, *engineCalls) }},
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

type method struct {
	name string
	run  func(repo string) error
}

type measurement struct {
	times []time.Duration
	calls map[string]int
	// busy is the engine's time by endpoint; beforeDelete the time from
	// the first call to the first removal, each round.
	busy         map[string]time.Duration
	beforeDelete []time.Duration
}

func (m measurement) median() time.Duration { return median(m.times) }

func median(times []time.Duration) time.Duration {
	t := append([]time.Duration(nil), times...)
	sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
	return t[len(t)/2]
}

// formatBusy lists the endpoints by the time they took, longest first.
func formatBusy(busy map[string]time.Duration) string {
	keys := make([]string, 0, len(busy))
	for k := range busy {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return busy[keys[i]] > busy[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%s", k, busy[k].Round(time.Millisecond))
	}
	return strings.Join(parts, " ")
}

func total(calls map[string]int) int {
	n := 0
	for _, v := range calls {
		n += v
	}
	return n
}

func format(calls map[string]int) string {
	keys := make([]string, 0, len(calls))
	for k := range calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, calls[k])
	}
	return strings.Join(parts, " ")
}

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

// benchRepos is the registry name every seed is tagged under.
const benchRepos = "bench.local/"

// clearEarlierRuns removes what an interrupted run left in the private
// engine: every image tagged under benchRepos and its containers. Seeds
// reuse their names from run to run, and a policy over one would take an
// earlier run's leftovers with it (and the counts would not match).
func (b *bench) clearEarlierRuns() error {
	ctx := context.Background()
	images, err := b.direct.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return err
	}
	ours := map[string]bool{}
	for _, img := range images.Items {
		if slices.ContainsFunc(img.RepoTags, func(t string) bool { return strings.HasPrefix(t, benchRepos) }) {
			ours[img.ID] = true
		}
	}
	if len(ours) == 0 {
		return nil
	}
	containers, err := b.direct.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return err
	}
	for _, c := range containers.Items {
		if ours[c.ImageID] {
			if _, err := b.direct.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
				return err
			}
		}
	}
	for id := range ours {
		if _, err := b.direct.ImageRemove(ctx, id, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return err
		}
	}
	fmt.Printf("removed %d images (and their containers) an earlier run left\n", len(ours))
	return nil
}

// seed makes repo/app-N:1 images, each with its stopped containers.
func (b *bench) seed(repo string) error {
	ctx := context.Background()
	sem := make(chan struct{}, 8)
	errs := make(chan error, b.images)
	var wg sync.WaitGroup
	for i := 0; i < b.images; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- b.seedImage(ctx, fmt.Sprintf("%s/app-%d:1", repo, i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) seedImage(ctx context.Context, ref string) error {
	if _, err := b.seeder.Image(ctx, ref); err != nil {
		return err
	}
	for c := 0; c < b.perImage; c++ {
		state := seed.Created // most never ran; a tenth ran and exited
		if c%10 == 0 {
			state = seed.Exited
		}
		id, err := b.seeder.Container(ctx, ref, state, seed.ContainerOptions{})
		if id != "" {
			b.mu.Lock()
			b.seeded = append(b.seeded, id)
			b.mu.Unlock()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) targets(repo string) ([]string, error) {
	listRes, err := b.direct.ImageList(context.Background(), client.ImageListOptions{})
	list := listRes.Items
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, img := range list {
		for _, t := range img.RepoTags {
			if strings.HasPrefix(t, repo+"/") {
				refs = append(refs, t)
			}
		}
	}
	sort.Strings(refs)
	return refs, nil
}

// leftovers counts the seed's images and containers still in the engine.
func (b *bench) leftovers(repo string) (int, error) {
	refs, err := b.targets(repo)
	if err != nil {
		return 0, err
	}
	n := len(refs)
	for _, id := range b.seeded {
		if _, err := b.direct.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{}); err == nil {
			n++
		}
	}
	b.seeded = nil
	return n, nil
}

// batchedRecipeCLI is the recipe a user who knows Docker writes: one
// docker rm of every stopped container of the target images, then one
// docker rmi of all the targets.
func (b *bench) batchedRecipeCLI(repo string) error {
	return b.recipeCLI(repo, `set -e
filters=()
for img in "$@"; do filters+=(--filter "ancestor=$img"); done
ids=$(docker ps -aq "${filters[@]}")
if [ -n "$ids" ]; then docker rm $ids >/dev/null; fi
docker rmi "$@" >/dev/null
`)
}

// recipeCLI runs a bash recipe with the docker CLI through the counting
// proxy; the seed's target images are its arguments.
func (b *bench) recipeCLI(repo, script string) error {
	refs, err := b.targets(repo)
	if err != nil {
		return err
	}
	cmd := exec.Command("bash", append([]string{"-c", script, "recipe"}, refs...)...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+b.proxy.Host())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// rawRemovals is the engine's own limit: the seeded containers removed by
// ID with n calls in flight, then the images, with nothing looked up, no
// check and no plan. No tool can be faster through the same API.
func (b *bench) rawRemovals(repo string, n int) error {
	refs, err := b.targets(repo)
	if err != nil {
		return err
	}
	ctx := context.Background()
	remove := func(ids []string, f func(string) error) error {
		var g errgroup.Group
		g.SetLimit(n)
		for _, id := range ids {
			g.Go(func() error { return f(id) })
		}
		return g.Wait()
	}
	if err := remove(b.seeded, func(id string) error {
		_, err := b.counted.ContainerRemove(ctx, id, client.ContainerRemoveOptions{})
		return err
	}); err != nil {
		return err
	}
	return remove(refs, func(ref string) error {
		_, err := b.counted.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
		return err
	})
}

// rawThroughput prints the engine's removals per second with 1 to 16 calls
// in flight: what limits any sweep on this machine.
func (b *bench) rawThroughput() {
	fmt.Println("\nengine throughput (raw API, removals by ID, nothing else):")
	fmt.Printf("%-10s %18s %14s\n", "in flight", "containers/s", "images/s")
	for _, n := range []int{1, 2, 4, 8, 16} {
		repo := fmt.Sprintf("%sraw-%d", benchRepos, n)
		if err := b.seed(repo); err != nil {
			fail(err.Error())
		}
		refs, err := b.targets(repo)
		if err != nil {
			fail(err.Error())
		}
		ctx := context.Background()
		rate := func(ids []string, f func(string) error) float64 {
			var g errgroup.Group
			g.SetLimit(n)
			start := time.Now()
			for _, id := range ids {
				g.Go(func() error { return f(id) })
			}
			if err := g.Wait(); err != nil {
				fail(err.Error())
			}
			return float64(len(ids)) / time.Since(start).Seconds()
		}
		cps := rate(b.seeded, func(id string) error {
			_, err := b.direct.ContainerRemove(ctx, id, client.ContainerRemoveOptions{})
			return err
		})
		ips := rate(refs, func(ref string) error {
			_, err := b.direct.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
			return err
		})
		b.seeded = nil
		fmt.Printf("%-10d %18.0f %14.0f\n", n, cps, ips)
	}
}

// handRecipeCLI is the article's second answer as a person scripts it:
// per image, docker rm of the containers that use it, then one docker rmi.
func (b *bench) handRecipeCLI(repo string) error {
	return b.recipeCLI(repo, `set -e
for img in "$@"; do
  ids=$(docker ps -aq --filter "ancestor=$img")
  if [ -n "$ids" ]; then docker rm $ids >/dev/null; fi
done
docker rmi "$@" >/dev/null
`)
}

// handRecipeAPI is the same recipe through the Engine API, one call at a
// time: no process per command, so it isolates the recipe from the CLI.
func (b *bench) handRecipeAPI(repo string) error {
	ctx := context.Background()
	refs, err := b.targets(repo)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		ctrsRes, err := b.counted.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("ancestor", ref)})
		ctrs := ctrsRes.Items
		if err != nil {
			return err
		}
		for _, c := range ctrs {
			if _, err := b.counted.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{}); err != nil {
				return err
			}
		}
		if _, err := b.counted.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) imagecleanup(bin, repo string, engineCalls int) error {
	policy := fmt.Sprintf(`apiVersion: imagecleanup.io/v1alpha1
kind: ImageCleanupPolicy
metadata: {name: bench}
spec:
  images: ["%s/**"]
  minImageAge: 0s
  stoppedContainers: {minStoppedAge: 0s}
`, repo)
	f, err := os.CreateTemp("", "bench-policy-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(policy); err != nil {
		return err
	}
	f.Close()
	stateDir, err := os.MkdirTemp("", "bench-state-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "apply", "-f", f.Name(), "--docker-host", b.proxy.Host(), "-o", "json", "--state-dir", stateDir,
		"--max-runtime-calls", strconv.Itoa(engineCalls))
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w\n%s", err, stdout.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		b.applyPeak = max(b.applyPeak, ru.Maxrss<<10) // kilobytes on Linux
	}
	var doc struct {
		Summary struct{ ImagesDeleted, ContainersRemoved int }
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		return err
	}
	if doc.Summary.ImagesDeleted != b.images || doc.Summary.ContainersRemoved != b.images*b.perImage {
		return fmt.Errorf("removed %d images and %d containers, want %d and %d", doc.Summary.ImagesDeleted, doc.Summary.ContainersRemoved, b.images, b.images*b.perImage)
	}
	return nil
}
