package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const sampleJWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1LTEiLCJlbWFpbCI6ImFAYi5jbyJ9.c2lnbmF0dXJlLWJ5dGVz"

// logged writes one line through a fresh logger and decodes it; raw is the
// line without its timestamp, whose digits could look like a leak.
func logged(t *testing.T, attrs ...slog.Attr) (out map[string]any, raw string) {
	t.Helper()
	var buf bytes.Buffer
	l, _ := NewLogger(&buf, "debug")
	l.LogAttrs(context.Background(), slog.LevelInfo, "event", attrs...)
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatalf("not one JSON object: %v: %s", err, buf.String())
	}
	if _, ok := out["time"]; !ok {
		t.Fatalf("no time: %s", buf.String())
	}
	rest := map[string]any{}
	for k, v := range out {
		if k != "time" {
			rest[k] = v
		}
	}
	b, _ := json.Marshal(rest)
	return out, string(b)
}

func TestSensitiveKeysAreRedacted(t *testing.T) {
	for _, key := range []string{
		"authorization", "Authorization", "AUTHORIZATION", "proxy_authorization",
		"token", "access_token", "refresh_token", "X-Auth-Token", "idToken",
		"password", "new_password", "Password", "secret", "client_secret", "OPS_SECRET",
		"email", "user_email", "Email", "phone", "mobilePhone", "cookie", "Set-Cookie",
	} {
		for _, v := range []slog.Value{slog.StringValue("hunter2"), slog.IntValue(5551234), slog.AnyValue([]string{"a"})} {
			out, raw := logged(t, slog.Attr{Key: key, Value: v})
			if out[key] != redacted {
				t.Errorf("%s=%v logged as %v", key, v, out[key])
			}
			if strings.Contains(raw, "hunter2") || strings.Contains(raw, "5551234") {
				t.Errorf("%s leaked: %s", key, raw)
			}
		}
	}
	// Everything inside a sensitive group goes too.
	out, raw := logged(t, slog.Group("cookie", slog.String("session", "s3cr3t")))
	if strings.Contains(raw, "s3cr3t") {
		t.Errorf("group member leaked: %s (%v)", raw, out)
	}
	// With() attributes pass the same way.
	var buf bytes.Buffer
	l, _ := NewLogger(&buf, "info")
	l.With("api_token", "abc123").Info("x")
	if strings.Contains(buf.String(), "abc123") {
		t.Errorf("With attribute leaked: %s", buf.String())
	}
}

func TestOrdinaryKeysAreKept(t *testing.T) {
	// Keys that merely contain a sensitive word, and the access log's own.
	for _, key := range []string{"tokens_used", "token_count", "emails_sent", "phones", "secretary_id", "request_id", "route", "cache", "breaker_open", "app_version", "partial"} {
		out, _ := logged(t, slog.String(key, "plain value"))
		if out[key] != "plain value" {
			t.Errorf("%s logged as %v", key, out[key])
		}
	}
}

func TestSecretsInValuesAreMasked(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Bearer " + sampleJWT, "Bearer [JWT]"},
		{sampleJWT, "[JWT]"},
		{"tokens " + sampleJWT + "," + sampleJWT + ".", "tokens [JWT],[JWT]"},
		// Unsecured (empty signature) and cut-short tokens leak claims too.
		{"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "[JWT]"},
		{"got eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0 then", "got [JWT] then"},
		{"mail ann.lee+news@example.co.uk now", "mail [EMAIL] now"},
		{"a@b.io", "[EMAIL]"},
		{"<ANN_LEE@Example.COM>", "<[EMAIL]>"},
		{"call +14155552671", "call [PHONE]"},
		{"+447911123456", "[PHONE]"},
		{"tel:+44 20 7946 0958.", "tel:[PHONE]."},
		{"+1 (415) 555-2671 ok", "[PHONE] ok"},
		{"phone=+491511234567890", "phone=[PHONE]"},
		{"x " + sampleJWT + " for bob@example.org at +33612345678", "x [JWT] for [EMAIL] at [PHONE]"},
		// Glued together, each starts a word once the one before it is
		// masked; a token cut short after its payload leaked its claims.
		{"+905551234567eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0", "[PHONE][JWT]"},
		{"+905551234567eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0+14155552671", "[PHONE][JWT][PHONE]"},
		{"+905551234567+14155552671", "[PHONE][PHONE]"},
		// A whole token glued to what comes before it: its header too.
		{"+905551234567" + sampleJWT, "[PHONE][JWT]"},
		{"Bearer" + sampleJWT, "Bearer[JWT]"},
		{"id=abc" + sampleJWT + "&x", "id=abc[JWT]&x"},
	}
	for _, c := range cases {
		out, raw := logged(t, slog.String("detail", c.in))
		if out["detail"] != c.want {
			t.Errorf("%q logged as %q, want %q", c.in, out["detail"], c.want)
		}
		if strings.Contains(raw, "eyJ") || strings.Contains(raw, "example") || strings.Contains(raw, "555") {
			t.Errorf("%q leaked: %s", c.in, raw)
		}
	}
	// The message and error values are strings too.
	var buf bytes.Buffer
	l, _ := NewLogger(&buf, "info")
	l.Error("login failed for bob@example.org", "err", fmt.Errorf("store: user %s: %w", "bob@example.org", errors.New("not found")))
	if strings.Contains(buf.String(), "bob@") {
		t.Errorf("message or error leaked: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"err":"store: user [EMAIL]: not found"`) {
		t.Errorf("error not written as masked text: %s", buf.String())
	}
}

// Addresses with letters outside ASCII (Turkish names and domains, which
// internationalized e-mail allows) are masked whole, not left alone or cut
// where the first non-ASCII letter stands.
func TestNonASCIIEmailsAreMasked(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"şükrü@örnek.com.tr", "[EMAIL]"},
		{"to ayşe.yılmaz@example.com now", "to [EMAIL] now"},
		{"ali@şirket.com.tr", "[EMAIL]"},
		{"<İLKER@Örnek.COM.TR>", "<[EMAIL]>"},
		{"i\u0307lker@x.com", "[EMAIL]"}, // i and a combining dot above
	} {
		out, _ := logged(t, slog.String("detail", c.in))
		if out["detail"] != c.want {
			t.Errorf("%q logged as %q, want %q", c.in, out["detail"], c.want)
		}
	}
}

func TestLookAlikesAreKept(t *testing.T) {
	for _, s := range []string{
		"5.2.0+20240101123",           // semver build metadata: the '+' follows a digit
		"1.0.0-beta+exp.sha.5114f85",  //
		"+12345",                      // too few digits
		"heyJude.wasAHit",             // "eyJ" inside a word
		"eyJhbGciOiJSUzI1NiJ9",        // one segment: no claims
		"eyJ.x.y",                     // too short a header
		"@handle and user@ and @host", // no address
		"2 + 2 = 4",
		"01J9Z3X4K5M6N7P8Q9R0S1T2V3",
		"",
	} {
		out, _ := logged(t, slog.String("detail", s))
		if out["detail"] != s {
			t.Errorf("%q logged as %q", s, out["detail"])
		}
	}
	// Non-string values are not rewritten.
	out, _ := logged(t, slog.Int("status", 429), slog.Float64("latency_ms", 1.5), slog.Bool("partial", true))
	if out["status"] != 429.0 || out["latency_ms"] != 1.5 || out["partial"] != true {
		t.Errorf("numbers changed: %v", out)
	}
}

// The access log line comes out exactly as the gateway wrote it.
func TestAccessLogLineIsUnchanged(t *testing.T) {
	var red, plain bytes.Buffer
	l, _ := NewLogger(&red, "info")
	accessLine(l)
	accessLine(slog.New(slog.NewJSONHandler(&plain, nil)))
	strip := func(s string) string { // the timestamps differ
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "time")
		b, _ := json.Marshal(m)
		return string(b)
	}
	if a, b := strip(red.String()), strip(plain.String()); a != b {
		t.Errorf("redacting logger wrote\n%s\nplain slog wrote\n%s", a, b)
	}
}

func TestLevels(t *testing.T) {
	for _, c := range []struct {
		level string
		want  []string
	}{
		{"debug", []string{"d", "i", "w", "e"}},
		{"info", []string{"i", "w", "e"}},
		{"warn", []string{"w", "e"}},
		{"error", []string{"e"}},
		{"verbose", []string{"i", "w", "e"}}, // unknown: info
	} {
		var buf bytes.Buffer
		l, _ := NewLogger(&buf, c.level)
		l.Debug("d")
		l.Info("i")
		l.Warn("w")
		l.Error("e")
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s: %v: %q", c.level, err, line)
			}
			got = append(got, m["msg"].(string))
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("level %s wrote %v, want %v", c.level, got, c.want)
		}
	}
}

func TestLevelVarChangesTheLiveLogger(t *testing.T) {
	var buf bytes.Buffer
	l, lv := NewLogger(&buf, "warn")
	l.Info("hidden")
	lv.Set(slog.LevelDebug)
	l.Debug("shown")
	lv.Set(slog.LevelError)
	l.Warn("hidden again")
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, `"msg":"shown"`) {
		t.Errorf("output after level changes: %s", got)
	}
	if lvl, err := ParseLevel("debug"); err != nil || lvl != slog.LevelDebug {
		t.Errorf("ParseLevel(debug) = %v, %v", lvl, err)
	}
	for _, bad := range []string{"", "DEBUG", "trace", "fatal"} {
		if _, err := ParseLevel(bad); err == nil {
			t.Errorf("ParseLevel(%q) accepted", bad)
		}
	}
}

func FuzzMask(f *testing.F) {
	f.Add("Bearer " + sampleJWT)
	f.Add("a+b@c.de +14155552671")
	f.Add("+1 (2")
	f.Add("eyJ")
	f.Fuzz(func(t *testing.T, s string) {
		out, changed := mask(s)
		if changed == (out == s) {
			t.Fatalf("mask(%q) = %q, changed=%v", s, out, changed)
		}
		// Masking is stable: what comes out has nothing left to mask.
		if again, ch := mask(out); ch {
			t.Fatalf("mask(%q) = %q, and again %q", s, out, again)
		}
	})
}
