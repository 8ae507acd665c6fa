package clientctx_test

import (
	"bufio"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/bffgate/edge/gateway/clientctx"
)

// fasthttp's request header is what the gateway passes in production.
var _ clientctx.Headers = (*fasthttp.RequestHeader)(nil)

// fakeHeaders is a request's headers by canonical name; absent names give nil
// like fasthttp does.
type fakeHeaders map[string]string

func (h fakeHeaders) Peek(name string) []byte {
	v, ok := h[name]
	if !ok {
		return nil
	}
	return []byte(v)
}

var january = time.Date(2026, time.January, 15, 12, 0, 0, 0, time.UTC)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		headers fakeHeaders
		want    clientctx.Context
	}{
		{
			name:    "no headers",
			headers: fakeHeaders{},
			want:    clientctx.Default(),
		},
		{
			name: "a mobile app",
			headers: fakeHeaders{
				"X-Language": "tr", "X-Timezone": "Europe/Istanbul", "X-Platform": "ios",
				"X-App-Version": "4.0.0-beta.1+build.7", "X-Device-Id": "E621E1F8-C36C-495A-93FC-0C247A3E6E5F",
			},
			want: clientctx.Context{
				Language: clientctx.LanguageTR, Timezone: "UTC+03:00", OffsetMinutes: 180,
				Platform: clientctx.PlatformIOS, AppVersion: "4.0.0-beta.1+build.7",
				DeviceID: "E621E1F8-C36C-495A-93FC-0C247A3E6E5F",
			},
		},
		{
			name: "a browser",
			headers: fakeHeaders{
				"Accept-Language": "de-DE,tr;q=0.7,en;q=0.5", "X-Timezone": "America/Los_Angeles",
			},
			want: clientctx.Context{
				Language: clientctx.LanguageTR, Timezone: "UTC-08:00", OffsetMinutes: -480,
				Platform: clientctx.PlatformWeb,
			},
		},
		{
			name: "an admin console with an offset",
			headers: fakeHeaders{
				"X-Language": "en-GB", "Accept-Language": "tr", "X-Timezone": "GMT+5:45", "X-Platform": "ADMIN",
			},
			want: clientctx.Context{
				Language: clientctx.LanguageEN, Timezone: "UTC+05:45", OffsetMinutes: 345,
				Platform: clientctx.PlatformAdmin,
			},
		},
		{
			name: "everything invalid",
			headers: fakeHeaders{
				"X-Language": "../../etc/passwd", "Accept-Language": "\x00", "X-Timezone": "Europe/../../etc",
				"X-Platform": "all", "X-App-Version": strings.Repeat("1", 33), "X-Device-Id": "a\r\nb",
			},
			want: clientctx.Context{
				Language: clientctx.LanguageEN, Timezone: "UTC+00:00", Platform: clientctx.PlatformUnknown,
				Rejected: clientctx.FieldLanguage | clientctx.FieldTimezone | clientctx.FieldPlatform |
					clientctx.FieldAppVersion | clientctx.FieldDeviceID,
			},
		},
		{
			name: "empty values are absent, not rejected",
			headers: fakeHeaders{
				"X-Language": " ", "X-Timezone": "", "X-Platform": "\t", "X-App-Version": "", "X-Device-Id": "  ",
			},
			want: clientctx.Default(),
		},
		{
			name:    "platform unknown is an honest answer",
			headers: fakeHeaders{"X-Platform": "unknown", "Accept-Language": "fr"},
			want:    clientctx.Context{Timezone: "UTC+00:00", Platform: clientctx.PlatformUnknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientctx.Normalize(tt.headers, january); got != tt.want {
				t.Errorf("Normalize:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestNormalizeNilHeaders(t *testing.T) {
	if got := clientctx.Normalize(nil, january); got != clientctx.Default() {
		t.Errorf("Normalize(nil) = %+v", got)
	}
}

func TestNormalizeFollowsNow(t *testing.T) {
	h := fakeHeaders{"X-Timezone": "America/New_York"}
	july := time.Date(2026, time.July, 15, 12, 0, 0, 0, time.UTC)
	if got := clientctx.Normalize(h, january); got.Timezone != "UTC-05:00" || got.OffsetMinutes != -300 {
		t.Errorf("January: %q %d", got.Timezone, got.OffsetMinutes)
	}
	if got := clientctx.Normalize(h, july); got.Timezone != "UTC-04:00" || got.OffsetMinutes != -240 {
		t.Errorf("July: %q %d", got.Timezone, got.OffsetMinutes)
	}
}

// readHeader parses a raw request head the way the gateway's server does.
func readHeader(t testing.TB, h *fasthttp.RequestHeader, raw string) {
	t.Helper()
	h.Reset()
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("parse request: %v", err)
	}
}

// Through fasthttp's own parser, with the case-insensitive names it allows,
// and with its buffer reused for the next request: the Context must keep its
// values.
func TestNormalizeFastHTTPHeader(t *testing.T) {
	var h fasthttp.RequestHeader
	readHeader(t, &h, "GET /api/v1/users/me HTTP/1.1\r\nHost: edge\r\n"+
		"x-language: TR\r\naccept-language: en\r\nX-TIMEZONE: +0530\r\nx-platform: Mobile-Android\r\n"+
		"x-app-version: 2.3.4\r\nx-device-id: 9774d56d682e549c\r\nX-Device-Id: second\r\n\r\n")
	got := clientctx.Normalize(&h, january)
	want := clientctx.Context{
		Language: clientctx.LanguageTR, Timezone: "UTC+05:30", OffsetMinutes: 330,
		Platform: clientctx.PlatformAndroid, AppVersion: "2.3.4", DeviceID: "9774d56d682e549c",
	}
	if got != want {
		t.Fatalf("Normalize:\n got %+v\nwant %+v", got, want)
	}

	readHeader(t, &h, "GET / HTTP/1.1\r\nHost: edge\r\nX-App-Version: 9.9.9\r\nX-Device-Id: ffffffffffffffff\r\n\r\n")
	if got.AppVersion != "2.3.4" || got.DeviceID != "9774d56d682e549c" {
		t.Errorf("the Context changed with the next request: %q %q", got.AppVersion, got.DeviceID)
	}
}

func TestVisitHeaders(t *testing.T) {
	collect := func(c clientctx.Context) map[string]string {
		m := map[string]string{}
		c.VisitHeaders(func(name, value string) {
			if _, dup := m[name]; dup {
				t.Errorf("%s set twice", name)
			}
			m[name] = value
		})
		return m
	}
	full := clientctx.Normalize(fakeHeaders{
		"X-Language": "tr", "X-Timezone": "UTC+3", "X-Platform": "android",
		"X-App-Version": "1.0", "X-Device-Id": "abc",
	}, january)
	want := map[string]string{
		"X-Language": "tr", "X-Timezone": "UTC+03:00", "X-Platform": "mobile_android",
		"X-App-Version": "1.0", "X-Device-Id": "abc",
	}
	if got := collect(full); !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	bare := map[string]string{"X-Language": "en", "X-Timezone": "UTC+00:00", "X-Platform": "web"}
	if got := collect(clientctx.Normalize(fakeHeaders{"X-Device-Id": "bad id"}, january)); !maps.Equal(got, bare) {
		t.Errorf("without identifiers: got %v, want %v", got, bare)
	}
	// A zero Context (middleware did not run) still sends canonical values.
	if got := collect(clientctx.Context{}); !maps.Equal(got, bare) {
		t.Errorf("zero Context: got %v, want %v", got, bare)
	}
}

func TestFields(t *testing.T) {
	s := clientctx.FieldTimezone | clientctx.FieldDeviceID
	if !s.Has(clientctx.FieldTimezone) || s.Has(clientctx.FieldLanguage) || s.Has(clientctx.FieldTimezone|clientctx.FieldPlatform) {
		t.Errorf("Has is wrong for %v", s)
	}
	if got := s.String(); got != "X-Timezone,X-Device-Id" {
		t.Errorf("String() = %q", got)
	}
	if got := clientctx.Fields(0).String(); got != "" {
		t.Errorf("empty set prints %q", got)
	}
}

// A connection's memo answers only for the bytes it was made from: each
// request on the connection gets what it sent, however little it differs
// from the last (same length, a prefix, spaces around it, nothing, an
// invalid value), the two identifiers are remembered apart, and what
// earlier requests got survives the buffer's reuse by later ones.
func TestNormalizeOnFollowsWhatTheConnectionSends(t *testing.T) {
	steps := []struct {
		version, device         string // "-": not sent
		wantVersion, wantDevice string
		rejected                clientctx.Fields
	}{
		{"4.2.0", "dev-a", "4.2.0", "dev-a", 0},
		{"4.2.0", "dev-a", "4.2.0", "dev-a", 0},
		{"4.2.1", "dev-a", "4.2.1", "dev-a", 0},
		{"4.2.1", "dev-b", "4.2.1", "dev-b", 0},
		{" 4.2.1\t", "dev-b ", "4.2.1", "dev-b", 0},
		{"4.2", "dev", "4.2", "dev", 0},
		{"4.2.10", "dev-b1", "4.2.10", "dev-b1", 0},
		{"-", "-", "", "", 0},
		{"4.2.10", "dev-b1", "4.2.10", "dev-b1", 0},
		{"4.2.10 beta", "dev b1", "", "", clientctx.FieldAppVersion | clientctx.FieldDeviceID},
		{"4.2.10", "dev-b1", "4.2.10", "dev-b1", 0},
		{"x:1", "x:1", "", "x:1", clientctx.FieldAppVersion}, // ':' is a device id's only
		{"x:1", "x+1", "", "", clientctx.FieldAppVersion | clientctx.FieldDeviceID},
		{"x+1", "x+1", "x+1", "", clientctx.FieldDeviceID}, // '+' is an app version's only
	}
	var h fasthttp.RequestHeader
	var memo clientctx.Memo
	var got []clientctx.Context
	for i, s := range steps {
		raw := "GET /api/v1/users/me HTTP/1.1\r\nHost: edge\r\n"
		if s.version != "-" {
			raw += "X-App-Version: " + s.version + "\r\n"
		}
		if s.device != "-" {
			raw += "X-Device-Id: " + s.device + "\r\n"
		}
		readHeader(t, &h, raw+"\r\n")
		c := clientctx.NormalizeOn(&h, january, &memo)
		if c.AppVersion != s.wantVersion || c.DeviceID != s.wantDevice || c.Rejected != s.rejected {
			t.Fatalf("request %d (%q, %q): got %q, %q, rejected %v; want %q, %q, rejected %v",
				i, s.version, s.device, c.AppVersion, c.DeviceID, c.Rejected, s.wantVersion, s.wantDevice, s.rejected)
		}
		got = append(got, c)
		for j, c := range got {
			if c.AppVersion != steps[j].wantVersion || c.DeviceID != steps[j].wantDevice {
				t.Fatalf("after request %d, request %d's values became %q, %q", i, j, c.AppVersion, c.DeviceID)
			}
		}
	}
}

// Two connections sending their own values in turn each get theirs: a
// memo is its connection's alone.
func TestNormalizeOnKeepsConnectionsApart(t *testing.T) {
	var a, b clientctx.Memo
	ha := fakeHeaders{"X-App-Version": "1.0.0", "X-Device-Id": "device-a"}
	hb := fakeHeaders{"X-App-Version": "2.0.0", "X-Device-Id": "device-b"}
	for i := 0; i < 3; i++ {
		if c := clientctx.NormalizeOn(ha, january, &a); c.AppVersion != "1.0.0" || c.DeviceID != "device-a" {
			t.Fatalf("round %d, connection a: %q, %q", i, c.AppVersion, c.DeviceID)
		}
		if c := clientctx.NormalizeOn(hb, january, &b); c.AppVersion != "2.0.0" || c.DeviceID != "device-b" {
			t.Fatalf("round %d, connection b: %q, %q", i, c.AppVersion, c.DeviceID)
		}
	}
}

// What the memo is for: the same values again on a connection are not
// copied again; without a memo they are, each time.
func TestNormalizeOnCopiesOnlyNewValues(t *testing.T) {
	var h fasthttp.RequestHeader
	readHeader(t, &h, "GET /api/v1/users/me HTTP/1.1\r\nHost: edge\r\nX-Timezone: UTC+3\r\n"+
		"X-App-Version: 4.0.0-beta.1+build.7\r\nX-Device-Id: 8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11\r\n\r\n")
	var memo clientctx.Memo
	clientctx.NormalizeOn(&h, january, &memo)
	if n := testing.AllocsPerRun(100, func() { clientctx.NormalizeOn(&h, january, &memo) }); n != 0 {
		t.Errorf("NormalizeOn with the remembered values: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { clientctx.Normalize(&h, january) }); n != 2 {
		t.Errorf("Normalize: %v allocations, want 2 (the two copies)", n)
	}
}
