package runtime

import (
	"context"
	"time"
)

// Poller tells, from listings, what a runtime sends no event of (the CRI
// tells of containers only): images that arrived or left since the last
// listing, as pull and delete events, and, with Containers (a runtime that
// sends no container event either), containers that ran or went since, as
// uses of their images. What happens between two listings and is undone
// before the second is not seen.
type Poller struct {
	// Containers: list containers too.
	Containers bool

	images  map[string]bool
	running map[string]bool // by container ID: running at the last listing
}

// Baseline takes the first listing, of images, and of containers with
// Containers: nothing is told of it.
func (p *Poller) Baseline(ctx context.Context, rt Runtime) error {
	imgs, err := rt.ListImages(ctx)
	if err != nil {
		return err
	}
	p.images = map[string]bool{}
	for _, img := range imgs {
		p.images[img.ID] = true
	}
	if p.Containers {
		return p.baselineContainers(ctx, rt)
	}
	return nil
}

// FollowContainers lists containers from now on too (a runtime found to
// send no container events): this listing is their baseline, so that a
// container made before the next one is told as a use.
func (p *Poller) FollowContainers(ctx context.Context, rt Runtime) error {
	p.Containers = true
	return p.baselineContainers(ctx, rt)
}

func (p *Poller) baselineContainers(ctx context.Context, rt Runtime) error {
	cs, err := rt.ListContainers(ctx)
	if err != nil {
		return err
	}
	p.running = map[string]bool{}
	for _, c := range cs {
		p.running[c.ID] = !c.Stopped()
	}
	return nil
}

// Poll lists again and tells f what changed since, at now.
func (p *Poller) Poll(ctx context.Context, rt Runtime, now time.Time, f func(Event)) error {
	imgs, err := rt.ListImages(ctx)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, img := range imgs {
		listed[img.ID] = true
		if !p.images[img.ID] {
			f(Event{Kind: ImageArrived, ID: img.ID, Time: now})
		}
	}
	for id := range p.images {
		if !listed[id] {
			f(Event{Kind: ImageRemoved, ID: id, Time: now})
		}
	}
	p.images = listed
	if !p.Containers {
		return nil
	}
	cs, err := rt.ListContainers(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range cs {
		seen[c.ID] = true
		wasRunning, known := p.running[c.ID]
		if !c.Stopped() || wasRunning || !known {
			// Running now, stopped since the last listing, or made (and
			// maybe run) since: used until now.
			f(Event{Kind: ContainerStarted, ID: c.ID, Image: c.ImageID, Time: now})
		}
	}
	for id, wasRunning := range p.running {
		if wasRunning && !seen[id] { // gone since: it may have run until now, a stop now
			f(Event{Kind: ContainerStopped, ID: id, Time: now})
		}
	}
	p.running = map[string]bool{}
	for _, c := range cs {
		p.running[c.ID] = !c.Stopped()
	}
	return nil
}
