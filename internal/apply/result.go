package apply

import (
	"slices"
	"sort"

	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// RemovedImage is one action carried out.
type RemovedImage struct {
	ImageID string `json:"imageID"`
	Image   string `json:"image"`
	// Refs are the references removed; empty (never null) for an image
	// deleted by ID.
	Refs []string `json:"refs"`
	// Deleted: the image itself went, not only references to it.
	Deleted bool  `json:"deleted"`
	Bytes   int64 `json:"bytes"`
	Forced  bool  `json:"forced,omitempty"`
	// PrunedWith names the image whose deletion took this untagged parent
	// with it (the runtime prunes it; its bytes are counted in that image's).
	PrunedWith string `json:"prunedWith,omitempty"`
}

// Failure is a runtime call that failed for another reason than a conflict.
type Failure struct {
	ImageID string `json:"imageID"`
	Image   string `json:"image"`
	Error   string `json:"error"`
}

// Result is what a sweep did. Each planned image is in at most one of
// RemovedImages, Blocked, Skipped and Failed: in none when it vanished
// (another hand removed it) before its removal; untagged parents the runtime
// pruned with an image are in RemovedImages too.
type Result struct {
	DryRun            bool                `json:"dryRun"`
	RemovedImages     []RemovedImage      `json:"removedImages"`
	RemovedContainers []plan.ContainerRef `json:"removedContainers"`
	Blocked           []plan.Decision     `json:"blocked"`
	Skipped           []plan.Decision     `json:"skipped"`
	Failed            []Failure           `json:"failed"`
	BytesReclaimed    int64               `json:"bytesReclaimed"`
	// Stopped says why the sweep stopped before the end of its plan (a
	// stalled runtime, the sweep's deadline, Proceed's refusal); empty when
	// it did not.
	Stopped string `json:"stopped,omitempty"`
	// Refused: it stopped because Options.Proceed refused (the policy
	// changed), not because of a fault.
	Refused bool `json:"-"`
	// Refusal is Proceed's error, when Refused.
	Refusal error `json:"-"`
}

// DryRun is the result a real run would aim for: every action as planned.
func DryRun(p *plan.Plan) Result {
	r := Result{DryRun: true, Blocked: p.Blocked, Skipped: p.Skipped}
	for _, a := range p.Actions {
		r.RemovedContainers = append(r.RemovedContainers, a.Containers...)
		ri := RemovedImage{ImageID: a.ImageID, Image: a.Image, Refs: refsOnly(a.Refs, a.ImageID), Deleted: a.Delete, Forced: a.Force}
		if a.Delete {
			ri.Bytes = a.Size
		}
		r.RemovedImages = append(r.RemovedImages, ri)
		r.BytesReclaimed += ri.Bytes
	}
	r.normalize()
	return r
}

// refsOnly drops the image's own ID from a list of references.
func refsOnly(refs []string, id string) []string {
	out := []string{}
	for _, ref := range refs {
		if ref != id {
			out = append(out, ref)
		}
	}
	return out
}

func (r *Result) add(a *plan.Action, o outcome, x *executor) {
	r.RemovedContainers = append(r.RemovedContainers, o.containers...)
	switch {
	case o.image != nil:
		r.RemovedImages = append(r.RemovedImages, *o.image)
		r.RemovedImages = append(r.RemovedImages, o.pruned...)
		r.BytesReclaimed += o.image.Bytes
	case o.blocked != nil:
		r.Blocked = append(r.Blocked, *o.blocked)
	case o.skipped != nil:
		r.Skipped = append(r.Skipped, *o.skipped)
	case o.failure != nil:
		r.Failed = append(r.Failed, *o.failure)
	case o.interrupted:
		r.Skipped = append(r.Skipped, plan.Decision{ImageID: a.ImageID, Image: a.Image, Reason: plan.Interrupted,
			Message: "the sweep stopped before it: " + x.reason(), Size: a.Size})
	case o.enough != "":
		r.Skipped = append(r.Skipped, plan.Decision{ImageID: a.ImageID, Image: a.Image, Reason: plan.BelowLowWatermark, Message: o.enough, Size: a.Size})
	}
}

// Recount corrects the result of failed actions by what the runtime shows
// now (inv, listed after the sweep): a call can fail on this side and still
// have been done by the runtime. Containers that are gone count as removed;
// a deletion whose image is gone counts as done, and its failure goes.
// (An image a deletion left without any reference stays in the image
// clock's journal as unfinished, and the next sweep selects it by ID.)
func (r *Result) Recount(p *plan.Plan, inv *runtime.Inventory) {
	images := map[string]*runtime.Image{}
	for i := range inv.Images {
		images[inv.Images[i].ID] = &inv.Images[i]
	}
	containers := map[string]bool{}
	for _, c := range inv.Containers {
		containers[c.ID] = true
	}
	counted := map[string]bool{}
	for _, c := range r.RemovedContainers {
		counted[c.ID] = true
	}
	failed := map[string]bool{}
	for _, f := range r.Failed {
		failed[f.ImageID] = true
	}
	for _, a := range p.Actions {
		img := images[a.ImageID]
		if !failed[a.ImageID] {
			continue
		}
		for _, c := range a.Containers {
			if !containers[c.ID] && !counted[c.ID] {
				r.RemovedContainers = append(r.RemovedContainers, c)
			}
		}
		if a.Delete && img == nil {
			r.RemovedImages = append(r.RemovedImages, RemovedImage{ImageID: a.ImageID, Image: a.Image,
				Refs: refsOnly(a.Refs, a.ImageID), Deleted: true, Bytes: a.Size, Forced: a.Force})
			r.BytesReclaimed += a.Size
			r.Failed = slices.DeleteFunc(r.Failed, func(f Failure) bool { return f.ImageID == a.ImageID })
		}
	}
	r.normalize()
}

// normalize sorts every list, so that results compare and print the same
// whatever the order work finished in.
func (r *Result) normalize() {
	sort.Slice(r.RemovedImages, func(i, j int) bool {
		if r.RemovedImages[i].Image != r.RemovedImages[j].Image {
			return r.RemovedImages[i].Image < r.RemovedImages[j].Image
		}
		return r.RemovedImages[i].ImageID < r.RemovedImages[j].ImageID
	})
	sort.Slice(r.RemovedContainers, func(i, j int) bool { return r.RemovedContainers[i].ID < r.RemovedContainers[j].ID })
	sort.Slice(r.Failed, func(i, j int) bool { return r.Failed[i].Image < r.Failed[j].Image })
	plan.SortDecisions(r.Blocked)
	plan.SortDecisions(r.Skipped)
}
