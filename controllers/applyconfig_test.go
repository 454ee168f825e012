package controllers

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// fill sets every field reachable from v to a value that is not zero, so
// that a field the mapping forgets shows in the comparison.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(metav1.Time{}) {
			v.Set(reflect.ValueOf(metav1.NewTime(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0))
		fill(v.Index(1))
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Bool:
		v.SetBool(true)
	}
}

func sameJSON(t *testing.T, what string, want, got any) {
	t.Helper()
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var wm, gm any
	_ = json.Unmarshal(w, &wm)
	_ = json.Unmarshal(g, &gm)
	if !reflect.DeepEqual(wm, gm) {
		t.Fatalf("%s: the apply configuration says\n%s\nthe API type\n%s", what, g, w)
	}
}

// The apply configurations say exactly what the API types say, for every
// field, full or empty.
func TestApplyConfigurationsMatchTheTypes(t *testing.T) {
	for _, full := range []bool{true, false} {
		var report v1alpha1.ImageCleanupReportStatus
		if full {
			fill(reflect.ValueOf(&report).Elem())
		}
		sameJSON(t, "report status", report, reportStatusApplyConfiguration(&report))

		// The whole report: what is compared is what is applied.
		policy := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "0123"}}
		desired := desiredReport(policy, "node-1", &report)
		sameJSON(t, "report", desired, reportApplyConfiguration(desired))
	}
}
