package gateway

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

var envTimestampRE = regexp.MustCompile(`"timestamp":"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"}$`)

// envStamp returns the timestamp the body ends with, and checks it is now.
func envStamp(t *testing.T, body []byte) string {
	t.Helper()
	m := envTimestampRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("body does not end with a UTC millisecond timestamp: %s", body)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(m[1]))
	if err != nil || time.Since(ts).Abs() > time.Minute {
		t.Fatalf("timestamp %s is not now (%v)", m[1], err)
	}
	return string(m[1])
}

// envDecode decodes an envelope strictly: exactly the five keys.
func envDecode(t *testing.T, body []byte) (e struct {
	IsSuccess  bool            `json:"isSuccess"`
	StatusCode int             `json:"statusCode"`
	Data       json.RawMessage `json:"data"`
	Errors     []string        `json:"errors"`
	Timestamp  string          `json:"timestamp"`
}) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("not an envelope: %v: %s", err, body)
	}
	if dec.More() {
		t.Fatalf("trailing bytes after the envelope: %s", body)
	}
	return e
}

func TestWriteDataBytesIsTheExactSuccessEnvelope(t *testing.T) {
	var resp fasthttp.Response
	resp.SetBodyString("left over from an earlier write")
	writeDataBytes(&resp, 200, []byte(`{"available":true}`))
	if resp.StatusCode() != 200 || string(resp.Header.ContentType()) != "application/json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode(), resp.Header.ContentType())
	}
	ts := envStamp(t, resp.Body())
	want := `{"isSuccess":true,"statusCode":200,"data":{"available":true},"errors":[],"timestamp":"` + ts + `"}`
	if string(resp.Body()) != want {
		t.Fatalf("body\n got %s\nwant %s", resp.Body(), want)
	}

	// Other statuses and empty data (null).
	resp.Reset()
	writeDataBytes(&resp, 201, nil)
	ts = envStamp(t, resp.Body())
	want = `{"isSuccess":true,"statusCode":201,"data":null,"errors":[],"timestamp":"` + ts + `"}`
	if string(resp.Body()) != want || resp.StatusCode() != 201 {
		t.Fatalf("body %s status %d", resp.Body(), resp.StatusCode())
	}
}

func TestWriteDataFromAString(t *testing.T) {
	var resp fasthttp.Response
	writeData(&resp, 200, `{"items":[],"page":1,"limit":20,"total":0}`)
	ts := envStamp(t, resp.Body())
	want := `{"isSuccess":true,"statusCode":200,"data":{"items":[],"page":1,"limit":20,"total":0},"errors":[],"timestamp":"` + ts + `"}`
	if string(resp.Body()) != want {
		t.Fatalf("body\n got %s\nwant %s", resp.Body(), want)
	}
	resp.Reset()
	writeData(&resp, 200, "")
	e := envDecode(t, resp.Body())
	if string(e.Data) != "null" || !e.IsSuccess || e.Errors == nil || len(e.Errors) != 0 {
		t.Fatalf("empty data: %s", resp.Body())
	}
}

func TestWriteErrorsIsTheExactFailureEnvelope(t *testing.T) {
	var resp fasthttp.Response
	resp.SetBodyString(`{"partial":`) // a handler's half-written answer is replaced
	writeErrors(&resp, 400, "Validation failed", "username is required", "page must be a whole number of at least 1")
	if resp.StatusCode() != 400 || string(resp.Header.ContentType()) != "application/json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode(), resp.Header.ContentType())
	}
	ts := envStamp(t, resp.Body())
	want := `{"isSuccess":false,"statusCode":400,"data":null,"errors":["Validation failed","username is required",` +
		`"page must be a whole number of at least 1"],"timestamp":"` + ts + `"}`
	if string(resp.Body()) != want {
		t.Fatalf("body\n got %s\nwant %s", resp.Body(), want)
	}
}

func TestWriteErrorsWithoutMessagesUsesTheStatusMessage(t *testing.T) {
	for _, c := range []struct {
		status int
		want   string
	}{
		{400, "Validation failed"},
		{401, "Authentication required"},
		{403, "Insufficient permissions"},
		{404, "Resource not found"},
		{409, "Resource already exists or cannot be changed in its current state"},
		{413, "Request body too large"},
		{418, "Malformed request"},
		{500, "Internal server error"},
		{503, "Service temporarily unavailable, please try again later"},
	} {
		var resp fasthttp.Response
		writeErrors(&resp, c.status)
		e := envDecode(t, resp.Body())
		if e.IsSuccess || e.StatusCode != c.status || string(e.Data) != "null" || len(e.Errors) != 1 || e.Errors[0] != c.want {
			t.Fatalf("writeErrors(%d) = %s, want the single message %q", c.status, resp.Body(), c.want)
		}
		if resp.StatusCode() != c.status {
			t.Fatalf("HTTP status %d, want %d", resp.StatusCode(), c.status)
		}
	}
}

func TestAppendEnvelopeBothShapes(t *testing.T) {
	ok := appendEnvelope(nil, 200, []byte(`{"ready":true}`), nil)
	ts := envStamp(t, ok)
	if want := `{"isSuccess":true,"statusCode":200,"data":{"ready":true},"errors":[],"timestamp":"` + ts + `"}`; string(ok) != want {
		t.Fatalf("success\n got %s\nwant %s", ok, want)
	}
	null := appendEnvelope(nil, 200, nil, nil)
	if e := envDecode(t, null); string(e.Data) != "null" {
		t.Fatalf("no data: %s", null)
	}
	// With messages the data is dropped whatever was passed.
	fail := appendEnvelope([]byte("prefix:"), 503, []byte(`{"ready":false}`), []string{"a", "b"})
	ts = envStamp(t, fail)
	if want := `prefix:{"isSuccess":false,"statusCode":503,"data":null,"errors":["a","b"],"timestamp":"` + ts + `"}`; string(fail) != want {
		t.Fatalf("failure\n got %s\nwant %s", fail, want)
	}
}

func TestAppendJSONStringEscapes(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"line\nfeed\rreturn\ttab", `"line\nfeed\rreturn\ttab"`},
		{"nul\x00bell\x07esc\x1b", `"nul\u0000bell\u0007esc\u001b"`},
		{"\b\f", `"\u0008\u000c"`},
		{"</script><b>&amp;", `"\u003c/script\u003e\u003cb\u003e\u0026amp;"`},
		{"del\x7f", "\"del\x7f\""},
		{"Şükrü Öztürk ığüşöç İĞÜŞÖÇ", `"Şükrü Öztürk ığüşöç İĞÜŞÖÇ"`},
		{"emoji 🎉", `"emoji 🎉"`},
		{"ls\u2028ps\u2029", `"ls\u2028ps\u2029"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"cut \xe2\x82", `"cut \ufffd\ufffd"`},
		{"overlong \xc0\xaf", `"overlong \ufffd\ufffd"`},
		{"surrogate \xed\xa0\x80", `"surrogate \ufffd\ufffd\ufffd"`},
		{"\ufffd itself", "\"\ufffd itself\""},
	} {
		got := string(appendJSONString(nil, c.in))
		if got != c.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// For any input, the output is valid JSON that decodes to what
// encoding/json makes of the same string.
func TestAppendJSONStringAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", `"`, `\`, "/", "<", ">", "&", "\n", "\r", "\t", "\x00", "\x01", "\x1f",
		"\x7f", "\x80", "\xbf", "\xc3", "\xe2", "\xf0", "\xff", "ş", "İ", "ı", "€", "\u2028", "\u2029", "🎉", "\ufffd"}
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		for n := r.IntN(12); n > 0; n-- {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()
		out := appendJSONString([]byte("x"), s)[1:]
		if !json.Valid(out) {
			t.Fatalf("appendJSONString(%q) = %s: not valid JSON", s, out)
		}
		var got, want string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		ref, _ := json.Marshal(s)
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("appendJSONString(%q) decodes to %q, encoding/json to %q", s, got, want)
		}
		if !utf8.Valid(out) || bytes.ContainsAny(out, "\u2028\u2029") {
			t.Fatalf("appendJSONString(%q) = %q: raw line separators or invalid UTF-8 left in", s, out)
		}
	}
}

func TestWriteErrorsWithHostileMessagesIsValidJSON(t *testing.T) {
	msgs := []string{"\"}],\"isSuccess\":true,\"x\":[\"", "\x00\xff\u2028", strings.Repeat("\\", 7), "</script>"}
	var resp fasthttp.Response
	writeErrors(&resp, 400, msgs...)
	e := envDecode(t, resp.Body())
	if e.IsSuccess || len(e.Errors) != len(msgs) {
		t.Fatalf("hostile messages changed the envelope: %s", resp.Body())
	}
	if e.Errors[0] != msgs[0] || e.Errors[2] != msgs[2] || e.Errors[3] != msgs[3] || e.Errors[1] != "\x00\ufffd\u2028" {
		t.Fatalf("messages did not round-trip: %q", e.Errors)
	}
}

func TestTimestampFormat(t *testing.T) {
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 5, 22, 16, 11, 26, 801_000_000, time.UTC), "2026-05-22T16:11:26.801Z"},
		{time.Date(2026, 5, 22, 19, 11, 26, 801_999_999, time.FixedZone("TRT", 3*3600)), "2026-05-22T16:11:26.801Z"},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "2026-01-01T00:00:00.000Z"},
		{time.Date(2025, 12, 31, 20, 0, 0, 5_000_000, time.FixedZone("PST", -8*3600)), "2026-01-01T04:00:00.005Z"},
		{time.Date(2026, 1, 1, 4, 0, 0, 999_999_999, time.UTC), "2026-01-01T04:00:00.999Z"}, // same second as the last
		{time.Date(2026, 1, 1, 4, 0, 1, 0, time.UTC), "2026-01-01T04:00:01.000Z"},           // the next
		{time.Date(1969, 12, 31, 23, 59, 59, 990_000_000, time.UTC), "1969-12-31T23:59:59.990Z"},
		{time.Date(10000, 1, 1, 0, 0, 0, 42_000_000, time.UTC), "10000-01-01T00:00:00.042Z"},
		{time.Date(2026, 5, 22, 16, 11, 26, 801_000_000, time.UTC), "2026-05-22T16:11:26.801Z"}, // the first again
		{time.Date(2026, 3, 29, 0, 30, 0, 0, time.FixedZone("", 45*60)), "2026-03-28T23:45:00.000Z"},
	} {
		if got := string(appendTimestamp(nil, c.at)); got != c.want {
			t.Errorf("appendTimestamp(%v) = %s, want %s", c.at, got, c.want)
		}
	}
	re := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
	before := time.Now().Truncate(time.Millisecond)
	got := string(appendTimestamp(nil, time.Now()))
	after := time.Now()
	if !re.MatchString(got) {
		t.Fatalf("appendTimestamp(now) = %s", got)
	}
	ts, _ := time.Parse(time.RFC3339Nano, got)
	if ts.Before(before) || ts.After(after) {
		t.Fatalf("appendTimestamp(now) = %s, not between %v and %v", got, before, after)
	}
}

// FuzzAppendJSONString: for any string, the hand-written JSON string is
// valid JSON and valid UTF-8, decodes to what encoding/json's string for
// it decodes to (invalid bytes, lone surrogates included, become U+FFFD
// one by one), and leaves no raw HTML character or line separator, as
// encoding/json does not.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `say "hi"`, `back\slash`, "line\nfeed\rreturn\ttab", "nul\x00bell\x07esc\x1b",
		"\b\f", "</script><b>&amp;", "del\x7f", "Şükrü Öztürk ığüşöç İĞÜŞÖÇ", "emoji 🎉", "ls\u2028ps\u2029",
		"bad\xffbyte", "cut \xe2\x82", "overlong \xc0\xaf", "surrogate \xed\xa0\x80", "\xed\xbf\xbf", "\ufffd itself",
		"\xf4\x90\x80\x80", "\xf0\x9f\x8e", "\U0010ffff", "\u2027\u202a", "\xe2\x80\xa8", "\x80", "a\\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString([]byte("x"), s)[1:]
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("appendJSONString(%q) = %q: not valid JSON in UTF-8", s, out)
		}
		ref, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var got, want string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("appendJSONString(%q) = %s decodes to %q; encoding/json's %s to %q", s, out, got, ref, want)
		}
		if bytes.ContainsAny(out, "<>&\u2028\u2029") {
			t.Fatalf("appendJSONString(%q) = %q: a raw HTML character or line separator", s, out)
		}
	})
}

// FuzzAppendTimestamp: the per-second prefix, cached across calls, gives
// what time.Format gives for the same instant, also when calls move
// between seconds (a, b, then a again) and around 1970 and year 9999.
func FuzzAppendTimestamp(f *testing.F) {
	for _, c := range [][5]int64{
		{1779466286, 801_000_000, 1779466286, 801_999_999, 0},
		{1779466286, 999_999_999, 1779466287, 0, 3 * 3600},
		{-1, 990_000_000, 0, 0, 0},
		{-1, 0, -2, 999_999_999, -8 * 3600},
		{253402300799, 999_000_000, 253402300800, 42_000_000, 0}, // the last second of 9999, the first of 10000
		{-62135596800, 0, -62135596801, 500_000_000, 45 * 60},    // the first second of year 1, the last of year 0
		{-62198755200, 0, 1 << 40, 123_456_789, -12 * 3600},
		{1e15, 0, -1e15, 1, 14 * 3600},
	} {
		f.Add(c[0], c[1], c[2], c[3], c[4])
	}
	f.Fuzz(func(t *testing.T, secA, nsecA, secB, nsecB, offset int64) {
		// time.Time's own range, and UnixMilli's, are far wider than a
		// clock's; ±10^15 s is 31 million years either side.
		const lim = 1e15
		if secA < -lim || secA > lim || secB < -lim || secB > lim {
			return
		}
		zone := time.FixedZone("", int(offset%(18*3600)))
		a := time.Unix(secA, nsecA%1e9).In(zone)
		b := time.Unix(secB, nsecB%1e9).In(zone)
		for _, at := range []time.Time{a, b, a} {
			want := at.UTC().Format("2006-01-02T15:04:05.000Z07:00")
			if got := string(appendTimestamp([]byte{}, at)); got != want {
				t.Fatalf("appendTimestamp(%v) = %s, want %s", at, got, want)
			}
		}
	})
}

// Each character escaped for HTML's sake is escaped when it is the only
// one in an otherwise plain string, where the fast path would take it.
func TestAppendJSONStringEscapesALoneHTMLCharacter(t *testing.T) {
	for in, want := range map[string]string{
		"a<b":  `"a\u003cb"`,
		"a>b":  `"a\u003eb"`,
		"a&b":  `"a\u0026b"`,
		`a"b`:  `"a\"b"`,
		`a\b`:  `"a\\b"`,
		"a\nb": `"a\nb"`,
	} {
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
	}
}
