// Package imageclock is one node's memory of its images: when each image
// arrived and when a container last used it, and which removals were begun
// and not yet reported. The engine keeps neither clock (a pull or load
// leaves no LastTagTime, and Created is the build date), so the agent and
// the CLI keep this one, in one small file per engine, written atomically.
//
// It learns from full listings (Observe), from the engine's event stream
// (Apply: container creates, starts and stops credit their image; an image
// deleted is forgotten, so a return is an arrival) and from the sweeps'
// own removals.
//
// It fails closed: a missing or unreadable file means every image arrived
// just now, never that every image is old; a span of the engine's history
// it cannot read (the engine's event buffer turned over while nobody
// listened) counts as a use and an arrival of every image at its end.
package imageclock

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
)

// formatVersion is written in the file; another version is read as corrupt.
// Version 1 files were named by the engine ID alone, which two engines on
// one machine can share: they are not read (a fresh, fail-closed start).
const formatVersion = 2

// Record is what the clock knows of one image ID.
type Record struct {
	// Arrived is the latest arrival: the first sighting since the image last
	// left, or the engine's LastTagTime when that is earlier (the engine
	// tagged it then, so it was here). Zero until a listing shows it.
	Arrived time.Time `json:"arrived,omitzero"`
	// LastUsed is the latest create, start or stop of one of its containers.
	LastUsed time.Time `json:"lastUsed,omitzero"`
}

// Removal is one image whose removal a sweep began: the image and the
// stopped containers planned to go first.
type Removal struct {
	ImageID string `json:"imageID"`
	// Image is the reference the plan named it by, for reports.
	Image string `json:"image"`
	// Refs are the references the plan removes.
	Refs []string `json:"refs,omitempty"`
	// Containers are the planned containers, ID to name.
	Containers map[string]string `json:"containers,omitempty"`
}

// Unfinished is a removal that began and is not known to be reported: the
// image may have lost its last tag and stayed, where no pattern selects it,
// or the process may have died before it reported what went.
type Unfinished struct {
	Policy string `json:"policy"`
	// Sweep is when the sweep that began it started.
	Sweep      time.Time         `json:"since"`
	Image      string            `json:"image,omitempty"`
	Refs       []string          `json:"refs,omitempty"`
	Containers map[string]string `json:"containers,omitempty"`
	// Gone: the image left the engine since (it may be back).
	Gone bool `json:"gone,omitempty"`
	// Unsettled: the sweep's result could not count what the runtime did
	// of it (a call failed, and no listing after it showed the truth):
	// kept past that sweep's report, for the next harvest to count.
	Unsettled bool `json:"unsettled,omitempty"`
}

// EngineKey names one engine's store: its ID alone is not enough (Docker
// 20.10 takes it from /etc/docker/key.json, which two engines on one
// machine share), so its data root goes with it.
type EngineKey struct {
	ID      string `json:"id"`
	RootDir string `json:"rootDir"`
}

// Harvested is what a sweep's harvest counted for its report, kept until
// that report is written: a process that dies in between must not lose it
// (the begun removals it came from are settled by then).
type Harvested struct {
	// Sweep is when the sweep that harvested it started: its report, once
	// written, names that time.
	Sweep time.Time `json:"sweep"`
	Recovered
}

type file struct {
	Version    int                   `json:"version"`
	Engine     EngineKey             `json:"engine"`
	Images     map[string]Record     `json:"images"`
	Unfinished map[string]Unfinished `json:"unfinished,omitempty"`
	// Harvested is per policy.
	Harvested map[string]Harvested `json:"harvested,omitempty"`
	// EventsSeen is the engine's time up to which its events were applied:
	// the next start replays from there.
	EventsSeen time.Time `json:"eventsSeen,omitzero"`
}

// Clock is the state of one engine. It is safe for concurrent use.
type Clock struct {
	path string // "" keeps it in memory only
	key  EngineKey
	lock *os.File // held while open: one process per engine's clock

	saveMu sync.Mutex // one Save at a time, so the last write is the newest

	mu         sync.Mutex
	images     map[string]Record
	unfinished map[string]Unfinished
	harvested  map[string]Harvested // by policy
	eventsSeen time.Time
	// containerImages maps containers to their image, from listings and
	// events, so that a stop seen after the container is gone still
	// credits its image.
	containerImages map[string]string
	dirty           bool
}

// InMemory returns a clock that persists nothing: every image it has not
// seen before arrives when it first sees it.
func InMemory() *Clock {
	return &Clock{images: map[string]Record{}, unfinished: map[string]Unfinished{}, harvested: map[string]Harvested{}, containerImages: map[string]string{}}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// FileFor is the state file of an engine in dir: named by the engine's ID
// and a digest of its data root.
func FileFor(dir string, key EngineKey) string {
	id := key.ID
	if id == "" {
		id = "unknown"
	}
	sum := sha256.Sum256([]byte(key.RootDir))
	return filepath.Join(dir, "engine-"+unsafeChars.ReplaceAllString(id, "_")+"-"+hex.EncodeToString(sum[:6])+".json")
}

// ErrInUse is a clock another process holds open.
var ErrInUse = errors.New("in use by another process")

// Open reads the engine's state file in dir, and holds it until Close: a
// second process (another agent, a CLI run) on the same engine's clock is
// refused. A missing file is a fresh start; a corrupt one is set aside as
// .corrupt and also a fresh start, with the reason returned as warning so
// the caller can log it. The error is for a state that cannot be kept at
// all (the folder is not writable, the file belongs to another engine, or
// it is in use): the caller should refuse to run rather than forget.
func Open(dir string, key EngineKey) (c *Clock, warning, err error) {
	path := FileFor(dir, key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("image clock: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("image clock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, nil, fmt.Errorf("image clock %s: %w", path, ErrInUse)
	}
	c = InMemory()
	c.path, c.key, c.lock = path, key, lock
	warning, err = c.load()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, warning, nil
}

func (c *Clock) load() (warning, err error) {
	data, err := os.ReadFile(c.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, c.Save()
	case err != nil:
		return nil, fmt.Errorf("image clock: %w", err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil || f.Version != formatVersion {
		if err == nil {
			err = fmt.Errorf("format version %d, want %d", f.Version, formatVersion)
		}
		_ = os.Rename(c.path, c.path+".corrupt")
		return fmt.Errorf("image clock %s is unreadable, starting afresh (every image counts as arrived now): %w", c.path, err), c.Save()
	}
	if f.Engine != c.key {
		return nil, fmt.Errorf("image clock %s belongs to engine %s at %s, not to %s at %s: refusing to share it",
			c.path, f.Engine.ID, f.Engine.RootDir, c.key.ID, c.key.RootDir)
	}
	maps.Copy(c.images, f.Images)
	maps.Copy(c.unfinished, f.Unfinished)
	maps.Copy(c.harvested, f.Harvested)
	c.eventsSeen = f.EventsSeen
	return nil, nil
}

// Close releases the file; the clock must not be used afterwards.
func (c *Clock) Close() {
	if c.lock != nil {
		_ = syscall.Flock(int(c.lock.Fd()), syscall.LOCK_UN)
		_ = c.lock.Close()
		c.lock = nil
	}
}

// Save writes the state atomically: a temporary file, synced, renamed over
// the old one. A crash leaves the old state or the new, never half of one.
func (c *Clock) Save() error {
	if c.path == "" {
		return nil
	}
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	data, err := json.Marshal(file{Version: formatVersion, Engine: c.key, Images: c.images, Unfinished: c.unfinished, Harvested: c.harvested, EventsSeen: c.eventsSeen})
	c.dirty = false
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := writeAtomically(c.path, data); err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return fmt.Errorf("image clock: %w", err)
	}
	return nil
}

// Dirty reports whether the clock learned something since its last Save.
func (c *Clock) Dirty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirty
}

func writeAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".imageclock-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return nil
}

// Observe brings the clock up to date with a full listing made at now, and
// stamps each image of the inventory with its arrival and last use:
//   - an image seen for the first time since it (last) arrived arrives now;
//   - an image no longer listed is forgotten (if the same ID comes back, it
//     arrives again);
//   - a running container uses its image now, and a container's creation
//     counts as a use.
func (c *Clock) Observe(inv *engine.Inventory, now time.Time) {
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
		}
	}
	for id := range c.images {
		if !listed[id] {
			delete(c.images, id)
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

// ImageGone forgets an image that left the engine (deleted by a sweep, by
// another hand, by the kubelet): if it comes back, it arrives again. A
// removal begun on it counts as done.
func (c *Clock) ImageGone(imageID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.images[imageID]; ok {
		delete(c.images, imageID)
		c.dirty = true
	}
	if u, ok := c.unfinished[imageID]; ok && !u.Gone {
		u.Gone = true
		c.unfinished[imageID] = u
		c.dirty = true
	}
}

// ImageArrived records that the image came to the engine at t (a pull, a
// load): its arrival is at least t.
func (c *Clock) ImageArrived(imageID string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.images[imageID]; at.After(r.Arrived) {
		r.Arrived = at
		c.images[imageID] = r
		c.dirty = true
	}
}

// Gap records that the engine's history before until is partly lost: any
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

// ProvenBy lowers an image's arrival to the engine's LastTagTime when that
// is earlier: the engine tagged the image then, so it was here. It returns
// the arrival. An image the clock does not know is left alone.
func (c *Clock) ProvenBy(img *engine.Image) time.Time {
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

// EventsSeen is the engine's time up to which its events were applied;
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

// Begin notes removals that are about to start, for a policy's sweep that
// started at sweep.
func (c *Clock) Begin(policy string, sweep time.Time, removals []Removal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range removals {
		// A record of an earlier sweep is this sweep's now: this sweep will
		// report what goes (a record kept by its older time would be taken
		// for one already reported).
		c.unfinished[r.ImageID] = Unfinished{Policy: policy, Sweep: sweep, Image: r.Image, Refs: slices.Clone(r.Refs), Containers: maps.Clone(r.Containers)}
		c.dirty = true
	}
}

// Recovered is what the engine lost while a policy's removals were under
// way in sweeps that never reported it (the process or the engine died).
type Recovered struct {
	// Images and Containers are display names, sorted.
	Images     []string `json:"images,omitempty"`
	Containers []string `json:"containers,omitempty"`
	// Since is the start of the earliest such sweep.
	Since time.Time `json:"since"`
}

// add takes in what another harvest recovered.
func (r *Recovered) add(o Recovered) {
	r.Images = append(r.Images, o.Images...)
	r.Containers = append(r.Containers, o.Containers...)
	if r.Since.IsZero() || (!o.Since.IsZero() && o.Since.Before(r.Since)) {
		r.Since = o.Since
	}
}

// Empty reports whether nothing was recovered.
func (r *Recovered) Empty() bool { return len(r.Images) == 0 && len(r.Containers) == 0 }

// Harvest settles the policy's begun removals against a fresh listing,
// before a new sweep plans: those of sweeps reported through reported are
// dropped (to the second: a report keeps its sweep's start to the second,
// and the agent begins no two sweeps of a policy in one second), but for
// unsettled ones, which no report could count; of the
// others, the images that are gone or lost a reference the
// plan meant to remove, and the planned containers that are gone, are
// returned (the engine lost them while their removal was under way); an
// image that stayed with a reference is left to the new plan, and an image
// that stayed without any reference stays unfinished (the next plan
// selects it by ID). What it returns is also kept, as the harvest of the
// sweep that starts at sweep, until that sweep is reported (Reported, or a
// later harvest whose reported covers it): a sweep that dies before its
// report leaves it to the next harvest, which returns it again.
func (c *Clock) Harvest(policy string, inv *engine.Inventory, reported, sweep time.Time) Recovered {
	images := make(map[string]*engine.Image, len(inv.Images))
	for i := range inv.Images {
		images[inv.Images[i].ID] = &inv.Images[i]
	}
	containers := make(map[string]bool, len(inv.Containers))
	for _, ct := range inv.Containers {
		containers[ct.ID] = true
	}
	held := map[string]bool{} // every reference some image holds now
	for i := range inv.Images {
		for _, r := range append(slices.Clone(inv.Images[i].RepoTags), inv.Images[i].RepoDigests...) {
			held[r] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var rec Recovered
	if h, ok := c.harvested[policy]; ok && !covered(h.Sweep, reported) {
		rec.add(h.Recovered) // its sweep never reported it
	}
	for id, u := range c.unfinished {
		if u.Policy != policy {
			continue
		}
		if covered(u.Sweep, reported) && !u.Unsettled {
			delete(c.unfinished, id)
			c.dirty = true
			continue
		}
		if rec.Since.IsZero() || u.Sweep.Before(rec.Since) {
			rec.Since = u.Sweep
		}
		for cid, name := range u.Containers {
			if !containers[cid] {
				rec.Containers = append(rec.Containers, engine.DisplayContainer(name, cid))
			}
		}
		img := images[id]
		if img == nil || u.Gone || removedARef(u.Refs, held) {
			rec.Images = append(rec.Images, u.Image)
		}
		switch {
		case img != nil && img.Unreferenced() && !u.Gone:
			u.Containers, u.Refs, u.Unsettled = nil, nil, false // counted
			c.unfinished[id] = u
		default:
			delete(c.unfinished, id)
		}
		c.dirty = true
	}
	slices.Sort(rec.Images)
	slices.Sort(rec.Containers)
	delete(c.harvested, policy)
	if !rec.Empty() {
		c.harvested[policy] = Harvested{Sweep: sweep, Recovered: rec}
	}
	c.dirty = true
	return rec
}

// covered reports whether a report written through reported (its sweep's
// start, to the second: the agent begins no two sweeps of a policy in one
// second) counts what the sweep that started at sweep did.
func covered(sweep, reported time.Time) bool {
	return !reported.IsZero() && !sweep.Truncate(time.Second).After(reported)
}

// removedARef reports whether one of the references (not an ID) is held
// by no image any more: removed, not moved to another image by a pull or a
// tag, which is another hand's doing.
func removedARef(refs []string, held map[string]bool) bool {
	for _, r := range refs {
		if !strings.HasPrefix(r, "sha256:") && !held[r] {
			return true
		}
	}
	return false
}

// Reported drops the policy's begun removals, and its harvest, of sweeps
// that started at or before through: their report is written. An
// unsettled removal stays: that report could not count it.
func (c *Clock) Reported(policy string, through time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.harvested[policy]; ok && !h.Sweep.After(through) {
		delete(c.harvested, policy)
		c.dirty = true
	}
	for id, u := range c.unfinished {
		if u.Policy == policy && !u.Sweep.After(through) && !u.Unsettled {
			delete(c.unfinished, id)
			c.dirty = true
		}
	}
}

// Unsettled marks the policy's begun removal of the image as one its
// sweep's result could not count (the call failed, and the runtime could
// not be listed after it): it outlives the sweep's report, and the next
// harvest counts what the runtime lost of it, but for the containers the
// result counted already.
func (c *Clock) Unsettled(policy, imageID string, counted []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.unfinished[imageID]
	if !ok || u.Policy != policy {
		return
	}
	u.Unsettled = true
	for _, id := range counted {
		delete(u.Containers, id)
	}
	c.unfinished[imageID] = u
	c.dirty = true
}

// ForgetPolicy drops every begun removal, and the harvest, of a policy
// that is gone.
func (c *Clock) ForgetPolicy(policy string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.harvested[policy]; ok {
		delete(c.harvested, policy)
		c.dirty = true
	}
	for id, u := range c.unfinished {
		if u.Policy == policy {
			delete(c.unfinished, id)
			c.dirty = true
		}
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
