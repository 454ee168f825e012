package policyschema_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// metadataCases are policies whose metadata the API server judges before
// the CRD's rules: accepted (want == "") or refused with an error naming
// want (the field path).
var metadataCases = map[string]struct{ metadata, want string }{
	"a plain name":                 {`{name: nightly-cleanup}`, ""},
	"dots in the name":             {`{name: team.example.com}`, ""},
	"labels and annotations":       {`{name: labelled, labels: {app.kubernetes.io/part-of: cleanup}, annotations: {example.com/owner: "team a"}}`, ""},
	"uppercase name":               {`{name: Nightly}`, "metadata.name"},
	"underscore in the name":       {`{name: bad_name}`, "metadata.name"},
	"254-character name":           {`{name: ` + strings.Repeat("a", 254) + `}`, "metadata.name"},
	"a typo of labels":             {`{name: typo, lables: {a: b}}`, "metadata.lables"},
	"invalid label key":            {`{name: badkey, labels: {"bad key!": x1}}`, "metadata.labels"},
	"label value too long":         {`{name: longvalue, labels: {a: ` + strings.Repeat("v", 64) + `}}`, "metadata.labels"},
	"invalid annotation key":       {`{name: badannotation, annotations: {"bad key!": x}}`, "metadata.annotations"},
	"a label value that is a bool": {`{name: boolvalue, labels: {enabled: true}}`, "ObjectMeta.labels"},
}

func policyWithMetadata(t *testing.T, metadata string) *unstructured.Unstructured {
	t.Helper()
	doc := "apiVersion: imagecleanup.io/v1alpha1\nkind: ImageCleanupPolicy\nmetadata: " + metadata + "\nspec: {images: [busybox]}\n"
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("test case is not YAML: %v", err)
	}
	return u
}

// goVerdict is what the CLI says of the policy: its unknown fields, then
// Admit's errors.
func goVerdict(t *testing.T, u *unstructured.Unstructured) string {
	t.Helper()
	unknown, err := policyschema.UnknownFields(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	if len(unknown) > 0 {
		return "unknown field " + strings.Join(unknown, ", ")
	}
	if _, errs := policyschema.Admit(u.Object); len(errs) > 0 {
		return errs.ToAggregate().Error()
	}
	return ""
}

// Issue 21, point 6: validate checked no metadata. Admit and the API
// server (strict field validation, a dry run) give the same verdict on
// each case, naming the same field.
func TestMetadataSameVerdictAsTheAPIServer(t *testing.T) {
	c, err := client.New(testenv.APIServer(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range metadataCases {
		t.Run(name, func(t *testing.T) {
			goSaid := goVerdict(t, policyWithMetadata(t, tc.metadata))
			serverErr := c.Create(context.Background(), policyWithMetadata(t, tc.metadata), client.DryRunAll, client.FieldValidation("Strict"))
			if tc.want == "" {
				if goSaid != "" || serverErr != nil {
					t.Fatalf("a valid policy refused: Go %q, API server %v", goSaid, serverErr)
				}
				return
			}
			if !strings.Contains(goSaid, tc.want) {
				t.Errorf("Go said %q, want it to name %s", goSaid, tc.want)
			}
			if serverErr == nil || !strings.Contains(serverErr.Error(), tc.want) {
				t.Errorf("the API server said %v, want it to name %s", serverErr, tc.want)
			}
		})
	}
}
