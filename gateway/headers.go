package gateway

import (
	"unsafe"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/valyala/fasthttp"
)

// requestHeaders holds the single-valued request headers the gateway
// reads, taken in one pass over the header block: fasthttp's Peek copies
// and normalizes the name on every call, and a request is read by a dozen
// of them. Values alias fasthttp's buffer: valid while the request is
// handled, never kept. The first of repeated headers counts, as with Peek,
// but for three: a repeated traceparent leaves the request none that is
// valid (W3C Trace Context gives a repeated one no meaning; see
// repeatedTraceparent); Accept-Language's lines are joined into the one
// list they are (RFC 9110 section 5.3; joinFieldLines); If-None-Match, a
// list too, is read here from its first line, and the rest are looked up
// only when there are more (moreIfNoneMatch). Other multi-valued headers
// (Authorization, X-Forwarded-For) use PeekAll.
type requestHeaders struct {
	requestID, language, acceptLanguage, timezone, platform,
	appVersion, deviceID, traceparent, origin, ifNoneMatch []byte
	sawTraceparent, sawIfNoneMatch bool
	moreIfNoneMatch                bool
}

// read fills h from the request's header block. fasthttp stores names in
// canonical form, so they compare as exact strings.
func (h *requestHeaders) read(rh *fasthttp.RequestHeader) {
	*h = requestHeaders{}
	rh.VisitAll(func(k, v []byte) {
		var dst *[]byte
		switch string(k) {
		case "X-Request-Id":
			dst = &h.requestID
		case clientctx.HeaderLanguage:
			dst = &h.language
		case clientctx.HeaderAcceptLanguage:
			if h.acceptLanguage != nil {
				h.acceptLanguage = joinFieldLines(h.acceptLanguage, v)
				return
			}
			dst = &h.acceptLanguage
		case clientctx.HeaderTimezone:
			dst = &h.timezone
		case clientctx.HeaderPlatform:
			dst = &h.platform
		case clientctx.HeaderAppVersion:
			dst = &h.appVersion
		case clientctx.HeaderDeviceID:
			dst = &h.deviceID
		case "Traceparent":
			if h.sawTraceparent {
				h.traceparent = repeatedTraceparent
				return
			}
			h.sawTraceparent = true
			dst = &h.traceparent
		case "Origin":
			dst = &h.origin
		case "If-None-Match":
			if h.sawIfNoneMatch {
				h.moreIfNoneMatch = true
				return
			}
			h.sawIfNoneMatch = true
			dst = &h.ifNoneMatch
		default:
			return
		}
		if *dst == nil {
			*dst = v
		}
	})
}

// maxJoinedField bounds a list field joined from its lines: longer than
// any list the gateway reads (clientctx reads 1 KiB of Accept-Language).
const maxJoinedField = 1 << 10

// joinFieldLines is a list field sent on more than one line, a's lines and
// then b, as the one list they are (RFC 9110 section 5.3: the lines'
// values joined with commas, in order), in a slice of its own: a and b
// may be fasthttp's buffer. A list already as long as anything reads is
// not grown.
func joinFieldLines(a, b []byte) []byte {
	if len(a) >= maxJoinedField {
		return a
	}
	out := make([]byte, 0, len(a)+2+len(b))
	return append(append(append(out, a...), ", "...), b...)
}

// acceptLanguageOf is a request's Accept-Language, its lines joined, for
// the answers given outside the edge (requestHeaders.read does the same).
func acceptLanguageOf(h *fasthttp.RequestHeader) []byte {
	lines := h.PeekAll(clientctx.HeaderAcceptLanguage)
	if len(lines) == 0 {
		return nil
	}
	v := lines[0]
	for _, l := range lines[1:] {
		v = joinFieldLines(v, l)
	}
	return v
}

// repeatedTraceparent stands for a request's traceparent when it sent
// more than one: no trace is continued, as for a malformed one.
var repeatedTraceparent = []byte("repeated")

// Peek serves clientctx.Normalize from the values already read.
func (h *requestHeaders) Peek(name string) []byte {
	switch name {
	case clientctx.HeaderLanguage:
		return h.language
	case clientctx.HeaderAcceptLanguage:
		return h.acceptLanguage
	case clientctx.HeaderTimezone:
		return h.timezone
	case clientctx.HeaderPlatform:
		return h.platform
	case clientctx.HeaderAppVersion:
		return h.appVersion
	case clientctx.HeaderDeviceID:
		return h.deviceID
	}
	return nil
}

// Canonical response header names, for setCanonical.
var (
	hdrRequestID    = []byte("X-Request-Id")
	hdrCache        = []byte("X-Cache")
	hdrETag         = []byte("Etag")
	hdrCacheControl = []byte("Cache-Control")
	hdrAge          = []byte("Age")
)

// setCanonical sets a response header whose name is already canonical,
// skipping fasthttp's per-call normalization; the value is copied by
// fasthttp, so viewing the string as bytes is safe.
func setCanonical(h *fasthttp.ResponseHeader, key []byte, value string) {
	h.SetCanonical(key, unsafe.Slice(unsafe.StringData(value), len(value)))
}
