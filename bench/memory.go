package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The memory target: 100,000 cached profiles and 100,000 cached tokens in
// under 200 MB of resident memory. A fresh cache-on gateway (the same
// configuration, one change: the /me TTL is 30 minutes so that every
// profile is still fresh when memory is read) gets one /me request from
// each of N distinct users, each with its own token, as fast as it
// answers; then its VmRSS and VmHWM are read, the ops listener says how
// many entries the read cache holds, and a re-read sample proves that the
// profiles and the tokens are still cached.

type memoryResult struct {
	Users  int    `json:"users"`
	Broken string `json:"broken,omitempty"`
	// Method says how it was measured.
	Method       string   `json:"method"`
	MintSeconds  float64  `json:"mintSeconds"`
	FillSeconds  float64  `json:"fillSeconds"`
	Errors       int64    `json:"errors"`
	ErrorSamples []string `json:"errorSamples,omitempty"`
	IdleRSSKiB   int64    `json:"idleRSSKiB"`
	// LiveHeapBytes is the heap in use right after a forced collection
	// (pprof's heap profile with gc=1, then go_memstats_heap_alloc_bytes):
	// what the cached data itself takes, whatever GOGC and GOMEMLIMIT
	// let the heap grow to between collections.
	LiveHeapBytes   int64 `json:"liveHeapBytes"`
	RSSKiB          int64 `json:"rssKiB"`
	HWMKiB          int64 `json:"hwmKiB"`
	CacheEntries    int   `json:"cacheEntries"`
	CacheBytes      int64 `json:"cacheBytes"`
	TokenMisses     int64 `json:"tokenCacheMisses"`
	TokenHits       int64 `json:"tokenCacheHits"`
	SampleSize      int   `json:"sampleSize"`
	SampleCacheHits int   `json:"sampleCacheHits"`
	SampleTokenHits int   `json:"sampleTokenHits"`
}

const memorySample = 1000

// memoryUserID is the i-th user of the memory phase: distinct from the
// other scenarios' users; about half of them stream (see staticstore).
func memoryUserID(i int) string { return fmt.Sprintf("3e3e0000-0000-4000-8000-%012d", i) }

func (st *stack) memoryPhase(ctx context.Context) *memoryResult {
	n := st.opts.memoryUsers
	res := &memoryResult{Users: n, SampleSize: min(memorySample, n), Method: fmt.Sprintf(
		"A fresh cache-on gateway (config.yaml + the benchmark overrides + GATEWAY_CACHE__ROUTES__ME__TTL=30m), pinned like the others, "+
			"gets GET /api/v1/users/me once from each of %d users with %d distinct ES256 tokens (vegeta, %d connections, as fast as it answers). "+
			"VmRSS and VmHWM are read 2 s after the fill; a random sample of %d users then asks again and must be answered from the read cache "+
			"(X-Cache) with a token-cache hit (gateway_token_cache_lookups_total). Last, a forced collection (pprof's heap profile, gc=1) "+
			"shows the live heap: what the cached data takes whatever the GC settings.", n, n, st.opts.connections, min(memorySample, n))}
	if st.opts.appHeaders {
		// One device for every user: the rate limiter holds at most
		// policies.DefaultMaxKeys (100,000) buckets, which the users' own
		// buckets fill already, so a device each would not add to them.
		res.Method += " Every request carries the app headers (-app-headers), the one device id for all users."
	}
	if err := st.fillMemory(ctx, res); err != nil {
		res.Broken = err.Error()
	}
	return res
}

func (st *stack) fillMemory(ctx context.Context, res *memoryResult) error {
	st.log.say("memory: starting a fresh gateway")
	g, err := st.startGateway(ctx, "gateway-memory", st.staticURL, map[string]string{"GATEWAY_CACHE__ROUTES__ME__TTL": "30m",
		"GATEWAY_OPS__PPROF": "true"}) // on the loopback ops listener, for the live heap at the end
	if err != nil {
		return err
	}
	defer g.stop()
	sleep(ctx, time.Second)
	idle, err := memoryOf(g.pid())
	if err != nil {
		return err
	}
	res.IdleRSSKiB = idle.RSSKiB

	st.log.say("memory: minting %d ES256 tokens", res.Users)
	started := time.Now()
	tokens := make([]string, res.Users)
	now := time.Now()
	for i := range tokens {
		if tokens[i], err = st.idp.Mint(devidp.MintClaims{Subject: memoryUserID(i), Roles: []string{"user"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
			devidp.WithAlgorithm(devidp.ES256)); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	res.MintSeconds = time.Since(started).Seconds()

	before, err := tokenLookups(ctx, g.opsURL)
	if err != nil {
		return err
	}
	st.log.say("memory: filling the gateway with %d profiles", res.Users)
	fill := st.fill(ctx, g.url, tokens, res)
	res.FillSeconds = fill.Seconds()
	sleep(ctx, 2*time.Second)
	m, err := memoryOf(g.pid())
	if err != nil {
		return err
	}
	res.RSSKiB, res.HWMKiB = m.RSSKiB, m.HWMKiB
	after, err := tokenLookups(ctx, g.opsURL)
	if err != nil {
		return err
	}
	res.TokenHits, res.TokenMisses = after.hit-before.hit, after.miss-before.miss
	if res.CacheEntries, res.CacheBytes, err = cacheStats(ctx, g.opsURL); err != nil {
		return err
	}

	// The sample: the same users again.
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	rng := rand.New(rand.NewPCG(8, 8))
	for j := 0; j < res.SampleSize; j++ {
		i := rng.IntN(res.Users)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/api/v1/users/me", nil)
		req.Header = st.opts.requestHeader(http.Header{"Authorization": {"Bearer " + tokens[i]}})
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("re-read sample: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Cache") == "HIT" {
			res.SampleCacheHits++
		}
	}
	final, err := tokenLookups(ctx, g.opsURL)
	if err != nil {
		return err
	}
	res.SampleTokenHits = int(final.hit - after.hit)
	if res.LiveHeapBytes, err = liveHeap(ctx, g.opsURL); err != nil {
		return err
	}
	st.log.say("memory: VmRSS %.1f MiB, VmHWM %.1f MiB, live heap %.1f MiB, %d cache entries, sample %d/%d cache hits, %d/%d token hits",
		mib(res.RSSKiB), mib(res.HWMKiB), float64(res.LiveHeapBytes)/(1<<20), res.CacheEntries, res.SampleCacheHits, res.SampleSize, res.SampleTokenHits, res.SampleSize)
	return nil
}

// liveHeap forces a collection (the heap profile with gc=1) and reads the
// heap in use after it.
func liveHeap(ctx context.Context, opsURL string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, opsURL+"/debug/pprof/heap?gc=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("heap profile: status %d", resp.StatusCode)
	}
	v, err := scrape(ctx, opsURL, "go_memstats_heap_alloc_bytes")
	return int64(v["go_memstats_heap_alloc_bytes"]), err
}

// fill sends one /me per token, as fast as the gateway answers.
func (st *stack) fill(ctx context.Context, url string, tokens []string, res *memoryResult) time.Duration {
	var next atomic.Int64
	targeter := func(t *vegeta.Target) error {
		i := next.Add(1) - 1
		if i >= int64(len(tokens)) {
			return vegeta.ErrNoTargets
		}
		t.Method = http.MethodGet
		t.URL = url + "/api/v1/users/me"
		t.Header = st.opts.requestHeader(http.Header{"Authorization": {"Bearer " + tokens[i]}})
		return nil
	}
	client := newHTTPClient(st.opts.connections)
	defer client.CloseIdleConnections()
	workers := uint64(st.opts.connections)
	atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(workers), vegeta.MaxWorkers(workers))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	sc := &scenario{envelope: true}
	started := time.Now()
	for r := range atk.Attack(targeter, vegeta.Rate{}, 0, "") {
		if r.Error == vegeta.ErrNoTargets.Error() {
			continue
		}
		if _, err := sc.check(int(r.Code), r.Headers, r.Body, r.Error); err != nil {
			res.Errors++
			if len(res.ErrorSamples) < 5 {
				res.ErrorSamples = append(res.ErrorSamples, err.Error())
			}
		}
	}
	return time.Since(started)
}

type lookups struct{ hit, miss int64 }

// tokenLookups reads the token cache's counters from /metrics.
func tokenLookups(ctx context.Context, opsURL string) (lookups, error) {
	const hit, miss = `gateway_token_cache_lookups_total{result="hit"}`, `gateway_token_cache_lookups_total{result="miss"}`
	v, err := scrape(ctx, opsURL, hit, miss)
	return lookups{hit: int64(v[hit]), miss: int64(v[miss])}, err
}

// scrape reads the given series (name and labels as exposed) from the
// ops listener's /metrics; every one must be there.
func scrape(ctx context.Context, opsURL string, series ...string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, opsURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := make(map[string]float64, len(series))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range series {
			if rest, ok := strings.CutPrefix(line, name+" "); ok {
				v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				if err != nil {
					return nil, fmt.Errorf("metrics: %q: %v", line, err)
				}
				out[name] = v
			}
		}
	}
	for _, name := range series {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("metrics: %s not found", name)
		}
	}
	return out, sc.Err()
}

// cacheStats reads the read cache's size from the ops listener.
func cacheStats(ctx context.Context, opsURL string) (int, int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, opsURL+"/ops/v1/cache", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Entries int   `json:"entries"`
			Bytes   int64 `json:"bytes"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("ops cache stats: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, 0, fmt.Errorf("ops cache stats: %w", err)
	}
	return out.Data.Entries, out.Data.Bytes, nil
}
