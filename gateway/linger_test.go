package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A refusal sent before the request was read whole lingers (conn.go): the
// client that goes on sending what was refused after it read the answer
// gets an end of stream, never a reset. Closing at once reset the
// connection as the rest arrived, and on some stacks the reset destroys an
// answer the app has not read yet.
func TestRefusalBeforeTheBodyLingers(t *testing.T) {
	r := newMixRig(t)
	const check = "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
	for _, c := range []struct {
		name, sent string // sent: what the client sends before it reads the answer
		status     int
	}{
		{"body over the limit", check + "Content-Length: 1048576\r\n\r\n", http.StatusRequestEntityTooLarge},
		// Bytes unread when the gateway closes.
		{"body over the limit, already on its way", check + "Content-Length: 1048576\r\n\r\n" + strings.Repeat("a", 64<<10), http.StatusRequestEntityTooLarge},
		{"ambiguous framing", check + "Content-Length: 1048576\r\nTransfer-Encoding: chunked\r\n\r\n", http.StatusBadRequest},
		{"header block over the limit", "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Filler: " + strings.Repeat("a", 16<<10), http.StatusRequestHeaderFieldsTooLarge},
		// Refused as they are handled, what follows them unread.
		{"ambiguous framing, body read", check + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", http.StatusBadRequest},
		{"broken request line", "GET /a b HTTP/1.1\r\nHost: gw\r\n\r\n", http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each on its own connection
			conn, br := refusedConn(t, r, c.sent, c.status)
			// The rest of the body: a reset would come back at the first
			// bytes, and fail a write before these end.
			chunk := bytes.Repeat([]byte("a"), 16<<10)
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			for sent := 0; sent < 512<<10; sent += len(chunk) {
				if _, err := conn.Write(chunk); err != nil {
					t.Fatalf("after %d bytes more: %v", sent, err)
				}
			}
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Fatalf("after the answer: %q, %v; want the end of the stream", rest, err)
			}
		})
	}
}

// A client that does not stop sending is cut off: after lingerBytes, or
// after lingerTime for one that sends slowly.
func TestLingeringIsBounded(t *testing.T) {
	r := newMixRig(t)
	const over = "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nContent-Length: 1073741824\r\n\r\n"
	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		conn, _ := refusedConn(t, r, over, http.StatusRequestEntityTooLarge)
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		// lingerBytes, and what the two sockets' buffers hold (the
		// receiver's may grow to 32 MiB), then a reset.
		const guard = 128 << 20
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		sent := 0
		var err error
		for ; sent < guard && err == nil; sent += len(chunk) {
			_, err = conn.Write(chunk)
		}
		if !reset(err) {
			t.Fatalf("after %d bytes: %v, want the connection reset", sent, err)
		}
	})
	t.Run("time", func(t *testing.T) {
		t.Parallel()
		conn, _ := refusedConn(t, r, over, http.StatusRequestEntityTooLarge)
		_ = conn.SetWriteDeadline(time.Now().Add(lingerTime + 25*time.Second))
		var err error
		for err == nil {
			time.Sleep(20 * time.Millisecond) // a slow client's pace, not an assertion
			_, err = conn.Write([]byte("a"))
		}
		if !reset(err) {
			t.Fatalf("a slow client: %v, want the connection reset", err)
		}
	})
}

// The drain waits for a connection lingering after a refusal: the process
// exiting would reset it while its client still sends. One still
// lingering when the drain's time is up is reported as not drained.
func TestDrainWaitsForLingeringConnections(t *testing.T) {
	const over = "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nContent-Length: 1048576\r\n\r\n"
	t.Run("closed in time", func(t *testing.T) {
		r := newMixRig(t)
		conn, br := refusedConn(t, r, over, http.StatusRequestEntityTooLarge)
		drained := make(chan bool, 1)
		go func() { drained <- r.s.Shutdown(lingerTime + 5*time.Second) }()
		waitFor(t, "the listener closed", func() bool {
			c, err := net.Dial("tcp", r.addr)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(bytes.Repeat([]byte("a"), 256<<10)); err != nil {
			t.Fatalf("the rest of the body during the drain: %v", err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Fatalf("after the answer: %q, %v; want the end of the stream", rest, err)
		}
		if !<-drained {
			t.Fatal("not drained")
		}
	})
	t.Run("still lingering", func(t *testing.T) {
		r := newMixRig(t)
		refusedConn(t, r, over, http.StatusRequestEntityTooLarge) // and kept open
		if r.s.Shutdown(100 * time.Millisecond) {
			t.Fatal("drained, with a refused connection lingering")
		}
	})
}

// refusedConn sends sent on a new connection to the rig and reads the
// answer, which must be status and close the connection.
func refusedConn(t *testing.T, r *mixRig, sent string, status int) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, sent); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, body := readAnswer(t, conn, br)
	if resp.StatusCode != status || !resp.Close {
		t.Fatalf("status %d (want %d), Connection: close %v: %s", resp.StatusCode, status, resp.Close, body)
	}
	return conn, br
}

// reset: err is a write on a connection the other side reset.
func reset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// The drain waits for the refusal of a connection over
// server.maxConnections still being sent (answerRefused): the process
// exiting would cut it, as it would a lingering close. Here its client
// reads the 503 and neither closes nor sends, so the refusal lasts its
// whole second. One still in flight when the drain's time is up is
// reported as not drained.
func TestDrainWaitsForRefusals(t *testing.T) {
	overCap := func(t *testing.T) *mixRig {
		t.Helper()
		r := newMixRig(t, map[string]string{"GATEWAY_SERVER__MAXCONNECTIONS": "1"})
		idleConn(t, r) // the only connection server.maxConnections allows
		refusedConn(t, r, "", http.StatusServiceUnavailable)
		return r
	}
	t.Run("ended in time", func(t *testing.T) {
		r := overCap(t)
		if !r.s.Shutdown(10 * time.Second) {
			t.Fatal("not drained")
		}
		if n := r.s.refusing.Load(); n != 0 {
			t.Fatalf("the drain ended with %d refusals still being sent", n)
		}
	})
	t.Run("still in flight", func(t *testing.T) {
		r := overCap(t)
		if r.s.Shutdown(100 * time.Millisecond) {
			t.Fatal("drained, with a refusal still being sent")
		}
	})
}
