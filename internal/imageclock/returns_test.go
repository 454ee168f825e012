package imageclock_test

import (
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
)

// A sweep's removal that comes back within a day is a return of that
// policy's, whether a listing or an event sees it come back; one that comes
// back later, or an image of another policy, is not; returns are counted
// over the last day, and outlive a restart.
func TestReturnsOfASweepsRemovals(t *testing.T) {
	dir := t.TempDir()
	c, _, err := imageclock.Open(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory("listed", "evented", "late", "other")
	c.Observe(&inv, t0)
	for _, id := range []string{"listed", "evented", "late"} {
		c.Departed(id, imageclock.Departure{Policy: "p", Image: "app:" + id, Bytes: 10, At: t0})
		c.ImageLeft(id, t0.Add(time.Second)) // the runtime tells of the removal
	}
	c.ImageLeft("other", t0.Add(time.Second)) // told before the sweep records it
	c.Departed("other", imageclock.Departure{Policy: "q", Image: "other:1", Bytes: 10, At: t0})

	back := inventory("listed", "other")
	c.Observe(&back, t0.Add(3*time.Hour)) // a listing sees two come back
	c.ImageArrived("evented", t0.Add(5*time.Hour))
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c, _, err = imageclock.Open(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ImageArrived("late", t0.Add(25*time.Hour)) // more than a day after its removal

	got := c.Returns("p", t0.Add(25*time.Hour))
	if len(got) != 2 || got[0].ImageID != "listed" || got[1].ImageID != "evented" ||
		!got[0].Returned.Equal(t0.Add(3*time.Hour)) || got[1].Image != "app:evented" || got[1].Bytes != 10 {
		t.Fatalf("returns of p: %+v; want listed (at +3h) and evented", got)
	}
	if q := c.Returns("q", t0.Add(25*time.Hour)); len(q) != 1 || q[0].ImageID != "other" {
		t.Fatalf("returns of q: %+v", q)
	}
	if late := c.Returns("p", t0.Add(27*time.Hour+time.Minute)); len(late) != 1 || late[0].ImageID != "evented" {
		t.Fatalf("a day after the first return: %+v; want only the later one", late)
	}
	if none := c.Returns("p", t0.Add(30*time.Hour)); len(none) != 0 {
		t.Fatalf("after the window: %+v", none)
	}
	c.ForgetReturns("q")
	if q := c.Returns("q", t0.Add(25*time.Hour)); len(q) != 0 {
		t.Fatalf("a forgotten policy's returns: %+v", q)
	}
}

// An arrival told before the runtime told of the removal (a pull event
// replayed after a restart, a runtime whose clock runs ahead) is the
// image's first coming, not a return.
func TestAnArrivalBeforeTheRemovalIsNoReturn(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a")
	c.Observe(&inv, t0)
	c.Departed("a", imageclock.Departure{Policy: "p", Image: "app:1", At: t0})
	c.ImageGone("a")
	c.ImageArrived("a", t0.Add(time.Hour)) // the pull, replayed: its removal is not told yet
	c.ImageLeft("a", t0.Add(2*time.Hour))
	if got := c.Returns("p", t0.Add(3*time.Hour)); len(got) != 0 {
		t.Fatalf("returns %+v of an arrival told before the removal", got)
	}
	c.ImageArrived("a", t0.Add(150*time.Minute))
	if got := c.Returns("p", t0.Add(3*time.Hour)); len(got) != 1 {
		t.Fatalf("returns %+v; want the arrival after the removal", got)
	}
}

// containerd tells of a removal by the name the image went with, not its
// ID: the departure is told by any of its references.
func TestARemovalToldByNameLetsTheImageReturn(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a")
	c.Observe(&inv, t0)
	c.Departed("a", imageclock.Departure{Policy: "p", Image: "reg/app:1", Refs: []string{"reg/app:1"}, At: t0})
	c.ImageGone("a")
	c.ImageLeft("reg/app:1", t0.Add(time.Second))
	c.ImageArrived("a", t0.Add(time.Minute))
	if got := c.Returns("p", t0.Add(time.Hour)); len(got) != 1 {
		t.Fatalf("returns %+v; want the image back after its removal told by name", got)
	}
}

// An image the clock forgot because another hand removed it is not the
// sweep's: its return is no return of any policy.
func TestOnlyASweepsRemovalCanReturn(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a")
	c.Observe(&inv, t0)
	c.ImageGone("a")
	inv = inventory("a")
	c.Observe(&inv, t0.Add(time.Hour))
	if got := c.Returns("p", t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("returns %+v of an image no sweep removed", got)
	}
}

// An image pulled back while the sweep that deleted it still runs (a pod
// needs it at once: the follower sees it leave and come back before the
// sweep records its removal) is a return at once, and stays known; an
// image the sweep's own listing first saw is no return.
func TestAReturnDuringTheSweepThatRemovedIt(t *testing.T) {
	c := imageclock.InMemory()
	inv := inventory("a", "new")
	c.Observe(&inv, t0)
	c.ImageLeft("a", t0.Add(10*time.Second))    // the follower: deleted
	c.ImageArrived("a", t0.Add(30*time.Second)) // and pulled again
	if back := c.Departed("a", imageclock.Departure{Policy: "p", Image: "app:1", At: t0}); !back {
		t.Fatal("Departed did not see the image back")
	}
	if r, ok := c.Record("a"); !ok || !r.Arrived.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("the image back on the node: record %+v, %v", r, ok)
	}
	c.ImageGone("new")
	if back := c.Departed("new", imageclock.Departure{Policy: "p", Image: "new:1", At: t0}); back {
		t.Fatal("an image the sweep's listing first saw counts as back")
	}
	got := c.Returns("p", t0.Add(time.Minute))
	if len(got) != 1 || got[0].ImageID != "a" || !got[0].Returned.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("returns %+v; want a, back at +30s", got)
	}
}
