package upstream

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
)

// FuzzPlainUsernameCheck: for any answer of the store and any name asked,
// the byte-for-byte reading of the common answer either declines or
// decides exactly as encoding/json and the checks (strictUsernameCheck)
// do: the same availability, the same refusal.
func FuzzPlainUsernameCheck(f *testing.F) {
	for _, c := range []struct{ body, asked string }{
		{`{"username":"johndoe123","available":true}`, "johndoe123"},
		{`{"username":"johndoe123","available":false}` + "\n", "johndoe123"},
		{`{"username":"JohnDoe123","available":true}`, "johndoe123"},
		{`{"username":"Şükrü","available":true}`, "sukru"},
		{`{"username":"other","available":true}`, "johndoe123"},
		{`{"username":"johndoe123","available":true}` + "\n\n", "johndoe123"},
		{`{"username":"johndoe123","available":true} `, "johndoe123"},
		{`{"username":"johndoe123","available":true}x`, "johndoe123"},
		{`{"username":"johndoe123","available":true,"available":false}`, "johndoe123"},
		{`{"username":"johndoe123","available":"true"}`, "johndoe123"},
		{`{"username":"johndoe123","available":1}`, "johndoe123"},
		{`{"username":"johndoe123","available":null}`, "johndoe123"},
		{`{"username":"johndoe123","AVAILABLE":true}`, "johndoe123"},
		{`{"USERNAME":"johndoe123","available":true}`, "johndoe123"},
		{`{"username":"john\"doe","available":true}`, `john"doe`},
		{`{"username":"john\u0064oe","available":true}`, "johndoe"},
		{`{"username":"a","available":true}{}`, "a"},
		{`{"username":"a","available":true`, "a"},
		{`{"username":"a" ,"available":true}`, "a"},
		{`{"username":"a","available":tru}`, "a"},
		{`{"username":"a","available":true}` + "\r\n", "a"},
		{`{"username":"a` + "\t" + `","available":true}`, "a\t"},
		{`{"username":"a` + "\xff" + `","available":true}`, "a\xff"},
		{`{"username":"` + strings.Repeat("a", 4096) + `","available":false}`, strings.Repeat("a", 4096)},
	} {
		f.Add([]byte(c.body), c.asked)
	}
	f.Fuzz(func(t *testing.T, body []byte, asked string) {
		if _, _, ok := plainUsernameCheck(body); !ok {
			return
		}
		got, gotErr := decodeUsernameCheck(body, asked)
		want, wantErr := strictUsernameCheck(body, asked)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q asked %q: fast path %v (%v), strict path %v (%v)", body, asked, got, gotErr, want, wantErr)
		}
		if gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("%q asked %q: fast path refuses with %q, strict path with %q", body, asked, gotErr, wantErr)
		}
	})
}

// FuzzUsernameCheckBody: the body written by hand for the store decodes,
// by encoding/json, to exactly the name json.Marshal's body decodes to,
// and is valid JSON, whatever the name.
func FuzzUsernameCheckBody(f *testing.F) {
	for _, name := range []string{"johndoe123", "", "a.b_c", `quo"te`, `back\slash`, "new\nline", "tab\t", "şükrü",
		"<script>&", "del\x7f", "x y", "\xff", "\xed\xa0\x80", "\u2028", "~", " "} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		b, err := appendUsernameCheckBody(nil, name)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if after, _ := appendUsernameCheckBody([]byte("x"), name); string(after) != "x"+string(b) {
			t.Fatalf("%q: appended to %q: %q, want %q", name, "x", after, "x"+string(b))
		}
		ref, err := json.Marshal(contract.UsernameCheckRequest{Username: name})
		if err != nil {
			t.Fatal(err)
		}
		var got, want contract.UsernameCheckRequest
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: body %q is not valid JSON: %v", name, b, err)
		}
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%q: body %q decodes to %q, json.Marshal's %q to %q", name, b, got.Username, ref, want.Username)
		}
	})
}

// RFC 3339 (section 5.6) allows "t" and "z" in lower case; time.Parse
// does not. Such a time is still one the store may send: it reaches the
// apps in their form, never as a 502.
func TestCanonicalTimeAcceptsLowerCaseTAndZ(t *testing.T) {
	for in, want := range map[string]string{
		"2026-05-22t15:30:00.000Z":      "2026-05-22T15:30:00.000Z",
		"2026-05-22T15:30:00.000z":      "2026-05-22T15:30:00.000Z",
		"2026-05-22t15:30:00z":          "2026-05-22T15:30:00.000Z",
		"2026-05-22t18:30:00.5+03:00":   "2026-05-22T15:30:00.500Z",
		"2026-05-22T15:30:00.000Z":      "2026-05-22T15:30:00.000Z",
		"2026-05-22T12:00:00.000-03:30": "2026-05-22T15:30:00.000Z",
	} {
		s := in
		if err := canonicalTime("createdAt", &s); err != nil || s != want {
			t.Errorf("canonicalTime(%q) = %q, %v; want %q", in, s, err, want)
		}
	}
	for _, in := range []string{"2026-05-22 15:30:00Z", "2026-05-22x15:30:00Z", "2026-05-22t15:30:00", "z", "t"} {
		s := in
		if err := canonicalTime("createdAt", &s); err == nil {
			t.Errorf("canonicalTime(%q) accepted as %q", in, s)
		}
	}
}

// FuzzCanonicalTime: a time canonicalTime accepts is an RFC 3339 time and
// comes out in the apps' form (apiTime: four-digit year, milliseconds, Z)
// as the instant sent, cut to the millisecond; and every RFC 3339 time
// (section 5.6, with its lower-case "t" and "z") is accepted, unless it is
// a leap second (:60, which time.Parse does not read) or its instant has
// no such form in UTC. What is an RFC 3339 time, and which instant, is
// read by readRFC3339, from the RFC's grammar: time.Parse, which
// canonicalTime uses, reads more (a comma before the fraction, a one-digit
// hour, an offset of 24 hours or of 60 minutes), so it cannot be the
// oracle.
func FuzzCanonicalTime(f *testing.F) {
	for _, s := range []string{
		"", "z", "t", "2026-05-22T15:30:00.000Z", "2026-05-22t15:30:00z", "2026-05-22t18:30:00.5+03:00",
		"2026-05-22T12:00:00.000-03:30", "2026-05-22 15:30:00Z", "2026-05-22T15:30:00", "2026-05-22T15:30:00,123Z",
		"2026-05-22T1:30:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-29T23:59:59.9999+23:59",
		"2026-05-22T15:30:00.123456789-00:00", "2026-05-22T15:30:00.000+00:00", "2026-05-22T15:30:00,5+03:00",
		"2026-05-22T15:30:00+24:00", "2026-05-22T15:30:00-02:60", "2016-12-31T23:59:60Z", "2026-02-29T00:00:00Z",
		"2026-05-22T15:30:00.Z", "0000-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "2026-05-22T15:30:00.1234567891234Z",
	} {
		f.Add(s)
	}
	form := regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`)
	f.Fuzz(func(t *testing.T, in string) {
		want, leap, isTime := readRFC3339(in)
		representable := isTime && !leap && want.Year() >= 0 && want.Year() <= 9999

		out := in
		err := canonicalTime("createdAt", &out)
		if err != nil {
			if representable {
				t.Fatalf("canonicalTime(%q) refused an RFC 3339 time, %v: %v", in, want, err)
			}
			if out != in {
				t.Fatalf("canonicalTime(%q) failed but changed it to %q", in, out)
			}
			return
		}
		if !representable {
			t.Fatalf("canonicalTime(%q) = %q, but it is no RFC 3339 time in the years 0000 to 9999 UTC (time %v, leap second %v, %v)", in, out, isTime, leap, want)
		}
		if !form.MatchString(out) {
			t.Fatalf("canonicalTime(%q) = %q, not in the form %s", in, out, apiTime)
		}
		got, _, _ := readRFC3339(out)
		if cut := want.Add(-time.Duration(want.Nanosecond() % int(time.Millisecond))); !got.Equal(cut) {
			t.Fatalf("canonicalTime(%q) = %q, not the instant sent cut to the millisecond (%v)", in, out, cut)
		}
	})
}

// rfc3339 is RFC 3339's date-time (section 5.6), "t" and "z" in either
// case; the ranges of its numbers are readRFC3339's to check.
var rfc3339 = regexp.MustCompile(`^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))$`)

// readRFC3339 reads s by RFC 3339's grammar and ranges, without
// time.Parse: whether it is an RFC 3339 time, and its instant in UTC. A
// leap second (second 60, which the RFC allows) is reported, and its
// instant left zero.
func readRFC3339(s string) (instant time.Time, leap, ok bool) {
	m := rfc3339.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false, false
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	year, month, day, hour, minute, second := n(1), n(2), n(3), n(4), n(5), n(6)
	if month < 1 || month > 12 || day < 1 || day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() ||
		hour > 23 || minute > 59 || second > 60 {
		return time.Time{}, false, false
	}
	offset := 0 // minutes east of UTC
	if m[8] != "" {
		if n(9) > 23 || n(10) > 59 {
			return time.Time{}, false, false
		}
		if offset = n(9)*60 + n(10); m[8] == "-" {
			offset = -offset
		}
	}
	if second == 60 {
		return time.Time{}, true, true
	}
	nanos, _ := strconv.Atoi((m[7] + "000000000")[:9])
	return time.Date(year, time.Month(month), day, hour, minute, second, nanos, time.UTC).Add(-time.Duration(offset) * time.Minute), false, true
}
