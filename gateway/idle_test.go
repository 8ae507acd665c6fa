package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What fasthttp writes outside a handler's answer (the refusal of a
// request it could not read, an interim 100 Continue) reaches a client
// on a keep-alive connection that idled for longer than the write
// timeout, or whose body wait outlasted it: fasthttp sets a write deadline
// only before a handler's answer, and these went out under the previous
// answer's, long past, so the client got nothing but a closed connection.
// Each case is the second request of a connection, after an answered one.
func TestAnswersOutsideTheHandlerAfterAnIdleConnection(t *testing.T) {
	r := newMixRig(t, map[string]string{
		"GATEWAY_SERVER__WRITETIMEOUT": "1s",
		"GATEWAY_SERVER__READTIMEOUT":  "1s",
	})
	const check = "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\nContent-Type: application/json\r\n"
	for _, c := range []struct {
		name   string
		idle   time.Duration
		second string
		status int
		msg    string // the Turkish message expected, "" when the header block was not read
	}{
		{"body over the limit", 1500 * time.Millisecond, check + "Content-Length: 20000\r\n\r\n", http.StatusRequestEntityTooLarge, "İstek gövdesi çok büyük"},
		{"body that never arrives", 0, check + "Content-Length: 30\r\n\r\n{\"user", http.StatusRequestTimeout, "İstek zaman aşımına uğradı"},
		{"header block over the limit", 1500 * time.Millisecond, "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Filler: " + strings.Repeat("a", 10<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge, ""},
		{"chunked body that does not parse", 1500 * time.Millisecond, check + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", http.StatusBadRequest, "Doğrulama başarısız oldu"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each on its own connection
			conn, br := idleConn(t, r)
			time.Sleep(c.idle)
			if _, err := io.WriteString(conn, c.second); err != nil {
				t.Fatal(err)
			}
			resp, body := readAnswer(t, conn, br)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			var env struct {
				IsSuccess  bool     `json:"isSuccess"`
				StatusCode int      `json:"statusCode"`
				Errors     []string `json:"errors"`
			}
			if err := json.Unmarshal(body, &env); err != nil || env.IsSuccess || env.StatusCode != c.status || len(env.Errors) != 1 {
				t.Fatalf("not the error envelope: %s", body)
			}
			if c.msg != "" && env.Errors[0] != c.msg {
				t.Errorf("message %q, want %q", env.Errors[0], c.msg)
			}
		})
	}

	// An expectation on the idle connection: when fasthttp answers 100
	// Continue (it reads the first Expect line, and the hook writes it as
	// fasthttp reads it when a line lists 100-continue), that interim answer
	// comes, and then the request's own; an HTTP/1.0 request's
	// expectation is ignored (RFC 9110 section 10.1.1: a server MUST).
	for _, c := range []struct {
		name, expect string
		http10       bool
		want100      bool
		status       int
	}{
		{"100 Continue", "Expect: 100-continue\r\n", false, true, http.StatusUnauthorized},
		{"100 Continue spelled otherwise", "Expect: 100-Continue \r\n", false, true, http.StatusUnauthorized},
		{"100 Continue and another expectation", "Expect: 100-continue\r\nExpect: x-other\r\n", false, true, http.StatusUnauthorized},
		// Refused whatever its body: not invited to send it.
		{"100 Continue after a line that makes the block ambiguous", "X-Junk: a\x01b\r\nExpect: 100-continue\r\n", false, false, http.StatusBadRequest},
		{"100 Continue on an ambiguous block", "Content-Length: 25\r\nExpect: 100-continue\r\n", false, false, http.StatusBadRequest},
		{"100 Continue from HTTP/1.0", "Expect: 100-continue\r\n", true, false, http.StatusUnauthorized},
		{"100 Continue spelled otherwise from HTTP/1.0", "Expect: 100-Continue\r\n", true, false, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each on its own connection
			conn, br := idleConn(t, r)
			time.Sleep(1500 * time.Millisecond)
			head := check
			if c.http10 {
				head = strings.Replace(head, "HTTP/1.1", "HTTP/1.0", 1)
			}
			if _, err := io.WriteString(conn, head+c.expect+"Content-Length: 25\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if c.want100 {
				_ = conn.SetReadDeadline(time.Now().Add(4 * time.Second))
				line, err := br.ReadString('\n')
				if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
					t.Fatalf("interim answer %q, %v", line, err)
				}
				if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
					t.Fatalf("after the interim status line: %q, %v", blank, err)
				}
			}
			if _, err := io.WriteString(conn, `{"username":"JohnDoe123"}`); err != nil {
				t.Fatal(err)
			}
			resp, got := readAnswer(t, conn, br) // after an unwanted 100, the 100 itself
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, got)
			}
		})
	}
}

// A request in flight when the drain starts gets the connection's last
// answer: it goes out, and says Connection: close. fasthttp alone closed
// the connection after an answer that promised to keep it, and an answer
// buffered behind a client's pipelined request was never sent at all.
func TestDrainSendsTheLastAnswerWithConnectionClose(t *testing.T) {
	for _, pipelined := range []bool{false, true} {
		t.Run(map[bool]string{false: "one request", true: "pipelined"}[pipelined], func(t *testing.T) {
			// The store call is held until the listener is seen closed.
			r := newMixRig(t, map[string]string{"TEST_STORE_HOLD": "true"}, storeTimeouts("2s"))
			tok := r.token(t, r.users(t, 1)[0])
			conn, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			raw := "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
			if pipelined {
				raw += "GET /api/v1/users/nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"
			}
			if _, err := io.WriteString(conn, raw); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the request in flight", func() bool { return r.s.InFlight() == 1 })
			drained := make(chan bool, 1)
			go func() { drained <- r.s.Shutdown(5 * time.Second) }()
			waitFor(t, "the listener closed", func() bool {
				c, err := net.Dial("tcp", r.addr)
				if err == nil {
					c.Close()
				}
				return err != nil
			})
			close(r.held)
			br := bufio.NewReader(conn)
			resp, body := readAnswer(t, conn, br)
			if resp.StatusCode != http.StatusOK || !resp.Close {
				t.Fatalf("the last answer: %d, Connection: close %v: %s", resp.StatusCode, resp.Close, body)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("after the last answer: %v, want the connection closed", err)
			}
			if !<-drained {
				t.Fatal("not drained")
			}
		})
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s", what)
		}
	}
}

// idleConn opens a keep-alive connection to the rig and has one request
// answered on it, which leaves the connection with that answer's write
// deadline.
func idleConn(t *testing.T, r *mixRig) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET /api/v1/users/nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if resp, body := readAnswer(t, conn, br); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	return conn, br
}

// readAnswer reads one answer and its body, failing the test when none
// comes within 4 s.
func readAnswer(t *testing.T, conn net.Conn, br *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(4 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("answer's body: %v", err)
	}
	return resp, body
}

// A drain that runs out of time: fasthttp clears its stop flag when its
// drain ends, and a connection still busy then went on serving requests,
// none of them the last, while the process closed what they need. The
// answer in flight is the connection's last, and a request that arrives
// after the drain is a 503 whose connection is closed.
func TestDrainThatTimesOutStopsServing(t *testing.T) {
	// The store call is held through the 200ms drain: at config.yaml's
	// 500ms for userById, a drain timer that woke late on a busy machine
	// made the answer in flight a 504.
	r := newMixRig(t, map[string]string{"TEST_STORE_HOLD": "true"}, storeTimeouts("2s"))
	tok := r.token(t, r.users(t, 1)[0])
	dial := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn, bufio.NewReader(conn)
	}
	me := "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	busy, busyR := dial()
	if _, err := io.WriteString(busy, me+me); err != nil { // the second pipelined
		t.Fatal(err)
	}
	waitFor(t, "the request in flight", func() bool { return r.s.InFlight() == 1 })
	// A request whose header block is still arriving.
	late, lateR := dial()
	if _, err := io.WriteString(late, "GET /api/v1/users/me HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	if r.s.Shutdown(200 * time.Millisecond) {
		t.Fatal("drained, with a store call held")
	}
	close(r.held)

	resp, body := readAnswer(t, busy, busyR)
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("the answer in flight: %d, Connection: close %v: %s", resp.StatusCode, resp.Close, body)
	}
	if _, err := busyR.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer in flight: %v, want the connection closed (the pipelined request not served)", err)
	}

	if _, err := io.WriteString(late, "Host: gw\r\nX-Language: tr\r\nOrigin: http://localhost:3000\r\nAuthorization: Bearer "+tok+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, body = readAnswer(t, late, lateR)
	if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close || !strings.Contains(string(body), `"isSuccess":false`) {
		t.Fatalf("a request after the drain: %d, Connection: close %v: %s", resp.StatusCode, resp.Close, body)
	}
	// An error answer like any other: its header block was read whole, so
	// the web app's script gets the CORS headers and can read the envelope
	// (and Retry-After) instead of a bare CORS failure.
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") ||
		!strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Fatalf("the 503's CORS headers: %v", resp.Header)
	}
	if _, err := lateR.ReadByte(); err != io.EOF {
		t.Fatalf("after the 503: %v, want the connection closed", err)
	}
}

// A connection that sends nothing before server.readTimeout is closed
// without an answer (closeUnanswered), and so is one that sends only
// blank lines: fasthttp skips them before a request line and, when no
// request line follows, takes them for the end of the stream. One byte
// of a request line, after blank lines or not, is a request: its 408 is
// written.
func TestSilentConnectionClosedUnanswered(t *testing.T) {
	r := newMixRig(t, map[string]string{"GATEWAY_SERVER__READTIMEOUT": "1s"})
	for _, c := range []struct {
		sent     string
		answered bool
	}{
		{"", false},
		{"\r\n", false},
		{"\n\r\n\r", false},
		{"G", true},
		{"\r\nG", true},
	} {
		t.Run(strconv.Quote(c.sent), func(t *testing.T) {
			t.Parallel() // each on its own connection
			conn, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, c.sent); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("not closed: %v (got %q)", err, got)
			}
			if answered := strings.HasPrefix(string(got), "HTTP/1.1 408 "); answered != c.answered || !answered && len(got) > 0 {
				t.Fatalf("got %q, want a 408: %v", got, c.answered)
			}
		})
	}
}
