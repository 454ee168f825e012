package controllers

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/applycheck"
)

// The apply configurations say exactly what the API types say, for every
// field, full or empty.
func TestApplyConfigurationsMatchTheTypes(t *testing.T) {
	for _, full := range []bool{true, false} {
		var report v1alpha1.ImageCleanupReportStatus
		if full {
			applycheck.Fill(reflect.ValueOf(&report).Elem())
		}
		applycheck.SameJSON(t, "report status", report, reportStatusApplyConfiguration(&report))

		// The whole report: what is compared is what is applied.
		policy := &v1alpha1.ImageCleanupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "0123"}}
		desired := desiredReport(policy, "node-1", &report)
		applycheck.SameJSON(t, "report", desired, reportApplyConfiguration(desired))
	}
}
