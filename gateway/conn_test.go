package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/refstore"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func TestDeadlineSlack(t *testing.T) {
	for _, c := range []struct {
		timeouts []time.Duration
		want     time.Duration
	}{
		{[]time.Duration{10 * time.Second, 10 * time.Second, 60 * time.Second}, time.Second},
		{[]time.Duration{300 * time.Millisecond, 10 * time.Second, 60 * time.Second}, 30 * time.Millisecond},
		{[]time.Duration{10 * time.Second, 2 * time.Second, 0}, 200 * time.Millisecond},
		{[]time.Duration{0, 0}, time.Second},
		{[]time.Duration{time.Hour}, time.Second},
	} {
		if got := deadlineSlack(c.timeouts...); got != c.want {
			t.Errorf("deadlineSlack(%v) = %v, want %v", c.timeouts, got, c.want)
		}
	}
}

// countingConn records the deadlines given to the socket.
type countingConn struct {
	net.Conn
	reads, writes []time.Time
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.reads = append(c.reads, t)
	return c.Conn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.writes = append(c.writes, t)
	return c.Conn.SetWriteDeadline(t)
}

// The socket gets a deadline only when the one it has does not stand for
// the one asked for, and then slack later than asked.
func TestLazyDeadlinesReachTheSocketOnlyWhenTheyMatter(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	under := &countingConn{Conn: a}
	const slack = 100 * time.Millisecond
	c := &clientConn{Conn: under, slack: int64(slack)}
	t0 := time.Now().Add(time.Hour)

	steps := []struct {
		name  string
		want  time.Time
		given []time.Time // what the socket has been given so far
	}{
		{"first deadline", t0, []time.Time{t0.Add(slack)}},
		{"a little later: covered", t0.Add(slack / 2), []time.Time{t0.Add(slack)}},
		{"exactly the socket's: covered", t0.Add(slack), []time.Time{t0.Add(slack)}},
		{"past the socket's", t0.Add(slack + 1), []time.Time{t0.Add(slack), t0.Add(2*slack + 1)}},
		{"earlier by more than slack", t0, []time.Time{t0.Add(slack), t0.Add(2*slack + 1), t0.Add(slack)}},
		{"none", time.Time{}, []time.Time{t0.Add(slack), t0.Add(2*slack + 1), t0.Add(slack), {}}},
		{"none again", time.Time{}, []time.Time{t0.Add(slack), t0.Add(2*slack + 1), t0.Add(slack), {}}},
		{"a deadline after none", t0, []time.Time{t0.Add(slack), t0.Add(2*slack + 1), t0.Add(slack), {}, t0.Add(slack)}},
	}
	for _, s := range steps {
		// Asking alone gives the socket nothing; only a read or write does.
		if err := c.SetDeadline(s.want); err != nil {
			t.Fatal(err)
		}
		if err := c.beforeRead(); err != nil {
			t.Fatal(err)
		}
		if err := c.beforeWrite(); err != nil {
			t.Fatal(err)
		}
		for side, got := range map[string][]time.Time{"read": under.reads, "write": under.writes} {
			if !sameTimes(got, s.given) {
				t.Fatalf("%s: socket's %s deadlines %v, want %v", s.name, side, got, s.given)
			}
		}
	}

	// Read and write deadlines are kept apart.
	if err := c.SetReadDeadline(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.beforeWrite(); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 5 || len(under.reads) != 5 {
		t.Fatalf("a read deadline reached the write side: %d reads, %d writes", len(under.reads), len(under.writes))
	}
	if err := c.beforeRead(); err != nil {
		t.Fatal(err)
	}
	if len(under.reads) != 6 || !under.reads[5].Equal(t0.Add(time.Hour+slack)) {
		t.Fatalf("socket's read deadlines %v", under.reads)
	}
}

func sameTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// tcpPair is a connected loopback pair: the server's end behind a
// clientListener, and the client's.
func tcpPair(t *testing.T, slack time.Duration) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lazy := clientListener{Listener: ln, slack: slack}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := lazy.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// A read that waits past its deadline still ends, with a timeout, never
// before the deadline asked for; and a later deadline lets reading go on.
func TestLazyReadDeadlineStillFires(t *testing.T) {
	const slack = 20 * time.Millisecond
	server, client := tcpPair(t, slack)

	asked := time.Now().Add(50 * time.Millisecond)
	if err := server.SetReadDeadline(asked); err != nil {
		t.Fatal(err)
	}
	readTimesOut(t, server, 10*time.Second)
	if now := time.Now(); now.Before(asked) {
		t.Fatalf("read timed out %v before its deadline", asked.Sub(now))
	}

	if err := server.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after a later deadline: %v", err)
	}
}

// A timeout as long as a Duration goes (server.*Timeout has no upper
// bound) puts the deadline past 2262, beyond Unix nanoseconds: the read
// waits for the client as it would on the socket directly, instead of
// timing out at once on a deadline wrapped into the past.
func TestLazyDeadlineBeyondUnixNanosStillWaits(t *testing.T) {
	server, client := tcpPair(t, time.Second)
	for _, d := range []time.Duration{math.MaxInt64, 240 * 365 * 24 * time.Hour} {
		if err := server.SetReadDeadline(time.Now().Add(d)); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(20 * time.Millisecond)
			_, _ = client.Write([]byte("x"))
		}()
		if _, err := server.Read(make([]byte, 1)); err != nil {
			t.Fatalf("read under a deadline %v away: %v", d, err)
		}
	}
}

// A deadline long past times a read out at once, also the one exactly
// slack before 1970, which slack later is Unix nanosecond 0: none.
func TestLazyDeadlineLongPastTimesOut(t *testing.T) {
	server, _ := tcpPair(t, time.Second)
	if err := server.SetReadDeadline(time.Unix(-1, 0)); err != nil {
		t.Fatal(err)
	}
	readTimesOut(t, server, 5*time.Second)
}

// readTimesOut reads from conn, which gets nothing, and fails unless the
// read ends with a deadline exceeded within guard.
func readTimesOut(t *testing.T, conn net.Conn, guard time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read ended with %v, want a deadline exceeded", err)
		}
	case <-time.After(guard):
		t.Fatalf("the read waited %v past its deadline", guard)
	}
}

// A client that never reads: the write waiting on it ends with a timeout.
func TestLazyWriteDeadlineStillFires(t *testing.T) {
	server, _ := tcpPair(t, 20*time.Millisecond)
	if err := server.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := server.Write(chunk); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write ended with %v, want a deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write never timed out")
	}
}

// A request that came on a client connection leaves its verified token in
// the connection's memo, for the next request on it; one that came some
// other way (no clientConn) has none and is served all the same.
func TestRequestsUseTheirConnectionsAuthMemo(t *testing.T) {
	r := bchNewRig(t)
	c := r.warm(t, "/api/v1/users/me")
	cc, ok := c.ctx.Conn().(*clientConn)
	if !ok || authMemo(&c.ctx) != &cc.memo {
		t.Fatal("the request's connection is not the gateway's")
	}
	if !cc.memo.Remembers() {
		t.Fatal("the verified token was not remembered on its connection")
	}

	var bare fasthttp.RequestCtx
	bare.Init(r.request("/api/v1/users/me"), &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 1}, nil)
	if authMemo(&bare) != nil {
		t.Fatal("a memo for a request on no client connection")
	}
	r.s.app.Handler()(&bare)
	if bare.Response.StatusCode() != fiber.StatusOK {
		t.Fatalf("without a memo: %d %s", bare.Response.StatusCode(), bare.Response.Body())
	}
}

// Each request on a client connection has its own memo of the client
// context (clientctx.Memo), as of the token; one on no client connection
// has none.
func TestRequestsUseTheirConnectionsClientMemo(t *testing.T) {
	r := bchNewRig(t)
	a, b := r.warm(t, "/api/v1/users/me"), r.warm(t, "/api/v1/users/me")
	cc, ok := a.ctx.Conn().(*clientConn)
	if !ok || clientMemo(&a.ctx) != &cc.client {
		t.Fatal("the request's connection is not the gateway's")
	}
	if clientMemo(&b.ctx) == clientMemo(&a.ctx) {
		t.Fatal("two connections share a client-context memo")
	}
	var bare fasthttp.RequestCtx
	bare.Init(r.request("/api/v1/users/me"), &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 1}, nil)
	if clientMemo(&bare) != nil {
		t.Fatal("a memo for a request on no client connection")
	}
}

// Each request reaches the user store with the app version and device id
// it sent, whatever its connection sent before (the connection's memo
// answers only for the same bytes), and two connections taking turns
// each send their own.
func TestStoreGetsEachRequestsOwnClientIdentifiers(t *testing.T) {
	idp, idpSrv := loopbackIDP(t, "http://idp.ids")
	st := loopbackStore(t, 50)
	inner := st.Handler(refstore.HandlerOptions{})
	var mu sync.Mutex
	got := map[string][2]string{} // by request id: X-App-Version, X-Device-Id
	stSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("X-Request-Id")] = [2]string{r.Header.Get("X-App-Version"), r.Header.Get("X-Device-Id")}
		mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(stSrv.Close)
	s := newRepoServer(t, map[string]string{
		"GATEWAY_AUTH__JWKSURLS":                idpSrv.URL + "/.well-known/jwks.json",
		"GATEWAY_AUTH__ISSUER":                  "http://idp.ids",
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": stSrv.URL,
	}, nil)
	addr := serveLoopback(t, s)
	tok := demoUserToken(t, idp)
	var err error
	var conns [2]net.Conn
	var readers [2]*bufio.Reader
	for i := range conns {
		if conns[i], err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conns[i].Close() })
		readers[i] = bufio.NewReader(conns[i])
	}

	const body = `{"username":"someone.new"}`
	for i, step := range []struct {
		conn                    int
		version, device         string // "-": not sent
		wantVersion, wantDevice string
	}{
		{0, "4.2.0", "dev-a", "4.2.0", "dev-a"},
		{1, "9.0.0", "dev-z", "9.0.0", "dev-z"},
		{0, "4.2.0", "dev-a", "4.2.0", "dev-a"},
		{1, "9.0.0", "dev-z", "9.0.0", "dev-z"},
		{0, "4.2.1", "dev-a", "4.2.1", "dev-a"}, // the same length
		{0, "4.2.1", "dev-b", "4.2.1", "dev-b"},
		{1, "4.2.1", "dev-b", "4.2.1", "dev-b"}, // the other connection's
		{0, "-", "-", "", ""},
		{0, "4.2.1", "dev-b", "4.2.1", "dev-b"},
		{0, "4.2.1!", "dev b", "", ""}, // invalid: none sent on
		{0, " 4.2 ", "dev", "4.2", "dev"},
		{1, "9.0.0", "dev-z", "9.0.0", "dev-z"},
	} {
		id := fmt.Sprintf("client-ids-%d", i)
		req := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
			"\r\nX-Request-Id: " + id + "\r\nContent-Type: application/json\r\n"
		if step.version != "-" {
			req += "X-App-Version: " + step.version + "\r\n"
		}
		if step.device != "-" {
			req += "X-Device-Id: " + step.device + "\r\n"
		}
		req += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
		if _, err := io.WriteString(conns[step.conn], req); err != nil {
			t.Fatal(err)
		}
		if resp, answer := readAnswer(t, conns[step.conn], readers[step.conn]); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, answer)
		}
		mu.Lock()
		sent, called := got[id]
		mu.Unlock()
		if want := [2]string{step.wantVersion, step.wantDevice}; !called || sent != want {
			t.Errorf("request %d on connection %d (%q, %q): the store got %q (called %v), want %q",
				i, step.conn, step.version, step.device, sent, called, want)
		}
	}
}

// The edge takes a request's start from the clock reading fasthttp made
// for it, and reads the clock itself only for a context fasthttp did not
// serve.
func TestArrivalIsTheTimeFasthttpReadTheRequest(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	var got, want time.Time
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		got, want = arrival(ctx), ctx.Time()
	}}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Shutdown() }()
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	for i := 0; i < 3; i++ { // one keep-alive connection: each request its own time
		time.Sleep(2 * time.Millisecond)
		prev := want
		if code, _, err := client.Get(nil, "http://gateway.test/"); err != nil || code != fasthttp.StatusOK {
			t.Fatalf("request %d: %d %v", i, code, err)
		}
		if want.IsZero() || !got.Equal(want) || !want.After(prev) {
			t.Fatalf("request %d: arrival %v, fasthttp's time %v (previous %v)", i, got, want, prev)
		}
	}

	var ctx fasthttp.RequestCtx // not served by fasthttp: no time of its own
	before := time.Now()
	a := arrival(&ctx)
	if a.Before(before) || a.After(time.Now()) {
		t.Fatalf("arrival outside fasthttp's loop is %v, not the clock's (%v)", a, before)
	}
}

// The listener counts a connection out once however often it is closed
// (fasthttp may close twice), and refuses beyond max without counting.
func TestClientListenerCountsOpenConnections(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	var open atomic.Int64
	refused := make(chan net.Conn, 4)
	l := clientListener{Listener: ln, slack: time.Second, max: 2, open: &open,
		refuse: func(c net.Conn) { refused <- c; c.Close() }}
	accepted := make(chan net.Conn, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return // the listener closed
			}
			accepted <- c
		}
	}()
	defer func() { ln.Close(); <-done }()
	dial := func() net.Conn {
		t.Helper()
		client, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		select {
		case c := <-accepted:
			return c
		case <-refused:
			return nil
		case <-time.After(5 * time.Second):
			t.Fatal("neither accepted nor refused")
			return nil
		}
	}
	a, b := dial(), dial()
	if a == nil || b == nil || open.Load() != 2 {
		t.Fatalf("two connections under a cap of 2: %v %v, open %d", a, b, open.Load())
	}
	if c := dial(); c != nil || open.Load() != 2 {
		t.Fatalf("a third: accepted %v, open %d", c, open.Load())
	}
	_ = a.Close()
	_ = a.Close()
	if open.Load() != 1 {
		t.Fatalf("after closing one twice: open %d, want 1", open.Load())
	}
	if c := dial(); c == nil || open.Load() != 2 {
		t.Fatalf("after a close, a new one: accepted %v, open %d", c, open.Load())
	}
}

// outOfFDs is a listener whose first accepts fail as accept4 does when
// the process has no file descriptor left.
type outOfFDs struct {
	net.Listener
	failures atomic.Int32
}

func (l *outOfFDs) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Running out of file descriptors (a flood of connections above the
// process's limit) passes once connections close; fasthttp ends Serve on
// any accept error but a timeout, so the listener must not hand it one: it
// waits, retries, and says so.
func TestClientListenerRetriesWhenOutOfFileDescriptors(t *testing.T) {
	ln := &outOfFDs{Listener: fasthttputil.NewInmemoryListener()}
	ln.failures.Store(3)
	defer ln.Close()
	var told []error
	l := clientListener{Listener: ln, slack: time.Second, acceptFailed: func(err error) { told = append(told, err) }}
	go func() { // Dial waits for the accept
		if client, err := ln.Listener.(*fasthttputil.InmemoryListener).Dial(); err == nil {
			client.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept gave fasthttp %v: it would stop serving for good", err)
	}
	c.Close()
	if len(told) != 3 || !errors.Is(told[0], syscall.EMFILE) {
		t.Fatalf("failed accepts reported: %v, want the 3 EMFILEs", told)
	}
	// Any other error still ends the listener.
	ln.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept on a closed listener gave no error")
	}
}

// The HeaderReceived hook finds its request's context from the header it
// is given (held.go): the pointer arithmetic must land on the context.
func TestRequestCtxOfHeader(t *testing.T) {
	var ctx fasthttp.RequestCtx
	if got := requestCtxOf(&ctx.Request.Header); got != &ctx {
		t.Fatalf("requestCtxOf = %p, want %p", got, &ctx)
	}
}

// deadlineRecorder is a connection that only records the read deadline
// it is given: the socket's deadline as the lazy deadlines leave it.
type deadlineRecorder struct {
	net.Conn
	given bool
	read  time.Time
}

func (r *deadlineRecorder) SetReadDeadline(t time.Time) error {
	r.given, r.read = true, t
	return nil
}

// FuzzLazyDeadline: after any sequence of deadlines asked for (any instant
// time.Time holds, before 1970 and after 2262 included), the socket's
// read deadline when a read is about to wait stands for the last one
// asked, as net.Conn would have it set directly: none for none; otherwise
// no earlier and at most slack later, and where Unix nanoseconds cannot
// say the instant, still on the same side of any clock reading (in the
// past for one before 1678, far in the future for one after 2262).
func FuzzLazyDeadline(f *testing.F) {
	hour := int64(time.Hour)
	for _, c := range []struct {
		slack                    int64
		sec1, sec2, sec3, n1, n2 int64
	}{
		{int64(time.Second), 1795000000, 1795000000, 1795000001, 0, 500_000_000},
		{int64(time.Second), 1795000000, 0, 1795000000, 0, 0},
		{hour / 10, -1, 0, 1, 999_999_999, 1},
		{int64(time.Second), 1795000000, 11_000_000_000, 1795000000, 0, 0}, // year 2318: now + the longest time.Duration
		{int64(time.Second), 9223372036, 9223372036, 9223372037, 854_775_000, 0},
		{int64(time.Second), 1795000000, -11_000_000_000, 1795000000, 0, 0}, // year 1621
		{0, 1, 2, 3, 4, 5},
	} {
		f.Add(c.slack, c.sec1, c.sec2, c.sec3, c.n1, c.n2)
	}
	var (
		maxNanos = time.Unix(0, math.MaxInt64)
		minNanos = time.Unix(0, math.MinInt64)
		y1970    = time.Unix(0, 0)
		y2200    = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	f.Fuzz(func(t *testing.T, slack, sec1, sec2, sec3, n1, n2 int64) {
		if slack < 0 || slack > int64(time.Second) {
			return // deadlineSlack: at most a second
		}
		var wants []time.Time
		for i, sec := range []int64{sec1, sec2, sec3} {
			const lim = 1e15 // 31 million years either side: wide, and far from time.Time's own limits
			if sec < -lim || sec > lim {
				return
			}
			if sec == 0 && i == 1 {
				wants = append(wants, time.Time{}) // none
				continue
			}
			wants = append(wants, time.Unix(sec, (n1+int64(i)*n2)%1e9))
		}
		rec := &deadlineRecorder{}
		c := &clientConn{Conn: rec, slack: slack}
		for _, want := range wants {
			if err := c.SetReadDeadline(want); err != nil {
				t.Fatal(err)
			}
			if err := c.beforeRead(); err != nil {
				t.Fatal(err)
			}
			got := rec.read // the zero time (none) until a deadline was given
			switch {
			case want.IsZero():
				if !got.IsZero() {
					t.Fatalf("%v: none asked, the socket has %v", wants, got)
				}
			case want.After(maxNanos.Add(-time.Duration(slack))):
				if !got.After(y2200) {
					t.Fatalf("%v: %v asked, the socket has %v", wants, want, got)
				}
			case want.Before(minNanos):
				if got.IsZero() || !got.Before(y1970) {
					t.Fatalf("%v: %v asked, the socket has %v", wants, want, got)
				}
			default:
				floor := want
				if want.Equal(y1970) {
					floor = want.Add(1) // the epoch itself is kept as 1 ns after it: still long past
				}
				if got.Before(floor) || got.Sub(floor) > time.Duration(slack) {
					t.Fatalf("%v (slack %v): %v asked, the socket has %v", wants, time.Duration(slack), want, got)
				}
			}
		}
	})
}

// countLine's run, over any stream of bytes read in any pieces, is the
// number of bytes since the last LF that ended a line fasthttp does not
// skip as blank (one holding more than nothing or a CR), at most lineMax:
// computed here over the whole stream at once.
func TestCountLineSkipsBlankLines(t *testing.T) {
	const lineMax = 8
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("a\r\n")
	for range 20000 {
		stream := make([]byte, rng.IntN(40))
		for i := range stream {
			stream[i] = alphabet[rng.IntN(len(alphabet))]
		}
		c := &clientConn{lineMax: lineMax}
		for rest := stream; len(rest) > 0; {
			n := 1 + rng.IntN(min(len(rest), 2*lineMax))
			c.countLine(rest[:n])
			rest = rest[n:]
		}
		runStart := 0 // where the run began: after the last LF of a line that is not blank
		for i, lineStart := 0, 0; i < len(stream); i++ {
			if stream[i] != '\n' {
				continue
			}
			if line := stream[lineStart:i]; len(line) > 1 || len(line) == 1 && line[0] != '\r' {
				runStart = i + 1
			}
			lineStart = i + 1
		}
		if want := min(len(stream)-runStart, lineMax); c.lineRun != want {
			t.Fatalf("%q: lineRun %d, want %d", stream, c.lineRun, want)
		}
	}
}

// requestLineTooLong never says 414 for a header block whose request line
// ended within fasthttp's read buffer: checked against fasthttp's own
// header reader, not a model of it. Streams of pipelined requests (blank
// lines before some, bodies holding CRs and LFs, targets and a header
// field around the buffer's size) are read through a clientConn in pieces
// of any size, reads past the buffer included, as serveConn reads them;
// at each 431 the buffer fasthttp holds, once its leading blank lines are
// skipped, must hold no LF when lineRun says 414. (The other way, a 414
// taken for a 431, is the known gap of a CRLF after a body.)
func TestCountLineNeverTakesABufferWithARequestLineForTooLong(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"\r\n", "\n", "\r", "a", "\r\r\n", " "}
	said414, saw431 := 0, 0
	for range 20000 {
		lineMax := 16 + rng.IntN(48) // bufio's smallest buffer and up
		var stream []byte
		for range 1 + rng.IntN(4) {
			for range rng.IntN(4) {
				stream = append(stream, []string{"\r\n", "\n"}[rng.IntN(2)]...)
			}
			stream = fmt.Appendf(stream, "GET /%s HTTP/1.1\r\nHost: h\r\nX: %s\r\n",
				strings.Repeat("t", rng.IntN(2*lineMax)), strings.Repeat("v", rng.IntN(2*lineMax)))
			if rng.IntN(3) == 0 {
				var body []byte
				for range 1 + rng.IntN(150) {
					body = append(body, pieces[rng.IntN(len(pieces))]...)
				}
				stream = fmt.Appendf(stream, "Content-Length: %d\r\n\r\n%s", len(body), body)
			} else {
				stream = append(stream, "\r\n"...)
			}
		}
		cc := &clientConn{Conn: &piecesConn{rest: stream, rng: rng}, lineMax: lineMax}
		br := bufio.NewReaderSize(cc, lineMax)
		var req fasthttp.Request
		for {
			req.Reset()
			err := req.Read(br)
			if err == nil {
				continue
			}
			if _, small := err.(*fasthttp.ErrSmallBuffer); !small {
				break // the stream's end, or a body fasthttp refuses
			}
			saw431++
			buf, _ := br.Peek(br.Buffered())
			line := buf
			for len(line) > 0 && line[0] == '\n' || len(line) > 1 && line[0] == '\r' && line[1] == '\n' {
				line = line[strings.IndexByte(string(line), '\n')+1:]
			}
			if cc.lineRun >= cc.lineMax {
				said414++
				if i := strings.IndexByte(string(line), '\n'); i >= 0 {
					t.Fatalf("414 for a buffer whose request line %q ended in it (lineMax %d):\nstream %q\nbuffer %q",
						line[:i], lineMax, stream, buf)
				}
			}
			break
		}
	}
	if said414 == 0 || said414 == saw431 {
		t.Fatalf("%d 414s among %d 431s: the streams do not test both", said414, saw431)
	}
}

// piecesConn reads out rest in pieces of 1 to 300 bytes.
type piecesConn struct {
	net.Conn
	rest []byte
	rng  *rand.Rand
}

func (c *piecesConn) Read(p []byte) (int, error) {
	if len(c.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.rest[:min(len(c.rest), 1+c.rng.IntN(300))])
	c.rest = c.rest[n:]
	return n, nil
}

// countLine counts the bytes read since the last LF, across reads, up to
// the read buffer's size: what tells a request line over the buffer (414)
// from a header block over it (431).
func TestCountLineCountsBytesSinceTheLastLF(t *testing.T) {
	c := &clientConn{lineMax: 16}
	for _, step := range []struct {
		read string
		run  int
	}{
		{"GET /a", 6},
		{"bc", 8}, // a line in pieces adds up
		{"d HTTP/1.1\r", 16},
		{"\nHost", 4}, // an LF first, ending a line begun before: the bytes after it
		{strings.Repeat("x", 20), 16},
		{"y", 16}, // no further than the buffer
		{strings.Repeat("z", 30) + "\nab", 2},
		{"\n" + strings.Repeat("q", 20), 16}, // an LF further back than the buffer
		{"\r\n", 0},
	} {
		c.countLine([]byte(step.read))
		if c.lineRun != step.run {
			t.Fatalf("after reading %q: lineRun %d, want %d", step.read, c.lineRun, step.run)
		}
	}
}

// A deadline at the Unix epoch itself is long past, as net.Conn reads it:
// it reaches the socket as one in the past, not as none (Unix nanoseconds
// 0 stand for none).
func TestLazyDeadlineAtTheEpochIsPast(t *testing.T) {
	rec := &deadlineRecorder{}
	c := &clientConn{Conn: rec, slack: int64(time.Second)}
	if err := c.SetReadDeadline(time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := c.beforeRead(); err != nil {
		t.Fatal(err)
	}
	if !rec.given || rec.read.IsZero() || !rec.read.Before(time.Unix(60, 0)) {
		t.Fatalf("the epoch asked: the socket was given %v (given %v), want a deadline in 1970", rec.read, rec.given)
	}
}

// closedConn records whether it was closed.
type closedConn struct {
	net.Conn
	closed bool
}

func (c *closedConn) Close() error { c.closed = true; return nil }

// connSet keeps every open connection linked, whichever of them closed
// before (the newest, the oldest, one in between), so that a drain cut
// short closes all the others; one added after closeAll is refused.
func TestConnSetClosesEveryOpenConnection(t *testing.T) {
	for _, gone := range []int{0, 1, 2} { // the index, in the order added, of the one removed
		var s connSet
		var conns [3]*clientConn
		for i := range conns {
			conns[i] = &clientConn{Conn: &closedConn{}}
			if !s.add(conns[i]) {
				t.Fatal("add refused before closeAll")
			}
		}
		s.remove(conns[gone])
		s.closeAll()
		for i, c := range conns {
			if closed := c.Conn.(*closedConn).closed; closed != (i != gone) {
				t.Errorf("connection %d of 3 removed: connection %d closed %v", gone, i, closed)
			}
		}
		if s.add(&clientConn{Conn: &closedConn{}}) {
			t.Error("add accepted a connection after closeAll")
		}
	}
}

// The ops listener runs out of file descriptors with the rest of the
// process. net/http would retry such an accept too, but write every retry,
// once a second while it lasts, as plain text on stderr, past the JSON log
// (and the runbook's `fromjson?`): the listener retries it itself instead.
func TestOpsListenerRetriesWhenOutOfFileDescriptors(t *testing.T) {
	ln := &outOfFDs{Listener: fasthttputil.NewInmemoryListener()}
	ln.failures.Store(3)
	defer ln.Close()
	var log bytes.Buffer
	l := OpsListener(ln, slog.New(slog.NewJSONHandler(&log, nil)))
	go func() { // Dial waits for the accept
		if client, err := ln.Listener.(*fasthttputil.InmemoryListener).Dial(); err == nil {
			client.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		if c, err := ln.Listener.Accept(); err == nil { // let Dial return, or Close waits for it
			c.Close()
		}
		t.Fatalf("Accept gave net/http %v: it logs it on stderr, not in the JSON log", err)
	}
	c.Close()
	// The three failures make one line, as on the public listener.
	if n := strings.Count(log.String(), `"msg":"accepting a connection failed; retrying"`); n != 1 ||
		!strings.Contains(log.String(), `"level":"ERROR"`) || !strings.Contains(log.String(), "too many open files") {
		t.Fatalf("logged %d lines, want 1 at ERROR with the error:\n%s", n, log.String())
	}
	// Any other error still ends the listener.
	ln.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept on a closed listener gave no error")
	}
}

// net/http refuses some requests itself, before any handler runs, writing
// its answer straight to the connection as plain text: a header block over
// MaxHeaderBytes (431), a request it cannot parse (400), a transfer coding
// it does not know (501), an HTTP version it does not speak (505); and an
// expectation other than 100-continue, with an empty 417. On the
// ops listener they are envelopes like its other answers, each ended by
// its length, and the 431, whose client may still be sending, by the end
// of the stream before the connection closes (net/http's CloseWrite, which
// opsConn hid: the client read a reset after the text, and curl failed).
// The ops handlers' own refusals pass through opsConn as written: only
// net/http's plain-text ones (its fixed header lines, no Date) are
// replaced. A 4xx of a handler keeps its headers (Allow,
// WWW-Authenticate) and its body, whatever its Content-Type says.
func TestOpsListenerPassesTheHandlersOwnRefusalsOn(t *testing.T) {
	ln := serveOps(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusMethodNotAllowed)
		io.WriteString(w, "the handler's own body")
	}, 0)
	resp, err := http.Post("http://"+ln.Addr().String()+"/healthz", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" ||
		string(body) != "the handler's own body" {
		t.Fatalf("answer %d %v %q, want the handler's 405 with its Allow and body", resp.StatusCode, resp.Header, body)
	}
}

func TestOpsListenerRefusalsAreEnvelopes(t *testing.T) {
	ln := serveOps(t, func(w http.ResponseWriter, r *http.Request) { writeOps(w, http.StatusOK, "served") }, 8<<10)
	for _, c := range []struct {
		name, request string
		status        int
		message       string
	}{
		{"header block too large", "GET /healthz HTTP/1.1\r\nHost: ops\r\nX-Padding: " + strings.Repeat("a", 64<<10) + "\r\n\r\n",
			http.StatusRequestHeaderFieldsTooLarge, "Request headers too large"},
		{"unparsable", "garbage\r\n\r\n", http.StatusBadRequest, "Validation failed"},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", http.StatusBadRequest, "Validation failed"},
		{"unknown transfer coding", "POST /healthz HTTP/1.1\r\nHost: ops\r\nTransfer-Encoding: gzip\r\n\r\n",
			http.StatusNotImplemented, "Malformed request"},
		{"unknown version", "GET /healthz HTTP/3.0\r\nHost: ops\r\n\r\n", http.StatusHTTPVersionNotSupported,
			"HTTP version not supported: use HTTP/1.1"},
		{"an expectation it does not meet", "GET /healthz HTTP/1.1\r\nHost: ops\r\nExpect: foo\r\n\r\n",
			http.StatusExpectationFailed, "Malformed request"},
		{"an expectation it does not meet, HTTP/1.0", "POST /healthz HTTP/1.0\r\nExpect: foo\r\nContent-Length: 2\r\n\r\n{}",
			http.StatusExpectationFailed, "Malformed request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, c.request); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the answer: %v (%q so far)", err, body)
			}
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" ||
				resp.Header.Get("Cache-Control") != "no-store" || !saneRequestID([]byte(resp.Header.Get("X-Request-Id"))) ||
				resp.ContentLength != int64(len(body)) || !resp.Close {
				t.Fatalf("answer %d %v, want %d, JSON, no-store, a request id, a length and Connection: close", resp.StatusCode, resp.Header, c.status)
			}
			// RFC 9110 section 6.6.1: a 4xx of a server with a clock has a Date.
			if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
				t.Fatalf("Date %q: %v", resp.Header.Get("Date"), err)
			}
			var env struct {
				IsSuccess  bool            `json:"isSuccess"`
				StatusCode int             `json:"statusCode"`
				Data       json.RawMessage `json:"data"`
				Errors     []string        `json:"errors"`
				Timestamp  string          `json:"timestamp"`
			}
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("not an envelope: %v: %q", err, body)
			}
			if env.IsSuccess || env.StatusCode != c.status || string(env.Data) != "null" ||
				len(env.Errors) != 1 || env.Errors[0] != c.message || env.Timestamp == "" {
				t.Fatalf("envelope %s, want status %d and %q", body, c.status, c.message)
			}
			// The answer is the connection's last, ended by the stream's end.
			if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("after the answer: %d bytes, %v; want the end of the stream", n, err)
			}
		})
	}
}

// The 417 net/http answers a HEAD request with an expectation it does not
// meet is the envelope's header block, without its body (RFC 9110 section
// 9.3.2), as every answer to HEAD.
func TestOpsListenerRefusalOfHeadHasNoBody(t *testing.T) {
	ln := serveOps(t, func(w http.ResponseWriter, r *http.Request) { writeOps(w, http.StatusOK, "served") }, 0)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "HEAD /healthz HTTP/1.1\r\nHost: ops\r\nExpect: foo\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%v after %q", err, got)
	}
	block, rest, ok := strings.Cut(string(got), "\r\n\r\n")
	if !ok || !strings.HasPrefix(block, "HTTP/1.1 417 ") || rest != "" {
		t.Fatalf("answer %q, want a 417 header block alone", got)
	}
	for _, line := range []string{"\r\nContent-Type: application/json", "\r\nCache-Control: no-store", "\r\nX-Request-Id: ",
		"\r\nContent-Length: ", "\r\nConnection: close"} {
		if !strings.Contains(block, line) {
			t.Fatalf("header block %q, want %q", block, line[2:])
		}
	}
	// Its Content-Length is the one a GET gets with its body (RFC 9110
	// section 9.3.2), the envelope's, not 0.
	get, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer get.Close()
	_ = get.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(get, "GET /healthz HTTP/1.1\r\nHost: ops\r\nExpect: foo\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(get), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	headResp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), &http.Request{Method: http.MethodHead})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusExpectationFailed || len(body) == 0 || headResp.ContentLength != int64(len(body)) {
		t.Fatalf("HEAD's Content-Length %d; GET's answer %d with a body of %d bytes", headResp.ContentLength, resp.StatusCode, len(body))
	}
}

// A handler's own 417 passes on as written, as its other refusals do:
// only net/http's (its header block alone, written before any handler)
// is replaced by the envelope.
func TestOpsListenerPassesTheHandlersOwn417On(t *testing.T) {
	ln := serveOps(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusExpectationFailed)
		io.WriteString(w, "the handler's own body")
	}, 0)
	// Bounded: a header block alone, replaced, announces a body it lacks.
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%v after %d %v %q", err, resp.StatusCode, resp.Header, body)
	}
	if resp.StatusCode != http.StatusExpectationFailed || string(body) != "the handler's own body" {
		t.Fatalf("answer %d %v %q, want the handler's 417 with its body", resp.StatusCode, resp.Header, body)
	}
}

// serveOps serves h through OpsListener, as the daemon serves the ops
// listener (net/http's own refusals written through it), on a loopback
// port, with a header limit of maxHeader bytes (0: net/http's default).
func serveOps(t *testing.T, h func(http.ResponseWriter, *http.Request), maxHeader int) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(h),
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go srv.Serve(OpsListener(ln, slog.New(slog.NewJSONHandler(io.Discard, nil))))
	t.Cleanup(func() { srv.Close() })
	return ln
}
