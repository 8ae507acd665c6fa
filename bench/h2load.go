package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// openLoop is a generator of the open loop: requests at a fixed rate. A
// window sends rate requests a second for prime, unmeasured, then for d;
// mark is called at both ends of the measured part, and the window holds
// what was sent between them.
type openLoop interface {
	window(ctx context.Context, sc *scenario, rate int, prime, d time.Duration, mark func() (cpuMark, error)) (win window, before, after cpuMark, err error)
}

// vegetaOpen is the open loop of vegeta in this process: every answer's
// status, headers and body are checked. Its clients (one per scenario) are
// its own, kept across windows.
type vegetaOpen struct {
	connections int
	clients     vegetaRunner
}

func (v *vegetaOpen) window(ctx context.Context, sc *scenario, rate int, prime, d time.Duration, mark func() (cpuMark, error)) (window, cpuMark, cpuMark, error) {
	client := v.clients.client(sc.Name, v.connections)
	if prime > 0 {
		attack(ctx, client, sc, rate, v.connections, prime)
	}
	before, err := mark()
	if err != nil {
		return window{}, before, before, err
	}
	win := attack(ctx, client, sc, rate, v.connections, d)
	after, err := mark()
	return win, before, after, err
}

func (v *vegetaOpen) close() { v.clients.close() }

// h2loadOpen is the open loop of h2load (Debian's nghttp2-client) in
// HTTP/1.1 mode on the load cores: a C event loop with its timers in a
// heap, about half of vegeta's cost per request here. Each of its clients
// (one connection each, one request at a time) sends rate/clients requests
// a second; the clients connect one a millisecond, so that their timers do
// not all tick together and send the whole rate in bursts. Every request's
// start, status and latency go to a log file; the window is the requests
// that started in d after the lead-in, timed from h2load's first request,
// so that it always ends inside h2load's run: this process's sleep before
// its first mark wakes late on a busy machine (by 0.6 s at a load of 10 on
// 2 cores), later than the margin of requests h2load has after the window.
// The CPU marks are this process's: the CPU between them is shared out
// over the requests that started between them (Served).
//
// It sees statuses but checks no bodies: like wrk's closed loop, the mean
// size on the wire is compared with the verified probe's, and a transport
// error or timeout counts as an error. A request whose client was still
// waiting for its previous answer is sent when that answer arrives, and its
// latency starts then. With h2load that is most requests: its --rps timer
// ticks at most every 10 ms (max(0.01, 1/rps)), and a tick releases every
// request due since the last, to go one after another (5-6 per client and
// tick at 36,000 req/s over 64 clients); and the clients, 1 ms apart, tick
// in ten groups.
type h2loadOpen struct {
	pin         pinning
	path        string // the h2load binary
	dir         string // request bodies and log files
	connections int
}

// stagger is how far apart h2load starts its clients.
const stagger = time.Millisecond

func (h *h2loadOpen) window(ctx context.Context, sc *scenario, rate int, prime, d time.Duration, mark func() (cpuMark, error)) (window, cpuMark, cpuMark, error) {
	clients := min(h.connections, max(rate, 1))
	lead := prime + time.Duration(clients)*stagger
	// Enough requests for the lead-in, the window and a margin; h2load
	// stops after them. Requests that start after the window are not
	// counted. They are counted per client: h2load gives each client
	// total/clients (rounded down), and a client sends its first request
	// as it connects and the next ones at its rate, so n requests span
	// (n-1)/rate; at a low rate per client (1/s below 64 req/s) a share
	// of the whole rate rounded down ended the clients' runs inside the
	// window.
	perClient := int(math.Ceil(float64(rate)/float64(clients)*(lead+d+200*time.Millisecond).Seconds())) + 1
	total := perClient * clients
	logPath := filepath.Join(h.dir, "h2load-"+sc.Name+".tsv")
	args, err := h.args(sc, rate, clients, total, logPath)
	if err != nil {
		return window{}, cpuMark{}, cpuMark{}, err
	}
	defer os.Remove(logPath)
	cmd := h.pin.loadCommand(h.path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return window{}, cpuMark{}, cpuMark{}, fmt.Errorf("h2load: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	kill := func() { _ = cmd.Process.Kill(); <-done }

	sleep(ctx, lead)
	before, err := mark()
	if err != nil {
		kill()
		return window{}, before, before, err
	}
	var waitErr error
	var exited time.Time
	select {
	case waitErr = <-done:
		exited = time.Now()
	case <-ctx.Done():
		kill()
		return window{}, before, before, ctx.Err()
	case <-time.After(lead + d + 30*time.Second):
		kill()
		return window{}, before, before, fmt.Errorf("h2load did not finish %d requests in time", total)
	}
	after, err := mark()
	if err != nil {
		return window{}, before, after, err
	}
	if waitErr != nil {
		return window{}, before, after, fmt.Errorf("h2load: %v: %s%s", waitErr, stdout.Bytes(), stderr.Bytes())
	}
	sum, err := parseH2loadSummary(stdout.Bytes())
	if err != nil {
		return window{}, before, after, err
	}
	f, err := os.Open(logPath)
	if err != nil {
		return window{}, before, after, fmt.Errorf("h2load's log: %v", err)
	}
	defer f.Close()
	win, err := h2loadWindow(f, lead, d, before.at, sc.ResponseBytes, sum)
	if err != nil {
		return window{}, before, after, err
	}
	if win.Served == 0 {
		return window{}, before, after, fmt.Errorf("h2load sent its last request before the window's first CPU mark (%s after it started): no CPU per request", before.at.Sub(start).Round(time.Millisecond))
	}
	if st := cmd.ProcessState; st != nil {
		// Its own CPU over the whole run, scaled to the measured part.
		if run := exited.Sub(start); run > 0 {
			own := st.UserTime() + st.SystemTime()
			win.GeneratorCPU = time.Duration(float64(own) * float64(after.at.Sub(before.at)) / float64(run))
		}
	}
	return win, before, after, nil
}

// args is h2load's command line for one window.
func (h *h2loadOpen) args(sc *scenario, rate, clients, total int, logPath string) ([]string, error) {
	args := []string{"--h1",
		"-c", strconv.Itoa(clients), "-n", strconv.Itoa(total),
		"--rps", strconv.FormatFloat(float64(rate)/float64(clients), 'f', 3, 64),
		"-r", "1", "--rate-period", strconv.Itoa(int(stagger/time.Millisecond)) + "ms",
		"-N", "5s", // a connection silent for 5 s is closed, and its request counts as timed out
		"--log-file", logPath}
	for _, k := range slices.Sorted(maps.Keys(sc.Header)) {
		args = append(args, "-H", k+": "+sc.Header.Get(k))
	}
	if len(sc.Body) > 0 || sc.Method != http.MethodGet {
		// h2load sends GET, or POST with -d.
		if sc.Method != http.MethodPost {
			return nil, fmt.Errorf("h2load sends GET or POST, not %s", sc.Method)
		}
		body := filepath.Join(h.dir, "h2load-"+sc.Name+".body")
		if err := os.WriteFile(body, sc.Body, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-d", body)
	}
	return append(args, sc.URL), nil
}

// h2loadSummary is what h2load prints at the end of a run. Errored
// counts every request that got no answer: those whose connection failed
// or timed out, and those never sent because of it; Timeout is the part
// of them that was in flight when its connection timed out (h2load adds
// these to both counts).
type h2loadSummary struct {
	Done, Errored, Timeout int64
	Bytes                  int64 // on the wire, every answer of the run
}

var (
	h2loadRequests = regexp.MustCompile(`(?m)^requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, \d+ failed, (\d+) errored, (\d+) timeout`)
	h2loadTraffic  = regexp.MustCompile(`(?m)^traffic: .*?\((\d+)\) total`)
)

func parseH2loadSummary(out []byte) (h2loadSummary, error) {
	var s h2loadSummary
	m := h2loadRequests.FindSubmatch(out)
	t := h2loadTraffic.FindSubmatch(out)
	if m == nil || t == nil {
		return s, fmt.Errorf("h2load printed no summary; it said:\n%s", out)
	}
	s.Done, _ = strconv.ParseInt(string(m[1]), 10, 64)
	s.Errored, _ = strconv.ParseInt(string(m[2]), 10, 64)
	s.Timeout, _ = strconv.ParseInt(string(m[3]), 10, 64)
	s.Bytes, _ = strconv.ParseInt(string(t[1]), 10, 64)
	return s, nil
}

// h2loadWindow reads h2load's log (per request: start in µs since the
// epoch, status, µs until the end of the answer) and keeps the requests
// that started in the d after the lead-in, timed from the run's first
// request: h2load's requests run on past that by the margin its request
// count gives, however late this process marked. Served counts every
// request that started at or after marked (the before mark), which is
// what the CPU between the marks was spent on: the window's end and
// h2load's tail after it, and, when the mark was late, none of the window
// before it. Every non-2xx answer in the window counts as an error, and so
// does every request of the run that errored, timed out ones included
// (h2load logs no line for those). The run's mean size on the wire is
// checked against responseBytes (0: not checked).
func h2loadWindow(log *os.File, lead, d time.Duration, marked time.Time, responseBytes int, sum h2loadSummary) (window, error) {
	type logged struct {
		startUS, durUS int64
		status         int
	}
	var (
		win       window
		run       []logged
		latencies []time.Duration
		starts    []int64 // µs since the epoch, as latencies
		first     = int64(-1)
		last      int64
		statuses  = map[int]int64{}
	)
	sc := bufio.NewScanner(log)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 3 {
			return win, fmt.Errorf("h2load's log: unexpected line %q", sc.Text())
		}
		startUS, err1 := strconv.ParseInt(fields[0], 10, 64)
		status, err2 := strconv.Atoi(fields[1])
		durUS, err3 := strconv.ParseInt(fields[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return win, fmt.Errorf("h2load's log: unexpected line %q", sc.Text())
		}
		run = append(run, logged{startUS, durUS, status})
	}
	if err := sc.Err(); err != nil {
		return win, fmt.Errorf("h2load's log: %v", err)
	}
	var lo, hi int64
	if len(run) > 0 {
		lo = slices.MinFunc(run, func(a, b logged) int { return cmp.Compare(a.startUS, b.startUS) }).startUS + lead.Microseconds()
		hi = lo + d.Microseconds()
	}
	markedUS := marked.UnixMicro()
	for _, r := range run {
		startUS, durUS, status := r.startUS, r.durUS, r.status
		if startUS >= markedUS {
			win.Served++
		}
		if startUS < lo || startUS >= hi {
			continue
		}
		if first < 0 || startUS < first {
			first = startUS
		}
		last = max(last, startUS+durUS)
		latencies = append(latencies, time.Duration(durUS)*time.Microsecond)
		starts = append(starts, startUS)
		if status < 200 || status > 299 {
			win.Errors++
			statuses[status]++
		}
	}
	win.Requests = int64(len(latencies))
	if first >= 0 {
		win.Elapsed = time.Duration(last-first) * time.Microsecond
	}
	for _, st := range slices.Sorted(maps.Keys(statuses)) {
		win.ErrorSamples = append(win.ErrorSamples, fmt.Sprintf("h2load: %d answers with status %d", statuses[st], st))
	}
	if n := max(sum.Errored, sum.Timeout); n > 0 { // the timed out are among the errored
		win.Errors += n
		win.ErrorSamples = append(win.ErrorSamples, fmt.Sprintf("h2load: %d requests errored, %d of them timed out (in the whole run)", n, sum.Timeout))
	}
	if responseBytes > 0 && sum.Done > 0 {
		mean := float64(sum.Bytes) / float64(sum.Done)
		if d := mean - float64(responseBytes); d > max(2, 0.01*float64(responseBytes)) || -d > max(2, 0.01*float64(responseBytes)) {
			win.Errors++
			win.ErrorSamples = append(win.ErrorSamples, fmt.Sprintf("h2load: mean answer %.1f bytes on the wire, the verified answer has %d", mean, responseBytes))
		}
	}
	since := make([]time.Duration, len(starts))
	for i, us := range starts {
		since[i] = time.Duration(us-first) * time.Microsecond
	}
	win.setLatencies(since, latencies)
	return win, nil
}

// chooseOpenLoop picks the open-loop generator.
func chooseOpenLoop(o *options, pin pinning, work string) (openLoop, string, []string) {
	vegeta := &vegetaOpen{connections: o.connections}
	const vegetaName = "vegeta (in this process, constant rate, fasthttp transport; checks every answer's status, headers and body)"
	// What h2load's note says of its timing holds for vegeta's workers too
	// (bench/README.md): the report of a vegeta run says it as well.
	const vegetaTiming = "open loop: vegeta times each request from when a worker sent it, not from when it was due: " +
		"a request due while all its workers wait for answers is sent late, and that wait is not in its latency, so the p99s understate a stall's tail"
	path, err := exec.LookPath("h2load")
	switch {
	case o.openGenerator == genVegeta:
		return vegeta, vegetaName, []string{"open loop: vegeta chosen with -open-generator vegeta", vegetaTiming}
	case err != nil && o.openGenerator == genH2load:
		return vegeta, vegetaName, []string{"open loop: -open-generator h2load, but h2load is not installed (Debian: apt-get install -y nghttp2-client); vegeta used instead", vegetaTiming}
	case err != nil:
		return vegeta, vegetaName, []string{"open loop: h2load is not installed (Debian: apt-get install -y nghttp2-client), so vegeta measured the latencies: " +
			"it costs about twice as much of the load core per request, and near half the gateway's maximum it saturates that core (the p99 target is then INVALID)", vegetaTiming}
	}
	name := fmt.Sprintf("h2load --h1 (%d clients, one connection each, started 1 ms apart; each client's rate released in ticks of at least 10 ms)", o.connections)
	return &h2loadOpen{pin: pin, path: path, dir: work, connections: o.connections}, name, []string{
		"open loop: h2load reads statuses but checks no bodies or headers; the mean bytes per answer on the wire is compared with the verified probe's " +
			"(a difference counts as an error), and correct answers not served from the cache are not counted (vegeta, with -open-generator vegeta, checks both); " +
			"its --rps releases a client's requests in ticks of at least 10 ms, sent one after another, each timed from when it was sent, so a stall's wait is not in the latencies of the requests queued behind it: the p99s understate the tail, for every contender alike"}
}
