package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// What the image clock rests on, measured on the private runtimes: a pulled
// image keeps its build date as Created and has a repo digest. Docker 20.10
// (the classic store) leaves its LastTagTime empty, only a tag sets it; the
// containerd store (Docker 29's default) sets it at the pull, which is then
// a true proof of arrival. Either way the clock's rule (arrival: the first
// sighting, or an earlier LastTagTime) never makes a pull look older than
// it is.
func TestPulledImageTimes(t *testing.T) {
	cli := testenv.Docker(t)
	pulled := time.Now()
	reg := testenv.StartRegistry(t)
	built := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	repo := "itest/" + testenv.UniqueName("pulled")
	digest := reg.Push(t, repo, "1", built)
	id := testenv.PullImage(t, cli, reg.Host+"/"+repo+":1")
	info, err := cli.ImageInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	containerdStore := testenv.ContainerdStore(t, cli)
	switch last := info.Metadata.LastTagTime; {
	case !containerdStore && !last.IsZero():
		t.Fatalf("LastTagTime %v after a pull on the classic store", last)
	case containerdStore && last.Before(pulled.Add(-time.Second)):
		t.Fatalf("LastTagTime %v after a pull at %v on the containerd store: older than the pull", last, pulled)
	}
	if created, _ := time.Parse(time.RFC3339Nano, info.Created); !created.Equal(built) {
		t.Fatalf("Created %s, want the build date", info.Created)
	}
	if len(info.RepoDigests) != 1 || info.RepoDigests[0] != reg.Host+"/"+repo+"@"+digest {
		t.Fatalf("RepoDigests %v", info.RepoDigests)
	}
	if _, err := cli.ImageTag(context.Background(), client.ImageTagOptions{Source: id, Target: reg.Host + "/" + repo + ":2"}); err != nil {
		t.Fatal(err)
	}
	info, _ = cli.ImageInspect(context.Background(), id)
	if info.Metadata.LastTagTime.IsZero() {
		t.Fatal("a tag left LastTagTime empty")
	}
}
