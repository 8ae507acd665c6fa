package clientctx

import (
	"strings"
	"time"
)

// The client-context header names. The gateway reads them from clients and
// sends the normalized values to the user store under the same names.
const (
	HeaderLanguage       = "X-Language"
	HeaderAcceptLanguage = "Accept-Language"
	HeaderTimezone       = "X-Timezone"
	HeaderPlatform       = "X-Platform"
	HeaderAppVersion     = "X-App-Version"
	HeaderDeviceID       = "X-Device-Id"
)

// Headers gives read access to a request's headers. *fasthttp.RequestHeader
// (&c.Request().Header in a fiber handler) satisfies it. The returned bytes
// may be reused by the caller once Normalize returns: Normalize never keeps
// them.
type Headers interface {
	Peek(name string) []byte
}

// Context is the normalized client context of one request.
type Context struct {
	Language Language
	// Timezone is the canonical "UTC±HH:MM" spelling, "UTC+00:00" for UTC.
	Timezone string
	// OffsetMinutes is Timezone's offset east of UTC, e.g. 180 for UTC+03:00.
	OffsetMinutes int
	Platform      Platform
	// AppVersion is "" when the client sent none or an invalid one.
	AppVersion string
	// DeviceID is "" when the client sent none or an invalid one.
	DeviceID string
	// Rejected lists the headers the client sent (non-empty) whose values
	// were unusable and so replaced by the default or dropped. A platform
	// sent literally as "unknown" is not rejected; "all" is. An unusable
	// Accept-Language is normal for browsers and is not reported.
	Rejected Fields
}

// Default is the context of a request that sent no client headers.
func Default() Context {
	return Context{Language: LanguageEN, Timezone: DefaultTimezone, Platform: PlatformWeb}
}

// Normalize reads the client-context headers of one request. now is the
// instant IANA zone names are resolved at (normally the request's arrival).
// It never fails: every unusable value falls back to its default, and a nil
// h is a request without headers.
func Normalize(h Headers, now time.Time) Context { return NormalizeOn(h, now, nil) }

// NormalizeOn is Normalize for a request that came on the connection whose
// memo is m: an app version or device id it remembers is not copied again,
// and a new valid one is remembered. A nil m remembers nothing.
func NormalizeOn(h Headers, now time.Time, m *Memo) Context {
	if h == nil {
		return Default()
	}
	if m == nil {
		m = new(Memo) // this call's only
	}
	var c Context
	var rejected bool
	if c.Language, rejected = parseLanguage(h.Peek(HeaderLanguage), h.Peek(HeaderAcceptLanguage)); rejected {
		c.Rejected |= FieldLanguage
	}

	tz := h.Peek(HeaderTimezone)
	var ok bool
	if c.Timezone, c.OffsetMinutes, ok = ParseTimezone(tz, now); !ok && sent(tz) {
		c.Rejected |= FieldTimezone
	}

	if c.Platform, rejected = parsePlatform(h.Peek(HeaderPlatform)); rejected {
		c.Rejected |= FieldPlatform
	}

	version := h.Peek(HeaderAppVersion)
	if c.AppVersion, ok = m.appVersionOf(version); !ok && sent(version) {
		c.Rejected |= FieldAppVersion
	}

	device := h.Peek(HeaderDeviceID)
	if c.DeviceID, ok = m.deviceIDOf(device); !ok && sent(device) {
		c.Rejected |= FieldDeviceID
	}
	return c
}

// VisitHeaders calls set for each header the gateway sends to the user store,
// with its canonical value: X-Language, X-Timezone and X-Platform always,
// X-App-Version and X-Device-Id only when the client sent a valid one.
func (c Context) VisitHeaders(set func(name, value string)) {
	set(HeaderLanguage, c.Language.String())
	tz := c.Timezone
	if tz == "" {
		tz = DefaultTimezone
	}
	set(HeaderTimezone, tz)
	set(HeaderPlatform, c.Platform.String())
	if c.AppVersion != "" {
		set(HeaderAppVersion, c.AppVersion)
	}
	if c.DeviceID != "" {
		set(HeaderDeviceID, c.DeviceID)
	}
}

// Fields is a set of client-context headers.
type Fields uint8

// The members of Fields.
const (
	FieldLanguage Fields = 1 << iota
	FieldTimezone
	FieldPlatform
	FieldAppVersion
	FieldDeviceID
)

var fieldHeaders = [...]string{HeaderLanguage, HeaderTimezone, HeaderPlatform, HeaderAppVersion, HeaderDeviceID}

// Has reports whether every field of f is in s.
func (s Fields) Has(f Fields) bool { return s&f == f }

// String lists the header names in s, comma-separated, for logs.
func (s Fields) String() string {
	var b strings.Builder
	for i, name := range fieldHeaders {
		if s&(1<<i) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
	}
	return b.String()
}

// sent reports whether a header value holds anything but spaces.
func sent(v []byte) bool { return len(TrimOWS(v)) > 0 }

// TrimOWS drops the optional white space (SP, HTAB) around a header value
// or a list member; authentication and the client IP trim with it too.
func TrimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// EqualFoldASCII reports whether b equals lower, a lower-case ASCII literal,
// ignoring ASCII case only (bytes.EqualFold would also fold the Kelvin sign
// and other Unicode look-alikes: "chun\u212Aed" would pass for chunked).
func EqualFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if toLowerASCII(b[i]) != lower[i] {
			return false
		}
	}
	return true
}

func toLowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
