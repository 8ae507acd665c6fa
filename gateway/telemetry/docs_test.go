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
	selector     = regexp.MustCompile(`\b[a-z_:]+\{([^}]*)\}`)
	labelMatcher = regexp.MustCompile(`\b([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
)

// Every metric the docs name is one the gateway exports, every family it
// exports is in operations.md's table, and every label value a runbook
// query matches on is one the gateway can write: an alert on a name or a
// value that does not exist never fires, and nobody notices.
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
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "gateway_") {
			exported[f.GetName()] = f.GetType()
		}
	}
	known := func(name string) bool {
		if _, ok := exported[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] == dto.MetricType_HISTOGRAM {
				return true
			}
		}
		return false
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
			if !known(name) {
				t.Errorf("%s names %s, which the gateway does not export", path, name)
			}
		}
		for _, sel := range selector.FindAllStringSubmatch(text, -1) {
			for _, mt := range labelMatcher.FindAllStringSubmatch(sel[1], -1) {
				label, op, value := mt[1], mt[2], mt[3]
				allowed, ours := values[label]
				if !ours {
					continue // a label Prometheus or Kubernetes adds (pod, job, deployment, …)
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
	for name := range exported {
		if !strings.Contains(operations, "`"+name+"`") {
			t.Errorf("docs/operations.md does not describe %s", name)
		}
	}
}
