package upstream

import (
	"encoding/json"
	"regexp"
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

// FuzzCanonicalTime: a time canonicalTime accepts comes out in the apps'
// form (apiTime: four-digit year, milliseconds, Z), reads back with
// time.RFC3339Nano as the instant sent, cut to the millisecond; and every
// time time.Parse(time.RFC3339Nano) reads (with RFC 3339's lower-case "t"
// and "z" too) is accepted, unless its instant has no such form in UTC.
func FuzzCanonicalTime(f *testing.F) {
	for _, s := range []string{
		"", "z", "t", "2026-05-22T15:30:00.000Z", "2026-05-22t15:30:00z", "2026-05-22t18:30:00.5+03:00",
		"2026-05-22T12:00:00.000-03:30", "2026-05-22 15:30:00Z", "2026-05-22T15:30:00", "2026-05-22T15:30:00,123Z",
		"2026-05-22T1:30:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-29T23:59:59.9999+23:59",
		"2026-05-22T15:30:00.123456789-00:00", "2026-05-22T15:30:00.000+00:00",
	} {
		f.Add(s)
	}
	form := regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`)
	f.Fuzz(func(t *testing.T, in string) {
		// RFC 3339 with "t" and "z" in either case, as time.Parse reads it.
		v := []byte(in)
		if len(v) > 10 && v[10] == 't' {
			v[10] = 'T'
		}
		if len(v) > 0 && v[len(v)-1] == 'z' {
			v[len(v)-1] = 'Z'
		}
		want, perr := time.Parse(time.RFC3339Nano, string(v))
		representable := perr == nil && want.UTC().Year() >= 0 && want.UTC().Year() <= 9999

		out := in
		err := canonicalTime("createdAt", &out)
		if err != nil {
			if representable {
				t.Fatalf("canonicalTime(%q) refused a time time.Parse reads as %v: %v", in, want, err)
			}
			if out != in {
				t.Fatalf("canonicalTime(%q) failed but changed it to %q", in, out)
			}
			return
		}
		if !representable {
			t.Fatalf("canonicalTime(%q) = %q, but time.Parse reads it as %v, %v", in, out, want, perr)
		}
		if !form.MatchString(out) {
			t.Fatalf("canonicalTime(%q) = %q, not in the form %s", in, out, apiTime)
		}
		got, err := time.Parse(time.RFC3339Nano, out)
		if err != nil {
			t.Fatalf("canonicalTime(%q) = %q, which does not parse: %v", in, out, err)
		}
		if !got.Equal(want.Truncate(time.Millisecond)) {
			t.Fatalf("canonicalTime(%q) = %q, not the instant sent (%v)", in, out, want)
		}
	})
}
