package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLuaString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:              `"plain"`,
		`{"username":"a\b"}`: `"{\"username\":\"a\\b\"}"`,
		"line\nbreak\x7f":    `"line\010break\127"`,
		"Bearer eyJ.a-b_c.d": `"Bearer eyJ.a-b_c.d"`,
		"ünï":                `"\195\188n\195\175"`,
		"":                   `""`,
	} {
		if got := luaString(in); got != want {
			t.Errorf("luaString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWrkScript(t *testing.T) {
	sc := &scenario{Name: "x", Method: http.MethodPost, Body: []byte(`{"username":"johndoe123"}`),
		Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer t.o.k"}}}
	got := wrkScript(sc)
	for _, want := range []string{
		`wrk.method = "POST"`,
		`wrk.body = "{\"username\":\"johndoe123\"}"`,
		`wrk.headers["Authorization"] = "Bearer t.o.k"`,
		`wrk.headers["Content-Type"] = "application/json"`,
		"done = function(summary, latency, requests)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("script lacks %q:\n%s", want, got)
		}
	}
	// Defining request() or response() would slow wrk down to Lua speed.
	for _, never := range []string{"request =", "response ="} {
		if strings.Contains(got, never) {
			t.Errorf("script defines %q:\n%s", never, got)
		}
	}
}

func TestParseWrkOutput(t *testing.T) {
	out := []byte("Running 5s test @ http://127.0.0.1:1/x\n  1 threads and 64 connections\n" +
		`WRK-RESULT {"requests":250000,"bytes":175000000,"duration_us":5000123,"connect":0,"read":1,"write":0,"status":2,"timeout":3,"p50_us":900,"p99_us":2500,"p999_us":4000,"max_us":9000}` + "\n")
	r, err := parseWrkOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 250000 || r.Bytes != 175000000 || r.DurationUS != 5000123 || r.Status != 2 || r.Timeout != 3 || r.Read != 1 || r.P999US != 4000 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseWrkOutput([]byte("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Error("output without a result line accepted")
	}
	if _, err := parseWrkOutput([]byte("WRK-RESULT {\"requests\":\n")); err == nil {
		t.Error("a broken result line accepted")
	}
}

func TestQuantileAndMedian(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 1000; i++ {
		xs = append(xs, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 500, 0.99: 990, 0.999: 999, 1: 1000, 0: 1} {
		if got := quantile(xs, q); got != want {
			t.Errorf("quantile(%v) = %d, want %d", q, got, want)
		}
	}
	for _, tc := range []struct {
		n    int
		q    float64
		want time.Duration
	}{{100, 0.99, 99}, {7, 0.5, 4}, {10, 0.999, 10}, {3000, 0.999, 2997}, {100000, 0.999, 99900}} {
		var s []time.Duration
		for i := 1; i <= tc.n; i++ {
			s = append(s, time.Duration(i))
		}
		if got := quantile(s, tc.q); got != tc.want {
			t.Errorf("quantile(1..%d, %v) = %d, want %d", tc.n, tc.q, got, tc.want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing is not 0")
	}
	if got := quantile([]time.Duration{7}, 0.999); got != 7 {
		t.Errorf("quantile of one = %d", got)
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 3, 2}) != 2.5 || median(nil) != 0 {
		t.Error("median is wrong")
	}
}

// tailSpread finds a stall's tail in one interval, and a tail spread one
// request to an interval in as many as half of it needs.
func TestTailSpread(t *testing.T) {
	// One request a millisecond for a second, each answered in a few
	// hundred µs; a stall delays those that started from 500 to 520 ms.
	starts := make([]time.Duration, 1000)
	lat := make([]time.Duration, 1000)
	for i := range starts {
		starts[i] = time.Duration(i) * time.Millisecond
		lat[i] = time.Duration(100+i%300) * time.Microsecond
		if i >= 500 && i < 520 {
			lat[i] = 10*time.Millisecond + time.Duration(i)*time.Microsecond
		}
	}
	sorted := slices.Sorted(slices.Values(lat))
	p99 := quantile(sorted, 0.99) // the 11th slowest: the stall's, from 509 ms on
	k, of := tailSpread(starts, lat, p99)
	if k != 1 || of != 100 {
		t.Errorf("stall: tail in %d of %d intervals, want 1 of 100 (10 of its 11 in 510-519 ms)", k, of)
	}

	// The slowest 1 % (the 11 from rank 990 on: ten slow answers and the
	// slowest of the rest, at 999 ms) one to an interval: half of them
	// take six.
	for i := range lat {
		lat[i] = 100*time.Microsecond + time.Duration(i)
		if i%100 == 7 {
			lat[i] = time.Duration(2000+i) * time.Microsecond
		}
	}
	sorted = slices.Sorted(slices.Values(lat))
	k, of = tailSpread(starts, lat, quantile(sorted, 0.99))
	if k != 6 || of != 100 {
		t.Errorf("spread: tail in %d of %d intervals, want 6 of 100", k, of)
	}

	if k, of := tailSpread(nil, nil, 0); k != 0 || of != 0 {
		t.Errorf("no requests: %d of %d", k, of)
	}
}

// The fasthttp transport carries method, headers and body out and status,
// headers and body back, and reports a refused connection as an error.
func TestFastTransport(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(r.Method + " " + r.URL.RequestURI() + " " + string(body)))
	}))
	defer srv.Close()
	c := newHTTPClient(4)
	defer c.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/a?b=c", strings.NewReader(`{"x":1}`))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `POST /a?b=c {"x":1}` || resp.Header.Get("X-Echo-Auth") != "Bearer tok" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, err = c.Get(srv.URL + "/fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
	srv.CloseClientConnections()
	before := calls.Load()
	srv.Close()
	if _, err := c.Get(srv.URL + "/gone"); err == nil {
		t.Error("a closed server answered")
	}
	if calls.Load() != before {
		t.Error("the closed server was called")
	}
}

// An open-loop attack at a modest rate: every answer is counted and
// checked, the wrong ones are errors with samples, and cache answers are
// told apart.
func TestAttackChecksEveryAnswer(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case i%10 == 0:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"isSuccess":false,"statusCode":500,"data":null,"errors":["x"],"timestamp":"t"}`))
			return
		case i%10 == 1:
			w.Header().Set("X-Cache", "MISS")
		default:
			w.Header().Set("X-Cache", "HIT")
		}
		_, _ = w.Write([]byte(`{"isSuccess":true,"statusCode":200,"data":{"id":"u"},"errors":[],"timestamp":"2026-01-01T00:00:00.000Z"}`))
	}))
	defer srv.Close()
	sc := &scenario{Name: "t", Method: http.MethodGet, URL: srv.URL + "/me", envelope: true, CacheHit: true, cacheHeader: "X-Cache"}
	client := newHTTPClient(8)
	defer client.CloseIdleConnections()
	// 100/s leaves each of the 8 workers 80ms a request: at 400/s (20ms)
	// a busy machine's slower answers held the rate to 265.
	win := attack(context.Background(), client, sc, 100, 8, time.Second)
	if win.Requests < 75 || win.Requests > 115 {
		t.Fatalf("%d requests in 1 s at 100/s", win.Requests)
	}
	if served := n.Load(); win.Requests != served {
		t.Fatalf("%d requests counted, the server answered %d", win.Requests, served)
	}
	if got, want := win.Errors, n.Load()/10; got < want-1 || got > want+1 {
		t.Errorf("errors = %d, want about %d of %d", got, want, n.Load())
	}
	if len(win.ErrorSamples) == 0 || !strings.Contains(win.ErrorSamples[0], "status 500") {
		t.Errorf("error samples %q", win.ErrorSamples)
	}
	if win.NotFromCache < win.Requests/20 {
		t.Errorf("not from cache = %d of %d", win.NotFromCache, win.Requests)
	}
	if win.P50 <= 0 || win.P99 < win.P50 || win.P999 < win.P99 || win.Max < win.P999 {
		t.Errorf("latencies p50 %s p99 %s p99.9 %s max %s", win.P50, win.P99, win.P999, win.Max)
	}
}

// The real wrk: answers with a status outside 2xx and 3xx are errors of
// the window (wrk reads no bodies, so this and the size on the wire are
// all it can tell).
func TestWrkCountsWrongStatuses(t *testing.T) {
	path, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed (Debian: apt-get install -y wrk)")
	}
	var n, failed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			failed.Add(1)
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	w := &wrkRunner{dir: t.TempDir(), path: path, threads: 1}
	win, err := w.run(context.Background(), &scenario{Name: "t", Method: http.MethodGet, URL: srv.URL + "/"}, time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	// wrk stops at its deadline with answers in flight, which the server
	// counted and wrk did not: at most one per connection.
	if win.Requests == 0 || win.Errors < failed.Load()-2 || win.Errors > failed.Load() {
		t.Errorf("%d requests, %d errors; the server answered %d with 429", win.Requests, win.Errors, failed.Load())
	}
}
