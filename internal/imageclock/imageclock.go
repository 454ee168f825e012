// Package imageclock is one node's memory of its images: when each image
// arrived and when a container last used it, and which removals were begun
// and not finished. The engine keeps neither clock (a pull or load leaves no
// LastTagTime, and Created is the build date), so the agent and the CLI keep
// this one, in one small file per engine, written atomically.
//
// It fails closed: a missing or unreadable file means every image arrived
// just now, never that every image is old.
package imageclock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
)

// formatVersion is written in the file; another version is read as corrupt.
const formatVersion = 1

// Record is what the clock knows of one image ID.
type Record struct {
	// Arrived is the first sighting, or the engine's LastTagTime when that
	// is earlier (the engine tagged it then, so it was here).
	Arrived time.Time `json:"arrived"`
	// LastUsed is the latest start or stop of one of its containers.
	LastUsed time.Time `json:"lastUsed,omitzero"`
}

// Unfinished is a removal that began and may not have finished: the image
// may have lost its last tag and stayed, where no pattern selects it.
type Unfinished struct {
	Policy string    `json:"policy"`
	Since  time.Time `json:"since"`
}

type file struct {
	Version    int                   `json:"version"`
	Engine     string                `json:"engine,omitempty"`
	Images     map[string]Record     `json:"images"`
	Unfinished map[string]Unfinished `json:"unfinished,omitempty"`
}

// Clock is the state of one engine. It is safe for concurrent use.
type Clock struct {
	path string // "" keeps it in memory only

	mu         sync.Mutex
	images     map[string]Record
	unfinished map[string]Unfinished
	// used holds container starts and stops seen on the event stream,
	// until the next listing tells whose image they ran.
	used map[string]time.Time
}

// InMemory returns a clock that persists nothing: every image it has not
// seen before arrives when it first sees it.
func InMemory() *Clock {
	return &Clock{images: map[string]Record{}, unfinished: map[string]Unfinished{}, used: map[string]time.Time{}}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// FileFor is the state file of an engine in dir.
func FileFor(dir, engineID string) string {
	if engineID == "" {
		engineID = "unknown"
	}
	return filepath.Join(dir, "engine-"+unsafeChars.ReplaceAllString(engineID, "_")+".json")
}

// Open reads the state file at path (made by FileFor). A missing file is a
// fresh start; a corrupt one is set aside as path.corrupt and also a fresh
// start, with the reason returned as warning so the caller can log it. The
// error is for a state that cannot be kept at all (the folder is not
// writable): the caller should refuse to run rather than forget.
func Open(path string) (c *Clock, warning, err error) {
	c = InMemory()
	c.path = path
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("image clock: %w", err)
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil, c.Save()
	case err != nil:
		return nil, nil, fmt.Errorf("image clock: %w", err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil || f.Version != formatVersion {
		if err == nil {
			err = fmt.Errorf("format version %d, want %d", f.Version, formatVersion)
		}
		warning = fmt.Errorf("image clock %s is unreadable, starting afresh (every image counts as arrived now): %w", path, err)
		_ = os.Rename(path, path+".corrupt")
		return c, warning, c.Save()
	}
	for id, r := range f.Images {
		c.images[id] = r
	}
	for id, u := range f.Unfinished {
		c.unfinished[id] = u
	}
	return c, nil, nil
}

// Save writes the state atomically: a temporary file, synced, renamed over
// the old one. A crash leaves the old state or the new, never half of one.
func (c *Clock) Save() error {
	if c.path == "" {
		return nil
	}
	c.mu.Lock()
	data, err := json.Marshal(file{Version: formatVersion, Images: c.images, Unfinished: c.unfinished})
	c.mu.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".imageclock-*")
	if err != nil {
		return fmt.Errorf("image clock: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("image clock: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("image clock: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("image clock: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return fmt.Errorf("image clock: %w", err)
	}
	if dir, err := os.Open(filepath.Dir(c.path)); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return nil
}

// Observe brings the clock up to date with a full listing made at now, and
// stamps each image of the inventory with its arrival and last use:
//   - an image seen for the first time arrives now;
//   - an image no longer listed is forgotten (if the same ID comes back, it
//     arrives again), and so is its unfinished removal;
//   - a running container uses its image now; a container's creation and
//     the starts and stops seen on the event stream count as uses too.
func (c *Clock) Observe(inv *engine.Inventory, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	listed := make(map[string]bool, len(inv.Images))
	for i := range inv.Images {
		id := inv.Images[i].ID
		listed[id] = true
		if _, ok := c.images[id]; !ok {
			c.images[id] = Record{Arrived: now}
		}
	}
	for id := range c.images {
		if !listed[id] {
			delete(c.images, id)
		}
	}
	for id := range c.unfinished {
		if !listed[id] {
			delete(c.unfinished, id)
		}
	}
	for i := range inv.Containers {
		ct := &inv.Containers[i]
		used := ct.Created
		if t, ok := c.used[ct.ID]; ok && t.After(used) {
			used = t
		}
		if !ct.Stopped() {
			used = now
		}
		c.touch(ct.ImageID, used)
	}
	clear(c.used)
	for i := range inv.Images {
		r := c.images[inv.Images[i].ID]
		inv.Images[i].Arrived, inv.Images[i].LastUsed = r.Arrived, r.LastUsed
	}
}

func (c *Clock) touch(imageID string, t time.Time) {
	r, ok := c.images[imageID]
	if ok && t.After(r.LastUsed) {
		r.LastUsed = t
		c.images[imageID] = r
	}
}

// ProvenBy lowers an image's arrival to the engine's LastTagTime when that
// is earlier: the engine tagged the image then, so it was here. It returns
// the arrival. An image the clock does not know is left alone.
func (c *Clock) ProvenBy(img *engine.Image) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.images[img.ID]
	if !ok {
		return img.Arrived
	}
	if !img.LastTagTime.IsZero() && img.LastTagTime.Before(r.Arrived) {
		r.Arrived = img.LastTagTime
		c.images[img.ID] = r
	}
	img.Arrived = r.Arrived
	return r.Arrived
}

// ContainerUsed notes a container start or stop seen on the event stream;
// the next Observe credits it to the container's image.
func (c *Clock) ContainerUsed(containerID string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.used[containerID]) {
		c.used[containerID] = at
	}
}

// Begin notes removals that are about to start, for a policy.
func (c *Clock) Begin(policy string, imageIDs []string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range imageIDs {
		if _, ok := c.unfinished[id]; !ok {
			c.unfinished[id] = Unfinished{Policy: policy, Since: now}
		}
	}
}

// Finish forgets removals that are settled: done, or refused with the image
// intact.
func (c *Clock) Finish(imageIDs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range imageIDs {
		delete(c.unfinished, id)
	}
}

// UnfinishedFor returns the images whose removal by the policy began and
// did not finish.
func (c *Clock) UnfinishedFor(policy string) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for id, u := range c.unfinished {
		if u.Policy == policy {
			out[id] = true
		}
	}
	return out
}

// Record returns what the clock knows of an image.
func (c *Clock) Record(imageID string) (Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.images[imageID]
	return r, ok
}
