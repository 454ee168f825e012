package policyschema_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAPIServer(m)) }

const (
	hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hex12 = "0123456789ab"
)

// policyCase is a policy spec as a user writes it, and the verdict expected
// of both the API server and Admit: accepted (want == "") or refused with
// a message containing want.
type policyCase struct {
	spec string
	want string
}

// invalidPolicies must each be refused, with a message that tells what to fix.
var invalidPolicies = map[string]policyCase{
	"no images":                   {`{}`, "spec.images: Required value"},
	"empty images":                {`{images: []}`, "should have at least 1 items"},
	"empty entry":                 {`{images: [""]}`, "must not be empty"},
	"space in reference":          {`{images: ["busy box"]}`, "must not contain spaces"},
	"uppercase repository":        {`{images: ["BusyBox"]}`, "repository paths are lowercase"},
	"short image ID":              {`{images: ["sha256:abc"]}`, "an image ID must be sha256: followed by 12 to 64 lowercase hex digits"},
	"uppercase image ID":          {`{images: ["sha256:0123456789ABCDEF"]}`, "an image ID must be sha256:"},
	"image ID too long":           {`{images: ["sha256:` + hex64 + `0"]}`, "an image ID must be sha256:"},
	"bare hex ID":                 {`{images: ["` + hex12 + `"]}`, "write it as sha256:<id>"},
	"short digest":                {`{images: ["app@sha256:1234"]}`, "a digest reference must end in @sha256: and 64 lowercase hex digits"},
	"other digest algorithm":      {`{images: ["app@md5:0123456789abcdef0123456789abcdef"]}`, "a digest reference must end in @sha256:"},
	"wildcard with digest":        {`{images: ["app*@sha256:` + hex64 + `"]}`, "a digest reference cannot contain wildcards"},
	"double star inside segment":  {`{images: ["registry.example.com/ci**"]}`, "** stands for whole path segments"},
	"double star in tag":          {`{images: ["app:**"]}`, "** stands for whole path segments"},
	"triple star":                 {`{images: ["***"]}`, "** stands for whole path segments"},
	"trailing colon":              {`{images: ["app:"]}`, "must be an image reference"},
	"leading slash":               {`{images: ["/app"]}`, "must be an image reference"},
	"empty path segment":          {`{images: ["registry.example.com//app"]}`, "must be an image reference"},
	"leading dash":                {`{images: ["-app"]}`, "must be an image reference"},
	"tag starting with a dash":    {`{images: ["app:-rc1"]}`, "must be an image reference"},
	"tag longer than 128":         {`{images: ["app:` + strings.Repeat("t", 129) + `"]}`, "must be an image reference"},
	"entry longer than 200":       {`{images: ["` + strings.Repeat("a", 201) + `"]}`, "Too long"},
	"duplicate image":             {`{images: ["busybox", "busybox"]}`, `Duplicate value: "busybox"`},
	"low watermark above high":    {`{images: [busybox], diskUsage: {highPercent: 80, lowPercent: 85}}`, "lowPercent must be below highPercent"},
	"low watermark equals high":   {`{images: [busybox], diskUsage: {highPercent: 80, lowPercent: 80}}`, "lowPercent must be below highPercent"},
	"high watermark over 100":     {`{images: [busybox], diskUsage: {highPercent: 101, lowPercent: 80}}`, "should be less than or equal to 100"},
	"watermark without low":       {`{images: [busybox], diskUsage: {highPercent: 90}}`, "spec.diskUsage.lowPercent: Required value"},
	"inode watermark alone":       {`{images: [busybox], diskUsage: {highPercent: 90, lowPercent: 80, highInodesPercent: 90}}`, "highInodesPercent and lowInodesPercent go together"},
	"inode low above high":        {`{images: [busybox], diskUsage: {highPercent: 90, lowPercent: 80, highInodesPercent: 50, lowInodesPercent: 60}}`, "lowInodesPercent must be below highInodesPercent"},
	"unknown order":               {`{images: [busybox], order: Random}`, `Unsupported value: "Random"`},
	"negative keepNewest":         {`{images: [busybox], keepNewest: -1}`, "should be greater than or equal to 0"},
	"maxUnusedAge in days":        {`{images: [busybox], maxUnusedAge: 30d}`, "must be a duration like"},
	"rollout window in days":      {`{images: [busybox], rollout: {window: 1d}}`, "must be a duration like"},
	"duplicate exclusion":         {`{images: ["**"], exclude: ["app:1", "app:1"]}`, `Duplicate value: "app:1"`},
	"invalid exclusion":           {`{images: ["**"], exclude: ["my app"]}`, "spec.exclude[0]"},
	"same entry in both lists":    {`{images: ["app:1", "app:2"], exclude: ["app:2"]}`, "an entry in both images and exclude would remove nothing"},
	"too many images":             {fmt.Sprintf(`{images: [%s]}`, manyImages(257)), "Too many: 257: must have at most 256 items"},
	"age in days":                 {`{images: [busybox], minImageAge: 1d}`, "must be a duration like 0s, 30m, 1h or 2h30m"},
	"negative age":                {`{images: [busybox], minImageAge: "-1h"}`, "must be a duration like"},
	"fractional age":              {`{images: [busybox], minImageAge: 1.5h}`, "must be a duration like"},
	"age with seven digits":       {`{images: [busybox], minImageAge: 9999999h}`, "must be a duration like"},
	"empty age":                   {`{images: [busybox], minImageAge: ""}`, "must be a duration like"},
	"interval under a minute":     {`{images: [busybox], interval: 30s}`, "interval must be at least 1m"},
	"zero interval":               {`{images: [busybox], interval: 0s}`, "interval must be at least 1m"},
	"interval in words":           {`{images: [busybox], interval: hourly}`, "must be a duration like"},
	"stopped age with space":      {`{images: [busybox], stoppedContainers: {minStoppedAge: "1 h"}}`, "must be a duration like"},
	"unknown action":              {`{images: [busybox], stoppedContainers: {action: Delete}}`, `Unsupported value: "Delete"`},
	"keep but remove volumes":     {`{images: [busybox], stoppedContainers: {action: Keep, removeVolumes: true}}`, "removeVolumes needs action Remove"},
	"keep but include kubelet's":  {`{images: [busybox], stoppedContainers: {action: Keep, includeKubernetesManaged: true}}`, "includeKubernetesManaged needs action Remove"},
	"negative sweep limit":        {`{images: [busybox], maxImagesPerSweep: -1}`, "should be greater than or equal to 0"},
	"huge sweep limit":            {`{images: [busybox], maxImagesPerSweep: 100001}`, "should be less than or equal to 100000"},
	"unknown selector operator":   {`{images: [busybox], nodeSelector: {matchExpressions: [{key: pool, operator: Equals, values: [ci]}]}}`, `Unsupported value: "Equals"`},
	"In without values":           {`{images: [busybox], nodeSelector: {matchExpressions: [{key: pool, operator: In}]}}`, "In and NotIn need values"},
	"Exists with values":          {`{images: [busybox], nodeSelector: {matchExpressions: [{key: pool, operator: Exists, values: [ci]}]}}`, "Exists and DoesNotExist take none"},
	"bad label value":             {`{images: [busybox], nodeSelector: {matchLabels: {pool: "a b"}}}`, "a label value has at most 63"},
	"label value too long":        {`{images: [busybox], nodeSelector: {matchLabels: {pool: ` + strings.Repeat("v", 64) + `}}}`, "Too long"},
	"bad expression key":          {`{images: [busybox], nodeSelector: {matchExpressions: [{key: "-pool", operator: Exists}]}}`, "a label key is an optional DNS prefix"},
	"bad expression value":        {`{images: [busybox], nodeSelector: {matchExpressions: [{key: pool, operator: In, values: ["a b"]}]}}`, "a label value has at most 63"},
	"duration with days in stops": {`{images: [busybox], stoppedContainers: {minStoppedAge: 2d}}`, "must be a duration like"},
	"schedule without windows":    {`{images: [busybox], schedule: {timeZone: UTC}}`, "spec.schedule.windows: Required value"},
	"schedule with no window":     {`{images: [busybox], schedule: {windows: []}}`, "should have at least 1 items"},
	"window starting at 25:00":    {`{images: [busybox], schedule: {windows: [{start: "25:00", end: "04:00"}]}}`, "must be a time of day from 00:00 to 23:59"},
	"window starting at 24:00":    {`{images: [busybox], schedule: {windows: [{start: "24:00", end: "04:00"}]}}`, "must be a time of day from 00:00 to 23:59"},
	"window ending at 24:30":      {`{images: [busybox], schedule: {windows: [{start: "22:00", end: "24:30"}]}}`, "must be a time of day from 00:00 to 24:00"},
	"window time without colon":   {`{images: [busybox], schedule: {windows: [{start: "2200", end: "04:00"}]}}`, "must be a time of day"},
	"window of no time":           {`{images: [busybox], schedule: {windows: [{start: "04:00", end: "04:00"}]}}`, "start and end must differ"},
	"window without end":          {`{images: [busybox], schedule: {windows: [{start: "04:00"}]}}`, "spec.schedule.windows[0].end: Required value"},
	"day in full":                 {`{images: [busybox], schedule: {windows: [{days: [Monday], start: "22:00", end: "04:00"}]}}`, `Unsupported value: "Monday"`},
	"day twice":                   {`{images: [busybox], schedule: {windows: [{days: [Sat, Sat], start: "22:00", end: "04:00"}]}}`, `Duplicate value: "Sat"`},
	"the node's own time zone":    {`{images: [busybox], schedule: {timeZone: Local, windows: [{start: "22:00", end: "04:00"}]}}`, "Local would be each node's own time zone"},
	"time zone as an offset":      {`{images: [busybox], schedule: {timeZone: "+01:00", windows: [{start: "22:00", end: "04:00"}]}}`, "must be an IANA time zone name"},
	"unknown disk pressure rule":  {`{images: [busybox], schedule: {diskPressure: Never, windows: [{start: "22:00", end: "04:00"}]}}`, `Unsupported value: "Never"`},
}

// validPolicies must be accepted; want holds the spec after defaulting.
var validPolicies = map[string]struct{ spec, defaulted string }{
	"minimal": {
		`{images: [busybox]}`,
		`{images: [busybox], minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"everything set": {
		`{nodeSelector: {matchLabels: {pool: ci}}, images: ["registry.example.com/ci/**"], exclude: ["registry.example.com/ci/base:*"], dangling: true, minImageAge: 30m,
		  stoppedContainers: {action: Remove, minStoppedAge: 2h, removeVolumes: true, includeKubernetesManaged: true}, force: true, dryRun: true, suspend: true, interval: 15m, maxImagesPerSweep: 25}`,
		`{nodeSelector: {matchLabels: {pool: ci}}, images: ["registry.example.com/ci/**"], exclude: ["registry.example.com/ci/base:*"], dangling: true, minImageAge: 30m,
		  stoppedContainers: {action: Remove, minStoppedAge: 2h, removeVolumes: true, includeKubernetesManaged: true}, force: true, dryRun: true, suspend: true, interval: 15m, maxImagesPerSweep: 25}`,
	},
	"disk hygiene": {
		`{images: ["**"], diskUsage: {highPercent: 85, lowPercent: 70, highInodesPercent: 90, lowInodesPercent: 80}, keepNewest: 3, maxUnusedAge: 720h}`,
		`{images: ["**"], diskUsage: {highPercent: 85, lowPercent: 70, highInodesPercent: 90, lowInodesPercent: 80}, keepNewest: 3, maxUnusedAge: 720h, minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"rollout window": {
		`{images: [busybox], rollout: {window: 15m}}`,
		`{images: [busybox], rollout: {window: 15m}, minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"schedule": {
		`{images: [busybox], schedule: {timeZone: Europe/Berlin, windows: [{days: [Sat, Sun], start: "22:00", end: "06:00"}, {start: "00:00", end: "24:00"}]}}`,
		`{images: [busybox], schedule: {timeZone: Europe/Berlin, windows: [{days: [Sat, Sun], start: "22:00", end: "06:00"}, {start: "00:00", end: "24:00"}], diskPressure: Anytime}, minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"order": {
		`{images: [busybox], order: LeastRecentlyUsed}`,
		`{images: [busybox], order: LeastRecentlyUsed, minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"patterns": {
		`{images: ["registry.example.com/ci/**", "myapp:pr-*", "busybox:*", "**/pause:*", "**:latest", "team/*/app"]}`,
		`{images: ["registry.example.com/ci/**", "myapp:pr-*", "busybox:*", "**/pause:*", "**:latest", "team/*/app"], minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"everything with guards": {
		`{images: ["**"], exclude: ["registry.k8s.io/**", "sha256:` + hex12 + `"], minImageAge: 168h}`,
		`{images: ["**"], exclude: ["registry.k8s.io/**", "sha256:` + hex12 + `"], minImageAge: 168h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"everything without guards": {
		`{images: ["**"], minImageAge: 0s}`,
		`{images: ["**"], minImageAge: 0s, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"digests and IDs": {
		`{images: ["app@sha256:` + hex64 + `", "registry.example.com/team/app:1.2@sha256:` + hex64 + `", "sha256:` + hex12 + `", "sha256:` + hex64 + `"]}`,
		`{images: ["app@sha256:` + hex64 + `", "registry.example.com/team/app:1.2@sha256:` + hex64 + `", "sha256:` + hex12 + `", "sha256:` + hex64 + `"], minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"registries with ports and uppercase hosts": {
		`{images: ["localhost:5000/app:latest", "Registry.Example.com/team/app", "docker.io/library/busybox:1.36", "quay.io/org/app_name__x:v1.2.3-rc.1"]}`,
		`{images: ["localhost:5000/app:latest", "Registry.Example.com/team/app", "docker.io/library/busybox:1.36", "quay.io/org/app_name__x:v1.2.3-rc.1"], minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"Go durations": {
		`{images: [busybox], minImageAge: 1h0m0s, interval: 2h30m, stoppedContainers: {minStoppedAge: 90s}}`,
		`{images: [busybox], minImageAge: 1h0m0s, interval: 2h30m, stoppedContainers: {action: Remove, minStoppedAge: 90s}}`,
	},
	"keep containers and force": {
		`{images: ["app:*"], force: true, stoppedContainers: {action: Keep}}`,
		`{images: ["app:*"], force: true, minImageAge: 1h, interval: 1h, stoppedContainers: {action: Keep, minStoppedAge: 1h}}`,
	},
	"node selector expressions": {
		`{images: [busybox], nodeSelector: {matchLabels: {"node.kubernetes.io/pool": ci-runners}, matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}, {key: gpu, operator: DoesNotExist}]}}`,
		`{images: [busybox], nodeSelector: {matchLabels: {"node.kubernetes.io/pool": ci-runners}, matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}, {key: gpu, operator: DoesNotExist}]}, minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"dangling only with a sweep limit": {
		`{images: ["sha256:` + hex64 + `"], dangling: true, maxImagesPerSweep: 10, interval: 1m}`,
		`{images: ["sha256:` + hex64 + `"], dangling: true, maxImagesPerSweep: 10, interval: 1m, minImageAge: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`,
	},
	"256 images, longest entry": {
		fmt.Sprintf(`{images: [%s, "%s"]}`, manyImages(255), strings.Repeat("a", 200)),
		fmt.Sprintf(`{images: [%s, "%s"], minImageAge: 1h, interval: 1h, stoppedContainers: {action: Remove, minStoppedAge: 1h}}`, manyImages(255), strings.Repeat("a", 200)),
	},
}

func manyImages(n int) string {
	refs := make([]string, n)
	for i := range refs {
		refs[i] = fmt.Sprintf(`"registry.example.com/app%d:v1"`, i)
	}
	return strings.Join(refs, ", ")
}

// admit reads a spec the way the CLI reads a file: as an object, admitted
// by the CRD's rules.
func admit(t *testing.T, name, spec string) (*v1alpha1.ImageCleanupPolicy, field.ErrorList) {
	t.Helper()
	return policyschema.Admit(unstructuredPolicy(t, name, spec).Object)
}

func unstructuredPolicy(t *testing.T, name, spec string) *unstructured.Unstructured {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: imagecleanup.io/v1alpha1\nkind: ImageCleanupPolicy\nmetadata: {name: %s}\nspec: %s\n", name, spec)
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("test case is not YAML: %v", err)
	}
	return u
}

func caseName(name string) string {
	return strings.NewReplacer(" ", "-", "'", "", ",", "").Replace(strings.ToLower(name))
}

func TestAdmitRefusesInvalidPolicies(t *testing.T) {
	for name, tc := range invalidPolicies {
		t.Run(name, func(t *testing.T) {
			_, errs := admit(t, caseName(name), tc.spec)
			if len(errs) == 0 {
				t.Fatalf("Admit accepted %s", tc.spec)
			}
			if !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("Admit said %q, want it to contain %q", errs.ToAggregate().Error(), tc.want)
			}
		})
	}
}

func TestAdmitAcceptsAndDefaultsValidPolicies(t *testing.T) {
	for name, tc := range validPolicies {
		t.Run(name, func(t *testing.T) {
			p, errs := admit(t, caseName(name), tc.spec)
			if len(errs) > 0 {
				t.Fatalf("Admit refused a valid policy: %v", errs.ToAggregate())
			}
			want := typed(t, caseName(name), tc.defaulted)
			if diff := specDiff(&p.Spec, &want.Spec); diff != "" {
				t.Fatalf("Admit defaulted to %s", diff)
			}
		})
	}
}

// typed decodes a spec as written, without defaults: the expected result.
func typed(t *testing.T, name, spec string) *v1alpha1.ImageCleanupPolicy {
	t.Helper()
	var p v1alpha1.ImageCleanupPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(unstructuredPolicy(t, name, spec).Object, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// Check admits a typed policy the same way, defaulting it in place.
func TestCheckDefaultsInPlace(t *testing.T) {
	p := typed(t, "typed", `{images: [busybox]}`)
	if errs := policyschema.Check(p); len(errs) > 0 {
		t.Fatal(errs)
	}
	if p.Spec.MinImageAge == nil || *p.Spec.MinImageAge != "1h" || p.Spec.StoppedContainers.Action != v1alpha1.StoppedContainersRemove {
		t.Fatalf("not defaulted: %+v", p.Spec)
	}
	p.Spec.Images = append(p.Spec.Images, "Not A Ref")
	if errs := policyschema.Check(p); len(errs) == 0 {
		t.Fatal("Check accepted an invalid policy")
	}
}

// What CEL cannot express is checked in Go: a time zone the agent knows.
func TestAdmitChecksTheTimeZone(t *testing.T) {
	_, errs := admit(t, "zone", `{images: [busybox], schedule: {timeZone: Mars/Olympus_Mons, windows: [{start: "22:00", end: "04:00"}]}}`)
	if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), `spec.schedule.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone`) {
		t.Fatalf("errs = %v", errs)
	}
}

// What CEL cannot express is checked in Go: label keys of matchLabels.
func TestAdmitChecksMatchLabelKeys(t *testing.T) {
	_, errs := admit(t, "keys", `{images: [busybox], nodeSelector: {matchLabels: {"bad key!": x}}}`)
	if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "spec.nodeSelector.matchLabels[bad key!]") {
		t.Fatalf("errs = %v", errs)
	}
}

// The API server, running the generated CRD, gives the same verdicts.
func TestAPIServerAgreesWithAdmit(t *testing.T) {
	cfg := testenv.APIServer(t)
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	strict := client.FieldValidation("Strict")

	for name, tc := range invalidPolicies {
		t.Run("refuses/"+name, func(t *testing.T) {
			err := c.Create(ctx, unstructuredPolicy(t, caseName(name), tc.spec), strict)
			if err == nil {
				t.Fatalf("the API server accepted %s", tc.spec)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the API server said %q, want it to contain %q", err.Error(), tc.want)
			}
		})
	}
	for name, tc := range validPolicies {
		t.Run("accepts/"+name, func(t *testing.T) {
			u := unstructuredPolicy(t, caseName(name), tc.spec)
			if err := c.Create(ctx, u, strict); err != nil {
				t.Fatalf("the API server refused a valid policy: %v", err)
			}
			t.Cleanup(func() { _ = c.Delete(ctx, u) })
			var stored v1alpha1.ImageCleanupPolicy
			if err := c.Get(ctx, client.ObjectKeyFromObject(u), &stored); err != nil {
				t.Fatal(err)
			}
			want := typed(t, caseName(name), tc.defaulted)
			if diff := specDiff(&stored.Spec, &want.Spec); diff != "" {
				t.Fatalf("the API server defaulted to %s", diff)
			}
		})
	}
}

func specDiff(got, want *v1alpha1.ImageCleanupPolicySpec) string {
	g, _ := yaml.Marshal(got)
	w, _ := yaml.Marshal(want)
	if string(g) == string(w) {
		return ""
	}
	return fmt.Sprintf("\n%s\nwant\n%s", g, w)
}

// randomPattern strings together the pieces references are made of, so that
// most results are near the edge between valid and invalid.
func randomPattern(r *rand.Rand) string {
	pieces := []string{"a", "b9", "app", "-", "--", "_", "__", ".", "/", ":", "*", "**", "@", "sha256:", hex12, hex64, "A", " ", "5000", "registry.example.com", "localhost", "x:1.2"}
	var b strings.Builder
	for n := 1 + r.IntN(6); n > 0; n-- {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// The same verdict from Go and from the API server for random patterns, not
// only for the rows above.
func TestRandomPatternsSameVerdict(t *testing.T) {
	cfg := testenv.APIServer(t)
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for i := range 400 {
		pattern := randomPattern(r)
		spec := fmt.Sprintf(`{images: [%q]}`, pattern)
		_, errs := admit(t, "random", spec)
		goValid := len(errs) == 0
		serverErr := c.Create(context.Background(), unstructuredPolicy(t, fmt.Sprintf("random-%d", i), spec), client.DryRunAll)
		if goValid != (serverErr == nil) {
			t.Errorf("%q: Admit valid=%v, API server: %v", pattern, goValid, serverErr)
		}
		if goValid {
			accepted++
		}
	}
	t.Logf("%d of 400 random patterns valid", accepted)
	if accepted < 40 || accepted > 360 {
		t.Errorf("the generator is off balance: %d of 400 valid", accepted)
	}
}

// The accessors' fallbacks in api/v1alpha1 are the CRD's defaults.
func TestFallbacksAreTheCRDDefaults(t *testing.T) {
	p := &v1alpha1.ImageCleanupPolicy{Spec: v1alpha1.ImageCleanupPolicySpec{Images: []v1alpha1.ImagePattern{"busybox"}}}
	policyschema.Default(p)
	if *p.Spec.MinImageAge != v1alpha1.DefaultMinImageAge || *p.Spec.Interval != v1alpha1.DefaultInterval ||
		*p.Spec.StoppedContainers.MinStoppedAge != v1alpha1.DefaultMinStoppedAge {
		t.Fatalf("CRD defaults %v %v %v differ from the accessors' fallbacks", *p.Spec.MinImageAge, *p.Spec.Interval, *p.Spec.StoppedContainers.MinStoppedAge)
	}
}

func TestUnknownFieldsAreNamedByPath(t *testing.T) {
	obj := map[string]any{
		"apiVersion": "imagecleanup.io/v1alpha1", "kind": "ImageCleanupPolicy",
		"metadata": map[string]any{"name": "p"},
		"spec": map[string]any{"images": []any{"busybox"}, "minImageAg": "1h",
			"stoppedContainers": map[string]any{"actoin": "Remove"}},
		"extra": true,
	}
	got, err := policyschema.UnknownFields(obj)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"extra", "spec.minImageAg", "spec.stoppedContainers.actoin"}; !slices.Equal(got, want) {
		t.Fatalf("unknown fields %v, want %v", got, want)
	}
	if _, ok := obj["spec"].(map[string]any)["minImageAg"]; !ok {
		t.Fatal("UnknownFields changed its input")
	}
}
