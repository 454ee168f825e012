package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The rules below are the Go twin of the OpenAPI and CEL rules in the kubebuilder
// markers of the types: the CLI validates with them, without an API server, and
// a test drives one table of policies through both and compares verdicts. Any
// change here goes into the markers too, and the other way round.

// Regular expressions shared with the CEL rules (the markers spell them out again).
const (
	// ImageReferenceGrammar is Docker's reference grammar with * allowed in
	// name and tag characters.
	ImageReferenceGrammar = `^(([a-zA-Z0-9*]|[a-zA-Z0-9*][a-zA-Z0-9*-]*[a-zA-Z0-9*])([.]([a-zA-Z0-9*]|[a-zA-Z0-9*][a-zA-Z0-9*-]*[a-zA-Z0-9*]))*(:[0-9]+)?/)?[a-z0-9*]+(([._]|__|[-]+)[a-z0-9*]+)*(/[a-z0-9*]+(([._]|__|[-]+)[a-z0-9*]+)*)*(:[a-zA-Z0-9_*][a-zA-Z0-9_.*-]{0,127})?(@sha256:[0-9a-f]{64})?$`
	imageIDGrammar        = `^sha256:[0-9a-f]{12,64}$`
	bareHex               = `^[0-9a-f]{12,64}$`
	digestSuffix          = `@sha256:[0-9a-f]{64}$`
	misplacedDoubleStar   = `[^/][*][*]|[*][*][^/:]|[*][*]:[^/]*/`
	whitespace            = `[[:space:]]`
	// DurationGrammar is what a Duration may look like.
	DurationGrammar = `^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$`
	labelKeyGrammar = `^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`
	labelValGrammar = `^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`
)

// Limits shared with the markers.
const (
	MaxImagePatternLength = 200
	MaxPatterns           = 256
	MaxDurationLength     = 24
	MinInterval           = time.Minute
	MaxImagesPerSweepMax  = 100000
	maxMatchLabels        = 64
	maxMatchExpressions   = 32
	maxSelectorValues     = 64
	maxLabelKeyLength     = 317
	maxLabelValueLength   = 63
)

// Messages shared with the markers, word for word.
const (
	msgEmpty             = "must not be empty"
	msgSpaces            = "must not contain spaces"
	msgImageID           = "an image ID must be sha256: followed by 12 to 64 lowercase hex digits"
	msgBareHex           = "looks like an image ID: write it as sha256:<id>, a bare hex string is read as a repository name"
	msgDigest            = "a digest reference must end in @sha256: and 64 lowercase hex digits"
	msgDigestWildcard    = "a digest reference cannot contain wildcards"
	msgDoubleStar        = "** stands for whole path segments (registry.example.com/ci/**); use * inside a name or a tag"
	msgGrammar           = "must be an image reference (busybox, registry.example.com/team/app:1.2, app@sha256:<64 hex>), an image ID (sha256:<hex>) or a pattern (registry.example.com/ci/**, app:pr-*); repository paths are lowercase"
	msgDuration          = "must be a duration like 0s, 30m, 1h or 2h30m"
	msgInterval          = "interval must be at least 1m"
	msgInBoth            = "an entry in both images and exclude would remove nothing: drop it from one of the two lists"
	msgRemoveVolumes     = "removeVolumes needs action Remove: kept containers keep their volumes"
	msgKubernetesManaged = "includeKubernetesManaged needs action Remove: with Keep no container is removed"
	msgOperatorValues    = "In and NotIn need values; Exists and DoesNotExist take none"
	msgLabelKey          = "a label key is an optional DNS prefix and a slash, then a name of at most 63 letters, digits, '-', '_' or '.'"
	msgLabelValue        = "a label value has at most 63 letters, digits, '-', '_' or '.', and starts and ends with a letter or digit"
)

// CELMessages lists the messages of the CEL rules, for the test that holds
// the Go rules and the CRD together.
func CELMessages() []string {
	return []string{
		msgEmpty, msgSpaces, msgImageID, msgBareHex, msgDigest, msgDigestWildcard, msgDoubleStar, msgGrammar,
		msgDuration, msgInterval, msgInBoth, msgRemoveVolumes, msgKubernetesManaged,
		msgOperatorValues, msgLabelKey, msgLabelValue,
	}
}

var (
	reReferenceGrammar = regexp.MustCompile(ImageReferenceGrammar)
	reImageID          = regexp.MustCompile(imageIDGrammar)
	reBareHex          = regexp.MustCompile(bareHex)
	reDigestSuffix     = regexp.MustCompile(digestSuffix)
	reDoubleStar       = regexp.MustCompile(misplacedDoubleStar)
	reWhitespace       = regexp.MustCompile(whitespace)
	reDuration         = regexp.MustCompile(DurationGrammar)
	reLabelKey         = regexp.MustCompile(labelKeyGrammar)
	reLabelValue       = regexp.MustCompile(labelValGrammar)
)

// patternRule is one CEL rule of ImagePattern: ok(pattern) or message.
type patternRule struct {
	ok      func(p string) bool
	message string
}

var imagePatternRules = []patternRule{
	{func(p string) bool { return len(p) > 0 }, msgEmpty},
	{func(p string) bool { return !reWhitespace.MatchString(p) }, msgSpaces},
	{func(p string) bool { return !strings.HasPrefix(p, "sha256:") || reImageID.MatchString(p) }, msgImageID},
	{func(p string) bool { return !reBareHex.MatchString(p) }, msgBareHex},
	{func(p string) bool { return !strings.Contains(p, "@") || reDigestSuffix.MatchString(p) }, msgDigest},
	{func(p string) bool { return !strings.Contains(p, "@") || !strings.Contains(p, "*") }, msgDigestWildcard},
	{func(p string) bool { return !reDoubleStar.MatchString(p) }, msgDoubleStar},
	{func(p string) bool { return strings.HasPrefix(p, "sha256:") || reReferenceGrammar.MatchString(p) }, msgGrammar},
}

// ValidateImagePattern returns the problems of one entry of images or exclude.
func ValidateImagePattern(p string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(p) > MaxImagePatternLength {
		// The API server checks maxLength before CEL, and skips CEL then.
		return append(errs, field.TooLong(path, p, MaxImagePatternLength))
	}
	for _, r := range imagePatternRules {
		if !r.ok(p) {
			errs = append(errs, field.Invalid(path, p, r.message))
		}
	}
	return errs
}

// ParseDuration reads a Duration; it accepts exactly what validation accepts.
func (d Duration) ParseDuration() (time.Duration, error) {
	if !validDuration(string(d)) {
		return 0, fmt.Errorf("%q %s", string(d), msgDuration)
	}
	return time.ParseDuration(string(d))
}

func validDuration(s string) bool {
	return len(s) > 0 && len(s) <= MaxDurationLength && reDuration.MatchString(s)
}

func validateDuration(dp *Duration, path *field.Path) field.ErrorList {
	if dp == nil {
		return nil
	}
	d := *dp
	if len(d) > MaxDurationLength {
		return field.ErrorList{field.TooLong(path, string(d), MaxDurationLength)}
	}
	if !validDuration(string(d)) {
		return field.ErrorList{field.Invalid(path, string(d), msgDuration)}
	}
	return nil
}

func validatePatternList(list []ImagePattern, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(list) > MaxPatterns {
		// Like the API server, a list over maxItems is not looked into.
		return append(errs, field.TooMany(path, len(list), MaxPatterns))
	}
	seen := make(map[ImagePattern]bool, len(list))
	for i, p := range list {
		errs = append(errs, ValidateImagePattern(string(p), path.Index(i))...)
		if seen[p] {
			errs = append(errs, field.Duplicate(path.Index(i), string(p)))
		}
		seen[p] = true
	}
	return errs
}

// Validate returns every problem of the policy, with the API server's verdicts
// and messages. Call Default first, as the API server does.
func (p *ImageCleanupPolicy) Validate() field.ErrorList {
	spec := &p.Spec
	path := field.NewPath("spec")
	var errs field.ErrorList

	if spec.Images == nil {
		errs = append(errs, field.Required(path.Child("images"), ""))
	} else if len(spec.Images) == 0 {
		errs = append(errs, field.Invalid(path.Child("images"), 0, "should have at least 1 items"))
	}
	errs = append(errs, validatePatternList(spec.Images, path.Child("images"))...)
	errs = append(errs, validatePatternList(spec.Exclude, path.Child("exclude"))...)
	images := make(map[ImagePattern]bool, len(spec.Images))
	for _, img := range spec.Images {
		images[img] = true
	}
	for _, e := range spec.Exclude {
		if images[e] {
			errs = append(errs, field.Invalid(path, string(e), msgInBoth))
			break
		}
	}

	errs = append(errs, validateNodeSelector(spec, path.Child("nodeSelector"))...)
	errs = append(errs, validateDuration(spec.MinImageAge, path.Child("minImageAge"))...)

	intervalPath := path.Child("interval")
	if ierrs := validateDuration(spec.Interval, intervalPath); len(ierrs) > 0 {
		errs = append(errs, ierrs...)
	} else if spec.Interval != nil && spec.IntervalDuration() < MinInterval {
		errs = append(errs, field.Invalid(intervalPath, string(*spec.Interval), msgInterval))
	}

	if spec.MaxImagesPerSweep < 0 {
		errs = append(errs, field.Invalid(path.Child("maxImagesPerSweep"), spec.MaxImagesPerSweep, "should be greater than or equal to 0"))
	}
	if spec.MaxImagesPerSweep > MaxImagesPerSweepMax {
		errs = append(errs, field.Invalid(path.Child("maxImagesPerSweep"), spec.MaxImagesPerSweep, fmt.Sprintf("should be less than or equal to %d", MaxImagesPerSweepMax)))
	}

	errs = append(errs, validateStoppedContainers(&spec.StoppedContainers, path.Child("stoppedContainers"))...)
	return errs
}

func validateStoppedContainers(sc *StoppedContainersPolicy, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch sc.Action {
	case StoppedContainersRemove, StoppedContainersKeep:
	default:
		errs = append(errs, field.NotSupported(path.Child("action"), sc.Action,
			[]StoppedContainerAction{StoppedContainersRemove, StoppedContainersKeep}))
	}
	errs = append(errs, validateDuration(sc.MinStoppedAge, path.Child("minStoppedAge"))...)
	if sc.Action != StoppedContainersRemove && sc.RemoveVolumes {
		errs = append(errs, field.Invalid(path, sc.RemoveVolumes, msgRemoveVolumes))
	}
	if sc.Action != StoppedContainersRemove && sc.IncludeKubernetesManaged {
		errs = append(errs, field.Invalid(path, sc.IncludeKubernetesManaged, msgKubernetesManaged))
	}
	return errs
}

func validateNodeSelector(spec *ImageCleanupPolicySpec, path *field.Path) field.ErrorList {
	sel := spec.NodeSelector
	if sel == nil {
		return nil
	}
	var errs field.ErrorList
	if len(sel.MatchLabels) > maxMatchLabels {
		errs = append(errs, field.TooMany(path.Child("matchLabels"), len(sel.MatchLabels), maxMatchLabels))
	}
	for k, v := range sel.MatchLabels {
		errs = append(errs, validateLabelValue(v, path.Child("matchLabels").Key(k))...)
	}
	exprs := path.Child("matchExpressions")
	if len(sel.MatchExpressions) > maxMatchExpressions {
		return append(errs, field.TooMany(exprs, len(sel.MatchExpressions), maxMatchExpressions))
	}
	for i, e := range sel.MatchExpressions {
		p := exprs.Index(i)
		if len(e.Key) > maxLabelKeyLength {
			errs = append(errs, field.TooLong(p.Child("key"), e.Key, maxLabelKeyLength))
		} else if !reLabelKey.MatchString(e.Key) {
			errs = append(errs, field.Invalid(p.Child("key"), e.Key, msgLabelKey))
		}
		switch e.Operator {
		case "In", "NotIn", "Exists", "DoesNotExist":
		default:
			errs = append(errs, field.NotSupported(p.Child("operator"), e.Operator, []string{"In", "NotIn", "Exists", "DoesNotExist"}))
		}
		if len(e.Values) > maxSelectorValues {
			errs = append(errs, field.TooMany(p.Child("values"), len(e.Values), maxSelectorValues))
			continue
		}
		for j, v := range e.Values {
			errs = append(errs, validateLabelValue(v, p.Child("values").Index(j))...)
		}
		if wantsValues := e.Operator != "Exists" && e.Operator != "DoesNotExist"; wantsValues != (len(e.Values) > 0) {
			errs = append(errs, field.Invalid(p, e.Operator, msgOperatorValues))
		}
	}
	return errs
}

func validateLabelValue(v LabelValue, path *field.Path) field.ErrorList {
	if len(v) > maxLabelValueLength {
		return field.ErrorList{field.TooLong(path, string(v), maxLabelValueLength)}
	}
	if !reLabelValue.MatchString(string(v)) {
		return field.ErrorList{field.Invalid(path, string(v), msgLabelValue)}
	}
	return nil
}
