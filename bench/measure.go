package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// closedLoop is a generator of the closed loop: as many requests as the
// target answers over `connections` connections.
type closedLoop interface {
	run(ctx context.Context, sc *scenario, d time.Duration, connections int) (window, error)
}

// runner measures the scenarios: warm-up, then closed-loop rounds, then
// open-loop rounds, every round visiting every scenario once in rotating
// order, so that drift of the machine (other load, thermal, page cache)
// spreads over all contenders alike.
type runner struct {
	opts      *options
	log       *progress
	closed    closedLoop
	open      openLoop
	generator string
	scenarios []*scenario
	results   map[string]*scenarioResult
	// serverCPUs are the pinned server cores (nil when not pinned): the
	// user time other processes spend there is measured per window.
	serverCPUs []int
	// loadCPUs are the pinned load cores (nil when not pinned): how busy
	// they were is the generator's core use, whoever used them.
	loadCPUs []int
}

// cpuMark is the CPU accounting at one end of a window.
type cpuMark struct {
	contender, upstream cpuSnapshot
	coresUser           time.Duration
	coresOK             bool
	// loadBusy is the load cores' busy time, at the wall-clock time at.
	loadBusy time.Duration
	loadOK   bool
	at       time.Time
}

func (r *runner) mark(sc *scenario) (cpuMark, error) {
	var m cpuMark
	var err error
	if m.contender, err = snapshot(sc.contender); err != nil {
		return m, fmt.Errorf("contender CPU (did it exit?): %w", err)
	}
	m.upstream, _ = snapshot(sc.upstream)
	if r.serverCPUs != nil {
		var cerr error
		m.coresUser, cerr = coresUserTime(r.serverCPUs)
		m.coresOK = cerr == nil
	}
	if r.loadCPUs != nil {
		var lerr error
		m.loadBusy, lerr = coresBusyTime(r.loadCPUs)
		m.loadOK = lerr == nil
	}
	m.at = time.Now()
	return m, nil
}

// generatorBusy is how busy the generator's core was in a window: the
// load cores' busy share when they are known, else the generator's own
// CPU time over the window. The core's share also counts what the
// generator competes with there but does not pay itself: the harness
// draining the gateway's access log and nginx's (bare Fiber logs nothing),
// the kernel's loopback work, other processes.
func generatorBusy(own, elapsed time.Duration, before, after cpuMark, loadCores int) float64 {
	busy := ratio(float64(own), float64(elapsed))
	if before.loadOK && after.loadOK && loadCores > 0 {
		if wall := after.at.Sub(before.at); wall > 0 {
			busy = max(busy, float64(after.loadBusy-before.loadBusy)/float64(wall)/float64(loadCores))
		}
	}
	return busy
}

// windowCPU is what a window cost: the contender, the upstream, and the
// share of the server cores that other processes took (user time of the
// cores beyond that of the processes under test), -1 when unknown.
func windowCPU(before, after cpuMark, elapsed time.Duration) (contender, upstream cpuUse, otherShare float64) {
	contender, upstream = after.contender.since(before.contender), after.upstream.since(before.upstream)
	otherShare = -1
	if before.coresOK && after.coresOK && elapsed > 0 {
		other := after.coresUser - before.coresUser - contender.user - upstream.user
		otherShare = max(0, float64(other)/float64(elapsed))
	}
	return contender, upstream, otherShare
}

// pause lets a server finish what a window left (access-log flush, GC)
// before the next window starts.
const pause = 250 * time.Millisecond

func (r *runner) warmUp(ctx context.Context) error {
	if r.opts.warmup <= 0 {
		return nil
	}
	for _, sc := range r.scenarios {
		if r.broken(sc) {
			continue
		}
		r.log.say("warm-up %s", sc.Name)
		if _, err := r.closed.run(ctx, sc, r.opts.warmup, r.closedConns(sc)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.results[sc.Name].Broken = "warm-up: " + err.Error()
			r.log.say("%s is broken: %v", sc.Name, err)
		}
		sleep(ctx, pause)
	}
	return ctx.Err()
}

func (r *runner) broken(sc *scenario) bool { return r.results[sc.Name].Broken != "" }

// rotated is the scenarios in the order of round i.
func (r *runner) rotated(i int) []*scenario {
	n := len(r.scenarios)
	out := make([]*scenario, 0, n)
	for j := 0; j < n; j++ {
		out = append(out, r.scenarios[(i+j)%n])
	}
	return out
}

func (r *runner) closedRounds(ctx context.Context) error {
	for i := 0; i < r.opts.rounds; i++ {
		for _, sc := range r.rotated(i) {
			if r.broken(sc) {
				continue
			}
			round, err := r.closedWindow(ctx, sc, i+1)
			res := r.results[sc.Name]
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// A contender that dies under load is a finding, not a
				// reason to lose the rest of the run.
				res.Broken = fmt.Sprintf("closed loop, round %d: %v", i+1, err)
				r.log.say("%s is broken: %s", sc.Name, res.Broken)
				continue
			}
			res.Closed.Rounds = append(res.Closed.Rounds, round)
			r.log.say("closed %d/%d %-22s %9.0f req/s  %6.1f µs CPU/req%s  errors %d",
				i+1, r.opts.rounds, sc.Name, round.RPS, round.CPUMicrosPerRequest, upstreamNote(round.UpstreamCPUMicrosPerRequest, sc), round.Errors)
			var path string
			if sc.path != nil {
				path = fmt.Sprintf(", %d off its path", round.OffPath)
			}
			r.verbose(round.ErrorSamples, "contender core %.0f%%, others on the server core %.0f%%, generator core %.0f%%, %.1f bytes/answer%s",
				100*round.ContenderCoreBusy, 100*round.ServerCoreOther, 100*round.GeneratorCoreBusy, round.BytesPerResponse, path)
			sleep(ctx, pause)
		}
	}
	return ctx.Err()
}

// verbose prints a window's details and error samples with -v.
func (r *runner) verbose(samples []string, format string, args ...any) {
	if !r.opts.verbose {
		return
	}
	r.log.say("       "+format, args...)
	for _, s := range samples {
		r.log.say("       error: %s", s)
	}
}

func upstreamNote(us float64, sc *scenario) string {
	if sc.upstream == nil {
		return ""
	}
	return fmt.Sprintf(" (+%.1f upstream)", us)
}

// closedConns is the closed loop's connection count for sc.
func (r *runner) closedConns(sc *scenario) int {
	if sc.closedConns > 0 {
		return sc.closedConns
	}
	return r.opts.connections
}

func (r *runner) closedWindow(ctx context.Context, sc *scenario, round int) (closedRound, error) {
	// The gateway's counters are read outside the CPU marks.
	var pathBefore pathCounters
	if sc.path != nil {
		var err error
		if pathBefore, err = readPath(ctx, *sc.path); err != nil {
			return closedRound{}, fmt.Errorf("the gateway's counters: %w", err)
		}
	}
	before, err := r.mark(sc)
	if err != nil {
		return closedRound{}, err
	}
	win, err := r.closed.run(ctx, sc, r.opts.duration, r.closedConns(sc))
	if err != nil {
		return closedRound{}, err
	}
	after, err := r.mark(sc)
	if err != nil {
		return closedRound{}, err
	}
	var off int64
	if sc.path != nil {
		pathAfter, err := readPath(ctx, *sc.path)
		if err != nil {
			return closedRound{}, fmt.Errorf("the gateway's counters: %w", err)
		}
		off = offPath(*sc.path, pathBefore, pathAfter, win.Requests)
	}
	contender, upstream, other := windowCPU(before, after, win.Elapsed)
	out := closedRound{
		Round: round, Requests: win.Requests, Seconds: win.Elapsed.Seconds(),
		Errors: win.Errors, ErrorSamples: win.ErrorSamples,
		LatencyP50Micros: micros(win.P50), LatencyP99Micros: micros(win.P99),
		ContenderCoreBusy: ratio(float64(contender.total()), float64(win.Elapsed)),
		GeneratorCoreBusy: generatorBusy(win.GeneratorCPU, win.Elapsed, before, after, len(r.loadCPUs)),
		ServerCoreOther:   other,
		OffPath:           off,
	}
	out.RPS = ratio(float64(win.Requests), win.Elapsed.Seconds())
	out.CPUMicrosPerRequest = ratio(micros(contender.total()), float64(win.Requests))
	if sc.upstream != nil {
		out.UpstreamCPUMicrosPerRequest = ratio(micros(upstream.total()), float64(win.Requests))
	}
	if mean, differs := sizeMismatch(win, sc); mean > 0 {
		out.BytesPerResponse = mean
		if differs {
			out.SizeMismatch = true
			out.ErrorSamples = append(out.ErrorSamples, fmt.Sprintf("mean answer %.1f bytes on the wire, the verified answer has %d",
				mean, sc.ResponseBytes))
		}
	}
	return out, nil
}

// sizeMismatch is a closed-loop window's mean size on the wire per answer
// (0 when the generator does not count bytes) and whether it differs from
// the verified probe's. wrk sees no bodies; every answer of a scenario has
// the same size on the wire, so a mean that differs means some answers
// were something else.
func sizeMismatch(win window, sc *scenario) (mean float64, differs bool) {
	if win.Bytes <= 0 || win.Requests <= 0 {
		return 0, false
	}
	mean = float64(win.Bytes) / float64(win.Requests)
	return mean, math.Abs(mean-float64(sc.ResponseBytes)) > math.Max(2, 0.01*float64(sc.ResponseBytes))
}

// p99Pair reports whether sc is one of the two scenarios the p99 target
// compares.
func p99Pair(sc *scenario) bool { return sc.Name == "gw-me-hit" || sc.halfOf == "gw-me-hit" }

// openRate is a scenario's open-loop rate: half of the gateway's /me
// maximum for the p99 pair (the target compares them at the same rate),
// else -rate, else half of its own maximum.
func (r *runner) openRate(sc *scenario) (int, string) {
	own := r.results[sc.Name].Closed.MedianRPS
	if sc.halfOf != "" {
		if ref, ok := r.results[sc.halfOf]; ok && ref.Closed.MedianRPS > 0 {
			return max(1, int(ref.Closed.MedianRPS/2)), "half of " + sc.halfOf + "'s maximum"
		}
	}
	if sc.Name == "gw-me-hit" {
		return max(1, int(own/2)), "half of its own maximum"
	}
	if r.opts.rate > 0 {
		return r.opts.rate, "-rate"
	}
	return max(1, int(own/2)), "half of its own maximum"
}

func (r *runner) openRounds(ctx context.Context) error {
	for _, sc := range r.scenarios {
		res := r.results[sc.Name]
		if res.Broken != "" || res.Closed.MedianRPS == 0 {
			continue
		}
		rate, basis := r.openRate(sc)
		res.Open = &openSummary{Rate: rate, RateBasis: basis}
	}
	// The p99 pair gets more rounds than the others (-p99-rounds): one
	// window's p99 is a few milliseconds of the host's hiccups, and the
	// target compares the pair's medians.
	for i := 0; i < max(r.opts.rounds, r.opts.p99Rounds); i++ {
		for _, sc := range r.rotated(i) {
			res := r.results[sc.Name]
			if res.Open == nil || res.Broken != "" || i >= r.opts.rounds && !p99Pair(sc) {
				continue
			}
			round, err := r.openWindow(ctx, sc, res.Open.Rate, i+1)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res.Broken = fmt.Sprintf("open loop, round %d: %v", i+1, err)
				r.log.say("%s is broken: %s", sc.Name, res.Broken)
				continue
			}
			res.Open.Rounds = append(res.Open.Rounds, round)
			rounds := r.opts.rounds
			if p99Pair(sc) {
				rounds = max(rounds, r.opts.p99Rounds)
			}
			r.log.say("open   %d/%d %-22s %7d req/s: p50 %7.0f µs  p99 %7.0f µs  p99.9 %7.0f µs  errors %d",
				i+1, rounds, sc.Name, res.Open.Rate, round.P50Micros, round.P99Micros, round.P999Micros, round.Errors)
			r.verbose(round.ErrorSamples, "achieved %.0f req/s, max %.0f µs, others on the server core %.0f%%, generator core %.0f%%, %d not from cache, half of the slowest 1%% in %d of %d 10-ms intervals",
				round.AchievedRate, round.MaxMicros, 100*round.ServerCoreOther, 100*round.GeneratorCoreBusy, round.NotFromCache, round.TailIntervals, round.Intervals)
			sleep(ctx, pause)
		}
	}
	if c, ok := r.open.(interface{ close() }); ok {
		c.close()
	}
	return ctx.Err()
}

func (r *runner) openWindow(ctx context.Context, sc *scenario, rate, round int) (openRound, error) {
	win, before, after, err := r.open.window(ctx, sc, rate, r.opts.prime, r.opts.duration, func() (cpuMark, error) { return r.mark(sc) })
	if err != nil {
		return openRound{}, err
	}
	// The CPU marks need not be the window's ends (h2load's tail after it;
	// with h2load the window is timed by its first request, not by the
	// first mark): what was used between them is shared out over their
	// interval and the requests that started in it.
	wall := after.at.Sub(before.at)
	// The window holds the requests sent in d (h2load's started in it,
	// vegeta's paced over it): its rate is theirs over d. The span to the
	// last answer would count that answer's latency as a rate missed.
	sent := ratio(float64(win.Requests), r.opts.duration.Seconds())
	contender, upstream, other := windowCPU(before, after, wall)
	served := win.Requests
	if win.Served > 0 {
		served = win.Served
	}
	out := openRound{
		Round: round, Rate: rate, Requests: win.Requests,
		AchievedRate: sent,
		P50Micros:    micros(win.P50), P99Micros: micros(win.P99), P999Micros: micros(win.P999), MaxMicros: micros(win.Max),
		Errors: win.Errors, ErrorSamples: win.ErrorSamples, NotFromCache: win.NotFromCache,
		CPUMicrosPerRequest: ratio(micros(contender.total()), float64(served)),
		GeneratorCoreBusy:   generatorBusy(win.GeneratorCPU, wall, before, after, len(r.loadCPUs)),
		ServerCoreOther:     other,
		TailIntervals:       win.TailIntervals, Intervals: win.Intervals,
	}
	if sc.upstream != nil {
		out.UpstreamCPUMicrosPerRequest = ratio(micros(upstream.total()), float64(served))
	}
	return out, ctx.Err()
}

// summarizeClosed computes the closed-loop medians (the open loop's rates
// come from them).
func (r *runner) summarizeClosed() {
	for _, sc := range r.scenarios {
		res := r.results[sc.Name]
		res.ResponseBytes = sc.ResponseBytes
		c := &res.Closed
		c.Generator, c.Connections = r.generator, r.closedConns(sc)
		var rps, cpu, up []float64
		for _, rd := range c.Rounds {
			rps = append(rps, rd.RPS)
			cpu = append(cpu, rd.CPUMicrosPerRequest)
			up = append(up, rd.UpstreamCPUMicrosPerRequest)
			c.Errors += rd.Errors
			c.SizeMismatch = c.SizeMismatch || rd.SizeMismatch
			c.OffPath += rd.OffPath
		}
		c.MedianRPS, c.MinRPS, c.MaxRPS = median(rps), minOf(rps), maxOfF(rps)
		c.MedianCPUMicrosPerRequest, c.MedianUpstreamCPUMicrosPerRequest = median(cpu), median(up)
		res.Errors = c.Errors
	}
}

// summarizeOpen computes the open-loop medians and reads every process's
// peak memory.
func (r *runner) summarizeOpen() {
	for _, sc := range r.scenarios {
		res := r.results[sc.Name]
		if m, err := memoryOfGroup(sc.contender); err == nil {
			res.ContenderPeakRSSKiB = m.HWMKiB
		}
		if sc.upstream != nil {
			if m, err := memoryOfGroup(sc.upstream); err == nil {
				res.UpstreamPeakRSSKiB = m.HWMKiB
			}
		}
		o := res.Open
		if o == nil {
			continue
		}
		var p50, p99, p999, ocpu, oup []float64
		for _, rd := range o.Rounds {
			p50 = append(p50, rd.P50Micros)
			p99 = append(p99, rd.P99Micros)
			p999 = append(p999, rd.P999Micros)
			ocpu = append(ocpu, rd.CPUMicrosPerRequest)
			oup = append(oup, rd.UpstreamCPUMicrosPerRequest)
			o.Errors += rd.Errors
			o.NotFromCache += rd.NotFromCache
		}
		o.P50Micros, o.P99Micros, o.P999Micros = median(p50), median(p99), median(p999)
		o.MedianCPUMicrosPerRequest, o.MedianUpstreamCPUMicrosPerRequest = median(ocpu), median(oup)
		res.Errors += o.Errors
	}
}

// median of the values (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func minOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Min(xs)
}

func maxOfF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// progress prints what the harness is doing, with the time since start.
type progress struct {
	w     io.Writer
	start time.Time
}

func (p *progress) say(format string, args ...any) {
	el := time.Since(p.start).Round(time.Second)
	fmt.Fprintf(p.w, "[%02d:%02d] %s\n", int(el.Minutes()), int(el.Seconds())%60, fmt.Sprintf(format, args...))
}

// notes says what makes numbers less trustworthy: a saturated generator, a
// rate the open loop could not hold, cache scenarios not served from the
// cache.
func (r *runner) notes() []string {
	var out []string
	if r.opts.pin {
		out = append(out, "proxied scenarios: the upstream (static or real store) runs on the server core too, "+
			"so a contender and its upstream share that core alike for the gateway and for nginx; CPU per request is shown for each")
	}
	for _, sc := range r.scenarios {
		res := r.results[sc.Name]
		idle, shared := 0, 0
		for _, rd := range res.Closed.Rounds {
			if rd.ContenderCoreBusy < 0.85 {
				idle++
			}
			if rd.ServerCoreOther > otherLimit {
				shared++
			}
		}
		if shared > 0 {
			out = append(out, fmt.Sprintf("%s: other processes took more than %.0f%% of the server core in %d of %d closed-loop windows",
				sc.Name, 100*otherLimit, shared, len(res.Closed.Rounds)))
		}
		if idle > 0 && sc.upstream == nil {
			out = append(out, fmt.Sprintf("%s: the contender used less than 85%% of its core in %d of %d closed-loop windows "+
				"(the machine was busy, or the generator was the limit)", sc.Name, idle, len(res.Closed.Rounds)))
		}
		busy := 0
		for _, rd := range res.Closed.Rounds {
			if rd.GeneratorCoreBusy > 0.95 {
				busy++
			}
		}
		if busy > 0 {
			out = append(out, fmt.Sprintf("%s: the closed-loop generator used more than 95%% of its core in %d of %d windows: "+
				"the maximum may be the generator's limit rather than the contender's", sc.Name, busy, len(res.Closed.Rounds)))
		}
		if res.Open == nil {
			continue
		}
		short, gen := 0, 0
		for _, rd := range res.Open.Rounds {
			if rd.AchievedRate < 0.95*float64(rd.Rate) {
				short++
			}
			if rd.GeneratorCoreBusy > openGeneratorLimit {
				gen++
			}
		}
		if short > 0 {
			out = append(out, fmt.Sprintf("%s: the open loop reached less than 95%% of %d req/s in %d of %d windows",
				sc.Name, res.Open.Rate, short, len(res.Open.Rounds)))
		}
		if gen > 0 {
			out = append(out, fmt.Sprintf("%s: the open-loop generator used more than %.0f%% of its core in %d of %d windows: "+
				"its own queueing is part of the latencies", sc.Name, 100*openGeneratorLimit, gen, len(res.Open.Rounds)))
		}
		if res.Open.NotFromCache > 0 {
			out = append(out, fmt.Sprintf("%s: %d correct answers of the open loop were not served from the cache "+
				"(an entry past its TTL is reloaded: a MISS, or STALE while revalidating, is how the production configuration behaves)",
				sc.Name, res.Open.NotFromCache))
		}
	}
	return out
}

// noiseNote warns when the machine was busy before the run started (the
// 1-minute load average above 0.5 on an idle-at-rest machine).
func noiseNote(loadAvg string) string {
	var one float64
	if _, err := fmt.Sscanf(loadAvg, "%f", &one); err != nil || one <= 0.5 {
		return ""
	}
	return fmt.Sprintf("the machine was not quiet: load average %s when the run started "+
		"(other processes shared the cores; the numbers are noisy)", loadAvg)
}
