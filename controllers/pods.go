package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// nodePods is what the agent knows of the pods bound to its node: the
// images they name (an error when that cannot be trusted), and whether the
// agent started moments ago (then it waits quietly for them).
type nodePods interface {
	images(ctx context.Context) ([]plan.PodImage, error)
	fresh() bool
}

var _ nodePods = (*podView)(nil)

// podView is what the agent knows of the pods bound to its node (a cache
// scoped by spec.nodeName: its cost grows with the pods of one node, never
// with the cluster's). The kubelet owns their images before any container
// of them exists; the planner protects them.
type podView struct {
	cache cache.Cache
	clock clock.PassiveClock
	// started is when the agent started: for grace it waits for its cache
	// quietly.
	started time.Time
	grace   time.Duration

	mu       sync.Mutex
	informer cache.Informer // nil until the agent runs
	// broken is when the cache's watches last failed; they retry with
	// back-off, and the view counts as broken until brokenFor has passed
	// without a new failure.
	broken    time.Time
	brokenWhy string
}

// brokenFor is how long after a watch failure the agent's view of its
// pods (and policies, and Node) is not trusted: a reflector retries with a
// back-off of at most 30 s, so a watch that still fails fails again within
// this.
const brokenFor = time.Minute

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// agent watches its own node's pods.
func (v *podView) NeedLeaderElection() bool { return false }

// podCacheOptions scope the cache of the node's pods: those bound to it
// (a field selector: the API server filters), trimmed to what names their
// images.
func podCacheOptions(node string, scheme *runtime.Scheme, v *podView) cache.Options {
	return cache.Options{
		Scheme:                      scheme,
		ReaderFailOnMissingInformer: true,
		DefaultWatchErrorHandler:    v.watchFailed,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Field: fields.OneTermEqualSelector("spec.nodeName", node), Transform: trimPod},
		},
	}
}

// Start implements manager.Runnable: it runs the cache of the node's pods,
// a cache of its own, and never waits for it to sync: the manager's would
// wait for ever if the pods cannot be listed, and the agent could not even
// say so.
func (v *podView) Start(ctx context.Context) error {
	informer, err := v.cache.GetInformer(ctx, &corev1.Pod{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("the informer of this node's pods: %w", err)
	}
	v.mu.Lock()
	v.informer = informer
	v.mu.Unlock()
	return v.cache.Start(ctx)
}

// watchFailed is the caches' watch error handler: it notes a failure of a
// watch that had worked (before the first sync, not having synced says
// enough), and logs it as client-go's default handler does.
func (v *podView) watchFailed(ctx context.Context, r *toolscache.Reflector, err error) {
	v.mu.Lock()
	if v.informer != nil && v.informer.HasSynced() {
		v.broken, v.brokenWhy = v.clock.Now(), err.Error()
	}
	v.mu.Unlock()
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
}

// fresh reports whether the agent started moments ago.
func (v *podView) fresh() bool { return v.clock.Since(v.started) < v.grace }

// errPodsUnknown is a view of the node's pods that cannot be trusted yet
// (not synced) or any more (a watch fails): the agent does not sweep.
type errPodsUnknown struct{ why string }

func (e *errPodsUnknown) Error() string {
	return "the pods bound to this node are not known (" + e.why + "): no sweep until they are"
}

// images lists what the pods bound to this node name, that are not done
// (Succeeded or Failed): every container, init container and ephemeral
// container, by the spec's reference and by the image ID their status
// resolved it to. An error means the view cannot be trusted.
func (v *podView) images(ctx context.Context) ([]plan.PodImage, error) {
	v.mu.Lock()
	informer, broken, why := v.informer, v.broken, v.brokenWhy
	v.mu.Unlock()
	if informer == nil || !informer.HasSynced() {
		return nil, &errPodsUnknown{"the agent's cache of them has not synced"}
	}
	if !broken.IsZero() && v.clock.Since(broken) < brokenFor {
		return nil, &errPodsUnknown{"a watch of the API failed " + v.clock.Since(broken).Round(time.Second).String() + " ago: " + why}
	}
	var pods corev1.PodList
	// Read only, and asked again before every image's removal: no copies.
	if err := v.cache.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return nil, &errPodsUnknown{err.Error()}
	}
	return imagesOfPods(pods.Items), nil
}

// imagesOfPods lists what the pods name that are not done (Succeeded or
// Failed: the kubelet will not start them again).
func imagesOfPods(pods []corev1.Pod) []plan.PodImage {
	var out []plan.PodImage
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		out = append(out, podImages(p)...)
	}
	return out
}

// podImages lists every image reference a pod holds, in every field that
// can hold one (TestTheAgentReadsEveryPodFieldThatNamesAnImage walks the
// Pod type and fails on one it does not read): its containers of every
// kind and its image volumes as the spec names them, and the image IDs and
// digests its status resolved them to.
func podImages(p *corev1.Pod) []plan.PodImage {
	var out []plan.PodImage
	name := p.Namespace + "/" + p.Name
	add := func(what, ref string) {
		if ref != "" {
			out = append(out, plan.PodImage{Ref: ref, Pod: name + " (" + what + ")"})
		}
	}
	for _, c := range p.Spec.InitContainers {
		add("container "+c.Name, c.Image)
	}
	for _, c := range p.Spec.Containers {
		add("container "+c.Name, c.Image)
	}
	for _, c := range p.Spec.EphemeralContainers {
		add("container "+c.Name, c.Image)
	}
	for _, v := range p.Spec.Volumes {
		if v.Image != nil {
			add("image volume "+v.Name, v.Image.Reference)
		}
		for _, ref := range driverImages(v.VolumeSource) {
			add("volume "+v.Name, ref)
		}
	}
	for _, statuses := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, s := range statuses {
			add("container "+s.Name, s.Image)
			add("container "+s.Name, s.ImageID)
			for _, m := range s.VolumeMounts {
				if m.VolumeStatus != nil && m.VolumeStatus.Image != nil {
					add("image volume "+m.Name, m.VolumeStatus.Image.ImageRef)
				}
			}
		}
	}
	return out
}

// driverImages are the values of a CSI or flex volume's driver
// parameters whose key speaks of an image: drivers that mount an image as
// a volume (an image CSI driver) take it there, and pull it through the
// node's runtime.
func driverImages(v corev1.VolumeSource) []string {
	var params map[string]string
	switch {
	case v.CSI != nil:
		params = v.CSI.VolumeAttributes
	case v.FlexVolume != nil:
		params = v.FlexVolume.Options
	}
	var refs []string
	for key, value := range params {
		if strings.Contains(strings.ToLower(key), "image") {
			refs = append(refs, value)
		}
	}
	return refs
}

// imageParams keeps the driver parameters that driverImages reads.
func imageParams(params map[string]string) map[string]string {
	var out map[string]string
	for key, value := range params {
		if strings.Contains(strings.ToLower(key), "image") {
			if out == nil {
				out = map[string]string{}
			}
			out[key] = value
		}
	}
	return out
}

// trimPod is the agent's cache transform of its node's pods: what names
// their images (the fields podImages reads), and their phase.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion}}
	out.Spec.NodeName = p.Spec.NodeName
	for _, c := range p.Spec.InitContainers {
		out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	for _, c := range p.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	for _, c := range p.Spec.EphemeralContainers {
		out.Spec.EphemeralContainers = append(out.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.Name, Image: c.Image}})
	}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.Image != nil:
			out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: v.Image.Reference}}})
		case v.CSI != nil && imageParams(v.CSI.VolumeAttributes) != nil:
			out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{VolumeAttributes: imageParams(v.CSI.VolumeAttributes)}}})
		case v.FlexVolume != nil && imageParams(v.FlexVolume.Options) != nil:
			out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{FlexVolume: &corev1.FlexVolumeSource{Options: imageParams(v.FlexVolume.Options)}}})
		}
	}
	out.Status.Phase = p.Status.Phase
	trim := func(in []corev1.ContainerStatus) []corev1.ContainerStatus {
		var s []corev1.ContainerStatus
		for _, c := range in {
			t := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.ImageID}
			for _, m := range c.VolumeMounts {
				if m.VolumeStatus != nil && m.VolumeStatus.Image != nil {
					t.VolumeMounts = append(t.VolumeMounts, corev1.VolumeMountStatus{Name: m.Name,
						VolumeStatus: &corev1.VolumeStatus{Image: &corev1.ImageVolumeStatus{ImageRef: m.VolumeStatus.Image.ImageRef}}})
				}
			}
			s = append(s, t)
		}
		return s
	}
	out.Status.InitContainerStatuses = trim(p.Status.InitContainerStatuses)
	out.Status.ContainerStatuses = trim(p.Status.ContainerStatuses)
	out.Status.EphemeralContainerStatuses = trim(p.Status.EphemeralContainerStatuses)
	return out, nil
}
