package gateway

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/valyala/fasthttp"
)

// FuzzRequestHeaders: the one pass over the header block gives, for every
// header the gateway reads, what fasthttp's Peek gives for it (the first
// of repeated ones), but a repeated traceparent, which stands for none.
func FuzzRequestHeaders(f *testing.F) {
	for _, block := range []string{
		"X-Request-Id: abc\r\nX-Language: tr\r\n",
		"x-request-id: a\r\nX-REQUEST-ID: b\r\n",
		"X-Platform:\r\nX-Platform: ios\r\n",
		"X-Platform: \r\nX-Platform: ios\r\n",
		"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\ntraceparent: x\r\n",
		"Traceparent: \r\n",
		"Origin: https://app.example\r\nIf-None-Match: \"abc\"\r\nIf-None-Match: \"def\"\r\n",
		"If-None-Match:\r\nIf-None-Match: \"def\"\r\nIf-None-Match: *\r\n",
		"Accept-Language: tr-TR,tr;q=0.9\r\nX-Timezone: UTC+3\r\nX-App-Version: 1.2.3\r\nX-Device-Id: d:1\r\n",
		"Accept-Language: de\r\nX-Language: xx\r\naccept-language: tr;q=0.8\r\nAccept-Language:\r\n",
		"X-Request_Id: underscore\r\nX-Request-Id : space\r\n",
		"X-Device-Id:   padded   \r\n",
	} {
		f.Add(block)
	}
	f.Fuzz(func(t *testing.T, block string) {
		var rh fasthttp.RequestHeader
		raw := "GET / HTTP/1.1\r\nHost: gateway\r\n" + block + "\r\n"
		if err := rh.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return
		}
		var h requestHeaders
		h.read(&rh)
		if more := len(rh.PeekAll("If-None-Match")) > 1; h.moreIfNoneMatch != more {
			t.Fatalf("%q: moreIfNoneMatch %v, want %v", block, h.moreIfNoneMatch, more)
		}
		for _, c := range []struct {
			name string
			got  []byte
		}{
			{"X-Request-Id", h.requestID},
			{clientctx.HeaderLanguage, h.language},
			{clientctx.HeaderAcceptLanguage, h.acceptLanguage},
			{clientctx.HeaderTimezone, h.timezone},
			{clientctx.HeaderPlatform, h.platform},
			{clientctx.HeaderAppVersion, h.appVersion},
			{clientctx.HeaderDeviceID, h.deviceID},
			{"Traceparent", h.traceparent},
			{"Origin", h.origin},
			{"If-None-Match", h.ifNoneMatch},
		} {
			want := rh.Peek(c.name)
			if c.name == "Traceparent" && len(rh.PeekAll(c.name)) > 1 {
				want = repeatedTraceparent
			}
			if c.name == clientctx.HeaderAcceptLanguage {
				want = acceptLanguageOf(&rh) // a list: its lines joined
			}
			if !bytes.Equal(c.got, want) {
				t.Fatalf("%q: %s read as %q, Peek gives %q", block, c.name, c.got, want)
			}
			if p := h.Peek(c.name); c.name != "X-Request-Id" && c.name != "Traceparent" && c.name != "Origin" && c.name != "If-None-Match" && !bytes.Equal(p, c.got) {
				t.Fatalf("%q: requestHeaders.Peek(%s) = %q, read %q", block, c.name, p, c.got)
			}
		}
	})
}
