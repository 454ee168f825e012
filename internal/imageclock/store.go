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
	"syscall"
	"time"
)

// formatVersion is written in the file; another version is read as corrupt.
// Version 1 files were named by the runtime ID alone, which two runtimes on
// one machine can share: they are not read (a fresh, fail-closed start).
const formatVersion = 2

type file struct {
	Version int `json:"version"`
	// Store is named "engine" on disk, as files from before the word
	// "runtime" name it.
	Store      StoreKey              `json:"engine"`
	Images     map[string]Record     `json:"images"`
	Unfinished map[string]Unfinished `json:"unfinished,omitempty"`
	// Harvested is per policy.
	Harvested map[string]Harvested `json:"harvested,omitempty"`
	// Departures and Returns are the images sweeps deleted in the last
	// ReturnWindow, and those of them that came back (an older agent's
	// file has neither: no return is counted for its removals).
	Departures map[string]Departure `json:"departures,omitempty"`
	Returns    []Return             `json:"returns,omitempty"`
	// EventsSeen is the runtime's time up to which its events were applied:
	// the next start replays from there.
	EventsSeen time.Time `json:"eventsSeen,omitzero"`
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// FileFor is the state file of a runtime in dir: named by the runtime's ID
// and a digest of its data root.
func FileFor(dir string, key StoreKey) string {
	id := key.ID
	if id == "" {
		id = "unknown"
	}
	sum := sha256.Sum256([]byte(key.RootDir))
	return filepath.Join(dir, "engine-"+unsafeChars.ReplaceAllString(id, "_")+"-"+hex.EncodeToString(sum[:6])+".json")
}

// ErrInUse is a clock another process holds open.
var ErrInUse = errors.New("in use by another process")

// Open reads the runtime's state file in dir, and holds it until Close: a
// second process (another agent, a CLI run) on the same runtime's clock is
// refused. A missing file is a fresh start; a corrupt one is set aside as
// .corrupt and also a fresh start, with the reason returned as warning so
// the caller can log it. The error is for a state that cannot be kept at
// all (the folder is not writable, the file belongs to another runtime, or
// it is in use): the caller should refuse to run rather than forget.
func Open(dir string, key StoreKey) (c *Clock, warning, err error) {
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
	if f.Store != c.key {
		return nil, fmt.Errorf("image clock %s belongs to runtime %s at %s, not to %s at %s: refusing to share it",
			c.path, f.Store.ID, f.Store.RootDir, c.key.ID, c.key.RootDir)
	}
	maps.Copy(c.images, f.Images)
	maps.Copy(c.journal.unfinished, f.Unfinished)
	maps.Copy(c.journal.harvested, f.Harvested)
	maps.Copy(c.departures, f.Departures)
	c.returns = f.Returns
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
	c.journal.mu.Lock()
	data, err := json.Marshal(file{Version: formatVersion, Store: c.key, Images: c.images, Unfinished: c.journal.unfinished, Harvested: c.journal.harvested,
		Departures: c.departures, Returns: c.returns, EventsSeen: c.eventsSeen})
	c.dirty, c.journal.dirty = false, false
	c.journal.mu.Unlock()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := writeAtomically(c.path, data); err != nil {
		c.mu.Lock()
		c.journal.mu.Lock()
		c.dirty, c.journal.dirty = true, true
		c.journal.mu.Unlock()
		c.mu.Unlock()
		return fmt.Errorf("image clock: %w", err)
	}
	return nil
}

// Dirty reports whether the clock or its journal learned something since
// the last Save.
func (c *Clock) Dirty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.journal.mu.Lock()
	defer c.journal.mu.Unlock()
	return c.dirty || c.journal.dirty
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
