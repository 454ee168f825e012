package v1alpha1

import "time"

// ParseDuration reads a Duration. The CRD admits only hours, minutes and
// seconds (0s, 30m, 2h30m), which Go reads the same way.
func (d Duration) ParseDuration() (time.Duration, error) {
	return time.ParseDuration(string(d))
}
