package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The index: one line per kept run, so that the history of the targets
// reads on one screen. It is rebuilt from the timestamped JSON reports in
// the results folder (latest.json is a copy of one of them) after every run,
// and by `go run ./bench -index` after reports were kept or removed by hand.

const indexName = "index.md"

// writeIndex rebuilds dir/index.md from dir's timestamped reports.
func writeIndex(dir string) (string, error) {
	reps, err := readReports(dir)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, indexName)
	return path, os.WriteFile(path, []byte(indexMarkdown(reps)), 0o644)
}

// readReports reads every timestamped report of dir, oldest first.
func readReports(dir string) ([]*indexedReport, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*Z.json"))
	if err != nil {
		return nil, err
	}
	var reps []*indexedReport
	for _, path := range names {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		rep := new(report)
		if err := json.Unmarshal(data, rep); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		base := strings.TrimSuffix(filepath.Base(path), ".json")
		reps = append(reps, &indexedReport{report: rep, name: base})
	}
	slices.SortFunc(reps, func(a, b *indexedReport) int { return a.StartedAt.Compare(b.StartedAt) })
	return reps, nil
}

type indexedReport struct {
	*report
	name string // the file name without .json
}

func indexMarkdown(reps []*indexedReport) string {
	var b strings.Builder
	b.WriteString("# Kept benchmark runs\n\n")
	b.WriteString("Written by `bench/` from the timestamped reports of this folder (rebuilt after every run, " +
		"and by `go run ./bench -index`). `latest.md` is the copy of the run taken as the reference, " +
		"from a quiet machine; docs/performance.md says what each run was for and what it showed.\n\n")
	b.WriteString("Each ratio is of the two scenarios' medians over the run's rounds (not a median of per-round ratios), " +
		"with the target's status after it; \"floor\" is the floor contender's ratio against the same baseline in the same rounds, " +
		"\"paired\" the paired phase's median (from the runs that had one). Bare Fiber's maximum says " +
		"how fast the host was (compare it with `latest.md`'s); the runs had different virtual " +
		"machines over the days, named by their CPU and kernel build. INVALID: the numbers do not measure what the target " +
		"compares, and the run's report says why: incorrect answers (or answers of another size on the wire); the load generator, not the contender, " +
		"set a maximum, or took more than 90 % of its core in most open-loop windows; other processes on the server core in most windows; more than 1 % of a gateway " +
		"scenario's answers off their path; an open loop short of its rate; a memory phase that filled fewer users than the target names. " +
		"In a \"paired\" column: the paired reading had incorrect answers. Errors: every incorrect answer of the run, in " +
		"any scenario, the paired phase or the memory fill (those of the first runs are the real " +
		"store's overload: its scenarios ran at 64 connections until `213ea5c`; each report names " +
		"its scenario). App headers: whether every request carried an app's client context (`-app-headers`: language, time zone, " +
		"platform, app version, device id); the runs before the flag did not.\n\n")
	b.WriteString("| run | commit | machine (CPU, kernel) | load at start | rounds | app headers | bare Fiber req/s | `/me` hit ÷ bare Fiber (≥ 0.9) | floor | paired | " +
		"`/me` hit ÷ nginx cache (≥ 0.8) | username ÷ nginx proxy (≥ 0.8) | floor | paired | " +
		"p99 ÷ bare Fiber (≤ 2) | memory MB, at rest (peak) (< 200) | errors |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range reps {
		load, _, _ := strings.Cut(r.Machine.LoadAvgStart, " ")
		fmt.Fprintf(&b, "| [%s](%s.md) | `%s` | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			r.name, r.name, orNone(r.Machine.Commit), r.machine(), orNone(load), r.Settings.Rounds, yesNo(r.Settings.AppHeaders),
			r.maxRPS("bare-fiber"),
			r.target("/me cache hit vs bare Fiber"), r.ratio("bare-fiber-floor / bare-fiber"),
			r.paired("gw-me-hit", "bare-fiber"),
			r.target("/me cache hit vs nginx proxy_cache"),
			r.target("username check vs nginx plain proxy"),
			r.ratio("fiber-proxy-floor-username / nginx-proxy-username"),
			r.paired("gw-username", "nginx-proxy-username"),
			r.target("p99 at half the gateway's maximum"),
			r.memory(), r.errors())
	}
	return b.String()
}

// machineNote says when this run's machine is not the one of the report in
// dir/latest.json, the reference it will be set beside: another CPU or
// kernel build makes its rates and CPU per request incomparable, though
// not its ratios.
func machineNote(dir string, m machine) string {
	data, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil {
		return ""
	}
	var prev report
	if json.Unmarshal(data, &prev) != nil || prev.Machine.CPUModel == "" {
		return ""
	}
	p := prev.Machine
	if p.CPUModel == m.CPUModel && p.Kernel == m.Kernel {
		return ""
	}
	return fmt.Sprintf("machine: this run had %s, kernel %s; the previous latest.json (%s) had %s, kernel %s: "+
		"compare the ratios of the two runs, not their rates or CPU per request",
		m.CPUModel, m.Kernel, prev.StartedAt.UTC().Format("2006-01-02T150405Z"), p.CPUModel, p.Kernel)
}

// machine names the VM the run had: the reports of one "2-core machine"
// come from different hosts over the days, which no load average shows.
func (r *indexedReport) machine() string {
	m := r.Machine
	if m.CPUModel == "" && m.Kernel == "" {
		return "—"
	}
	return m.CPUModel + ", " + m.Kernel
}

func (r *indexedReport) target(name string) string {
	for _, t := range r.Targets {
		if t.Name != name {
			continue
		}
		switch t.Status {
		case statusNotMeasured:
			return "—"
		case statusPass:
			return fmt.Sprintf("%.3f PASS", t.Value)
		}
		return fmt.Sprintf("%.3f **%s**", t.Value, t.Status)
	}
	return "—"
}

func (r *indexedReport) ratio(name string) string {
	for _, x := range r.Ratios {
		if x.Name == name {
			return fmt.Sprintf("%.3f", x.Value)
		}
	}
	return "—"
}

// paired is the paired phase's median of a over b; one with incorrect
// answers is INVALID, as the report's targets treat it (pairedFor).
func (r *indexedReport) paired(a, b string) string {
	for _, p := range r.Paired {
		if p.A != a || p.B != b || p.Broken != "" {
			continue
		}
		if p.Errors > 0 {
			return fmt.Sprintf("%.3f **%s**", p.Median, statusInvalid)
		}
		return fmt.Sprintf("%.3f", p.Median)
	}
	return "—"
}

func (r *indexedReport) maxRPS(scenario string) string {
	for _, s := range r.Results {
		if s.Name == scenario && s.Broken == "" && s.Closed.MedianRPS > 0 {
			return groupThousands(int64(s.Closed.MedianRPS + 0.5))
		}
	}
	return "—"
}

func (r *indexedReport) memory() string {
	m := r.Memory
	if m == nil || m.Broken != "" || m.RSSKiB == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f (%.1f)", megabytes(m.RSSKiB), megabytes(m.HWMKiB))
}

// errors counts every incorrect answer of the run: scenarios, paired phase
// and memory fill.
func (r *indexedReport) errors() int64 {
	var n int64
	for _, s := range r.Results {
		n += s.Errors
	}
	for _, p := range r.Paired {
		n += p.Errors
	}
	if r.Memory != nil {
		n += r.Memory.Errors
	}
	return n
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// groupThousands writes n with commas between groups of three digits.
func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + groupThousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
