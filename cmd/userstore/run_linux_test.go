package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
)

// When Serve fails on its own (its listener lost), run drains the
// handlers still running, as after a signal, before the database is
// closed and removed: here a username check whose body is still coming
// when the listener fails gets its answer from the database, and run
// returns Serve's error only after it. run used to return at once, the
// handler still running, and close the database under it.
func TestServeFailureWaitsForTheHandlers(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	inst := start(t, nil, "-listen", "127.0.0.1:0", "-users", "100")
	t.Cleanup(func() {
		if inst.cancel != nil { // the test failed before run returned
			inst.cancel()
			<-inst.done
		}
	})

	held, err := net.Dial("tcp", inst.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	body := `{"username":"johndoe123"}`
	if _, err := io.WriteString(held, "POST "+contract.PathUsernameCheck+" HTTP/1.1\r\nHost: "+inst.addr+"\r\n"+
		"Content-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body[:12]); err != nil {
		t.Fatal(err)
	}
	// The server accepts connections in turn: one answered on a second
	// connection means the first is held.
	if status, _ := inst.get(t, contract.PathSearch+"?q=a", nil); status != http.StatusOK {
		t.Fatalf("search: %d", status)
	}

	shutListener(t, inst.addr)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(inst.stderr.String(), `"msg":"shutting down"`); {
		select {
		case err := <-inst.done:
			inst.cancel()
			inst.cancel = nil
			t.Fatalf("run returned %v while a handler was still running\n%s", err, inst.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no shutting down line after the listener failed\n%s", inst.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if _, err := io.WriteString(held, body[12:]); err != nil {
		t.Fatal(err)
	}
	_ = held.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(held), nil)
	if err != nil {
		t.Fatalf("held request: %v\n%s", err, inst.stderr)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != `{"username":"johndoe123","available":true}` {
		t.Errorf("held request: %d %s; want it answered from the database", resp.StatusCode, got)
	}

	select {
	case err := <-inst.done:
		if err == nil || !strings.HasPrefix(err.Error(), "serve: ") {
			t.Errorf("run returned %v; want Serve's error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not return after the handler did\n%s", inst.stderr)
	}
	inst.cancel()
	inst.cancel = nil
	nothingLeftIn(t, tmp)
}

// shutListener makes the accepts of the listening socket on addr, in this
// process, fail for good, as a lost listener's would: shutdown(2) on a
// listening socket makes Linux answer accept with EINVAL, which Serve does
// not retry.
func shutListener(t *testing.T, addr string) {
	t.Helper()
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			continue
		}
		in, ok := sa.(*syscall.SockaddrInet4)
		if !ok || in.Port != want.Port || !net.IP(in.Addr[:]).Equal(want.IP) {
			continue
		}
		if listening, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || listening != 1 {
			continue // a connection to or from addr
		}
		if err := syscall.Shutdown(fd, syscall.SHUT_RD); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no listening socket on %s in this process", addr)
}
