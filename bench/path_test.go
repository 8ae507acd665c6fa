package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingGateway serves /metrics as a gateway's ops listener does, its
// counters moved on by every window the closed loop runs.
type countingGateway struct {
	meHits, meMisses, meStale, tokenHits, tokenMisses, usernameOK, usernameErr atomic.Int64
}

func (g *countingGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	fmt.Fprintf(w, "# HELP gateway_cache_lookups_total Read-cache answers served.\n# TYPE gateway_cache_lookups_total counter\n")
	fmt.Fprintf(w, "gateway_cache_lookups_total{route=\"users.me\",status=\"hit\"} %d\n", g.meHits.Load())
	fmt.Fprintf(w, "gateway_cache_lookups_total{route=\"users.me\",status=\"miss\"} %d\n", g.meMisses.Load())
	fmt.Fprintf(w, "gateway_cache_lookups_total{route=\"users.me\",status=\"stale\"} %d\n", g.meStale.Load())
	fmt.Fprintf(w, "gateway_cache_lookups_total{route=\"users.search\",status=\"miss\"} 7\n")
	fmt.Fprintf(w, "gateway_token_cache_lookups_total{result=\"hit\"} %d\n", g.tokenHits.Load())
	fmt.Fprintf(w, "gateway_token_cache_lookups_total{result=\"miss\"} %d\n", g.tokenMisses.Load())
	fmt.Fprintf(w, "gateway_upstream_calls_total{op=\"usernameCheck\",outcome=\"ok\"} %d\n", g.usernameOK.Load())
	fmt.Fprintf(w, "gateway_upstream_calls_total{op=\"usernameCheck\",outcome=\"error\"} %d\n", g.usernameErr.Load())
	fmt.Fprintf(w, "gateway_upstream_calls_total{op=\"userById\",outcome=\"ok\"} 99\n")
}

// pathClosed answers 1,000 requests per window and moves the gateway's
// counters as the window's answers would.
type pathClosed struct {
	g    *countingGateway
	move func(g *countingGateway)
}

func (f pathClosed) run(context.Context, *scenario, time.Duration, int) (window, error) {
	f.move(f.g)
	return window{Requests: 1000, Elapsed: time.Second}, nil
}

// Around every closed-loop window of a gateway scenario the harness reads
// the gateway's counters and counts the answers that took another path
// than the scenario's name says: no read-cache hit of its route, no
// token-cache hit, no upstream call. Hits are counted, so a cache that is
// off (and counts no misses either) shows; other routes and operations do
// not count.
func TestClosedWindowCountsAnswersOffThePath(t *testing.T) {
	g := &countingGateway{}
	srv := httptest.NewServer(g)
	defer srv.Close()
	for _, tc := range []struct {
		name string
		path gatewayPath
		move func(g *countingGateway)
		want int64
	}{
		{"every /me a hit or stale", pathMeHit, func(g *countingGateway) { g.meHits.Add(990); g.meStale.Add(10); g.tokenHits.Add(1000) }, 0},
		{"/me misses", pathMeHit, func(g *countingGateway) { g.meHits.Add(950); g.meMisses.Add(50); g.tokenHits.Add(1000) }, 50},
		{"/me token misses", pathMeHit, func(g *countingGateway) { g.meHits.Add(1000); g.tokenHits.Add(997); g.tokenMisses.Add(3) }, 3},
		{"the token cache off", pathMeHit, func(g *countingGateway) { g.meHits.Add(1000) }, 1000},
		// Calls of any outcome count; 1,010 calls for the 1,000 answers
		// counted (ten in flight when the generator stopped) hide nothing.
		{"a call per answer", pathUsername, func(g *countingGateway) { g.usernameOK.Add(1000); g.usernameErr.Add(10); g.tokenHits.Add(1010) }, 0},
		{"answers without a call", pathUsername, func(g *countingGateway) { g.usernameOK.Add(600); g.tokenHits.Add(1000) }, 400},
	} {
		p := tc.path
		p.opsURL = srv.URL
		r := &runner{opts: &options{duration: time.Second}, log: &progress{w: io.Discard, start: time.Now()},
			closed: pathClosed{g: g, move: tc.move}}
		rd, err := r.closedWindow(context.Background(), &scenario{Name: "gw", path: &p}, 1)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if rd.OffPath != tc.want {
			t.Errorf("%s: %d answers off the path, want %d", tc.name, rd.OffPath, tc.want)
		}
	}
}

// The targets on a scenario whose answers took another path than its name
// says in more than 1 % of them are INVALID: the numbers measure some other
// path.
func TestJudgeOffPath(t *testing.T) {
	results := map[string]*scenarioResult{
		"gw-me-hit":            result("gw-me-hit", 45000, 900, 22500),
		"bare-fiber":           result("bare-fiber", 50000, 500, 22500),
		"nginx-cache-hit":      result("nginx-cache-hit", 40000, 0, 0),
		"gw-username":          result("gw-username", 30000, 0, 0),
		"nginx-proxy-username": result("nginx-proxy-username", 35000, 0, 0),
	}
	for _, r := range results {
		r.Closed.Rounds[0].Requests = 10000
	}
	results["gw-me-hit"].Closed.OffPath = 101
	results["gw-username"].Closed.OffPath = 100 // 1 %: not more
	targets, _ := judge(results, nil, nil)
	for _, name := range []string{"/me cache hit vs bare Fiber", "/me cache hit vs nginx proxy_cache", "p99 at half the gateway's maximum"} {
		if tr := statusOf(t, targets, name); tr.Status != statusInvalid || !strings.Contains(tr.Detail, "101 of its 10000 closed-loop answers took another path") {
			t.Errorf("%s: %s: %s", name, tr.Status, tr.Detail)
		}
	}
	if tr := statusOf(t, targets, "username check vs nginx plain proxy"); tr.Status == statusInvalid {
		t.Errorf("username: %s: %s", tr.Status, tr.Detail)
	}
}

// With the cache off, /me calls the store twice, the user and the live
// streams: only the user calls count for gw-me-nocache's path, so that a
// window whose user calls failed to happen cannot hide behind its
// live-stream calls.
func TestOffPathCountsOnlyTheScenariosOperation(t *testing.T) {
	var userCalls, streamCalls, tokenHits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gateway_token_cache_lookups_total{result=\"hit\"} %d\n", tokenHits.Load())
		fmt.Fprintf(w, "gateway_upstream_calls_total{op=\"userById\",outcome=\"ok\"} %d\n", userCalls.Load())
		fmt.Fprintf(w, "gateway_upstream_calls_total{op=\"liveStreams\",outcome=\"ok\"} %d\n", streamCalls.Load())
	}))
	defer srv.Close()
	p := pathMeCall
	p.opsURL = srv.URL
	move := func(*countingGateway) { userCalls.Add(600); streamCalls.Add(1000); tokenHits.Add(1000) }
	r := &runner{opts: &options{duration: time.Second}, log: &progress{w: io.Discard, start: time.Now()},
		closed: pathClosed{g: &countingGateway{}, move: move}}
	rd, err := r.closedWindow(context.Background(), &scenario{Name: "gw-me-nocache", path: &p}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rd.OffPath != 400 {
		t.Errorf("%d answers off the path, want 400 (1,000 answers, 600 user calls)", rd.OffPath)
	}
}
