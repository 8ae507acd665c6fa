package e2e

// The status of answers nobody asked the edge for: what fasthttp and Fiber
// would decide on their own when a request fails while it is read, and
// what the gateway records of it.

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

// errMetrics5xx returns the request-count series of 5xx answers that are
// not zero.
func errMetrics5xx(t *testing.T, gw *Gateway) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(gw.Metrics(t), "\n") {
		if strings.HasPrefix(line, "gateway_requests_total{") && strings.Contains(line, `status_class="5xx"`) &&
			!strings.HasSuffix(line, " 0") {
			out = append(out, line)
		}
	}
	return out
}

// errReset closes conn with a TCP reset (SO_LINGER 0) instead of a FIN.
func errReset(t *testing.T, conn net.Conn) {
	t.Helper()
	if err := conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

// A client whose connection is reset while its request is read is the
// client's failure, never the gateway's or the user store's: Fiber calls a
// failed read a 502, and the 5xx ratio pages on it. Reset mid-body (a
// phone losing its network during an upload), it is logged as a 400 with
// the request's id and method; reset before it sent a byte (a load
// balancer's TCP health check), it is no request at all, as a connection
// closed cleanly is not.
func TestFoundationErrorsClientResetIsNotA5xx(t *testing.T) {
	idp := StartIdP(t)
	// One connection at a time: the next one is served only once the
	// gateway closed the previous one, after it recorded its answer.
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp,
		Env: map[string]string{"GATEWAY_SERVER__MAXCONNECTIONS": "1"}})
	addr := strings.TrimPrefix(gw.URL, "http://")
	logs := polFollowLogs(gw)

	// Reset before a byte was sent.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	errReset(t, conn)

	// Reset in the middle of the body: the header block was read (the
	// gateway said 100 Continue) and the body never ends.
	head := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + idp.UserToken(t) +
		"\r\nX-Request-Id: reset-mid-body\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer to the header block: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusContinue {
			if _, err := io.WriteString(conn, `{"username":`); err != nil {
				t.Fatal(err)
			}
			errReset(t, conn)
			break
		}
		conn.Close()
		// Refused: the first connection is still open.
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("status %d to the header block, want 100 Continue", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	line := logs.await(t, 5*time.Second, "request", map[string]string{"request_id": "reset-mid-body"})
	if line["status"] != 400.0 || line["method"] != "POST" {
		t.Errorf("access line of the request reset mid-body: %v, want status 400, method POST", line)
	}

	// The first connection's line, had it one, came before.
	for _, line := range gw.LogLines() {
		if line["msg"] != "request" {
			continue
		}
		if status := fmt.Sprint(line["status"]); line["request_id"] != "reset-mid-body" &&
			(strings.HasPrefix(status, "5") || line["method"] == "other") {
			t.Errorf("access line for a reset connection: %v", line)
		}
	}
	if series := errMetrics5xx(t, gw); len(series) > 0 {
		t.Errorf("5xx counted for reset connections:\n%s", strings.Join(series, "\n"))
	}
}

// A multipart body is a body like any other: no route takes a form, so it
// is neither parsed nor refused before the route. A profile read that
// carries one is served, and a username check with one is told its
// Content-Type is wrong, in the caller's language, on a connection that
// stays open (fasthttp pre-parsed such bodies and refused an unparsable
// one with a bare 400 and a closed connection).
func TestFoundationErrorsMultipartBodyReachesTheRoute(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)
	const form = "multipart/form-data; boundary=xyz"

	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tok), RawBody(form, []byte("not a form"))).Data(t, nil)

	conn := gw.KeepAlive(t)
	body := `{"username":"fresh.name_42"}`
	r := conn.Send(t, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tok+
		"\r\nX-Language: tr\r\nContent-Type: "+form+fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body))+body)
	fndOnly(t, r, http.StatusBadRequest, "Doğrulama başarısız oldu", "Content-Type application/json olmalıdır")
	// A well-formed form is refused the same way.
	formBody := "--xyz\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nfresh.name_42\r\n--xyz--\r\n"
	r = conn.Send(t, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tok+
		"\r\nContent-Type: "+form+fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(formBody))+formBody)
	fndOnly(t, r, http.StatusBadRequest, "Validation failed", "Content-Type must be application/json")
	// The same connection goes on.
	r = conn.Send(t, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tok+
		"\r\nContent-Type: application/json"+fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body))+body)
	r.Data(t, nil)
}

// The request line: fasthttp serves any version but HTTP/1.1 as HTTP/1.0,
// keeps spaces and controls inside the target, and takes any bytes before
// the first space for the method. Another HTTP version is
// a 505, a malformed version or target a 400, both in English with a new
// request id (the request line did not parse, so nothing after it is
// trusted) and the connection closed; the store never hears of them.
func TestFoundationErrorsRequestLine(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	headers := "\r\nHost: gw\r\nAuthorization: Bearer " + idp.UserToken(t) + "\r\nX-Language: tr\r\nX-Request-Id: line-1\r\n\r\n"

	for _, c := range []struct {
		line   string
		status int
		msg    string
	}{
		{"GET /api/v1/users/me HTTP/2.0", http.StatusHTTPVersionNotSupported, "HTTP version not supported: use HTTP/1.1"},
		{"GET /api/v1/users/me HTTP/0.9", http.StatusHTTPVersionNotSupported, "HTTP version not supported: use HTTP/1.1"},
		{"GET /api/v1/users/me HTTP/3.0", http.StatusHTTPVersionNotSupported, "HTTP version not supported: use HTTP/1.1"},
		{"PRI * HTTP/2.0", http.StatusHTTPVersionNotSupported, "HTTP version not supported: use HTTP/1.1"},
		{"GET /api/v1/users/me FOO/1.1", http.StatusBadRequest, "Validation failed"},
		{"GET /api/v1/users/me http/1.1", http.StatusBadRequest, "Validation failed"},
		{"GET /api/v1/users/me HTTP/11", http.StatusBadRequest, "Validation failed"},
		{"GET /api/v1/users/me HTTP/1.1 junk", http.StatusBadRequest, "Validation failed"},
		{"GET /api/v1/users /me HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		{"GET /api/v1/users/me\x00 HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		{"GET /api/v1/users/me\tHTTP/1.1", http.StatusBadRequest, "Validation failed"},
		// A method is a token (RFC 9110 section 9.1): fasthttp took these
		// for unknown methods, a 405 on the profile's path, a 404 elsewhere.
		{"GE\tT /api/v1/users/me HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		{"GE\tT /nosuch HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		{"G(T /api/v1/users/me HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		{"GET\x00 /api/v1/users/me HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		{"G\xc3\x89T /api/v1/users/me HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		// Neither a path nor an absolute URI, though fasthttp read the host
		// x and the path /api/v1/users/me out of them ("://" is in them).
		{"GET foo//x/api/v1/users/me?next=https://y HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		{"GET a:b//x/api/v1/users/me?next=https://y HTTP/1.1", http.StatusBadRequest, "Validation failed"},
		{"GET 1http://x/api/v1/users/me HTTP/1.1", http.StatusBadRequest, "Validation failed"},
	} {
		t.Run(fmt.Sprintf("%q", c.line), func(t *testing.T) {
			conn := gw.KeepAlive(t)
			r := conn.Send(t, c.line+headers)
			fndOnly(t, r, c.status, c.msg)
			if id := r.Header.Get("X-Request-Id"); !fndUUIDv4.MatchString(id) {
				t.Fatalf("X-Request-Id %q, want a generated v4 UUID", id)
			}
			if n, err := conn.Closed(); n != 0 || err != io.EOF {
				t.Fatalf("after the answer: read %d bytes, %v; want the connection closed", n, err)
			}
		})
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("refused request lines reached the store %d times", n)
	}
	// Sound request lines are served, HTTP/1.0 and other minor versions of
	// HTTP/1 included.
	for _, line := range []string{"GET /api/v1/users/me HTTP/1.1", "GET /api/v1/users/me HTTP/1.0", "GET /api/v1/users/me HTTP/1.2"} {
		r := fndRaw(t, gw, line+headers)
		if r.Status != http.StatusOK || r.Header.Get("X-Request-Id") != "line-1" {
			t.Fatalf("%q: status %d, X-Request-Id %q: %s", line, r.Status, r.Header.Get("X-Request-Id"), r.Body)
		}
	}
}

// A chunked body whose trailer section fails (it never ends, or holds a
// field fasthttp refuses) failed after a good header block, like any other
// body: the answer is in the caller's language with their request id, and
// the log has the method. fasthttp keeps the headers then, with whatever
// trailer fields it merged into them, so the gateway answers from the
// header block it held, never from trailer fields.
func TestFoundationErrorsChunkedTrailerFails(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_SERVER__READTIMEOUT": "300ms"}})
	logs := polFollowLogs(gw)
	head := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + idp.UserToken(t) +
		"\r\nX-Language: tr\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Request-Id: "

	for _, c := range []struct {
		id, rest string
		status   int
		msg      string
	}{
		{"trailer-never-ends", "\r\n\r\n2\r\n{}\r\n0\r\n", http.StatusRequestTimeout, "İstek zaman aşımına uğradı"},
		{"trailer-bad-name", "\r\n\r\n2\r\n{}\r\n0\r\nX-Language: en\r\nBad Name: 1\r\n\r\n", http.StatusBadRequest, "Doğrulama başarısız oldu"},
		{"trailer-forbidden", "\r\n\r\n2\r\n{}\r\n0\r\nContent-Length: 2\r\n\r\n", http.StatusBadRequest, "Doğrulama başarısız oldu"},
	} {
		t.Run(c.id, func(t *testing.T) {
			r := fndRaw(t, gw, head+c.id+c.rest)
			fndOnly(t, r, c.status, c.msg)
			if got := r.Header.Get("X-Request-Id"); got != c.id {
				t.Fatalf("X-Request-Id %q, want the client's %q", got, c.id)
			}
			logs.await(t, 5*time.Second, "request", map[string]string{"request_id": c.id, "method": "POST", "status": fmt.Sprint(c.status)})
		})
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("failed bodies reached the store %d times", n)
	}
}

// A connection that sends nothing before server.readTimeout (one a
// browser opened ahead of need and did not use) is closed without an
// answer, as an idle keep-alive connection is, and is no request: neither
// logged nor counted. A 408 written to it could be read as the answer to
// a request the client sent at that moment.
func TestFoundationErrorsSilentConnectionClosedUnanswered(t *testing.T) {
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: StartIdP(t),
		Env: map[string]string{"GATEWAY_SERVER__READTIMEOUT": "300ms"}})
	logs := polFollowLogs(gw)
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(conn); len(got) > 0 || err != nil {
		t.Fatalf("the silent connection got %q (%v), want it closed unanswered", got, err)
	}

	// A request after it: its access line is the first, and it is the
	// only request counted.
	gw.Do(t, http.MethodGet, "/nosuch", Header("X-Request-Id", "after-the-silent-one")).Failure(t, http.StatusNotFound, "Resource not found")
	logs.await(t, 5*time.Second, "request", map[string]string{"request_id": "after-the-silent-one"})
	for _, line := range gw.LogLines() {
		if line["msg"] == "request" && line["request_id"] != "after-the-silent-one" {
			t.Errorf("access line for the silent connection: %v", line)
		}
	}
	var counted []string
	for _, line := range strings.Split(gw.Metrics(t), "\n") {
		if strings.HasPrefix(line, "gateway_requests_total{") && !strings.HasSuffix(line, " 0") {
			counted = append(counted, line)
		}
	}
	if len(counted) != 1 || !strings.HasSuffix(counted[0], " 1") || !strings.Contains(counted[0], `status_class="4xx"`) {
		t.Errorf("requests counted, want the 404 alone:\n%s", strings.Join(counted, "\n"))
	}
}
