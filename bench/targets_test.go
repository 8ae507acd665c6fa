package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// result is a measured scenario with the given median maximum and open
// loop.
func result(name string, rps float64, p99 float64, rate int) *scenarioResult {
	r := &scenarioResult{Name: name, Closed: closedSummary{MedianRPS: rps, Rounds: []closedRound{{RPS: rps, GeneratorCoreBusy: 0.5}}}}
	if rate > 0 {
		r.Open = &openSummary{Rate: rate, P99Micros: p99, Rounds: []openRound{{Rate: rate, AchievedRate: float64(rate)}}}
	}
	return r
}

func statusOf(t *testing.T, targets []targetResult, name string) targetResult {
	t.Helper()
	for _, tr := range targets {
		if tr.Name == name {
			return tr
		}
	}
	t.Fatalf("no target %q", name)
	return targetResult{}
}

func TestJudge(t *testing.T) {
	results := map[string]*scenarioResult{
		"gw-me-hit":            result("gw-me-hit", 45000, 900, 22500),
		"bare-fiber":           result("bare-fiber", 50000, 500, 22500),
		"nginx-cache-hit":      result("nginx-cache-hit", 60000, 0, 0),
		"gw-username":          result("gw-username", 10000, 0, 0),
		"nginx-proxy-username": result("nginx-proxy-username", 12000, 0, 0),
	}
	mem := &memoryResult{Users: 100000, RSSKiB: 150000, HWMKiB: 180000, CacheEntries: 100000, SampleSize: 1000, SampleCacheHits: 1000, SampleTokenHits: 1000}
	targets, ratios := judge(results, mem, nil)

	for name, want := range map[string]string{
		"/me cache hit vs bare Fiber":         statusPass, // 0.90
		"/me cache hit vs nginx proxy_cache":  statusFail, // 0.75
		"username check vs nginx plain proxy": statusPass, // 0.83
		"p99 at half the gateway's maximum":   statusPass, // 1.8
		"memory":                              statusPass, // 153.6 MB
		"allocations on the cache-hit path":   statusNotMeasured,
	} {
		if got := statusOf(t, targets, name); got.Status != want {
			t.Errorf("%s: %s (%v, %s), want %s", name, got.Status, got.Value, got.Detail, want)
		}
	}
	if len(ratios) == 0 || ratios[0].Name != "gw-me-hit / bare-fiber" || ratios[0].Value != 0.9 {
		t.Errorf("ratios %+v", ratios)
	}
	if d := statusOf(t, targets, "username check vs nginx plain proxy").Detail; strings.Contains(d, "floor") {
		t.Errorf("detail names a floor contender that did not run: %s", d)
	}

	// A floor contender that ran is reported beside its target (a best
	// case, never the target's value); one with incorrect answers is not.
	results["fiber-proxy-floor-username"] = result("fiber-proxy-floor-username", 9000, 0, 0)
	results["bare-fiber-floor"] = result("bare-fiber-floor", 44000, 0, 0)
	results["bare-fiber-floor"].Errors = 1
	targets, ratios = judge(results, mem, nil)
	u := statusOf(t, targets, "username check vs nginx plain proxy")
	if want := "the floor contender fiber-proxy-floor-username reached 0.750"; !strings.Contains(u.Detail, want) || u.Status != statusPass {
		t.Errorf("username target %s %q, want PASS and %q", u.Status, u.Detail, want)
	}
	if d := statusOf(t, targets, "/me cache hit vs bare Fiber").Detail; strings.Contains(d, "floor") {
		t.Errorf("detail reports a floor contender with incorrect answers: %s", d)
	}
	var floorRatio bool
	for _, r := range ratios {
		floorRatio = floorRatio || r.Name == "gw-username / fiber-proxy-floor-username"
	}
	if !floorRatio {
		t.Errorf("ratios lack the gateway against its floor contender: %+v", ratios)
	}
	delete(results, "fiber-proxy-floor-username")
	delete(results, "bare-fiber-floor")

	// Errors invalidate; a saturated generator invalidates; a missed rate
	// invalidates the p99 target; a missing contender is not measured.
	results["bare-fiber"].Errors = 3
	results["gw-username"].Closed.Rounds[0].GeneratorCoreBusy = 0.99
	results["gw-me-hit"].Open.Rounds[0].AchievedRate = 15000
	delete(results, "nginx-cache-hit")
	targets, _ = judge(results, &memoryResult{Users: 100000, Broken: "gateway did not start"}, nil)
	for name, want := range map[string]string{
		"/me cache hit vs bare Fiber":         statusInvalid,
		"/me cache hit vs nginx proxy_cache":  statusNotMeasured,
		"username check vs nginx plain proxy": statusInvalid,
		"p99 at half the gateway's maximum":   statusInvalid,
		"memory":                              statusNotMeasured,
	} {
		if got := statusOf(t, targets, name); got.Status != want {
			t.Errorf("%s: %s (%s), want %s", name, got.Status, got.Detail, want)
		}
	}
}

func TestJudgeMemory(t *testing.T) {
	full := memoryResult{Users: 100000, CacheEntries: 100000, SampleSize: 1000, SampleCacheHits: 1000, SampleTokenHits: 1000}
	for _, tc := range []struct {
		name   string
		change func(*memoryResult)
		want   string
	}{
		{"under", func(m *memoryResult) { m.RSSKiB = 195000 }, statusPass}, // 199.7 MB
		{"over", func(m *memoryResult) { m.RSSKiB = 196000 }, statusFail},  // 200.7 MB
		{"evicted", func(m *memoryResult) { m.RSSKiB = 1000; m.CacheEntries = 90000 }, statusFail},
		{"tokens lost", func(m *memoryResult) { m.RSSKiB = 1000; m.SampleTokenHits = 995 }, statusFail},
		{"fill errors", func(m *memoryResult) { m.RSSKiB = 1000; m.Errors = 1 }, statusInvalid},
		{"a smaller fill", func(m *memoryResult) {
			m.RSSKiB, m.Users, m.CacheEntries = 30000, 1000, 1000
		}, statusInvalid}, // -memory-users 1000: nothing said of 100,000
	} {
		m := full
		tc.change(&m)
		targets, _ := judge(map[string]*scenarioResult{}, &m, nil)
		if got := statusOf(t, targets, "memory"); got.Status != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got.Status, got.Detail, tc.want)
		}
	}
	targets, _ := judge(map[string]*scenarioResult{}, nil, nil)
	if got := statusOf(t, targets, "memory"); got.Status != statusNotMeasured {
		t.Errorf("no memory phase: %s", got.Status)
	}
}

// The report is written four times (latest and a dated copy, Markdown and
// JSON); the JSON reads back and the Markdown carries the verdicts.
func TestReportWrite(t *testing.T) {
	start := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)
	res := result("gw-me-hit", 45000, 900, 22500)
	res.Title, res.Contender, res.Method, res.URL = "gateway /me", "gateway (cache on)", "GET", "http://x/api/v1/users/me"
	broken := &scenarioResult{Name: "nginx-proxy", Contender: "nginx", Broken: "its answer failed the check"}
	rep := &report{Schema: 1, StartedAt: start, FinishedAt: start.Add(8 * time.Minute), Command: "go run ./bench",
		Results: []*scenarioResult{res, broken}, Skipped: []string{"nginx baselines: nginx is not installed"},
		Memory: &memoryResult{Users: 100000, RSSKiB: 150000}}
	rep.Targets, rep.Ratios = judge(map[string]*scenarioResult{"gw-me-hit": res}, rep.Memory, nil)
	dir := t.TempDir()
	written, err := rep.write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 5 {
		t.Fatalf("wrote %v", written)
	}
	for _, name := range []string{"latest.md", "latest.json", "2026-11-27T010203Z.md", "2026-11-27T010203Z.json", indexName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	var back report
	b, _ := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err := json.Unmarshal(b, &back); err != nil || len(back.Results) != 2 || back.Results[0].Closed.MedianRPS != 45000 {
		t.Errorf("JSON: %v %+v", err, back.Results)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
	for _, want := range []string{"go run ./bench", "| gw-me-hit | gateway (cache on) | 45000", "not measured: its answer failed the check",
		"**NOT MEASURED**", "nginx is not installed", "146.5 MiB"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
}

func TestOptions(t *testing.T) {
	o, err := parseOptions([]string{"bench"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 5*time.Second || o.rounds != 3 || o.connections != 64 || !o.wants("gw-me-hit") || !o.memory || o.memoryUsers != 100000 ||
		o.floorMe != 940*time.Nanosecond || o.floorUsername != 1960*time.Nanosecond {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseOptions([]string{"bench", "-scenarios", "gw-me-hit, bare-fiber", "-duration", "2s", "-rounds", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.wants("bare-fiber") || o.wants("nginx-proxy") {
		t.Errorf("scenarios %v", o.scenarios)
	}
	for _, bad := range [][]string{
		{"bench", "-duration", "500ms"},
		{"bench", "-rounds", "0"},
		{"bench", "-pairs", "-1"},
		{"bench", "-pair-window", "500ms"},
		{"bench", "-scenarios", "gw-me-hit,nope"},
		{"bench", "-generator", "hey"},
		{"bench", "-server-cpus", "x"},
		{"bench", "-connections", "0"},
		{"bench", "-floor-me", "-1us"},
		{"bench", "-floor-username", "-1us"},
		{"bench", "extra"},
	} {
		if _, err := parseOptions(bad, io.Discard); err == nil {
			t.Errorf("parseOptions(%q) accepted", bad)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"/tmp/go-build/bench", "-duration", "2s", "-scenarios", "a b", "-out", "it's"})
	if want := `go run ./bench -duration 2s -scenarios 'a b' -out 'it'\''s'`; got != want {
		t.Errorf("commandLine = %s, want %s", got, want)
	}
}

// Other processes on the server core make a throughput target INVALID:
// the contender did not have its core to itself.
func TestJudgeSharedCore(t *testing.T) {
	results := map[string]*scenarioResult{
		"gw-me-hit":  result("gw-me-hit", 45000, 900, 22500),
		"bare-fiber": result("bare-fiber", 40000, 500, 22500),
	}
	results["bare-fiber"].Closed.Rounds[0].ServerCoreOther = 0.3
	results["bare-fiber"].Open.Rounds[0].ServerCoreOther = 0.2
	targets, _ := judge(results, nil, nil)
	got := statusOf(t, targets, "/me cache hit vs bare Fiber")
	if got.Status != statusInvalid || !strings.Contains(got.Detail, "other processes took up to 30%") {
		t.Errorf("%s: %s", got.Status, got.Detail)
	}
	results["bare-fiber"].Closed.Rounds[0].ServerCoreOther = 0.05 // one window of two: not most
	targets, _ = judge(results, nil, nil)
	if got := statusOf(t, targets, "/me cache hit vs bare Fiber"); got.Status != statusPass {
		t.Errorf("%s: %s", got.Status, got.Detail)
	}
}

// A p99 measured while vegeta's own core was saturated is mostly the
// generator's queueing, the same milliseconds added to both contenders,
// which pulls their ratio towards 1 whatever the gateway does: the p99
// target is INVALID then, as a closed-loop maximum is when wrk saturates.
func TestJudgeP99GeneratorSaturated(t *testing.T) {
	results := map[string]*scenarioResult{
		"gw-me-hit":  result("gw-me-hit", 45000, 3712, 22500),
		"bare-fiber": result("bare-fiber", 50000, 3175, 22500),
	}
	const p99 = "p99 at half the gateway's maximum"
	if got := statusOf(t, mustJudge(results), p99); got.Status != statusPass {
		t.Fatalf("generator not saturated: %s (%s)", got.Status, got.Detail)
	}
	results["bare-fiber"].Open.Rounds[0].GeneratorCoreBusy = 0.95
	got := statusOf(t, mustJudge(results), p99)
	if got.Status != statusInvalid || !strings.Contains(got.Detail, "bare-fiber's open-loop generator") {
		t.Errorf("saturated generator: %s (%s), want INVALID naming bare-fiber", got.Status, got.Detail)
	}
	// One window of three: not most.
	results["bare-fiber"].Open.Rounds = append(results["bare-fiber"].Open.Rounds,
		openRound{Rate: 22500, AchievedRate: 22500, GeneratorCoreBusy: 0.5}, openRound{Rate: 22500, AchievedRate: 22500, GeneratorCoreBusy: 0.5})
	if got := statusOf(t, mustJudge(results), p99); got.Status != statusPass {
		t.Errorf("one saturated window of three: %s (%s), want PASS", got.Status, got.Detail)
	}
}

// The p99 target's rate is half of gw-me-hit's closed-loop maximum: when
// the harness rules that maximum the load generator's (the /me throughput
// targets INVALID), the rate is not half the gateway's own, and the p99
// target is INVALID too (the runs of 2026-11-29 on fc-v782 said PASS).
func TestJudgeP99RateFromAGeneratorBoundMaximum(t *testing.T) {
	results := map[string]*scenarioResult{
		"gw-me-hit":  result("gw-me-hit", 58320, 1949, 29160),
		"bare-fiber": result("bare-fiber", 58449, 1615, 29160),
	}
	const p99 = "p99 at half the gateway's maximum"
	if got := statusOf(t, mustJudge(results), p99); got.Status != statusPass {
		t.Fatalf("generator not saturated: %s (%s)", got.Status, got.Detail)
	}
	results["gw-me-hit"].Closed.Rounds[0].GeneratorCoreBusy = 0.97
	targets := mustJudge(results)
	if got := statusOf(t, targets, "/me cache hit vs bare Fiber"); got.Status != statusInvalid {
		t.Fatalf("throughput with a saturated generator: %s", got.Status)
	}
	if got := statusOf(t, targets, p99); got.Status != statusInvalid || !strings.Contains(got.Detail, "half of a maximum") {
		t.Errorf("p99 at half a generator-bound maximum: %s (%s), want INVALID saying why", got.Status, got.Detail)
	}
}

func mustJudge(results map[string]*scenarioResult) []targetResult {
	targets, _ := judge(results, nil, nil)
	return targets
}

// The memory phase's RSS follows the benchmark's GOMEMLIMIT (with GOGC=400
// the heap grows towards the limit before it is collected): the verdict
// names the limit it was measured under, which is not production's.
func TestJudgeMemoryNamesTheLimit(t *testing.T) {
	m := &memoryResult{Users: 100000, RSSKiB: 190000, CacheEntries: 100000, SampleSize: 1000, SampleCacheHits: 1000, SampleTokenHits: 1000}
	targets, _ := judge(map[string]*scenarioResult{}, m, nil)
	got := statusOf(t, targets, "memory")
	if !strings.Contains(got.Detail, "GOMEMLIMIT="+benchMemLimit) || !strings.Contains(got.Detail, "440MiB") {
		t.Errorf("memory detail does not name the memory limit it was measured under: %s", got.Detail)
	}
}

// The p99 target names the ratio of every round, paired by round: the
// median's ratio can hide one round's far larger one.
func TestJudgeP99PerRound(t *testing.T) {
	gw, bare := result("gw-me-hit", 45000, 1736, 22500), result("bare-fiber", 50000, 977, 22500)
	gw.Open.Rounds = []openRound{{Rate: 22500, AchievedRate: 22500, P99Micros: 1736}, {Rate: 22500, AchievedRate: 22500, P99Micros: 1476}, {Rate: 22500, AchievedRate: 22500, P99Micros: 1989}}
	bare.Open.Rounds = []openRound{{Rate: 22500, AchievedRate: 22500, P99Micros: 1457}, {Rate: 22500, AchievedRate: 22500, P99Micros: 977}, {Rate: 22500, AchievedRate: 22500, P99Micros: 510}}
	got := statusOf(t, mustJudge(map[string]*scenarioResult{"gw-me-hit": gw, "bare-fiber": bare}), "p99 at half the gateway's maximum")
	if got.Status != statusPass || !strings.HasSuffix(got.Detail, "; per round 1.19, 1.51, 3.90") {
		t.Errorf("%s (%s), want PASS with the rounds' ratios", got.Status, got.Detail)
	}
}

// The p99 target says how concentrated the windows' tails were: in how
// few of its 10-ms intervals a window held half of its slowest 1 %.
func TestJudgeP99TailSpread(t *testing.T) {
	gw, bare := result("gw-me-hit", 45000, 1736, 22500), result("bare-fiber", 50000, 977, 22500)
	for i, k := range []int{4, 9, 6} {
		gw.Open.Rounds = append(gw.Open.Rounds[:i], openRound{Rate: 22500, AchievedRate: 22500, P99Micros: 1736, TailIntervals: k, Intervals: 500})
	}
	for i, k := range []int{8, 12, 10} {
		bare.Open.Rounds = append(bare.Open.Rounds[:i], openRound{Rate: 22500, AchievedRate: 22500, P99Micros: 977, TailIntervals: k, Intervals: 499})
	}
	got := statusOf(t, mustJudge(map[string]*scenarioResult{"gw-me-hit": gw, "bare-fiber": bare}), "p99 at half the gateway's maximum")
	want := "; half of a window's slowest 1 % started within 6 (gw-me-hit) and 10 (bare-fiber) of its 500 10-ms intervals (median over the rounds)"
	if !strings.HasSuffix(got.Detail, want) {
		t.Errorf("detail %q, want it to end %q", got.Detail, want)
	}
}

// Each target's limit is where PASS ends: a ratio at it passes, one just
// beyond it fails. The p99 limit is "at most 2 ×", the throughput limits
// "at least".
func TestJudgeLimitsAtTheirBoundaries(t *testing.T) {
	for _, tc := range []struct {
		target     string
		a, b       *scenarioResult
		wantStatus string
	}{
		{"/me cache hit vs bare Fiber", result("gw-me-hit", 45000, 0, 0), result("bare-fiber", 50000, 0, 0), statusPass},             // 0.90
		{"/me cache hit vs bare Fiber", result("gw-me-hit", 44500, 0, 0), result("bare-fiber", 50000, 0, 0), statusFail},             // 0.89
		{"/me cache hit vs nginx proxy_cache", result("gw-me-hit", 40000, 0, 0), result("nginx-cache-hit", 50000, 0, 0), statusPass}, // 0.80
		{"/me cache hit vs nginx proxy_cache", result("gw-me-hit", 39500, 0, 0), result("nginx-cache-hit", 50000, 0, 0), statusFail}, // 0.79
		{"username check vs nginx plain proxy", result("gw-username", 8000, 0, 0), result("nginx-proxy-username", 10000, 0, 0), statusPass},
		{"username check vs nginx plain proxy", result("gw-username", 7900, 0, 0), result("nginx-proxy-username", 10000, 0, 0), statusFail},
		{"p99 at half the gateway's maximum", result("gw-me-hit", 45000, 1000, 22500), result("bare-fiber", 50000, 500, 22500), statusPass}, // 2.00
		{"p99 at half the gateway's maximum", result("gw-me-hit", 45000, 1005, 22500), result("bare-fiber", 50000, 500, 22500), statusFail}, // 2.01
	} {
		got := statusOf(t, mustJudge(map[string]*scenarioResult{tc.a.Name: tc.a, tc.b.Name: tc.b}), tc.target)
		if got.Status != tc.wantStatus {
			t.Errorf("%s at %.3f: %s (%s), want %s", tc.target, got.Value, got.Status, got.Detail, tc.wantStatus)
		}
	}
}

// Whatever makes the numbers not measure what a rule compares makes the
// target INVALID (or NOT MEASURED), on either side of the ratio, each
// reason alone: a measurement that would PASS otherwise must never read
// PASS.
func TestJudgeEveryReasonOnEitherSide(t *testing.T) {
	const (
		me  = "/me cache hit vs bare Fiber"
		p99 = "p99 at half the gateway's maximum"
	)
	for _, tc := range []struct {
		name   string
		change func(gw, bare *scenarioResult)
		target string
		want   string
		detail string // part of the detail, "" for none
	}{
		{"bare Fiber's generator saturated", func(_, b *scenarioResult) { b.Closed.Rounds[0].GeneratorCoreBusy = 0.97 }, me, statusInvalid,
			"bare-fiber's maximum is the load generator's"},
		{"others on the gateway's core", func(g, _ *scenarioResult) {
			g.Closed.Rounds[0].ServerCoreOther = 0.3
			g.Open.Rounds[0].ServerCoreOther = 0.3
		}, me, statusInvalid,
			"during gw-me-hit"},
		{"the gateway's answers of another size", func(g, _ *scenarioResult) { g.Closed.SizeMismatch = true }, me, statusInvalid,
			"answer sizes differ"},
		{"bare Fiber's answers of another size", func(_, b *scenarioResult) { b.Closed.SizeMismatch = true }, me, statusInvalid,
			"answer sizes differ"},
		{"bare Fiber broken after its closed loop", func(_, b *scenarioResult) { b.Broken = "open loop, round 1: exited" }, me, statusNotMeasured,
			"bare-fiber not measured"},
		{"bare Fiber answered nothing", func(_, b *scenarioResult) { b.Closed.MedianRPS = 0 }, me, statusNotMeasured,
			"bare-fiber not measured"},
		{"the p99 pair at different rates", func(_, b *scenarioResult) {
			b.Open.Rate = 25000
			b.Open.Rounds[0].Rate = 25000
			b.Open.Rounds[0].AchievedRate = 25000
		},
			p99, statusInvalid, "rates differ"},
		{"the gateway's open-loop errors alone", func(g, _ *scenarioResult) { g.Errors = 1 }, p99, statusInvalid, "gw-me-hit had 1 incorrect answers"},
		{"bare Fiber's open loop 10 % short of its rate", func(_, b *scenarioResult) { b.Open.Rounds[0].AchievedRate = 20250 }, p99, statusInvalid,
			"bare-fiber's open loop did not reach 22500"},
		{"the gateway's open loop 10 % short of its rate", func(g, _ *scenarioResult) { g.Open.Rounds[0].AchievedRate = 20250 }, p99, statusInvalid,
			"gw-me-hit's open loop did not reach 22500"},
		// Others on the core in the open-loop windows (most of the
		// scenario's windows), not in its closed-loop one.
		{"others on the core in the open loop", func(g, _ *scenarioResult) {
			g.Open.Rounds = append(g.Open.Rounds, g.Open.Rounds[0], g.Open.Rounds[0])
			for i := range g.Open.Rounds {
				g.Open.Rounds[i].ServerCoreOther = 0.2
			}
		}, p99, statusInvalid, "other processes took up to 20% of the server core during gw-me-hit"},
		{"bare Fiber's p99 of 0", func(_, b *scenarioResult) { b.Open.P99Micros = 0 }, p99, statusNotMeasured, ""},
	} {
		gw, bare := result("gw-me-hit", 45000, 900, 22500), result("bare-fiber", 50000, 500, 22500)
		results := map[string]*scenarioResult{"gw-me-hit": gw, "bare-fiber": bare}
		if got := statusOf(t, mustJudge(results), tc.target); got.Status != statusPass {
			t.Fatalf("%s: %s before the change (%s)", tc.name, got.Status, got.Detail)
		}
		tc.change(gw, bare)
		got := statusOf(t, mustJudge(results), tc.target)
		if got.Status != tc.want || !strings.Contains(got.Detail, tc.detail) {
			t.Errorf("%s: %s: %s (%s), want %s saying %q", tc.name, tc.target, got.Status, got.Detail, tc.want, tc.detail)
		}
	}
}

// The memory target names 100,000 users: a fill one short of it is not a
// measurement of it; and every profile of the re-read sample must come
// from the read cache, as every token from the token cache.
func TestJudgeMemoryCountsAndSample(t *testing.T) {
	full := memoryResult{Users: 100000, RSSKiB: 150000, CacheEntries: 100000, SampleSize: 1000, SampleCacheHits: 1000, SampleTokenHits: 1000}
	for _, tc := range []struct {
		name   string
		change func(*memoryResult)
		want   string
	}{
		{"one user short", func(m *memoryResult) { m.Users, m.CacheEntries = 99999, 99999 }, statusInvalid},
		{"profiles lost", func(m *memoryResult) { m.SampleCacheHits = 999 }, statusFail},
	} {
		m := full
		tc.change(&m)
		targets, _ := judge(map[string]*scenarioResult{}, &m, nil)
		if got := statusOf(t, targets, "memory"); got.Status != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got.Status, got.Detail, tc.want)
		}
	}
}

// The defaults the targets are judged with, and flags that would make a
// run measure nothing of them.
func TestOptionsOfTheTargets(t *testing.T) {
	o, err := parseOptions([]string{"bench"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.p99Rounds != 9 || o.pairs != 8 || o.pairWindow != time.Second || !o.pin || o.rate != 0 || o.appHeaders {
		t.Errorf("defaults %+v", o)
	}
	for _, bad := range [][]string{
		{"bench", "-memory-users", "0"},
		{"bench", "-rate", "-1"},
		{"bench", "-p99-rounds", "-1"},
		{"bench", "-open-generator", "wrk"},
		{"bench", "-warmup", "-1s"},
	} {
		if _, err := parseOptions(bad, io.Discard); err == nil {
			t.Errorf("parseOptions(%q) accepted", bad)
		}
	}
}

// The scenario table says when the closed loop's answers had another size
// on the wire: its only trace of wrong answers wrk could not read.
func TestReportNamesAnswersOfAnotherSize(t *testing.T) {
	res := result("gw-me-hit", 45000, 900, 22500)
	res.Contender, res.Errors, res.Closed.SizeMismatch = "gateway (cache on)", 0, true
	md := (&report{Schema: 1, Results: []*scenarioResult{res}}).markdown()
	if !strings.Contains(md, "| 0 + answers of another size (closed loop) |") {
		t.Errorf("Markdown lacks the size mismatch:\n%s", md)
	}
}

// The report says what nginx's peak RSS is: not one process's, as the
// gateway's, but the sum over its processes, shared pages counted in each.
func TestReportSaysNginxPeakRSSIsASum(t *testing.T) {
	res := result("nginx-cache-hit", 60000, 900, 30000)
	res.Contender, res.ContenderPeakRSSKiB = "nginx", 21000
	md := (&report{Results: []*scenarioResult{res}}).markdown()
	if !strings.Contains(md, "nginx's is the sum of its processes'") || strings.Contains(md, "the contender process's VmHWM") {
		t.Errorf("the report's note on peak RSS does not say that nginx's is a sum over its processes:\n%s", md)
	}
}
