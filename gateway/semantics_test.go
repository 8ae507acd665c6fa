package gateway

// HTTP semantics the gateway owes clients and intermediaries (RFC 9110,
// 9111, 9112, 6750), through a real gateway on loopback and raw requests.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
)

// rawExchange writes raw on a new connection to the rig and reads the
// answers until the connection is closed or stays quiet for wait; closed
// says which. Every answer's body is read.
func rawExchange(t *testing.T, r *mixRig, raw string, wait time.Duration) (answers []edgeAnswer, closed bool) {
	t.Helper()
	conn := sendRaw(t, r, raw)
	defer conn.Close()
	return readAnswers(conn, wait)
}

// readAnswers reads the answers on conn until it is closed or stays quiet
// for wait; closed says which. Every answer's body is read.
func readAnswers(conn net.Conn, wait time.Duration) (answers []edgeAnswer, closed bool) {
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
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Close { // net/http takes Connection: close out of the header
			resp.Header.Set("Connection", "close")
		}
		answers = append(answers, edgeAnswer{status: resp.StatusCode, header: resp.Header, body: body})
	}
}

// sendRaw writes raw on a new connection to the rig, which it returns.
func sendRaw(t *testing.T, r *mixRig, raw string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return conn
}

// firstAnswer writes raw on a new connection to the rig and reads its
// first answer, body included, for tests that look at that one only: it
// waits for nothing after it, and gives it as long as a busy machine needs.
func firstAnswer(t *testing.T, r *mixRig, raw string) edgeAnswer {
	t.Helper()
	conn := sendRaw(t, r, raw)
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The method tells whether a body follows (none after HEAD's answer).
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		what, _, _ := strings.Cut(raw, "\r\n")
		t.Fatalf("%s: no answer: %v", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return edgeAnswer{status: resp.StatusCode, header: resp.Header, body: body}
}

// An HTTP/1.1 request without Host is a 400 (RFC 9112 section 3.2: a
// server MUST), answered in the caller's language since its header block
// parsed; the connection stays usable. HTTP/1.0 has no Host to require.
func TestRequestWithoutHost(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	next := "GET /api/v1/users/nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"
	for _, c := range []struct {
		name, raw string
		status    int
		msgs      []string
	}{
		{"HTTP/1.1 without Host", "GET /api/v1/users/me HTTP/1.1\r\nAuthorization: Bearer " + tok + "\r\nX-Language: tr\r\n\r\n",
			http.StatusBadRequest, []string{"Doğrulama başarısız oldu", "Host başlığı zorunludur"}},
		{"HTTP/1.1 without Host, unknown path", "GET /nosuch HTTP/1.1\r\n\r\n",
			http.StatusBadRequest, []string{"Validation failed", "the Host header is required"}},
		{"HTTP/1.1 without Host, absolute-form", "GET http://gw/api/v1/users/me HTTP/1.1\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
			http.StatusBadRequest, []string{"Validation failed", "the Host header is required"}},
		{"HTTP/1.1 without Host, unknown method", "BREW /api/v1/users/me HTTP/1.1\r\n\r\n",
			http.StatusBadRequest, []string{"Validation failed", "the Host header is required"}},
		{"HTTP/1.1 with an empty Host", "GET /api/v1/users/me HTTP/1.1\r\nHost:\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
			http.StatusOK, nil},
		{"HTTP/1.0 without Host", "GET /api/v1/users/me HTTP/1.0\r\nConnection: keep-alive\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
			http.StatusOK, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := rawExchange(t, r, c.raw+next, 700*time.Millisecond)
			if len(answers) != 2 || closed {
				t.Fatalf("%d answers (closed %v), want 2 on a kept connection", len(answers), closed)
			}
			a := answers[0]
			if c.msgs == nil {
				if a.status != c.status {
					t.Fatalf("status %d, want %d: %s", a.status, c.status, a.body)
				}
			} else {
				edgeFailure(t, a, c.status, c.msgs...)
			}
			if answers[1].status != http.StatusNotFound {
				t.Fatalf("the next request: %d, want 404", answers[1].status)
			}
		})
	}
}

// An absolute-form target of another scheme than http or https names a
// resource the gateway does not serve (RFC 9112 section 3.2.2): a 400, in
// the caller's language since its header block parsed, and the connection
// kept, as for an authority that is no host. fasthttp took its path: it
// was served as the profile. The scheme's case does not matter (RFC 3986
// section 3.1).
func TestAbsoluteFormOfAnotherScheme(t *testing.T) {
	r := newMixRig(t)
	auth := "Authorization: Bearer " + r.token(t, r.users(t, 1)[0]) + "\r\n"
	next := "GET /api/v1/users/nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"
	for _, c := range []struct {
		target string
		status int
		msgs   []string
	}{
		{"x://y/api/v1/users/me", http.StatusBadRequest, []string{"Doğrulama başarısız oldu", "URL şeması http veya https olmalıdır"}},
		{"ftp://gw/api/v1/users/me", http.StatusBadRequest, []string{"Doğrulama başarısız oldu", "URL şeması http veya https olmalıdır"}},
		{"Https+x://gw/api/v1/users/me?a=1", http.StatusBadRequest, []string{"Doğrulama başarısız oldu", "URL şeması http veya https olmalıdır"}},
		{"ws://gw/nosuch", http.StatusBadRequest, []string{"Doğrulama başarısız oldu", "URL şeması http veya https olmalıdır"}},
		{"HTTP://gw/api/v1/users/me", http.StatusOK, nil},
		{"hTTPs://gw/api/v1/users/me", http.StatusOK, nil},
	} {
		t.Run(c.target, func(t *testing.T) {
			answers, closed := rawExchange(t, r, "GET "+c.target+" HTTP/1.1\r\nHost: gw\r\n"+auth+"X-Language: tr\r\n\r\n"+next, 700*time.Millisecond)
			if len(answers) != 2 || closed {
				t.Fatalf("%d answers (closed %v), want 2 on a kept connection", len(answers), closed)
			}
			if c.msgs == nil {
				if answers[0].status != c.status {
					t.Fatalf("status %d, want %d: %s", answers[0].status, c.status, answers[0].body)
				}
			} else {
				edgeFailure(t, answers[0], c.status, c.msgs...)
			}
			if answers[1].status != http.StatusNotFound {
				t.Fatalf("the next request: %d, want 404", answers[1].status)
			}
		})
	}
}

// A request that announces a body over the limit and asks to be told
// before sending it (Expect: 100-continue) gets the 413 envelope at once,
// in its language: a 100 Continue first would invite the client to send
// a body that is refused anyway. One within the limit is still told to go
// on, and served.
func TestExpectContinueOverTheLimit(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	head := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
		"\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nX-Language: tr\r\n"

	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, head+"Content-Length: 1000000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	edgeFailure(t, edgeAnswer{status: resp.StatusCode, header: resp.Header, body: body},
		http.StatusRequestEntityTooLarge, "İstek gövdesi çok büyük")

	// Within the limit: 100 Continue, then the answer once the body came.
	conn2, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	payload := `{"username":"freshname"}`
	if _, err := io.WriteString(conn2, head+"Content-Length: "+strconv.Itoa(len(payload))+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	br2 := bufio.NewReader(conn2)
	line, err := br2.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("first line %q (%v), want 100 Continue", line, err)
	}
	if blank, _ := br2.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue followed by %q", blank)
	}
	if _, err := io.WriteString(conn2, payload); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br2, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d after the body, want 200", resp.StatusCode)
	}
}

// Every error the gateway makes is Cache-Control: no-store: a 404 is
// cacheable by default (RFC 9111 section 4.2.2), and a 401 or 429 reused
// by a cache would answer later requests wrongly. Successes keep theirs.
func TestErrorsAreNoStore(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	ghost := r.token(t, "00000000-0000-4000-8000-00000000dead")
	bearer := "Authorization: Bearer " + tok + "\r\n"
	for _, c := range []struct {
		name, raw string
		status    int
		cc        string
	}{
		{"unknown path", "GET /nosuch HTTP/1.1\r\nHost: gw\r\n\r\n", 404, "no-store"},
		{"unknown user", "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + ghost + "\r\n\r\n", 404, "no-store"},
		{"no token", "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n\r\n", 401, "no-store"},
		{"wrong method", "DELETE /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n" + bearer + "\r\n", 405, "no-store"},
		{"unknown method", "BREW /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n\r\n", 405, "no-store"},
		{"invalid page", "GET /api/v2/users/search?page=0 HTTP/1.1\r\nHost: gw\r\n" + bearer + "\r\n", 400, "no-store"},
		{"forbidden", "GET /api/admin/v1/users/search HTTP/1.1\r\nHost: gw\r\n" + bearer + "\r\n", 403, "no-store"},
		{"body too large", "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\n" + bearer + "Content-Length: 100000\r\n\r\n", 413, "no-store"},
		{"no Host", "GET /api/v1/users/me HTTP/1.1\r\n" + bearer + "\r\n", 400, "no-store"},
		{"broken request line", "GET /a b HTTP/1.1\r\nHost: gw\r\n\r\n", 400, "no-store"},
		{"search", "GET /api/v2/users/search?query=a HTTP/1.1\r\nHost: gw\r\n" + bearer + "\r\n", 200, "private, max-age=15"},
		{"profile", "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n" + bearer + "\r\n", 200, "private, no-store"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := firstAnswer(t, r, c.raw)
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.body)
			}
			if got := a.header.Values("Cache-Control"); len(got) != 1 || got[0] != c.cc {
				t.Fatalf("Cache-Control %q, want %q", got, c.cc)
			}
		})
	}
}

// The 401's challenge (RFC 6750 section 3.1): without a bearer token, the
// scheme and realm alone; with one that is refused, error="invalid_token"
// too, and never a description of why.
func TestUnauthorizedChallenge(t *testing.T) {
	r := newMixRig(t)
	sub := r.users(t, 1)[0]
	mint := func(c devidp.MintClaims, opts ...devidp.MintOption) string {
		if c.Subject == "" {
			c.Subject = sub
		}
		if c.ExpiresAt.IsZero() {
			c.ExpiresAt = time.Now().Add(time.Hour)
		}
		tok, err := r.idp.Mint(c, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	const (
		none      = `Bearer realm="api"`
		invalid   = `Bearer realm="api", error="invalid_token"`
		malformed = `Bearer realm="api", error="invalid_request"`
	)
	for _, c := range []struct {
		name, auth, want string
	}{
		{"no Authorization", "", none},
		{"empty Authorization", "Authorization: \r\n", none},
		{"the scheme alone", "Authorization: Bearer\r\n", none},
		{"the scheme and spaces", "Authorization: Bearer   \r\n", none},
		{"another scheme", "Authorization: Basic dXNlcjpwYXNz\r\n", none},
		{"expired", "Authorization: Bearer " + mint(devidp.MintClaims{IssuedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)}) + "\r\n", invalid},
		{"expired, bare", "Authorization: " + mint(devidp.MintClaims{IssuedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)}) + "\r\n", invalid},
		{"unknown key", "Authorization: Bearer " + mint(devidp.MintClaims{}, devidp.WithKeyID("rs256-0000000000000000")) + "\r\n", invalid},
		{"wrong audience", "Authorization: Bearer " + mint(devidp.MintClaims{Audience: []string{"another-api"}}) + "\r\n", invalid},
		{"junk", "Authorization: Bearer junk\r\n", invalid},
		// Authorization is no list field (RFC 9110 section 5.3): two lines
		// are a malformed request, which RFC 6750 answers 400.
		{"two headers", "Authorization: Bearer a.b.c\r\nAuthorization: Bearer a.b.c\r\n", malformed},
		{"two headers, one good", "Authorization: Bearer " + mint(devidp.MintClaims{}) + "\r\nAuthorization: \r\n", malformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := firstAnswer(t, r, "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n"+c.auth+"\r\n")
			if c.want == malformed {
				edgeFailure(t, a, http.StatusBadRequest, "Validation failed", "the Authorization header must be given once")
			} else {
				edgeFailure(t, a, http.StatusUnauthorized, "Authentication required")
			}
			if got := a.header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != c.want {
				t.Fatalf("WWW-Authenticate %q, want %q", got, c.want)
			}
		})
	}
}

// If-None-Match is a list, and repeated field lines are one list (RFC 9110
// sections 5.3 and 13.1.2): the current tag on any line, in any spelling
// the RFC allows, is a 304; no line holding it is the 200.
func TestIfNoneMatchLines(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	get := "GET /api/v2/users/search?query=a HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok + "\r\n"
	first, _ := rawExchange(t, r, get+"\r\n", 500*time.Millisecond)
	if len(first) != 1 || first[0].status != http.StatusOK {
		t.Fatalf("first search: %v", first)
	}
	etag := first[0].header.Get("Etag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	for _, c := range []struct {
		name, lines string
		status      int
	}{
		{"one line", "If-None-Match: " + etag + "\r\n", http.StatusNotModified},
		{"a list", "If-None-Match: \"x\", " + etag + "\r\n", http.StatusNotModified},
		{"weak, without spaces", "If-None-Match: \"x\",W/" + etag + "\r\n", http.StatusNotModified},
		{"a tab", "If-None-Match: \"x\",\t" + etag + "\r\n", http.StatusNotModified},
		{"star", "If-None-Match: *\r\n", http.StatusNotModified},
		{"on the second line", "If-None-Match: \"x\"\r\nIf-None-Match: " + etag + "\r\n", http.StatusNotModified},
		{"on the third line, weak", "If-None-Match: \"x\"\r\nIf-None-Match: \"y\", \"z\"\r\nif-none-match: W/" + etag + "\r\n", http.StatusNotModified},
		{"after an empty line", "If-None-Match:\r\nIf-None-Match: " + etag + "\r\n", http.StatusNotModified},
		{"star on the second line", "If-None-Match: \"x\"\r\nIf-None-Match: *\r\n", http.StatusNotModified},
		{"on no line", "If-None-Match: \"x\"\r\nIf-None-Match: \"y\"\r\n", http.StatusOK},
		{"unquoted", "If-None-Match: " + strings.Trim(etag, `"`) + "\r\n", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, _ := rawExchange(t, r, get+c.lines+"\r\n", 500*time.Millisecond)
			if len(answers) != 1 || answers[0].status != c.status {
				t.Fatalf("answers %v, want one %d", answers, c.status)
			}
			if c.status == http.StatusNotModified && (len(answers[0].body) != 0 || answers[0].header.Get("Etag") != etag) {
				t.Fatalf("304 with body %q, ETag %q", answers[0].body, answers[0].header.Get("Etag"))
			}
		})
	}
}

// A 405 is for a path some route takes (with Allow listing its methods);
// any other path is a 404, whatever the method, also one the router never
// sees (an unknown method): the same path must not be a 405 for BREW and
// a 404 for DELETE.
func TestMethodNotAllowedOnlyOnRoutedPaths(t *testing.T) {
	r := newMixRig(t)
	for _, c := range []struct {
		line   string
		status int
		allow  string
	}{
		{"DELETE /api/admin/v1/users/a/b", 404, ""},
		{"BREW /api/admin/v1/users/a/b", 404, ""},
		{"BREW /api/admin/v1/users/a/b/", 404, ""},
		{"BREW /api/v1/users/me/x", 404, ""},
		// The router matches the target as sent: these are 404 for GET.
		{"BREW /api/v1/users/%6De", 404, ""},
		{"BREW //api/v1/users/me", 404, ""},
		{"BREW /api/v1/users/x/../me", 404, ""},
		{"BREW /api/admin/v1/users/a", 405, "GET, HEAD, OPTIONS"},
		{"BREW /api/admin/v1/users/a/", 405, "GET, HEAD, OPTIONS"},
		{"DELETE /api/admin/v1/users/a/", 405, "GET, HEAD, OPTIONS"},
		{"BREW /api/v1/users/me/", 405, "GET, HEAD, OPTIONS"},
		{"BREW /api/v1/users/check-username", 405, "POST, OPTIONS"},
	} {
		t.Run(c.line, func(t *testing.T) {
			answers, _ := rawExchange(t, r, c.line+" HTTP/1.1\r\nHost: gw\r\n\r\n", 500*time.Millisecond)
			if len(answers) != 1 || answers[0].status != c.status {
				t.Fatalf("answers %v, want one %d", answers, c.status)
			}
			if got := answers[0].header.Get("Allow"); got != c.allow {
				t.Fatalf("Allow %q, want %q", got, c.allow)
			}
		})
	}
}

// The asterisk form of the target asks about the server as a whole (RFC
// 9110 section 9.3.7): OPTIONS * is a 204 with the methods the API takes,
// any other method with it a 400 envelope; the connection stays usable
// either way.
func TestOptionsAsterisk(t *testing.T) {
	r := newMixRig(t)
	next := "GET /nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"
	answers, closed := rawExchange(t, r, "OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n"+next, 500*time.Millisecond)
	if len(answers) != 2 || closed {
		t.Fatalf("%d answers (closed %v), want 2 on a kept connection", len(answers), closed)
	}
	if a := answers[0]; a.status != http.StatusNoContent || a.header.Get("Allow") != "GET, HEAD, POST, OPTIONS" || len(a.body) != 0 {
		t.Fatalf("OPTIONS *: %d, Allow %q, body %q", a.status, a.header.Get("Allow"), a.body)
	}
	if answers[1].status != http.StatusNotFound {
		t.Fatalf("the next request: %d, want 404", answers[1].status)
	}
	// A method the API takes somewhere, one it takes nowhere, and one
	// that HTTP does not define (answered before Fiber's router).
	for _, method := range []string{"GET", "PUT", "BREW"} {
		answers, closed = rawExchange(t, r, method+" * HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\n\r\n"+next, 500*time.Millisecond)
		if len(answers) != 2 || closed {
			t.Fatalf("%s *: %d answers (closed %v), want 2 on a kept connection", method, len(answers), closed)
		}
		edgeFailure(t, answers[0], http.StatusBadRequest, "Doğrulama başarısız oldu")
	}
}

// A search page a client may keep names in Vary every request header its
// answer depends on. On a platform with CORS that includes Origin even
// when the request sent none: the same URL fetched with the web app's
// Origin carries Access-Control-Allow-Origin, and a browser must not
// answer that fetch from a copy kept without it.
func TestCacheableAnswersVaryOnOrigin(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	get := "GET /api/v2/users/search?query=a HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok + "\r\n"
	for _, c := range []struct {
		name, headers string
		origin        bool
	}{
		{"web, no Origin", "", true},
		{"web, the app's Origin", "Origin: http://localhost:3000\r\n", true},
		{"web, another Origin", "Origin: http://evil.example\r\n", true},
		{"mobile, no Origin", "X-Platform: ios\r\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, _ := rawExchange(t, r, get+c.headers+"\r\n", 500*time.Millisecond)
			if len(answers) != 1 || answers[0].status != http.StatusOK {
				t.Fatalf("answers %v", answers)
			}
			var names []string
			for _, v := range answers[0].header.Values("Vary") {
				for n := range strings.SplitSeq(v, ",") {
					names = append(names, strings.TrimSpace(n))
				}
			}
			for _, want := range []string{"Authorization", "X-Language", "Accept-Language", "X-Platform"} {
				if !slices.Contains(names, want) {
					t.Fatalf("Vary %q lacks %s", names, want)
				}
			}
			if n := countOf(names, "Origin"); c.origin && n != 1 || !c.origin && n != 0 {
				t.Fatalf("Vary %q names Origin %d times, want it %v", names, n, c.origin)
			}
		})
	}
}

func countOf(list []string, s string) (n int) {
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// A close option anywhere in Connection, in any case, on any of its lines,
// ends the connection after the answer, which says so (RFC 9112 section
// 9.6: a server MUST close it); fasthttp only heard a lone "close".
func TestConnectionCloseOption(t *testing.T) {
	r := newMixRig(t)
	next := "GET /nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"
	for _, c := range []struct {
		name, lines string
		close       bool
	}{
		{"close", "Connection: close\r\n", true},
		{"Close", "Connection: Close\r\n", true},
		{"in a list", "Connection: keep-alive, close\r\n", true},
		{"in a list, no spaces", "Connection: TE,close\r\n", true},
		{"on the first of two lines", "Connection: close\r\nConnection: keep-alive\r\n", true},
		{"on the second of two lines", "Connection: keep-alive\r\nConnection: close\r\n", true},
		{"keep-alive", "Connection: keep-alive\r\n", false},
		{"a longer token", "Connection: closed, x-close\r\n", false},
		{"none", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := rawExchange(t, r, "GET /nosuch HTTP/1.1\r\nHost: gw\r\n"+c.lines+"\r\n"+next, 500*time.Millisecond)
			want := 2
			if c.close {
				want = 1
			}
			if len(answers) != want || closed != c.close {
				t.Fatalf("%d answers, closed %v; want %d, closed %v", len(answers), closed, want, c.close)
			}
			if got := answers[0].header.Get("Connection"); c.close && !strings.EqualFold(got, "close") {
				t.Fatalf("Connection %q on the last answer, want close", got)
			}
		})
	}
}

// An expectation is compared case-insensitively (RFC 9110 section 10.1.1):
// "100-Continue" is told to go on, as "100-continue" is, instead of being
// left to wait for a 100 that fasthttp, which heard only the lower-case
// spelling, never sent. Expect is a list, over one line or several: a
// 100-continue among other expectations is heard too, wherever it is.
func TestExpectContinueAnyCase(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	payload := `{"username":"freshname"}`
	for _, expect := range []string{
		"100-Continue", "100-CONTINUE", " 100-continue\t",
		"100-Continue\r\nExpect: x-other", "x-other\r\nExpect: 100-Continue", "x-other, 100-Continue", "100-continue, x-other",
	} {
		t.Run(expect, func(t *testing.T) { continuedAndServed(t, r, tok, expect, payload) })
	}
}

// No spelling of a route's path reaches another handler than its route's,
// or its route's around its policy, its authentication or its rate limits.
// A variant the router takes (trailing slashes, absolute-form, another
// Host, a query) runs the route's whole endpoint; one that changes the
// last segment of an admin path (";" parameters, percent-encoding) is the
// admin user route's, for an id that is no user id; any other (doubled or
// dot segments, another case, an encoded "/") is no route's, and an
// absolute-form target of another scheme than http or https is refused.
// Each variant is asked by a caller its route refuses and by one it
// serves, and each answer is the one that route gives: a variant routed
// otherwise, or not at all, gets another.
func TestPathVariantsKeepTheirPolicy(t *testing.T) {
	r := newMixRig(t)
	ids := r.users(t, 2)
	userID, adminID := ids[0], ids[1]
	adminTok, err := r.idp.Mint(devidp.MintClaims{Subject: adminID, Roles: []string{"user", "admin"}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	user := "Authorization: Bearer " + r.token(t, userID) + "\r\n" // no admin role
	admin := "Authorization: Bearer " + adminTok + "\r\n"

	// What a route answers the caller it refuses and the one it serves.
	type route struct {
		refused, served string // the callers' Authorization lines
		refusal, answer routeAnswer
	}
	var (
		noRoute       = route{user, admin, routeAnswer{status: 404, msgs: []string{"Resource not found"}}, routeAnswer{status: 404, msgs: []string{"Resource not found"}}}
		adminSearch   = route{user, admin, routeAnswer{status: 403, msgs: []string{"Insufficient permissions"}}, routeAnswer{status: 200, items: true}}
		adminUser     = route{user, admin, routeAnswer{status: 403, msgs: []string{"Insufficient permissions"}}, routeAnswer{status: 200, id: userID}}
		adminNoID     = route{user, admin, routeAnswer{status: 403, msgs: []string{"Insufficient permissions"}}, routeAnswer{status: 400, msgs: []string{"Validation failed", "user id is not valid"}}}
		me            = route{"", admin, routeAnswer{status: 401, msgs: []string{"Authentication required"}}, routeAnswer{status: 200, id: adminID}}
		schemeRefused = route{user, admin, routeAnswer{status: 400, msgs: []string{"Validation failed", "the URL scheme must be http or https"}},
			routeAnswer{status: 400, msgs: []string{"Validation failed", "the URL scheme must be http or https"}}}
	)
	type reach int
	const (
		own         reach = iota // the path's own route
		lastSeg                  // the route of the path with its last segment changed
		nowhere                  // no route
		otherScheme              // none: refused for its scheme
	)
	variants := []struct {
		target func(p, rest string) string // rest: p without its "/api/"
		reach  reach
	}{
		{func(p, _ string) string { return p }, own},
		{func(p, _ string) string { return p + "/" }, own},
		{func(p, _ string) string { return p + "//" }, own},
		{func(p, _ string) string { return "http://gw" + p }, own},
		{func(p, _ string) string { return "http://other.example" + p }, own},
		{func(p, _ string) string { return "HTTP://GW" + p }, own},
		{func(p, _ string) string { return p + "?x=1" }, own},
		{func(p, _ string) string { return p + ";x=1" }, lastSeg},
		{func(p, _ string) string {
			return p[:len(p)-1] + "%" + strings.ToUpper(strconv.FormatInt(int64(p[len(p)-1]), 16))
		}, lastSeg},
		{func(p, _ string) string { return p + "%20" }, lastSeg},
		{func(p, _ string) string { return p + "%00" }, lastSeg},
		{func(p, _ string) string { return "/" + p }, nowhere},
		{func(_, rest string) string { return "/api//" + rest }, nowhere},
		{func(p, _ string) string { return strings.ToUpper(p) }, nowhere},
		{func(_, rest string) string { return "/api/./" + rest }, nowhere},
		{func(_, rest string) string { return "/api/x/../" + rest }, nowhere},
		{func(_, rest string) string { return "/api/%2e/" + rest }, nowhere},
		{func(_, rest string) string { return "/api%2F" + rest }, nowhere},
		{func(_, rest string) string { return "/api;x/" + rest }, nowhere},
		{func(p, _ string) string { return "x://gw" + p }, otherScheme},
		{func(p, _ string) string { return "FTP://gw" + p }, otherScheme},
	}
	for _, path := range []struct {
		p            string
		own, lastSeg route
	}{
		{"/api/admin/v1/users/search", adminSearch, adminNoID},
		{"/api/admin/v1/users/" + userID, adminUser, adminNoID},
		{"/api/v1/users/me", me, noRoute}, // /api/v1/users/{id} is no route
	} {
		for _, v := range variants {
			target := v.target(path.p, strings.TrimPrefix(path.p, "/api/"))
			rt := map[reach]route{own: path.own, lastSeg: path.lastSeg, nowhere: noRoute, otherScheme: schemeRefused}[v.reach]
			for _, method := range []string{"GET", "HEAD"} {
				for _, c := range []struct {
					auth string
					want routeAnswer
				}{{rt.refused, rt.refusal}, {rt.served, rt.answer}} {
					a := firstAnswer(t, r, method+" "+target+" HTTP/1.1\r\nHost: gw\r\nX-Platform: admin\r\n"+c.auth+"\r\n")
					who := map[string]string{"": "no token", user: "a user", admin: "an admin"}[c.auth]
					if err := c.want.differs(a, method == "HEAD"); err != "" {
						t.Errorf("%s %s by %s: %s", method, target, who, err)
					}
				}
			}
		}
	}
}

// routeAnswer is an answer a route gives.
type routeAnswer struct {
	status int
	msgs   []string // a failure's messages
	id     string   // a profile's id
	items  bool     // a search result
}

// differs says how a differs from w: its status, and for a GET a
// failure's messages, or a success's profile id or search result.
func (w routeAnswer) differs(a edgeAnswer, head bool) string {
	if a.status != w.status {
		return fmt.Sprintf("status %d, want %d: %.120s", a.status, w.status, a.body)
	}
	if head {
		return ""
	}
	var e struct {
		Data struct {
			ID    string            `json:"id"`
			Items []json.RawMessage `json:"items"`
		} `json:"data"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil {
		return fmt.Sprintf("not an envelope: %v: %.120s", err, a.body)
	}
	switch {
	case w.msgs != nil && !slices.Equal(e.Errors, w.msgs):
		return fmt.Sprintf("errors %q, want %q", e.Errors, w.msgs)
	case e.Data.ID != w.id:
		return fmt.Sprintf("the profile of %q, want %q", e.Data.ID, w.id)
	case w.items != (e.Data.Items != nil):
		return fmt.Sprintf("a search result: %v, want %v: %.120s", e.Data.Items != nil, w.items, a.body)
	}
	return ""
}

// Accept-Language sent on more than one line is one list (RFC 9110
// section 5.3: a recipient may join the lines with commas, so a sender
// may split a list over them): "de" then "tr" asks for Turkish, on the
// edge's answers and on those given before it (an unknown method).
func TestAcceptLanguageOverSeveralLines(t *testing.T) {
	r := newMixRig(t)
	for _, c := range []struct {
		raw    string
		status int
		msg    string
	}{
		{"GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nAccept-Language: de\r\nAccept-Language: tr\r\n\r\n", http.StatusUnauthorized, "Kimlik doğrulaması gerekli"},
		{"BREW /nope HTTP/1.1\r\nHost: gw\r\nAccept-Language: de\r\nAccept-Language: tr\r\n\r\n", http.StatusNotFound, "Kaynak bulunamadı"},
		{"GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nAccept-Language: tr;q=0.5\r\nAccept-Language: en;q=0.9\r\n\r\n", http.StatusUnauthorized, "Authentication required"},
	} {
		answers, _ := rawExchange(t, r, c.raw, 500*time.Millisecond)
		if len(answers) != 1 {
			t.Fatalf("%q: %d answers", c.raw, len(answers))
		}
		edgeFailure(t, answers[0], c.status, c.msg)
	}
}

// A policy may list OPTIONS among its CORS methods: the browser then
// preflights a script's OPTIONS request and, once that is allowed, sends
// it with its Origin and no Access-Control-Request-Method. That request
// is an actual one, not a preflight, and its answer needs
// Access-Control-Allow-Origin like any other, or the browser withholds it.
func TestActualOptionsRequestGetsCORS(t *testing.T) {
	r := newMixRig(t, map[string]string{"GATEWAY_POLICIES__WEB__CORS__ALLOWMETHODS": "GET,POST,OPTIONS"})
	const origin = "Origin: http://localhost:3000\r\n"
	answers, _ := rawExchange(t, r, "OPTIONS /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n"+origin+
		"Access-Control-Request-Method: OPTIONS\r\n\r\n", 500*time.Millisecond)
	if len(answers) != 1 || answers[0].status != http.StatusNoContent ||
		answers[0].header.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" {
		t.Fatalf("preflight of OPTIONS: %v", answers)
	}
	answers, _ = rawExchange(t, r, "OPTIONS /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n"+origin+"\r\n", 500*time.Millisecond)
	if len(answers) != 1 || answers[0].status != http.StatusNoContent || answers[0].header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Fatalf("the OPTIONS request: %v", answers)
	}
	a := answers[0]
	if got := a.header.Get("Access-Control-Allow-Origin"); got != "http://localhost:3000" {
		t.Fatalf("Access-Control-Allow-Origin %q on the OPTIONS request's answer, want the origin", got)
	}
	if a.header.Get("Access-Control-Allow-Methods") != "" || a.header.Get("Vary") != "Origin" {
		t.Fatalf("answered as a preflight: %v", a.header)
	}
	// Without an Origin it is no CORS request: no CORS headers.
	answers, _ = rawExchange(t, r, "OPTIONS /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n\r\n", 500*time.Millisecond)
	if len(answers) != 1 || answers[0].header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("OPTIONS without Origin: %v", answers)
	}
}

// An answer a client may keep says how long ago the gateway loaded it
// (RFC 9111 section 5.1, Age) beside its max-age, so a client keeps it
// max-age minus Age (section 4.2): a page served late in its TTL is not
// kept for a whole max-age more. A 304 says what its 200 would. /me with
// no clientMaxAge stays no-store, with no Age.
func TestCachedAnswersCarryTheirAge(t *testing.T) {
	// A TTL far past the test's second: the pages asked for again must
	// still be fresh on a slow machine (with 3s, two seconds of delay
	// after the sleep below would have made them expired).
	r := newMixRig(t, map[string]string{
		"GATEWAY_CACHE__ROUTES__SEARCH__TTL":          "1m",
		"GATEWAY_CACHE__ROUTES__SEARCH__CLIENTMAXAGE": "2s",
	})
	tok := r.token(t, r.users(t, 1)[0])

	// Two pages, loaded at once: one is asked for again with its ETag.
	sent := time.Now()
	a := ageGet(t, r, tok, "/api/v2/users/search?query=a", "")
	b := ageGet(t, r, tok, "/api/v2/users/search?query=b", "")
	loaded := time.Now()
	checkAge(t, "page a, miss", a, http.StatusOK, "MISS", "private, max-age=2", 0, -1)
	checkAge(t, "page b, miss", b, http.StatusOK, "MISS", "private, max-age=2", 0, -1)

	// Each page was stored between sent and loaded; over a second later
	// it is a hit whose Age says so, and a client keeps it a second at
	// most: never past the max-age counted from the load.
	time.Sleep(time.Until(loaded.Add(1100 * time.Millisecond)))
	from := time.Since(loaded)
	hitA := ageGet(t, r, tok, "/api/v2/users/search?query=a", "")
	hitB := ageGet(t, r, tok, "/api/v2/users/search?query=b", b.Header.Get("Etag"))
	to := time.Since(sent)
	checkAge(t, "page a, hit", hitA, http.StatusOK, "HIT", "private, max-age=2", ceilSeconds(from), ceilSeconds(to))
	checkAge(t, "page b, 304 of a hit", hitB, http.StatusNotModified, "HIT", "private, max-age=2", ceilSeconds(from), ceilSeconds(to))

	// /me keeps the default clientMaxAge 0s: no-store on its hit, no Age.
	ageGet(t, r, tok, "/api/v1/users/me", "")
	checkAge(t, "/me, hit", ageGet(t, r, tok, "/api/v1/users/me", ""), http.StatusOK, "HIT", "private, no-store", 0, -1)
}

// A stale answer (here within staleWhileRevalidate) is past the gateway's
// own freshness: max-age=0 on it and on its 304, whatever clientMaxAge
// says, so a client may revalidate it but never reuse it as fresh.
func TestStaleAnswersAreNotFreshForClients(t *testing.T) {
	r := newMixRig(t, map[string]string{
		"GATEWAY_CACHE__ROUTES__SEARCH__TTL":                  "1s",
		"GATEWAY_CACHE__ROUTES__SEARCH__CLIENTMAXAGE":         "1s",
		"GATEWAY_CACHE__ROUTES__SEARCH__STALEWHILEREVALIDATE": "1m",
	})
	tok := r.token(t, r.users(t, 1)[0])
	sent := time.Now()
	a := ageGet(t, r, tok, "/api/v2/users/search?query=a", "")
	b := ageGet(t, r, tok, "/api/v2/users/search?query=b", "")
	loaded := time.Now()
	checkAge(t, "page a, miss", a, http.StatusOK, "MISS", "private, max-age=1", 0, -1)

	time.Sleep(time.Until(loaded.Add(1100 * time.Millisecond)))
	from := time.Since(loaded)
	staleA := ageGet(t, r, tok, "/api/v2/users/search?query=a", "")
	staleB := ageGet(t, r, tok, "/api/v2/users/search?query=b", b.Header.Get("Etag"))
	to := time.Since(sent)
	checkAge(t, "page a, stale", staleA, http.StatusOK, "STALE", "private, max-age=0", ceilSeconds(from), ceilSeconds(to))
	checkAge(t, "page b, 304 of a stale answer", staleB, http.StatusNotModified, "STALE", "private, max-age=0", ceilSeconds(from), ceilSeconds(to))
	if staleA.Header.Get("Etag") != a.Header.Get("Etag") {
		t.Fatalf("the stale page has ETag %q, want the stored %q", staleA.Header.Get("Etag"), a.Header.Get("Etag"))
	}
}

// ageGet sends a GET of path with the token (and If-None-Match etag, if
// any) to the rig and returns the answer, its body read.
func ageGet(t *testing.T, r *mixRig, tok, path, etag string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// checkAge checks an answer's status, X-Cache and Cache-Control, and that
// its Age is from minAge to maxAge; a maxAge below 0 wants no Age.
func checkAge(t *testing.T, name string, resp *http.Response, status int, xCache, cc string, minAge, maxAge int) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("X-Cache") != xCache || resp.Header.Get("Cache-Control") != cc {
		t.Fatalf("%s: %d, X-Cache %q, Cache-Control %q; want %d, %s, %s", name, resp.StatusCode,
			resp.Header.Get("X-Cache"), resp.Header.Get("Cache-Control"), status, xCache, cc)
	}
	ages := resp.Header.Values("Age")
	if maxAge < 0 {
		if len(ages) != 0 {
			t.Fatalf("%s: Age %q, want none", name, ages)
		}
		return
	}
	if len(ages) != 1 {
		t.Fatalf("%s: Age %q, want one from %d to %d", name, ages, minAge, maxAge)
	}
	if age, err := strconv.Atoi(ages[0]); err != nil || age < minAge || age > maxAge {
		t.Fatalf("%s: Age %q, want from %d to %d", name, ages[0], minAge, maxAge)
	}
}

// ceilSeconds is d in whole seconds, rounded up, as Age is.
func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// A request line longer than the server's read buffer (the header limit,
// 8 KiB here) is a 414 (RFC 9112 section 3), a header block over it a 431;
// both in English with a new request id (the headers were not read), and
// the connection closed. fasthttp fails both alike: the gateway tells
// them apart by whether the buffer held an LF, so the boundary is exact,
// however the bytes came and whatever came before them on the connection.
func TestRequestLineOverTheReadBuffer(t *testing.T) {
	r := newMixRig(t)
	const limit = 8 << 10 // config.yaml's server.headerLimit
	// line is a request line of n bytes, without its CRLF.
	line := func(n int) string {
		const head, version = "GET /api/v1/users/me?q=", " HTTP/1.1"
		return head + strings.Repeat("a", n-len(head)-len(version)) + version
	}
	lineRequest := func(n int) string { return line(n) + "\r\nHost: gw\r\nX-Language: tr\r\n\r\n" }
	body := `{"username":"` + strings.Repeat("b", 200) + `"}`
	post := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	for _, c := range []struct {
		name   string
		pieces []string // written one after the other
		before int      // answers expected before the refusal
		status int
	}{
		{"a long target", []string{lineRequest(limit + 500)}, 0, http.StatusRequestURITooLong},
		{"a long target, in pieces", strings.SplitAfter(lineRequest(limit+500), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 0, http.StatusRequestURITooLong},
		// The buffer ends just before the line's LF, or just after it.
		{"no LF in the buffer", []string{lineRequest(limit - 1)}, 0, http.StatusRequestURITooLong},
		{"the LF last in the buffer", []string{lineRequest(limit - 2)}, 0, http.StatusRequestHeaderFieldsTooLarge},
		{"a large header block", []string{"GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Filler: " + strings.Repeat("f", limit+500) + "\r\n\r\n"}, 0, http.StatusRequestHeaderFieldsTooLarge},
		{"a long line, then headers", []string{line(limit-100) + "\r\nHost: gw\r\nX-Filler: " + strings.Repeat("f", 500) + "\r\n\r\n"}, 0, http.StatusRequestHeaderFieldsTooLarge},
		// After a request whose body holds no LF: the buffer starts where
		// the long request does.
		{"after a body", []string{post + lineRequest(limit+500)}, 1, http.StatusRequestURITooLong},
		{"after a body, a large header block", []string{post + "GET /api/v1/users/me HTTP/1.1\r\nX-Filler: " + strings.Repeat("f", limit) + "\r\n\r\n"}, 1, http.StatusRequestHeaderFieldsTooLarge},
		{"after a request", []string{"GET /nosuch HTTP/1.1\r\nHost: gw\r\n\r\n", lineRequest(limit + 1)}, 1, http.StatusRequestURITooLong},
		// Blank lines before a request line, which fasthttp skips, take
		// room in the buffer but are no part of the line.
		{"blank lines first", []string{"\r\n\n\r\n" + lineRequest(limit+500)}, 0, http.StatusRequestURITooLong},
		{"blank lines first, in pieces, no LF in the buffer", []string{"\r", "\n\r", "\n", lineRequest(limit - 5)}, 0, http.StatusRequestURITooLong},
		{"blank lines first, the LF last in the buffer", []string{"\r\n\r\n" + lineRequest(limit-6)}, 0, http.StatusRequestHeaderFieldsTooLarge},
		{"blank lines first, then headers", []string{"\r\n\r\n" + line(limit-100) + "\r\nHost: gw\r\nX-Filler: " + strings.Repeat("f", 500) + "\r\n\r\n"}, 0, http.StatusRequestHeaderFieldsTooLarge},
		{"after a request, blank lines", []string{"GET /nosuch HTTP/1.1\r\nHost: gw\r\n\r\n", "\r\n\r\n", lineRequest(limit - 3)}, 1, http.StatusRequestURITooLong},
		// A trailer section over the buffer fails the same way, after a
		// header block that was read: answered in the caller's language.
		{"a trailer section", []string{"POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\n" +
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: " + strings.Repeat("t", limit+500) + "\r\n\r\n"},
			0, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, p := range c.pieces {
				if _, err := io.WriteString(conn, p); err != nil {
					t.Fatal(err)
				}
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			var answers []edgeAnswer
			for {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Close { // net/http takes Connection: close out of the header
					resp.Header.Set("Connection", "close")
				}
				answers = append(answers, edgeAnswer{status: resp.StatusCode, header: resp.Header, body: body})
			}
			if len(answers) != c.before+1 {
				t.Fatalf("%d answers, want %d", len(answers), c.before+1)
			}
			a := answers[c.before]
			msg := "Request URI too long"
			switch {
			case strings.Contains(c.name, "trailer"):
				msg = "İstek başlıkları çok büyük"
			case c.status == http.StatusRequestHeaderFieldsTooLarge:
				msg = "Request headers too large"
			}
			edgeFailure(t, a, c.status, msg)
			if a.header.Get("Connection") != "close" {
				t.Fatalf("Connection %q, want close", a.header.Get("Connection"))
			}
		})
	}
}

// max-age is the client's freshness in whole seconds, rounded down: a
// client must not keep an answer past what the gateway allowed it.
func TestClientMaxAgeRoundsDown(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1500 * time.Millisecond: "private, max-age=1",
		15 * time.Second:        "private, max-age=15",
		999 * time.Millisecond:  "private, max-age=0",
	} {
		if got := cacheControlMaxAge(d); got != want {
			t.Errorf("cacheControlMaxAge(%v) = %q, want %q", d, got, want)
		}
	}
}

// A body of exactly the limit (server.bodyLimit, 16 KiB in config.yaml) is
// within it: a request announcing one with Expect: 100-continue is told to
// go on, and served.
func TestExpectContinueAtTheLimit(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	const limit = 16 << 10
	head, tail := `{"username":"freshname"`, `}`
	continuedAndServed(t, r, tok, "100-continue", head+strings.Repeat(" ", limit-len(head)-len(tail))+tail)
}

// continuedAndServed sends a username check with the expectation and
// payload given: the gateway must answer 100 Continue before the body,
// and 200 after it.
func continuedAndServed(t *testing.T, r *mixRig, tok, expect, payload string) {
	t.Helper()
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
		"\r\nContent-Type: application/json\r\nExpect:" + expect + "\r\nContent-Length: " + strconv.Itoa(len(payload)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("first line %q (%v), want 100 Continue before a body of %d bytes", line, err, len(payload))
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue followed by %q", blank)
	}
	if _, err := io.WriteString(conn, payload); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d after the body, want 200", resp.StatusCode)
	}
}

// A request that cannot be parsed is a 400 whatever it holds. fasthttp's
// parse error quotes the request, and Fiber takes any read error whose
// text has "timeout" for a 408 (and one with "unsupported http request
// method" for a 501).
func TestUnparsableRequestIsA400WhateverItHolds(t *testing.T) {
	r := newMixRig(t)
	for _, raw := range []string{
		"GET /api/v1/users/me HTTP/1.1\r\nHost: a\r\nBad line\r\nX: y\r\n\r\n",
		"GET /timeout HTTP/1.1\r\nHost: a\r\nBad line\r\nX: y\r\n\r\n",
		"GET /api/v1/users/me HTTP/1.1\r\nHost: a\r\nX-Timeout 5\r\nX: y\r\n\r\n",
		"GET /api/v1/users/me HTTP/1.1\r\nHost: a\r\nX-Note unsupported http request method\r\nX: y\r\n\r\n",
	} {
		answers, closed := rawExchange(t, r, raw, 3*time.Second)
		if len(answers) != 1 || answers[0].status != http.StatusBadRequest || !closed {
			statuses := []int{}
			for _, a := range answers {
				statuses = append(statuses, a.status)
			}
			t.Errorf("%q: answers %v, closed %v; want one 400 and the connection closed", raw, statuses, closed)
		}
	}
}

// The answer to HEAD has no body (RFC 9110 section 9.3.2; docs/api.md,
// the envelope's exceptions), also when the request is refused as its
// body is read: fasthttp skips the body only for a handler's answer, and
// these refusals are written by its error handler. The header block was
// read, so the method is known; the refusal keeps Content-Length, as a
// HEAD answer does, and closes the connection.
func TestHeadRefusedWhileItsBodyIsReadHasNoBody(t *testing.T) {
	r := newMixRig(t, map[string]string{"GATEWAY_SERVER__READTIMEOUT": "500ms"})
	head := "HEAD /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\n"
	for _, c := range []struct {
		name, raw string
		cut       bool // the client ends its side after raw
		status    int
	}{
		{"413 by Content-Length", head + "Content-Length: 100000\r\n\r\n", false, http.StatusRequestEntityTooLarge},
		{"413 by chunks", head + "Transfer-Encoding: chunked\r\n\r\n10000\r\n", false, http.StatusRequestEntityTooLarge},
		{"400 for a malformed chunk", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", false, http.StatusBadRequest},
		{"400 for a body cut short", head + "Content-Length: 10\r\n\r\nab", true, http.StatusBadRequest},
		{"400 for two Content-Lengths", head + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", false, http.StatusBadRequest},
		{"408 for a body that did not come", head + "Content-Length: 10\r\n\r\nab", false, http.StatusRequestTimeout},
		// A block too large to hold: fasthttp kept its headers.
		{"413 after a header block too large to hold", head + "X-Filler: " + strings.Repeat("f", maxHeld) + "\r\nContent-Length: 100000\r\n\r\n",
			false, http.StatusRequestEntityTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			block, rest := refusedAsBodyIsRead(t, r, c.raw, c.cut, c.status)
			if rest != "" {
				t.Fatalf("a body after the HEAD answer's header block: %q", rest)
			}
			if !strings.Contains(block, "\r\nContent-Length: ") || !strings.Contains(block, "\r\nConnection: close") {
				t.Fatalf("header block %q, want Content-Length and Connection: close", block)
			}
		})
	}
}

// A method that only begins with HEAD is no HEAD: its refusal, as its body
// is read, has the envelope for a body (headRequest goes by the held
// block's method when fasthttp did not keep the headers).
func TestRefusalOfAMethodBeginningWithHeadHasItsBody(t *testing.T) {
	r := newMixRig(t, map[string]string{"GATEWAY_SERVER__READTIMEOUT": "500ms"})
	head := "HEADX /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\n"
	for _, c := range []struct {
		name, raw string
		cut       bool // the client ends its side after raw
		status    int
	}{
		{"413 by Content-Length", head + "Content-Length: 100000\r\n\r\n", false, http.StatusRequestEntityTooLarge},
		{"413 by chunks", head + "Transfer-Encoding: chunked\r\n\r\n10000\r\n", false, http.StatusRequestEntityTooLarge},
		{"400 for a malformed chunk", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", false, http.StatusBadRequest},
		{"400 for a body cut short", head + "Content-Length: 10\r\n\r\nab", true, http.StatusBadRequest},
		{"408 for a body that did not come", head + "Content-Length: 10\r\n\r\nab", false, http.StatusRequestTimeout},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, rest := refusedAsBodyIsRead(t, r, c.raw, c.cut, c.status)
			if !strings.HasPrefix(rest, `{"isSuccess":false,"statusCode":`+strconv.Itoa(c.status)) {
				t.Fatalf("body %q, want the envelope", rest)
			}
		})
	}
}

// refusedAsBodyIsRead sends raw, ends the client's side after it when cut,
// and returns the answer's header block and what follows it, once the
// connection closed; the answer must have status.
func refusedAsBodyIsRead(t *testing.T, r *mixRig, raw string, cut bool, status int) (block, rest string) {
	t.Helper()
	conn := sendRaw(t, r, raw)
	defer conn.Close()
	if cut {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%v after %q", err, got)
	}
	block, rest, ok := strings.Cut(string(got), "\r\n\r\n")
	if !ok || !strings.HasPrefix(block, "HTTP/1.1 "+strconv.Itoa(status)+" ") {
		t.Fatalf("answer %q, want a %d", got, status)
	}
	return block, rest
}
