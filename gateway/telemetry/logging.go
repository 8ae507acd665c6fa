package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// NewLogger returns a logger that writes one JSON object per line to w, at
// level (debug, info, warn or error; anything else is info, which config
// validation never lets through), and the LevelVar that changes the level
// while running.
//
// Every attribute passes through a redactor first. It is defence in depth:
// the gateway does not log tokens or personal data on purpose, and this
// catches the day something does.
func NewLogger(w io.Writer, level string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	if l, err := ParseLevel(level); err == nil {
		lv.Set(l)
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv, ReplaceAttr: redact})
	return slog.New(h), lv
}

// ParseLevel reads a configured log level: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("telemetry: log level %q is not one of debug, info, warn, error", s)
}

// Placeholders written instead of what was redacted.
const (
	redacted    = "[REDACTED]"
	maskedJWT   = "[JWT]"
	maskedEmail = "[EMAIL]"
	maskedPhone = "[PHONE]"
)

// sensitiveKeys are matched case-insensitively against the end of an
// attribute's key (and of the groups it sits in): "token" covers
// access_token and X-Auth-Token, "cookie" covers Set-Cookie.
var sensitiveKeys = [...]string{"authorization", "token", "password", "secret", "email", "phone", "cookie"}

func sensitiveKey(key string) bool {
	if key == "" {
		return false
	}
	// Every sensitive key ends in one of these letters; most keys do not.
	switch key[len(key)-1] | 0x20 {
	case 'n', 'd', 't', 'l', 'e':
	default:
		return false
	}
	for _, s := range sensitiveKeys {
		if len(key) >= len(s) && strings.EqualFold(key[len(key)-len(s):], s) {
			return true
		}
	}
	return false
}

// redact is the handler's ReplaceAttr. Values of sensitive keys go whole;
// in any other string (and error text) JWTs, e-mail addresses and phone
// numbers are masked. Values of other kinds are written as they are.
func redact(groups []string, a slog.Attr) slog.Attr {
	if sensitiveKey(a.Key) {
		return slog.String(a.Key, redacted)
	}
	for _, g := range groups {
		if sensitiveKey(g) {
			return slog.String(a.Key, redacted)
		}
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s, changed := mask(a.Value.String()); changed {
			a.Value = slog.StringValue(s)
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			if s, changed := mask(err.Error()); changed {
				a.Value = slog.StringValue(s)
			}
		}
	}
	return a
}

// mask replaces what looks like a JWT, an e-mail address or a phone number
// in s. A string with no '@', no '+' and no "eyJ" cannot hold any of them
// and returns at once, which is every string the access log writes.
//
// One pass masks them all, glued together or not: a JWT is taken wherever
// it starts ("Bearer" without its space, right after a phone number's
// digits: its header alone would tell the key and algorithm), and a phone
// number right after one masked ("+905551234567+14155552671"). Each
// replacement is bracketed, so none joins what is around it into a new
// one: masking what comes out changes nothing (FuzzMask).
func mask(s string) (string, bool) {
	at, plus := strings.IndexByte(s, '@') >= 0, strings.IndexByte(s, '+') >= 0
	jwt := strings.Contains(s, "eyJ")
	if !at && !plus && !jwt {
		return s, false
	}
	out := s
	if jwt {
		out = maskJWTs(out)
	}
	if at {
		out = emailPattern.ReplaceAllLiteralString(out, maskedEmail)
	}
	if plus {
		out = maskPhones(out)
	}
	return out, out != s
}

// emailPattern is deliberately loose: a false positive costs a log line a
// few characters, a false negative leaks an address. Letters and marks
// beyond ASCII count (internationalized addresses such as
// şükrü@örnek.com.tr), so such an address is not skipped or cut at its
// first non-ASCII letter.
var emailPattern = regexp.MustCompile(`[\p{L}\p{M}\p{N}._%+\-]+@[\p{L}\p{M}\p{N}\-]+(?:\.[\p{L}\p{M}\p{N}\-]+)+`)

func isBase64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// minJWTHeader is the shortest first segment taken for a JWT header: the
// smallest real one, {"alg":"none"}, encodes to 18 characters.
const minJWTHeader = 10

// maskJWTs masks every run that starts "eyJ" (base64url of `{"`), whatever
// comes before it, and carries at least two dot-separated
// base64url segments, the first of at least minJWTHeader characters. A
// token cut short after its payload still leaks the claims, so two are
// enough; JWE's five are masked whole.
func maskJWTs(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+3 <= len(s); {
		j := strings.Index(s[i:], "eyJ")
		if j < 0 {
			break
		}
		start := i + j
		end := start
		for end < len(s) && isBase64URL(s[end]) {
			end++
		}
		first := end - start
		segments := 1
		for end+1 < len(s) && s[end] == '.' && isBase64URL(s[end+1]) {
			end++
			for end < len(s) && isBase64URL(s[end]) {
				end++
			}
			segments++
		}
		// An unsecured JWT ends in a dot and an empty signature.
		if segments >= 2 && end < len(s) && s[end] == '.' {
			end++
		}
		if first < minJWTHeader || segments < 2 {
			i = start + 3
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(maskedJWT)
		last, i = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isPhoneSeparator(c byte) bool {
	return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')'
}

func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// minPhoneDigits is the fewest digits after '+' taken for an international
// number. E.164 allows up to 15; a longer run is masked too, rather than
// let a number with an extension slip through.
const minPhoneDigits = 10

// maskPhones masks '+' followed by at least minPhoneDigits digits, which
// may be grouped by spaces, dashes, dots or parentheses. The '+'
// must not follow a letter or digit, so a version such as 1.2.3+2024010112
// is left alone, unless those digits end a number just masked.
func maskPhones(s string) string {
	var b strings.Builder
	last := 0 // the end of the last number masked
	for i := 0; i < len(s); i++ {
		if s[i] != '+' || i+1 >= len(s) || !isDigit(s[i+1]) || i > 0 && i != last && isAlnum(s[i-1]) {
			continue
		}
		digits, end := 0, i+1
		for k := i + 1; k < len(s); {
			if isDigit(s[k]) {
				digits++
				k++
				end = k
				continue
			}
			// Up to two separators, as in "+1 (555) 123-4567", and only
			// when a digit follows them.
			n := 0
			for n < 2 && k+n < len(s) && isPhoneSeparator(s[k+n]) {
				n++
			}
			if n == 0 || k+n >= len(s) || !isDigit(s[k+n]) {
				break
			}
			k += n
		}
		if digits < minPhoneDigits {
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(maskedPhone)
		last = end
		i = end - 1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
