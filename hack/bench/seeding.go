package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
	"github.com/moby/moby/client"
)

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
