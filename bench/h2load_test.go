package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// What h2load 1.52 prints at the end of a run.
const h2loadOut = `starting benchmark...
spawning thread #0: 64 total client(s). 282000 total requests
Application protocol: http/1.1
progress: 10% done

finished in 6.09s, 46298.85 req/s, 49.01MB/s
requests: 282000 total, 282000 started, 281990 done, 281980 succeeded, 20 failed, 10 errored, 7 timeout
status codes: 281980 2xx, 0 3xx, 0 4xx, 10 5xx
traffic: 298.52MB (313020000) total, 21.25MB (22278000) headers (space savings 0.00%), 268.94MB (282000000) data
                     min         max         mean         sd        +/- sd
time for request:       14us      8.33ms       158us       189us    93.60%
`

func TestParseH2loadSummary(t *testing.T) {
	s, err := parseH2loadSummary([]byte(h2loadOut))
	if err != nil {
		t.Fatal(err)
	}
	if s != (h2loadSummary{Done: 281990, Errored: 10, Timeout: 7, Bytes: 313020000}) {
		t.Errorf("parsed %+v", s)
	}
	for _, out := range []string{
		"",
		"connect: Connection refused\nNo connection could be made\n",
		strings.Replace(h2loadOut, "traffic:", "trafic:", 1),
	} {
		if _, err := parseH2loadSummary([]byte(out)); err == nil {
			t.Errorf("accepted %q", out)
		}
	}
}

// writeLog writes h2load log lines (start µs, status, µs) to a file.
func writeLog(t *testing.T, lines []string) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "log.tsv")
	var text string
	for _, l := range lines {
		text += l + "\n"
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Only requests that started inside the window (the second after the
// lead-in, from the run's first request) count; statuses outside 2xx and
// the run's transport errors are errors; a mean size on the wire that is
// not the probe's is an error too.
func TestH2loadWindow(t *testing.T) {
	from := time.UnixMicro(1_000_000_000)
	const lead = 3 * time.Microsecond
	lines := []string{
		"999999997\t200\t5000", // the run's first request, before the window (the lead-in)
		"1000000000\t200\t100",
		"1000000100\t200\t300",
		"1000000200\t503\t200",
		"1000500000\t200\t400",
		"1000999999\t200\t1000", // last one in
		"1001000000\t200\t9",    // after
	}
	sum := h2loadSummary{Done: 7, Bytes: 7 * 1264}
	win, err := h2loadWindow(writeLog(t, lines), lead, time.Second, from, 1264, sum)
	if err != nil {
		t.Fatal(err)
	}
	if win.Requests != 5 || win.Errors != 1 || win.Served != 6 {
		t.Errorf("requests %d errors %d served %d, want 5, 1 and 6 (the tail after the window)", win.Requests, win.Errors, win.Served)
	}
	if win.Elapsed != 1000*time.Millisecond+999*time.Microsecond {
		t.Errorf("elapsed %s", win.Elapsed)
	}
	// This process marked the window's start 0.5 s late (a busy
	// machine): the window is the same, h2load's clock times it; Served,
	// what the CPU between the marks went to, starts at the mark.
	late, err := h2loadWindow(writeLog(t, lines), lead, time.Second, from.Add(500*time.Millisecond), 1264, sum)
	if err != nil {
		t.Fatal(err)
	}
	if late.Requests != 5 || late.Elapsed != win.Elapsed || late.P99 != win.P99 || late.Served != 3 {
		t.Errorf("marked late: requests %d elapsed %s p99 %s served %d, want 5, %s, %s and 3", late.Requests, late.Elapsed, late.P99, late.Served, win.Elapsed, win.P99)
	}
	if win.P50 != 300*time.Microsecond || win.P99 != time.Millisecond || win.Max != time.Millisecond {
		t.Errorf("p50 %s p99 %s max %s", win.P50, win.P99, win.Max)
	}
	// The window's starts span 100 intervals of 10 ms; its tail (the
	// answer of 1 ms) started in the last.
	if win.TailIntervals != 1 || win.Intervals != 100 {
		t.Errorf("tail in %d of %d intervals, want 1 of 100", win.TailIntervals, win.Intervals)
	}
	if len(win.ErrorSamples) != 1 || !strings.Contains(win.ErrorSamples[0], "status 503") {
		t.Errorf("samples %q", win.ErrorSamples)
	}

	// h2load counts a timed out request as errored too: 3 errored, 1 of
	// them timed out, is 3 requests without an answer.
	sum = h2loadSummary{Done: 7, Bytes: 7 * 1300, Errored: 3, Timeout: 1}
	win, err = h2loadWindow(writeLog(t, lines), lead, time.Second, from, 1264, sum)
	if err != nil {
		t.Fatal(err)
	}
	if win.Errors != 1+3+1 {
		t.Errorf("errors %d, want the 503, the 3 requests without an answer and the size mismatch", win.Errors)
	}
	if got := strings.Join(win.ErrorSamples, "|"); !strings.Contains(got, "3 requests errored, 1 of them timed out") || !strings.Contains(got, "1300.0 bytes on the wire") {
		t.Errorf("samples %q", win.ErrorSamples)
	}

	// What h2load 1.52 printed for 2 clients of 10 requests whose first
	// answers never came (-N 1s): each client's request in flight timed
	// out, and its other 9 were never sent.
	stalled, err := parseH2loadSummary([]byte("requests: 20 total, 2 started, 0 done, 0 succeeded, 20 failed, 20 errored, 2 timeout\n" +
		"status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx\ntraffic: 0B (0) total, 0B (0) headers (space savings 0.00%), 0B (0) data\n"))
	if err != nil {
		t.Fatal(err)
	}
	win, err = h2loadWindow(writeLog(t, nil), lead, time.Second, from, 1264, stalled)
	if err != nil {
		t.Fatal(err)
	}
	if win.Errors != 20 {
		t.Errorf("errors %d for 20 requests without an answer", win.Errors)
	}

	if _, err := h2loadWindow(writeLog(t, []string{"1000000000 200 100"}), lead, time.Second, from, 0, h2loadSummary{}); err == nil {
		t.Error("a line that is not tab-separated was accepted")
	}
	if _, err := h2loadWindow(writeLog(t, []string{"1000000000\tx\t100"}), lead, time.Second, from, 0, h2loadSummary{}); err == nil {
		t.Error("a line with a bad status was accepted")
	}
}

// The real h2load against a real server: the scenario's method, headers
// and body arrive, the rate is held, the window lies between the marks, and
// wrong answers are errors.
func TestH2loadOpenWindow(t *testing.T) {
	path, err := exec.LookPath("h2load")
	if err != nil {
		t.Skip("h2load is not installed (Debian: apt-get install -y nghttp2-client; .ci/run installs it)")
	}
	var (
		n       atomic.Int64
		mu      sync.Mutex
		badReqs []string
	)
	const answer = `{"isSuccess":true}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.RequestURI() != "/check?x=1" || string(body) != `{"username":"johndoe123"}` ||
			r.Header.Get("Authorization") != "Bearer t.o.k" || r.Header.Get("Content-Type") != "application/json" {
			mu.Lock()
			badReqs = append(badReqs, fmt.Sprintf("%s %s %q %v", r.Method, r.URL, body, r.Header))
			mu.Unlock()
		}
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"isSuccess":false}`))
			return
		}
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	sc := &scenario{Name: "t", Method: http.MethodPost, URL: srv.URL + "/check?x=1", Body: []byte(`{"username":"johndoe123"}`),
		Header: http.Header{"Authorization": {"Bearer t.o.k"}, "Content-Type": {"application/json"}}}
	h := &h2loadOpen{path: path, dir: t.TempDir(), connections: 8}
	// The first mark comes 0.6 s late, as a busy machine made it (its
	// sleep woke late): more than the 0.2 s of requests h2load has after
	// the window, which must still be whole. The server's count then:
	// what it answered before started before the mark.
	marks, answeredBefore := 0, int64(-1)
	mark := func() (cpuMark, error) {
		marks++
		if marks == 1 {
			time.Sleep(600 * time.Millisecond)
			answeredBefore = n.Load() // before the mark's time: all of them started before it
		}
		return cpuMark{at: time.Now()}, nil
	}
	win, before, after, err := h.window(context.Background(), sc, 400, 300*time.Millisecond, time.Second, mark)
	if err != nil {
		t.Fatal(err)
	}
	if marks != 2 || !before.at.Before(after.at) {
		t.Errorf("%d marks, %s to %s", marks, before.at, after.at)
	}
	mu.Lock()
	if len(badReqs) > 0 {
		t.Errorf("%d requests were not the scenario's, e.g. %s", len(badReqs), badReqs[0])
	}
	mu.Unlock()
	if win.Requests < 360 || win.Requests > 440 {
		t.Errorf("%d requests in the 1-s window at 400/s", win.Requests)
	}
	if win.Errors < win.Requests/10-5 || win.Errors > win.Requests/10+5 {
		t.Errorf("%d errors of %d requests, want about a tenth (the 503s)", win.Errors, win.Requests)
	}
	if win.P50 <= 0 || win.P99 < win.P50 || win.Max < win.P999 || win.Elapsed < 900*time.Millisecond {
		t.Errorf("p50 %s p99 %s max %s elapsed %s", win.P50, win.P99, win.Max, win.Elapsed)
	}
	// What the CPU between the marks went to: Served is every request the
	// server answered after the first mark but those still in flight then
	// (at most one per connection), h2load's tail after the window (80
	// requests) included. Its length depends on when h2load really started
	// and when the mark came, so it is checked against the server's count,
	// not against the rate.
	afterMark := n.Load() - answeredBefore
	if win.Served > afterMark || win.Served < afterMark-int64(h.connections) {
		t.Errorf("%d requests served from the first mark, the server answered %d after it", win.Served, afterMark)
	}
	// Every request of the run was answered; none of the lead-in is in the window.
	if total := n.Load(); total < win.Requests+100 {
		t.Errorf("the server answered %d, the window holds %d: the lead-in is missing or counted", total, win.Requests)
	}
}

// fakeOpen is an open loop that returns a fixed window and marks.
type fakeOpen struct {
	win           window
	before, after cpuMark
}

func (f *fakeOpen) window(context.Context, *scenario, int, time.Duration, time.Duration, func() (cpuMark, error)) (window, cpuMark, cpuMark, error) {
	return f.win, f.before, f.after, nil
}

// With h2load the CPU marks are not the window's ends (here, on time, they
// enclose the window and its tail: 5.25 s for a 5-s window): what other
// processes took of the server core, and what the generator used, are
// shares of the marks' interval, as the CPU per request is.
func TestOpenWindowSharesOverTheMarks(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	f := &fakeOpen{
		win:    window{Requests: 5000, Served: 5250, Elapsed: 5 * time.Second, GeneratorCPU: 3675 * time.Millisecond},
		before: cpuMark{contender: cpuSnapshot{1: {user: time.Second}}, coresUser: 10 * time.Second, coresOK: true, at: t0},
		after: cpuMark{contender: cpuSnapshot{1: {user: time.Second + 1050*time.Millisecond}}, coresUser: 10*time.Second + 1050*time.Millisecond + 525*time.Millisecond,
			coresOK: true, at: t0.Add(5250 * time.Millisecond)},
	}
	r := &runner{opts: &options{duration: 5 * time.Second}, open: f}
	rd, err := r.openWindow(context.Background(), &scenario{Name: "t"}, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(rd.CPUMicrosPerRequest-200) > 1e-6 {
		t.Errorf("CPU per request %.3f µs, want 200 (1.05 s over the 5250 requests between the marks)", rd.CPUMicrosPerRequest)
	}
	if math.Abs(rd.ServerCoreOther-0.10) > 1e-6 {
		t.Errorf("others on the server core %.4f, want 0.10 (0.525 s of 5.25)", rd.ServerCoreOther)
	}
	if math.Abs(rd.GeneratorCoreBusy-0.70) > 1e-6 {
		t.Errorf("generator core %.4f, want 0.70 (3.675 s of 5.25)", rd.GeneratorCoreBusy)
	}
	if math.Abs(rd.AchievedRate-1000) > 1e-6 {
		t.Errorf("achieved %.1f req/s, want 1000 (the window's)", rd.AchievedRate)
	}
}

// At a low rate every client sends one request a second: each needs
// enough requests of its own to reach past the window, not a share of
// the rate's total rounded down (5 req/s, 0.3 s lead-in, a 1-s window:
// 7 requests for 5 clients left 3 of them without one in the window).
func TestH2loadOpenWindowLowRate(t *testing.T) {
	path, err := exec.LookPath("h2load")
	if err != nil {
		t.Skip("h2load is not installed (Debian: apt-get install -y nghttp2-client; .ci/run installs it)")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	sc := &scenario{Name: "t", Method: http.MethodGet, URL: srv.URL + "/"}
	h := &h2loadOpen{path: path, dir: t.TempDir(), connections: 8}
	mark := func() (cpuMark, error) { return cpuMark{at: time.Now()}, nil }
	win, before, after, err := h.window(context.Background(), sc, 5, 300*time.Millisecond, time.Second, mark)
	if err != nil {
		t.Fatal(err)
	}
	if win.Requests < 4 || win.Requests > 6 || win.Errors != 0 {
		t.Errorf("%d requests (%d errors) in the 1-s window at 5 req/s", win.Requests, win.Errors)
	}
	if marks := after.at.Sub(before.at); marks < time.Second {
		t.Errorf("h2load ended %s after the window started, inside the 1-s window", marks)
	}
}

// Every answer outside 2xx in the window is an error, a 4xx as much as a
// 5xx (a 429 from a rate limit is fast and wrong); and a mean size on the
// wire below the verified answer's (an error envelope is shorter) is one
// as much as one above it.
func TestH2loadWindowCountsEveryWrongAnswer(t *testing.T) {
	from := time.UnixMicro(1_000_000_000)
	lines := []string{"1000000000\t200\t100", "1000000100\t429\t50", "1000000200\t404\t50", "1000000300\t200\t100"}
	win, err := h2loadWindow(writeLog(t, lines), 0, time.Second, from, 1264, h2loadSummary{Done: 4, Bytes: 4 * 1264})
	if err != nil {
		t.Fatal(err)
	}
	if win.Requests != 4 || win.Errors != 2 {
		t.Errorf("requests %d errors %d, want 4 and 2 (the 429 and the 404): %q", win.Requests, win.Errors, win.ErrorSamples)
	}
	short, err := h2loadWindow(writeLog(t, lines[:1]), 0, time.Second, from, 1264, h2loadSummary{Done: 4, Bytes: 4 * 1200})
	if err != nil {
		t.Fatal(err)
	}
	if short.Errors != 1 || len(short.ErrorSamples) != 1 || !strings.Contains(short.ErrorSamples[0], "1200.0 bytes on the wire") {
		t.Errorf("answers 64 bytes short: errors %d %q, want the size mismatch", short.Errors, short.ErrorSamples)
	}
}

// A run whose open loop vegeta ran says, as an h2load run does, that a
// request is timed from when it was sent, not from when it was due.
func TestVegetaOpenLoopSaysHowItTimes(t *testing.T) {
	check := func(gen string) {
		t.Helper()
		_, name, notes := chooseOpenLoop(&options{openGenerator: gen, connections: 64}, pinning{}, t.TempDir())
		if !strings.HasPrefix(name, "vegeta") {
			t.Fatalf("-open-generator %s: %s ran the open loop, want vegeta", gen, name)
		}
		if got := strings.Join(notes, " "); !strings.Contains(got, "each request from when a worker sent it") {
			t.Errorf("-open-generator %s: the notes of a vegeta open loop do not say how it times a request: %q", gen, notes)
		}
	}
	check(genVegeta)
	// Also when vegeta stands in for an h2load that is not installed,
	// asked for or not: the runs where that is most often the case.
	t.Setenv("PATH", t.TempDir())
	check(genH2load)
	check(genAuto)
}
