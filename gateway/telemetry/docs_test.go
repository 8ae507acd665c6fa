package telemetry

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream"
	dto "github.com/prometheus/client_model/go"
)

// The pages ops read to watch the gateway.
var metricDocs = []string{"../../docs/operations.md", "../../docs/runbook.md", "../../docs/caching.md"}

var (
	metricName = regexp.MustCompile(`\bgateway_[a-z_]+[a-z]`)
	// A series selector (in a query block or inline), and a label
	// matcher in it: name, operator, quoted value.
	selector     = regexp.MustCompile(`\b([a-z_:]+)\{([^}]*)\}`)
	labelMatcher = regexp.MustCompile(`\b([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
)

// Every metric the docs name is one the gateway exports, every family it
// exports is a row of operations.md's table with exactly its labels, every
// label a query matches on is one of its metric's, and every label value
// it matches, or the families' table names beside a label, is one the
// gateway can write: an alert on a name, a label or a value that does not
// exist never fires, and nobody notices. The table of label values has a
// row for each label, the gateway's list, no more and no less.
func TestDocsNameOnlyExportedMetricsAndLabelValues(t *testing.T) {
	m := NewMetrics("v")
	m.SetSources(fakeKeys{ready: true}, &fakeBreakers{obs: m, states: map[upstream.Op]string{}}, &fakeCache{}, &fakeLimiter{})
	// One observation of each kind, so that the families exported only
	// once a series is non-zero are there.
	m.RequestStarted()
	m.RequestDone("users.me", "GET", 200, "web", time.Millisecond)
	m.RateLimited("web", "perIP")
	m.CacheResult("users.me", "HIT")
	m.Call(upstream.OpSearch, upstream.OutcomeOK, time.Millisecond)
	m.BreakerState(upstream.OpSearch, "closed", "open")
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]dto.MetricType{}
	labelsOf := map[string][]string{} // the labels of each family's series
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "gateway_") {
			continue
		}
		exported[f.GetName()] = f.GetType()
		if len(f.GetMetric()) == 0 {
			t.Fatalf("%s has no series: its labels cannot be checked", f.GetName())
		}
		names := []string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			names = append(names, l.GetName())
		}
		slices.Sort(names)
		labelsOf[f.GetName()] = names
	}
	// family is the exported family a name in the docs stands for (a
	// histogram's series carry _bucket, _sum and _count), and whether
	// there is one.
	family := func(name string) (string, bool) {
		if _, ok := exported[name]; ok {
			return name, true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] == dto.MetricType_HISTOGRAM {
				return base, true
			}
		}
		return "", false
	}

	values := map[string][]string{
		"route": routeLabels[:], "method": methodLabels[:], "status_class": classLabels[:],
		"platform": platformLabels[:], "op": opLabels[:], "outcome": outcomeLabels[:],
		"policy": policyLabels[:], "kind": limitKindLabels[:], "reason": evictionLabels[:],
		"from": breakerLabels[:], "to": breakerLabels[:], "status": cacheLabels[:],
		"result": append(slices.Clone(resultLabels[:]), hitLabels[:]...),
	}

	var operations string
	for _, path := range metricDocs {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		if strings.HasSuffix(path, "operations.md") {
			operations = text
		}
		for _, name := range metricName.FindAllString(text, -1) {
			if _, ok := family(name); !ok {
				t.Errorf("%s names %s, which the gateway does not export", path, name)
			}
		}
		for _, sel := range selector.FindAllStringSubmatch(text, -1) {
			base, isOurs := family(sel[1])
			for _, mt := range labelMatcher.FindAllStringSubmatch(sel[2], -1) {
				label, op, value := mt[1], mt[2], mt[3]
				allowed, ours := values[label]
				if !ours {
					continue // a label Prometheus or Kubernetes adds (pod, job, deployment, …)
				}
				if isOurs && !slices.Contains(labelsOf[base], label) {
					t.Errorf("%s matches %s on %s, which has only the labels %v", path, sel[1], label, labelsOf[base])
				}
				alternatives := []string{value}
				if op == "=~" || op == "!~" {
					alternatives = strings.Split(value, "|")
				}
				for _, v := range alternatives {
					if !slices.Contains(allowed, v) {
						t.Errorf("%s matches %s%s%q: %q is not a value of %s (%v)", path, label, op, value, v, label, allowed)
					}
				}
			}
		}
	}

	// The families' table: a row names one or more families, and its
	// labels column their labels (values in parentheses aside).
	described := map[string]bool{}
	for _, row := range tableRows(operations, "| metric | type | labels | meaning |") {
		if len(row) < 3 {
			t.Errorf("docs/operations.md: short row in the families' table: %q", row)
			continue
		}
		documented := []string{}
		for _, l := range strings.Split(parenthesised.ReplaceAllString(row[2], ""), ",") {
			if l = strings.TrimSpace(l); l != "" {
				documented = append(documented, l)
			}
		}
		slices.Sort(documented)
		// Values named beside a label are ones the gateway writes for it.
		for _, lv := range labelValues.FindAllStringSubmatch(row[2], -1) {
			for _, v := range backquoted.FindAllStringSubmatch(lv[2], -1) {
				if !slices.Contains(values[lv[1]], v[1]) {
					t.Errorf("docs/operations.md gives %s the value %q in %s, which the gateway never writes (%v)", lv[1], v[1], row[0], values[lv[1]])
				}
			}
		}
		for _, name := range metricName.FindAllString(row[0], -1) {
			described[name] = true
			if labels, ok := labelsOf[name]; ok && !slices.Equal(documented, labels) {
				t.Errorf("docs/operations.md gives %s the labels %v; the gateway writes %v", name, documented, labels)
			}
		}
	}
	for name := range exported {
		if !described[name] {
			t.Errorf("docs/operations.md's table of families has no row for %s", name)
		}
	}
	// The table of label values: each row, in backquotes, is the label's
	// whole list.
	listed := map[string]bool{}
	for _, row := range tableRows(operations, "| label | values |") {
		if len(row) < 2 {
			t.Errorf("docs/operations.md: short row in the label values' table: %q", row)
			continue
		}
		label := strings.Trim(row[0], "`")
		want, ours := values[label]
		if !ours {
			t.Errorf("docs/operations.md lists values of %s, which no family of the gateway has", label)
			continue
		}
		listed[label] = true
		got := []string{}
		for _, v := range backquoted.FindAllStringSubmatch(row[1], -1) {
			got = append(got, v[1])
		}
		if missing := setDiff(want, got); len(missing) > 0 {
			t.Errorf("docs/operations.md's values of %s lack %v, which the gateway writes", label, missing)
		}
		if extra := setDiff(got, want); len(extra) > 0 {
			t.Errorf("docs/operations.md's values of %s include %v, which the gateway never writes", label, extra)
		}
	}
	for label := range values {
		if !listed[label] {
			t.Errorf("docs/operations.md's table of label values has no row for %s", label)
		}
	}
}

var (
	parenthesised = regexp.MustCompile(`\([^)]*\)`)
	labelValues   = regexp.MustCompile(`\b([a-z_]+)\s*\(([^)]*)\)`) // a label and the values in parentheses after it
	backquoted    = regexp.MustCompile("`([^`]*)`")
)

// tableRows returns the cells of each row of the Markdown table whose
// header line is header, the separator line skipped.
func tableRows(text, header string) [][]string {
	_, rest, ok := strings.Cut(text, header+"\n")
	if !ok {
		return nil
	}
	var rows [][]string
	for i, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i == 0 {
			continue // | --- | --- |
		}
		// A pipe inside a cell is written \|.
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for j := 0; j < len(cells); j++ {
			for strings.HasSuffix(cells[j], "\\") && j+1 < len(cells) {
				cells[j] = cells[j][:len(cells[j])-1] + "|" + cells[j+1]
				cells = slices.Delete(cells, j+1, j+2)
			}
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows
}

// setDiff is what a has that b lacks.
func setDiff(a, b []string) []string {
	var out []string
	for _, v := range a {
		if !slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}
