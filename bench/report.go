package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// report is one run's result, written as JSON and Markdown.
type report struct {
	Schema     int       `json:"schema"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// Command is the exact command line; Args its arguments.
	Command  string            `json:"command"`
	Settings settings          `json:"settings"`
	Machine  machine           `json:"machine"`
	Results  []*scenarioResult `json:"scenarios"`
	Targets  []targetResult    `json:"targets"`
	Ratios   []ratioResult     `json:"ratios"`
	// Paired is the paired phase's reading of the targets' ratios.
	Paired  []*pairedResult `json:"paired,omitempty"`
	Memory  *memoryResult   `json:"memory,omitempty"`
	Skipped []string        `json:"skipped"`
	Notes   []string        `json:"notes"`
}

type settings struct {
	WindowSeconds       float64 `json:"windowSeconds"`
	WarmupSeconds       float64 `json:"warmupSeconds"`
	PrimeSeconds        float64 `json:"primeSeconds"`
	Rounds              int     `json:"rounds"`
	P99Rounds           int     `json:"p99Rounds"` // open-loop rounds of the p99 pair
	Connections         int     `json:"connections"`
	ClosedLoopGenerator string  `json:"closedLoopGenerator"`
	OpenLoopGenerator   string  `json:"openLoopGenerator"`
	Pinned              bool    `json:"pinned"`
	PinningNote         string  `json:"pinningNote,omitempty"`
	ServerCPUs          string  `json:"serverCPUs"`
	LoadCPUs            string  `json:"loadCPUs"`
	GatewayConfig       string  `json:"gatewayConfig"`
	// AppHeaders: every request carried the app's client context
	// (-app-headers), AppHeaderValues ("Name: value"); reports written
	// before the flag have neither and ran without.
	AppHeaders      bool     `json:"appHeaders"`
	AppHeaderValues []string `json:"appHeaderValues,omitempty"`
}

type scenarioResult struct {
	Name      string `json:"name"`
	Title     string `json:"title"`
	Group     string `json:"group"`
	Contender string `json:"contender"`
	Upstream  string `json:"upstream,omitempty"`
	Method    string `json:"method"`
	URL       string `json:"url"`
	// Broken says why the scenario was not measured.
	Broken string `json:"broken,omitempty"`
	// ResponseBytes is one verified answer's size on the wire.
	ResponseBytes int           `json:"responseBytes"`
	Closed        closedSummary `json:"closedLoop"`
	Open          *openSummary  `json:"openLoop,omitempty"`
	// Peak resident memory (VmHWM) of the contender's and the upstream's
	// processes over their whole life (a process serves several
	// scenarios).
	ContenderPeakRSSKiB int64 `json:"contenderPeakRSSKiB"`
	UpstreamPeakRSSKiB  int64 `json:"upstreamPeakRSSKiB,omitempty"`
	// Errors is every incorrect answer, closed and open loop.
	Errors int64 `json:"errors"`
}

type closedSummary struct {
	Generator                         string        `json:"generator"`
	Connections                       int           `json:"connections"`
	MedianRPS                         float64       `json:"medianRPS"`
	MinRPS                            float64       `json:"minRPS"`
	MaxRPS                            float64       `json:"maxRPS"`
	MedianCPUMicrosPerRequest         float64       `json:"medianCPUMicrosPerRequest"`
	MedianUpstreamCPUMicrosPerRequest float64       `json:"medianUpstreamCPUMicrosPerRequest,omitempty"`
	Errors                            int64         `json:"errors"`
	SizeMismatch                      bool          `json:"sizeMismatch,omitempty"`
	OffPath                           int64         `json:"offPath,omitempty"` // answers off the scenario's path, by the gateway's counters (path.go)
	Rounds                            []closedRound `json:"rounds"`
}

type closedRound struct {
	Round                       int      `json:"round"`
	Requests                    int64    `json:"requests"`
	Seconds                     float64  `json:"seconds"`
	RPS                         float64  `json:"rps"`
	Errors                      int64    `json:"errors"`
	ErrorSamples                []string `json:"errorSamples,omitempty"`
	BytesPerResponse            float64  `json:"bytesPerResponse,omitempty"`
	SizeMismatch                bool     `json:"sizeMismatch,omitempty"`
	OffPath                     int64    `json:"offPath,omitempty"`
	CPUMicrosPerRequest         float64  `json:"cpuMicrosPerRequest"`
	UpstreamCPUMicrosPerRequest float64  `json:"upstreamCPUMicrosPerRequest,omitempty"`
	ContenderCoreBusy           float64  `json:"contenderCoreBusy"`
	GeneratorCoreBusy           float64  `json:"generatorCoreBusy"`
	// ServerCoreOther is the share of the server cores' time that other
	// processes used (user time); -1 when not pinned.
	ServerCoreOther  float64 `json:"serverCoreOther"`
	LatencyP50Micros float64 `json:"latencyP50Micros"`
	LatencyP99Micros float64 `json:"latencyP99Micros"`
}

type openSummary struct {
	Rate                              int         `json:"rate"`
	RateBasis                         string      `json:"rateBasis"`
	P50Micros                         float64     `json:"p50Micros"`
	P99Micros                         float64     `json:"p99Micros"`
	P999Micros                        float64     `json:"p999Micros"`
	MedianCPUMicrosPerRequest         float64     `json:"medianCPUMicrosPerRequest"`
	MedianUpstreamCPUMicrosPerRequest float64     `json:"medianUpstreamCPUMicrosPerRequest,omitempty"`
	Errors                            int64       `json:"errors"`
	NotFromCache                      int64       `json:"notFromCache,omitempty"`
	Rounds                            []openRound `json:"rounds"`
}

type openRound struct {
	Round                       int      `json:"round"`
	Rate                        int      `json:"rate"`
	Requests                    int64    `json:"requests"`
	AchievedRate                float64  `json:"achievedRate"`
	P50Micros                   float64  `json:"p50Micros"`
	P99Micros                   float64  `json:"p99Micros"`
	P999Micros                  float64  `json:"p999Micros"`
	MaxMicros                   float64  `json:"maxMicros"`
	Errors                      int64    `json:"errors"`
	ErrorSamples                []string `json:"errorSamples,omitempty"`
	NotFromCache                int64    `json:"notFromCache,omitempty"`
	CPUMicrosPerRequest         float64  `json:"cpuMicrosPerRequest"`
	UpstreamCPUMicrosPerRequest float64  `json:"upstreamCPUMicrosPerRequest,omitempty"`
	GeneratorCoreBusy           float64  `json:"generatorCoreBusy"`
	ServerCoreOther             float64  `json:"serverCoreOther"`
	// TailIntervals of the window's Intervals (10 ms each, by request
	// start) hold half of its requests at or above its p99: a few of
	// hundreds means a few stalls set the p99.
	TailIntervals int `json:"tailIntervals"`
	Intervals     int `json:"intervals"`
}

// Target outcomes.
const (
	statusPass        = "PASS"
	statusFail        = "FAIL"
	statusNotMeasured = "NOT MEASURED"
	statusInvalid     = "INVALID"
)

type targetResult struct {
	Name   string  `json:"name"`
	Rule   string  `json:"rule"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Status string  `json:"status"`
	Detail string  `json:"detail"`
}

type ratioResult struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// write stores the report as latest.{md,json} and a timestamped copy, and
// rebuilds the folder's index.
func (rep *report) write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	js = append(js, '\n')
	md := []byte(rep.markdown())
	stamp := rep.StartedAt.UTC().Format("2006-01-02T150405Z")
	var written []string
	for name, data := range map[string][]byte{
		"latest.json": js, "latest.md": md, stamp + ".json": js, stamp + ".md": md,
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	index, err := writeIndex(dir)
	if err != nil {
		return written, err
	}
	return append(written, index), nil
}

func (rep *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Gateway load benchmark\n\n")
	p("Run %s → %s (%s), written by `bench/` (see bench/README.md).\n\n",
		rep.StartedAt.UTC().Format(time.RFC3339), rep.FinishedAt.UTC().Format(time.RFC3339), rep.FinishedAt.Sub(rep.StartedAt).Round(time.Second))
	p("```\n%s\n```\n\n", rep.Command)

	m := rep.Machine
	p("## Machine\n\n")
	p("| | |\n| --- | --- |\n")
	p("| CPU | %s, %d cores |\n", m.CPUModel, m.Cores)
	p("| kernel | %s |\n", m.Kernel)
	p("| Go | %s |\n", m.GoVersion)
	p("| nginx | %s |\n", orNone(m.Nginx))
	p("| wrk | %s |\n", orNone(m.Wrk))
	if rep.Settings.Pinned {
		p("| pinning | yes: servers on core %s, load generator on core %s (taskset); GOMAXPROCS=1, nginx worker_processes 1 |\n", rep.Settings.ServerCPUs, rep.Settings.LoadCPUs)
	} else {
		p("| pinning | **no**: %s |\n", rep.Settings.PinningNote)
	}
	p("| load average | %s at start, %s at end |\n", m.LoadAvgStart, m.LoadAvgEnd)
	p("| repository | %s |\n\n", m.Commit)

	s := rep.Settings
	p("Closed loop (maximum rate): %s, %d connections (the real-store scenarios %d), %g s windows. Open loop (fixed rate): %s, %g s windows after a %g s lead-in. "+
		"%d round(s), every round visits every scenario once in rotating order; numbers are medians across rounds; the open loop of the p99 target's pair (gw-me-hit, bare-fiber) runs %d round(s). "+
		"Warm-up %g s per scenario. Gateway: %s.\n\n",
		s.ClosedLoopGenerator, s.Connections, storeConnections, s.WindowSeconds, s.OpenLoopGenerator, s.WindowSeconds, s.PrimeSeconds,
		s.Rounds, max(s.Rounds, s.P99Rounds), s.WarmupSeconds, s.GatewayConfig)

	if s.AppHeaders {
		p("App headers: **yes** (-app-headers): every request, of every scenario (baselines included), the probes and the memory phase, also carried `%s`, "+
			"as an app sends them.\n\n", strings.Join(s.AppHeaderValues, "`, `"))
	} else {
		p("App headers: **no**: the requests carried only what their path needs (`Authorization`, and `Content-Type` with a body), " +
			"none of the client context an app sends (language, time zone, platform, app version, device id); -app-headers adds it.\n\n")
	}

	p("## Targets\n\n| target | rule | value | status | detail |\n| --- | --- | --- | --- | --- |\n")
	for _, t := range rep.Targets {
		p("| %s | %s | %s | **%s** | %s |\n", t.Name, t.Rule, formatTarget(t), t.Status, t.Detail)
	}
	p("\n")

	p("## Scenarios\n\n")
	p("| scenario | contender | max req/s (min–max) | CPU µs/req at max | open-loop rate | p50 µs | p99 µs | p99.9 µs | CPU µs/req at rate | peak RSS MiB | others on the server core | errors |\n")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rep.Results {
		if r.Broken != "" {
			p("| %s | %s | not measured: %s | | | | | | | | | |\n", r.Name, r.Contender, r.Broken)
			continue
		}
		c := r.Closed
		cpu := fmt.Sprintf("%.1f", c.MedianCPUMicrosPerRequest)
		if r.Upstream != "" {
			cpu += fmt.Sprintf(" + %.1f", c.MedianUpstreamCPUMicrosPerRequest)
		}
		rate, p50, p99, p999, ocpu := "—", "—", "—", "—", "—"
		if o := r.Open; o != nil {
			rate = fmt.Sprintf("%d", o.Rate)
			p50, p99, p999 = fmt.Sprintf("%.0f", o.P50Micros), fmt.Sprintf("%.0f", o.P99Micros), fmt.Sprintf("%.0f", o.P999Micros)
			ocpu = fmt.Sprintf("%.1f", o.MedianCPUMicrosPerRequest)
			if r.Upstream != "" {
				ocpu += fmt.Sprintf(" + %.1f", o.MedianUpstreamCPUMicrosPerRequest)
			}
		}
		contender := r.Contender
		if r.Upstream != "" {
			contender += " → " + r.Upstream
		}
		errs := fmt.Sprintf("%d", r.Errors)
		if c.SizeMismatch {
			// wrk reads no bodies: answers of another size (a partial answer,
			// an error envelope) show only as a different mean size.
			errs += " + answers of another size (closed loop)"
		}
		if c.OffPath > 0 {
			errs += fmt.Sprintf(" (%d off its path)", c.OffPath)
		}
		if r.Open != nil && r.Open.NotFromCache > 0 {
			errs += fmt.Sprintf(" (%d not from cache)", r.Open.NotFromCache)
		}
		p("| %s | %s | %.0f (%.0f–%.0f) | %s | %s | %s | %s | %s | %s | %.1f | %s | %s |\n",
			r.Name, contender, c.MedianRPS, c.MinRPS, c.MaxRPS, cpu, rate, p50, p99, p999, ocpu, float64(r.ContenderPeakRSSKiB)/1024, othersOf(r), errs)
	}
	p("\nOthers on the server core: the most user time that processes other than the contender and its upstream took on the "+
		"server core in any window of the scenario (PASS/FAIL needs it under %.0f%% in most windows). ", 100*otherLimit)
	p("CPU µs/req is the contender's CPU time (user + system, /proc/<pid>/stat) over the window divided by the answers; "+
		"\"+ n\" is the upstream's. Peak RSS is the contender's VmHWM over its life (one gateway serves several scenarios); nginx's is the sum of its processes' "+
		"(master, worker, cache manager and, while it runs, cache loader), each counting the pages they share: an upper bound, "+
		"about twice what they hold together. "+
		"Latency percentiles are exact (every answer's latency, nearest rank) at the fixed rate shown. "+
		"Off its path: closed-loop answers of a gateway scenario that the gateway's own counters show took another path than its name says "+
		"(no read-cache hit of the route, no token-cache hit, no upstream call of the kind); above %.0f%% of the answers the targets on it are INVALID.\n\n", 100*offPathLimit)

	p("What each scenario measures:\n\n")
	for _, r := range rep.Results {
		p("- `%s`: %s — `%s %s`\n", r.Name, r.Title, r.Method, r.URL)
	}
	p("\n")

	if len(rep.Ratios) > 0 {
		p("## Ratios (maximum rate, medians)\n\n| ratio | value |\n| --- | --- |\n")
		for _, r := range rep.Ratios {
			p("| %s | %.3f |\n", r.Name, r.Value)
		}
		p("\n")
	}
	b.WriteString(pairedMarkdown(rep.Paired))

	if mem := rep.Memory; mem != nil {
		p("## Memory: %d cached profiles and %d cached tokens\n\n", mem.Users, mem.Users)
		if mem.Broken != "" {
			p("Not measured: %s\n\n", mem.Broken)
		} else {
			p("| | |\n| --- | --- |\n")
			p("| RSS idle, before the fill | %.1f MiB |\n", mib(mem.IdleRSSKiB))
			p("| RSS after the fill (VmRSS) | **%.1f MiB** |\n", mib(mem.RSSKiB))
			p("| peak RSS (VmHWM, fill included) | %.1f MiB |\n", mib(mem.HWMKiB))
			p("| live heap after a forced collection (the cached data itself) | %.1f MiB |\n", float64(mem.LiveHeapBytes)/(1<<20))
			p("| read-cache entries / bytes | %d / %.1f MiB |\n", mem.CacheEntries, float64(mem.CacheBytes)/(1<<20))
			p("| token-cache look-ups during the fill (miss / hit) | %d / %d |\n", mem.TokenMisses, mem.TokenHits)
			p("| re-read sample: answers from the read cache, token-cache hits | %d / %d, %d / %d |\n", mem.SampleCacheHits, mem.SampleSize, mem.SampleTokenHits, mem.SampleSize)
			p("| fill | %d requests in %.1f s (%.0f req/s), %d errors |\n", mem.Users, mem.FillSeconds, ratio(float64(mem.Users), mem.FillSeconds), mem.Errors)
			p("\n%s\n\n", mem.Method)
		}
	}

	if len(rep.Skipped) > 0 {
		p("## Skipped\n\n")
		for _, s := range rep.Skipped {
			p("- %s\n", s)
		}
		p("\n")
	}
	if len(rep.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range rep.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	return b.String()
}

func formatTarget(t targetResult) string {
	if t.Status == statusNotMeasured {
		return "—"
	}
	if strings.Contains(t.Rule, "MB") {
		return fmt.Sprintf("%.1f MB (limit %.0f MB)", t.Value, t.Limit)
	}
	return fmt.Sprintf("%.3f (limit %.2f)", t.Value, t.Limit)
}

func orNone(s string) string {
	if s == "" {
		return "not installed"
	}
	return s
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// megabytes is kib in MB (10^6 bytes), the unit of the memory target.
func megabytes(kib int64) float64 { return float64(kib) * 1024 / 1e6 }

// othersOf is the largest share of the server core other processes took
// in any of the scenario's windows, "—" when unknown (not pinned).
func othersOf(r *scenarioResult) string {
	worst := -1.0
	for _, rd := range r.Closed.Rounds {
		worst = max(worst, rd.ServerCoreOther)
	}
	if r.Open != nil {
		for _, rd := range r.Open.Rounds {
			worst = max(worst, rd.ServerCoreOther)
		}
	}
	if worst < 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*worst)
}
