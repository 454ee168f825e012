package policyschema

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// objectMetaFields are the JSON names of metadata's fields.
var objectMetaFields = func() []string {
	var names []string
	t := reflect.TypeFor[metav1.ObjectMeta]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}()

// unknownMetadataFields names the fields of obj's metadata that ObjectMeta
// does not have (metadata.lables), as strict field validation does.
func unknownMetadataFields(obj map[string]any) []string {
	md, _ := obj["metadata"].(map[string]any)
	var out []string
	for key := range md {
		if !slices.Contains(objectMetaFields, key) {
			out = append(out, "metadata."+key)
		}
	}
	slices.Sort(out)
	return out
}

// validateMetadata checks obj's metadata as the API server checks a custom
// resource's before its schema: the name (a DNS subdomain: lowercase, at
// most 253 characters), label and annotation keys and values. A policy is
// cluster-scoped: a namespace it names is dropped, as the API server drops
// it. kubectl apply needs a name, so generateName alone does not do.
func validateMetadata(obj map[string]any) field.ErrorList {
	path := field.NewPath("metadata")
	md, ok := obj["metadata"].(map[string]any)
	if !ok {
		return field.ErrorList{field.Required(path.Child("name"), "a policy needs a name")}
	}
	// Through JSON, as the API server decodes it: a wrong type is named
	// (cannot unmarshal bool into ... labels of type string; YAML reads an
	// unquoted y or no as a bool).
	var meta metav1.ObjectMeta
	data, err := json.Marshal(md)
	if err == nil {
		err = json.Unmarshal(data, &meta)
	}
	if err != nil {
		return field.ErrorList{field.Invalid(path, md, strings.TrimPrefix(err.Error(), "json: "))}
	}
	if meta.Name == "" {
		return field.ErrorList{field.Required(path.Child("name"), "a policy needs a name")}
	}
	meta.Namespace = ""
	return apivalidation.ValidateObjectMetaAccessor(&meta, false, apivalidation.NameIsDNSSubdomain, path)
}
