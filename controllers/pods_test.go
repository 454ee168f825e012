package controllers

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// imageFieldsRead are the fields of a Pod that hold an image reference, as
// paths of Go field names (a slice's element is the slice's own name): the
// agent reads each one (podImages) and its cache keeps it (trimPod).
var imageFieldsRead = []string{
	"Spec.Volumes.VolumeSource.Image.Reference",
	"Spec.InitContainers.Image",
	"Spec.Containers.Image",
	"Spec.EphemeralContainers.EphemeralContainerCommon.Image",
	"Status.InitContainerStatuses.Image",
	"Status.InitContainerStatuses.ImageID",
	"Status.InitContainerStatuses.VolumeMounts.VolumeStatus.Image.ImageRef",
	"Status.ContainerStatuses.Image",
	"Status.ContainerStatuses.ImageID",
	"Status.ContainerStatuses.VolumeMounts.VolumeStatus.Image.ImageRef",
	"Status.EphemeralContainerStatuses.Image",
	"Status.EphemeralContainerStatuses.ImageID",
	"Status.EphemeralContainerStatuses.VolumeMounts.VolumeStatus.Image.ImageRef",
}

// fieldsNamedImageThatHoldNone are the fields whose name speaks of images
// and that hold no image reference, each with what it holds.
var fieldsNamedImageThatHoldNone = map[string]string{
	"Spec.Volumes.VolumeSource.RBD.RBDImage":                            "a Ceph block device's name",
	"Spec.Volumes.VolumeSource.Image.PullPolicy":                        "a pull policy",
	"Spec.InitContainers.ImagePullPolicy":                               "a pull policy",
	"Spec.Containers.ImagePullPolicy":                                   "a pull policy",
	"Spec.EphemeralContainers.EphemeralContainerCommon.ImagePullPolicy": "a pull policy",
	"Spec.ImagePullSecrets.Name":                                        "a Secret's name",
}

// driverParamsRead are the maps of a driver's parameters: the agent reads
// the entries whose key speaks of an image (an image CSI driver's).
var driverParamsRead = []string{
	"Spec.Volumes.VolumeSource.CSI.VolumeAttributes",
	"Spec.Volumes.VolumeSource.FlexVolume.Options",
}

// mapsThatHoldNone are the text maps of a Pod that hold no image
// reference, by the last element of their path: labels and annotations,
// and label selectors.
var mapsThatHoldNone = []string{"MatchLabels", "NodeSelector", "Labels", "Annotations", "UserAnnotations"}

// The agent reads every field of a Pod that can hold an image reference:
// the test walks the Pod type (spec and status), and every text field
// whose name, or whose parent's name, speaks of an image must be one the
// agent reads, or one known to hold something else. A Kubernetes release
// that adds such a field (as image volumes did) fails here, instead of
// letting the agent remove an image a pod needs. Then each field the agent
// claims to read is set alone in a pod, which goes through the cache's
// trim and the agent's reading: its value must come out.
func TestTheAgentReadsEveryPodFieldThatNamesAnImage(t *testing.T) {
	var unknown []string
	for _, root := range []string{"Spec", "Status"} {
		f, _ := reflect.TypeFor[corev1.Pod]().FieldByName(root)
		walkTextFields(f.Type, []string{root}, false, nil, func(path string, namedImage, isMap bool) {
			if isMap {
				last := path[strings.LastIndex(path, ".")+1:]
				if !slices.Contains(driverParamsRead, path) && !slices.Contains(mapsThatHoldNone, last) {
					unknown = append(unknown, path+" (a map)")
				}
				return
			}
			_, other := fieldsNamedImageThatHoldNone[path]
			if namedImage && !other && !slices.Contains(imageFieldsRead, path) {
				unknown = append(unknown, path)
			}
		})
	}
	if len(unknown) > 0 {
		t.Errorf("fields of a Pod that may hold an image reference, which the agent does not read "+
			"(read them in podImages and keep them in trimPod, or say what they hold in fieldsNamedImageThatHoldNone):\n  %s",
			strings.Join(unknown, "\n  "))
	}
	for _, path := range imageFieldsRead {
		value := "registry.example/read/" + strings.ToLower(strings.ReplaceAll(path, ".", "-")) + ":1"
		pod := &corev1.Pod{}
		pod.Name, pod.Namespace = "p", "ns"
		fieldAt(reflect.ValueOf(pod).Elem(), strings.Split(path, ".")).SetString(value)
		trimmed, err := trimPod(pod)
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		for _, pi := range podImages(trimmed.(*corev1.Pod)) {
			refs = append(refs, pi.Ref)
		}
		if !slices.Contains(refs, value) {
			t.Errorf("%s: the agent does not read it through its cache (it read %q)", path, refs)
		}
	}
	for _, path := range driverParamsRead {
		value := "registry.example/driver/" + strings.ToLower(strings.ReplaceAll(path, ".", "-")) + ":1"
		pod := &corev1.Pod{}
		params := fieldAt(reflect.ValueOf(pod).Elem(), strings.Split(path, "."))
		params.SetMapIndex(reflect.ValueOf("csi.example/Image"), reflect.ValueOf(value))
		params.SetMapIndex(reflect.ValueOf("readOnly"), reflect.ValueOf("true"))
		trimmed, _ := trimPod(pod)
		var refs []string
		for _, pi := range podImages(trimmed.(*corev1.Pod)) {
			refs = append(refs, pi.Ref)
		}
		if !slices.Equal(refs, []string{value}) {
			t.Errorf("%s: the agent reads %q through its cache, want the image-named entry alone", path, refs)
		}
	}
}

// walkTextFields calls found for every text field (a string, or a list of
// strings) and every map of text reachable from t, with its path and
// whether its name or an enclosing field's name speaks of an image.
func walkTextFields(t reflect.Type, path []string, namedImage bool, seen []reflect.Type, found func(path string, namedImage, isMap bool)) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		found(strings.Join(path, "."), namedImage, false)
		return
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			found(strings.Join(path, "."), namedImage, true)
		}
		return
	case reflect.Struct:
	default:
		return
	}
	if slices.Contains(seen, t) {
		return // a recursive type: its fields are walked once
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		json, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		image := namedImage || strings.Contains(strings.ToLower(f.Name+" "+json), "image")
		walkTextFields(f.Type, append(slices.Clone(path), f.Name), image, append(seen, t), found)
	}
}

// fieldAt is the field at path in v, making every pointer and one element
// of every list on the way (and the map at its end).
func fieldAt(v reflect.Value, path []string) reflect.Value {
	for {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Slice {
			if v.Kind() == reflect.Pointer {
				if v.IsNil() {
					v.Set(reflect.New(v.Type().Elem()))
				}
				v = v.Elem()
				continue
			}
			if v.Len() == 0 {
				v.Set(reflect.MakeSlice(v.Type(), 1, 1))
			}
			v = v.Index(0)
		}
		if len(path) == 0 {
			if v.Kind() == reflect.Map && v.IsNil() {
				v.Set(reflect.MakeMap(v.Type()))
			}
			return v
		}
		v, path = v.FieldByName(path[0]), path[1:]
	}
}
