package testenv

import (
	"errors"
	"io"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// DecodeManifests splits a stream of YAML or JSON manifests (kustomize or
// helm output) into objects; a document that does not decode fails the test
// rather than ending the list early.
func DecodeManifests(t testing.TB, in io.Reader) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(in, 4096)
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("manifest %d: %v", len(objs)+1, err)
		}
		if doc != nil {
			objs = append(objs, &unstructured.Unstructured{Object: doc})
		}
	}
}
