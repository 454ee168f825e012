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
		"the later of two touching windows":                    {touching, "UTC", "2026-12-08 01:00", true, "2026-12-08 00:00", "2026-12-08 02:00", "2026-12-14 20:00"},
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
	if !st.Open || !st.NextOpen.IsZero() || st.Closes.Before(at(t, "UTC", "2026-12-15 00:00")) {
		t.Errorf("open all week: %+v; want open, closing no sooner than a week, no next opening", st)
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
