package main

import (
	"fmt"
	"strings"
)

// The targets of issue 8, judged from one run. A target whose scenarios
// did not run is NOT MEASURED; one whose scenarios gave any incorrect
// answer is INVALID, whatever the numbers: a fast wrong answer proves
// nothing.

// memoryLimitMB and memoryTargetUsers are the memory target: 100,000
// profiles and 100,000 tokens in under 200 MB (10^6 bytes) of resident
// memory.
const (
	memoryLimitMB     = 200
	memoryTargetUsers = 100000
)

func judge(results map[string]*scenarioResult, mem *memoryResult, pairs []*pairedResult) ([]targetResult, []ratioResult) {
	get := func(name string) *scenarioResult {
		r, ok := results[name]
		if !ok || r.Broken != "" || r.Closed.MedianRPS == 0 {
			return nil
		}
		return r
	}
	var targets []targetResult
	// floor, when not empty, is the floor contender standing for a: its
	// ratio to b is the best any gateway of ours could reach in this run.
	throughput := func(name, a, b, floor string, limit float64) {
		rule := fmt.Sprintf("%s max req/s ≥ %.1f × %s", a, limit, b)
		ra, rb := get(a), get(b)
		t := targetResult{Name: name, Rule: rule, Limit: limit}
		switch {
		case ra == nil || rb == nil:
			t.Status, t.Detail = statusNotMeasured, missing(a, ra, b, rb)
		default:
			t.Value = ra.Closed.MedianRPS / rb.Closed.MedianRPS
			t.Detail = fmt.Sprintf("%.0f vs %.0f req/s", ra.Closed.MedianRPS, rb.Closed.MedianRPS)
			t.Status = passIf(t.Value >= limit)
			t.invalidIf(invalid(ra, rb), generatorBound(ra, rb), sharedCore(ra, rb), offPathOf(ra, rb))
			if rf := get(floor); rf != nil && invalid(rf) == "" {
				t.Detail += fmt.Sprintf("; the floor contender %s reached %.3f", floor, rf.Closed.MedianRPS/rb.Closed.MedianRPS)
			}
			t.Detail += pairedNote(pairs, a, b, floor)
		}
		targets = append(targets, t)
	}
	throughput("/me cache hit vs bare Fiber", "gw-me-hit", "bare-fiber", "bare-fiber-floor", 0.9)
	throughput("/me cache hit vs nginx proxy_cache", "gw-me-hit", "nginx-cache-hit", "", 0.8)
	throughput("username check vs nginx plain proxy", "gw-username", "nginx-proxy-username", "fiber-proxy-floor-username", 0.8)

	// p99 at half the gateway's maximum.
	t := targetResult{Name: "p99 at half the gateway's maximum", Rule: "gw-me-hit p99 ≤ 2 × bare-fiber p99 at the same rate", Limit: 2}
	ra, rb := get("gw-me-hit"), get("bare-fiber")
	switch {
	case ra == nil || rb == nil || ra.Open == nil || rb.Open == nil || rb.Open.P99Micros == 0:
		t.Status, t.Detail = statusNotMeasured, missing("gw-me-hit", ra, "bare-fiber", rb)
	default:
		t.Value = ra.Open.P99Micros / rb.Open.P99Micros
		t.Detail = fmt.Sprintf("%.0f µs vs %.0f µs at %d req/s", ra.Open.P99Micros, rb.Open.P99Micros, ra.Open.Rate)
		// Round i of each ran in the same round of the rotation (5 to 10
		// windows apart in the rounds of every scenario, one after the
		// other in the pair's extra rounds): their ratios show how much
		// of the median's ratio every round shares.
		if n := min(len(ra.Open.Rounds), len(rb.Open.Rounds)); n > 1 {
			per := make([]string, n)
			for i := range n {
				per[i] = fmt.Sprintf("%.2f", ratio(ra.Open.Rounds[i].P99Micros, rb.Open.Rounds[i].P99Micros))
			}
			t.Detail += "; per round " + strings.Join(per, ", ")
		}
		t.Detail += tailNote(ra, rb)
		t.Status = passIf(t.Value <= 2)
		var rates string
		if ra.Open.Rate != rb.Open.Rate {
			rates = fmt.Sprintf("rates differ (%d vs %d)", ra.Open.Rate, rb.Open.Rate)
		}
		// The rate is half of gw-me-hit's measured maximum: when that
		// maximum was the load generator's (the /me targets are INVALID
		// for it), the rate is not half the gateway's own.
		var halfOf string
		if g := generatorBound(ra); g != "" {
			halfOf = "the rate is half of a maximum the harness does not count as the gateway's: " + g
		}
		t.invalidIf(rates, invalid(ra, rb), rateMissed(ra, rb), openGeneratorBound(ra, rb), sharedCore(ra, rb), offPathOf(ra, rb), halfOf)
	}
	targets = append(targets, t)

	mt := targetResult{Name: "memory", Rule: fmt.Sprintf("RSS with the cache full < %d MB", memoryLimitMB), Limit: memoryLimitMB}
	switch {
	case mem == nil:
		mt.Status, mt.Detail = statusNotMeasured, "memory phase not run (-memory=false)"
	case mem.Broken != "":
		mt.Status, mt.Detail = statusNotMeasured, mem.Broken
	default:
		mt.Value = megabytes(mem.RSSKiB)
		mt.Detail = fmt.Sprintf("%d profiles, %d tokens: VmRSS %.1f MB, peak (VmHWM) %.1f MB, live heap after a forced collection %.1f MB",
			mem.CacheEntries, mem.Users, mt.Value, megabytes(mem.HWMKiB), float64(mem.LiveHeapBytes)/1e6)
		mt.Status = passIf(mt.Value < memoryLimitMB)
		mt.Detail += "; measured under the benchmark's GOMEMLIMIT=" + benchMemLimit + " (GOGC=400 lets the heap grow towards the limit; " +
			"deploy/kubernetes sets 440MiB, under which the RSS of the same cache is larger)"
		// Fewer than all profiles or tokens held is the gateway missing
		// the target, not a measurement problem.
		if mem.CacheEntries < mem.Users {
			mt.Status, mt.Detail = statusFail, mt.Detail+fmt.Sprintf("; the read cache holds only %d profiles", mem.CacheEntries)
		}
		if mem.SampleCacheHits < mem.SampleSize || mem.SampleTokenHits < mem.SampleSize {
			mt.Status, mt.Detail = statusFail, mt.Detail+fmt.Sprintf("; re-read sample: %d/%d from the read cache, %d/%d token-cache hits (not every profile or token stayed cached)",
				mem.SampleCacheHits, mem.SampleSize, mem.SampleTokenHits, mem.SampleSize)
		}
		if mem.Errors > 0 {
			mt.Status, mt.Detail = statusInvalid, mt.Detail+fmt.Sprintf("; %d fill errors", mem.Errors)
		}
		// A smaller fill (-memory-users) says nothing of the target's.
		if mem.Users < memoryTargetUsers {
			mt.Status, mt.Detail = statusInvalid, mt.Detail+fmt.Sprintf("; %d users filled, the target names %d", mem.Users, memoryTargetUsers)
		}
	}
	targets = append(targets, mt)
	targets = append(targets, targetResult{
		Name: "allocations on the cache-hit path", Rule: "a small stated number per request (go test -bench -benchmem in gateway/)",
		Status: statusNotMeasured, Detail: "not this harness's measurement: see docs/performance.md",
	})

	var ratios []ratioResult
	for _, pair := range [][2]string{
		{"gw-me-hit", "bare-fiber"}, {"gw-me-hit", "nginx-cache-hit"}, {"gw-me-hit", "upstream-direct"},
		{"gw-search-hit", "bare-fiber"}, {"gw-username", "nginx-proxy-username"}, {"gw-username", "fiber-proxy-username"},
		{"fiber-proxy-username", "nginx-proxy-username"},
		{"bare-fiber-floor", "bare-fiber"}, {"fiber-proxy-floor-username", "nginx-proxy-username"},
		{"gw-me-hit", "bare-fiber-floor"}, {"gw-username", "fiber-proxy-floor-username"},
		{"gw-me-nocache", "nginx-proxy"},
		{"gw-me-nocache", "gw-me-hit"}, {"gw-search-nocache", "gw-search-hit"}, {"nginx-proxy", "upstream-direct"},
		{"nginx-cache-hit", "bare-fiber"}, {"store-me", "gw-me-nocache"}, {"store-search", "gw-search-nocache"},
	} {
		a, b := get(pair[0]), get(pair[1])
		if a == nil || b == nil {
			continue
		}
		ratios = append(ratios, ratioResult{Name: pair[0] + " / " + pair[1], Value: a.Closed.MedianRPS / b.Closed.MedianRPS})
	}
	return targets, ratios
}

func passIf(ok bool) string {
	if ok {
		return statusPass
	}
	return statusFail
}

func missing(a string, ra *scenarioResult, b string, rb *scenarioResult) string {
	switch {
	case ra == nil && rb == nil:
		return a + " and " + b + " not measured"
	case ra == nil:
		return a + " not measured"
	case rb == nil:
		return b + " not measured"
	}
	return "open loop not measured"
}

// invalid names the scenarios that gave incorrect answers.
func invalid(rs ...*scenarioResult) string {
	var out string
	for _, r := range rs {
		if r.Errors > 0 || r.Closed.SizeMismatch {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%s had %d incorrect answers", r.Name, r.Errors)
			if r.Closed.SizeMismatch {
				out += " (answer sizes differ from the verified answer)"
			}
		}
	}
	return out
}

// generatorBound names the scenarios whose closed loop saturated the
// generator's core in most windows: their maximum is the generator's.
func generatorBound(rs ...*scenarioResult) string {
	var out string
	for _, r := range rs {
		n := 0
		for _, rd := range r.Closed.Rounds {
			if rd.GeneratorCoreBusy > 0.95 {
				n++
			}
		}
		if 2*n > len(r.Closed.Rounds) {
			if out != "" {
				out += ", "
			}
			out += r.Name + "'s maximum is the load generator's (its core was saturated)"
		}
	}
	return out
}

// rateMissed names the scenarios whose open loop fell short of its rate in
// most windows: their latencies were not measured at that rate.
func rateMissed(rs ...*scenarioResult) string {
	var out string
	for _, r := range rs {
		n := 0
		for _, rd := range r.Open.Rounds {
			if rd.AchievedRate < 0.95*float64(rd.Rate) {
				n++
			}
		}
		if 2*n > len(r.Open.Rounds) {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%s's open loop did not reach %d req/s", r.Name, r.Open.Rate)
		}
	}
	return out
}

// tailNote says, for the p99 pair, in how few of its 10-ms intervals a
// window held half of its slowest 1 % (median over the rounds).
func tailNote(rs ...*scenarioResult) string {
	var parts []string
	of := 0
	for _, r := range rs {
		var ks []float64
		for _, rd := range r.Open.Rounds {
			if rd.Intervals > 0 {
				ks = append(ks, float64(rd.TailIntervals))
				of = max(of, rd.Intervals)
			}
		}
		if len(ks) == 0 {
			return ""
		}
		parts = append(parts, fmt.Sprintf("%g (%s)", median(ks), r.Name))
	}
	return fmt.Sprintf("; half of a window's slowest 1 %% started within %s of its %d 10-ms intervals (median over the rounds)",
		strings.Join(parts, " and "), of)
}

// openGeneratorLimit is the share of its core above which the open-loop
// generator queues its own requests (vegeta's pacer sends late in bursts
// and its goroutines wait for the one P; h2load's event loop falls behind
// its timers), so a latency measured then is mostly the generator's, the
// same for every contender, and a ratio of two such p99s says little about
// the contenders.
const openGeneratorLimit = 0.90

// openGeneratorBound names the scenarios whose open-loop generator used
// more than openGeneratorLimit of its core in most windows.
func openGeneratorBound(rs ...*scenarioResult) string {
	var out string
	for _, r := range rs {
		n := 0
		for _, rd := range r.Open.Rounds {
			if rd.GeneratorCoreBusy > openGeneratorLimit {
				n++
			}
		}
		if 2*n > len(r.Open.Rounds) {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%s's open-loop generator used more than %.0f%% of its core in %d of %d windows (the latencies are mostly its own queueing)",
				r.Name, 100*openGeneratorLimit, n, len(r.Open.Rounds))
		}
	}
	return out
}

// otherLimit is the share of the server core that other processes may take
// in a window before the window no longer measures the contender alone.
const otherLimit = 0.10

// sharedCore names the scenarios whose server core other processes used
// for more than otherLimit in most of their windows (closed and open).
func sharedCore(rs ...*scenarioResult) string {
	var out string
	for _, r := range rs {
		var shares []float64
		for _, rd := range r.Closed.Rounds {
			shares = append(shares, rd.ServerCoreOther)
		}
		if r.Open != nil {
			for _, rd := range r.Open.Rounds {
				shares = append(shares, rd.ServerCoreOther)
			}
		}
		n, worst := 0, 0.0
		for _, s := range shares {
			if s > otherLimit {
				n++
				worst = max(worst, s)
			}
		}
		if 2*n > len(shares) {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("other processes took up to %.0f%% of the server core during %s", 100*worst, r.Name)
		}
	}
	return out
}

// invalidIf marks the target invalid for every non-empty reason, appending
// each to the detail in order.
func (t *targetResult) invalidIf(reasons ...string) {
	for _, r := range reasons {
		if r != "" {
			t.Status, t.Detail = statusInvalid, t.Detail+"; "+r
		}
	}
}
