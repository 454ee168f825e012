package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// What the image clock rests on, measured on the private engine: a pulled
// image keeps its build date as Created, has a repo digest, and no
// LastTagTime; only a tag sets that.
func TestPulledImageHasNoLastTagTime(t *testing.T) {
	cli := testenv.Docker(t)
	reg := testenv.StartRegistry(t)
	built := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	repo := "itest/" + testenv.UniqueName("pulled")
	digest := reg.Push(t, repo, "1", built)
	id := testenv.PullImage(t, cli, reg.Host+"/"+repo+":1")
	info, err := cli.ImageInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Metadata.LastTagTime.IsZero() {
		t.Fatalf("LastTagTime %v after a pull", info.Metadata.LastTagTime)
	}
	if created, _ := time.Parse(time.RFC3339Nano, info.Created); !created.Equal(built) {
		t.Fatalf("Created %s, want the build date", info.Created)
	}
	if len(info.RepoDigests) != 1 || info.RepoDigests[0] != reg.Host+"/"+repo+"@"+digest {
		t.Fatalf("RepoDigests %v", info.RepoDigests)
	}
	if err := cli.ImageTag(context.Background(), id, reg.Host+"/"+repo+":2"); err != nil {
		t.Fatal(err)
	}
	info, _ = cli.ImageInspect(context.Background(), id)
	if info.Metadata.LastTagTime.IsZero() {
		t.Fatal("a tag left LastTagTime empty")
	}
}
