// Package schedule reads a policy's spec.schedule: weekly windows of time
// in one time zone, inside which the agent may sweep.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the agent's image has no zoneinfo of its own

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

// Schedule is a parsed spec.schedule. The zero value (no schedule) is
// always open.
type Schedule struct {
	loc     *time.Location
	windows []window
	// DiskAnytime: a disk above its high watermark is swept outside the
	// windows too.
	DiskAnytime bool
}

// window is one spec window: open on its days (time.Weekday bits) from
// start to end, minutes after midnight; end <= start closes the next day.
type window struct {
	days       uint8
	start, end int
}

// Parse reads spec.schedule; nil reads as no schedule. The API server has
// checked the syntax; a time zone this build does not know is the one
// error left.
func Parse(s *v1alpha1.Schedule) (*Schedule, error) {
	if s == nil {
		return &Schedule{DiskAnytime: true}, nil
	}
	loc, err := Zone(s.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("spec.schedule.timeZone: %w", err)
	}
	out := &Schedule{loc: loc, DiskAnytime: s.DiskPressure != v1alpha1.DiskPressureInWindows}
	for i, w := range s.Windows {
		pw, err := parseWindow(w)
		if err != nil {
			return nil, fmt.Errorf("spec.schedule.windows[%d]: %w", i, err)
		}
		out.windows = append(out.windows, pw)
	}
	if len(out.windows) == 0 {
		return nil, fmt.Errorf("spec.schedule.windows: a schedule needs at least one window")
	}
	return out, nil
}

// Zone is the time zone a schedule names ("" is UTC): an IANA name in the
// zone database this build embeds, never Local.
func Zone(name string) (*time.Location, error) {
	switch name {
	case "":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("the zone Local is each node's own time zone: name the zone, such as Europe/Berlin")
	}
	loc, err := location(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}

// locations holds the zones loaded: a schedule is read at every reconcile,
// and loading a zone reads the zone database.
var locations sync.Map // name → *time.Location

func location(zone string) (*time.Location, error) {
	if l, ok := locations.Load(zone); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(zone)
	if err != nil {
		return nil, err
	}
	locations.Store(zone, l)
	return l, nil
}

var weekdays = map[v1alpha1.Weekday]time.Weekday{
	"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday,
	"Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday,
}

func parseWindow(w v1alpha1.Window) (window, error) {
	var out window
	for _, d := range w.Days {
		wd, ok := weekdays[d]
		if !ok {
			return window{}, fmt.Errorf("days: %q is not a day (Mon to Sun)", d)
		}
		out.days |= 1 << wd
	}
	if len(w.Days) == 0 {
		out.days = 0x7f
	}
	var err error
	if out.start, err = minuteOfDay(w.Start, false); err != nil {
		return window{}, fmt.Errorf("start: %w", err)
	}
	if out.end, err = minuteOfDay(w.End, true); err != nil {
		return window{}, fmt.Errorf("end: %w", err)
	}
	if out.start == out.end {
		return window{}, fmt.Errorf("start and end must differ (a whole day is 00:00 to 24:00)")
	}
	return out, nil
}

// minuteOfDay reads HH:MM; 24:00 only as an end.
func minuteOfDay(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	switch {
	case !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || mm < 0 || mm > 59 || hh < 0:
	case hh < 24, end && hh == 24 && mm == 0:
		return hh*60 + mm, nil
	}
	return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
}

// span is one opening of a window: [from, to).
type span struct{ from, to time.Time }

// spans are the openings of the windows that start on the days from
// first-1 to first+days (local dates), in no order.
func (s *Schedule) spans(first time.Time, days int) []span {
	var out []span
	y, mo, d := first.In(s.loc).Date()
	for i := -1; i <= days; i++ {
		// The calendar's weekday: midnight itself may be a time the
		// clocks skip (America/Santiago).
		weekday := time.Date(y, mo, d+i, 12, 0, 0, 0, time.UTC).Weekday()
		for _, w := range s.windows {
			if w.days&(1<<weekday) == 0 {
				continue
			}
			from := wallTime(s.loc, y, mo, d+i, w.start)
			endDay := d + i
			if w.end <= w.start {
				endDay++
			}
			to := wallTime(s.loc, y, mo, endDay, w.end)
			if to.After(from) { // a window wholly inside a skipped hour is not open
				out = append(out, span{from, to})
			}
		}
	}
	return out
}

// wallTime is the instant the clocks of loc show the date and the minute
// of the day (1440 is the next day's 00:00). A time the clocks skip (when
// they go forward) counts from the instant they jump past it; a time they
// show twice (when they go back) counts the second time. time.Date alone
// picks either way, by the zone's side of UTC.
func wallTime(loc *time.Location, y int, mo time.Month, d, minute int) time.Time {
	want := time.Date(y, mo, d, 0, minute, 0, 0, time.UTC)
	t := time.Date(y, mo, d, 0, minute, 0, 0, loc)
	if wallClock(t).Equal(want) {
		for _, later := range []time.Duration{time.Hour, 30 * time.Minute} {
			if u := t.Add(later); wallClock(u).Equal(want) {
				return u
			}
		}
		return t
	}
	// Skipped: the first second whose wall clock is past it. Within three
	// hours either side the wall clock only moves forward.
	lo, hi := t.Add(-3*time.Hour).Unix(), t.Add(3*time.Hour).Unix()
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if wallClock(time.Unix(mid, 0).In(loc)).Before(want) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Unix(hi, 0).In(loc)
}

// wallClock is what t's clock shows, as a time in UTC, for comparisons.
func wallClock(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	return time.Date(y, mo, d, h, mi, sec, 0, time.UTC)
}

// State is a schedule at one instant.
type State struct {
	// Open: a window is open.
	Open bool
	// Opened is when the open window opened (zero while closed): windows
	// that overlap or touch count as one.
	Opened time.Time
	// Closes is when the open window closes (zero while closed, and when
	// it stays open all week).
	Closes time.Time
	// NextOpen is when the next window opens, after the open one closes;
	// zero when none opens within the days looked at (a window open all
	// week).
	NextOpen time.Time
}

// horizon is how far ahead the next opening is looked for: a window opens
// at least once a week, and one that spans midnight adds a day.
const horizon = 8

// At is the schedule's state at t. Without a schedule it is always open.
func (s *Schedule) At(t time.Time) State {
	if s == nil || s.loc == nil {
		return State{Open: true}
	}
	spans := s.spans(t, horizon)
	var st State
	for _, sp := range spans {
		if !sp.from.After(t) && t.Before(sp.to) {
			st.Open = true
			if st.Opened.IsZero() || sp.from.Before(st.Opened) {
				st.Opened = sp.from
			}
			if sp.to.After(st.Closes) {
				st.Closes = sp.to
			}
		}
	}
	if st.Open {
		// Windows that overlap or touch the open one extend it, both ways.
		for grew := true; grew; {
			grew = false
			for _, sp := range spans {
				if !sp.from.After(st.Closes) && sp.to.After(st.Closes) {
					st.Closes, grew = sp.to, true
				}
				if !sp.to.Before(st.Opened) && sp.from.Before(st.Opened) {
					st.Opened, grew = sp.from, true
				}
			}
		}
		if !st.Closes.Before(t.AddDate(0, 0, horizon-1)) {
			// Open as far as the days looked at: it never closes.
			return State{Open: true, Opened: st.Opened}
		}
	}
	after := t
	if st.Open {
		after = st.Closes
	}
	for _, sp := range spans {
		if sp.from.After(after) && (st.NextOpen.IsZero() || sp.from.Before(st.NextOpen)) {
			st.NextOpen = sp.from
		}
	}
	return st
}

// Zone is the schedule's time zone, for messages.
func (s *Schedule) Zone() *time.Location {
	if s == nil || s.loc == nil {
		return time.UTC
	}
	return s.loc
}
