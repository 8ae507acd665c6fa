package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
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

	// Expect: 100-continue on the idle connection: the interim answer
	// comes, and then the request's own.
	t.Run("100 Continue", func(t *testing.T) {
		conn, br := idleConn(t, r)
		time.Sleep(1500 * time.Millisecond)
		body := `{"username":"JohnDoe123"}`
		if _, err := io.WriteString(conn, check+"Expect: 100-continue\r\nContent-Length: 25\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(4 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("interim answer %q, %v", line, err)
		}
		if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
			t.Fatalf("after the interim status line: %q, %v", blank, err)
		}
		if _, err := io.WriteString(conn, body); err != nil {
			t.Fatal(err)
		}
		resp, got := readAnswer(t, conn, br)
		if resp.StatusCode != http.StatusUnauthorized { // no token: the request itself was answered
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
	})
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
