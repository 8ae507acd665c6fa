package faultproxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backendBody is what the test backend answers, long enough to cut.
var backendBody = `{"items":[` + strings.Repeat(`{"id":"x","userId":"y","title":"t","startedAt":"s","viewerCount":1},`, 20) + `{"id":"z","userId":"w","title":"t","startedAt":"s","viewerCount":2}]}`

// setup starts a backend, a proxy in front of it and an HTTP client that
// never keeps connections past the test.
func setup(t *testing.T) (*Proxy, *http.Client, *backend) {
	t.Helper()
	b := &backend{}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	p, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return p, &http.Client{Transport: tr, Timeout: 5 * time.Second}, b
}

type backend struct {
	mu   sync.Mutex
	hits []string
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.hits = append(b.hits, r.Method+" "+r.RequestURI+" "+string(body))
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Backend", "yes")
	w.Write([]byte(backendBody))
}

func (b *backend) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.hits...)
}

func get(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestForwardKeepsPathQueryAndBody(t *testing.T) {
	p, c, b := setup(t)
	p.Record(true)
	req, _ := http.NewRequest("POST", p.URL()+"/internal/v1/users/a%2Fb?q=%C5%9F%26x&limit=5", strings.NewReader(`{"username":"x"}`))
	req.Header.Set("X-Request-Id", "r1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != backendBody || resp.Header.Get("X-Backend") != "yes" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	want := `POST /internal/v1/users/a%2Fb?q=%C5%9F%26x&limit=5 {"username":"x"}`
	if hits := b.seen(); len(hits) != 1 || hits[0] != want {
		t.Fatalf("backend saw %q, want %q", hits, want)
	}
	seen := p.Seen()
	if len(seen) != 1 || seen[0].Header.Get("X-Request-Id") != "r1" || seen[0].RequestURI != "/internal/v1/users/a%2Fb?q=%C5%9F%26x&limit=5" {
		t.Fatalf("recorded %+v", seen)
	}
	if s := p.Stats(); s.Requests != 1 || s.Forwarded != 1 || s.Connections != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRefuseClosesListenerAndComesBack(t *testing.T) {
	p, c, _ := setup(t)
	if code, _, _ := get(t, c, p.URL()+"/a"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if err := p.Set(Refuse()); err != nil {
		t.Fatal(err)
	}
	_, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while refusing: %v, want ECONNREFUSED", err)
	}
	// The kept-alive connection was closed too: the client cannot get
	// through on it.
	if _, err := c.Get(p.URL() + "/a"); err == nil {
		t.Fatal("request went through while refusing")
	}
	if err := p.Set(Forward()); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, c, p.URL()+"/a"); code != 200 {
		t.Fatalf("status %d after refusing", code)
	}
}

func TestAcceptCloseResetsNewConnections(t *testing.T) {
	p, c, _ := setup(t)
	if err := p.Set(AcceptClose()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(p.URL() + "/a"); err == nil {
		t.Fatal("request went through")
	}
	s := p.Stats()
	if s.ClosedEarly < 1 || s.Requests != 0 || s.Forwarded != 0 {
		t.Fatalf("stats %+v", s)
	}
	p.Heal()
	if code, _, _ := get(t, c, p.URL()+"/a"); code != 200 {
		t.Fatalf("status %d after healing", code)
	}
}

// rawExchange writes a request on a fresh connection and returns what came
// back and how reading ended.
func rawExchange(t *testing.T, addr string) ([]byte, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}

func TestHangUpAndReset(t *testing.T) {
	p, _, b := setup(t)
	p.Set(HangUp())
	got, err := rawExchange(t, p.Addr())
	if len(got) != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("hang-up: got %q, %v; want nothing and EOF", got, err)
	}
	p.Set(Reset())
	got, err = rawExchange(t, p.Addr())
	if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reset: got %q, %v; want nothing and ECONNRESET", got, err)
	}
	if len(b.seen()) != 0 || p.Stats().Forwarded != 0 || p.Stats().Requests != 2 {
		t.Fatalf("backend saw %v, stats %+v", b.seen(), p.Stats())
	}
}

func TestResetMidBody(t *testing.T) {
	p, _, _ := setup(t)
	p.Set(ResetMidBody(10))
	got, err := rawExchange(t, p.Addr())
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("read ended with %v, want a reset", err)
	}
	head, body, ok := strings.Cut(string(got), "\r\n\r\n")
	// The RST may overtake unread data; what arrived is at most the head
	// and 10 body bytes, announcing the whole length.
	if ok {
		if !strings.Contains(head, fmt.Sprintf("Content-Length: %d", len(backendBody))) || len(body) > 10 {
			t.Fatalf("got head %q and %d body bytes", head, len(body))
		}
	}
}

func TestDelayAndDrip(t *testing.T) {
	p, c, _ := setup(t)
	p.Set(Delay(150 * time.Millisecond))
	start := time.Now()
	code, body, _ := get(t, c, p.URL()+"/a")
	if d := time.Since(start); code != 200 || body != backendBody || d < 150*time.Millisecond {
		t.Fatalf("delay: %d after %s", code, d)
	}

	p.Set(Drip(len(backendBody)/4+1, 40*time.Millisecond))
	start = time.Now()
	resp, err := c.Get(p.URL() + "/a")
	if err != nil {
		t.Fatal(err)
	}
	headers := time.Since(start)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != backendBody {
		t.Fatalf("drip body %q, %v", b, err)
	}
	if total := time.Since(start); total < 4*40*time.Millisecond || headers >= total {
		t.Fatalf("drip: headers after %s, body after %s; want the body over >= 160ms", headers, total)
	}
}

func TestCannedAnswers(t *testing.T) {
	p, c, b := setup(t)

	p.Set(Status(503).Times(2))
	for i := range 2 {
		code, body, h := get(t, c, p.URL()+"/a")
		var e struct{ Code, Message string }
		if code != 503 || h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &e) != nil || e.Code != "unavailable" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if code, _, _ := get(t, c, p.URL()+"/a"); code != 200 {
		t.Fatalf("after the burst: %d", code)
	}
	if len(b.seen()) != 1 {
		t.Fatalf("backend saw %d requests, want 1", len(b.seen()))
	}

	p.Set(HTML())
	if code, body, h := get(t, c, p.URL()+"/a"); code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "<html>") {
		t.Fatalf("html: %d %q %q", code, h.Get("Content-Type"), body)
	}

	p.Set(TruncatedJSON())
	if code, body, _ := get(t, c, p.URL()+"/a"); code != 200 || len(body) != len(backendBody)/2 || json.Valid([]byte(body)) {
		t.Fatalf("truncated: %d, %d bytes, valid %v", code, len(body), json.Valid([]byte(body)))
	}

	p.Set(Oversized(5000))
	if code, body, _ := get(t, c, p.URL()+"/a"); code != 200 || len(body) <= 5000 || !json.Valid([]byte(body)) {
		t.Fatalf("oversized: %d, %d bytes", code, len(body))
	}

	p.Set(Respond(302, "text/plain", "moved"))
	if code, body, _ := get(t, c, p.URL()+"/a"); code != 302 || body != "moved" {
		t.Fatalf("respond: %d %q", code, body)
	}
}

func TestFlap(t *testing.T) {
	p, c, _ := setup(t)
	p.Set(Flap(2, Status(500)))
	var got []int
	for range 6 {
		code, _, _ := get(t, c, p.URL()+"/a")
		got = append(got, code)
	}
	if fmt.Sprint(got) != "[200 200 500 500 200 200]" {
		t.Fatalf("flap by count: %v", got)
	}

	p.Set(FlapEvery(300*time.Millisecond, Status(502)))
	first, _, _ := get(t, c, p.URL()+"/a")
	time.Sleep(450 * time.Millisecond)
	second, _, _ := get(t, c, p.URL()+"/a")
	if first != 200 || second != 502 {
		t.Fatalf("flap by time: %d then %d", first, second)
	}
}

func TestPathRules(t *testing.T) {
	p, c, _ := setup(t)
	p.SetPath("/internal/v1/live-streams/", Status(500))
	p.SetPath("/internal/v1/", Status(404))
	p.SetPath("/internal/v1/users/", Status(409).Times(1))
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/internal/v1/live-streams/active", 500},
		{"/internal/v1/usernames/check", 404},
		{"/internal/v1/users/x", 409},
		{"/internal/v1/users/x", 200}, // spent: falls back to the default, not the shorter prefix
		{"/other", 200},
	} {
		if code, _, _ := get(t, c, p.URL()+tc.path); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.path, code, tc.want)
		}
	}
	p.Heal()
	if code, _, _ := get(t, c, p.URL()+"/internal/v1/live-streams/active"); code != 200 {
		t.Fatalf("after Heal: %d", code)
	}
}

func TestInvalidModes(t *testing.T) {
	p, _, _ := setup(t)
	for name, err := range map[string]error{
		"refuse per path":   p.SetPath("/a", Refuse()),
		"accept per path":   p.SetPath("/a", AcceptClose()),
		"refuse times":      p.Set(Refuse().Times(2)),
		"flap to refuse":    p.Set(Flap(1, Refuse())),
		"flap to flap":      p.Set(Flap(1, Flap(1, Reset()))),
		"impossible status": p.Set(Respond(42, "", "")),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New("not a url"); err == nil {
		t.Error("New accepted a bad target")
	}
}

// TestCloseStopsEverything closes the proxy while handlers sleep, drip
// and hold hijacked connections; goleak in TestMain checks nothing is
// left behind.
func TestCloseStopsEverything(t *testing.T) {
	b := &backend{}
	srv := httptest.NewServer(b)
	defer srv.Close()
	p, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	p.SetPath("/slow", Delay(time.Minute))
	p.SetPath("/drip", Drip(1, time.Second))
	var wg sync.WaitGroup
	for _, path := range []string{"/slow", "/drip", "/slow"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", p.Addr())
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
			io.Copy(io.Discard, bufio.NewReader(conn))
		}()
	}
	for p.Stats().Requests < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Set(Forward()); err == nil {
		t.Fatal("Set after Close succeeded")
	}
}

// TestSwitchingUnderTraffic changes modes while requests run (run with
// -race).
func TestSwitchingUnderTraffic(t *testing.T) {
	p, c, _ := setup(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if resp, err := c.Get(p.URL() + "/a"); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	modes := []Mode{Status(500), Reset(), Forward(), Flap(3, HangUp()), Refuse(), TruncatedJSON(), AcceptClose(), Delay(time.Millisecond), Forward()}
	for _, m := range modes {
		if err := p.Set(m); err != nil {
			t.Fatal(err)
		}
		p.SetPath("/a", Drip(1000, time.Millisecond).Times(3))
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if s := p.Stats(); s.Requests == 0 {
		t.Fatalf("no traffic: %+v", s)
	}
}
