package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/valyala/fasthttp"
)

// The load generators. The closed loop (the maximum rate) uses wrk when it
// is installed: one C thread with an event loop costs far less per request
// than any Go client, so on one core it can drive a one-core server to
// saturation. Otherwise vegeta runs in this process on the load cores. The
// open loop (fixed rate) is h2load's when it is installed, else vegeta's
// (h2load.go).

// window is what one measured window produced, before CPU accounting.
type window struct {
	Requests int64
	Elapsed  time.Duration
	// Errors are answers that were not a correct 2xx (status, socket
	// error, timeout, or — where the generator sees bodies — a body that is
	// not the expected envelope).
	Errors       int64
	ErrorSamples []string
	// NotFromCache counts correct answers of a cache-hit scenario that
	// were not served from the cache (X-Cache other than HIT or STALE);
	// only the open loop sees headers.
	NotFromCache int64
	// Bytes is the total read (wrk); BytesPerResponse = Bytes / Requests.
	Bytes int64
	// Latencies of the open loop, sorted; closed-loop quantiles from wrk.
	P50, P99, P999, Max time.Duration
	// GeneratorCPU is the CPU the generator used in the window (in an
	// open-loop window, between its CPU marks).
	GeneratorCPU time.Duration
	// Served, when not 0, is how many requests started between the
	// window's CPU marks, where these are not the window's own ends
	// (h2load's: its tail after the window, and, when the first mark came
	// late, not the window's start); CPU per request divides by it.
	Served int64
	// TailIntervals of the window's Intervals (10 ms each, by request
	// start) hold half of its requests at or above its p99 (tailSpread).
	TailIntervals, Intervals int
}

// ---------------------------------------------------------------------------
// wrk

// wrkDone is wrk's done() hook: it prints the exact counts as one JSON line
// (wrk's own summary rounds them for humans). Only done() and the static
// request fields are defined, so wrk builds the request once and parses no
// response into Lua: it stays at full speed.
const wrkDone = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK-RESULT {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

// wrkScript sets the scenario's method, headers and body.
func wrkScript(sc *scenario) string {
	var b strings.Builder
	fmt.Fprintf(&b, "wrk.method = %s\n", luaString(sc.Method))
	if len(sc.Body) > 0 {
		fmt.Fprintf(&b, "wrk.body = %s\n", luaString(string(sc.Body)))
	}
	for _, k := range slices.Sorted(maps.Keys(sc.Header)) {
		fmt.Fprintf(&b, "wrk.headers[%s] = %s\n", luaString(k), luaString(sc.Header.Get(k)))
	}
	b.WriteString(wrkDone)
	return b.String()
}

// luaString quotes s as a Lua string literal.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// wrkResult is the done() line.
type wrkResult struct {
	Requests   int64 `json:"requests"`
	Bytes      int64 `json:"bytes"`
	DurationUS int64 `json:"duration_us"`
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Status     int64 `json:"status"`
	Timeout    int64 `json:"timeout"`
	P50US      int64 `json:"p50_us"`
	P99US      int64 `json:"p99_us"`
	P999US     int64 `json:"p999_us"`
	MaxUS      int64 `json:"max_us"`
}

func parseWrkOutput(out []byte) (wrkResult, error) {
	var r wrkResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "WRK-RESULT "); ok {
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return r, fmt.Errorf("wrk result line: %v", err)
			}
			return r, nil
		}
	}
	return r, fmt.Errorf("wrk printed no result line; it said:\n%s", out)
}

// wrkRunner runs wrk on the load cores, one thread per load core.
type wrkRunner struct {
	pin     pinning
	dir     string // scripts
	path    string // the wrk binary
	threads int
}

func (w *wrkRunner) run(ctx context.Context, sc *scenario, d time.Duration, connections int) (window, error) {
	script := filepath.Join(w.dir, "wrk-"+sc.Name+".lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, []byte(wrkScript(sc)), 0o600); err != nil {
			return window{}, err
		}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	threads := min(max(w.threads, 1), connections)
	cmd := w.pin.loadCommand(w.path, "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(connections), "-d"+strconv.Itoa(secs)+"s",
		"--timeout", "5s", "-s", script, sc.URL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := runContext(ctx, cmd); err != nil {
		return window{}, fmt.Errorf("wrk: %v: %s%s", err, stdout.Bytes(), stderr.Bytes())
	}
	r, err := parseWrkOutput(stdout.Bytes())
	if err != nil {
		return window{}, err
	}
	win := window{
		Requests: r.Requests,
		Elapsed:  time.Duration(r.DurationUS) * time.Microsecond,
		Errors:   r.Connect + r.Read + r.Write + r.Status + r.Timeout,
		Bytes:    r.Bytes,
		P50:      time.Duration(r.P50US) * time.Microsecond,
		P99:      time.Duration(r.P99US) * time.Microsecond,
		P999:     time.Duration(r.P999US) * time.Microsecond,
		Max:      time.Duration(r.MaxUS) * time.Microsecond,
	}
	if win.Errors > 0 {
		win.ErrorSamples = append(win.ErrorSamples, fmt.Sprintf("wrk: %d non-2xx/3xx, %d connect, %d read, %d write, %d timeout",
			r.Status, r.Connect, r.Read, r.Write, r.Timeout))
	}
	if st := cmd.ProcessState; st != nil {
		win.GeneratorCPU = st.UserTime() + st.SystemTime()
	}
	return win, nil
}

// runContext runs cmd, killing it when ctx ends.
func runContext(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}

// ---------------------------------------------------------------------------
// vegeta

// newHTTPClient is the client of one scenario's vegeta attacks, kept
// across windows so that connections stay open between them. Its transport
// is fasthttp's client rather than net/http's: vegeta paces, runs the
// workers and collects the results, but net/http's transport (two
// goroutines and several channel hand-offs per exchange) cost about 40 µs
// of the load core per request here, which capped the open loop near 20k
// req/s; fasthttp halves that. Requests are never retried, so that every
// failure is seen.
func newHTTPClient(connections int) *http.Client {
	// No http.Client.Timeout: it costs a timer and a context per request;
	// the transport puts a 5 s deadline on every exchange itself.
	return &http.Client{
		Transport: &fastTransport{client: &fasthttp.Client{
			MaxConnsPerHost:           connections,
			MaxIdemponentCallAttempts: 1,
			ReadTimeout:               5 * time.Second,
			WriteTimeout:              5 * time.Second,
			MaxConnWaitTimeout:        5 * time.Second,
			NoDefaultUserAgentHeader:  true,
			Dial:                      func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) },
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fastTransport is an http.RoundTripper over a fasthttp.Client.
type fastTransport struct {
	client *fasthttp.Client
}

func (t *fastTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(r.URL.String())
	req.Header.SetMethod(r.Method)
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.Body != nil {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		req.SetBodyRaw(body)
	}
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := r.Context().Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := t.client.DoDeadline(req, resp, deadline); err != nil {
		return nil, err
	}
	h := make(http.Header, 8)
	resp.Header.VisitAll(func(k, v []byte) { h.Add(string(k), string(v)) })
	body := bytes.Clone(resp.Body())
	status := resp.StatusCode()
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// pool.
func (t *fastTransport) CloseIdleConnections() { t.client.CloseIdleConnections() }

// attack runs vegeta against sc: at a constant rate (open loop), or with
// rate 0 as fast as `workers` connections go (closed loop). Every answer's
// status, headers and body are checked.
func attack(ctx context.Context, client *http.Client, sc *scenario, rate int, workers int, d time.Duration) window {
	// A bounded pool of workers (and so of connections): vegeta's default
	// adds a worker, and a connection, whenever all are busy, which on a
	// saturated core snowballs into thousands of goroutines and turns a
	// latency measurement into one of the generator.
	pacer := vegeta.Rate{Freq: rate, Per: time.Second}
	opts := []func(*vegeta.Attacker){vegeta.Client(client),
		vegeta.Workers(uint64(workers)), vegeta.MaxWorkers(uint64(workers))}
	atk := vegeta.NewAttacker(opts...)
	target := vegeta.Target{Method: sc.Method, URL: sc.URL, Body: sc.Body, Header: sc.Header}
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	var (
		win       window
		latencies = make([]time.Duration, 0, max(rate, 1000)*int(d/time.Second+1))
		starts    = make([]time.Time, 0, cap(latencies))
		samples   = map[string]bool{}
		first     time.Time
		last      time.Time
	)
	cpuBefore, _ := cpuTime(os.Getpid())
	for res := range atk.Attack(vegeta.NewStaticTargeter(target), pacer, d, "") {
		if first.IsZero() || res.Timestamp.Before(first) {
			first = res.Timestamp
		}
		if end := res.End(); end.After(last) {
			last = end
		}
		win.Requests++
		latencies = append(latencies, res.Latency)
		starts = append(starts, res.Timestamp)
		fromCache, err := sc.check(int(res.Code), res.Headers, res.Body, res.Error)
		if err != nil {
			win.Errors++
			if len(samples) < 5 && !samples[err.Error()] {
				samples[err.Error()] = true
				win.ErrorSamples = append(win.ErrorSamples, err.Error())
			}
		} else if sc.CacheHit && !fromCache {
			win.NotFromCache++
		}
	}
	cpuAfter, _ := cpuTime(os.Getpid())
	win.GeneratorCPU = cpuAfter - cpuBefore
	win.Elapsed = last.Sub(first)
	since := make([]time.Duration, len(starts))
	for i, t := range starts {
		since[i] = t.Sub(first)
	}
	win.setLatencies(since, latencies)
	return win
}

// setLatencies sets the window's quantiles and tail spread from its
// requests' starts (since the window's start) and latencies, in the same
// order.
func (win *window) setLatencies(starts, latencies []time.Duration) {
	sorted := slices.Sorted(slices.Values(latencies))
	win.P50, win.P99, win.P999 = quantile(sorted, 0.50), quantile(sorted, 0.99), quantile(sorted, 0.999)
	if n := len(sorted); n > 0 {
		win.Max = sorted[n-1]
	}
	win.TailIntervals, win.Intervals = tailSpread(starts, latencies, win.P99)
}

// tailInterval is the span of tailSpread's intervals.
const tailInterval = 10 * time.Millisecond

// tailSpread says how a window's slowest requests are spread over its
// time: the fewest 10-ms intervals (by when the request started) that
// hold half of the requests with a latency at or above p99, and how many
// intervals the window spans. starts are since the window's start, in the
// order of latencies. A handful of intervals out of hundreds says the p99
// was set by a few stalls, each delaying many requests at once (the host
// taking the core away, a pause of the contender), not by how single
// requests fare.
func tailSpread(starts, latencies []time.Duration, p99 time.Duration) (k, of int) {
	if len(latencies) == 0 {
		return 0, 0
	}
	counts := map[int64]int{}
	tail := 0
	for i, l := range latencies {
		iv := int64(starts[i] / tailInterval)
		of = max(of, int(iv)+1)
		if l >= p99 {
			counts[iv]++
			tail++
		}
	}
	byCount := slices.Sorted(maps.Values(counts))
	slices.Reverse(byCount)
	held := 0
	for _, c := range byCount {
		k++
		held += c
		if 2*held >= tail {
			break
		}
	}
	return k, of
}

// quantile is the nearest-rank quantile of sorted values: the smallest
// value with at least q of all values at or below it.
func quantile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps 0.99 × 1000 (989.9999… in floating point) at
	// rank 990.
	rank := int(math.Ceil(q*float64(n) - 1e-9))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// vegetaRunner is the closed loop without wrk: vegeta with a fixed pool of
// workers, each sending its next request as soon as the last one returns.
type vegetaRunner struct {
	mu      sync.Mutex
	clients map[string]*http.Client
}

func (v *vegetaRunner) client(name string, connections int) *http.Client {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.clients == nil {
		v.clients = map[string]*http.Client{}
	}
	c, ok := v.clients[name]
	if !ok {
		c = newHTTPClient(connections)
		v.clients[name] = c
	}
	return c
}

// close closes the idle connections of every client.
func (v *vegetaRunner) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range v.clients {
		c.CloseIdleConnections()
	}
}

func (v *vegetaRunner) run(ctx context.Context, sc *scenario, d time.Duration, connections int) (window, error) {
	return attack(ctx, v.client(sc.Name, connections), sc, 0, connections, d), nil
}
