package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels on every ImageCleanupReport; the agent's cache selects its own
// reports by the node label.
const (
	LabelPolicy = "imagecleanup.io/policy"
	LabelNode   = "imagecleanup.io/node"
)

// ReportPhase sums up the last sweep of one policy on one node.
// +kubebuilder:validation:Enum=Succeeded;Blocked;Failed;DryRun;Skipped
type ReportPhase string

const (
	// PhaseSucceeded means every target that could be removed was removed, nothing is blocked.
	PhaseSucceeded ReportPhase = "Succeeded"
	// PhaseBlocked means the sweep ran, and some targets stay because of containers,
	// child images or a conflict at delete time.
	PhaseBlocked ReportPhase = "Blocked"
	// PhaseFailed means the sweep could not run or a runtime call failed.
	PhaseFailed ReportPhase = "Failed"
	// PhaseDryRun means the policy is a dry run; the report lists the plan.
	PhaseDryRun ReportPhase = "DryRun"
	// PhaseSkipped means the node did not sweep: the policy is suspended, its
	// schedule has no window open, or it changed during the sweep.
	PhaseSkipped ReportPhase = "Skipped"
)

// Reasons of a report: of a Failed one, and the two below.
const (
	ReportReasonInvalidPolicy      = "InvalidPolicy"
	ReportReasonRuntimeUnavailable = "RuntimeUnavailable"
	ReportReasonSweepStopped       = "SweepStopped"
	ReportReasonRemovalFailed      = "RemovalFailed"
	// ReportReasonSuperseded (phase Skipped): the policy or the node's
	// labels changed during the sweep, which stopped before its next
	// removal; the new generation sweeps next.
	ReportReasonSuperseded = "Superseded"
	// ReportReasonWatermarkNotReached (phase Blocked): under disk pressure
	// the sweep removed all it may and the disk is still above lowPercent.
	ReportReasonWatermarkNotReached = "WatermarkNotReached"
	// ReportReasonDiskUnmeasured (phase Failed): a policy with diskUsage,
	// and the disk that holds the images cannot be measured.
	ReportReasonDiskUnmeasured = "DiskUnmeasured"
	// ReportReasonStateNotSaved (phase Failed): the image clock's file
	// cannot be written; what the sweep removed is still counted.
	ReportReasonStateNotSaved = "StateNotSaved"
	// ReportReasonPodsUnknown (phase Failed): the agent cannot see the pods
	// bound to its node (its cache has not synced, or a watch fails), and
	// does not sweep until it can.
	ReportReasonPodsUnknown = "PodsUnknown"
	// ReportReasonNoRuntime (phase Failed): the agent finds no container
	// runtime it supports on its node (Docker, containerd, CRI-O); the
	// message says where it looked.
	ReportReasonNoRuntime = "NoRuntime"
	// ReportReasonOutsideWindow (phase Skipped): the policy's schedule has
	// no window open; the node sweeps when the next one opens (the message
	// says when). A sweep that a closing window stopped says so too.
	ReportReasonOutsideWindow = "OutsideWindow"
)

// Bounds of the lists in a report, which keep it small however much a node
// holds: the aggregator holds every report of every node in memory, and a
// report is sent whole to every watcher on each write. Twenty examples of
// each list keep a report near 5 KB (100 MB for 5,000 nodes and four
// policies at 50 would be 2.5 times that); the decisions count everything.
const (
	MaxReportedItems  = 20
	MaxReportedErrors = 10
	// MaxReturnedItems bounds returned.recent.
	MaxReturnedItems = 10
	// MaxDecisionCounts bounds decisions: one entry per reason, of which
	// there are fewer than 25.
	MaxDecisionCounts = 32
)

// Decision reasons of a report's decisions besides the planner's reasons an
// image stays (the skipping and blocking reasons).
const (
	// DecisionRemoved: the sweep removed the image or the reference.
	DecisionRemoved = "Removed"
	// DecisionWouldRemove: a dry run; a real sweep would remove it.
	DecisionWouldRemove = "WouldRemove"
	// DecisionRemovalFailed: its removal failed (see errors).
	DecisionRemovalFailed = "RemovalFailed"
)

// DecisionCount is how many of the images a policy selects on a node got
// one decision in the last sweep.
type DecisionCount struct {
	// reason is the decision: Removed, WouldRemove (a dry run),
	// RemovalFailed, or why the images stayed: a skipping reason (the
	// policy's own guards: Excluded, Protected, PodOnNode, TooYoung,
	// RecentlyUsed, KeptNewest, Deferred, BelowLowWatermark, Interrupted) or
	// a blocking one (something on the node keeps them: RunningContainer,
	// KeptStoppedContainer, StoppedRecently, KubernetesManaged, ...).
	Reason string `json:"reason"`
	// images counts them (an untagged reference counts as one).
	Images int32 `json:"images"`
	// bytes sums their sizes: what removing them frees, or what keeping
	// them keeps (layers shared with other images counted in each: an
	// upper bound).
	Bytes int64 `json:"bytes"`
	// eligibleFrom, for TooYoung and RecentlyUsed, is the earliest time one
	// of them becomes old enough for the policy (by the node's image clock),
	// if nothing else keeps it then.
	// +optional
	EligibleFrom *metav1.Time `json:"eligibleFrom,omitempty"`
}

// BlockedImage is a target image that stayed on the node, and why.
type BlockedImage struct {
	// image is the reference (or ID) the policy matched.
	Image string `json:"image"`
	// reason is a CamelCase word, such as RunningContainer or KeptStoppedContainer.
	Reason string `json:"reason"`
	// message says it for a person, naming the container or child image.
	// +optional
	Message string `json:"message,omitempty"`
}

// ImageCleanupReportSpec identifies the (policy, node) pair a report belongs to.
type ImageCleanupReportSpec struct {
	// policyName is the ImageCleanupPolicy this report is about.
	PolicyName string `json:"policyName"`
	// nodeName is the node whose agent writes this report.
	NodeName string `json:"nodeName"`
}

// SweepTotals add up every sweep of a policy on a node.
type SweepTotals struct {
	// sweeps counts the sweeps of this policy on this node, dry runs included.
	// +optional
	Sweeps int64 `json:"sweeps"`
	// imagesRemoved counts the images (or tags) removed by all of them (dry
	// runs not included).
	// +optional
	ImagesRemoved int64 `json:"imagesRemoved"`
	// containersRemoved counts the stopped containers removed by all of them.
	// +optional
	ContainersRemoved int64 `json:"containersRemoved"`
	// bytesReclaimed estimates the disk space all of them freed (an upper
	// bound: layers shared with other images count).
	// +optional
	BytesReclaimed int64 `json:"bytesReclaimed"`
}

// ImageCleanupReportStatus is what the last sweep did. In a dry run the
// removed counts and lists say what a real sweep would have removed.
type ImageCleanupReportStatus struct {
	// policyGeneration is the policy generation the sweep applied.
	// +optional
	PolicyGeneration int64 `json:"policyGeneration,omitempty"`
	// phase sums up the last sweep: Succeeded (nothing left blocked),
	// blocked (a target image stayed: see blocked), Failed (see reason and
	// message), DryRun or Skipped (suspended).
	// +optional
	Phase ReportPhase `json:"phase,omitempty"`
	// reason says in one word why the phase is Failed: InvalidPolicy (this
	// node cannot apply the policy; a new spec is needed), RuntimeUnavailable,
	// SweepStopped, RemovalFailed, PodsUnknown, DiskUnmeasured or
	// StateNotSaved (all but the first are retried); why it is
	// Skipped: Superseded (the policy or the node's labels changed during
	// the sweep, which stopped before its next removal); or why it is
	// Blocked: WatermarkNotReached (the disk stayed above lowPercent).
	// +optional
	Reason string `json:"reason,omitempty"`
	// message explains a Failed or Skipped phase.
	// +optional
	Message string `json:"message,omitempty"`
	// lastSweepTime is when the last sweep started.
	// +optional
	LastSweepTime *metav1.Time `json:"lastSweepTime,omitempty"`
	// countedThrough marks the latest sweep that counted here what the
	// runtime lost of the removals begun before it (a sweep that could not
	// list the runtime counts nothing, and leaves it as it was): the
	// agent's records of the removals begun up to then are told. The mark
	// is the sweep's start to the microsecond, or a microsecond after the
	// previous mark where the node's clock did not move or went back.
	// +optional
	CountedThrough *PreciseTime `json:"countedThrough,omitempty"`
	// lastSweepDuration is how long it took, such as 1.2s.
	// +optional
	LastSweepDuration string `json:"lastSweepDuration,omitempty"`

	// imagesRemoved counts images (or tags) removed by the last sweep.
	// +optional
	ImagesRemoved int32 `json:"imagesRemoved"`
	// containersRemoved counts stopped containers removed by the last sweep.
	// +optional
	ContainersRemoved int32 `json:"containersRemoved"`
	// bytesReclaimed estimates the disk space the last sweep freed.
	// +optional
	BytesReclaimed int64 `json:"bytesReclaimed"`
	// removedImages names the first 20 images removed.
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	RemovedImages []string `json:"removedImages,omitempty"`
	// removedContainers names the first 20 containers removed (name and short ID).
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	RemovedContainers []string `json:"removedContainers,omitempty"`

	// blockedCount counts the target images that stayed.
	// +optional
	BlockedCount int32 `json:"blockedCount"`
	// blocked lists the first 20 of them, and why.
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	Blocked []BlockedImage `json:"blocked,omitempty"`

	// decisions counts what the last sweep decided for every image the
	// policy selects, one entry per reason, with their sizes, sorted by
	// reason: the whole picture, where the lists stop at 20. In a dry run
	// it is the preview (WouldRemove, and what stays and why).
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=reason
	// +optional
	Decisions []DecisionCount `json:"decisions,omitempty"`

	// errors lists the first 10 errors of the last sweep.
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	// +optional
	Errors []string `json:"errors,omitempty"`

	// totals over every sweep of this policy on this node.
	// +optional
	Totals SweepTotals `json:"totals,omitempty"`

	// disk is the filesystem of the runtime's images around the last sweep,
	// for a policy with diskUsage.
	// +optional
	Disk *DiskStatus `json:"disk,omitempty"`

	// returned: the images this policy's sweeps removed from the node that
	// came back (pulled or loaded again) within 24 hours of their removal,
	// counted over the 24 hours before the last sweep: what the policy
	// removes and the node needs again. None when nothing came back.
	// +optional
	Returned *ReturnedImages `json:"returned,omitempty"`
	// runtime is the node's container runtime, as the last sweep found it.
	// +optional
	Runtime *RuntimeStatus `json:"runtime,omitempty"`
}

// RuntimeStatus names a node's container runtime.
type RuntimeStatus struct {
	// name is the runtime as it names itself: docker, containerd or cri-o.
	Name string `json:"name"`
	// version is the runtime's version, as it reports it.
	Version string `json:"version"`
	// imageStore is where it keeps images: containerd (containerd's own
	// store, and Docker 29's default on a new data root), the graph driver
	// of Docker's classic store, such as overlay2, or cri where the CRI
	// says no more (CRI-O).
	ImageStore string `json:"imageStore"`
}

// DiskStatus is the filesystem that holds the runtime's images before and
// after a sweep, in percent used (rounded down).
type DiskStatus struct {
	// path is the folder whose filesystem was measured, as the agent sees
	// it: Docker's data root, or containerd's root where the images are in
	// containerd's store (containerd itself, and Docker 29's default).
	// +optional
	Path string `json:"path,omitempty"`
	// usedPercentBefore is the space used before the sweep.
	UsedPercentBefore int32 `json:"usedPercentBefore"`
	// usedPercentAfter is the space used after it.
	UsedPercentAfter int32 `json:"usedPercentAfter"`
	// inodesUsedPercentBefore is the inodes used before the sweep.
	InodesUsedPercentBefore int32 `json:"inodesUsedPercentBefore"`
	// inodesUsedPercentAfter is the inodes used after it.
	InodesUsedPercentAfter int32 `json:"inodesUsedPercentAfter"`
	// watermark is the high watermark usage was above (space or inodes);
	// empty when under both, and then only images unused for maxUnusedAge
	// were candidates.
	// +optional
	Watermark string `json:"watermark,omitempty"`
}

// It has no status subresource on purpose: it has a single writer, and one
// server-side apply writes labels, owner and results together.

// ReturnedImages counts the images a policy removed that came back.
type ReturnedImages struct {
	// images counts them.
	Images int32 `json:"images"`
	// bytes is their size: what the node pulled again.
	Bytes int64 `json:"bytes"`
	// recent names up to 10 of them, the latest return first, each with
	// how long it was gone.
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	// +optional
	Recent []string `json:"recent,omitempty"`
}

// ImageCleanupReport is one node's account of one policy. Only that node's
// agent writes it, at most once per sweep; it belongs to the policy and goes
// with it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=icr,categories=imagecleanup
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policyName`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Generation",type=integer,JSONPath=`.status.policyGeneration`
// +kubebuilder:printcolumn:name="Images",type=integer,JSONPath=`.status.imagesRemoved`,description="images removed by the last sweep"
// +kubebuilder:printcolumn:name="Containers",type=integer,JSONPath=`.status.containersRemoved`,description="containers removed by the last sweep"
// +kubebuilder:printcolumn:name="Blocked",type=integer,JSONPath=`.status.blockedCount`
// +kubebuilder:printcolumn:name="Last sweep",type=date,JSONPath=`.status.lastSweepTime`
// +kubebuilder:printcolumn:name="Total images",type=integer,JSONPath=`.status.totals.imagesRemoved`,priority=1
// +kubebuilder:printcolumn:name="Returned",type=integer,JSONPath=`.status.returned.images`,priority=1,description="images removed that came back within a day"
// +kubebuilder:printcolumn:name="Reclaimed",type=integer,JSONPath=`.status.totals.bytesReclaimed`,priority=1
type ImageCleanupReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec names the policy and the node.
	Spec ImageCleanupReportSpec `json:"spec"`
	// status is what the last sweep did, and totals over every sweep.
	Status ImageCleanupReportStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ImageCleanupReportList is a list of ImageCleanupReport.
type ImageCleanupReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageCleanupReport `json:"items"`
}
