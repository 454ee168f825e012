package imageclock

import (
	"context"
	"strings"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Source is what the clock reads of a runtime: its events, the image a
// container's event names, and (for a replay) the images it holds.
type Source interface {
	Events(ctx context.Context, since time.Time, follow bool, f func(runtime.Event)) error
	InspectImage(ctx context.Context, id string) (runtime.Image, error)
	ListImages(ctx context.Context) ([]runtime.Image, error)
}

// Apply learns from one runtime event: a container's create, start or stop
// is a use of its image (found through the clock's listings, else through
// the name the container was created from); its removal is not (a
// container that ran stopped first, and the sweeps' own removals of stopped
// containers would otherwise count as uses of the very images they clear);
// an image deleted is forgotten, so that it arrives again if it comes back,
// and an image pulled, loaded or imported arrives then; a gap in the
// runtime's history counts as a use and an arrival of every image.
func (c *Clock) Apply(ctx context.Context, rt Source, e runtime.Event) {
	c.apply(ctx, rt, e, nil)
}

// apply is Apply; past, during a replay, also credits a container's use
// to every image its name may have named then (replay.go).
func (c *Clock) apply(ctx context.Context, rt Source, e runtime.Event, past *replay) {
	switch e.Kind {
	case runtime.EventGap:
		c.Gap(e.Time)
	case runtime.ImageRemoved:
		c.ImageLeft(e.ID, e.Time)
	case runtime.ImageArrived:
		// After a gap, the image may have left in the part of the history
		// that is lost, and come back in the part that is not.
		if imageID := resolve(ctx, rt, e.ID); imageID != "" {
			c.ImageArrived(imageID, e.Time)
		}
	case runtime.ContainerCreated, runtime.ContainerStarted, runtime.ContainerStopped:
		imageID := c.imageOf(e.ID)
		if imageID == "" {
			if imageID = resolve(ctx, rt, e.Image); imageID != "" {
				c.setImageOf(e.ID, imageID)
			}
			past.foundByName(e.ID)
		}
		if imageID != "" {
			c.ImageUsed(imageID, e.Time)
		}
		ids, known := past.mayHaveRun(ctx, rt, e)
		if !known {
			c.Gap(e.Time) // fail closed: every image counts as used then
		}
		for _, id := range ids {
			c.ImageUsed(id, e.Time)
		}
	}
	c.SeenUntil(e.Time)
}

// resolve finds the image ID a container's image name stands for now.
func resolve(ctx context.Context, rt Source, name string) string {
	if name == "" {
		return ""
	}
	if strings.HasPrefix(name, "sha256:") && len(name) == len("sha256:")+64 {
		return name
	}
	img, err := rt.InspectImage(ctx, name)
	if err != nil {
		return "" // gone already: nothing left to protect
	}
	return img.ID
}

// Follow applies the runtime's events from the clock's cursor on (those the
// runtime still holds first) until ctx ends or the stream breaks.
func (c *Clock) Follow(ctx context.Context, rt Source) error {
	past := &replay{}
	return rt.Events(ctx, c.EventsSeen(), true, func(e runtime.Event) { c.apply(ctx, rt, e, past.of(e)) })
}

// CatchUp applies the events since the clock's cursor up to the runtime's
// present: what a process that does not follow the runtime (the CLI, between
// two runs) missed.
func (c *Clock) CatchUp(ctx context.Context, rt Source) error {
	past := &replay{}
	return rt.Events(ctx, c.EventsSeen(), false, func(e runtime.Event) { c.apply(ctx, rt, e, past.of(e)) })
}
