package main

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"
)

// recordingOpen is an open loop that answers at once and records the windows
// it ran.
type recordingOpen struct{ ran []string }

func (f *recordingOpen) window(_ context.Context, sc *scenario, rate int, _, d time.Duration, mark func() (cpuMark, error)) (window, cpuMark, cpuMark, error) {
	f.ran = append(f.ran, sc.Name)
	before, _ := mark()
	after, _ := mark()
	return window{Requests: int64(rate), Elapsed: d, P99: time.Millisecond}, before, after, nil
}

// The open loop of the p99 target's pair runs -p99-rounds rounds, the
// others -rounds, and the pair's windows still alternate.
func TestOpenRoundsP99PairGetsMoreRounds(t *testing.T) {
	gw := &scenario{Name: "gw-me-hit"}
	bare := &scenario{Name: "bare-fiber", halfOf: "gw-me-hit"}
	other := &scenario{Name: "gw-username"}
	open := &recordingOpen{}
	r := &runner{opts: &options{rounds: 2, p99Rounds: 4, duration: time.Second}, log: &progress{w: io.Discard, start: time.Now()},
		open: open, scenarios: []*scenario{gw, bare, other}, results: map[string]*scenarioResult{}}
	for _, sc := range r.scenarios {
		r.results[sc.Name] = &scenarioResult{Name: sc.Name, Closed: closedSummary{MedianRPS: 1000}}
	}
	if err := r.openRounds(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"gw-me-hit": 4, "bare-fiber": 4, "gw-username": 2} {
		if got := len(r.results[name].Open.Rounds); got != want {
			t.Errorf("%s: %d open rounds, want %d", name, got, want)
		}
	}
	want := []string{"gw-me-hit", "bare-fiber", "gw-username", "bare-fiber", "gw-username", "gw-me-hit", "gw-me-hit", "bare-fiber", "gw-me-hit", "bare-fiber"}
	if !slices.Equal(open.ran, want) {
		t.Errorf("windows ran %v, want %v", open.ran, want)
	}
	// Both at the same rate: half of gw-me-hit's maximum.
	if a, b := r.results["gw-me-hit"].Open.Rate, r.results["bare-fiber"].Open.Rate; a != 500 || b != 500 {
		t.Errorf("rates %d and %d, want 500", a, b)
	}
}
