package clientctx

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// FuzzNormalize checks, for any header values: no panic, every field in its
// canonical shape, canonical values reading back as themselves, and no
// result sharing memory with the input buffers. `go test` runs only the seed
// corpus; `go test -fuzz FuzzNormalize ./gateway/clientctx` explores.
func FuzzNormalize(f *testing.F) {
	f.Add("tr", "en", "Europe/Istanbul", "ios", "1.2.3", "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11", int64(0))
	f.Add("", "de-DE,tr;q=0.7", "America/New_York", "", "", "", int64(1784000000))
	f.Add("*", "en;q=0, *", "UTC+05:45", "mobile-android", "4.0.0-beta.1+build.7", "aa:bb", int64(-1))
	f.Add("../../etc/passwd", "\x00", "Europe/../../etc", "all", strings.Repeat("9", 40), "a\r\nb", int64(1))
	f.Add("TR\u0130", "tr;q=0.1234", "UTC+３", "admİn", "\xff", "\xfe", int64(1<<40))
	f.Add("tr_TR", "tr;q=0,en;q=0", "GMT-03:30", " Admin ", " 2.0 ", " id ", int64(1700000000))
	f.Add("en-GB,tr;q=0.5", "", "Etc/GMT+12", "unknown", "v", "x", int64(-2208988800))
	f.Add(strings.Repeat("tr,", 400), strings.Repeat("de,", 400)+"tr", "Pacific/Chatham", "WEB", "", "", int64(1767225600))
	f.Add("", "", "UTC+14:00", "api", "", "", int64(0))
	f.Add("", "", "utc-3:30", "browser", "", "", int64(0))
	f.Add("", "", "Asia/Kathmandu", "iphone", "", "", int64(4102444800))

	f.Fuzz(func(t *testing.T, xLanguage, acceptLanguage, tz, platform, version, device string, unix int64) {
		in := fakeRawHeaders{
			HeaderLanguage: []byte(xLanguage), HeaderAcceptLanguage: []byte(acceptLanguage),
			HeaderTimezone: []byte(tz), HeaderPlatform: []byte(platform),
			HeaderAppVersion: []byte(version), HeaderDeviceID: []byte(device),
		}
		now := time.Unix(unix, 0)
		c := Normalize(in, now)
		before := cloneContext(c)

		// The caller reuses its buffers: nothing may change.
		for _, b := range in {
			for i := range b {
				b[i] = 'X'
			}
		}
		if cloneContext(c) != before {
			t.Fatalf("Context shares memory with the headers: %+v became %+v", before, c)
		}

		if c.Language != LanguageEN && c.Language != LanguageTR {
			t.Fatalf("language %d", c.Language)
		}
		if ParseLanguage([]byte(c.Language.String()), nil) != c.Language {
			t.Fatalf("language %q does not read back", c.Language)
		}
		got, minutes, ok := ParseTimezone([]byte(c.Timezone), now)
		if !ok || got != c.Timezone || minutes != c.OffsetMinutes || !canonicalShape.MatchString(c.Timezone) {
			t.Fatalf("time zone %q (%d) is not canonical", c.Timezone, c.OffsetMinutes)
		}
		if c.Platform > PlatformUnknown || ParsePlatform([]byte(c.Platform.String())) != c.Platform {
			t.Fatalf("platform %d (%q)", c.Platform, c.Platform)
		}
		if c.AppVersion != "" {
			if v, ok := ParseAppVersion([]byte(c.AppVersion)); !ok || v != c.AppVersion {
				t.Fatalf("app version %q is not valid", c.AppVersion)
			}
			if c.AppVersion != string(bytes.TrimSpace([]byte(version))) {
				t.Fatalf("app version %q is not the one sent (%q)", c.AppVersion, version)
			}
		}
		if c.DeviceID != "" {
			if v, ok := ParseDeviceID([]byte(c.DeviceID)); !ok || v != c.DeviceID {
				t.Fatalf("device id %q is not valid", c.DeviceID)
			}
		}
		if c.Rejected&^(FieldLanguage|FieldTimezone|FieldPlatform|FieldAppVersion|FieldDeviceID) != 0 {
			t.Fatalf("rejected %b", c.Rejected)
		}
		_, _, tzOK := ParseTimezone([]byte(tz), now)
		if want := !tzOK && sent([]byte(tz)); c.Rejected.Has(FieldTimezone) != want {
			t.Fatalf("time zone %q: rejected=%v, want %v", tz, c.Rejected.Has(FieldTimezone), want)
		}
	})
}

// fakeRawHeaders hands out its own buffers, as fasthttp does.
type fakeRawHeaders map[string][]byte

func (h fakeRawHeaders) Peek(name string) []byte { return h[name] }

// cloneContext copies the strings of c into fresh memory.
func cloneContext(c Context) Context {
	c.Timezone = strings.Clone(c.Timezone)
	c.AppVersion = strings.Clone(c.AppVersion)
	c.DeviceID = strings.Clone(c.DeviceID)
	return c
}
