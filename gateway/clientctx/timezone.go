package clientctx

import (
	"sync/atomic"
	"time"

	// Embed the tz database so IANA names resolve in a container that has no
	// zoneinfo files.
	_ "time/tzdata"
)

//go:generate go test -run TestZoneNamesMatchToolchain -update

// DefaultTimezone is the time zone of a request that sent none, or an
// invalid one.
const DefaultTimezone = "UTC+00:00"

// The offsets in use on Earth, in minutes east of UTC.
const (
	minOffsetMinutes  = -12 * 60
	maxOffsetMinutes  = 14 * 60
	offsetStepMinutes = 15
)

// maxTimezoneBytes bounds the accepted value; the longest IANA name is 32.
const maxTimezoneBytes = 64

// canonicalTimezones holds "UTC±HH:MM" for every valid offset, indexed by
// (offset-minOffsetMinutes)/offsetStepMinutes, so that parsing never builds
// a string.
var canonicalTimezones = func() (t [(maxOffsetMinutes-minOffsetMinutes)/offsetStepMinutes + 1]string) {
	for i := range t {
		m := minOffsetMinutes + i*offsetStepMinutes
		sign := byte('+')
		if m < 0 {
			sign, m = '-', -m
		}
		h, mm := m/60, m%60
		t[i] = string([]byte{'U', 'T', 'C', sign, '0' + byte(h/10), '0' + byte(h%10), ':', '0' + byte(mm/10), '0' + byte(mm%10)})
	}
	return t
}()

// canonicalTimezone gives the canonical spelling of an offset, if valid.
func canonicalTimezone(minutes int) (string, bool) {
	if minutes < minOffsetMinutes || minutes > maxOffsetMinutes || minutes%offsetStepMinutes != 0 {
		return "", false
	}
	return canonicalTimezones[(minutes-minOffsetMinutes)/offsetStepMinutes], true
}

// ParseTimezone reads an X-Timezone value: an offset in one of the accepted
// spellings, or an IANA zone name resolved at now. It returns the canonical
// "UTC±HH:MM" spelling and the offset in minutes east of UTC. ok is false when
// v is empty or invalid; the result is then DefaultTimezone and 0.
func ParseTimezone(v []byte, now time.Time) (canonical string, offsetMinutes int, ok bool) {
	v = TrimOWS(v)
	if len(v) == 0 || len(v) > maxTimezoneBytes {
		return DefaultTimezone, 0, false
	}
	minutes, ok := parseOffset(v)
	if !ok {
		minutes, ok = zoneOffset(v, now)
	}
	if ok {
		if canonical, ok = canonicalTimezone(minutes); ok {
			return canonical, minutes, true
		}
	}
	return DefaultTimezone, 0, false
}

// parseOffset reads the UTC/GMT/Z and numeric offset spellings (see the
// package doc).
func parseOffset(v []byte) (minutes int, ok bool) {
	if EqualFoldASCII(v, "utc") || EqualFoldASCII(v, "gmt") || EqualFoldASCII(v, "z") {
		return 0, true
	}
	if len(v) > 3 && (EqualFoldASCII(v[:3], "utc") || EqualFoldASCII(v[:3], "gmt")) {
		v = v[3:]
	}
	if len(v) < 2 || (v[0] != '+' && v[0] != '-') {
		return 0, false
	}
	negative, d := v[0] == '-', v[1:]
	var h, m int
	switch {
	case len(d) == 1 && isDigit(d[0]): // H
		h = digit(d[0])
	case len(d) == 2 && isDigit(d[0]) && isDigit(d[1]): // HH
		h = 10*digit(d[0]) + digit(d[1])
	case len(d) == 4 && isDigit(d[0]) && isDigit(d[1]) && isDigit(d[2]) && isDigit(d[3]): // HHMM
		h, m = 10*digit(d[0])+digit(d[1]), 10*digit(d[2])+digit(d[3])
	case len(d) == 4 && isDigit(d[0]) && d[1] == ':' && isDigit(d[2]) && isDigit(d[3]): // H:MM
		h, m = digit(d[0]), 10*digit(d[2])+digit(d[3])
	case len(d) == 5 && isDigit(d[0]) && isDigit(d[1]) && d[2] == ':' && isDigit(d[3]) && isDigit(d[4]): // HH:MM
		h, m = 10*digit(d[0])+digit(d[1]), 10*digit(d[3])+digit(d[4])
	default:
		return 0, false
	}
	if m >= 60 {
		return 0, false
	}
	minutes = h*60 + m
	if negative {
		minutes = -minutes
	}
	return minutes, true // the range and the 15-minute step are checked by the caller
}

func digit(c byte) int { return int(c - '0') }

// zoneOffset resolves an IANA zone name to its offset at now.
func zoneOffset(name []byte, now time.Time) (minutes int, ok bool) {
	var lower [maxTimezoneBytes]byte
	if !zoneNameShape(name) {
		return 0, false
	}
	for i, c := range name {
		lower[i] = toLowerASCII(c)
	}
	i, known := zoneIndex[string(lower[:len(name)])]
	if !known {
		return 0, false
	}
	loc := loadZone(i)
	if loc == nil {
		return 0, false
	}
	_, seconds := now.In(loc).Zone()
	if seconds%60 != 0 {
		return 0, false // local mean time of a historical date
	}
	return seconds / 60, true
}

// zoneNameShape reports whether name looks like an IANA zone name: at most
// maxTimezoneBytes of ASCII letters, digits, "_", "+" and "-", in two or three
// non-empty segments joined by "/".
func zoneNameShape(name []byte) bool {
	if len(name) == 0 || len(name) > maxTimezoneBytes {
		return false
	}
	slashes, segment := 0, 0
	for _, c := range name {
		switch {
		case c == '/':
			if segment == 0 {
				return false
			}
			slashes++
			segment = 0
			continue
		case isLetter(c), isDigit(c), c == '_', c == '+', c == '-':
		default:
			return false
		}
		segment++
	}
	return segment > 0 && (slashes == 1 || slashes == 2)
}

// zoneIndex maps each lower-cased name of ianaZoneNames to its index. IANA
// names are unique regardless of case, which the tests check.
var zoneIndex = func() map[string]int {
	m := make(map[string]int, len(ianaZoneNames))
	for i, name := range ianaZoneNames {
		lower := []byte(name)
		for j, c := range lower {
			lower[j] = toLowerASCII(c)
		}
		m[string(lower)] = i
	}
	return m
}()

// zoneLocations caches the loaded location of each listed name; its size is
// fixed by the list, so no input can make it grow. A name that failed to load
// holds unloadableZone.
var (
	zoneLocations  [len(ianaZoneNames)]atomic.Pointer[time.Location]
	unloadableZone = new(time.Location)
)

// loadZone gives the location of ianaZoneNames[i], loading it on first use;
// nil when it cannot be loaded. Two first uses may race to load it: both load
// the same data and one result is kept.
func loadZone(i int) *time.Location {
	loc := zoneLocations[i].Load()
	if loc == nil {
		loaded, err := time.LoadLocation(ianaZoneNames[i])
		if err != nil {
			loaded = unloadableZone
		}
		zoneLocations[i].CompareAndSwap(nil, loaded)
		loc = zoneLocations[i].Load()
	}
	if loc == unloadableZone {
		return nil
	}
	return loc
}
