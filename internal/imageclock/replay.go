package imageclock

import (
	"context"

	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// replay is what a replay of the runtime's past events needs to credit a
// container's use fairly. A runtime may name a container's image in its
// events as the container was created from it (app:latest, Docker does), and a container gone
// before the clock saw it is known by that name only; the name may have
// moved since (a pull of app:latest), and the image it names now is then not
// the one the container ran. So, during a replay, such a use goes to the
// image the name names now and, failing closed, to every image of its
// repository: the one the container ran is among them, unless it is gone.
// Events read as they happen (after EventNow) name what is current.
type replay struct {
	live bool
	// byName are the containers whose image was found by name.
	byName map[string]bool
	// images are the runtime's, listed at the first such use.
	images []runtime.Image
	listed bool
}

// of is the replay's state for e: nil once the events are live.
func (p *replay) of(e runtime.Event) *replay {
	if p.live || e.Kind == runtime.EventNow {
		p.live = true
		return nil
	}
	return p
}

// foundByName notes a container whose image was found by its name.
func (p *replay) foundByName(containerID string) {
	if p == nil {
		return
	}
	if p.byName == nil {
		p.byName = map[string]bool{}
	}
	p.byName[containerID] = true
}

// mayHaveRun lists the images a replayed container event, found by name,
// may stand for: every image of the name's repository. known is false when
// the runtime's images cannot be listed.
func (p *replay) mayHaveRun(ctx context.Context, rt Source, e runtime.Event) (ids []string, known bool) {
	if p == nil || !p.byName[e.ID] {
		return nil, true
	}
	repo := match.RepositoryOf(e.Image)
	if repo == "" {
		return nil, true // an ID names one image, whenever it is read
	}
	if !p.listed {
		images, err := rt.ListImages(ctx)
		if err != nil {
			return nil, false
		}
		p.images, p.listed = images, true
	}
	for i := range p.images {
		img := &p.images[i]
		if match.InRepository(repo, img.RepoTags, img.RepoDigests) {
			ids = append(ids, img.ID)
		}
	}
	return ids, true
}
