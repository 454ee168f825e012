package plan

import (
	"sort"
	"strings"
	"time"
)

// SortDecisions orders decisions by image reference, then ID, so that plans
// and results print the same whatever order they were made in.
func SortDecisions(ds []Decision) {
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].Image != ds[j].Image {
			return ds[i].Image < ds[j].Image
		}
		return ds[i].ImageID < ds[j].ImageID
	})
}

// FormatDuration writes a duration as a policy does (24h, 1h30m, 90s),
// rounded to the second, not as Go does (24h0m0s).
func FormatDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
