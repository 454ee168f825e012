package cleanup_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv/faultproxy"
	"github.com/moby/moby/client"
)

// A container started during apply on an image with two
// selected tags; the second tag was removed under it. The re-check before
// the second untag sees the running container.
func TestAContainerStartedBetweenTwoUntagsKeepsTheImage(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"), s.ref("2"))
	proxy, rt := s.proxied()
	proxy.On(faultproxy.Rule{Method: http.MethodDelete, Path: regexp.MustCompile(`^/images/`), Times: 1,
		After: func(*http.Request) { s.runOn(id) }})
	out := s.sweepWith(rt, s.spec(s.repo+"/app:*"), time.Now(), cleanup.Options{})
	if got := s.tags(id); len(got) != 1 {
		t.Fatalf("tags now %v: the running container's image lost its last tag", got)
	}
	if d := decisionFor(out.Result.Blocked, id); d == nil || d.Reason != plan.RunningContainer || len(out.Result.RemovedImages) != 0 {
		t.Fatalf("want the image blocked, and only blocked: %+v", out.Result)
	}
}

// An untag only: the image keeps a tag the policy does not select;
// the runtime never refuses such an untag, so the re-check must.
func TestAnUntagIsRechecked(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"), s.repo+"/keep:1")
	proxy, rt := s.proxied()
	proxy.On(faultproxy.Rule{Method: http.MethodGet, Path: regexp.MustCompile(`^/containers/json$`), Query: "ancestor", Times: 1,
		Before: func(*http.Request) { s.runOn(id) }})
	out := s.sweepWith(rt, s.spec(s.ref("1")), time.Now(), cleanup.Options{})
	if got := s.tags(id); len(got) != 2 {
		t.Fatalf("tags now %v: untagged under a running container", got)
	}
	if d := decisionFor(out.Result.Blocked, id); d == nil || d.Reason != plan.RunningContainer {
		t.Fatalf("result %+v", out.Result)
	}
}

// With dangling: true, an image tagged while its delete by ID
// was on its way went with its new tag. The re-check reads its references.
func TestADanglingImageTaggedMeanwhileStays(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli)
	proxy, rt := s.proxied()
	proxy.On(faultproxy.Rule{Method: http.MethodGet, Path: regexp.MustCompile(`^/images/` + id + `/json$`), Times: 1,
		Before: func(*http.Request) {
			if _, err := s.cli.ImageTag(context.Background(), client.ImageTagOptions{Source: id, Target: s.ref("late")}); err != nil {
				t.Error(err)
			}
		}})
	spec := s.spec(s.repo + "/nothing:*")
	spec.Dangling = true
	out := s.sweepWith(rt, spec, time.Now(), cleanup.Options{})
	if !testenv.ImageExists(t, s.cli, s.ref("late")) {
		t.Fatal("the image tagged since the plan was deleted, tag and all")
	}
	if d := decisionFor(out.Result.Blocked, id); d == nil || d.Reason != plan.Changed {
		t.Fatalf("result %+v", out.Result)
	}
}

// With force, a container started between the re-check and
// rmi -f saw its image untagged. Forced removals go by ID, where the runtime
// itself refuses the image of a running container.
func TestAForcedRemovalRacingAStart(t *testing.T) {
	s := newScenario(t)
	id := testenv.ImportImage(t, s.cli, s.ref("1"))
	c := testenv.CreateContainer(t, s.cli, s.ref("1"), testenv.ContainerOptions{SleepWhenStarted: true})
	proxy, rt := s.proxied()
	proxy.On(faultproxy.Rule{Method: http.MethodDelete, Path: regexp.MustCompile(`^/images/`), Times: 1,
		Before: func(*http.Request) {
			if _, err := s.cli.ContainerStart(context.Background(), c, client.ContainerStartOptions{}); err != nil {
				t.Error(err)
			}
		}})
	spec := s.spec(s.ref("1"))
	spec.Force = true
	spec.StoppedContainers.Action = v1alpha1.StoppedContainersKeep
	out := s.sweepWith(rt, spec, time.Now(), cleanup.Options{})
	if got := s.tags(id); len(got) != 1 {
		t.Fatalf("tags now %v: forced removal untagged a running container's image", got)
	}
	if d := decisionFor(out.Result.Blocked, id); d == nil || d.Reason != plan.Conflict || len(out.Result.RemovedImages) != 0 {
		t.Fatalf("result %+v", out.Result)
	}
}
