package imageclock

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// Journal is the record of the removals sweeps began and did not report
// yet, and of what a sweep's harvest counted until its report is written:
// what lets a report equal what the runtime lost, across kills of the
// process and of the runtime. It is kept in the clock's file (Clock.Save),
// and is safe for concurrent use.
type Journal struct {
	mu         sync.Mutex
	unfinished map[string]Unfinished
	harvested  map[string]Harvested // by policy
	dirty      bool
}

func newJournal() Journal {
	return Journal{unfinished: map[string]Unfinished{}, harvested: map[string]Harvested{}}
}

// gone marks a begun removal of an image that left the runtime as done.
func (j *Journal) gone(imageID string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if u, ok := j.unfinished[imageID]; ok && !u.Gone {
		u.Gone = true
		j.unfinished[imageID] = u
		j.dirty = true
	}
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
	// Since is when the sweep that began it started.
	Since      time.Time         `json:"since"`
	Image      string            `json:"image,omitempty"`
	Refs       []string          `json:"refs,omitempty"`
	Containers map[string]string `json:"containers,omitempty"`
	// Gone: the image left the runtime since (it may be back).
	Gone bool `json:"gone,omitempty"`
	// Unsettled: the sweep's result could not count what the runtime did
	// of it (a call failed, and no listing after it showed the truth):
	// kept past that sweep's report, for the next harvest to count.
	Unsettled bool `json:"unsettled,omitempty"`
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

// Begin notes removals that are about to start, for a policy's sweep that
// started at sweep.
func (j *Journal) Begin(policy string, sweep time.Time, removals []Removal) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, r := range removals {
		// A record of an earlier sweep is this sweep's now: this sweep will
		// report what goes (a record kept by its older time would be taken
		// for one already reported).
		j.unfinished[r.ImageID] = Unfinished{Policy: policy, Since: sweep, Image: r.Image, Refs: slices.Clone(r.Refs), Containers: maps.Clone(r.Containers)}
		j.dirty = true
	}
}

// Recovered is what the runtime lost while a policy's removals were under
// way in sweeps that never reported it (the process or the runtime died).
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
// dropped (to the microsecond: a report keeps its sweep's start so, and
// the agent begins no two sweeps of a policy at one instant), but for
// unsettled ones, which no report could count; of the
// others, the images that are gone or lost a reference the
// plan meant to remove, and the planned containers that are gone, are
// returned (the runtime lost them while their removal was under way); an
// image that stayed with a reference is left to the new plan, and an image
// that stayed without any reference stays unfinished (the next plan
// selects it by ID). What it returns is also kept, as the harvest of the
// sweep that starts at sweep, until that sweep is reported (Reported, or a
// later harvest whose reported covers it): a sweep that dies before its
// report leaves it to the next harvest, which returns it again.
func (j *Journal) Harvest(policy string, inv *runtime.Inventory, reported, sweep time.Time) Recovered {
	images := make(map[string]*runtime.Image, len(inv.Images))
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
	j.mu.Lock()
	defer j.mu.Unlock()
	var rec Recovered
	if h, ok := j.harvested[policy]; ok && !covered(h.Sweep, reported) {
		rec.add(h.Recovered) // its sweep never reported it
	}
	for id, u := range j.unfinished {
		if u.Policy != policy {
			continue
		}
		if covered(u.Since, reported) && !u.Unsettled {
			delete(j.unfinished, id)
			j.dirty = true
			continue
		}
		if rec.Since.IsZero() || u.Since.Before(rec.Since) {
			rec.Since = u.Since
		}
		for cid, name := range u.Containers {
			if !containers[cid] {
				rec.Containers = append(rec.Containers, runtime.DisplayContainer(name, cid))
			}
		}
		img := images[id]
		if img == nil || u.Gone || removedARef(u.Refs, held) {
			rec.Images = append(rec.Images, u.Image)
		}
		switch {
		case img != nil && img.Unreferenced() && !u.Gone:
			u.Containers, u.Refs, u.Unsettled = nil, nil, false // counted
			j.unfinished[id] = u
		default:
			delete(j.unfinished, id)
		}
		j.dirty = true
	}
	slices.Sort(rec.Images)
	slices.Sort(rec.Containers)
	delete(j.harvested, policy)
	if !rec.Empty() {
		j.harvested[policy] = Harvested{Sweep: sweep, Recovered: rec}
	}
	j.dirty = true
	return rec
}

// covered reports whether a report written through reported (its sweep's
// start, to the microsecond: the agent begins no two sweeps of a policy at
// one instant) counts what the sweep that started at sweep did.
func covered(sweep, reported time.Time) bool {
	return !reported.IsZero() && !sweep.Truncate(time.Microsecond).After(reported)
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
func (j *Journal) Reported(policy string, through time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if h, ok := j.harvested[policy]; ok && !h.Sweep.After(through) {
		delete(j.harvested, policy)
		j.dirty = true
	}
	for id, u := range j.unfinished {
		if u.Policy == policy && !u.Since.After(through) && !u.Unsettled {
			delete(j.unfinished, id)
			j.dirty = true
		}
	}
}

// Unsettled marks the policy's begun removal of the image as one its
// sweep's result could not count (the call failed, and the runtime could
// not be listed after it): it outlives the sweep's report, and the next
// harvest counts what the runtime lost of it, but for the containers the
// result counted already.
func (j *Journal) Unsettled(policy, imageID string, counted []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	u, ok := j.unfinished[imageID]
	if !ok || u.Policy != policy {
		return
	}
	u.Unsettled = true
	for _, id := range counted {
		delete(u.Containers, id)
	}
	j.unfinished[imageID] = u
	j.dirty = true
}

// ForgetPolicy drops every begun removal, and the harvest, of a policy
// that is gone.
func (j *Journal) ForgetPolicy(policy string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.harvested[policy]; ok {
		delete(j.harvested, policy)
		j.dirty = true
	}
	for id, u := range j.unfinished {
		if u.Policy == policy {
			delete(j.unfinished, id)
			j.dirty = true
		}
	}
}

// UnfinishedFor returns the images whose removal by the policy began and
// did not finish.
func (j *Journal) UnfinishedFor(policy string) map[string]bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[string]bool{}
	for id, u := range j.unfinished {
		if u.Policy == policy {
			out[id] = true
		}
	}
	return out
}
