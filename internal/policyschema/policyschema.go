// Package policyschema admits ImageCleanupPolicies as the API server does,
// from the generated CRD itself: its OpenAPI schema, defaults, list types and
// CEL rules, run by the API server's own code (k8s.io/apiextensions-apiserver).
// The CLI and the API server therefore agree on everything the CRD states,
// and there is no hand-written twin of its rules to keep in step.
//
// What CEL cannot express is checked here in Go, and only here: label keys
// of nodeSelector.matchLabels (no cost bound for rules over map keys),
// that every images and exclude entry compiles as a pattern, and that the
// schedule's time zone is one the agent knows. The API server
// does not run these: a policy that passes it and fails them is refused by
// the CLI, and reported InvalidPolicy by the agent on every node.
//
// Admit and UnknownFields serve the CLI. Check, Default (a typed policy
// admitted or defaulted as the API server stores it) and PatternErrors (what
// the CRD alone says of one pattern) are the same admission in typed form;
// today the tests are their callers, building policies exactly as a
// cluster would hold them, and they stay as this package's API for that.
package policyschema

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/config/crd"
	"github.com/imagecleanup/image-cleanup-operator/internal/match"
	"github.com/imagecleanup/image-cleanup-operator/internal/schedule"
)

// schema is the CRD's v1alpha1 schema, ready to run.
type schema struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

var load = sync.OnceValues(func() (*schema, error) {
	var def apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(crd.Policies, &def); err != nil {
		return nil, fmt.Errorf("the embedded CRD: %w", err)
	}
	var v1 *apiextensionsv1.JSONSchemaProps
	for _, v := range def.Spec.Versions {
		if v.Name == v1alpha1.GroupVersion.Version && v.Schema != nil {
			v1 = v.Schema.OpenAPIV3Schema
		}
	}
	if v1 == nil {
		return nil, fmt.Errorf("the embedded CRD has no %s schema", v1alpha1.GroupVersion.Version)
	}
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1, &internal, nil); err != nil {
		return nil, fmt.Errorf("the embedded CRD: %w", err)
	}
	structural, err := structuralschema.NewStructural(&internal)
	if err != nil {
		return nil, fmt.Errorf("the embedded CRD: %w", err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(&internal)
	if err != nil {
		return nil, fmt.Errorf("the embedded CRD: %w", err)
	}
	return &schema{structural: structural, validator: validator, cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}, nil
})

// validate runs the CRD's rules, in the API server's order: the OpenAPI
// schema, list types, then CEL.
func (s *schema) validate(obj map[string]any) field.ErrorList {
	errs := apiservervalidation.ValidateCustomResource(nil, obj, s.validator)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	celErrs, _ := s.cel.Validate(context.Background(), nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// Admit defaults obj (a policy as decoded from YAML or JSON) in place, as
// the API server would, validates it (metadata first, then the CRD's
// rules), and returns it typed. Errors carry the
// field path (spec.images[0]) and the CRD's own messages.
func Admit(obj map[string]any) (*v1alpha1.ImageCleanupPolicy, field.ErrorList) {
	return admit(obj, true)
}

// admit is Admit; withMetadata false leaves metadata to the caller (Check:
// a typed policy is judged by its spec).
func admit(obj map[string]any, withMetadata bool) (*v1alpha1.ImageCleanupPolicy, field.ErrorList) {
	s, err := load()
	if err != nil {
		return nil, field.ErrorList{field.InternalError(nil, err)}
	}
	if obj, err = asAPIServerReadsIt(obj); err != nil {
		return nil, field.ErrorList{field.Invalid(nil, nil, err.Error())}
	}
	var metaErrs field.ErrorList
	if withMetadata {
		metaErrs = validateMetadata(obj)
	}
	structuraldefaulting.Default(obj, s.structural)
	if errs := slices.Concat(metaErrs, s.validate(obj)); len(errs) > 0 {
		return nil, errs
	}
	var p v1alpha1.ImageCleanupPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &p); err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("spec"), nil, err.Error())}
	}
	if errs := beyondCEL(&p.Spec, field.NewPath("spec")); len(errs) > 0 {
		return nil, errs
	}
	return &p, nil
}

// asAPIServerReadsIt gives the object the number types the API server's
// decoder gives (whole numbers are int64, not float64 as from YAML), which
// CEL rules comparing integers depend on.
func asAPIServerReadsIt(obj map[string]any) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := utiljson.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// UnknownFields names the fields of obj (a policy as decoded from YAML or
// JSON) that the CRD does not know, by path (spec.minImageAg), as the API
// server's strict field validation does; obj is left as it was.
func UnknownFields(obj map[string]any) ([]string, error) {
	s, err := load()
	if err != nil {
		return nil, err
	}
	copied, err := asAPIServerReadsIt(obj)
	if err != nil {
		return nil, err
	}
	unknown := pruning.PruneWithOptions(copied, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	return append(unknown, unknownMetadataFields(obj)...), nil
}

// Check admits a typed policy by its spec (its metadata is the caller's:
// tests build policies without a name): p is defaulted in place.
func Check(p *v1alpha1.ImageCleanupPolicy) field.ErrorList {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	admitted, errs := admit(obj, false)
	if len(errs) > 0 {
		return errs
	}
	*p = *admitted
	return nil
}

// Default fills in the CRD's defaults, as the API server does on create.
func Default(p *v1alpha1.ImageCleanupPolicy) {
	s, err := load()
	if err != nil {
		panic(err) // the embedded CRD is part of the build; a test covers it
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		panic(err) // a typed policy always converts
	}
	structuraldefaulting.Default(obj, s.structural)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, p); err != nil {
		panic(err)
	}
}

// beyondCEL holds the rules the CRD cannot state.
func beyondCEL(spec *v1alpha1.ImageCleanupPolicySpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.NodeSelector != nil {
		for k := range spec.NodeSelector.MatchLabels {
			for _, msg := range validation.IsQualifiedName(k) {
				errs = append(errs, field.Invalid(path.Child("nodeSelector", "matchLabels").Key(k), k, msg))
			}
		}
	}
	if spec.Schedule != nil {
		if _, err := schedule.Zone(spec.Schedule.TimeZone); err != nil {
			errs = append(errs, field.Invalid(path.Child("schedule", "timeZone"), spec.Schedule.TimeZone, err.Error()))
		}
	}
	for _, list := range []struct {
		name     string
		patterns []v1alpha1.ImagePattern
	}{{"images", spec.Images}, {"exclude", spec.Exclude}} {
		for i, p := range list.patterns {
			if _, err := match.Compile(string(p)); err != nil {
				errs = append(errs, field.Invalid(path.Child(list.name).Index(i), string(p), err.Error()))
			}
		}
	}
	return errs
}

// PatternErrors returns what the CRD's own rules (OpenAPI and CEL, without
// the Go checks) say of one images entry: what the API server would say.
func PatternErrors(pattern string) field.ErrorList {
	s, err := load()
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	obj := map[string]any{"apiVersion": v1alpha1.GroupVersion.String(), "kind": "ImageCleanupPolicy",
		"metadata": map[string]any{"name": "p"}, "spec": map[string]any{"images": []any{pattern}}}
	return s.validate(obj)
}
