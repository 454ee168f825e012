package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"
)

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

func (b *bench) imagecleanup(bin, repo string, runtimeCalls int) error {
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
		"--max-runtime-calls", strconv.Itoa(runtimeCalls))
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
