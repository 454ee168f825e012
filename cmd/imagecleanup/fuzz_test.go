package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// FuzzLoadPolicy: no policy file panics or hangs the decoder, and every
// policy that decodes and validates can be planned (validation and the
// compiled matcher agree). The corpus in testdata/fuzz holds the inputs
// that once broke that.
func FuzzLoadPolicy(f *testing.F) {
	for _, spec := range []string{
		"  images: [busybox]\n",
		"  images: [\"**\"]\n  exclude: [\"docker.io/**\"]\n  minImageAge: 24h\n",
		"  images: [\"**:2/95_4\"]\n",
		"  images: [\"registry.example.com/ci/**\", \"app:pr-*\"]\n  stoppedContainers: {action: Keep}\n  maxImagesPerSweep: 3\n",
		"  images: [\"sha256:0123456789ab\"]\n  nodeSelector: {matchLabels: {a: b}}\n",
	} {
		f.Add([]byte(policyYAML(spec)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := loadPolicy(context.Background(), "-", bytes.NewReader(data))
		if err != nil {
			return
		}
		if _, err := plan.OptionsFor(&p.Spec, nil, runtime.Capabilities{}); err != nil {
			t.Fatalf("a valid policy cannot be planned: %v\n%s", err, data)
		}
	})
}
