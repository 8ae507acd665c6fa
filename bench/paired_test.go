package main

import (
	"context"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// driftingClosed is a closed loop whose every scenario answers its own
// base rate times a machine speed that falls with every window, as on a
// host that gets busier: the drift the paired order must cancel.
type driftingClosed struct {
	base  map[string]float64
	speed float64
	drop  float64
	ran   []string
	errs  map[string]int64
}

func (f *driftingClosed) run(_ context.Context, sc *scenario, d time.Duration, _ int) (window, error) {
	f.ran = append(f.ran, sc.Name)
	rps := f.base[sc.Name] * f.speed
	f.speed -= f.drop
	return window{Requests: int64(rps * d.Seconds()), Elapsed: d, Errors: f.errs[sc.Name]}, nil
}

// The paired phase measures each pair A B B A, then B A A B: a drift that
// is linear over a repetition cancels, so the ratios are the true 0.8
// where one window of each, A then B, would read 0.8 × (1 / 0.9) and B then
// A 0.8 × 0.9. Pairs with a scenario that does not run are skipped, and a
// pair with incorrect answers gives the targets no paired note.
func TestPairedRoundsCancelLinearDrift(t *testing.T) {
	names := []string{"gw-me-hit", "bare-fiber", "bare-fiber-floor", "gw-username", "nginx-proxy-username"}
	var scs []*scenario
	for _, n := range names {
		scs = append(scs, &scenario{Name: n})
	}
	closed := &driftingClosed{
		base:  map[string]float64{"gw-me-hit": 80000, "bare-fiber": 100000, "bare-fiber-floor": 95000, "gw-username": 20000, "nginx-proxy-username": 40000},
		speed: 1, drop: 0.1 / 4,
		errs: map[string]int64{"gw-username": 1},
	}
	r := &runner{opts: &options{pairs: 3, pairWindow: time.Second}, log: &progress{w: io.Discard, start: time.Now()},
		closed: closed, scenarios: scs, results: map[string]*scenarioResult{}}
	for _, n := range names {
		r.results[n] = &scenarioResult{Name: n}
	}
	pairs, err := r.pairedRounds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pairs {
		got = append(got, p.A+"/"+p.B)
	}
	if want := []string{"gw-me-hit/bare-fiber", "bare-fiber-floor/bare-fiber", "gw-username/nginx-proxy-username"}; !slices.Equal(got, want) {
		t.Fatalf("pairs %v, want %v", got, want)
	}
	if want := []string{"gw-me-hit", "bare-fiber", "bare-fiber", "gw-me-hit", "bare-fiber", "gw-me-hit", "gw-me-hit", "bare-fiber"}; !slices.Equal(closed.ran[:8], want) {
		t.Fatalf("windows %v, want %v", closed.ran[:8], want)
	}
	for i, want := range []float64{0.8, 0.95, 0.5} {
		p := pairs[i]
		if len(p.Ratios) != 3 {
			t.Fatalf("%s/%s: %d repetitions, want 3", p.A, p.B, len(p.Ratios))
		}
		for _, v := range p.Ratios {
			if math.Abs(v-want) > 1e-3 {
				t.Errorf("%s/%s: ratio %.4f, want %.4f (ratios %v)", p.A, p.B, v, want, p.Ratios)
			}
		}
		if math.Abs(p.Median-want) > 1e-3 {
			t.Errorf("%s/%s: median %.4f, want %.4f", p.A, p.B, p.Median, want)
		}
	}
	note := pairedNote(pairs, "gw-me-hit", "bare-fiber", "bare-fiber-floor")
	if !strings.Contains(note, "median 0.800") || !strings.Contains(note, "the floor contender 0.950") {
		t.Errorf("note %q", note)
	}
	if pairs[2].Errors != 6 {
		t.Errorf("errors %d, want 6 (one per gw-username window)", pairs[2].Errors)
	}
	if note := pairedNote(pairs, "gw-username", "nginx-proxy-username", ""); note != "" {
		t.Errorf("a pair with incorrect answers gave a note: %q", note)
	}
	md := pairedMarkdown(pairs)
	if !strings.Contains(md, "| gw-me-hit / bare-fiber | 1s | 3 | 0.800 |") {
		t.Errorf("markdown:\n%s", md)
	}
	if r.opts.pairs = 0; len(must(r.pairedRounds(context.Background()))) != 0 {
		t.Error("-pairs 0 measured pairs")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// sizedClosed answers 1,000 requests a second for every scenario, each
// answer of the given size on the wire, as wrk reports it (bytes, no
// bodies).
type sizedClosed map[string]int64

func (f sizedClosed) run(_ context.Context, sc *scenario, d time.Duration, _ int) (window, error) {
	n := int64(1000 * d.Seconds())
	return window{Requests: n, Elapsed: d, Bytes: n * f[sc.Name]}, nil
}

// A paired window whose answers are not the verified size is incorrect, as
// in the rounds: wrk counts statuses and socket errors only, so an answer
// of the right status but another body shows only in the mean size on the
// wire. Such a pair gives the targets no paired note.
func TestPairedRoundsCheckAnswerSize(t *testing.T) {
	gw := &scenario{Name: "gw-me-hit", ResponseBytes: 1264}
	bare := &scenario{Name: "bare-fiber", ResponseBytes: 1264}
	r := &runner{opts: &options{pairs: 2, pairWindow: time.Second}, log: &progress{w: io.Discard, start: time.Now()},
		closed: sizedClosed{"gw-me-hit": 1264 - 40, "bare-fiber": 1264}, scenarios: []*scenario{gw, bare},
		results: map[string]*scenarioResult{"gw-me-hit": {Name: "gw-me-hit"}, "bare-fiber": {Name: "bare-fiber"}}}
	pairs, err := r.pairedRounds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 1 {
		t.Fatalf("%d pairs, want 1", len(pairs))
	}
	if pairs[0].Errors != 4 {
		t.Errorf("errors %d, want 4 (each gw-me-hit window's answers are 40 bytes short)", pairs[0].Errors)
	}
	if note := pairedNote(pairs, "gw-me-hit", "bare-fiber", ""); note != "" {
		t.Errorf("a pair with answers of another size gave a note: %q", note)
	}
}
