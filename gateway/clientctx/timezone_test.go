package clientctx

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	january = time.Date(2026, time.January, 15, 12, 0, 0, 0, time.UTC)
	july    = time.Date(2026, time.July, 15, 12, 0, 0, 0, time.UTC)
)

// seedTimezones is the seed's list of time zones, verbatim.
var seedTimezones = []string{
	"UTC-12:00", "UTC-11:00", "UTC-10:00", "UTC-09:30", "UTC-09:00", "UTC-07:00",
	"UTC-06:00", "UTC-05:00", "UTC-04:00", "UTC-03:30", "UTC-03:00", "UTC-02:00",
	"UTC-01:00", "UTC+00:00", "UTC+01:00", "UTC+02:00", "UTC+03:00", "UTC+03:30",
	"UTC+04:00", "UTC+04:30", "UTC+05:00", "UTC+05:30", "UTC+05:45", "UTC+06:00",
	"UTC+06:30", "UTC+07:00", "UTC+08:00", "UTC+08:45", "UTC+09:00", "UTC+09:30",
	"UTC+10:00", "UTC+10:30", "UTC+11:00", "UTC+12:00", "UTC+12:45", "UTC+13:00",
	"UTC+14:00",
}

var canonicalShape = regexp.MustCompile(`^UTC[+-](0\d|1[0-4]):(00|15|30|45)$`)

func TestSeedTimezonesRoundTrip(t *testing.T) {
	for _, tz := range seedTimezones {
		got, minutes, ok := ParseTimezone([]byte(tz), january)
		if !ok || got != tz {
			t.Errorf("ParseTimezone(%q) = %q, %v; want itself", tz, got, ok)
		}
		sign, h, m := 1, int(tz[4]-'0')*10+int(tz[5]-'0'), int(tz[7]-'0')*10+int(tz[8]-'0')
		if tz[3] == '-' {
			sign = -1
		}
		if want := sign * (h*60 + m); minutes != want {
			t.Errorf("ParseTimezone(%q) offset = %d, want %d", tz, minutes, want)
		}
	}
}

func TestCanonicalTimezonesTable(t *testing.T) {
	seen := map[string]bool{}
	for i, tz := range canonicalTimezones {
		if !canonicalShape.MatchString(tz) {
			t.Errorf("entry %d = %q is not canonical", i, tz)
		}
		if seen[tz] {
			t.Errorf("%q appears twice", tz)
		}
		seen[tz] = true
		got, minutes, ok := ParseTimezone([]byte(tz), january)
		if !ok || got != tz || minutes != minOffsetMinutes+i*offsetStepMinutes {
			t.Errorf("ParseTimezone(%q) = %q, %d, %v", tz, got, minutes, ok)
		}
	}
	if canonicalTimezones[0] != "UTC-12:00" || canonicalTimezones[len(canonicalTimezones)-1] != "UTC+14:00" {
		t.Errorf("table runs %q..%q", canonicalTimezones[0], canonicalTimezones[len(canonicalTimezones)-1])
	}
	if _, _, ok := ParseTimezone([]byte("-00:00"), january); !ok {
		t.Error("-00:00 rejected")
	}
}

func TestParseTimezone(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		minutes int
	}{
		// Spellings apps send.
		{"UTC", "UTC+00:00", 0},
		{"utc", "UTC+00:00", 0},
		{"GMT", "UTC+00:00", 0},
		{"Z", "UTC+00:00", 0},
		{"z", "UTC+00:00", 0},
		{"UTC+3", "UTC+03:00", 180},
		{"UTC+03", "UTC+03:00", 180},
		{"UTC+0300", "UTC+03:00", 180},
		{"UTC+03:00", "UTC+03:00", 180},
		{"+03:00", "UTC+03:00", 180},
		{"+0300", "UTC+03:00", 180},
		{"+03", "UTC+03:00", 180},
		{"+3", "UTC+03:00", 180},
		{"GMT+3", "UTC+03:00", 180},
		{"gmt+3", "UTC+03:00", 180},
		{"GMT-03:30", "UTC-03:30", -210},
		{"utc-3:30", "UTC-03:30", -210},
		{"UTC+5:45", "UTC+05:45", 345},
		{"UTC-08:00", "UTC-08:00", -480},
		{"-0800", "UTC-08:00", -480},
		{"UTC-00:00", "UTC+00:00", 0},
		{"+00", "UTC+00:00", 0},
		{"UTC+14:00", "UTC+14:00", 840},
		{"UTC-12:00", "UTC-12:00", -720},
		{"UTC+13:45", "UTC+13:45", 825},
		{"  UTC+3\t", "UTC+03:00", 180},
		// IANA names (offsets that do not change with the season).
		{"Europe/Istanbul", "UTC+03:00", 180},
		{"Asia/Kolkata", "UTC+05:30", 330},
		{"Asia/Calcutta", "UTC+05:30", 330},
		{"Asia/Kathmandu", "UTC+05:45", 345},
		{"Australia/Eucla", "UTC+08:45", 525},
		{"Pacific/Kiritimati", "UTC+14:00", 840},
		{"Etc/GMT+12", "UTC-12:00", -720},
		{"Etc/GMT+3", "UTC-03:00", -180},
		{"Etc/UTC", "UTC+00:00", 0},
		{"America/Argentina/Buenos_Aires", "UTC-03:00", -180},
		{"America/Port-au-Prince", "UTC-05:00", -300},
		{"europe/istanbul", "UTC+03:00", 180},
		{"EUROPE/ISTANBUL", "UTC+03:00", 180},
		{" Europe/Istanbul\t", "UTC+03:00", 180},
	}
	for _, tt := range tests {
		got, minutes, ok := ParseTimezone([]byte(tt.in), january)
		if !ok || got != tt.want || minutes != tt.minutes {
			t.Errorf("ParseTimezone(%q) = %q, %d, %v; want %q, %d, true", tt.in, got, minutes, ok, tt.want, tt.minutes)
		}
	}
}

func TestParseTimezoneFollowsDaylightSaving(t *testing.T) {
	tests := []struct {
		name          string
		january, july string
	}{
		{"America/New_York", "UTC-05:00", "UTC-04:00"},
		{"America/Los_Angeles", "UTC-08:00", "UTC-07:00"},
		{"Europe/London", "UTC+00:00", "UTC+01:00"},
		{"Europe/Berlin", "UTC+01:00", "UTC+02:00"},
		{"Australia/Sydney", "UTC+11:00", "UTC+10:00"},
		{"Australia/Lord_Howe", "UTC+11:00", "UTC+10:30"},
		{"Pacific/Chatham", "UTC+13:45", "UTC+12:45"},
		{"America/St_Johns", "UTC-03:30", "UTC-02:30"},
		{"Europe/Istanbul", "UTC+03:00", "UTC+03:00"},
		{"Asia/Kathmandu", "UTC+05:45", "UTC+05:45"},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			now  time.Time
			want string
		}{{january, tt.january}, {july, tt.july}} {
			got, _, ok := ParseTimezone([]byte(tt.name), c.now)
			if !ok || got != c.want {
				t.Errorf("%s in %s = %q, %v; want %q", tt.name, c.now.Month(), got, ok, c.want)
			}
		}
	}
	// The switch itself: New York leaves standard time at 2026-03-08 07:00 UTC.
	before := time.Date(2026, time.March, 8, 6, 59, 0, 0, time.UTC)
	after := before.Add(2 * time.Minute)
	if got, _, _ := ParseTimezone([]byte("America/New_York"), before); got != "UTC-05:00" {
		t.Errorf("just before the switch: %q", got)
	}
	if got, _, _ := ParseTimezone([]byte("America/New_York"), after); got != "UTC-04:00" {
		t.Errorf("just after the switch: %q", got)
	}
}

func TestParseTimezoneRejects(t *testing.T) {
	tests := []string{
		"",
		"   ",
		// Out of range or off the 15-minute grid.
		"UTC+15", "UTC-13", "UTC+03:07", "UTC+3:60", "UTC+14:15", "UTC-12:30",
		"UTC+99", "+2400", "UTC+03:10", "UTC+05:50",
		// Malformed offsets.
		"3", "03:00", "UTC3", "UTC+", "+", "UTC+3:0", "UTC+030", "UTC+03:000", "UTC+03:00:00",
		"UTC +3", "UTC+ 3", "UTC+3.5", "UTC++3", "UTC+-3", "UTCGMT", "UTCZ", "ZZ", "GMT+3h",
		"UTC+３", "UTC−3", "ＵＴＣ", "+03:00Z",
		// IANA shape or membership.
		"Europe/Nowhere", "Europe", "Istanbul", "EST", "Japan", "Local", "UTC/",
		"/Europe/Istanbul", "Europe/Istanbul/", "Europe//Istanbul", "Europe/Istanbul/X/Y",
		"Europe/İstanbul", "Europe/Ｉstanbul", "Europe/Istanbul\u00a0", "Europe/Istanbul\v",
		"posix/Europe/Istanbul", "right/Europe/Istanbul",
		// Hostile values.
		"../../etc/passwd", "Europe/../../etc", "Europe/../Istanbul", "..", "./Europe/Istanbul",
		"Europe\\Istanbul", "C:\\Windows", "Europe/Istanbul\x00", "\x00", "Europe/Istan\x00bul",
		"UTC+3\r\nX-Evil: 1", "Europe/Istanbul\r\n", "\xff\xfe", "UTC+\xc3",
		"Asia/" + strings.Repeat("A", 200), strings.Repeat("UTC+3", 1000),
		"%2e%2e/etc", "Europe/Istanbul%00", "zoneinfo.zip", "Etc/GMT+3.5",
	}
	for _, in := range tests {
		got, minutes, ok := ParseTimezone([]byte(in), january)
		if ok || got != DefaultTimezone || minutes != 0 {
			t.Errorf("ParseTimezone(%q) = %q, %d, %v; want the default and false", in, got, minutes, ok)
		}
	}
	if got, _, ok := ParseTimezone(nil, january); ok || got != DefaultTimezone {
		t.Errorf("absent: %q, %v", got, ok)
	}
}

// A name resolving to a local mean time (only historical dates have one) has
// no canonical spelling.
func TestParseTimezoneRejectsHistoricalOffsets(t *testing.T) {
	longAgo := time.Date(1850, time.January, 1, 0, 0, 0, 0, time.UTC)
	if got, _, ok := ParseTimezone([]byte("Europe/Istanbul"), longAgo); ok {
		t.Errorf("Istanbul in 1850 (local mean time +01:56:56) gave %q", got)
	}
}

func TestZoneNameShape(t *testing.T) {
	for _, name := range ianaZoneNames {
		if !zoneNameShape([]byte(name)) {
			t.Errorf("listed name %q fails the shape check", name)
		}
	}
	bad := []string{"", "a", "a/", "/a", "a//b", "a/b/c/d", "a/../b", "a/.b", "a\\b", "a/b\x00", "a/b c", "a/é"}
	for _, name := range bad {
		if zoneNameShape([]byte(name)) {
			t.Errorf("%q passes the shape check", name)
		}
	}
}

// Many requests resolving zones for the first time at once must agree and
// not race (run with -race).
func TestZoneLoadingConcurrently(t *testing.T) {
	names := []string{"Asia/Tokyo", "America/Sao_Paulo", "Africa/Lagos", "Pacific/Auckland"}
	want := map[string]string{
		"Asia/Tokyo": "UTC+09:00", "America/Sao_Paulo": "UTC-03:00",
		"Africa/Lagos": "UTC+01:00", "Pacific/Auckland": "UTC+13:00",
	}
	for _, name := range names {
		zoneLocations[zoneIndex[strings.ToLower(name)]].Store(nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				name := names[(g+i)%len(names)]
				if got, _, ok := ParseTimezone([]byte(name), january); !ok || got != want[name] {
					errs <- name + " gave " + got
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// An unloadable listed name (not possible with the embedded data, but the
// cache must cope) is remembered as such and rejected.
func TestUnloadableZoneIsRejected(t *testing.T) {
	i := zoneIndex["asia/tokyo"]
	t.Cleanup(func() { zoneLocations[i].Store(nil) })
	zoneLocations[i].Store(unloadableZone)
	if got, _, ok := ParseTimezone([]byte("Asia/Tokyo"), january); ok {
		t.Errorf("unloadable zone gave %q", got)
	}
}
