package schedule

import (
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

func mustParse(t *testing.T, s *v1alpha1.Schedule) *Schedule {
	t.Helper()
	p, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func at(t *testing.T, loc, s string) time.Time {
	t.Helper()
	l, err := time.LoadLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, l)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestStateOfAWeek(t *testing.T) {
	nightly := &v1alpha1.Schedule{TimeZone: "Europe/Berlin", Windows: []v1alpha1.Window{{Start: "22:00", End: "04:00"}}}
	weekend := &v1alpha1.Schedule{TimeZone: "America/New_York", Windows: []v1alpha1.Window{{Days: []v1alpha1.Weekday{"Sat"}, Start: "22:00", End: "04:00"}}}
	touching := &v1alpha1.Schedule{Windows: []v1alpha1.Window{{Days: []v1alpha1.Weekday{"Mon"}, Start: "20:00", End: "24:00"}, {Days: []v1alpha1.Weekday{"Tue"}, Start: "00:00", End: "02:00"}}}
	// 2026-12-05 is a Saturday.
	cases := map[string]struct {
		schedule                 *v1alpha1.Schedule
		zone, now                string
		open                     bool
		opened, closes, nextOpen string // in zone; "" for zero
	}{
		"inside a window that spans midnight, before midnight": {nightly, "Europe/Berlin", "2026-12-07 23:00", true, "2026-12-07 22:00", "2026-12-08 04:00", "2026-12-08 22:00"},
		"inside it, after midnight":                            {nightly, "Europe/Berlin", "2026-12-08 03:59", true, "2026-12-07 22:00", "2026-12-08 04:00", "2026-12-08 22:00"},
		"at its end, closed":                                   {nightly, "Europe/Berlin", "2026-12-08 04:00", false, "", "", "2026-12-08 22:00"},
		"at its start, open":                                   {nightly, "Europe/Berlin", "2026-12-08 22:00", true, "2026-12-08 22:00", "2026-12-09 04:00", "2026-12-09 22:00"},
		"midday":                                               {nightly, "Europe/Berlin", "2026-12-08 12:00", false, "", "", "2026-12-08 22:00"},
		"read in its own zone, not UTC":                        {nightly, "UTC", "2026-12-08 21:30", true, "2026-12-08 21:00", "2026-12-09 03:00", "2026-12-09 21:00"},
		"a Saturday window, Sunday morning":                    {weekend, "America/New_York", "2026-12-06 03:00", true, "2026-12-05 22:00", "2026-12-06 04:00", "2026-12-12 22:00"},
		"a Saturday window, Sunday noon":                       {weekend, "America/New_York", "2026-12-06 12:00", false, "", "", "2026-12-12 22:00"},
		"a Saturday window, Friday night":                      {weekend, "America/New_York", "2026-12-11 23:00", false, "", "", "2026-12-12 22:00"},
		"windows that touch are one":                           {touching, "UTC", "2026-12-07 23:00", true, "2026-12-07 20:00", "2026-12-08 02:00", "2026-12-14 20:00"},
		"the later of two touching windows":                    {touching, "UTC", "2026-12-08 01:00", true, "2026-12-07 20:00", "2026-12-08 02:00", "2026-12-14 20:00"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := mustParse(t, c.schedule).At(at(t, c.zone, c.now))
			want := func(s string) time.Time {
				if s == "" {
					return time.Time{}
				}
				return at(t, c.zone, s)
			}
			if got.Open != c.open || !got.Opened.Equal(want(c.opened)) || !got.Closes.Equal(want(c.closes)) || !got.NextOpen.Equal(want(c.nextOpen)) {
				t.Errorf("At(%s %s) = %+v; want open %v, opened %s, closes %s, next %s", c.now, c.zone, got, c.open, c.opened, c.closes, c.nextOpen)
			}
		})
	}
}

func TestNoScheduleIsAlwaysOpen(t *testing.T) {
	s := mustParse(t, nil)
	if st := s.At(time.Now()); !st.Open || !s.DiskAnytime {
		t.Errorf("no schedule: %+v, disk anytime %v; want open", st, s.DiskAnytime)
	}
}

func TestAWindowOpenAllWeekHasNoNextOpening(t *testing.T) {
	s := mustParse(t, &v1alpha1.Schedule{Windows: []v1alpha1.Window{{Start: "00:00", End: "24:00"}}})
	st := s.At(at(t, "UTC", "2026-12-08 12:00"))
	if !st.Open || !st.NextOpen.IsZero() || !st.Closes.IsZero() {
		t.Errorf("open all week: %+v; want open, never closing, no next opening", st)
	}
}

// The windows are wall-clock times: on the night the clocks go forward a
// window from 01:00 to 05:00 is open for three hours.
func TestAWindowIsWallClockTimeAcrossAClockChange(t *testing.T) {
	s := mustParse(t, &v1alpha1.Schedule{TimeZone: "Europe/Berlin", Windows: []v1alpha1.Window{{Start: "01:00", End: "05:00"}}})
	st := s.At(at(t, "Europe/Berlin", "2026-03-29 01:30"))
	if !st.Open || st.Closes.Sub(st.Opened) != 3*time.Hour {
		t.Errorf("on 2026-03-29 in Berlin: %+v; want open for 3h", st)
	}
}

func TestDiskPressure(t *testing.T) {
	w := []v1alpha1.Window{{Start: "22:00", End: "04:00"}}
	for policy, want := range map[v1alpha1.DiskPressureSweeps]bool{"": true, v1alpha1.DiskPressureAnytime: true, v1alpha1.DiskPressureInWindows: false} {
		if got := mustParse(t, &v1alpha1.Schedule{Windows: w, DiskPressure: policy}).DiskAnytime; got != want {
			t.Errorf("diskPressure %q: anytime %v, want %v", policy, got, want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	w := []v1alpha1.Window{{Start: "22:00", End: "04:00"}}
	for _, c := range []struct {
		schedule v1alpha1.Schedule
		want     string
	}{
		{v1alpha1.Schedule{TimeZone: "Mars/Olympus_Mons", Windows: w}, `unknown time zone "Mars/Olympus_Mons"`},
		{v1alpha1.Schedule{TimeZone: "Local", Windows: w}, "each node's own time zone"},
		{v1alpha1.Schedule{}, "at least one window"},
		{v1alpha1.Schedule{Windows: []v1alpha1.Window{{Start: "24:00", End: "04:00"}}}, `start: "24:00" is not a time of day`},
		{v1alpha1.Schedule{Windows: []v1alpha1.Window{{Start: "04:00", End: "04:00"}}}, "must differ"},
		{v1alpha1.Schedule{Windows: []v1alpha1.Window{{Days: []v1alpha1.Weekday{"Monday"}, Start: "01:00", End: "04:00"}}}, `"Monday" is not a day`},
	} {
		if _, err := Parse(&c.schedule); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%+v) = %v; want an error with %q", c.schedule, err, c.want)
		}
	}
}

// Wall-clock times on the nights the clocks change, on both sides of UTC
// (time.Date alone resolves them one way east of UTC and the other west):
// a time the clocks skip counts from the instant they jump, a time they
// show twice counts the second time, and a window's day is the calendar's
// even where midnight is skipped.
func TestClockChangesOnEitherSideOfUTC(t *testing.T) {
	utc := func(s string) time.Time { return at(t, "UTC", s) }
	spring := mustParse(t, &v1alpha1.Schedule{TimeZone: "America/New_York", Windows: []v1alpha1.Window{{Start: "02:00", End: "04:00"}}})
	fall := mustParse(t, &v1alpha1.Schedule{TimeZone: "America/New_York", Windows: []v1alpha1.Window{{Start: "01:30", End: "03:00"}}})
	berlin := mustParse(t, &v1alpha1.Schedule{TimeZone: "Europe/Berlin", Windows: []v1alpha1.Window{{Start: "02:30", End: "04:00"}}})
	saturday := mustParse(t, &v1alpha1.Schedule{TimeZone: "America/Santiago", Windows: []v1alpha1.Window{{Days: []v1alpha1.Weekday{"Sat"}, Start: "10:00", End: "14:00"}}})
	sunday := mustParse(t, &v1alpha1.Schedule{TimeZone: "America/Santiago", Windows: []v1alpha1.Window{{Days: []v1alpha1.Weekday{"Sun"}, Start: "10:00", End: "14:00"}}})
	for name, c := range map[string]struct {
		s      *Schedule
		now    time.Time
		open   bool
		opened time.Time
	}{
		// 2026-03-08: New York's clocks jump from 02:00 EST (07:00 UTC) to 03:00 EDT.
		"New York, an hour before the jump": {spring, utc("2026-03-08 06:15"), false, time.Time{}},
		"New York, after the jump":          {spring, utc("2026-03-08 07:10"), true, utc("2026-03-08 07:00")},
		// 2026-11-01: 01:30 comes twice, at 05:30 UTC (EDT) and 06:30 UTC (EST).
		"New York, the first 01:30":  {fall, utc("2026-11-01 05:45"), false, time.Time{}},
		"New York, the second 01:30": {fall, utc("2026-11-01 06:45"), true, utc("2026-11-01 06:30")},
		// 2026-03-29: Berlin's clocks jump from 02:00 CET (01:00 UTC) to 03:00 CEST.
		"Berlin, 02:30 counts from the jump": {berlin, utc("2026-03-29 01:05"), true, utc("2026-03-29 01:00")},
		// 2026-09-06, a Sunday: Santiago's midnight is skipped.
		"Santiago, a Saturday window on Sunday": {saturday, at(t, "America/Santiago", "2026-09-06 11:00"), false, time.Time{}},
		"Santiago, a Sunday window on Sunday":   {sunday, at(t, "America/Santiago", "2026-09-06 11:00"), true, at(t, "America/Santiago", "2026-09-06 10:00")},
	} {
		st := c.s.At(c.now)
		if st.Open != c.open || !st.Opened.Equal(c.opened) {
			t.Errorf("%s: At(%s) = %+v; want open %v, opened %s", name, c.now.UTC(), st, c.open, c.opened.UTC())
		}
	}
}
