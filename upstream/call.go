package upstream

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/valyala/fasthttp"
)

// Op names one user-store operation. It is the breaker's name, the metric
// label and the key of the operation's settings.
type Op string

const (
	OpUsernameCheck Op = "usernameCheck"
	OpSearch        Op = "search"
	OpUserByID      Op = "userById"
	OpLiveStreams   Op = "liveStreams"
)

// Ops lists every operation, in a fixed order.
var Ops = []Op{OpUsernameCheck, OpSearch, OpUserByID, OpLiveStreams}

// Call is what the gateway knows about the request a call serves. The
// client writes these headers, and only these: nothing a client sent to the
// gateway is ever copied to the store. Values must already be normalized
// (no control characters); a call with a control character in a header
// value is refused with KindBadRequest (outcome invalid_input) rather than
// sent.
//
// X-Request-Id, X-User-Id, X-User-Roles, X-Language, X-Timezone and
// X-Platform are always sent (the contract expects them on every call);
// traceparent, X-App-Version and X-Device-Id only when not empty.
//
// A Call may serve several calls, also in parallel (search and live
// streams of one request). Use it by pointer: it also adds up the time
// spent talking to the store.
type Call struct {
	RequestID   string
	Traceparent string
	UserID      string
	Roles       []string
	Language    string
	Timezone    string
	Platform    string
	AppVersion  string
	DeviceID    string

	upstreamNanos atomic.Int64
	exchanges     atomic.Int64
}

// UpstreamTime is the time the client spent in exchanges with the store on
// behalf of this Call, summed over every attempt of every call made with it
// (parallel calls add up, so it can exceed the wall time).
func (c *Call) UpstreamTime() time.Duration {
	if c == nil {
		return 0
	}
	return time.Duration(c.upstreamNanos.Load())
}

// Exchanges is how many HTTP exchanges with the store were attempted on
// behalf of this Call (first tries and retries).
func (c *Call) Exchanges() int {
	if c == nil {
		return 0
	}
	return int(c.exchanges.Load())
}

func (c *Call) spent(d time.Duration) {
	if c == nil {
		return
	}
	c.upstreamNanos.Add(int64(d))
	c.exchanges.Add(1)
}

// requestID is the X-Request-Id the calls made with c send ("" for a nil
// Call).
func (c *Call) requestID() string {
	if c == nil {
		return ""
	}
	return c.RequestID
}

// check reports the first header value that cannot be sent as it is.
func (c *Call) check() (header string, ok bool) {
	if c == nil {
		return "", true
	}
	for _, h := range [...]struct{ name, value string }{
		{contract.HeaderRequestID, c.RequestID},
		{contract.HeaderTraceparent, c.Traceparent},
		{contract.HeaderUserID, c.UserID},
		{contract.HeaderLanguage, c.Language},
		{contract.HeaderTimezone, c.Timezone},
		{contract.HeaderPlatform, c.Platform},
		{contract.HeaderAppVersion, c.AppVersion},
		{contract.HeaderDeviceID, c.DeviceID},
	} {
		if !headerSafe(h.value) {
			return h.name, false
		}
	}
	for _, r := range c.Roles {
		if !headerSafe(r) || strings.Contains(r, ",") {
			return contract.HeaderUserRoles, false
		}
	}
	return "", true
}

// headerSafe reports whether v can be written as a header value: fasthttp
// writes values as they are, so a CR or LF would split the request.
func headerSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// writeHeaders adds the contract headers of c to h, with traceparent
// instead of c's when it is not empty. h is a fresh request header, so
// nothing else is on it and each header is added once.
func (c *Call) writeHeaders(h *fasthttp.RequestHeader, traceparent string) {
	if c == nil {
		c = &Call{}
	}
	h.Add(contract.HeaderRequestID, c.RequestID)
	if traceparent == "" {
		traceparent = c.Traceparent
	}
	if traceparent != "" {
		h.Add(contract.HeaderTraceparent, traceparent)
	}
	h.Add(contract.HeaderUserID, c.UserID)
	switch len(c.Roles) {
	case 0:
		h.Add(contract.HeaderUserRoles, "")
	case 1:
		h.Add(contract.HeaderUserRoles, c.Roles[0])
	default:
		h.Add(contract.HeaderUserRoles, strings.Join(c.Roles, ","))
	}
	h.Add(contract.HeaderLanguage, c.Language)
	h.Add(contract.HeaderTimezone, c.Timezone)
	h.Add(contract.HeaderPlatform, c.Platform)
	if c.AppVersion != "" {
		h.Add(contract.HeaderAppVersion, c.AppVersion)
	}
	if c.DeviceID != "" {
		h.Add(contract.HeaderDeviceID, c.DeviceID)
	}
}
