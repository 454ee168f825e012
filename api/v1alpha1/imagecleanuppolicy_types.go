package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImagePattern is one entry: a reference, normalized as the distribution
// reference grammar says (busybox is docker.io/library/busybox:latest), a
// digest reference, an image ID or a pattern.
//
// +kubebuilder:validation:MaxLength=200
// +kubebuilder:validation:XValidation:rule="size(self) > 0",message="must not be empty"
// +kubebuilder:validation:XValidation:rule="!self.matches('[[:space:]]')",message="must not contain spaces"
// +kubebuilder:validation:XValidation:rule="!self.startsWith('sha256:') || self.matches('^sha256:[0-9a-f]{12,64}$')",message="an image ID must be sha256: followed by 12 to 64 lowercase hex digits"
// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9a-f]{12,64}$')",message="looks like an image ID: write it as sha256:<id>, a bare hex string is read as a repository name"
// +kubebuilder:validation:XValidation:rule="!self.contains('@') || self.matches('@sha256:[0-9a-f]{64}$')",message="a digest reference must end in @sha256: and 64 lowercase hex digits"
// +kubebuilder:validation:XValidation:rule="!(self.contains('@') && self.contains('*'))",message="a digest reference cannot contain wildcards"
// +kubebuilder:validation:XValidation:rule="!self.matches('[^/][*][*]|[*][*][^/:]|[*][*]:[^/]*/')",message="** stands for whole path segments (registry.example.com/ci/**); use * inside a name or a tag"
// +kubebuilder:validation:XValidation:rule="self.startsWith('sha256:') || self.matches('^(([a-zA-Z0-9*]|[a-zA-Z0-9*][a-zA-Z0-9*-]*[a-zA-Z0-9*])([.]([a-zA-Z0-9*]|[a-zA-Z0-9*][a-zA-Z0-9*-]*[a-zA-Z0-9*]))*(:[0-9]+)?/)?[a-z0-9*]+(([._]|__|[-]+)[a-z0-9*]+)*(/[a-z0-9*]+(([._]|__|[-]+)[a-z0-9*]+)*)*(:[a-zA-Z0-9_*][a-zA-Z0-9_.*-]{0,127})?(@sha256:[0-9a-f]{64})?$')",message="must be an image reference (busybox, registry.example.com/team/app:1.2, app@sha256:<64 hex>), an image ID (sha256:<hex>) or a pattern (registry.example.com/ci/**, app:pr-*); repository paths are lowercase"
type ImagePattern string

// Duration is written with hours, minutes and seconds only, such as 0s, 90s,
// 30m, 1h or 2h30m (1h0m0s is accepted too); each number has at most six
// digits.
//
// +kubebuilder:validation:MaxLength=24
// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$') && size(self) > 0",message="must be a duration like 0s, 30m, 1h or 2h30m"
type Duration string

// LabelValue is the value of a node label: at most 63 letters, digits, '-',
// '_' or '.', starting and ending with a letter or digit, or empty.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="self.matches('^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$')",message="a label value has at most 63 letters, digits, '-', '_' or '.', and starts and ends with a letter or digit"
type LabelValue string

// NodeSelectorOperator relates a label key to values.
// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
type NodeSelectorOperator string

// NodeSelectorRequirement is one matchExpressions entry of a NodeSelector.
// +kubebuilder:validation:XValidation:rule="self.operator in ['Exists', 'DoesNotExist'] ? (!has(self.values) || size(self.values) == 0) : (has(self.values) && size(self.values) > 0)",message="In and NotIn need values; Exists and DoesNotExist take none"
type NodeSelectorRequirement struct {
	// key is a label key: an optional DNS prefix and a slash, then a name.
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule="self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$')",message="a label key is an optional DNS prefix and a slash, then a name of at most 63 letters, digits, '-', '_' or '.'"
	Key string `json:"key"`
	// operator is In, NotIn, Exists or DoesNotExist.
	Operator NodeSelectorOperator `json:"operator"`
	// values for In and NotIn; none for Exists and DoesNotExist. Default:
	// none.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Values []LabelValue `json:"values,omitempty"`
}

// NodeSelector selects nodes by their labels, as a Kubernetes label selector
// does (matchLabels and matchExpressions, all of which must hold).
type NodeSelector struct {
	// A metav1.LabelSelector with bounds, which the API server needs to
	// afford the CEL rules. Label keys in matchLabels are checked by the
	// agent, not at admission: CEL cannot bound the cost of a rule over map
	// keys; an invalid key makes every node's report Failed, InvalidPolicy.

	// matchLabels: every label must be present with this value. A key that is
	// not a valid label key makes every node report Failed (InvalidPolicy).
	// Default: none.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	MatchLabels map[string]LabelValue `json:"matchLabels,omitempty"`
	// matchExpressions: every expression must hold. Default: none.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	MatchExpressions []NodeSelectorRequirement `json:"matchExpressions,omitempty"`
}

// StoppedContainerAction says what to do with stopped containers that block
// the removal of a target image.
// +kubebuilder:validation:Enum=Remove;Keep
type StoppedContainerAction string

const (
	// StoppedContainersRemove removes the blocking stopped containers, then the image.
	StoppedContainersRemove StoppedContainerAction = "Remove"
	// StoppedContainersKeep leaves them, and reports the image as blocked.
	StoppedContainersKeep StoppedContainerAction = "Keep"
)

// StoppedContainersPolicy decides the fate of stopped containers (exited,
// created and never started, or dead) that use a target image.
//
// +kubebuilder:validation:XValidation:rule="self.action == 'Remove' || !has(self.removeVolumes) || !self.removeVolumes",message="removeVolumes needs action Remove: kept containers keep their volumes"
// +kubebuilder:validation:XValidation:rule="self.action == 'Remove' || !has(self.includeKubernetesManaged) || !self.includeKubernetesManaged",message="includeKubernetesManaged needs action Remove: with Keep no container is removed"
type StoppedContainersPolicy struct {
	// action is Remove (delete the blocking stopped containers, then the
	// image) or Keep (leave them and report the image as blocked).
	// Default: Remove.
	// +kubebuilder:default=Remove
	// +optional
	Action StoppedContainerAction `json:"action,omitempty"`

	// minStoppedAge spares containers that finished (or were created and never
	// started) less than this long ago; the image they use is blocked
	// meanwhile. Default: 1h.
	// +kubebuilder:default="1h"
	// +optional
	MinStoppedAge *Duration `json:"minStoppedAge,omitempty"`

	// removeVolumes also removes the anonymous volumes of removed
	// containers. Named volumes are never removed. Needs action Remove.
	// Default: false.
	// +optional
	RemoveVolumes bool `json:"removeVolumes,omitempty"`

	// includeKubernetesManaged lets the agent remove stopped containers that
	// carry io.kubernetes.* labels. Without it they are the kubelet's to
	// collect (it keeps them for kubectl logs --previous) and they block
	// their image, even with force. Needs action Remove. Default: false.
	// +optional
	IncludeKubernetesManaged bool `json:"includeKubernetesManaged,omitempty"`
}

// ImageCleanupPolicySpec says which images to remove from which nodes, and how.
//
// +kubebuilder:validation:XValidation:rule="!has(self.exclude) || !self.exclude.exists(e, e in self.images)",message="an entry in both images and exclude would remove nothing: drop it from one of the two lists"
type ImageCleanupPolicySpec struct {
	// nodeSelector selects the nodes the policy applies to, by label. Default:
	// every node.
	// +optional
	NodeSelector *NodeSelector `json:"nodeSelector,omitempty"`

	// images lists what to remove (1 to 256 entries): references
	// (busybox, registry.example.com/team/app:1.2), digest references
	// (app@sha256:<64 hex>), image IDs (sha256:<12 to 64 hex>) or patterns,
	// where * matches within a path segment or the tag and ** whole path
	// segments (registry.example.com/ci/**, app:pr-*). A name without a tag
	// means :latest, as when a runtime resolves a name; a pattern without a tag matches every
	// tag. "**" alone selects every image: pair it with exclude and
	// minImageAge.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	Images []ImagePattern `json:"images"`

	// exclude lists images that are never removed, whatever else matches,
	// in the syntax of images. Default: none.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	Exclude []ImagePattern `json:"exclude,omitempty"`

	// dangling also removes untagged (<none>) images that no container uses.
	// Default: false.
	// +optional
	Dangling bool `json:"dangling,omitempty"`

	// minImageAge keeps images that arrived on the node less than this long
	// ago. Arrival is when the node's agent first saw the image (or its last
	// tag, where the runtime records when), never its build date. Default: 1h.
	// +kubebuilder:default="1h"
	// +optional
	MinImageAge *Duration `json:"minImageAge,omitempty"`

	// stoppedContainers decides what happens to stopped containers (exited,
	// created and never started, or dead) that block a target image. Default:
	// each of its fields' defaults.
	// +kubebuilder:default={}
	// +optional
	StoppedContainers StoppedContainersPolicy `json:"stoppedContainers,omitempty"`

	// force removes target images even when stopped containers still use
	// them; those containers can no longer start. A running
	// container still blocks its image, and so does a stopped container of
	// the kubelet unless includeKubernetesManaged is set (the kubelet
	// restarts its containers from their image). Default: false.
	// +optional
	Force bool `json:"force,omitempty"`

	// dryRun plans and reports what would be removed, and changes nothing.
	// Default: false.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// suspend stops the policy on every node: nothing is looked at or
	// removed. Default: false.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// interval is how often each node applies the policy again; a change of
	// the spec applies at once. At least 1m. Default: 1h.
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$') || size(self) == 0 || duration(self) >= duration('1m')",message="interval must be at least 1m"
	// +optional
	Interval *Duration `json:"interval,omitempty"`

	// maxImagesPerSweep limits how many images one node removes in one sweep,
	// first in the policy's order. Default: 0, no limit.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxImagesPerSweep int32 `json:"maxImagesPerSweep,omitempty"`

	// diskUsage makes the policy keep the filesystem of the runtime's images under a
	// watermark: when usage is above highPercent, a sweep removes candidates,
	// in the policy's order, until usage is under lowPercent; below it, a
	// sweep removes only images unused for longer than maxUnusedAge (if set).
	// The agent looks every 30s. Default: none (sweeps only by interval).
	// +optional
	DiskUsage *DiskUsage `json:"diskUsage,omitempty"`

	// order is the order in which candidates go: LeastRecentlyUsed (by the
	// last start or stop of a container of the image, else its arrival) or
	// OldestFirst (by arrival). Default: LeastRecentlyUsed with diskUsage,
	// OldestFirst without.
	// +kubebuilder:validation:Enum=LeastRecentlyUsed;OldestFirst
	// +optional
	Order RemovalOrder `json:"order,omitempty"`

	// keepNewest keeps the N most recently arrived images of each repository
	// among the candidates (keep the last 3 builds of ci/app). Default: 0,
	// none kept.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	KeepNewest int32 `json:"keepNewest,omitempty"`

	// maxUnusedAge: when set, only images that no container has used (and
	// that have not arrived) for longer than this are candidates, except under
	// disk pressure (diskUsage above highPercent), when every candidate may go.
	// Default: none.
	// +optional
	MaxUnusedAge *Duration `json:"maxUnusedAge,omitempty"`

	// rollout spreads the first sweep of a new generation over time.
	// Default: every node sweeps at once.
	// +optional
	Rollout *Rollout `json:"rollout,omitempty"`

	// schedule limits sweeps to windows of time (nights, weekends): outside
	// them the agent does not sweep, and a sweep under way when a window
	// closes stops before its next removal. Default: sweeps at any time.
	// +optional
	Schedule *Schedule `json:"schedule,omitempty"`
}

// Schedule is a set of weekly windows of time in one time zone.
type Schedule struct {
	// timeZone is the IANA name of the time zone the windows are written
	// in, such as Europe/Berlin or America/New_York: a node's own time zone
	// never counts. Default: UTC.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')",message="must be an IANA time zone name such as UTC, Europe/Berlin or America/New_York"
	// +kubebuilder:validation:XValidation:rule="self != 'Local'",message="Local would be each node's own time zone: name the zone, such as Europe/Berlin"
	// +optional
	TimeZone string `json:"timeZone,omitempty"`

	// windows: sweeps run while any of them is open (1 to 16).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Windows []Window `json:"windows"`

	// diskPressure says whether a disk above diskUsage.highPercent is swept
	// outside the windows: Anytime (an emergency does not wait: a full disk
	// makes the kubelet evict pods) or InWindows (it waits for the next
	// window like every other sweep). Default: Anytime.
	// +kubebuilder:validation:Enum=Anytime;InWindows
	// +kubebuilder:default=Anytime
	// +optional
	DiskPressure DiskPressureSweeps `json:"diskPressure,omitempty"`
}

// Window is open from start to end on each of its days; an end before its
// start closes on the next day (22:00 to 04:00 spans midnight).
//
// +kubebuilder:validation:XValidation:rule="self.start != self.end",message="start and end must differ (a whole day is 00:00 to 24:00)"
type Window struct {
	// days the window opens on (Mon, Tue, Wed, Thu, Fri, Sat, Sun), in the
	// schedule's time zone; a window that spans midnight opens on these
	// days and closes on the next. Default: every day.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	// +optional
	Days []Weekday `json:"days,omitempty"`
	// start is the time of day the window opens, HH:MM on a 24-hour clock.
	// +kubebuilder:validation:MaxLength=5
	// +kubebuilder:validation:XValidation:rule="self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')",message="must be a time of day from 00:00 to 23:59, such as 22:00"
	Start string `json:"start"`
	// end is the time of day the window closes, HH:MM (24:00 for
	// midnight at the end of the day).
	// +kubebuilder:validation:MaxLength=5
	// +kubebuilder:validation:XValidation:rule="self.matches('^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$')",message="must be a time of day from 00:00 to 24:00, such as 06:00"
	End string `json:"end"`
}

// Weekday is a day of the week, by its three-letter English name.
// +kubebuilder:validation:Enum=Mon;Tue;Wed;Thu;Fri;Sat;Sun
type Weekday string

// DiskPressureSweeps says when a disk above its high watermark is swept.
type DiskPressureSweeps string

const (
	// DiskPressureAnytime sweeps a disk above its high watermark at once,
	// inside a window or not.
	DiskPressureAnytime DiskPressureSweeps = "Anytime"
	// DiskPressureInWindows leaves a disk above its high watermark for the
	// next window.
	DiskPressureInWindows DiskPressureSweeps = "InWindows"
)

// Rollout spreads the first sweep of a new generation over time.
type Rollout struct {
	// window: after a change of the spec, each node starts its first sweep
	// at its own offset within this window (fixed per node and policy), so a
	// fleet does not sweep, and write reports, in the same second. The disk
	// watermark does not wait for it. Default: 0s, at once.
	// +optional
	Window *Duration `json:"window,omitempty"`
}

// RemovalOrder orders a sweep's candidates.
type RemovalOrder string

const (
	// OrderLeastRecentlyUsed removes first the images whose containers ran
	// longest ago.
	OrderLeastRecentlyUsed RemovalOrder = "LeastRecentlyUsed"
	// OrderOldestFirst removes first the images that arrived first.
	OrderOldestFirst RemovalOrder = "OldestFirst"
)

// DiskUsage is the watermark of the filesystem that holds the runtime's
// images (Docker's data root, or containerd's or CRI-O's storage root), in
// percent of its size and, optionally, of its inodes.
//
// +kubebuilder:validation:XValidation:rule="self.lowPercent < self.highPercent",message="lowPercent must be below highPercent"
// +kubebuilder:validation:XValidation:rule="has(self.highInodesPercent) == has(self.lowInodesPercent)",message="highInodesPercent and lowInodesPercent go together"
// +kubebuilder:validation:XValidation:rule="!has(self.highInodesPercent) || self.lowInodesPercent < self.highInodesPercent",message="lowInodesPercent must be below highInodesPercent"
type DiskUsage struct {
	// highPercent: above this usage of the filesystem (percent), a sweep
	// frees space.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	HighPercent int32 `json:"highPercent"`
	// lowPercent: a sweep that frees space stops once usage (percent) is
	// under this; below highPercent.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=99
	LowPercent int32 `json:"lowPercent"`
	// highInodesPercent: the same for inodes (many small layers fill the
	// inode table before the disk). Default: inodes are not watched.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	HighInodesPercent *int32 `json:"highInodesPercent,omitempty"`
	// lowInodesPercent: a sweep that frees inodes stops under this. Set
	// with highInodesPercent. Default: none.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=99
	// +optional
	LowInodesPercent *int32 `json:"lowInodesPercent,omitempty"`
}

// Condition types of an ImageCleanupPolicy. Reconciling and Stalled are the
// ones kstatus (Flux, kubectl-style waiting) reads; they are never True
// together.
const (
	// ConditionReady is True when every selected node has applied the current
	// generation and none failed.
	ConditionReady = "Ready"
	// ConditionDegraded is True when at least one node failed to apply it.
	ConditionDegraded = "Degraded"
	// ConditionReconciling is True while selected nodes have not yet applied
	// the current generation.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the policy cannot make progress: its
	// node selector is invalid, a node found it invalid, or at least
	// StalledFailingPercent of the selected nodes failed.
	ConditionStalled = "Stalled"
)

// StalledFailingPercent is the share of failing nodes that stalls a policy:
// when at least this percent of the selected nodes (and at least one)
// failed, the policy is Stalled, not just Degraded.
const StalledFailingPercent = 10

// Reasons of the policy's conditions.
const (
	ReasonAllNodesApplied     = "AllNodesApplied"
	ReasonWaitingForNodes     = "WaitingForNodes"
	ReasonNodesFailed         = "NodesFailed"
	ReasonNoFailures          = "NoFailures"
	ReasonNoNodesSelected     = "NoNodesSelected"
	ReasonInvalidNodeSelector = "InvalidNodeSelector"
	ReasonSuspended           = "Suspended"
	ReasonInvalidPolicy       = "InvalidPolicy"
	ReasonAllNodesReported    = "AllNodesReported"
	ReasonProgressing         = "Progressing"
	// ReasonAppliedWhereAgentsRun (Ready True): every selected node with a
	// running agent applied the generation; the others have no agent (see
	// nodesWithoutAgent): the DaemonSet does not run there.
	ReasonAppliedWhereAgentsRun = "AppliedWhereAgentsRun"
)

// KubeletImageGCHighThresholdPercent is the kubelet's default
// imageGCHighThresholdPercent: a diskUsage.highPercent at or above it races
// the kubelet's own image garbage collection.
const KubeletImageGCHighThresholdPercent = 85

// ImageCleanupPolicyStatus is recomputed from the nodes' reports by one
// aggregator; nodes never write it.
type ImageCleanupPolicyStatus struct {
	// observedGeneration is the generation the aggregate was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Degraded, Reconciling and Stalled, each with the
	// generation it was computed for.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// nodesMatched counts the nodes the policy selects.
	// +optional
	NodesMatched int32 `json:"nodesMatched"`
	// nodesReported counts selected nodes whose report is for the current generation.
	// +optional
	NodesReported int32 `json:"nodesReported"`
	// nodesSucceeded counts current reports in phase Succeeded, DryRun or Skipped.
	// +optional
	NodesSucceeded int32 `json:"nodesSucceeded"`
	// nodesBlocked counts current reports in phase Blocked.
	// +optional
	NodesBlocked int32 `json:"nodesBlocked"`
	// nodesFailed counts current reports in phase Failed.
	// +optional
	NodesFailed int32 `json:"nodesFailed"`

	// imagesRemoved is the total over the reports of the nodes selected now:
	// a node that leaves the selection takes its share with its report.
	// +optional
	ImagesRemoved int64 `json:"imagesRemoved"`
	// containersRemoved is the total over the reports of the nodes selected now.
	// +optional
	ContainersRemoved int64 `json:"containersRemoved"`
	// bytesReclaimed estimates the disk space freed, over the reports of the
	// nodes selected now.
	// +optional
	BytesReclaimed int64 `json:"bytesReclaimed"`

	// imagesReturned counts, over the reports of the nodes selected now,
	// the images the policy removed that came back within 24 hours of
	// their removal, in the 24 hours before each node's last sweep: what
	// the policy removes and the nodes need again.
	// +optional
	ImagesReturned int64 `json:"imagesReturned"`
	// bytesReturned is their size: what the nodes pulled again.
	// +optional
	BytesReturned int64 `json:"bytesReturned"`

	// imagesWouldRemove counts, over the nodes whose current report is a
	// dry run, the images (or references) a real sweep would remove: what
	// setting dryRun to false would do now.
	// +optional
	ImagesWouldRemove int64 `json:"imagesWouldRemove"`
	// bytesWouldReclaim estimates the disk space those removals would free.
	// +optional
	BytesWouldReclaim int64 `json:"bytesWouldReclaim"`

	// failingNodes names up to 10 failed nodes, sorted.
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	// +optional
	FailingNodes []string `json:"failingNodes,omitempty"`

	// nodesWithoutAgent counts selected nodes where no agent pod runs and
	// that have not applied the current generation (the DaemonSet does not
	// run there: no supported runtime, a taint it does not tolerate, a pod
	// that cannot start). Ready is computed over the other nodes.
	// +optional
	NodesWithoutAgent int32 `json:"nodesWithoutAgent"`
	// agentlessNodes names up to 10 of them, sorted.
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	// +optional
	AgentlessNodes []string `json:"agentlessNodes,omitempty"`

	// warnings name settings that work against the nodes, such as a
	// diskUsage.highPercent at or above the kubelet's image garbage
	// collection threshold (85 by default), which makes the two race.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	Warnings []string `json:"warnings,omitempty"`

	// window says whether a window of spec.schedule is open now, and when
	// the windows next open and close. None without a schedule.
	// +optional
	Window *WindowStatus `json:"window,omitempty"`
}

// WindowState says whether a window of a policy's schedule is open.
type WindowState string

const (
	WindowOpen   WindowState = "Open"
	WindowClosed WindowState = "Closed"
)

// WindowStatus is the state of a policy's schedule at the time the status
// was written; the aggregator writes it again when a window opens or
// closes.
type WindowStatus struct {
	// state is Open while a window is open, else Closed.
	State WindowState `json:"state"`
	// nextOpen is when the next window opens (after the one open now); none
	// when every window is open all week.
	// +optional
	NextOpen *metav1.Time `json:"nextOpen,omitempty"`
	// closes is when the window open now closes; none while closed.
	// +optional
	Closes *metav1.Time `json:"closes,omitempty"`
}

// ImageCleanupPolicy removes the listed images, and the stopped containers
// that block them, from the container runtime of every selected node
// (Docker, containerd or CRI-O).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=icp,categories=imagecleanup
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodesMatched`
// +kubebuilder:printcolumn:name="Reported",type=integer,JSONPath=`.status.nodesReported`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.nodesFailed`
// +kubebuilder:printcolumn:name="Images",type=integer,JSONPath=`.status.imagesRemoved`,description="images removed, all nodes"
// +kubebuilder:printcolumn:name="Containers",type=integer,JSONPath=`.status.containersRemoved`,description="stopped containers removed, all nodes"
// +kubebuilder:printcolumn:name="DryRun",type=boolean,JSONPath=`.spec.dryRun`
// +kubebuilder:printcolumn:name="Would remove",type=integer,JSONPath=`.status.imagesWouldRemove`,description="images a real sweep would remove now, over the nodes of a dry run"
// +kubebuilder:printcolumn:name="Returned",type=integer,JSONPath=`.status.imagesReturned`,priority=1,description="images removed that nodes pulled again within a day"
// +kubebuilder:printcolumn:name="Window",type=string,JSONPath=`.status.window.state`,description="Open or Closed: whether the schedule lets nodes sweep now"
// +kubebuilder:printcolumn:name="Next window",type=string,JSONPath=`.status.window.nextOpen`,description="when the schedule's next window opens"
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImageCleanupPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which images to remove from which nodes, and how.
	Spec ImageCleanupPolicySpec `json:"spec"`
	// status is written by the aggregator from the nodes' reports. A new policy reads as
	// observedGeneration 0 until then, so that tools that wait for
	// observedGeneration (kstatus) see it in progress rather than done.
	// +kubebuilder:default={observedGeneration: 0}
	// +optional
	Status ImageCleanupPolicyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ImageCleanupPolicyList is a list of ImageCleanupPolicy.
type ImageCleanupPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageCleanupPolicy `json:"items"`
}
