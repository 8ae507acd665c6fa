package gateway

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// After settleHost, fasthttp's URI has the path the request line sent.
// fasthttp reads a host out of a target that starts with "//" when the
// request names none, and also, whatever its Host, when "://" appears
// anywhere in the target (a URL in the query): "//x/api/admin/..." was
// then the path /api/admin/... on the host x.
func TestSettleHostKeepsTheTargetsPath(t *testing.T) {
	for _, c := range []struct{ raw, path string }{
		{"GET //x/api/v1/users/me HTTP/1.0\r\n\r\n", "//x/api/v1/users/me"},
		{"GET //x/api/v1/users/me HTTP/1.1\r\nHost:\r\n\r\n", "//x/api/v1/users/me"},
		{"GET //x/api/v1/users/me HTTP/1.1\r\nHost: \t\r\n\r\n", "//x/api/v1/users/me"},
		{"GET //x/api/v1/users/me HTTP/1.1\r\nHost: gw\r\n\r\n", "//x/api/v1/users/me"},
		{"GET //x/api/admin/v1/users/search?query=a&next=https://y HTTP/1.1\r\nHost: gw\r\n\r\n", "//x/api/admin/v1/users/search"},
		{"GET //x/api/v1/users/me?next=https://y HTTP/1.0\r\n\r\n", "//x/api/v1/users/me"},
		{"GET //x/a://b HTTP/1.1\r\nHost: gw\r\n\r\n", "//x/a://b"},
		{"GET ///api/v1/users/me HTTP/1.1\r\nHost:\r\n\r\n", "///api/v1/users/me"},
		{"GET /api/v1/users/me?next=https://y HTTP/1.1\r\nHost: gw\r\n\r\n", "/api/v1/users/me"},
		{"GET /api/v1/users/me HTTP/1.1\r\nHost: \tgw\t\r\n\r\n", "/api/v1/users/me"},
		{"GET /api/v1/users/me HTTP/1.1\r\nHost: gw\t \r\n\r\n", "/api/v1/users/me"},
		{"GET /api/v1/users/me HTTP/1.1\r\nHost:  \t gw \t \r\n\r\n", "/api/v1/users/me"},
		{"GET /api/v1/users/me HTTP/1.1\r\nHost: gw \t\r\n\r\n", "/api/v1/users/me"},
		{"GET http://gw/api/v1/users/me HTTP/1.0\r\n\r\n", "/api/v1/users/me"},
	} {
		var req fasthttp.Request
		if err := req.Header.Read(bufio.NewReader(strings.NewReader(c.raw))); err != nil {
			t.Fatalf("%q: %v", c.raw, err)
		}
		settleHost(&req.Header)
		if got := string(req.URI().PathOriginal()); got != c.path {
			t.Errorf("%q: path %q, want %q", c.raw, got, c.path)
		}
	}
}

// settleHost runs on every request: an app's, whose Host and target it
// leaves alone.
func BenchmarkSettleHost(b *testing.B) {
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader("GET /api/v1/users/me HTTP/1.1\r\nHost: api.example.com\r\n\r\n"))); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		settleHost(&h)
	}
}
