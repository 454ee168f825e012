package controllers

import (
	"context"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// policyState is what the agent remembers of one policy between reconciles.
type policyState struct {
	// report is this node's report as last written or read; known says
	// there was a write or a read (report nil: there is none).
	report *v1alpha1.ImageCleanupReport
	known  bool
	// failures counts the failed sweeps in a row, for the back-off.
	failures int
	// generation is the generation seen and seenAt since when.
	generation int64
	seenAt     time.Time
	// unwritten is the status of a sweep whose report write failed, to be
	// written before anything else.
	unwritten *v1alpha1.ImageCleanupReportStatus
	// uid is the policy's UID as last read.
	uid types.UID
}

// replaced reports whether the policy read has another UID than the one
// read before under its name: deleted and created again between two
// reconciles (kubectl replace --force, a GitOps tool's Replace), so that
// the agent must forget the old one as if it had seen it gone.
func (r *nodeReconciler) replaced(policy string, uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.state(policy)
	was := ps.uid
	ps.uid = uid
	return was != "" && was != uid
}

// state is the policy's state, made on first use; callers hold r.mu.
func (r *nodeReconciler) state(policy string) *policyState {
	if r.policies == nil {
		r.policies = map[string]*policyState{}
	}
	ps := r.policies[policy]
	if ps == nil {
		ps = &policyState{}
		r.policies[policy] = ps
	}
	return ps
}

// seenGeneration returns when this agent first saw the policy at this
// generation (the start of its rollout window).
func (r *nodeReconciler) seenGeneration(policy string, generation int64, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.state(policy)
	if ps.seenAt.IsZero() || ps.generation != generation {
		ps.generation, ps.seenAt = generation, now
	}
	return ps.seenAt
}

// keepUnwritten holds a sweep's status whose write failed.
func (r *nodeReconciler) keepUnwritten(policy string, st *v1alpha1.ImageCleanupReportStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state(policy).unwritten = st
}

// writeUnwritten writes a sweep's status that an earlier write lost, before
// anything is decided: decide then sees the sweep as done.
func (r *nodeReconciler) writeUnwritten(ctx context.Context, s *situation, report **v1alpha1.ImageCleanupReport) error {
	if s.policy == nil || s.node == nil {
		return nil
	}
	r.mu.Lock()
	st := r.state(s.policy.Name).unwritten
	r.mu.Unlock()
	if st == nil {
		return nil
	}
	if err := r.writeReport(ctx, s.policy, *report, *st); err != nil {
		return err
	}
	r.mu.Lock()
	ps := r.state(s.policy.Name)
	ps.unwritten = nil
	*report = ps.report // as writeReport remembered it
	r.mu.Unlock()
	s.report = st
	return nil
}

// failureStreak, noteFailure and noteSuccess keep the count of failed
// sweeps in a row, per policy, for the back-off.
func (r *nodeReconciler) failureStreak(policy string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ps := r.policies[policy]; ps != nil {
		return ps.failures
	}
	return 0
}

func (r *nodeReconciler) noteFailure(policy string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.state(policy)
	ps.failures++
	return ps.failures
}

func (r *nodeReconciler) noteSuccess(policy string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state(policy).failures = 0
}

// forget drops what the agent remembers of a policy that no longer
// concerns this node, its begun removals in the image clock included. What
// it knows of the report stays: deleteReport comes next.
func (r *nodeReconciler) forget(ctx context.Context, policy string) {
	r.mu.Lock()
	if ps := r.policies[policy]; ps != nil {
		r.policies[policy] = &policyState{report: ps.report, known: ps.known, uid: ps.uid}
	}
	r.mu.Unlock()
	if imageClock, err := r.Host.imageClock(ctx); err == nil {
		imageClock.Journal().ForgetPolicy(policy)
		imageClock.ForgetReturns(policy)
		// Now, not at the next periodic save: a restart in between would
		// bring the removals back and count them into a new report.
		if err := imageClock.Save(); err != nil {
			logf.FromContext(ctx).Error(err, "saving the image clock")
		}
	}
}

// currentReport is this node's report of the policy: what this agent last
// wrote or read, else (after a start) one GET. The agent keeps no informer
// of reports: every report write would otherwise be sent to every node.
// A report deleted by hand comes back with the next sweep.
func (r *nodeReconciler) currentReport(ctx context.Context, policy string) (*v1alpha1.ImageCleanupReport, error) {
	r.mu.Lock()
	ps := r.state(policy)
	known, ok := ps.report, ps.known
	r.mu.Unlock()
	if ok {
		return known, nil
	}
	var report v1alpha1.ImageCleanupReport
	err := r.APIReader.Get(ctx, types.NamespacedName{Name: v1alpha1.ReportName(policy, r.Node)}, &report)
	switch {
	case apierrors.IsNotFound(err):
		r.remember(policy, nil)
		return nil, nil
	case err != nil:
		return nil, err
	}
	r.remember(policy, &report)
	return &report, nil
}

// remember keeps the report as it now is (nil: there is none).
func (r *nodeReconciler) remember(policy string, report *v1alpha1.ImageCleanupReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.state(policy)
	ps.report, ps.known = report, true
}

// forgetReport forgets what the agent knew of the report: the next read
// asks the API server (after a restart, say).
func (r *nodeReconciler) forgetReport(policy string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.state(policy)
	ps.report, ps.known = nil, false
}

// deleteReport deletes this node's report of the policy, read first from
// the API server: the UID precondition makes sure it is that report and not
// a newer one of the same name. Where the agent knows there is none (it
// read none, or the policy was created after it started, and only this
// node's agent writes this node's report), nothing is read: a policy that
// does not select this node comes back at every wave of a fleet.
func (r *nodeReconciler) deleteReport(ctx context.Context, policy string) error {
	r.mu.Lock()
	ps := r.state(policy)
	known, ok := ps.report, ps.known
	ps.report, ps.known = nil, false
	r.mu.Unlock()
	if ok && known == nil {
		r.remember(policy, nil)
		return nil
	}
	report, err := r.currentReport(ctx, policy)
	if err != nil || report == nil {
		return err
	}
	err = client.IgnoreNotFound(r.Client.Delete(ctx, report, client.Preconditions{UID: &report.UID}))
	if err == nil {
		r.remember(policy, nil)
	}
	return err
}
