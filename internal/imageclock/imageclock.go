// Package imageclock is one node's memory of its images: when each image
// arrived and when a container last used it (Clock), and which removals
// were begun and not yet reported (Journal, kept in the clock's file). The
// runtime keeps neither clock (a pull or load
// leaves no LastTagTime, and Created is the build date), so the agent and
// the CLI keep this one, in one small file per runtime, written atomically.
//
// It learns from full listings (Observe), from the runtime's event stream
// (Apply: container creates, starts and stops credit their image; an image
// deleted is forgotten, so a return is an arrival) and from the sweeps'
// own removals, which it keeps for a day to see which of them come back
// (Departed, Returns).
//
// It fails closed: a missing or unreadable file means every image arrived
// just now, never that every image is old; a span of the runtime's history
// it cannot read (the runtime's event buffer turned over while nobody
// listened) counts as a use and an arrival of every image at its end.
package imageclock

import (
	"os"
	"sync"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Record is what the clock knows of one image ID.
type Record struct {
	// Arrived is the latest arrival: the first sighting since the image last
	// left, or the runtime's LastTagTime when that is earlier (the runtime
	// tagged it then, so it was here). Zero until a listing shows it.
	Arrived time.Time `json:"arrived,omitzero"`
	// LastUsed is the latest create, start or stop of one of its containers.
	LastUsed time.Time `json:"lastUsed,omitzero"`
}

// StoreKey names one runtime's store: its ID alone is not enough (Docker
// 20.10 takes it from /etc/docker/key.json, which two runtimes on one
// machine share), so its data root goes with it.
type StoreKey struct {
	ID      string `json:"id"`
	RootDir string `json:"rootDir"`
}

// Clock is what one runtime's images went through: arrivals and uses, and
// the journal of begun removals kept with them. It is safe for concurrent use.
type Clock struct {
	path string // "" keeps it in memory only
	key  StoreKey
	lock *os.File // held while open: one process per runtime's clock

	saveMu sync.Mutex // one Save at a time, so the last write is the newest

	mu         sync.Mutex
	images     map[string]Record
	eventsSeen time.Time
	// containerImages maps containers to their image, from listings and
	// events, so that a stop seen after the container is gone still
	// credits its image.
	containerImages map[string]string
	// departures are the images sweeps deleted, by ID, until they return
	// or ReturnWindow passes; returns are those that came back in time.
	departures map[string]Departure
	returns    []Return
	// fresh are the images whose record an arrival made after the clock
	// last saw them gone, by when (not kept in the file): what lets a
	// sweep see that an image it deleted came back before it ended.
	fresh map[string]time.Time
	// left are when the runtime last told each image left (not kept).
	left  map[string]time.Time
	dirty bool

	// journal is kept in the same file; its lock is taken after mu.
	journal Journal
}

// Journal is the record of the removals begun on this runtime, kept with
// the clock.
func (c *Clock) Journal() *Journal { return &c.journal }

// InMemory returns a clock that persists nothing: every image it has not
// seen before arrives when it first sees it.
func InMemory() *Clock {
	return &Clock{images: map[string]Record{}, containerImages: map[string]string{}, departures: map[string]Departure{},
		fresh: map[string]time.Time{}, left: map[string]time.Time{}, journal: newJournal()}
}

// Observe brings the clock up to date with a full listing made at now, and
// stamps each image of the inventory with its arrival and last use:
//   - an image seen for the first time since it (last) arrived arrives now;
//   - an image no longer listed is forgotten (if the same ID comes back, it
//     arrives again);
//   - a running container uses its image now, and a container's creation
//     counts as a use.
func (c *Clock) Observe(inv *runtime.Inventory, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty = true
	listed := make(map[string]bool, len(inv.Images))
	for i := range inv.Images {
		id := inv.Images[i].ID
		listed[id] = true
		if r := c.images[id]; r.Arrived.IsZero() {
			r.Arrived = now
			c.images[id] = r
			c.fresh[id] = now
			c.arrivedBack(id, now)
		}
	}
	for id := range c.images {
		if !listed[id] {
			delete(c.images, id)
			delete(c.fresh, id)
			c.leftAt(id, now)
		}
	}
	clear(c.containerImages)
	for i := range inv.Containers {
		ct := &inv.Containers[i]
		c.containerImages[ct.ID] = ct.ImageID
		used := ct.Created
		if !ct.Stopped() {
			used = now
		}
		c.touch(ct.ImageID, used, false)
	}
	for i := range inv.Images {
		r := c.images[inv.Images[i].ID]
		inv.Images[i].Arrived, inv.Images[i].LastUsed = r.Arrived, r.LastUsed
	}
}

// touch records a use; c.mu is held. create makes a record (without an
// arrival) for an image not listed yet.
func (c *Clock) touch(imageID string, t time.Time, create bool) {
	r, ok := c.images[imageID]
	if (ok || create) && t.After(r.LastUsed) {
		r.LastUsed = t
		c.images[imageID] = r
		c.dirty = true
	}
}

// ImageUsed records a use of the image at t: a container of it was
// created, started or stopped then (an event, or an inspected finish time).
func (c *Clock) ImageUsed(imageID string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touch(imageID, at, true)
}

// ImageGone forgets an image that left the runtime (deleted by a sweep, by
// another hand, by the kubelet): if it comes back, it arrives again. A
// removal begun on it counts as done.
func (c *Clock) ImageGone(imageID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone(imageID)
}

// ImageLeft is ImageGone told by the runtime at its time at (an event, a
// listing): a departure's return must come after it.
func (c *Clock) ImageLeft(imageID string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone(imageID)
	c.leftAt(imageID, at)
}

// gone is ImageGone; c.mu is held.
func (c *Clock) gone(imageID string) {
	if _, ok := c.images[imageID]; ok {
		delete(c.images, imageID)
		c.dirty = true
	}
	delete(c.fresh, imageID)
	c.journal.gone(imageID)
}

// ImageArrived records that the image came to the runtime at t (a pull, a
// load): its arrival is at least t.
func (c *Clock) ImageArrived(imageID string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, known := c.images[imageID]; at.After(r.Arrived) {
		if !known || r.Arrived.IsZero() {
			c.fresh[imageID] = at
		}
		r.Arrived = at
		c.images[imageID] = r
		c.dirty = true
	}
	c.arrivedBack(imageID, at)
}

// Gap records that the runtime's history before until is partly lost: any
// image may have left and come back, and any may have been used, in that
// span. Every image known counts as arrived and used at until (fail
// closed); listings after it show nothing older.
func (c *Clock) Gap(until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, r := range c.images {
		if !r.Arrived.IsZero() && r.Arrived.Before(until) {
			r.Arrived = until
		}
		if r.LastUsed.Before(until) {
			r.LastUsed = until
		}
		c.images[id] = r
	}
	c.dirty = true
}

// ProvenBy lowers an image's arrival to the runtime's LastTagTime when that
// is earlier: the runtime tagged the image then, so it was here. It returns
// the arrival. An image the clock does not know is left alone.
func (c *Clock) ProvenBy(img *runtime.Image) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.images[img.ID]
	if !ok || r.Arrived.IsZero() {
		return img.Arrived
	}
	if !img.LastTagTime.IsZero() && img.LastTagTime.Before(r.Arrived) {
		r.Arrived = img.LastTagTime
		c.images[img.ID] = r
		c.dirty = true
	}
	img.Arrived = r.Arrived
	return r.Arrived
}

// EventsSeen is the runtime's time up to which its events were applied;
// zero when none ever were.
func (c *Clock) EventsSeen() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eventsSeen
}

// SeenUntil moves the events cursor forward to t.
func (c *Clock) SeenUntil(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.eventsSeen) {
		c.eventsSeen = t
		c.dirty = true
	}
}

// imageOf returns the image a container was last seen with.
func (c *Clock) imageOf(containerID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.containerImages[containerID]
}

func (c *Clock) setImageOf(containerID, imageID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.containerImages[containerID] = imageID
}

// Record returns what the clock knows of an image.
func (c *Clock) Record(imageID string) (Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.images[imageID]
	return r, ok
}
