// Command bench is the gateway's load benchmark with side-by-side
// baselines (issue 8). One command,
//
//	go run ./bench [flags]
//
// builds the gateway as production does, starts on loopback the gateway
// (cache on, cache off), a bare Fiber handler answering the same bytes, a
// fast static upstream that speaks the user-store contract, nginx as a
// plain reverse proxy and with proxy_cache (when installed), and the real
// user store behind its own gateway; pins every server to one core and the
// load generator to another; warms up; measures every scenario in
// alternating rounds (closed-loop maximum with wrk or vegeta, open-loop
// latency at a fixed rate with h2load or vegeta, CPU per request and peak memory
// from /proc); fills a fresh gateway with 100,000 profiles and tokens to
// measure its memory; judges the targets; and writes the report as
// Markdown and JSON under bench/results/. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The harness is the load generator: it trades memory for less GC.
	debug.SetGCPercent(400)
	opts, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	out := opts.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if opts.index {
		path, err := writeIndex(out)
		if err == nil {
			fmt.Fprintf(stdout, "index: %s\n", path)
		}
		return err
	}
	log := &progress{w: stderr, start: time.Now()}
	rep := &report{Schema: 1, StartedAt: time.Now(), Command: commandLine(args)}

	work, err := os.MkdirTemp("", "edge-bench-")
	if err != nil {
		return err
	}
	if opts.keep {
		defer fmt.Fprintf(stderr, "work folder kept: %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}

	log.say("building the gateway, the user store and the baselines")
	bins, err := build(ctx, root, work, opts.symbols)
	if err != nil {
		return err
	}
	rep.Machine = describeMachine(ctx, root)

	pin := choosePinning(opts)
	if err := pin.pinSelf(); err != nil {
		pin.Enabled, pin.Reason = false, err.Error()
	}
	closed, genName, genNotes := chooseGenerator(opts, pin, work)
	rep.Notes = append(rep.Notes, genNotes...)
	open, openName, openNotes := chooseOpenLoop(opts, pin, work)
	rep.Notes = append(rep.Notes, openNotes...)
	rep.Settings = settings{
		WindowSeconds: opts.duration.Seconds(), WarmupSeconds: opts.warmup.Seconds(), PrimeSeconds: opts.prime.Seconds(),
		Rounds: opts.rounds, P99Rounds: max(opts.rounds, opts.p99Rounds), Connections: opts.connections,
		ClosedLoopGenerator: genName, OpenLoopGenerator: openName,
		Pinned: pin.Enabled, PinningNote: pin.Reason, ServerCPUs: pin.ServerCPUs, LoadCPUs: pin.LoadCPUs,
		GatewayConfig: gatewayConfigNote,
		AppHeaders:    opts.appHeaders,
	}
	if opts.appHeaders {
		for _, kv := range appHeaders {
			rep.Settings.AppHeaderValues = append(rep.Settings.AppHeaderValues, kv[0]+": "+kv[1])
		}
	}
	if !pin.Enabled {
		rep.Skipped = append(rep.Skipped, "pinning: "+pin.Reason)
		log.say("not pinning: %s", pin.Reason)
	}

	st := &stack{opts: opts, pin: pin, root: root, work: work, bins: bins, log: log}
	defer st.stop()
	if err := st.start(ctx); err != nil {
		return err
	}
	rep.Skipped = append(rep.Skipped, st.skipped...)

	r := &runner{opts: opts, log: log, closed: closed, open: open, generator: genName,
		results: map[string]*scenarioResult{}}
	if pin.Enabled {
		r.serverCPUs, _ = parseCPUList(pin.ServerCPUs)
		r.loadCPUs, _ = parseCPUList(pin.LoadCPUs)
	}
	for _, sc := range st.scenarios() {
		res := &scenarioResult{Name: sc.Name, Title: sc.Title, Group: sc.Group, Contender: sc.Contender,
			Upstream: sc.Upstream, Method: sc.Method, URL: sc.URL}
		if err := sc.probe(ctx); err != nil {
			res.Broken = "its answer failed the check: " + err.Error()
			log.say("%s is broken: %v", sc.Name, err)
		}
		r.scenarios = append(r.scenarios, sc)
		r.results[sc.Name] = res
		rep.Results = append(rep.Results, res)
	}
	log.say("%d scenarios; this run takes about %s", len(r.scenarios), estimate(opts, len(r.scenarios)).Round(10*time.Second))

	if err := r.warmUp(ctx); err != nil {
		return err
	}
	if err := r.closedRounds(ctx); err != nil {
		return err
	}
	r.summarizeClosed()
	pairs, err := r.pairedRounds(ctx)
	if err != nil {
		return err
	}
	rep.Paired = pairs
	if err := r.openRounds(ctx); err != nil {
		return err
	}
	r.summarizeOpen()
	if n := noiseNote(rep.Machine.LoadAvgStart); n != "" {
		rep.Notes = append(rep.Notes, n)
	}
	if n := machineNote(out, rep.Machine); n != "" {
		rep.Notes = append(rep.Notes, n)
	}
	rep.Notes = append(rep.Notes, r.notes()...)

	if opts.memory {
		rep.Memory = st.memoryPhase(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	rep.Targets, rep.Ratios = judge(r.results, rep.Memory, rep.Paired)
	rep.Machine.LoadAvgEnd = loadAverage()
	rep.FinishedAt = time.Now()

	written, err := rep.write(out)
	if err != nil {
		return err
	}
	for _, t := range rep.Targets {
		fmt.Fprintf(stdout, "%-13s %-40s %s\n", t.Status, t.Name, t.Detail)
	}
	fmt.Fprintf(stdout, "report: %s\n", strings.Join(written, ", "))
	return nil
}

// gatewayConfigNote is the report's account of what the gateways run: every
// override of config.yaml that gatewayEnv makes.
const gatewayConfigNote = "config.yaml + env: free loopback ports, log level info, access log on (drained by the harness), " +
	"every rate limit at 100,000/s with a burst of 1,000,000 (the most the configuration accepts), " +
	"server.maxConnectionsPerIP 0 (no cap: the generator's one address stands for many clients); GOMAXPROCS=1; " +
	"gateways with GOGC=400 as in deploy/kubernetes and GOMEMLIMIT=170MiB, the memory limit sized for the 200 MB target (deploy/kubernetes sets 440MiB under its 512Mi limit)"

// chooseGenerator picks the closed-loop generator.
func chooseGenerator(o *options, pin pinning, work string) (closedLoop, string, []string) {
	path, err := exec.LookPath("wrk")
	switch {
	case o.generator == genVegeta:
		return &vegetaRunner{}, "vegeta (in this process, fixed workers, fasthttp transport)", []string{"closed loop: vegeta chosen with -generator vegeta"}
	case err != nil && o.generator == genWrk:
		return &vegetaRunner{}, "vegeta (in this process, fixed workers, fasthttp transport)", []string{"closed loop: -generator wrk, but wrk is not installed (Debian: apt-get install -y wrk); vegeta used instead"}
	case err != nil:
		return &vegetaRunner{}, "vegeta (in this process, fixed workers, fasthttp transport)", []string{"closed loop: wrk is not installed (Debian: apt-get install -y wrk), so vegeta measured the maxima: " +
			"a Go generator costs more per request than wrk, so a fast contender's maximum may be the generator's"}
	}
	threads := 1
	if pin.Enabled {
		cpus, _ := parseCPUList(pin.LoadCPUs)
		threads = len(cpus)
	}
	return &wrkRunner{pin: pin, dir: work, path: path, threads: threads}, fmt.Sprintf("wrk (%d thread(s))", threads), []string{
		"closed loop: wrk counts non-2xx/3xx answers and socket errors but does not read bodies at full speed; " +
			"every answer of a scenario has the same size on the wire, so the mean bytes per answer is compared with the verified probe's " +
			"(a difference is reported as a size mismatch); the open loop checks every body and header when vegeta runs it"}
}

// estimate is how long the measurement takes after start-up.
func estimate(o *options, n int) time.Duration {
	wrkWindow := max(time.Second, o.duration.Round(time.Second))
	d := time.Duration(n) * (o.warmup + pause)
	d += time.Duration(n*o.rounds) * (wrkWindow + pause + 300*time.Millisecond)
	d += time.Duration(n*o.rounds+2*max(0, o.p99Rounds-o.rounds)) * (o.prime + o.duration + pause + 200*time.Millisecond)
	d += pairedEstimate(o)
	if o.memory {
		d += time.Duration(o.memoryUsers) * 250 * time.Microsecond // mint + fill on one core each
		d += 10 * time.Second
	}
	return d
}

// commandLine is the command as a user types it.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./bench"}
	for _, a := range args[1:] {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
