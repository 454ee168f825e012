// Package applycheck holds a hand-written apply configuration to the API
// type it applies: filled with a value in every field, and empty, both must
// say the same in JSON. A field added to the type and forgotten in the
// apply configuration fails the check.
package applycheck

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Fill sets every exported field reachable from v to a value that is not
// zero (pointers allocated, slices of two), so that a field the mapping
// forgets shows in the comparison.
func Fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		Fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(metav1.Time{}) {
			v.Set(reflect.ValueOf(metav1.NewTime(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				Fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		Fill(v.Index(0))
		Fill(v.Index(1))
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Bool:
		v.SetBool(true)
	}
}

// SameJSON fails the test when want (the API type) and got (its apply
// configuration) do not marshal to the same JSON.
func SameJSON(t testing.TB, what string, want, got any) {
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
	if err := json.Unmarshal(w, &wm); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(g, &gm); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(wm, gm) {
		t.Fatalf("%s: the apply configuration says\n%s\nthe API type\n%s", what, g, w)
	}
}
