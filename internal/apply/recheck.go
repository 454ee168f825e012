package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// recheck re-reads the image and its containers just before a destructive
// call, both reads under way at once (both begin after every earlier call
// of the action ended). It returns the image as it is now, or gone when it
// is no longer there, or the outcome that ends the action: a container
// runs it, or (for a deletion, with or without force) a container the plan
// did not weigh uses it.
func (x *executor) recheck(ctx context.Context, s *step) (cur runtime.Image, gone bool, stop *outcome) {
	a := s.a
	var (
		users           []runtime.Container
		err, inspectErr error
	)
	x.fanOut(func() {
		users, err = x.users.using(ctx, a.ImageID)
	}, func() {
		inspectErr = x.call(func() (err error) {
			cur, err = x.rt.InspectImage(ctx, a.ImageID)
			return err
		})
	})
	if err = x.check(ctx, err); err != nil {
		o := s.failed(fmt.Errorf("re-check containers of %s: %w", a.Image, err))
		return cur, false, &o
	}
	// The plan weighed these: the containers it removed, and with force the
	// stopped ones it leaves behind. Any other container of an image to be
	// deleted came since (a kubelet's, perhaps, whose image force must not
	// take).
	weighed := map[string]bool{}
	for _, c := range a.Containers {
		weighed[c.ID] = true
	}
	for _, id := range a.Kept {
		weighed[id] = true
	}
	for i := range users {
		c := &users[i]
		switch {
		case !c.Stopped():
			reason, msg := plan.InUseBy(c)
			o := s.blocked(reason, msg+" (since the plan)")
			return cur, false, &o
		case a.Delete && !weighed[c.ID]:
			o := s.blocked(plan.Changed, fmt.Sprintf("container %s was created on it since the plan", c.Display()))
			return cur, false, &o
		}
	}
	switch err = x.check(ctx, inspectErr); {
	case errors.Is(err, runtime.ErrNotFound):
		return cur, true, nil
	case err != nil:
		o := s.failed(fmt.Errorf("re-check image %s: %w", a.Image, err))
		return cur, false, &o
	}
	return cur, false, x.keep(s, &cur)
}

// keep asks, last thing before a destructive call, what the agent knows now
// that the plan could not: the pods bound to the node, and the image
// clock.
func (x *executor) keep(s *step, cur *runtime.Image) *outcome {
	if o := x.podsKeep(s, cur); o != nil {
		return o
	}
	if x.opts.Recent == nil {
		return nil
	}
	if reason, msg := x.opts.Recent(s.a); reason != "" {
		o := s.skipped(reason, msg)
		return &o
	}
	return nil
}

// podsKeep asks what the pods bound to the node name now: a pod bound since
// the plan that names the image, or an untagged parent its deletion would
// prune, keeps the action's image. When the pods cannot be seen, the sweep
// stops.
func (x *executor) podsKeep(s *step, cur *runtime.Image) *outcome {
	if x.opts.Pods == nil {
		return nil
	}
	pods, err := x.opts.Pods()
	if err != nil {
		x.refuse(err.Error())
		o := s.stopped()
		return &o
	}
	ix := plan.PodsNaming(pods)
	pod, what := ix.Using(cur.ID, cur.RepoTags, cur.RepoDigests), "it"
	for _, parent := range s.a.PruneParents {
		if pod != "" {
			break
		}
		pod, what = ix.Using(parent, nil, nil), "its untagged parent "+runtime.ShortID(parent)+", which its deletion would prune"
	}
	if pod == "" {
		return nil
	}
	o := s.skipped(plan.PodOnNode, "pod "+pod+" was bound to this node since the plan and names "+what)
	return &o
}

// hasRef reports whether ref (a tag or digest reference) still names img.
func hasRef(img *runtime.Image, ref string) bool {
	for _, r := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
		if sameRef(r, ref) {
			return true
		}
	}
	return false
}

// refsNotIn returns the image's references that are not among refs.
func refsNotIn(img *runtime.Image, refs []string) []string {
	var extra []string
	for _, r := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
		if !slices.ContainsFunc(refs, func(p string) bool { return sameRef(r, p) }) {
			extra = append(extra, r)
		}
	}
	return extra
}

// sameRef compares references in normalized form (busybox is
// docker.io/library/busybox:latest).
func sameRef(a, b string) bool {
	if a == b {
		return true
	}
	if ta, err := match.ParseTag(a); err == nil {
		tb, err := match.ParseTag(b)
		return err == nil && ta == tb
	}
	na, da, err1 := match.ParseDigest(a)
	nb, db, err2 := match.ParseDigest(b)
	return err1 == nil && err2 == nil && na == nb && da == db
}
