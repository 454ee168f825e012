package plan

import (
	"fmt"
	"strings"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// InUseBy is the reason, and its message, that a container in use (not
// stopped, or another client's) keeps its image.
func InUseBy(c *runtime.Container) (Reason, string) {
	if c.MadeBy != "" {
		return OtherClient, fmt.Sprintf("container %s, which %s made, uses it", c.Display(), c.MadeBy)
	}
	return RunningContainer, fmt.Sprintf("%s container %s uses it", c.State, c.Display())
}

func firstInUse(cs []*runtime.Container) *runtime.Container {
	for _, c := range cs {
		if !c.Stopped() {
			return c
		}
	}
	return nil
}

// keepReason says why a stopped container must stay, or "" if it may go.
func keepReason(c *runtime.Container, opts *Options, now time.Time) Reason {
	switch {
	case opts.KeepStoppedContainers:
		return KeptStoppedContainer
	case c.KubernetesManaged() && !opts.IncludeKubernetesManaged:
		return KubernetesManaged
	case now.Sub(c.StoppedAt()) < opts.MinStoppedAge:
		return StoppedRecently
	}
	return ""
}

func keptMessage(why Reason, kept []*runtime.Container, opts *Options) string {
	names := make([]string, 0, len(kept))
	for i, c := range kept {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(kept)-3))
			break
		}
		names = append(names, c.Display())
	}
	list := strings.Join(names, ", ")
	switch why {
	case KeptStoppedContainer:
		return "stopped container " + list + " uses it and stoppedContainers.action is Keep"
	case KubernetesManaged:
		return "stopped Kubernetes container " + list + " uses it; the kubelet collects those unless includeKubernetesManaged is set"
	default:
		return fmt.Sprintf("container %s stopped less than %s ago", list, FormatDuration(opts.MinStoppedAge))
	}
}

// arrived is when the image came to the node by the image clock; an image
// the clock does not know arrived now (fail closed: never the build date).
// An arrival later than now (a runtime whose clock runs ahead) is now.
func arrived(arrivedAt, now time.Time) time.Time {
	if arrivedAt.IsZero() || arrivedAt.After(now) {
		return now
	}
	return arrivedAt
}

// lastUsed is the key of least-recently-used order: the image's last use by
// the clock, else its arrival (an image no container ran). A use later than
// now is a use now: a runtime whose clock runs ahead of the agent's (or of
// the CLI's, on a remote runtime) stamps a use that just happened in the
// future, and falling back to the arrival would make it the least recent.
func lastUsed(arrivedAt, lastUsedAt, now time.Time) time.Time {
	switch {
	case lastUsedAt.IsZero():
		return arrived(arrivedAt, now)
	case lastUsedAt.After(now):
		return now
	}
	return lastUsedAt
}

// ClockGuard applies the image clock's rules to one image's records at now:
// minImageAge to its arrival, maxUnusedAge to its last use or arrival,
// whichever is later (an image is idle only as long as the clock has known
// it). It returns TooYoung or RecentlyUsed, why, and when the image may go;
// an empty reason when the clock lets it go. The plan weighs each image and
// each untagged parent with it, and the executor's re-check weighs them
// again with what the clock learned since (internal/cleanup).
func ClockGuard(arrivedAt, lastUsedAt time.Time, opts *Options, now time.Time) (Reason, string, time.Time) {
	arrival := arrived(arrivedAt, now)
	if age := now.Sub(arrival); age < opts.MinImageAge {
		return TooYoung, fmt.Sprintf("arrived %s ago, minImageAge is %s", FormatDuration(age), FormatDuration(opts.MinImageAge)),
			arrival.Add(opts.MinImageAge)
	}
	if opts.UnusedFor <= 0 {
		return "", "", time.Time{}
	}
	since := arrival
	if used := lastUsed(arrivedAt, lastUsedAt, now); used.After(since) {
		since = used
	}
	if idle := now.Sub(since); idle < opts.UnusedFor {
		return RecentlyUsed, fmt.Sprintf("used %s ago, maxUnusedAge is %s", FormatDuration(idle), FormatDuration(opts.UnusedFor)),
			since.Add(opts.UnusedFor)
	}
	return "", "", time.Time{}
}
