// Package disk measures how full a filesystem is, as df does: the share of
// the space (and of the inodes) that is used, counting the blocks reserved
// for root as not available.
package disk

import (
	"fmt"
	"syscall"
)

// Usage is one measurement of a filesystem.
type Usage struct {
	// UsedPercent and InodesUsedPercent are 0 to 100.
	UsedPercent       float64
	InodesUsedPercent float64
	// UsedBytes is the space in use, for measuring what a sweep freed.
	UsedBytes uint64
	// Path is the folder measured: its filesystem is the one described.
	Path string
}

// Measure reads the filesystem that holds path.
func Measure(path string) (Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bsize := uint64(st.Bsize)
	used := st.Blocks - st.Bfree
	u := Usage{UsedBytes: used * bsize, Path: path}
	if avail := used + st.Bavail; avail > 0 {
		u.UsedPercent = 100 * float64(used) / float64(avail)
	}
	if st.Files > 0 {
		u.InodesUsedPercent = 100 * float64(st.Files-st.Ffree) / float64(st.Files)
	}
	return u, nil
}

// Watermarks are a high and a low mark of use, in percent, for space and,
// when Inodes is set, for inodes.
type Watermarks struct {
	High, Low             float64
	Inodes                bool
	HighInodes, LowInodes float64
}

// Above says which high mark the usage is above: "space", "inodes", or ""
// for neither.
func (w Watermarks) Above(u Usage) string {
	switch {
	case u.UsedPercent > w.High:
		return "space"
	case w.Inodes && u.InodesUsedPercent > w.HighInodes:
		return "inodes"
	}
	return ""
}

// Below reports whether the usage is under every low mark.
func (w Watermarks) Below(u Usage) bool {
	return u.UsedPercent < w.Low && (!w.Inodes || u.InodesUsedPercent < w.LowInodes)
}
