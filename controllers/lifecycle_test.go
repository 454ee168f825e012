package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"pgregory.net/rapid"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/cri"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
	"github.com/imagecleanup/image-cleanup-operator/internal/schedule"
)

// The model test of the agent's whole life (docs/policy.md, "Invariants"):
// a simulated node (the fake runtime, with its event stream) is driven by
// random sequences of steps over simulated time: pulls, returns, tags,
// runs, stops, containers of other clients of the runtime, removals by
// other hands, runtime and agent restarts, kills of the agent mid-sweep
// and of the runtime under a removal, disk fills, policy changes (also in
// the middle of a sweep), node relabels, pods bound and done (naming their
// images in every field and form), and the agent's workqueue firing.
//
// The agent is the real one, built as the manager builds it
// (newNodeReconciler): its Reconcile decides, sweeps through the sweep
// object (cleanup.Sweep) at the default number of runtime calls in flight,
// writes its report through a fake API client and commits; its image
// clock keeps its state file, its event follower (nodeHost.follow) runs
// alongside on the runtime's stream, its view of the pods reads them
// through its cache's trim. The model keeps its own truth of what
// happened and its own reading of references (lifecycle_oracle_test.go),
// checks every removal as it happens and every report after every
// reconcile, and names the invariant a violation breaks.
//
// make test runs 1,000 sequences from a fixed seed; go test ./controllers
// -run TestAgentLife -life.checks=20000 -life.seed=0 searches longer from a
// random seed. A failure prints the sequence and a file to replay it with
// -rapid.failfile. The runtime calls of a sweep run 8 at a time, as the
// agent's do: a life that a mid-sweep step shapes may take another course
// when replayed, which is why the lives replayed for the mutation table
// run one call at a time.

var (
	lifeChecks = flag.Int("life.checks", 1000, "sequences TestAgentLife tries")
	lifeSeed   = flag.Uint64("life.seed", 20261207, "TestAgentLife's seed (0: a random one)")
	lifeCalls  = flag.Int("life.calls", 0, "the agent's engine calls in flight in TestAgentLife's lives (0: its default); 1 makes a life replay exactly")
)

const (
	lifePolicy = "life"
	lifeNode   = "node-1"
)

var (
	lifeRepos = []string{"ci.local/app", "ci.local/tool", "registry.example/prod/app", "registry.k8s.io/pause", "agent"}
	lifeStart = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
)

// truth is what really happened on the node, as the model did it.
type truth struct {
	arrived    map[string]time.Time // present image → its latest arrival
	used       map[string]time.Time // image → its latest container create, start or stop
	containers map[string]runtime.Container
	// removed by the agent since its report (re)started counting
	images, ctrs int64
}

// lifePod is a pod bound to the node, not done: the object the API server
// holds, and the references the model wrote in it (the oracle's record).
type lifePod struct {
	name string
	pod  corev1.Pod
	refs []string
}

// lifeAgent is the agent's process: its node controller, and the event
// follower that runs alongside.
type lifeAgent struct {
	r      *nodeReconciler
	stop   context.CancelFunc
	follow chan error // the follower's end
}

type lifeModel struct {
	t   *rapid.T
	ctx context.Context
	f   *runtimefake.Runtime
	dir string
	// cri: the node runs containerd's CRI (the fake's CRI rules): images go
	// with every reference, some are pinned, other clients' containers are
	// not in the CRI's listing, nothing is replayed, and the follower
	// lists images. Or CRI-O's (crio), whose follower lists containers too.
	cri, crio bool
	// schedules: see lifeRules.
	schedules bool
	// ahead: the runtime's clock runs this far ahead of the agent's, in
	// every time it stamps. Never behind: a use would then look older than
	// it was, which nothing on the node could tell.
	ahead time.Duration
	// calls is the agent's runtime calls in flight (0: its default).
	calls int
	clock *clocktesting.FakeClock
	agent *lifeAgent // nil while down
	kube  client.Client
	// requeueAt is when the agent's workqueue brings the policy back (zero:
	// only an event does).
	requeueAt      time.Time
	known          []string // every image ID ever made, so that one can return
	containersMade int
	podsMade       int
	fill           float64 // disk percent used besides images

	// mu guards what the runtime's calls during a sweep (on the executor's
	// goroutines) share with the model: its truth, its view of the API,
	// its pods and the sweep's state. It is never held while calling the
	// runtime, which calls back with its own lock held.
	mu       sync.Mutex
	now      time.Time
	truth    truth
	policy   *v1alpha1.ImageCleanupPolicy // the API server's; nil: none
	selected bool
	pods     []lifePod
	// pending: a killed agent's removals are not reported yet; owed: a
	// report could not count what the runtime did under a removal it died
	// in. Other hands then leave the node alone, so that what went is the
	// agent's doing.
	pending, owed bool
	// during a reconcile
	sweeping  *v1alpha1.ImageCleanupPolicySpec
	pressure  bool // the disk was above its high watermark when it began
	changedAt int  // the destructive call at which the policy changed (0: none)
	// closedAt: the destructive call at which the schedule's window closed
	// (0: none); afterClose counts the destructive calls since.
	closedAt, afterClose int
	// afterChange counts the destructive calls since (those under way then
	// finish).
	afterChange int
	// applying: the sweep's plan is made, its re-checks have begun;
	// rechecked are the images a re-check has read since. With calls in
	// flight at once, each of them may be between its re-check and its
	// removal: the window of one round trip that mid-sweep steps leave
	// alone.
	applying  bool
	rechecked map[string]bool
	// raced are the images a mid-sweep step acted on while their re-check
	// began (racedRecheck).
	raced      map[string]bool
	destroyers int // destructive calls so far
	onDestroy  func(n int, method, arg string)
	dieOn      string // the removal the runtime dies under
	// noDisk: the data filesystem cannot be measured.
	noDisk bool
	// dead: the agent died; its API writes are lost. afterReport, if set,
	// runs after the report's write (the agent dies there).
	dead        bool
	afterReport func()
	violation   string
	// newestBefore are, by repository, the images present when the sweep
	// began, newest build first.
	newestBefore map[string][]runtime.Image
	// sweepStart is the agent's now of the reconcile under way; departed
	// are the images the agent's sweeps deleted, by ID, until they come
	// back; returns are those that came back (lifeReturn).
	sweepStart time.Time
	departed   map[string]lifeDeparture
	returns    []lifeReturn
}

// lifeDeparture is an image a sweep that began at at deleted; sure: the
// sweep ended as sweeps do (the agent was not killed in it, the runtime
// did not die under a removal), so the agent surely recorded it.
type lifeDeparture struct {
	at        time.Time
	sure, now bool // now: deleted in the reconcile under way
}

// lifeReturn is a departure that came back at back; sure: the agent surely
// saw it come back then (it ran, its clock and the runtime's agree).
type lifeReturn struct {
	at, back time.Time
	sure     bool
}

// setRapid sets one of rapid's flags for the test, unless the command line
// gave it.
func setRapid(t *testing.T, name, value string) {
	if flagSet(name) {
		return // the command line wins
	}
	old := flag.Lookup(name).Value.String()
	_ = flag.Set(name, value)
	t.Cleanup(func() { _ = flag.Set(name, old) })
}

func TestAgentLife(t *testing.T) { checkLives(t, 1, lifeRules{}) }

// The same lives on containerd's CRI rules: the invariants hold where the
// runtime removes an image with all its references and checks no
// container, pins images, lists only its own containers, sends no image
// event and replays nothing.
func TestAgentLifeOnCRI(t *testing.T) { checkLives(t, 2, lifeRules{cri: true}) }

// The same lives on CRI-O's rules: as containerd's CRI, but the runtime
// refuses to remove an image a container uses, tells of no container (its
// follower lists containers too, and a use that does not outlive a
// listing is not seen), and other clients' containers are not listed at
// all (podman's, on the same storage).
func TestAgentLifeOnCRIO(t *testing.T) { checkLives(t, 4, lifeRules{cri: true, crio: true}) }

// The same lives with policies that sweep only in windows of time
// (spec.schedule), and windows that close in the middle of a sweep.
func TestAgentLifeOnASchedule(t *testing.T) { checkLives(t, 4, lifeRules{schedules: true}) }

// The same lives with the runtime's clock ahead of the agent's, by a second
// to two hours: every time the runtime stamps is later than when it
// happened by the agent's clock (the CLI on a remote runtime, a runtime in
// a VM whose clock drifted).
func TestAgentLifeWithTheRuntimeClockAhead(t *testing.T) {
	checkLives(t, 4, lifeRules{runtimeAhead: true})
}

// checkLives runs one part in share of -life.checks lives on rules (100
// lives divided so under -short: make test-unit), from -life.seed if set.
func checkLives(t *testing.T, share int, rules lifeRules) {
	checks := *lifeChecks / share
	if testing.Short() && !flagSet("life.checks") {
		checks = 100 / share
	}
	setRapid(t, "rapid.checks", fmt.Sprint(checks))
	setRapid(t, "rapid.steps", "60") // a life is longer than rapid's 30 steps
	if *lifeSeed != 0 {
		setRapid(t, "rapid.seed", fmt.Sprint(*lifeSeed))
	}
	if *lifeCalls != 0 {
		rules.calls = *lifeCalls
	}
	rapid.Check(t, agentLife(t, rules))
}

// lifesThatFoundBugs are single lives, by their seeds, that a random search
// found to break an invariant with one fix reverted, keyed by the mutant of
// hack/mutants.py that reverts it: each is replayed in every run (it must
// pass), and hack/mutants.sh replay, which make test runs, checks that each
// fails with its mutant. They run one runtime call at a time, so that they
// replay exactly.
var lifesThatFoundBugs = map[string]replayedLife{
	// A pod naming its image in an image volume (found after 56 lives).
	"image-volumes": {seed: 1495664262041221593},
	// A container that another client of containerd made (found after 471).
	"other-clients": {seed: 15190104053622574620, rules: lifeRules{cri: true}},
	// A pod naming its image by a short ID (found after 12).
	"short-ids": {seed: 8713120889089917093},
	// The runtime died under a removal; its sweep's report could not count
	// it, and dropped its record (found after 1,790).
	"unsettled": {seed: 10533947139916790307},
	// A pod bound to the node names an image (found after 22).
	"pods": {seed: 4962015530302331769},
	// A use stamped by a runtime whose clock runs ahead (found at once).
	"clock-ahead": {seed: 16450350597607239181, rules: lifeRules{runtimeAhead: true}},
	// An image excluded by its digest reference's repository (found after 61).
	"digest-exclusion": {seed: 10043632964531728193},
	// An image that left and came back arrived again (found after 46).
	"departures": {seed: 3394264016620382443},
	// A use by a container the clock met first in an event (found after 42).
	"event-uses": {seed: 13287469334411053209},
	// A policy change stops a running sweep (found after 1,946).
	"change-stops": {seed: 12690338314928406367},
	// keepNewest ranks by build date (found after 68).
	"build-order": {seed: 1708872147164061635},
	// What a killed sweep removed is counted by the next one (found after 72).
	"killed-counted": {seed: 13916837916075248904},
}

// replayedLife is one life by its seed, on the rules it was found on.
type replayedLife struct {
	seed  uint64
	rules lifeRules
}

func TestAgentLivesThatFoundBugs(t *testing.T) {
	for name, life := range lifesThatFoundBugs {
		t.Run(name, func(t *testing.T) {
			setRapid(t, "rapid.checks", "1")
			setRapid(t, "rapid.steps", "60")
			setRapid(t, "rapid.seed", fmt.Sprint(life.seed))
			rules := life.rules
			rules.calls = 1
			rapid.Check(t, agentLife(t, rules))
		})
	}
}

// agentLife is one life of the agent on a simulated node: random steps,
// every invariant checked at every removal and after every reconcile.
func agentLife(t *testing.T, rules lifeRules) func(*rapid.T) {
	return func(rt *rapid.T) {
		m := newLifeModel(rt, t.TempDir(), rules)
		defer m.agentDown()
		steps := map[string]func(*rapid.T){
			"":                   m.check,
			"pull":               m.pull,
			"pull again":         m.pull, // the node's common case, drawn twice as often
			"return":             m.returnImage,
			"tag":                m.tag,
			"run":                m.run,
			"stop":               m.stopContainer,
			"runAndRemove":       m.runAndRemove,
			"removeImage":        m.removeImageByHand,
			"removeCtr":          m.removeContainerByHand,
			"time":               m.advance,
			"time again":         m.advance,
			"noise":              m.noise,
			"engineRestart":      m.runtimeRestart,
			"agentRestart":       m.agentRestart,
			"diskFill":           m.diskFill,
			"policy":             m.changePolicy,
			"deletePolicy":       m.deletePolicy,
			"relabel":            m.relabel,
			"bindPod":            m.bindPod,
			"podDone":            m.podDone,
			"requeue":            m.requeue,
			"requeue again":      m.requeue,
			"requeueAndChange":   func(t *rapid.T) { m.requeueWith(t, "change") },
			"requeueAndKill":     func(t *rapid.T) { m.requeueWith(t, "kill") },
			"requeueAndRun":      func(t *rapid.T) { m.requeueWith(t, "run") },
			"requeueAndBind":     func(t *rapid.T) { m.requeueWith(t, "bind") },
			"requeueAndUse":      func(t *rapid.T) { m.requeueWith(t, "use") },
			"requeueAndDie":      func(t *rapid.T) { m.requeueWith(t, "dieAfterReport") },
			"requeueAndCrash":    func(t *rapid.T) { m.requeueWith(t, "runtimeDies") },
			"requeueRuntimeDown": func(t *rapid.T) { m.requeueWith(t, "runtimeDown") },
			"requeueNoDisk":      func(t *rapid.T) { m.requeueWith(t, "diskUnmeasured") },
		}
		if rules.cri {
			steps["othersRun"] = m.othersRun
		}
		if rules.schedules {
			steps["requeueAndClose"] = func(t *rapid.T) { m.requeueWith(t, "windowCloses") }
		}
		rt.Repeat(steps)
	}
}

// flagSet reports whether the command line set the flag. flag.Visit alone
// cannot tell: it also visits the flags setRapid set.
func flagSet(name string) bool { return commandLineFlags()[name] }

var commandLineFlags = sync.OnceValue(func() map[string]bool {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
})

// lifeRules are what a run of lives holds fixed: the runtime's rules,
// whether the runtime's clock runs ahead of the agent's, and the agent's
// runtime calls in flight (0: its default).
type lifeRules struct {
	cri bool
	// crio: on the CRI, CRI-O's rules (runtimefake.CRIO) rather than
	// containerd's.
	crio         bool
	runtimeAhead bool
	calls        int
	// schedules: policies may have a schedule, and a window may close in
	// the middle of a sweep. A rule set of its own, so that the lives of
	// the others (and the seeds replayed from them) draw as they did.
	schedules bool
}

func newLifeModel(t *rapid.T, dir string, rules lifeRules) *lifeModel {
	m := &lifeModel{t: t, ctx: context.Background(), now: lifeStart, dir: dir, selected: true, cri: rules.cri, crio: rules.crio, calls: rules.calls, schedules: rules.schedules,
		truth: truth{arrived: map[string]time.Time{}, used: map[string]time.Time{}, containers: map[string]runtime.Container{}}}
	if rules.runtimeAhead {
		m.ahead = time.Duration(rapid.IntRange(1, 2*60*60).Draw(t, "engine clock ahead (s)")) * time.Second
	}
	m.f = runtimefake.New()
	if rules.cri {
		m.f.Rules = runtimefake.CRI
	}
	if rules.crio {
		m.f.Rules = runtimefake.CRIO
	}
	m.f.Now = m.runtimeNow
	m.f.OnRemove = m.onRemove
	m.f.BeforeCall = m.beforeCall
	m.f.DieUnder = func(method, arg string) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.dieOn != "" && method+" "+arg == m.dieOn
	}
	m.clock = clocktesting.NewFakeClock(lifeStart)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: lifeNode, Labels: map[string]string{"pool": "a"}}}
	m.kube = fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(node).WithInterceptorFuncs(m.apiServer()).Build()
	m.agentUp()
	m.setPolicy(m.randomSpec(t)) // a life starts with a policy, which the agent applies
	m.reconcile(t, "")
	return m
}

// runtimeNow is the runtime's clock.
func (m *lifeModel) runtimeNow() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now.Add(m.ahead)
}

func (m *lifeModel) stateFile() string {
	return imageclock.FileFor(m.dir, imageclock.StoreKey{ID: "fake", RootDir: "/var/lib/docker"})
}

// apiServer is the API server's side of the agent's writes: a dead agent
// writes nothing; a report deleted is the end of what it counted; and the
// agent may die right after its report's write.
func (m *lifeModel) apiServer() interceptor.Funcs {
	return interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj kruntime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if m.isDead() {
				return apierrors.NewServiceUnavailable("the agent is dead")
			}
			if err := c.Apply(ctx, obj, opts...); err != nil {
				return err
			}
			m.mu.Lock()
			after := m.afterReport
			m.afterReport = nil
			m.mu.Unlock()
			if after != nil {
				after()
			}
			return nil
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if m.isDead() {
				return apierrors.NewServiceUnavailable("the agent is dead")
			}
			if err := c.Delete(ctx, obj, opts...); err != nil {
				return err
			}
			if _, ok := obj.(*v1alpha1.ImageCleanupReport); ok {
				m.reportGone()
			}
			return nil
		},
	}
}

func (m *lifeModel) isDead() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dead
}

// reportGone: the policy's report was deleted; a new one counts afresh.
func (m *lifeModel) reportGone() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.truth.images, m.truth.ctrs = 0, 0
	m.pending, m.owed = false, false
}

// --- the agent's process ----------------------------------------------------

// agentUp starts the agent, as its DaemonSet's pod starts: its node
// controller built as the manager builds it, its clock from the state
// file, its follower from the file's cursor.
func (m *lifeModel) agentUp() {
	o := AgentOptions{NodeName: lifeNode, Runtime: m.f, ProtectedImages: []string{"agent:*"}, StateDir: m.dir,
		DataRoot: "/var/lib/docker", Clock: m.clock, RuntimeCalls: m.calls}
	m.must(o.complete())
	metrics := newAgentMetrics()
	m.must(metrics.register(prometheus.NewRegistry(), lifeNode))
	r := newNodeReconciler(&o, m.kube, m.kube, lifePods{m}, metrics)
	r.Host.opts.Measure = func(string) (disk.Usage, error) { return m.measure() }
	m.agent = &lifeAgent{r: r}
	m.connect()
}

// connect starts the agent's event follower and waits until it has
// applied what the runtime replays.
func (m *lifeModel) connect() {
	ctx, stop := context.WithCancel(m.ctx)
	done := make(chan error, 1)
	m.agent.stop, m.agent.follow = stop, done
	go func() { done <- m.agent.r.Host.follow(ctx) }()
	m.caughtUp()
}

// followerWait bounds the wait for the agent's follower to apply what it
// was sent: it takes milliseconds; a follower that never does is a bug.
const followerWait = 30 * time.Second

// caughtUp waits until the agent's follower has applied every event sent
// to it; the test fails if it does not.
func (m *lifeModel) caughtUp() {
	if !m.f.WaitFollowers(1, followerWait) {
		m.t.Fatalf("the agent's event follower did not catch up within %s", followerWait)
	}
}

// reconnect: the follower's stream broke (the runtime restarted); the
// follower ends, saves, and the agent connects again.
func (m *lifeModel) reconnect() {
	if m.agent == nil {
		return
	}
	<-m.agent.follow
	m.agent.stop()
	m.connect()
}

// agentDown stops the agent's process: its follower ends, its clock is
// released.
func (m *lifeModel) agentDown() {
	if m.agent == nil {
		return
	}
	m.agent.stop()
	<-m.agent.follow
	if h, err := m.agent.r.Host.open(m.ctx); err == nil {
		h.Close()
	}
	m.agent = nil
}

// follow lets the agent's follower catch up with what a step did, lists
// images on the CRI (its follower does every 10 s; steps are longer), and
// saves (its saver does every 2 s).
func (m *lifeModel) follow() {
	if m.agent == nil {
		return
	}
	m.caughtUp()
	if m.cri {
		m.f.PollFollowers()
		m.caughtUp()
	}
	m.agent.r.Host.save(m.ctx)
}

// lifePods is the agent's view of its node's pods: the pods bound to it,
// through the cache's trim.
type lifePods struct{ m *lifeModel }

func (p lifePods) images(context.Context) ([]plan.PodImage, error) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	var pods []corev1.Pod
	for _, lp := range p.m.pods {
		trimmed, err := trimPod(lp.pod.DeepCopy())
		if err != nil {
			return nil, err
		}
		pods = append(pods, *trimmed.(*corev1.Pod))
	}
	return imagesOfPods(pods), nil
}

func (lifePods) fresh() bool { return false }

// --- the node's life -------------------------------------------------------

// newID makes an image ID that looks like one: a digest, so that its
// short form names one image, as on a node.
func (m *lifeModel) newID() string {
	sum := sha256.Sum256(fmt.Append(nil, len(m.known)+1))
	id := "sha256:" + hex.EncodeToString(sum[:])
	m.known = append(m.known, id)
	return id
}

func (m *lifeModel) randomTags(t *rapid.T) []string {
	repo := rapid.SampledFrom(lifeRepos).Draw(t, "repo")
	n := rapid.IntRange(0, 2).Draw(t, "tags")
	var tags []string
	for range n {
		tags = append(tags, fmt.Sprintf("%s:%d", repo, rapid.IntRange(1, 4).Draw(t, "tag")))
	}
	return slices.Compact(slices.Sorted(slices.Values(tags)))
}

func (m *lifeModel) present() []string {
	var ids []string
	for _, id := range m.known {
		if m.f.HasImage(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// addImage brings an image to the node (a pull or a load), built at built.
func (m *lifeModel) addImage(t *rapid.T, id string, built time.Time) {
	img := runtime.Image{ID: id, Created: built, Size: 1 << 20, RepoTags: m.randomTags(t)}
	if m.cri && rapid.Bool().Draw(t, "a second repository") {
		// References the policy may select in part: on the CRI the image
		// then stays whole.
		img.RepoTags = slices.Compact(slices.Sorted(slices.Values(append(img.RepoTags, m.randomTags(t)...))))
	}
	for _, tag := range img.RepoTags { // a tag moves to the new image, as on the runtime
		for _, other := range m.present() {
			if cur, _ := m.f.Image(other); slices.Contains(cur.RepoTags, tag) {
				m.f.Untag(other, tag)
			}
		}
	}
	if rapid.Bool().Draw(t, "digest") {
		// A repo digest names one image: derived from its ID.
		img.RepoDigests = []string{"registry.example/prod/app@" + id}
	}
	if m.cri {
		img.Pinned = rapid.IntRange(0, 5).Draw(t, "pinned") == 0 // no parents on the CRI
	} else if present := m.present(); len(present) > 0 && rapid.IntRange(0, 4).Draw(t, "child") == 0 {
		img.ParentID = rapid.SampledFrom(present).Draw(t, "parent")
		// A runtime never makes a parent of a descendant.
		for p := img.ParentID; p != ""; {
			if p == id {
				img.ParentID = ""
				break
			}
			cur, _ := m.f.Image(p)
			p = cur.ParentID
		}
	}
	m.f.AddImage(img)
	m.mu.Lock()
	m.truth.arrived[id] = m.now
	m.mu.Unlock()
	m.follow()
}

func (m *lifeModel) pull(t *rapid.T) {
	built := m.now.Add(-time.Duration(rapid.IntRange(0, 1000).Draw(t, "age")) * time.Hour)
	m.addImage(t, m.newID(), built)
}

// returnImage brings back an image that left: the same ID arrives again.
func (m *lifeModel) returnImage(t *rapid.T) {
	var gone []string
	for _, id := range m.known {
		if !m.f.HasImage(id) {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		t.Skip("no image has left")
	}
	id := rapid.SampledFrom(gone).Draw(t, "image")
	m.mu.Lock()
	if d, ok := m.departed[id]; ok {
		// Sure: the agent runs, the runtime told of the removal (no gap
		// since), and the return comes after it, by one clock.
		m.returns = append(m.returns, lifeReturn{at: d.at, back: m.now, sure: d.sure && m.agent != nil && m.ahead == 0 && m.now.After(d.at)})
		delete(m.departed, id)
	}
	m.mu.Unlock()
	m.addImage(t, id, lifeStart.Add(-1000*time.Hour))
}

func (m *lifeModel) tag(t *rapid.T) {
	present := m.present()
	if len(present) == 0 {
		t.Skip("no image")
	}
	id := rapid.SampledFrom(present).Draw(t, "image")
	tags := m.randomTags(t)
	if len(tags) == 0 {
		t.Skip("no tag drawn")
	}
	for _, other := range present {
		if cur, _ := m.f.Image(other); slices.Contains(cur.RepoTags, tags[0]) {
			m.f.Untag(other, tags[0])
		}
	}
	m.f.Tag(id, tags[0])
	m.follow()
}

func (m *lifeModel) newContainer(t *rapid.T, state string) (runtime.Container, bool) {
	present := m.present()
	if len(present) == 0 {
		return runtime.Container{}, false
	}
	image := rapid.SampledFrom(present).Draw(t, "image")
	return m.makeContainer(image, state, rapid.IntRange(0, 3).Draw(t, "kubelet") == 0), true
}

func (m *lifeModel) makeContainer(image, state string, kubelet bool) runtime.Container {
	m.containersMade++
	id := fmt.Sprintf("%064x", 1<<40+m.containersMade)
	c := runtime.Container{ID: id, Name: "c" + id[58:], ImageID: image, State: state, Created: m.runtimeNow()}
	if kubelet {
		c.Labels = map[string]string{"io.kubernetes.pod.name": "pod"}
	}
	return c
}

// started records a container the node made: it is there, and it used its
// image now.
func (m *lifeModel) started(c runtime.Container) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.truth.containers[c.ID] = c
	m.truth.used[c.ImageID] = m.now
}

func (m *lifeModel) run(t *rapid.T) {
	state := rapid.SampledFrom([]string{runtime.StateRunning, runtime.StateCreated, runtime.StateExited}).Draw(t, "state")
	c, ok := m.newContainer(t, state)
	if !ok {
		t.Skip("no image")
	}
	if state == runtime.StateExited {
		c.FinishedAt = m.runtimeNow()
	}
	m.f.AddContainer(c)
	m.started(c)
	m.follow()
}

// othersRun is a container that another client of containerd makes
// through its own API (ctr, nerdctl, BuildKit), or on CRI-O podman on the
// same storage: running or only created, not in the CRI's listing, told
// by none of its events.
func (m *lifeModel) othersRun(t *rapid.T) {
	c, ok := m.newContainer(t, rapid.SampledFrom([]string{runtime.StateRunning, runtime.StateCreated}).Draw(t, "state"))
	if !ok {
		t.Skip("no image")
	}
	c.MadeBy, c.Labels = "ctr", nil
	m.f.AddContainer(c)
	m.started(c)
	m.follow()
}

func (m *lifeModel) stopContainer(t *rapid.T) {
	var running []string
	for id, c := range m.truth.containers {
		if c.State == runtime.StateRunning && c.MadeBy == "" {
			running = append(running, id)
		}
	}
	if len(running) == 0 {
		t.Skip("nothing runs")
	}
	slices.Sort(running)
	id := rapid.SampledFrom(running).Draw(t, "container")
	m.f.SetState(id, runtime.StateExited)
	c := m.truth.containers[id]
	c.State, c.FinishedAt = runtime.StateExited, m.now
	m.started(c)
	m.follow()
}

// runAndRemove is docker run --rm, or a Job's pod collected: a use that
// leaves no container behind.
func (m *lifeModel) runAndRemove(t *rapid.T) {
	if m.othersWait() {
		t.Skip("a killed sweep's removals are not reported yet")
	}
	c, ok := m.newContainer(t, runtime.StateRunning)
	if !ok {
		t.Skip("no image")
	}
	m.f.AddContainer(c)
	began := m.now
	ran := time.Duration(rapid.IntRange(1, 600).Draw(t, "runtime")) * time.Second
	// On CRI-O the agent's follower lists containers every cri.ImagePoll:
	// a container that runs that long is seen running by one, somewhere in
	// its run, and gone by the next, which stops it then. A shorter run may
	// fall between two, the documented blind spot (docs/policy.md), which
	// the truth leaves out.
	seen := !m.crio || ran >= cri.ImagePoll
	if m.crio && seen {
		listed := time.Duration(rapid.IntRange(int(cri.ImagePoll/time.Second), int(ran/time.Second)).Draw(t, "listed after (s)")) * time.Second
		m.setNow(began.Add(listed))
		m.follow()
	}
	m.setNow(began.Add(ran))
	m.f.RemoveContainerByHand(c.ID)
	if seen {
		m.started(c)
	}
	m.forgetContainer(c.ID)
	m.follow()
}

// othersWait: other hands leave the node alone while what a killed agent
// or a dying runtime removed is not reported yet.
func (m *lifeModel) othersWait() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending || m.owed
}

func (m *lifeModel) forgetContainer(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.truth.containers, id)
}

func (m *lifeModel) setNow(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = t
}

func (m *lifeModel) removeImageByHand(t *rapid.T) {
	present := m.present()
	if len(present) == 0 || m.othersWait() {
		t.Skip("no image, or a killed sweep's removals are not reported yet")
	}
	id := rapid.SampledFrom(present).Draw(t, "image")
	m.f.RemoveImageByHand(id)
	m.mu.Lock()
	delete(m.truth.arrived, id)
	m.mu.Unlock()
	m.follow()
}

func (m *lifeModel) removeContainerByHand(t *rapid.T) {
	if len(m.truth.containers) == 0 || m.othersWait() {
		t.Skip("no container, or a killed sweep's removals are not reported yet")
	}
	ids := slices.Sorted(maps.Keys(m.truth.containers))
	id := rapid.SampledFrom(ids).Draw(t, "container")
	c := m.truth.containers[id]
	m.f.RemoveContainerByHand(id)
	if !c.Stopped() {
		m.started(c) // it ran until now
	}
	m.forgetContainer(id)
	m.follow()
}

func (m *lifeModel) advance(t *rapid.T) {
	m.setNow(m.now.Add(time.Duration(rapid.IntRange(1, 48*60).Draw(t, "minutes")) * time.Minute))
	m.follow()
}

// noise is exec probes; now and then more events than the runtime keeps
// (a gap, which makes the clock count every image as just arrived and
// used: drawn rarely, or it would hide every other step).
func (m *lifeModel) noise(t *rapid.T) {
	m.unsureDepartures() // a gap may lose a removal's event
	m.f.Noise(rapid.SampledFrom([]int{5, 20, 100, 100, 300}).Draw(t, "events"))
	m.follow()
}

// runtimeRestart: the runtime restarts; the follower's stream breaks, and
// it connects again (a replay from its cursor, or on the CRI a gap).
func (m *lifeModel) runtimeRestart(*rapid.T) {
	m.unsureDepartures()
	m.f.Restart()
	m.reconnect()
	m.follow()
}

// agentRestart stops the agent for a while (a rollout, an OOM kill): the
// node goes on without it; then it starts from its state file.
func (m *lifeModel) agentRestart(t *rapid.T) {
	m.unsureDepartures()
	m.agentDown()
	defer func() {
		m.agentUp()
		m.follow()
	}()
	for range rapid.IntRange(0, 3).Draw(t, "steps while down") {
		switch rapid.IntRange(0, 5).Draw(t, "while down") {
		case 5: // an image leaves and comes back while nobody listens
			if present := m.present(); len(present) > 0 && !m.othersWait() {
				id := rapid.SampledFrom(present).Draw(t, "image")
				m.f.RemoveImageByHand(id)
				m.setNow(m.now.Add(time.Minute))
				m.addImage(t, id, lifeStart.Add(-1000*time.Hour))
			}
		case 0:
			m.pull(t)
		case 1:
			if c, ok := m.newContainer(t, runtime.StateRunning); ok && !m.othersWait() {
				m.f.AddContainer(c)
				m.setNow(m.now.Add(time.Minute))
				m.f.RemoveContainerByHand(c.ID)
				m.started(c)
				m.forgetContainer(c.ID)
			}
		case 2:
			if present := m.present(); len(present) > 0 && !m.othersWait() {
				id := rapid.SampledFrom(present).Draw(t, "image")
				m.f.RemoveImageByHand(id)
				m.mu.Lock()
				delete(m.truth.arrived, id)
				m.mu.Unlock()
			}
		case 3:
			m.f.Noise(rapid.SampledFrom([]int{5, 20, 100, 100, 300}).Draw(t, "events"))
		case 4:
			m.setNow(m.now.Add(time.Duration(rapid.IntRange(1, 48*60).Draw(t, "minutes")) * time.Minute))
		}
	}
}

// diskFill fills the disk (or frees it); the agent's disk tick brings a
// policy with diskUsage back at once.
func (m *lifeModel) diskFill(t *rapid.T) {
	m.mu.Lock()
	m.fill = float64(rapid.IntRange(0, 95).Draw(t, "fill"))
	m.mu.Unlock()
	m.reconcile(t, "")
}

// measure is the data filesystem: what is filled besides, and 1 % per image.
func (m *lifeModel) measure() (disk.Usage, error) {
	m.mu.Lock()
	broken := m.noDisk
	m.mu.Unlock()
	if broken {
		return disk.Usage{}, fmt.Errorf("statfs: input/output error")
	}
	imgs, err := m.f.ListImages(m.ctx)
	if err != nil {
		return disk.Usage{}, err
	}
	m.mu.Lock()
	used := min(100, m.fill+float64(len(imgs)))
	m.mu.Unlock()
	return disk.Usage{UsedPercent: used, InodesUsedPercent: used, UsedBytes: uint64(used * 1e6)}, nil
}

// --- pods ------------------------------------------------------------------

// podRef draws how a pod names an image: one of its tags (as listed, or
// spelled in full), its ID in full or short (with or without sha256:), its
// digest (under its repository, with a tag, or another repository); or a
// tag of the pool that no image may have yet.
func podRef(t *rapid.T, img runtime.Image, present bool) string {
	if !present {
		return rapid.SampledFrom(lifeRepos).Draw(t, "pod repo") + fmt.Sprintf(":%d", rapid.IntRange(1, 4).Draw(t, "pod tag"))
	}
	digits := img.ID[len("sha256:"):]
	forms := []string{img.ID, "sha256:" + digits[:12], digits[:12], digits}
	for _, tag := range img.RepoTags {
		forms = append(forms, tag)
		if !strings.Contains(tag, "/") { // a Docker Hub repository, spelled in full
			forms = append(forms, "docker.io/library/"+tag)
		}
	}
	for _, d := range img.RepoDigests {
		_, digest, _ := cutAt(d)
		forms = append(forms, d, "registry.example/prod/app:9@"+digest, "mirror.local/app@"+digest, "docker-pullable://"+d)
	}
	return rapid.SampledFrom(forms).Draw(t, "pod ref")
}

func cutAt(ref string) (string, string, bool) {
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == '@' {
			return ref[:i], ref[i+1:], true
		}
	}
	return ref, "", false
}

// podWith is a pod naming refs in the fields drawn: a container, an init
// container, an ephemeral container, an image volume, or its status.
func (m *lifeModel) podWith(t *rapid.T, refs []string) lifePod {
	m.podsMade++
	name := fmt.Sprintf("default/pod-%d", m.podsMade)
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("pod-%d", m.podsMade)}}
	p.Spec.NodeName = lifeNode
	for i, ref := range refs {
		c := fmt.Sprintf("c%d", i)
		switch rapid.IntRange(0, 4).Draw(t, "pod field") {
		case 0:
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: ref})
		case 1:
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: c, Image: ref})
		case 2:
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c, Image: ref}})
		case 3:
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
				Image: &corev1.ImageVolumeSource{Reference: ref}}})
		case 4:
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c, ImageID: ref})
		}
	}
	return lifePod{name: name, pod: p, refs: refs}
}

// bindPod binds a pod to the node: it names an image on the node in one of
// the forms the runtime resolves, or a tag from the pool (pulled or not
// yet), in one of the fields that can hold an image.
func (m *lifeModel) bindPod(t *rapid.T) {
	if len(m.pods) >= 2 {
		t.Skip("enough pods: more would keep most images")
	}
	present := m.present()
	var img runtime.Image
	onNode := len(present) > 0 && rapid.Bool().Draw(t, "an image on the node")
	if onNode {
		img, _ = m.f.Image(rapid.SampledFrom(present).Draw(t, "pod image"))
	}
	p := m.podWith(t, []string{podRef(t, img, onNode)})
	m.mu.Lock()
	m.pods = append(m.pods, p)
	m.mu.Unlock()
}

// podDone: a pod finishes or is deleted; its images are the policy's again.
func (m *lifeModel) podDone(t *rapid.T) {
	if len(m.pods) == 0 {
		t.Skip("no pod")
	}
	i := rapid.IntRange(0, len(m.pods)-1).Draw(t, "pod")
	m.mu.Lock()
	m.pods = slices.Delete(m.pods, i, i+1)
	m.mu.Unlock()
}

// --- the policy and the node in the API ------------------------------------

func (m *lifeModel) randomSpec(t *rapid.T) v1alpha1.ImageCleanupPolicySpec {
	var p v1alpha1.ImageCleanupPolicy
	for _, pat := range rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"**", "ci.local/**", "ci.local/app:*", "registry.example/**", "agent:*"}), 1, 3, rapid.ID[string]).Draw(t, "images") {
		p.Spec.Images = append(p.Spec.Images, v1alpha1.ImagePattern(pat))
	}
	excludes := []string{"registry.example/prod/**", "ci.local/tool:*", "ci.local/app:1"}
	if present := m.present(); len(present) > 0 {
		excludes = append(excludes, rapid.SampledFrom(present).Draw(t, "excluded id")[:7+12])
	}
	for _, pat := range rapid.SliceOfNDistinct(rapid.SampledFrom(excludes), 0, 2, rapid.ID[string]).Draw(t, "exclude") {
		p.Spec.Exclude = append(p.Spec.Exclude, v1alpha1.ImagePattern(pat))
	}
	ages := []v1alpha1.Duration{"0s", "30m", "1h", "24h"}
	p.Spec.MinImageAge = ptrTo(rapid.SampledFrom(ages).Draw(t, "minImageAge"))
	p.Spec.StoppedContainers.MinStoppedAge = ptrTo(rapid.SampledFrom(ages).Draw(t, "minStoppedAge"))
	p.Spec.StoppedContainers.IncludeKubernetesManaged = rapid.Bool().Draw(t, "includeKubernetesManaged")
	if rapid.Bool().Draw(t, "maxUnusedAge set") {
		p.Spec.MaxUnusedAge = ptrTo(rapid.SampledFrom([]v1alpha1.Duration{"1h", "24h", "720h"}).Draw(t, "maxUnusedAge"))
	}
	p.Spec.KeepNewest = int32(rapid.IntRange(0, 2).Draw(t, "keepNewest"))
	p.Spec.Force = rapid.IntRange(0, 3).Draw(t, "force") == 0
	p.Spec.Dangling = rapid.Bool().Draw(t, "dangling")
	p.Spec.DryRun = rapid.IntRange(0, 5).Draw(t, "dryRun") == 0
	p.Spec.Suspend = rapid.IntRange(0, 7).Draw(t, "suspend") == 0
	if rapid.Bool().Draw(t, "diskUsage") {
		p.Spec.DiskUsage = &v1alpha1.DiskUsage{HighPercent: 85, LowPercent: 70}
	}
	p.Spec.NodeSelector = &v1alpha1.NodeSelector{MatchLabels: map[string]v1alpha1.LabelValue{"pool": "a"}}
	p.Spec.MaxImagesPerSweep = int32(rapid.SampledFrom([]int{0, 0, 1, 3}).Draw(t, "maxImagesPerSweep"))
	p.Spec.Order = rapid.SampledFrom([]v1alpha1.RemovalOrder{"", v1alpha1.OrderLeastRecentlyUsed, v1alpha1.OrderOldestFirst}).Draw(t, "order")
	p.Spec.Interval = ptrTo(rapid.SampledFrom([]v1alpha1.Duration{"1m", "10m", "1h"}).Draw(t, "interval"))
	if m.schedules && rapid.IntRange(0, 2).Draw(t, "schedule") > 0 {
		p.Spec.Schedule = randomSchedule(t)
	}
	policyschema.Default(&p)
	return p.Spec
}

// randomSchedule is one window, of 1 to 12 hours, on some days or every
// day, in a zone whose offset is whole hours, half hours, or changes.
func randomSchedule(t *rapid.T) *v1alpha1.Schedule {
	start := rapid.IntRange(0, 23).Draw(t, "window start hour")
	end := (start + rapid.IntRange(1, 12).Draw(t, "window hours")) % 24
	w := v1alpha1.Window{Start: fmt.Sprintf("%02d:%02d", start, rapid.SampledFrom([]int{0, 30}).Draw(t, "window start minute")), End: fmt.Sprintf("%02d:00", end)}
	if rapid.Bool().Draw(t, "window days") {
		days := []v1alpha1.Weekday{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
		w.Days = rapid.SliceOfNDistinct(rapid.SampledFrom(days), 1, 3, func(d v1alpha1.Weekday) v1alpha1.Weekday { return d }).Draw(t, "days")
	}
	return &v1alpha1.Schedule{
		TimeZone:     rapid.SampledFrom([]string{"", "Europe/Berlin", "Asia/Kolkata", "America/New_York"}).Draw(t, "time zone"),
		Windows:      []v1alpha1.Window{w},
		DiskPressure: rapid.SampledFrom([]v1alpha1.DiskPressureSweeps{v1alpha1.DiskPressureAnytime, v1alpha1.DiskPressureInWindows}).Draw(t, "diskPressure"),
	}
}

// changePolicy creates the policy or changes its spec: a new generation,
// whose event brings the agent at once.
func (m *lifeModel) changePolicy(t *rapid.T) {
	m.setPolicy(m.randomSpec(t))
	m.reconcile(t, "")
}

// setPolicy writes the policy to the API server; m.mu is not held.
func (m *lifeModel) setPolicy(spec v1alpha1.ImageCleanupPolicySpec) {
	m.mu.Lock()
	cur := m.policy
	m.mu.Unlock()
	if cur == nil {
		p := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: lifePolicy, UID: "uid-1", Generation: 1}, Spec: spec}
		m.must(m.kube.Create(m.ctx, p.DeepCopy()))
		m.mu.Lock()
		m.policy = p
		m.mu.Unlock()
		return
	}
	m.updatePolicy(func(p *v1alpha1.ImageCleanupPolicy) { p.Spec = spec })
}

// updatePolicy changes the policy's spec: a new generation.
func (m *lifeModel) updatePolicy(change func(*v1alpha1.ImageCleanupPolicy)) {
	var cur v1alpha1.ImageCleanupPolicy
	m.must(m.kube.Get(m.ctx, client.ObjectKey{Name: lifePolicy}, &cur))
	change(&cur)
	cur.Generation++
	m.must(m.kube.Update(m.ctx, &cur))
	m.mu.Lock()
	m.policy = cur.DeepCopy()
	m.mu.Unlock()
}

// deletePolicy deletes the policy; the garbage collector deletes its
// report, and the deletion's event brings the agent at once.
func (m *lifeModel) deletePolicy(t *rapid.T) {
	if m.policy == nil {
		t.Skip("no policy")
	}
	m.removePolicy()
	m.reconcile(t, "")
}

func (m *lifeModel) removePolicy() {
	m.must(m.kube.Delete(m.ctx, &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: lifePolicy}}))
	m.mu.Lock()
	m.policy = nil
	m.mu.Unlock()
	m.collectReport()
}

// collectReport is the garbage collector: a report whose policy is gone
// goes too.
func (m *lifeModel) collectReport() {
	r := &v1alpha1.ImageCleanupReport{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.ReportName(lifePolicy, lifeNode)}}
	if err := m.kube.Delete(m.ctx, r); err != nil && !apierrors.IsNotFound(err) {
		m.t.Fatal(err)
	}
}

// relabel moves the node in or out of the policy's selector; the Node's
// event brings the agent at once.
func (m *lifeModel) relabel(t *rapid.T) {
	m.flipLabel()
	m.reconcile(t, "")
}

func (m *lifeModel) flipLabel() {
	m.mu.Lock()
	m.selected = !m.selected
	pool := "a"
	if !m.selected {
		pool = "b"
	}
	m.mu.Unlock()
	var n corev1.Node
	m.must(m.kube.Get(m.ctx, client.ObjectKey{Name: lifeNode}, &n))
	n.Labels["pool"] = pool
	m.must(m.kube.Update(m.ctx, &n))
}

func (m *lifeModel) must(err error) {
	if err != nil {
		m.t.Fatal(err)
	}
}

// --- reconciles ------------------------------------------------------------

// requeue: the agent's workqueue brings the policy back when the last
// reconcile asked (the interval, a back-off, a rollout offset).
func (m *lifeModel) requeue(t *rapid.T) { m.requeueWith(t, "") }

func (m *lifeModel) requeueWith(t *rapid.T, during string) {
	if m.requeueAt.IsZero() {
		t.Skip("nothing asked to come back")
	}
	// Anywhere in the second: a report keeps its sweep's start to the
	// second only.
	at := later(m.now, m.requeueAt).Add(time.Duration(rapid.IntRange(0, 999).Draw(t, "ms into the second")) * time.Millisecond)
	m.setNow(at)
	m.follow()
	m.reconcile(t, during)
}

// midSweep are the choices of a step made in the middle of a sweep, drawn
// before it starts: the step runs on the executor's goroutine, where a draw
// of rapid's cannot stop the test.
type midSweep struct {
	at, pick, tag, change int
	flag, kubelet         bool
	state                 string
	next                  v1alpha1.ImageCleanupPolicySpec
}

func (m *lifeModel) drawMidSweep(t *rapid.T, during string) midSweep {
	d := midSweep{
		at:      rapid.IntRange(1, 3).Draw(t, "at call"),
		pick:    rapid.IntRange(0, 99).Draw(t, "mid-sweep pick"),
		tag:     rapid.IntRange(0, 9).Draw(t, "mid-sweep tag"),
		flag:    rapid.Bool().Draw(t, "mid-sweep flag"),
		kubelet: rapid.IntRange(0, 3).Draw(t, "mid-sweep kubelet") == 0,
		state:   rapid.SampledFrom([]string{runtime.StateRunning, runtime.StateCreated, runtime.StateExited}).Draw(t, "mid-sweep state"),
	}
	if during == "change" {
		d.change = rapid.IntRange(0, 3).Draw(t, "change")
		if d.change == 0 {
			d.next = m.randomSpec(t)
		}
	}
	return d
}

// reconcile runs the agent's Reconcile of the policy at the model's now,
// as its workqueue does, with what happens in the middle of a sweep
// (during: "", change, kill, run, bind, use, dieAfterReport, runtimeDies),
// and checks the report it leaves.
func (m *lifeModel) reconcile(t *rapid.T, during string) {
	if m.agent == nil {
		return
	}
	var mid midSweep
	if during != "" {
		mid = m.drawMidSweep(t, during)
	}
	m.clock.SetTime(m.now)
	before := map[string]runtime.Image{}
	for _, id := range m.present() {
		before[id], _ = m.f.Image(id)
	}
	m.beginReconcile(before)
	reportBefore := m.reportVersion()
	var saved []byte
	var restart bool
	m.onDestroy = func(n int, method, arg string) {
		if n != mid.at {
			return
		}
		switch during {
		case "run":
			m.runDuring(method, arg, mid)
		case "bind":
			m.bindDuring(method, arg, mid)
		case "use":
			m.useDuring(method, arg, mid)
		case "change":
			m.mu.Lock()
			m.changedAt = n
			m.mu.Unlock()
			m.changeDuring(mid)
		case "kill":
			saved, _ = os.ReadFile(m.stateFile())
			m.mu.Lock()
			m.dead, restart = true, true
			m.mu.Unlock()
			m.f.SetDown(true) // a dead agent makes no more calls
		case "runtimeDies":
			m.mu.Lock()
			m.dieOn = method + " " + arg
			m.mu.Unlock()
		case "windowCloses":
			m.closeWindow(n)
		}
	}
	switch during {
	case "runtimeDown": // the runtime does not answer through the whole reconcile
		m.f.SetDown(true)
	case "diskUnmeasured": // the data filesystem cannot be measured
		m.mu.Lock()
		m.noDisk = true
		m.mu.Unlock()
	}
	if during == "dieAfterReport" {
		m.afterReport = func() {
			saved, _ = os.ReadFile(m.stateFile())
			m.mu.Lock()
			m.dead, restart = true, true
			m.mu.Unlock()
		}
	}
	res, err := m.agent.r.Reconcile(m.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Name: lifePolicy}})
	m.mu.Lock()
	spec, violated, died, changed := m.sweeping, m.violation, m.dieOn != "", m.changedAt > 0
	m.sweeping, m.onDestroy, m.afterReport, m.dieOn, m.dead, m.noDisk = nil, nil, nil, "", false, false
	m.mu.Unlock()
	if violated != "" {
		m.t.Fatal(violated)
	}
	m.f.SetDown(false)
	m.settleDepartures(restart || died || during == "runtimeDown")
	removed := countRemovals(m.f, before)
	m.mu.Lock()
	if spec != nil && !spec.DryRun && m.counting() {
		m.truth.images += removed
	}
	m.mu.Unlock()
	switch {
	case restart:
		// The agent died there: what it wrote since is lost, what it wrote
		// before is on disk; it starts again.
		m.agentDown()
		m.must(os.WriteFile(m.stateFile(), saved, 0o600))
		m.mu.Lock()
		m.pending = true
		m.mu.Unlock()
		m.agentUp()
		m.requeueAt = m.now // a started agent lists every policy
	case died || during == "runtimeDown":
		// The runtime comes back: its event streams broke, and the
		// follower connects again.
		m.f.Restart()
		m.reconnect()
	}
	if !restart {
		switch {
		case err != nil:
			m.requeueAt = m.now.Add(time.Second) // the workqueue's back-off
		case res.RequeueAfter > 0:
			m.requeueAt = m.now.Add(res.RequeueAfter)
		default:
			m.requeueAt = time.Time{}
		}
	}
	if m.policy == nil {
		m.collectReport()
	}
	if spec != nil {
		m.checkKeepNewest(spec)
		m.checkReport(spec, died, reportBefore)
	}
	m.follow()
	if changed {
		// The change's own event brings the policy back once this
		// reconcile is done.
		m.setNow(m.now.Add(time.Second))
		m.reconcile(t, "")
	}
}

// beginReconcile notes what the invariants read during a reconcile: the
// spec in force, whether the disk was above its high watermark, the
// newest builds of each repository.
func (m *lifeModel) beginReconcile(before map[string]runtime.Image) {
	newest := map[string][]runtime.Image{}
	for _, img := range before {
		for _, repo := range repositoriesOf(img) {
			newest[repo] = append(newest[repo], img)
		}
	}
	for _, imgs := range newest {
		slices.SortFunc(imgs, func(a, b runtime.Image) int { return b.Created.Compare(a.Created) })
	}
	var pressure bool
	m.mu.Lock()
	policy := m.policy
	m.mu.Unlock()
	if policy != nil && policy.Spec.DiskUsage != nil {
		u, _ := m.measure()
		pressure = cleanup.Watermarks(policy.Spec.DiskUsage).Above(u) != ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweeping, m.changedAt, m.afterChange, m.destroyers, m.violation = nil, 0, 0, 0, ""
	m.closedAt, m.afterClose = 0, 0
	m.applying, m.rechecked, m.raced = false, map[string]bool{}, map[string]bool{}
	if policy != nil && m.selected && !policy.Spec.Suspend {
		m.sweeping = policy.Spec.DeepCopy()
	}
	m.pressure, m.newestBefore = pressure, newest
	m.sweepStart = m.now
}

// checkReport: a report equals what the runtime lost. After a killed agent
// or a runtime that died under a removal, the report may lag until the
// next sweep that lists the runtime counts what they left.
func (m *lifeModel) checkReport(spec *v1alpha1.ImageCleanupPolicySpec, died bool, versionBefore string) {
	var r v1alpha1.ImageCleanupReport
	if err := m.kube.Get(m.ctx, client.ObjectKey{Name: v1alpha1.ReportName(lifePolicy, lifeNode)}, &r); err != nil {
		return
	}
	written := r.ResourceVersion != versionBefore
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.counting() {
		return // the next reconcile deletes it
	}
	st := &r.Status
	if died {
		m.owed = true
	}
	thisSweep := written && st.LastSweepTime != nil && st.LastSweepTime.Time.Equal(m.now.Truncate(time.Second))
	if u, _ := m.measureLocked(); thisSweep && m.pressure && !spec.DryRun && st.Phase == v1alpha1.PhaseSucceeded &&
		!cleanup.Watermarks(spec.DiskUsage).Below(u) {
		m.t.Fatalf("invariant report: the report says Succeeded with the disk still %.0f %% used, above lowPercent", u.UsedPercent)
	}
	swept := thisSweep && st.Reason != v1alpha1.ReportReasonRuntimeUnavailable && !died
	if swept && st.Reason != v1alpha1.ReportReasonInvalidPolicy {
		m.checkReturns(st)
	}
	if (m.pending || m.owed) && !swept {
		if st.Totals.ImagesRemoved > m.truth.images || st.Totals.ContainersRemoved > m.truth.ctrs {
			m.t.Fatalf("invariant report: the report counts %d images and %d containers removed, more than the engine lost (%d and %d)",
				st.Totals.ImagesRemoved, st.Totals.ContainersRemoved, m.truth.images, m.truth.ctrs)
		}
		return
	}
	if st.Totals.ImagesRemoved != m.truth.images || st.Totals.ContainersRemoved != m.truth.ctrs {
		m.t.Fatalf("invariant report: the report counts %d images and %d containers removed, the engine lost %d and %d (phase %s: %s)",
			st.Totals.ImagesRemoved, st.Totals.ContainersRemoved, m.truth.images, m.truth.ctrs, st.Phase, st.Message)
	}
	m.pending, m.owed = false, false
}

// reportVersion is the policy's report's resourceVersion, "" when there
// is none: whether a reconcile wrote it.
func (m *lifeModel) reportVersion() string {
	var r v1alpha1.ImageCleanupReport
	if err := m.kube.Get(m.ctx, client.ObjectKey{Name: v1alpha1.ReportName(lifePolicy, lifeNode)}, &r); err != nil {
		return ""
	}
	return r.ResourceVersion
}

// measureLocked is measure with m.mu held.
func (m *lifeModel) measureLocked() (disk.Usage, error) {
	m.mu.Unlock()
	defer m.mu.Lock()
	return m.measure()
}

// violate records a broken promise, for the reconcile's step to fail
// with; m.mu is held.
func (m *lifeModel) violate(msg string) {
	if m.violation == "" {
		m.violation = msg
	}
}

// beforeCall sees every runtime call: a destructive call made after the
// policy changed breaks the promise that a change stops the sweep.
func (m *lifeModel) beforeCall(method, arg string) {
	// A re-check reads the image and lists its containers (the listing
	// shared by the re-checks that ask together); read before m.mu (the
	// runtime takes its own lock) what each read covers: the images, and
	// the parents their deletion prunes.
	var chain []string
	switch method {
	case "InspectImage":
		chain = m.pruneChain(arg)
	case "ContainersUsing":
		for _, id := range strings.Split(arg, ",") {
			chain = append(chain, m.pruneChain(id)...)
		}
	}
	m.mu.Lock()
	if m.sweeping == nil {
		m.mu.Unlock()
		return
	}
	if method == "ContainersUsing" {
		m.applying = true // only re-checks list by image: the plan is made
	}
	if m.applying {
		for _, id := range chain {
			m.rechecked[id] = true
		}
	}
	if method != "RemoveImage" && method != "RemoveContainer" {
		m.mu.Unlock()
		return
	}
	m.destroyers++
	n, hook := m.destroyers, m.onDestroy
	m.checkWindow(method, arg)
	if m.changedAt > 0 {
		// Calls under way when the policy changed finish: each asked its
		// Proceed right before, holding one of the calls in flight. More
		// than those is a call begun after the change.
		m.afterChange++
		if m.afterChange >= m.inFlight() {
			m.violate(violation("8", "%s %s after the policy changed (at destructive call %d; %d calls since)", method, arg, m.changedAt, m.afterChange))
		}
	}
	m.mu.Unlock()
	if hook != nil {
		hook(n, method, arg)
	}
}

// closeWindow moves the clocks, in the middle of a sweep, to the close of
// the schedule's window open now (the destructive call n is under way).
func (m *lifeModel) closeWindow(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sweeping == nil || m.sweeping.Schedule == nil {
		return
	}
	sched, err := schedule.Parse(m.sweeping.Schedule)
	if err != nil {
		return
	}
	st := sched.At(m.clock.Now())
	if !st.Open {
		return
	}
	m.now = later(m.now, st.Closes)
	m.clock.SetTime(m.now)
	m.closedAt = n
}

// checkWindow: a destructive call while no window of the sweep's schedule
// is open breaks invariant 11, unless the disk is above its high watermark
// then and may be swept outside the windows; the calls under way when the
// window closed (at most the calls in flight) finish.
func (m *lifeModel) checkWindow(method, arg string) {
	spec := m.sweeping
	if spec == nil || spec.Schedule == nil || spec.DryRun {
		return
	}
	sched, err := schedule.Parse(spec.Schedule)
	if err != nil || sched.At(m.clock.Now()).Open {
		return
	}
	if u, err := m.measureLocked(); err == nil && spec.DiskUsage != nil && sched.DiskAnytime &&
		cleanup.Watermarks(spec.DiskUsage).Above(u) != "" {
		return // the disk is above its high watermark now
	}
	if m.closedAt > 0 {
		m.afterClose++
		if m.afterClose < m.inFlight() {
			return
		}
	}
	m.violate(violation("11", "%s %s at %s, outside the schedule's windows (closed at destructive call %d; %d calls since)",
		method, arg, m.clock.Now().In(sched.Zone()), m.closedAt, m.afterClose))
}

// inFlight is how many runtime calls the agent makes at once.
func (m *lifeModel) inFlight() int {
	if m.calls == 0 {
		return apply.DefaultConcurrency
	}
	return m.calls
}

// --- the node going on in the middle of a sweep ------------------------------

// changeDuring changes the policy, deletes it, moves the node out of its
// selector, or suspends it, at a destructive call of a sweep.
// It runs on the executor's goroutine, where a failure of the test cannot
// stop it: a write that fails is a violation, told after the sweep.
func (m *lifeModel) changeDuring(d midSweep) {
	defer func() {
		if r := recover(); r != nil {
			m.mu.Lock()
			m.violate(fmt.Sprintf("the change in the middle of the sweep failed: %v", r))
			m.mu.Unlock()
		}
	}()
	switch d.change {
	case 0:
		m.setPolicy(d.next)
	case 1:
		m.must(m.kube.Delete(m.ctx, &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: lifePolicy}}))
		m.mu.Lock()
		m.policy = nil
		m.mu.Unlock()
	case 2:
		m.flipLabel()
	case 3:
		m.updatePolicy(func(p *v1alpha1.ImageCleanupPolicy) { p.Spec.Suspend = true })
	}
}

// window is what the re-checks' window of one round trip may hold, which
// mid-sweep steps leave alone: the images re-checked so far (their
// removal may be under way), the image the destructive call (method on
// arg) may remove, and the untagged parents above it, which the runtime
// prunes with it.
func (m *lifeModel) window(method, arg string) map[string]bool {
	var w map[string]bool
	m.mu.Lock()
	w = maps.Clone(m.rechecked)
	m.mu.Unlock()
	if method == "RemoveImage" {
		for _, id := range m.pruneChain(m.f.Named(arg)) {
			w[id] = true
		}
	}
	return w
}

// pruneChain is the image and the untagged parents above it, which the
// runtime prunes with it.
func (m *lifeModel) pruneChain(id string) []string {
	var chain []string
	for id != "" && !slices.Contains(chain, id) {
		chain = append(chain, id)
		img, _ := m.f.Image(id)
		up, ok := m.f.Image(img.ParentID)
		if !ok || !up.Unreferenced() {
			break
		}
		id = img.ParentID
	}
	return chain
}

// racedRecheck notes, after a mid-sweep step acted on an image outside
// the window it saw, that a re-check of the image began meanwhile: the
// step fell in the re-check's window of one round trip after all, and
// what the sweep then does to that image is not held against it.
func (m *lifeModel) racedRecheck(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rechecked[id] {
		m.raced[id] = true
	}
}

// pickOtherThan picks the pick-th image on the node outside the call's
// window. With calls in flight at once, the window is the images of
// every action of the sweep that may be past its re-check.
func (m *lifeModel) pickOtherThan(method, arg string, pick int) (string, bool) {
	w := m.window(method, arg)
	var candidates []string
	for _, id := range m.present() {
		if !w[id] {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		return "", false
	}
	return candidates[pick%len(candidates)], true
}

// runDuring is the node going on while a sweep runs: a stopped container
// starts (d.flag), or a container is created, in any state, on an image
// outside the call's window.
func (m *lifeModel) runDuring(method, arg string, d midSweep) {
	w := m.window(method, arg)
	if d.flag {
		m.mu.Lock()
		var stopped []string
		for id, c := range m.truth.containers {
			if c.Stopped() && !w[c.ImageID] {
				stopped = append(stopped, id)
			}
		}
		m.mu.Unlock()
		if len(stopped) == 0 {
			return
		}
		slices.Sort(stopped)
		id := stopped[d.pick%len(stopped)]
		m.f.SetState(id, runtime.StateRunning)
		m.mu.Lock()
		c := m.truth.containers[id]
		c.State = runtime.StateRunning
		m.mu.Unlock()
		m.started(c)
		m.racedRecheck(c.ImageID)
		return
	}
	id, ok := m.pickOtherThan(method, arg, d.pick)
	if !ok {
		return
	}
	c := m.midSweepContainer("m", 1<<41, id, d.state)
	if d.kubelet {
		c.Labels = map[string]string{"io.kubernetes.pod.name": "pod"}
	}
	if d.state == runtime.StateExited {
		c.FinishedAt = m.runtimeNow()
	}
	m.f.AddContainer(c)
	m.started(c)
	m.racedRecheck(id)
}

// midSweepContainer is a container of image in state, made in the middle
// of a sweep (on the executor's goroutine); its ID counts from base, and
// its name starts with prefix, apart from those the steps make.
func (m *lifeModel) midSweepContainer(prefix string, base int, image, state string) runtime.Container {
	m.mu.Lock()
	m.containersMade++
	n := m.containersMade
	m.mu.Unlock()
	id := fmt.Sprintf("%064x", base+n)
	return runtime.Container{ID: id, Name: prefix + id[58:], ImageID: image, State: state, Created: m.runtimeNow()}
}

// bindDuring is a pod bound to the node while a sweep runs: it names an
// image outside the call's window, by its ID, or by one of its tags
// (d.flag).
func (m *lifeModel) bindDuring(method, arg string, d midSweep) {
	id, ok := m.pickOtherThan(method, arg, d.pick)
	if !ok {
		return
	}
	ref := id
	if img, _ := m.f.Image(id); len(img.RepoTags) > 0 && d.flag {
		ref = img.RepoTags[d.tag%len(img.RepoTags)]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rechecked[id] {
		return // its re-check began since the pick: the window
	}
	m.podsMade++
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("pod-%d", m.podsMade)},
		Spec: corev1.PodSpec{NodeName: lifeNode, Containers: []corev1.Container{{Name: "c", Image: ref}}}}
	m.pods = append(m.pods, lifePod{name: "default/" + p.Name, pod: p, refs: []string{ref}})
}

// useDuring is the node going on while a sweep runs: an image outside the
// call's window that other hands remove and pull again (d.flag; not while
// a killed sweep's removals are unreported), or a container run on it and
// removed. The agent's follower hears of it; its re-check must see it.
func (m *lifeModel) useDuring(method, arg string, d midSweep) {
	id, ok := m.pickOtherThan(method, arg, d.pick)
	if !ok {
		return
	}
	if d.flag && !m.othersWait() {
		img, _ := m.f.Image(id)
		m.f.RemoveImageByHand(id)
		// On the CRI images are seen by listings: one that leaves and comes
		// back between two keeps its first arrival (docs/policy.md), which
		// the truth keeps too (counted, the CRI's lives break invariant 6
		// when the image's re-check comes after its return). Whether a
		// listing came between is drawn from what the life drew already.
		seen := !m.cri || d.tag%2 == 0
		if seen && m.cri && m.agent != nil && m.f.WaitFollowers(1, followerWait) {
			m.f.PollFollowers()
		}
		m.f.AddImage(img)
		if seen {
			m.mu.Lock()
			m.truth.arrived[id] = m.now
			m.mu.Unlock()
		}
	} else {
		c := m.midSweepContainer("u", 1<<42, id, runtime.StateRunning)
		m.f.AddContainer(c)
		// On CRI-O a use is seen by a listing of containers: one gone
		// before the next is the documented blind spot (docs/policy.md),
		// which the truth leaves out. Whether one came between is drawn
		// from what the life drew already (a new draw would change every
		// recorded life).
		seen := !m.crio || d.tag%2 == 0
		if seen && m.crio && m.agent != nil && m.f.WaitFollowers(1, followerWait) {
			m.f.PollFollowers()
		}
		m.f.RemoveContainerByHand(c.ID)
		if seen {
			m.mu.Lock()
			m.truth.used[id] = m.now
			m.mu.Unlock()
		}
	}
	if m.agent != nil { // on the executor's goroutine: a failure is a violation, told after
		ok := m.f.WaitFollowers(1, followerWait)
		if ok && m.cri {
			m.f.PollFollowers()
		}
		if !ok {
			m.mu.Lock()
			m.violate("the agent's event follower did not catch up in the middle of a sweep")
			m.mu.Unlock()
		}
	}
	m.racedRecheck(id) // once the agent's follower has heard of it
}

// countRemovals counts what a reconcile took from the images that were
// there when it began: an image deleted, or one that lost a reference,
// counts once (a report counts images or tags removed).
func countRemovals(f *runtimefake.Runtime, before map[string]runtime.Image) int64 {
	var n int64
	for id, was := range before {
		now, ok := f.Image(id)
		if !ok || len(now.RepoTags)+len(now.RepoDigests) < len(was.RepoTags)+len(was.RepoDigests) {
			n++
		}
	}
	return n
}

// checkKeepNewest: the keepNewest newest builds of each repository, as
// they were when the sweep began, are all still there (invariant 7). A
// repository whose N-th and N+1-th builds have the same date is left out.
func (m *lifeModel) checkKeepNewest(spec *v1alpha1.ImageCleanupPolicySpec) {
	n := int(spec.KeepNewest)
	if n == 0 || spec.DryRun {
		return
	}
	for repo, imgs := range m.newestBefore {
		if len(imgs) > n && imgs[n-1].Created.Equal(imgs[n].Created) {
			continue
		}
		for _, img := range imgs[:min(n, len(imgs))] {
			if !m.f.HasImage(img.ID) {
				m.t.Fatalf("invariant 7: keepNewest %d: %s, one of the newest builds of %s (built %s), went", n, img.ID, repo, img.Created)
			}
		}
	}
}

// check runs after every step: the runtime holds what the model says.
func (m *lifeModel) check(*rapid.T) {
	for id := range m.truth.arrived {
		if !m.f.HasImage(id) {
			m.t.Fatalf("image %s went without the model knowing", id)
		}
	}
	for id := range m.truth.containers {
		if !m.f.HasContainer(id) {
			m.t.Fatalf("container %s went without the model knowing", id)
		}
	}
}
