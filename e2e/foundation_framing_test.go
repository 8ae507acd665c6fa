package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// framingAnswers writes raw on a new connection and reads every answer
// until the gateway closes the connection (closed) or says nothing more
// for wait.
func framingAnswers(t *testing.T, gw *Gateway, raw string, wait time.Duration) (answers []*Response, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return answers, false
			}
			return answers, true
		}
		answers = append(answers, readResponse(t, resp, "an answer"))
	}
}

// A request whose body another HTTP/1.1 parser (the ingress in front)
// could frame differently is refused and its connection closed, so that
// what follows it on the connection (here a request for an unknown path)
// is never read as a request. Unambiguous variants still work, kept alive.
func TestFoundationFramingAmbiguousRefused(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)
	auth := "Authorization: Bearer " + tok + "\r\n"
	post := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\n" + auth + "Content-Type: application/json\r\n"
	get := "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n" + auth
	body := `{"username":"abcdef"}`
	cl := fmt.Sprintf("Content-Length: %d\r\n", len(body))
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	next := "GET /api/v1/users/nosuch HTTP/1.1\r\nHost: gw\r\n\r\n" // 404 if read

	for _, c := range []struct{ name, raw string }{
		{"Content-Length and Transfer-Encoding", post + cl + "Transfer-Encoding: chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding and Content-Length", post + "Transfer-Encoding: chunked\r\n" + cl + "\r\n" + chunked},
		{"two different Content-Lengths", post + "Content-Length: 0\r\n" + cl + "\r\n" + body},
		{"two equal Content-Lengths", post + cl + cl + "\r\n" + body},
		{"Transfer-Encoding xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n" + chunked},
		{"Transfer-Encoding gzip", post + "Transfer-Encoding: gzip\r\n\r\n" + chunked},
		{"Transfer-Encoding chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n" + chunked},
		{"Transfer-Encoding identity, chunked", post + "Transfer-Encoding: identity, chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding identity with Content-Length", post + "Transfer-Encoding: identity\r\n" + cl + "\r\n" + body},
		{"Transfer-Encoding identity alone", post + "Transfer-Encoding: identity\r\n\r\n" + body},
		{"Transfer-Encoding twice", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding in HTTP/1.0", strings.Replace(post, "HTTP/1.1", "HTTP/1.0", 1) +
			"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"obs-fold Transfer-Encoding", post + "Transfer-Encoding:\r\n chunked\r\n\r\n" + chunked},
		{"obs-fold", get + "X-Language: tr\r\n en\r\n\r\n"},
		{"bare LF line ends", strings.ReplaceAll(post+cl, "\r\n", "\n") + "\n" + body},
		{"bare LF before Transfer-Encoding", post + "X-A: 1\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"bare CR in a value", post + "X-A: 1\rTransfer-Encoding: chunked\r\n" + cl + "\r\n" + body},
		{"NUL in a value", get + "X-Device-Id: a\x00b\r\n\r\n"},
		{"control byte in a value", get + "X-Thing: a\x01\x7fb\r\n\r\n"},
		{"control byte in a name", post + "Transfer-Encoding\x0b: chunked\r\n" + cl + "\r\n" + body},
		{"two Hosts", get + "Host: other\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := framingAnswers(t, gw, c.raw+next, 2*time.Second)
			if len(answers) != 1 {
				for _, a := range answers {
					t.Logf("answer %d: %s", a.Status, a.Body)
				}
				t.Fatalf("%d answers, want 1 (the request after it must not be read)", len(answers))
			}
			fndOnly(t, answers[0], http.StatusBadRequest, "Validation failed")
			if !fndUUIDv4.MatchString(answers[0].Header.Get("X-Request-Id")) {
				t.Fatalf("X-Request-Id %q is not a generated v4 UUID", answers[0].Header.Get("X-Request-Id"))
			}
			if !closed {
				t.Fatal("the connection stayed open")
			}
		})
	}
	// Refused whatever its body: a body that has not come (or not all of
	// it) is not waited for. It was: the client got a 408 once the read
	// timeout passed, or nothing before it gave up.
	for _, c := range []struct{ name, raw string }{
		{"Content-Length and Transfer-Encoding, no body sent", post + cl + "Transfer-Encoding: chunked\r\n\r\n"},
		{"Content-Length and Transfer-Encoding, half a body sent", post + cl + "Transfer-Encoding: chunked\r\n\r\n" + chunked[:6]},
		{"two Content-Lengths, no body sent", post + cl + cl + "\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := framingAnswers(t, gw, c.raw, 2*time.Second)
			if len(answers) != 1 {
				t.Fatalf("%d answers within 2s, want the 400 at once", len(answers))
			}
			fndOnly(t, answers[0], http.StatusBadRequest, "Validation failed")
			if !fndUUIDv4.MatchString(answers[0].Header.Get("X-Request-Id")) {
				t.Fatalf("X-Request-Id %q is not a generated v4 UUID", answers[0].Header.Get("X-Request-Id"))
			}
			if !closed {
				t.Fatal("the connection stayed open")
			}
		})
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("ambiguous requests reached the store %d times", n)
	}

	// Unambiguous spellings are served, and the connection kept.
	for _, c := range []struct {
		name, raw string
		status    int
	}{
		{"Content-Length", post + cl + "\r\n" + body, http.StatusOK},
		{"Content-Length with leading zeros", post + "Content-Length: 000" + fmt.Sprint(len(body)) + "\r\n\r\n" + body, http.StatusOK},
		{"HTTP/1.0 keep-alive", "GET /api/v1/users/me HTTP/1.0\r\nConnection: keep-alive\r\n" + auth + "\r\n", http.StatusOK},
		// RFC 9112 section 3.2: HTTP/1.1 requires Host, a 400 whose
		// framing is sound; HTTP/1.0 does not.
		{"no headers at all", "GET /api/v1/users/nosuch HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"HTTP/1.0 without Host", "GET /api/v1/users/nosuch HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", http.StatusNotFound},
		{"a value with obs-text and a tab", get + "X-Thing: caf\xc3\xa9\tb\r\n\r\n", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := framingAnswers(t, gw, c.raw+next, 700*time.Millisecond)
			if len(answers) != 2 || answers[0].Status != c.status || answers[1].Status != http.StatusNotFound {
				for _, a := range answers {
					t.Logf("answer %d: %s", a.Status, a.Body)
				}
				t.Fatalf("%d answers, want %d then 404", len(answers), c.status)
			}
			if closed {
				t.Fatal("the connection was closed")
			}
		})
	}
}

// A chunked request is served, and then its connection is closed: fasthttp
// reads chunk-size lines leniently (it skips whatever follows the size up
// to a CR, a bare LF included), so a parser in front could end the body
// elsewhere; with nothing more read from the connection, no such
// difference can make a second request of the rest.
func TestFoundationFramingChunkedClosesConnection(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	auth := "Authorization: Bearer " + idp.UserToken(t) + "\r\n"
	post := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\n" + auth + "Content-Type: application/json\r\n"
	body := `{"username":"abcdef"}`
	size := fmt.Sprintf("%x", len(body))
	next := "GET /api/v1/users/nosuch HTTP/1.1\r\nHost: gw\r\n\r\n" // 404 if read

	for _, c := range []struct {
		name, raw string
		status    int
	}{
		{"chunked", post + "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + body + "\r\n0\r\n\r\n", http.StatusOK},
		{"Chunked, any case, with tabs", post + "Transfer-Encoding:\tChunked\t\r\n\r\n" + size + "\r\n" + body + "\r\n0\r\n\r\n", http.StatusOK},
		{"in two chunks", post + "Transfer-Encoding: chunked\r\n\r\n3\r\n" + body[:3] + "\r\n" + fmt.Sprintf("%x", len(body)-3) + "\r\n" + body[3:] + "\r\n0\r\n\r\n", http.StatusOK},
		// Read leniently by fasthttp: a chunk extension, junk after the
		// size, a bare LF inside the size line. Another parser may see a
		// different body; either way nothing after it is a request.
		{"chunk extension", post + "Transfer-Encoding: chunked\r\n\r\n" + size + ";x=y\r\n" + body + "\r\n0\r\n\r\n", http.StatusOK},
		{"junk after the size", post + "Transfer-Encoding: chunked\r\n\r\n" + size + "zz\r\n" + body + "\r\n0\r\n\r\n", http.StatusOK},
		{"bare LF in the size line", post + "Transfer-Encoding: chunked\r\n\r\n" + size + ";\nx\r\n" + body + "\r\n0\r\n\r\n", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := framingAnswers(t, gw, c.raw+next, 2*time.Second)
			if len(answers) != 1 || answers[0].Status != c.status {
				for _, a := range answers {
					t.Logf("answer %d: %s", a.Status, a.Body)
				}
				t.Fatalf("%d answers, want one %d", len(answers), c.status)
			}
			if !closed {
				t.Fatal("the connection stayed open")
			}
		})
	}
}
