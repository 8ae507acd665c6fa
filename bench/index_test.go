package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIndexListsKeptRunsOldestFirst writes two reports as the harness does
// and checks the index: one row per timestamped report (latest.json is a
// copy, not a run of its own), oldest first, each target with its status,
// a paired reading with incorrect answers marked as the report's targets
// treat it (they do not quote it), and the errors of every phase counted.
func TestIndexListsKeptRunsOldestFirst(t *testing.T) {
	dir := t.TempDir()
	judged := func(meRatio, usernameRatio float64) *report {
		results := map[string]*scenarioResult{
			"gw-me-hit":            result("gw-me-hit", 90000*meRatio, 900, 45000),
			"bare-fiber":           result("bare-fiber", 90000, 500, 45000),
			"bare-fiber-floor":     result("bare-fiber-floor", 85000, 0, 0),
			"gw-username":          result("gw-username", 30000*usernameRatio, 0, 0),
			"nginx-proxy-username": result("nginx-proxy-username", 30000, 0, 0),
		}
		mem := &memoryResult{Users: 100000, RSSKiB: 190000, HWMKiB: 199000, CacheEntries: 100000,
			SampleSize: 1000, SampleCacheHits: 1000, SampleTokenHits: 1000, Errors: 2}
		paired := []*pairedResult{{A: "gw-me-hit", B: "bare-fiber", Median: 0.8771, Errors: 1}}
		rep := &report{Schema: 1, Memory: mem, Paired: paired, Settings: settings{Rounds: 5}}
		rep.Targets, rep.Ratios = judge(results, mem, paired)
		for _, name := range []string{"gw-me-hit", "bare-fiber", "bare-fiber-floor", "gw-username", "nginx-proxy-username"} {
			rep.Results = append(rep.Results, results[name])
		}
		rep.Results[0].Errors = 3
		return rep
	}
	newer := judged(0.95, 0.5)
	newer.StartedAt = time.Date(2026, 11, 29, 8, 20, 1, 0, time.UTC)
	newer.Machine = machine{Commit: "bbbbbbbbbbbb", LoadAvgStart: "0.01 0.02 0.03", CPUModel: "AMD EPYC", Kernel: "6.18.44-fc-v782"}
	older := judged(0.7, 0.9)
	older.StartedAt = time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC)
	older.Machine = machine{Commit: "aaaaaaaaaaaa", LoadAvgStart: "1.50 1.00 0.50"}
	// The newer one first, so the index must sort; each write also copies
	// its report to latest.json and rebuilds the index.
	for _, rep := range []*report{newer, older} {
		if _, err := rep.write(dir); err != nil {
			t.Fatal(err)
		}
	}

	data, err := os.ReadFile(filepath.Join(dir, indexName))
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "| [") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2 (latest.json is not a run):\n%s", len(rows), data)
	}
	for i, want := range [][]string{
		{"[2026-11-28T230000Z](2026-11-28T230000Z.md)", "`aaaaaaaaaaaa` | — | 1.50 |", "| 90,000 |",
			"0.700 **FAIL**", "| 0.944 |", "| 0.877 **INVALID** |", "0.900 PASS", "194.6 (203.8)", "| 6 |"},
		{"[2026-11-29T082001Z](2026-11-29T082001Z.md)", "`bbbbbbbbbbbb`", "| AMD EPYC, 6.18.44-fc-v782 | 0.01 |",
			"0.950 PASS", "0.500 **FAIL**", "| — |"},
	} {
		for _, w := range want {
			if !strings.Contains(rows[i], w) {
				t.Errorf("row %d lacks %q:\n%s", i, w, rows[i])
			}
		}
	}
}

func TestGroupThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 112496: "112,496", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := groupThousands(n); got != want {
			t.Errorf("groupThousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMachineNote(t *testing.T) {
	dir := t.TempDir()
	amd := machine{CPUModel: "AMD EPYC", Kernel: "6.18.44-fc-v669"}
	if n := machineNote(dir, amd); n != "" {
		t.Errorf("no latest.json yet, but a note: %s", n)
	}
	rep := &report{Schema: 1, StartedAt: time.Date(2026, 11, 27, 23, 19, 57, 0, time.UTC), Machine: amd}
	if _, err := rep.write(dir); err != nil {
		t.Fatal(err)
	}
	if n := machineNote(dir, amd); n != "" {
		t.Errorf("the same machine, but a note: %s", n)
	}
	n := machineNote(dir, machine{CPUModel: "AMD EPYC", Kernel: "6.18.44-fc-v782"})
	for _, want := range []string{"kernel 6.18.44-fc-v782", "(2026-11-27T231957Z) had AMD EPYC, kernel 6.18.44-fc-v669", "compare the ratios"} {
		if !strings.Contains(n, want) {
			t.Errorf("note lacks %q: %s", want, n)
		}
	}
	if n := machineNote(dir, machine{CPUModel: "Intel(R) Xeon(R) Processor", Kernel: "6.18.44-fc-v669"}); !strings.Contains(n, "Intel") {
		t.Errorf("another CPU, no note: %q", n)
	}
}

// An INVALID target reads INVALID in the index, never PASS, whatever its
// ratio: here /me over bare Fiber at 0.95 with incorrect answers.
func TestIndexShowsInvalidTargets(t *testing.T) {
	results := map[string]*scenarioResult{
		"gw-me-hit":  result("gw-me-hit", 95000, 900, 47500),
		"bare-fiber": result("bare-fiber", 100000, 500, 47500),
	}
	results["gw-me-hit"].Errors = 4
	rep := &report{Schema: 1, StartedAt: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC), Settings: settings{Rounds: 3}}
	rep.Targets, rep.Ratios = judge(results, nil, nil)
	row := indexMarkdown([]*indexedReport{{report: rep, name: "run"}})
	if !strings.Contains(row, "| 0.950 **INVALID** |") || strings.Contains(row, "PASS") {
		t.Errorf("index row of an INVALID target:\n%s", row)
	}
}

// The index's legend gives every kind of reason a target is INVALID for,
// not only the load generator's limit: the row of the test above is
// INVALID for incorrect answers.
func TestIndexLegendNamesEveryInvalidReason(t *testing.T) {
	legend := indexMarkdown(nil)
	for _, reason := range []string{"incorrect answers", "answers of another size", "the load generator", "other processes on the server core",
		"off their path", "open loop", "memory phase"} {
		if !strings.Contains(legend, reason) {
			t.Errorf("the index's legend of INVALID does not name %q:\n%s", reason, legend)
		}
	}
}
