package runtimefake_test

import (
	"context"
	"errors"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime/runtimefake"
)

// Another client's container (podman's on CRI-O's storage, ctr's on
// containerd) as each rule set shows it, and what each runtime does when
// its image is removed: containerd's CRI lists it (the adapter reads
// containerd's own API) and removes the image anyway; CRI-O lists it
// nowhere and refuses.
func TestAnOtherClientsContainerByTheRules(t *testing.T) {
	for name, tc := range map[string]struct {
		rules        runtimefake.Rules
		listed       bool
		removeRefuse bool
	}{
		"containerd": {runtimefake.CRI, true, false},
		"CRI-O":      {runtimefake.CRIO, false, true},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := runtimefake.New()
			f.Rules = tc.rules
			id := "sha256:1111111111111111111111111111111111111111111111111111111111111111"
			f.AddImage(runtime.Image{ID: id, RepoTags: []string{"app:1", "app:2"}})
			f.AddContainer(runtime.Container{ID: "c1", ImageID: id, State: runtime.StateRunning, MadeBy: "podman"})
			all, err := f.ListContainers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			using, err := f.ContainersUsing(ctx, []string{id})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(all) == 1 && len(using) == 1; got != tc.listed {
				t.Fatalf("listed %v, want %v: %+v, %+v", got, tc.listed, all, using)
			}
			_, err = f.RemoveImage(ctx, "app:1", runtime.RemoveImageOptions{})
			if tc.removeRefuse != errors.Is(err, runtime.ErrConflict) || tc.removeRefuse != f.HasImage(id) {
				t.Fatalf("removal: %v, image there %v; want refused %v", err, f.HasImage(id), tc.removeRefuse)
			}
			if !tc.removeRefuse && f.HasImage(id) {
				t.Fatal("the image stayed with its other tag")
			}
		})
	}
}
