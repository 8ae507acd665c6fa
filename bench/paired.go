package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The paired phase measures the throughput targets' ratios a second way.
// The rounds measure every scenario once per round, so the two sides of a
// ratio are a minute or more apart, while this machine's noise (other
// tenants of the host) changes within seconds: a ratio of medians over 5
// rounds swings by as much as the gaps it judges. Here each pair is
// measured in short closed-loop windows right after one another, in the
// order A B B A (then B A A B, and so on), so that both sides of every
// repetition see the same few seconds of the machine and a drift that is
// linear over a repetition cancels. A repetition's ratio is A's requests
// over B's in its four windows; the pair's value is the median over the
// repetitions. The targets are still judged on the rounds' medians; the
// paired value is reported beside them.

// pairedSets are the pairs measured, A over B: each throughput target and
// the floor contender that stands for the gateway in it.
var pairedSets = [][2]string{
	{"gw-me-hit", "bare-fiber"},
	{"bare-fiber-floor", "bare-fiber"},
	{"gw-username", "nginx-proxy-username"},
	{"fiber-proxy-floor-username", "nginx-proxy-username"},
	{"gw-me-hit", "nginx-cache-hit"},
}

// pairedResult is one pair's paired measurement.
type pairedResult struct {
	A string `json:"a"`
	B string `json:"b"`
	// Ratios are the repetitions' ratios, in the order measured.
	Ratios []float64 `json:"ratios"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	// WindowSeconds is the length of one window; each repetition has four.
	WindowSeconds float64 `json:"windowSeconds"`
	// Errors are incorrect answers in the windows (statuses and socket
	// errors, and one for each window whose mean size on the wire differs
	// from the verified answer's): a pair with any is not a measurement of
	// the right answers.
	Errors int64  `json:"errors"`
	Broken string `json:"broken,omitempty"`
}

// pairedPause separates the windows of a repetition: shorter than the
// rounds' pause, so that the pair's windows stay close together.
const pairedPause = 100 * time.Millisecond

// pairedRounds measures every pair of pairedSets whose scenarios both run
// and are not broken, opts.pairs repetitions each.
func (r *runner) pairedRounds(ctx context.Context) ([]*pairedResult, error) {
	if r.opts.pairs <= 0 {
		return nil, nil
	}
	byName := map[string]*scenario{}
	for _, sc := range r.scenarios {
		byName[sc.Name] = sc
	}
	var out []*pairedResult
	for _, set := range pairedSets {
		a, b := byName[set[0]], byName[set[1]]
		if a == nil || b == nil || r.broken(a) || r.broken(b) {
			continue
		}
		res := &pairedResult{A: a.Name, B: b.Name, WindowSeconds: r.opts.pairWindow.Seconds()}
		for i := 0; i < r.opts.pairs; i++ {
			ratio, errs, err := r.pairedRepetition(ctx, a, b, i%2 == 1)
			if err != nil {
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				res.Broken = fmt.Sprintf("repetition %d: %v", i+1, err)
				break
			}
			res.Errors += errs
			res.Ratios = append(res.Ratios, ratio)
		}
		res.summarize()
		if res.Broken == "" {
			r.log.say("paired %-28s %-22s median %.3f (%.3f–%.3f) over %d repetitions, errors %d",
				a.Name, "/ "+b.Name, res.Median, res.Min, res.Max, len(res.Ratios), res.Errors)
		} else {
			r.log.say("paired %s / %s is broken: %s", a.Name, b.Name, res.Broken)
		}
		out = append(out, res)
	}
	return out, ctx.Err()
}

// pairedRepetition measures A B B A (B A A B when swapped) and returns A's
// requests over B's, and the incorrect answers of the four windows.
func (r *runner) pairedRepetition(ctx context.Context, a, b *scenario, swapped bool) (float64, int64, error) {
	order := []*scenario{a, b, b, a}
	if swapped {
		order = []*scenario{b, a, a, b}
	}
	var reqA, reqB float64
	var errs int64
	for _, sc := range order {
		win, err := r.closed.run(ctx, sc, r.opts.pairWindow, r.closedConns(sc))
		if err != nil {
			return 0, errs, fmt.Errorf("%s: %w", sc.Name, err)
		}
		errs += win.Errors
		// wrk reads no bodies: a window whose mean size on the wire is not
		// the verified answer's had incorrect answers, counted as one (as
		// the rounds' size mismatch and h2load's).
		if _, differs := sizeMismatch(win, sc); differs {
			errs++
		}
		rps := ratio(float64(win.Requests), win.Elapsed.Seconds())
		if sc == a {
			reqA += rps
		} else {
			reqB += rps
		}
		sleep(ctx, pairedPause)
	}
	if reqB == 0 {
		return 0, errs, fmt.Errorf("%s answered nothing", b.Name)
	}
	return reqA / reqB, errs, nil
}

func (p *pairedResult) summarize() {
	if len(p.Ratios) == 0 {
		return
	}
	p.Median = median(p.Ratios)
	p.Min, p.Max = slices.Min(p.Ratios), slices.Max(p.Ratios)
}

// pairedFor is the measured pair a over b, nil when it was not measured
// or is not a valid measurement.
func pairedFor(pairs []*pairedResult, a, b string) *pairedResult {
	for _, p := range pairs {
		if p.A == a && p.B == b && p.Broken == "" && p.Errors == 0 && len(p.Ratios) > 0 {
			return p
		}
	}
	return nil
}

// pairedNote is the detail a throughput target gets from the paired
// phase: the gateway's paired ratio and its floor contender's.
func pairedNote(pairs []*pairedResult, a, b, floor string) string {
	p := pairedFor(pairs, a, b)
	if p == nil {
		return ""
	}
	note := fmt.Sprintf("; paired A B B A windows of %gs: median %.3f (%.3f–%.3f, %d repetitions)",
		p.WindowSeconds, p.Median, p.Min, p.Max, len(p.Ratios))
	if f := pairedFor(pairs, floor, b); f != nil {
		note += fmt.Sprintf(", the floor contender %.3f", f.Median)
	}
	return note
}

// pairedMarkdown is the report's section on the paired phase.
func pairedMarkdown(pairs []*pairedResult) string {
	if len(pairs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Paired windows (closed loop)\n\n")
	b.WriteString("Each pair measured in short closed-loop windows right after one another, A B B A then B A A B, " +
		"so that both sides of a repetition see the same seconds of the machine; a repetition's ratio is A's rate over B's " +
		"in its four windows. The targets above are judged on the rounds' medians; these are a second, drift-resistant reading of the same ratios.\n\n")
	b.WriteString("| pair | window | repetitions | median | min–max | per repetition | errors |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, p := range pairs {
		if p.Broken != "" {
			fmt.Fprintf(&b, "| %s / %s | %gs | — | — | — | broken: %s | %d |\n", p.A, p.B, p.WindowSeconds, p.Broken, p.Errors)
			continue
		}
		per := make([]string, len(p.Ratios))
		for i, v := range p.Ratios {
			per[i] = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(&b, "| %s / %s | %gs | %d | %.3f | %.3f–%.3f | %s | %d |\n",
			p.A, p.B, p.WindowSeconds, len(p.Ratios), p.Median, p.Min, p.Max, strings.Join(per, ", "), p.Errors)
	}
	b.WriteString("\n")
	return b.String()
}

// pairedEstimate is how long the paired phase takes.
func pairedEstimate(o *options) time.Duration {
	if o.pairs <= 0 {
		return 0
	}
	w := max(time.Second, o.pairWindow.Round(time.Second))
	return time.Duration(len(pairedSets)*o.pairs*4) * (w + pairedPause + 100*time.Millisecond)
}
