package gateway

import (
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// The envelope is the only shape the gateway answers in:
//
//	{"isSuccess":true,"statusCode":200,"data":{…},"errors":[],"timestamp":"2026-05-22T16:11:26.801Z"}
//
// It is written here and nowhere else, straight into the response buffer:
// data arrives already encoded (a cached entry's bytes, or a handler's
// json output), so the hot path does no reflection and no intermediate
// copy.

var (
	contentTypeJSON = []byte("application/json")
	envSuccessHead  = []byte(`{"isSuccess":true,"statusCode":`)
	envFailureHead  = []byte(`{"isSuccess":false,"statusCode":`)
	envDataKey      = []byte(`,"data":`)
	envNoErrors     = []byte(`,"errors":[],"timestamp":"`)
	envErrorsKey    = []byte(`,"data":null,"errors":[`)
	envTimestampKey = []byte(`],"timestamp":"`)
	envTail         = []byte(`"}`)
	jsonNull        = []byte("null")
)

// writeData answers a success envelope around already-encoded JSON data
// held in a string (a cache entry's immutable bytes).
func writeData(resp *fasthttp.Response, status int, data string) {
	writeEnvelopeHead(resp, status)
	if len(data) == 0 {
		data = "null"
	}
	resp.AppendBodyString(data)
	writeEnvelopeTail(resp)
}

// writeDataBytes is writeData for data just encoded by a handler.
func writeDataBytes(resp *fasthttp.Response, status int, data []byte) {
	writeEnvelopeHead(resp, status)
	if len(data) == 0 {
		data = jsonNull
	}
	resp.AppendBody(data)
	writeEnvelopeTail(resp)
}

func writeEnvelopeHead(resp *fasthttp.Response, status int) {
	resp.SetStatusCode(status)
	resp.Header.SetContentTypeBytes(contentTypeJSON)
	resp.ResetBody()
	var num [8]byte
	resp.AppendBody(envSuccessHead)
	resp.AppendBody(strconv.AppendInt(num[:0], int64(status), 10))
	resp.AppendBody(envDataKey)
}

func writeEnvelopeTail(resp *fasthttp.Response) {
	var tail [64]byte
	b := append(tail[:0], envNoErrors...)
	b = appendTimestamp(b, time.Now())
	resp.AppendBody(append(b, envTail...))
}

// writeErrors answers a failure envelope; status is also the HTTP status.
// No cache may keep it: a 404 is cacheable by default (RFC 9111 section
// 4.2.2), and a 401, 403 or 429 kept by an app's or a proxy's cache would
// answer the next request, with a fresh token or after the limit's window,
// wrongly.
func writeErrors(resp *fasthttp.Response, status int, messages ...string) {
	resp.SetStatusCode(status)
	resp.Header.SetContentTypeBytes(contentTypeJSON)
	setCanonical(&resp.Header, hdrCacheControl, "no-store")
	if len(messages) == 0 {
		messages = []string{statusMessage(status).text(0)}
	}
	resp.SetBodyRaw(appendEnvelope(make([]byte, 0, 128), status, nil, messages))
}

// secondStamp holds the formatted start of the current second,
// "2006-01-02T15:04:05.", so a timestamp is that prefix and three digits:
// one format per second instead of one per response.
type secondStamp struct {
	sec    int64
	prefix [20]byte
}

var currentSecond atomic.Pointer[secondStamp]

// appendTimestamp appends t as the envelope's timestamp: UTC,
// milliseconds, Z (2026-05-22T16:11:26.801Z).
func appendTimestamp(dst []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	sec, milli := ms/1000, ms%1000
	if milli < 0 { // before 1970
		sec, milli = sec-1, milli+1000
	}
	s := currentSecond.Load()
	if s == nil || s.sec != sec {
		s = &secondStamp{sec: sec}
		prefix := time.Unix(sec, 0).UTC().AppendFormat(s.prefix[:0], "2006-01-02T15:04:05.")
		if len(prefix) != len(s.prefix) { // a year beyond 9999: format it whole
			return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
		}
		currentSecond.Store(s)
	}
	dst = append(dst, s.prefix[:]...)
	return append(dst, byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z')
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD so the output is always valid JSON.
func appendJSONString(dst []byte, s string) []byte {
	// Fast path: ids, route names and most texts need no escaping.
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && jsonPlain[s[i]] {
		i++
	}
	if i == len(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\':
				dst = append(dst, '\\', b)
			case b == '\n':
				dst = append(dst, '\\', 'n')
			case b == '\r':
				dst = append(dst, '\\', 'r')
			case b == '\t':
				dst = append(dst, '\\', 't')
			case b < 0x20 || b == '<' || b == '>' || b == '&':
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			default:
				dst = append(dst, b)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// appendEnvelope builds a whole envelope in memory, for writers that are
// not fasthttp responses (the ops listener). data is used when errs is
// empty.
func appendEnvelope(dst []byte, status int, data []byte, errs []string) []byte {
	if len(errs) == 0 {
		dst = append(dst, envSuccessHead...)
		dst = strconv.AppendInt(dst, int64(status), 10)
		dst = append(dst, envDataKey...)
		if len(data) == 0 {
			data = jsonNull
		}
		dst = append(dst, data...)
		dst = append(dst, envNoErrors...)
	} else {
		dst = append(dst, envFailureHead...)
		dst = strconv.AppendInt(dst, int64(status), 10)
		dst = append(dst, envErrorsKey...)
		for i, m := range errs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, m)
		}
		dst = append(dst, envTimestampKey...)
	}
	dst = appendTimestamp(dst, time.Now())
	return append(dst, envTail...)
}

// jsonPlain marks the ASCII bytes appendJSONString writes as they are.
var jsonPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0x7f
	}
	return t
}()
