package v1alpha1

import (
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
)

// equality.Semantic compares API objects (the agent writes a report only
// when it differs); it cannot look into a time's unexported fields, and has
// metav1's times only.
func init() {
	if err := equality.Semantic.AddFunc(func(a, b PreciseTime) bool { return a.Equal(b.Time) }); err != nil {
		panic(err)
	}
}

// PreciseTime is a time kept to the microsecond, written as metav1.MicroTime
// writes it (RFC 3339 with six fractional digits), that also reads RFC 3339
// without them: reports written before countedThrough kept microseconds
// hold the second-precision form, which metav1.MicroTime refuses, and one
// such report would fail every list of reports.
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:Format=date-time
// +kubebuilder:object:generate=false
type PreciseTime struct {
	time.Time `json:"-"`
}

// NewPreciseTime is t to the microsecond, in UTC.
func NewPreciseTime(t time.Time) PreciseTime {
	return PreciseTime{Time: t.Truncate(time.Microsecond).UTC()}
}

const preciseLayout = "2006-01-02T15:04:05.000000Z07:00"

// MarshalJSON writes the time to the microsecond, in UTC.
func (t PreciseTime) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(preciseLayout))
}

// UnmarshalJSON reads RFC 3339, with or without fractional seconds.
func (t *PreciseTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = PreciseTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*t = NewPreciseTime(parsed)
	return nil
}

// DeepCopyInto copies the time (a value).
func (t *PreciseTime) DeepCopyInto(out *PreciseTime) { *out = *t }

// DeepCopy copies the time.
func (t *PreciseTime) DeepCopy() *PreciseTime {
	if t == nil {
		return nil
	}
	out := *t
	return &out
}
