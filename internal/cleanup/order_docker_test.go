package cleanup_test

import (
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// keepNewest on the engine: of four builds of one repository, the two
// tagged last stay (the engine's tag times rank builds the clock met
// together).
func TestKeepNewestOnTheEngine(t *testing.T) {
	s := newScenario(t)
	var ids []string
	for _, tag := range []string{"1", "2", "3", "4"} {
		ids = append(ids, testenv.ImportImage(t, s.cli, s.ref(tag)))
	}
	spec := s.spec(s.repo + "/app:*")
	spec.KeepNewest = 2
	out := s.sweep(spec)
	for i, id := range ids {
		if want := i >= 2; testenv.ImageExists(t, s.cli, id) != want {
			t.Fatalf("app:%d present %v, want %v: %+v", i+1, !want, want, out.Result)
		}
	}
}

// maxUnusedAge on the engine: an image a container ran lately stays, one
// idle since the clock met it goes.
func TestMaxUnusedAgeOnTheEngine(t *testing.T) {
	s := newScenario(t)
	idle := testenv.ImportImage(t, s.cli, s.ref("idle"))
	used := testenv.ImportImage(t, s.cli, s.ref("used"))
	spec := s.spec(s.repo + "/app:*")
	hour := v1alpha1.Duration("1h")
	spec.MaxUnusedAge = &hour
	clock := imageclock.InMemory()
	now := time.Now()
	// The clock first met both three hours ago (a sweep then removed nothing:
	// both were just met).
	s.sweepWith(s.rt, spec, now.Add(-3*time.Hour), cleanup.Options{Clock: clock})
	if !testenv.ImageExists(t, s.cli, idle) || !testenv.ImageExists(t, s.cli, used) {
		t.Fatal("images the clock had just met went")
	}
	testenv.CreateContainer(t, s.cli, used, testenv.ContainerOptions{Run: "exit"}) // a run, now
	out := s.sweepWith(s.rt, spec, now.Add(30*time.Minute), cleanup.Options{Clock: clock})
	if testenv.ImageExists(t, s.cli, idle) {
		t.Fatalf("the image idle for 3.5 h stayed: %+v", out.Result)
	}
	if !testenv.ImageExists(t, s.cli, used) {
		t.Fatal("the image used 30 minutes ago went")
	}
}
