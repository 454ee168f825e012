package imageclock

import (
	"maps"
	"slices"
	"time"
)

// ReturnWindow is how soon after a sweep removed it an image that comes
// back (pulled or loaded again) counts as returned: a policy that removes
// what the node needs again within a day costs the node a pull, and
// gains it nothing. Returns are also counted over this window.
const ReturnWindow = 24 * time.Hour

// maxDepartures bounds what the clock keeps of departures and of returns
// (the oldest go first): a node's removals of one day, with room.
const maxDepartures = 10000

// Departure is an image a sweep of Policy deleted at At.
type Departure struct {
	Policy string `json:"policy"`
	// Image is the reference the sweep named it by.
	Image string `json:"image"`
	// Refs are the references it went with: a runtime that tells of a
	// removal by name (containerd) names one of them.
	Refs  []string  `json:"refs,omitempty"`
	Bytes int64     `json:"bytes,omitempty"`
	At    time.Time `json:"at"`
	// Left is when the runtime told that the image left (its removal
	// event, or a listing without it), in the runtime's time: only an
	// arrival after it is a return (an arrival told before, or replayed
	// after a restart, is the image's first coming). Zero until then.
	Left time.Time `json:"left,omitzero"`
}

// Return is a departure that came back at Returned, within ReturnWindow.
type Return struct {
	Departure
	ImageID  string    `json:"imageID"`
	Returned time.Time `json:"returned"`
}

// Departed records that a sweep of policy, begun at d.At, deleted the
// image: if the same image ID arrives within ReturnWindow, it counts as
// returned. back: the clock saw it leave and come back while the sweep
// ran (a pod pulled it at once), which is a return already; the caller
// must then not forget the image, which is here.
func (c *Clock) Departed(imageID string, d Departure) (back bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty = true
	d.Left = c.left[imageID]
	for _, ref := range d.Refs {
		if at := c.left[ref]; at.After(d.Left) {
			d.Left = at
		}
	}
	if d.Left.Before(d.At) {
		d.Left = time.Time{} // an older removal: this one is not told yet
	}
	if at, ok := c.fresh[imageID]; ok && !d.Left.IsZero() && at.After(d.Left) {
		c.returns = append(c.returns, Return{Departure: d, ImageID: imageID, Returned: at})
		c.trim()
		return true
	}
	c.departures[imageID] = d
	c.trim()
	return false
}

// trim keeps the ledgers within maxDepartures, dropping the oldest tenth
// at once when one is full (not one scan per removal); c.mu is held.
func (c *Clock) trim() {
	if len(c.departures) > maxDepartures {
		ids := slices.SortedFunc(maps.Keys(c.departures), func(a, b string) int {
			return c.departures[a].At.Compare(c.departures[b].At)
		})
		for _, id := range ids[:len(ids)-maxDepartures*9/10] {
			delete(c.departures, id)
		}
	}
	if len(c.returns) > maxDepartures {
		c.returns = slices.Delete(c.returns, 0, len(c.returns)-maxDepartures*9/10)
	}
}

// arrivedBack notes an arrival of the image at at: a departure of it
// within ReturnWindow before is a return. c.mu is held.
func (c *Clock) arrivedBack(imageID string, at time.Time) {
	d, ok := c.departures[imageID]
	if !ok || d.Left.IsZero() || !at.After(d.Left) {
		return
	}
	delete(c.departures, imageID)
	c.dirty = true
	if at.Sub(d.At) > ReturnWindow {
		return
	}
	c.returns = append(c.returns, Return{Departure: d, ImageID: imageID, Returned: at})
	c.trim()
}

// Returns are the returns of the policy's removals seen in the
// ReturnWindow up to now, oldest first; older ones and departures that
// can no longer return in time are dropped.
func (c *Clock) Returns(policy string, now time.Time) []Return {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	var out []Return
	for _, r := range c.returns {
		if r.Policy == policy {
			out = append(out, r)
		}
	}
	return out
}

// leftAt notes that the runtime told, at its time at, that the image
// left; c.mu is held.
func (c *Clock) leftAt(imageID string, at time.Time) {
	c.left[imageID] = at
	mark := func(id string, d Departure) {
		if d.Left.IsZero() && !at.Before(d.At) {
			d.Left = at
			c.departures[id] = d
		}
	}
	if d, ok := c.departures[imageID]; ok {
		mark(imageID, d)
		return
	}
	for id, d := range c.departures { // told by a name it went with
		if slices.Contains(d.Refs, imageID) {
			mark(id, d)
		}
	}
}

// expire drops what fell out of the window at now; c.mu is held.
func (c *Clock) expire(now time.Time) {
	since := now.Add(-ReturnWindow)
	for id, at := range c.left {
		if at.Before(since) {
			delete(c.left, id)
		}
	}
	for id, d := range c.departures {
		if d.At.Before(since) {
			delete(c.departures, id)
			c.dirty = true
		}
	}
	kept := slices.DeleteFunc(c.returns, func(r Return) bool { return r.Returned.Before(since) })
	if len(kept) != len(c.returns) {
		c.dirty = true
	}
	c.returns = kept
}

// ForgetReturns drops the policy's departures and returns: a policy that
// no longer concerns the node (deleted, or its selector left the node)
// starts afresh if it comes back, as its report does.
func (c *Clock) ForgetReturns(policy string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, d := range c.departures {
		if d.Policy == policy {
			delete(c.departures, id)
			c.dirty = true
		}
	}
	kept := slices.DeleteFunc(c.returns, func(r Return) bool { return r.Policy == policy })
	if len(kept) != len(c.returns) {
		c.dirty = true
	}
	c.returns = kept
}
