package disk_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// privateFilesystem mounts a 64 MiB tmpfs of the test's own, so that no
// other process changes what it measures (needs root, as make test has).
func privateFilesystem(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64m,nr_inodes=1000"); err != nil {
		testenv.Unavailable(t, "cannot mount a tmpfs (%v): the test needs root", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	return dir
}

// Measure sees space and inodes used by files written to the filesystem.
func TestMeasure(t *testing.T) {
	dir := privateFilesystem(t)
	before, err := disk.Measure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fill"), make([]byte, 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 99 {
		if err := os.WriteFile(filepath.Join(dir, "small-"+string(rune('a'+i%26))+string(rune('a'+i/26))), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	after, err := disk.Measure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.UsedBytes - before.UsedBytes; got < 32<<20 || got > 33<<20 {
		t.Fatalf("a 32 MiB file added %d bytes", got)
	}
	if after.UsedPercent < 49 || after.UsedPercent > 52 {
		t.Fatalf("32 of 64 MiB is %.1f %%", after.UsedPercent)
	}
	if after.InodesUsedPercent < 9.9 || after.InodesUsedPercent > 10.5 {
		t.Fatalf("100 of 1000 inodes is %.1f %%", after.InodesUsedPercent)
	}
	if _, err := disk.Measure(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing path measured")
	}
}

func TestWatermarks(t *testing.T) {
	w := disk.Watermarks{High: 85, Low: 70, Inodes: true, HighInodes: 90, LowInodes: 80}
	for _, tc := range []struct {
		u     disk.Usage
		above string
		below bool
	}{
		{disk.Usage{UsedPercent: 86, InodesUsedPercent: 10}, "space", false},
		{disk.Usage{UsedPercent: 85, InodesUsedPercent: 91}, "inodes", false},
		{disk.Usage{UsedPercent: 75, InodesUsedPercent: 10}, "", false},
		{disk.Usage{UsedPercent: 69, InodesUsedPercent: 85}, "", false},
		{disk.Usage{UsedPercent: 69, InodesUsedPercent: 79}, "", true},
	} {
		if got := w.Above(tc.u); got != tc.above {
			t.Errorf("Above(%+v) = %q, want %q", tc.u, got, tc.above)
		}
		if got := w.Below(tc.u); got != tc.below {
			t.Errorf("Below(%+v) = %v, want %v", tc.u, got, tc.below)
		}
	}
	if (disk.Watermarks{High: 85, Low: 70}).Above(disk.Usage{UsedPercent: 50, InodesUsedPercent: 99}) != "" {
		t.Error("inodes counted though not watched")
	}
}
