package imageclock_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func inventory(ids ...string) runtime.Inventory {
	var inv runtime.Inventory
	for _, id := range ids {
		// Built a year ago: the build date must never count as arrival.
		inv.Images = append(inv.Images, runtime.Image{ID: id, Created: t0.AddDate(-1, 0, 0)})
	}
	return inv
}

func arrivals(inv *runtime.Inventory) map[string]time.Time {
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
	empty := inventory()
	c.Observe(&empty, t0.Add(time.Hour))
	if _, ok := c.Record("a"); ok {
		t.Fatal("a gone image is still remembered")
	}
	inv = inventory("a")
	c.Observe(&inv, t0.Add(2*time.Hour))
	if got := arrivals(&inv)["a"]; !got.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("arrival %v, want the second sighting", got)
	}
}

// The runtime's LastTagTime proves an earlier arrival; a later one changes
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
	inv.Containers = []runtime.Container{
		{ID: "r", ImageID: "running", State: runtime.StateRunning, Created: t0.Add(-time.Hour)},
		{ID: "s", ImageID: "stopped", State: runtime.StateExited, Created: t0.Add(-3 * time.Hour)},
		{ID: "e", ImageID: "evented", State: runtime.StateExited, Created: t0.Add(-3 * time.Hour)},
	}
	c.ImageUsed("evented", t0.Add(-10*time.Minute))
	c.Observe(&inv, t0)
	want := map[string]time.Time{"running": t0, "stopped": t0.Add(-3 * time.Hour), "evented": t0.Add(-10 * time.Minute), "unused": {}}
	for _, img := range inv.Images {
		if !img.LastUsed.Equal(want[img.ID]) {
			t.Errorf("%s last used %v, want %v", img.ID, img.LastUsed, want[img.ID])
		}
	}
}

var key = imageclock.StoreKey{ID: "ENGINE:ID/1", RootDir: "/var/lib/docker"}

func TestStateSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	c, warn, err := imageclock.Open(dir, key)
	if err != nil || warn != nil {
		t.Fatal(err, warn)
	}
	inv := inventory("a")
	inv.Containers = []runtime.Container{{ID: "r", ImageID: "a", State: runtime.StateRunning}}
	c.Observe(&inv, t0)
	c.Journal().Begin("p", t0, []imageclock.Removal{{ImageID: "a"}})
	c.SeenUntil(t0)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	again, warn, err := imageclock.Open(dir, key)
	if err != nil || warn != nil {
		t.Fatal(err, warn)
	}
	inv = inventory("a")
	again.Observe(&inv, t0.Add(time.Hour))
	if got := inv.Images[0]; !got.Arrived.Equal(t0) || !got.LastUsed.Equal(t0) {
		t.Fatalf("after a restart: arrived %v, last used %v", got.Arrived, got.LastUsed)
	}
	if !again.Journal().UnfinishedFor("p")["a"] || !again.EventsSeen().Equal(t0) {
		t.Fatal("the unfinished removal or the events cursor is forgotten")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 { // the file and its lock
		t.Fatalf("temporary files left: %v", entries)
	}
}

// Fail closed: a corrupt state file means every image arrived now, never
// that every image is old; the bad file is kept aside for a person.
func TestCorruptStateFailsClosed(t *testing.T) {
	dir := t.TempDir()
	path := imageclock.FileFor(dir, key)
	if err := os.WriteFile(path, []byte(`{"version":2,"images":{"a":{"arrived":"2000-01-01T00:00:00Z"`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, warn, err := imageclock.Open(dir, key)
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
	if _, _, err := imageclock.Open(blocker, key); err == nil {
		t.Fatal("a state folder that cannot exist was accepted")
	}
}

func TestUnfinishedIsPerPolicy(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a", "b")
	c.Observe(&inv, t0)
	c.Journal().Begin("p", t0, []imageclock.Removal{{ImageID: "a"}})
	c.Journal().Begin("q", t0, []imageclock.Removal{{ImageID: "b"}})
	if got := c.Journal().UnfinishedFor("p"); len(got) != 1 || !got["a"] {
		t.Fatalf("unfinished for p: %v", got)
	}
	c.Journal().Reported("p", t0)
	if len(c.Journal().UnfinishedFor("p")) != 0 || len(c.Journal().UnfinishedFor("q")) != 1 {
		t.Fatal("Reported forgot the wrong removal")
	}
}

// Finding 10 of the second review: a sweep killed mid-way never reported
// what it removed. The next sweep's harvest counts what is gone of the
// removals it began, once, and leaves the rest to the new plan.
func TestHarvestCountsWhatAnInterruptedSweepRemoved(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("gone", "tagged", "untagged")
	inv.Images[1].RepoTags = []string{"app:1"}
	c.Observe(&inv, t0)
	c.Journal().Begin("p", t0, []imageclock.Removal{
		{ImageID: "gone", Image: "app:gone", Containers: map[string]string{"c1": "job-1"}},
		{ImageID: "tagged", Image: "app:1"},
		{ImageID: "untagged", Image: "app:2", Containers: map[string]string{"c2": "job-2", "c3": "job-3"}},
	})
	inv.Images = inv.Images[1:]
	inv.Containers = []runtime.Container{{ID: "c3", ImageID: "untagged", State: runtime.StateExited}}
	t1 := t0.Add(time.Hour) // the harvesting sweep
	rec := c.Journal().Harvest("p", &inv, time.Time{}, t1)
	if !slices.Equal(rec.Images, []string{"app:gone"}) || !slices.Equal(rec.Containers, []string{"job-1 (c1)", "job-2 (c2)"}) || !rec.Since.Equal(t0) {
		t.Fatalf("recovered %+v", rec)
	}
	if u := c.Journal().UnfinishedFor("p"); len(u) != 1 || !u["untagged"] {
		t.Fatalf("still unfinished: %v, want the image without reference only", u)
	}
	// The harvesting sweep's report is written: nothing is counted again.
	if again := c.Journal().Harvest("p", &inv, t1, t1.Add(time.Hour)); !again.Empty() {
		t.Fatalf("counted twice: %+v", again)
	}
	// Removals of a sweep whose report was written are not counted again.
	c.Journal().Begin("q", t0, []imageclock.Removal{{ImageID: "gone2", Image: "x"}})
	if rec := c.Journal().Harvest("q", &inv, t0, t1); !rec.Empty() || len(c.Journal().UnfinishedFor("q")) != 0 {
		t.Fatalf("a reported sweep's removals were recovered: %+v", rec)
	}
	// Also when the sweep began within the microsecond its report names (a
	// report keeps countedThrough to the microsecond); a sweep a
	// microsecond later is not reported by it.
	begun := t0.Add(300*time.Millisecond + 700*time.Nanosecond)
	c.Journal().Begin("r", begun, []imageclock.Removal{{ImageID: "gone3", Image: "y"}})
	if rec := c.Journal().Harvest("r", &inv, begun.Truncate(time.Microsecond).Add(-time.Microsecond), t1); !slices.Equal(rec.Images, []string{"y"}) {
		t.Fatalf("an unreported sweep's removal was not recovered: %+v", rec)
	}
	c.Journal().Reported("r", t1) // the harvest's own sweep
	c.Journal().Begin("r", begun, []imageclock.Removal{{ImageID: "gone3", Image: "y"}})
	if rec := c.Journal().Harvest("r", &inv, begun.Truncate(time.Microsecond), t1.Add(time.Hour)); !rec.Empty() || len(c.Journal().UnfinishedFor("r")) != 0 {
		t.Fatalf("the removals of a sweep reported to the microsecond were recovered: %+v", rec)
	}
}

// Found by the model test (TestAgentLife, two sweeps killed one after the
// other): a harvest settles the begun removals it counts, and the clock is
// saved before the harvesting sweep's first removal; an agent that died
// after that and before the sweep's report lost what the harvest counted.
// The harvest is kept until its sweep is reported.
func TestAHarvestOutlivesASweepThatDiesBeforeItsReport(t *testing.T) {
	dir := t.TempDir()
	c, _, err := imageclock.Open(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory("a")
	inv.Images[0].RepoTags = []string{"app:1"}
	c.Observe(&inv, t0)
	c.Journal().Begin("p", t0, []imageclock.Removal{{ImageID: "a", Image: "app:1", Refs: []string{"app:1"}, Containers: map[string]string{"c1": "job-1"}}})
	// The first sweep removed c1 and died. The second harvests, saves, dies.
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	if rec := c.Journal().Harvest("p", &inv, time.Time{}, t1); !slices.Equal(rec.Containers, []string{"job-1 (c1)"}) {
		t.Fatalf("first harvest: %+v", rec)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c, _, err = imageclock.Open(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec := c.Journal().Harvest("p", &inv, time.Time{}, t2)
	if !slices.Equal(rec.Containers, []string{"job-1 (c1)"}) || !rec.Since.Equal(t0) {
		t.Fatalf("the harvest of a sweep that never reported was lost: %+v", rec)
	}
	// Reported (or covered by the report's time), it is not counted again.
	c.Journal().Reported("p", t2)
	if rec := c.Journal().Harvest("p", &inv, time.Time{}, t2.Add(time.Minute)); !rec.Empty() {
		t.Fatalf("counted again after its report: %+v", rec)
	}
	c.Journal().Begin("p", t2, []imageclock.Removal{{ImageID: "a", Image: "app:1", Refs: []string{"app:1"}}})
	inv.Images = nil
	if rec := c.Journal().Harvest("p", &inv, time.Time{}, t2.Add(2*time.Minute)); len(rec.Images) != 1 {
		t.Fatalf("harvest: %+v", rec)
	}
	if rec := c.Journal().Harvest("p", &inv, t2.Add(2*time.Minute), t2.Add(3*time.Minute)); !rec.Empty() {
		t.Fatalf("counted again although the report names its sweep: %+v", rec)
	}
}

// Finding 6 of the second review: two runtimes on one machine can share an
// ID (Docker 20.10 reads it from /etc/docker/key.json); each data root has
// its own clock, a clock is held by one process, and a file that names
// another runtime is refused.
func TestOneClockPerRuntimeStore(t *testing.T) {
	dir := t.TempDir()
	a := imageclock.StoreKey{ID: "same", RootDir: "/var/lib/docker"}
	b := imageclock.StoreKey{ID: "same", RootDir: "/srv/docker"}
	if imageclock.FileFor(dir, a) == imageclock.FileFor(dir, b) {
		t.Fatal("two data roots share one clock file")
	}
	ca, _, err := imageclock.Open(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory("x")
	ca.Observe(&inv, t0)
	if err := ca.Save(); err != nil {
		t.Fatal(err)
	}
	cb, _, err := imageclock.Open(dir, b)
	if err != nil {
		t.Fatal(err)
	}
	inv = inventory("x")
	cb.Observe(&inv, t0.Add(time.Hour))
	if !inv.Images[0].Arrived.Equal(t0.Add(time.Hour)) {
		t.Fatalf("engine b's image counts as arrived on engine a: %v", inv.Images[0].Arrived)
	}
	if _, _, err := imageclock.Open(dir, a); !errors.Is(err, imageclock.ErrInUse) {
		t.Fatalf("a second process opened a held clock: %v", err)
	}
	ca.Close()
	// A file that names another runtime (copied by hand) is refused.
	data, _ := os.ReadFile(imageclock.FileFor(dir, a))
	other := imageclock.StoreKey{ID: "other", RootDir: "/x"}
	if err := os.WriteFile(imageclock.FileFor(dir, other), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := imageclock.Open(dir, other); err == nil || !strings.Contains(err.Error(), "refusing to share") {
		t.Fatalf("another engine's clock was accepted: %v", err)
	}
}

// Finding 2 and 3 of the second review, the clock's side: an image deleted
// is forgotten, so its return is an arrival; a use is credited to the
// image even when its container is gone before anything lists it; a gap in
// the runtime's history counts as an arrival and a use of every image.
func TestEventsTeachTheClock(t *testing.T) {
	f := runtimefake.New()
	now := t0
	f.Now = func() time.Time { return now }
	f.AddImage(runtime.Image{ID: "sha256:" + strings.Repeat("a", 64), RepoTags: []string{"app:1"}})
	id := "sha256:" + strings.Repeat("a", 64)
	c := imageclock.InMemory()
	ctx := context.Background()
	catchUp := func() {
		t.Helper()
		if err := c.CatchUp(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	catchUp() // sets the cursor
	inv, _ := f.ListImages(ctx)
	c.Observe(&runtime.Inventory{Images: inv}, now)

	now = t0.Add(time.Hour) // docker run --rm: created, ran and removed between two looks
	f.AddContainer(runtime.Container{ID: "c", ImageID: id, State: runtime.StateRunning, Created: now})
	now = now.Add(time.Minute)
	f.RemoveContainerByHand("c")
	catchUp()
	if r, _ := c.Record(id); !r.LastUsed.Equal(t0.Add(time.Hour + time.Minute)) {
		t.Fatalf("last use %v, want the run's stop", r.LastUsed)
	}

	now = t0.Add(2 * time.Hour) // removed by another hand and loaded again
	f.RemoveImageByHand(id)
	f.AddImage(runtime.Image{ID: id, RepoTags: []string{"app:1"}})
	catchUp()
	inv, _ = f.ListImages(ctx)
	later := t0.Add(3 * time.Hour)
	c.Observe(&runtime.Inventory{Images: inv}, later)
	if r, _ := c.Record(id); !r.Arrived.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("arrival %v: the return of the image (its load, at %v) is not its arrival", r.Arrived, t0.Add(2*time.Hour))
	}

	now = t0.Add(4 * time.Hour) // more happened than the runtime keeps
	f.Noise(300)
	catchUp()
	if r, _ := c.Record(id); !r.Arrived.Equal(now) || !r.LastUsed.Equal(now) {
		t.Fatalf("after a gap: %+v, want arrival and use at its end", r)
	}
}

// Found by the model test (TestAgentLife): an image left in the part of the
// runtime's history that is lost (the buffer turned over) and came back in
// the part that is replayed. The gap alone raised its arrival to the gap's
// end, before its return; the load it replays is its arrival.
func TestReturnAfterAGapIsAnArrival(t *testing.T) {
	f := runtimefake.New()
	now := t0
	f.Now = func() time.Time { return now }
	id := "sha256:" + strings.Repeat("b", 64)
	f.AddImage(runtime.Image{ID: id, RepoTags: []string{"app:1"}})
	c := imageclock.InMemory()
	ctx := context.Background()
	if err := c.CatchUp(ctx, f); err != nil {
		t.Fatal(err)
	}
	inv, _ := f.ListImages(ctx)
	c.Observe(&runtime.Inventory{Images: inv}, now)

	now = t0.Add(time.Hour)
	f.RemoveImageByHand(id)
	f.Noise(300) // the delete is lost
	now = t0.Add(2 * time.Hour)
	f.AddImage(runtime.Image{ID: id, RepoTags: []string{"app:1"}})
	if err := c.CatchUp(ctx, f); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Record(id); r.Arrived.Before(now) {
		t.Fatalf("arrival %v, want its return at %v", r.Arrived, now)
	}
}

// Found by the model test (TestAgentLife): a removal begun by a sweep that
// was killed stayed on record under an older sweep's time; the next sweep
// began it again and was killed too; a report written in between made the
// record look reported, and what the second sweep removed was never
// counted. A new Begin takes the record over.
func TestBeginTakesOverAnOlderRecord(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a")
	c.Observe(&inv, t0)
	c.Journal().Begin("p", t0, []imageclock.Removal{{ImageID: "a", Image: "app:1"}})
	c.Journal().Begin("p", t0.Add(2*time.Minute), []imageclock.Removal{{ImageID: "a", Image: "app:1"}})
	empty := inventory()
	if rec := c.Journal().Harvest("p", &empty, t0.Add(time.Minute), t0.Add(3*time.Minute)); len(rec.Images) != 1 {
		t.Fatalf("the second sweep's removal was taken for one already reported: %+v", rec)
	}
}

// On a runtime that sends no container event (the CRI without
// GetContainerEvents), the poller's listings tell the clock of uses: a
// running container gone between two listings ran until the second, and
// that is a use of its image then. Told as a removal, the clock would not
// count it (a removal is no use), and the image would look idle since the
// listing before.
func TestARunningContainerGoneBetweenListingsIsAUse(t *testing.T) {
	ctx := context.Background()
	f := runtimefake.New()
	f.AddImage(runtime.Image{ID: "sha256:a"})
	c := imageclock.InMemory()
	p := runtime.Poller{Containers: true}
	if err := p.Baseline(ctx, f); err != nil {
		t.Fatal(err)
	}
	apply := func(e runtime.Event) { c.Apply(ctx, f, e) }
	f.AddContainer(runtime.Container{ID: "c1", ImageID: "sha256:a", State: runtime.StateRunning})
	if err := p.Poll(ctx, f, t0, apply); err != nil {
		t.Fatal(err)
	}
	f.RemoveContainerByHand("c1")
	if err := p.Poll(ctx, f, t0.Add(time.Hour), apply); err != nil {
		t.Fatal(err)
	}
	if rec, _ := c.Record("sha256:a"); !rec.LastUsed.Equal(t0.Add(time.Hour)) {
		t.Fatalf("last use %s, want the listing that found the running container gone (%s)", rec.LastUsed, t0.Add(time.Hour))
	}
}

// A removal whose call failed where the runtime could not be listed after
// it (the runtime died under it) is unsettled: its sweep's report does not
// drop it, and the next harvest counts what the runtime lost of it, though
// the report covers its sweep; the containers that report counted are not
// counted again.
func TestAnUnsettledRemovalOutlivesItsReport(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("failed", "done")
	c.Observe(&inv, t0)
	c.Journal().Begin("p", t0, []imageclock.Removal{
		{ImageID: "failed", Image: "app:1", Containers: map[string]string{"c1": "job-1", "c2": "job-2"}},
		{ImageID: "done", Image: "app:2"},
	})
	c.Journal().Unsettled("p", "failed", []string{"c1"})
	c.Journal().Reported("p", t0)
	if got := c.Journal().UnfinishedFor("p"); len(got) != 1 || !got["failed"] {
		t.Fatalf("after the report, unfinished: %v, want the unsettled one only", got)
	}
	inv.Images, inv.Containers = inv.Images[1:], nil // the runtime lost the image, and both containers
	rec := c.Journal().Harvest("p", &inv, t0, t0.Add(time.Minute))
	if !slices.Equal(rec.Images, []string{"app:1"}) || !slices.Equal(rec.Containers, []string{"job-2 (c2)"}) {
		t.Fatalf("recovered %+v, want app:1 and job-2 only", rec)
	}
	if got := c.Journal().UnfinishedFor("p"); len(got) != 0 {
		t.Fatalf("still unfinished: %v", got)
	}
}
