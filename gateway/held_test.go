package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
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

// A client that pipelines a request after another and ends its side of the
// connection inside the second one's chunked body, where a chunk-size line
// would start, gets the answer to the first, then the second's 400, as it
// does when a body announced by Content-Length is cut short. fasthttp took
// the end of the stream there for a connection closing between requests:
// it answered neither, and the first answer, kept back for the pipeline's
// next one, was never written.
func TestCutChunkedBodyKeepsThePipelinedAnswer(t *testing.T) {
	r := newMixRig(t)
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	const first = "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Request-Id: first\r\n\r\n"
	const second = "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Request-Id: second\r\n" +
		"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"use\r\n"
	if _, err := io.WriteString(conn, first+second); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, body := readAnswer(t, conn, br)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Request-Id") != "first" {
		t.Fatalf("first answer: %d, X-Request-Id %q: %s", resp.StatusCode, resp.Header.Get("X-Request-Id"), body)
	}
	resp, body = readAnswer(t, conn, br)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Request-Id") != "second" || !resp.Close {
		t.Fatalf("second answer: %d, X-Request-Id %q, Connection: close %v: %s",
			resp.StatusCode, resp.Header.Get("X-Request-Id"), resp.Close, body)
	}
}

// A single trailer field is refused as several are (sentTrailers): the
// count of a chunked request's header fields is exact, so the one field
// fasthttp appends after the body is seen. Without trailer fields the
// same request is served.
func TestOneTrailerFieldIsRefused(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	body := `{"username":"freshname"}`
	chunked := func(trailer string) string {
		return "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nX-Request-Id: chunked-1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n%s\r\n", len(body), body, trailer)
	}
	if a := firstAnswer(t, r, chunked("")); a.status != http.StatusOK {
		t.Fatalf("no trailer fields: status %d, want 200: %s", a.status, a.body)
	}
	a := firstAnswer(t, r, chunked("X-Language: tr\r\n"))
	edgeFailure(t, a, http.StatusBadRequest, "Validation failed")
	if id := a.header.Get("X-Request-Id"); id == "chunked-1" {
		t.Fatalf("X-Request-Id %q: the refused request's own, want a new one", id)
	}
}

// The header block held for a failing body is restored at any size the
// hook holds it at, up to maxHeld with its target (the request line is
// held too, and made it larger than the reader restoreHeld read it with);
// one byte more is not held, and its cut body is answered as one whose
// headers were lost (English, a new request id).
func TestHeldBlockRestoredUpToItsBound(t *testing.T) {
	r := newMixRig(t)
	const target = "/api/v1/users/check-username"
	head := "Host: gw\r\nX-Language: tr\r\nX-Request-Id: held-1\r\nContent-Type: application/json\r\nContent-Length: 100\r\nX-Filler: "
	for _, c := range []struct {
		size   int // the block's length with its target's
		msg    string
		sameID bool
	}{
		{maxHeld, "Doğrulama başarısız oldu", true},
		{maxHeld + 1, "Validation failed", false},
	} {
		raw := head + strings.Repeat("f", c.size-len(target)-len(head)-len("\r\n\r\n")) + "\r\n\r\n"
		conn, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, "POST "+target+" HTTP/1.1\r\n"+raw+"{\"user"); err != nil {
			t.Fatal(err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil { // the body cut short
			t.Fatal(err)
		}
		resp, body := readAnswer(t, conn, bufio.NewReader(conn))
		conn.Close()
		edgeFailure(t, edgeAnswer{status: resp.StatusCode, header: resp.Header, body: body}, http.StatusBadRequest, c.msg)
		if got := resp.Header.Get("X-Request-Id"); (got == "held-1") != c.sameID {
			t.Fatalf("block and target of %d bytes: X-Request-Id %q; want the client's held-1: %v", c.size, got, c.sameID)
		}
	}
}

// A chunked request whose trailer section fails (over the read buffer)
// after a header block too large to hold (maxHeld) is answered as one
// whose headers were not read: English, a new request id, no CORS. Its
// headers are still there, but fasthttp may have merged trailer fields
// into them, and trailer fields are never read as headers.
func TestFailedTrailersOfAnUnheldBlockAreNotTrusted(t *testing.T) {
	r := newMixRig(t)
	const origin = "http://localhost:3000" // config.yaml's web origin
	a := firstAnswer(t, r, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\nX-Request-Id: trailer-1\r\n"+
		"Origin: "+origin+"\r\nX-Filler: "+strings.Repeat("f", maxHeld)+"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"2\r\n{}\r\n0\r\nX-T: "+strings.Repeat("t", 8<<10)+"\r\n\r\n")
	edgeFailure(t, a, http.StatusRequestHeaderFieldsTooLarge, "Request headers too large")
	if id := a.header.Get("X-Request-Id"); id == "trailer-1" {
		t.Fatalf("X-Request-Id %q: the client's, want a new one", id)
	}
	if got := a.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("Access-Control-Allow-Origin %q, want none", got)
	}
}
