package imageclock_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func inventory(ids ...string) engine.Inventory {
	var inv engine.Inventory
	for _, id := range ids {
		// Built a year ago: the build date must never count as arrival.
		inv.Images = append(inv.Images, engine.Image{ID: id, Created: t0.AddDate(-1, 0, 0)})
	}
	return inv
}

func arrivals(inv *engine.Inventory) map[string]time.Time {
	out := map[string]time.Time{}
	for _, img := range inv.Images {
		out[img.ID] = img.Arrived
	}
	return out
}

func TestFirstSightingIsArrival(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a")
	c.Observe(&inv, t0)
	inv = inventory("a", "b")
	c.Observe(&inv, t0.Add(time.Hour))
	got := arrivals(&inv)
	if !got["a"].Equal(t0) || !got["b"].Equal(t0.Add(time.Hour)) {
		t.Fatalf("arrivals %v", got)
	}
}

// An image that leaves and comes back (same ID, pulled again) arrives again.
func TestGoneImageIsForgotten(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a")
	c.Observe(&inv, t0)
	c.Begin("p", []string{"a"}, t0)
	empty := inventory()
	c.Observe(&empty, t0.Add(time.Hour))
	if _, ok := c.Record("a"); ok || len(c.UnfinishedFor("p")) > 0 {
		t.Fatal("a gone image is still remembered")
	}
	inv = inventory("a")
	c.Observe(&inv, t0.Add(2*time.Hour))
	if got := arrivals(&inv)["a"]; !got.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("arrival %v, want the second sighting", got)
	}
}

// The engine's LastTagTime proves an earlier arrival; a later one changes
// nothing (the image was here before it was tagged again).
func TestLastTagTimeProvesEarlierArrival(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a", "b")
	c.Observe(&inv, t0)
	inv.Images[0].LastTagTime = t0.Add(-30 * 24 * time.Hour)
	inv.Images[1].LastTagTime = t0.Add(time.Minute)
	for i := range inv.Images {
		c.ProvenBy(&inv.Images[i])
	}
	got := arrivals(&inv)
	if !got["a"].Equal(t0.Add(-30*24*time.Hour)) || !got["b"].Equal(t0) {
		t.Fatalf("arrivals %v", got)
	}
	if r, _ := c.Record("a"); !r.Arrived.Equal(t0.Add(-30 * 24 * time.Hour)) {
		t.Fatal("the proof is not remembered")
	}
}

func TestLastUse(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("running", "stopped", "evented", "unused")
	inv.Containers = []engine.Container{
		{ID: "r", ImageID: "running", State: engine.StateRunning, Created: t0.Add(-time.Hour)},
		{ID: "s", ImageID: "stopped", State: engine.StateExited, Created: t0.Add(-3 * time.Hour)},
		{ID: "e", ImageID: "evented", State: engine.StateExited, Created: t0.Add(-3 * time.Hour)},
	}
	c.ContainerUsed("e", t0.Add(-10*time.Minute))
	c.Observe(&inv, t0)
	want := map[string]time.Time{"running": t0, "stopped": t0.Add(-3 * time.Hour), "evented": t0.Add(-10 * time.Minute), "unused": {}}
	for _, img := range inv.Images {
		if !img.LastUsed.Equal(want[img.ID]) {
			t.Errorf("%s last used %v, want %v", img.ID, img.LastUsed, want[img.ID])
		}
	}
}

func TestStateSurvivesARestart(t *testing.T) {
	path := imageclock.FileFor(t.TempDir(), "ENGINE:ID/1")
	c, warn, err := imageclock.Open(path)
	if err != nil || warn != nil {
		t.Fatal(err, warn)
	}
	inv := inventory("a")
	inv.Containers = []engine.Container{{ID: "r", ImageID: "a", State: engine.StateRunning}}
	c.Observe(&inv, t0)
	c.Begin("p", []string{"a"}, t0)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	again, warn, err := imageclock.Open(path)
	if err != nil || warn != nil {
		t.Fatal(err, warn)
	}
	inv = inventory("a")
	again.Observe(&inv, t0.Add(time.Hour))
	if got := inv.Images[0]; !got.Arrived.Equal(t0) || !got.LastUsed.Equal(t0) {
		t.Fatalf("after a restart: arrived %v, last used %v", got.Arrived, got.LastUsed)
	}
	if !again.UnfinishedFor("p")["a"] {
		t.Fatal("the unfinished removal is forgotten")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// Fail closed: a corrupt state file means every image arrived now, never
// that every image is old; the bad file is kept aside for a person.
func TestCorruptStateFailsClosed(t *testing.T) {
	path := imageclock.FileFor(t.TempDir(), "e")
	if err := os.WriteFile(path, []byte(`{"version":1,"images":{"a":{"arrived":"2000-01-01T00:00:00Z"`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, warn, err := imageclock.Open(path)
	if err != nil || warn == nil {
		t.Fatalf("want a warning, got %v %v", warn, err)
	}
	inv := inventory("a")
	c.Observe(&inv, t0)
	if !inv.Images[0].Arrived.Equal(t0) {
		t.Fatalf("arrived %v, want now", inv.Images[0].Arrived)
	}
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Fatal("the corrupt file was not kept aside")
	}
}

func TestUnwritableStateIsAnError(t *testing.T) {
	// Root writes anywhere; a file where the folder should be fails for all.
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := imageclock.Open(imageclock.FileFor(blocker, "e")); err == nil {
		t.Fatal("a state folder that cannot exist was accepted")
	}
}

func TestUnfinishedIsPerPolicy(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a", "b")
	c.Observe(&inv, t0)
	c.Begin("p", []string{"a"}, t0)
	c.Begin("q", []string{"b"}, t0)
	if got := c.UnfinishedFor("p"); len(got) != 1 || !got["a"] {
		t.Fatalf("unfinished for p: %v", got)
	}
	c.Finish([]string{"a"})
	if len(c.UnfinishedFor("p")) != 0 || len(c.UnfinishedFor("q")) != 1 {
		t.Fatal("Finish forgot the wrong removal")
	}
}
