package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream"
)

// A gateway scenario's name says which path its answers take: a read-cache
// hit, a token-cache hit, one upstream call. wrk and h2load read no
// headers, so around every closed-loop window the harness asks the
// gateway's own counters (/metrics on its ops listener, outside the CPU
// marks) and counts the answers that took another path: the answers beyond
// the read-cache hits of the scenario's route, beyond the token-cache hits,
// beyond the upstream calls. Hits are counted rather than misses: a cache
// that is off counts no misses either.

// gatewayPath is what a gateway scenario's answers must do.
type gatewayPath struct {
	opsURL string
	// cacheRoute is the route whose read-cache look-ups must be hits (or
	// stale answers, served from the cache while it revalidates); "" for
	// none.
	cacheRoute string
	// upstreamOp is the upstream call every answer makes; "" for none.
	upstreamOp string
}

// Paths of the gateway scenarios. Every one authenticates with a token
// the token cache holds.
var (
	pathMeHit     = gatewayPath{cacheRoute: config.RouteMe}
	pathSearchHit = gatewayPath{cacheRoute: config.RouteSearch}
	pathUsername  = gatewayPath{upstreamOp: string(upstream.OpUsernameCheck)}
	// With the cache off, /me and search call the store every time.
	pathMeCall     = gatewayPath{upstreamOp: string(upstream.OpUserByID)}
	pathSearchCall = gatewayPath{upstreamOp: string(upstream.OpSearch)}
)

// pathCounters are a gateway's counters of one path at one moment.
type pathCounters struct {
	cacheHits, tokenHits, upstreamCalls int64
}

// readPath reads p's counters from the gateway's /metrics; a series not
// exposed yet counts 0.
func readPath(ctx context.Context, p gatewayPath) (pathCounters, error) {
	var c pathCounters
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.opsURL+"/metrics", nil)
	if err != nil {
		return c, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	cache := `gateway_cache_lookups_total{route="` + p.cacheRoute + `",status="`
	calls := `gateway_upstream_calls_total{op="` + p.upstreamOp + `",`
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		series, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(series, "#") {
			continue
		}
		var add *int64
		switch {
		case p.cacheRoute != "" && (series == cache+`hit"}` || series == cache+`stale"}`):
			add = &c.cacheHits
		case series == `gateway_token_cache_lookups_total{result="hit"}`:
			add = &c.tokenHits
		case p.upstreamOp != "" && strings.HasPrefix(series, calls):
			add = &c.upstreamCalls
		default:
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return c, fmt.Errorf("metrics: %q: %v", sc.Text(), err)
		}
		*add += int64(n)
	}
	return c, sc.Err()
}

// offPath is how many of a window's answers at least took another path
// than p's, from the counters before and after it: the most answers beyond
// the token-cache hits, the read-cache hits of the route (a stale answer,
// served from the cache while it revalidates, counts as one) or the
// upstream calls made. (The gateway may answer a few requests more than the
// generator counts, those in flight when it stopped: they can hide that
// many answers off the path, never add any.)
func offPath(p gatewayPath, before, after pathCounters, answers int64) int64 {
	short := func(counted int64) int64 { return max(0, answers-counted) }
	n := short(after.tokenHits - before.tokenHits)
	if p.cacheRoute != "" {
		n = max(n, short(after.cacheHits-before.cacheHits))
	}
	if p.upstreamOp != "" {
		n = max(n, short(after.upstreamCalls-before.upstreamCalls))
	}
	return n
}

// offPathLimit is the share of a scenario's answers that may take another
// path before its numbers stop measuring the path its name says: a read
// cache entry expires now and then (the production TTLs stay in force),
// and a token-cache entry lives at most tokenCache.maxTTL.
const offPathLimit = 0.01

// offPathOf names the scenarios whose closed-loop answers took another
// path than their name says more than offPathLimit of the time.
func offPathOf(rs ...*scenarioResult) string {
	var out []string
	for _, r := range rs {
		var answers int64
		for _, rd := range r.Closed.Rounds {
			answers += rd.Requests
		}
		if r.Closed.OffPath > 0 && float64(r.Closed.OffPath) > offPathLimit*float64(answers) {
			out = append(out, fmt.Sprintf("%s: %d of its %d closed-loop answers took another path (by the gateway's counters: no read- or token-cache hit, or no upstream call)",
				r.Name, r.Closed.OffPath, answers))
		}
	}
	return strings.Join(out, ", ")
}
