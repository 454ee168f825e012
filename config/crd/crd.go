// Package crd embeds the CustomResourceDefinitions that controller-gen
// generates into bases/, so that programs validate and default objects with
// the very schema the API server runs (internal/policyschema).
package crd

import _ "embed"

// Policies is the ImageCleanupPolicy CRD, as `make manifests` writes it.
//
//go:embed bases/imagecleanup.io_imagecleanuppolicies.yaml
var Policies []byte
