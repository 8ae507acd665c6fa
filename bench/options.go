package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// options are the harness's flags. The defaults size a full run at about
// ten minutes on the 2-core development machine.
type options struct {
	duration    time.Duration // one measured window
	warmup      time.Duration // per scenario, before the rounds
	prime       time.Duration // open loop: unmeasured lead-in of each window
	rounds      int
	p99Rounds   int           // open-loop rounds of the p99 pair (at least rounds)
	pairs       int           // repetitions of each pair in the paired phase (0: none)
	pairWindow  time.Duration // one window of the paired phase
	connections int           // closed loop
	rate        int           // open-loop rate of the other scenarios; 0: half their own maximum
	scenarios   []string
	generator   string // auto, wrk, vegeta
	// openGenerator is the open loop's: auto, h2load, vegeta.
	openGenerator string
	pin           bool
	serverCPUs    string
	loadCPUs      string
	nginx         bool
	store         bool
	memory        bool
	memoryUsers   int
	out           string
	keep          bool
	symbols       bool
	verbose       bool
	index         bool // only rebuild the results folder's index

	// appHeaders adds the app's client context (appHeaders in
	// scenarios.go) to every request of the run.
	appHeaders bool

	// The floors the floor contender spends per request.
	floorMe, floorUsername time.Duration

	// args is the command line as given, for the report.
	args []string
}

// The floors of docs/performance.md ("The floor"): the per-request work
// no gateway of ours can drop, each item priced by a go test benchmark.
// The floor contender spends them as pure CPU.
const (
	defaultFloorMe       = 940 * time.Nanosecond
	defaultFloorUsername = 1960 * time.Nanosecond
)

// Generators of the closed loop.
const (
	genAuto   = "auto"
	genWrk    = "wrk"
	genVegeta = "vegeta"
	genH2load = "h2load"
)

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{args: args}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench [flags]\n\n"+
			"Builds the gateway and the baselines, runs them on loopback pinned to one core,\n"+
			"measures every scenario in alternating rounds, and writes the report to -out.\n"+
			"See bench/README.md.\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nscenarios: %s\n", strings.Join(scenarioNames, ", "))
	}
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of one measured window (closed loop and open loop); wrk rounds it to whole seconds")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "closed-loop warm-up of each scenario before the rounds")
	fs.DurationVar(&o.prime, "prime", 500*time.Millisecond, "unmeasured lead-in of each open-loop window at the window's rate")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each round measures every scenario once, in rotating order")
	fs.IntVar(&o.pairs, "pairs", 8, "repetitions (A B B A windows) of each target's pair in the paired phase after the closed-loop rounds; 0: no paired phase")
	fs.DurationVar(&o.pairWindow, "pair-window", time.Second, "length of one window of the paired phase; wrk rounds it to whole seconds")
	fs.IntVar(&o.connections, "connections", 64, "closed-loop connections")
	fs.IntVar(&o.rate, "rate", 0, "open-loop rate (req/s) of every scenario except the p99 pair; 0: half of the scenario's own maximum")
	list := fs.String("scenarios", "all", "comma-separated scenario names to run, or all")
	fs.StringVar(&o.generator, "generator", genAuto, "closed-loop generator: auto (wrk when installed, else vegeta), wrk, vegeta")
	fs.IntVar(&o.p99Rounds, "p99-rounds", 9, "open-loop rounds of the p99 target's pair (gw-me-hit and bare-fiber), when more than -rounds")
	fs.StringVar(&o.openGenerator, "open-generator", genAuto, "open-loop generator: auto (h2load when installed, else vegeta), h2load, vegeta")
	fs.BoolVar(&o.pin, "pin", true, "pin servers and load generator to separate cores with taskset (when available)")
	fs.StringVar(&o.serverCPUs, "server-cpus", "0", "cores of every server under test (and the upstreams)")
	fs.StringVar(&o.loadCPUs, "load-cpus", "1", "cores of the load generator (this process and wrk)")
	fs.BoolVar(&o.nginx, "nginx", true, "run the nginx baselines when nginx is installed")
	fs.BoolVar(&o.store, "store", true, "run the real user store scenario (cmd/userstore behind a gateway)")
	fs.BoolVar(&o.memory, "memory", true, "run the memory phase (fill a fresh gateway with -memory-users profiles and tokens)")
	fs.IntVar(&o.memoryUsers, "memory-users", 100000, "distinct users (profiles and tokens) of the memory phase")
	fs.BoolVar(&o.appHeaders, "app-headers", false, "send an app's client context (X-Language, X-Timezone, X-Platform, X-App-Version, X-Device-Id; one fixed set) with every request of every scenario, baselines, probes and memory phase included; off by default, as in the kept runs")
	fs.StringVar(&o.out, "out", "bench/results", "folder of the reports (latest.md, latest.json and a timestamped copy)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (binaries, configs, logs) for inspection")
	fs.BoolVar(&o.symbols, "symbols", false, "build the servers with their symbol tables, for perf (bench/perfsplit.py)")
	fs.DurationVar(&o.floorMe, "floor-me", defaultFloorMe, "CPU the floor contender spends per /me (bare-fiber-floor): the /me cache hit's floor in docs/performance.md")
	fs.DurationVar(&o.floorUsername, "floor-username", defaultFloorUsername, "CPU the floor contender spends per username check (fiber-proxy-floor-username): the username check's floor in docs/performance.md")
	fs.BoolVar(&o.index, "index", false, "only rebuild index.md of the -out folder from its timestamped reports, and exit")
	fs.BoolVar(&o.verbose, "v", false, "print more of every window: core use, achieved rate, error samples")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var problems []string
	if o.duration < time.Second {
		problems = append(problems, "-duration must be at least 1s")
	}
	if o.pairs < 0 || o.pairs > 0 && o.pairWindow < time.Second {
		problems = append(problems, "-pairs must not be negative, and -pair-window must be at least 1s")
	}
	if o.warmup < 0 || o.prime < 0 {
		problems = append(problems, "-warmup and -prime must not be negative")
	}
	if o.rounds < 1 {
		problems = append(problems, "-rounds must be at least 1")
	}
	if o.p99Rounds < 0 {
		problems = append(problems, "-p99-rounds must not be negative")
	}
	if o.connections < 1 || o.connections > 10000 {
		problems = append(problems, "-connections must be 1 to 10000")
	}
	if o.rate < 0 {
		problems = append(problems, "-rate must not be negative")
	}
	if !slices.Contains([]string{genAuto, genWrk, genVegeta}, o.generator) {
		problems = append(problems, "-generator must be auto, wrk or vegeta")
	}
	if !slices.Contains([]string{genAuto, genH2load, genVegeta}, o.openGenerator) {
		problems = append(problems, "-open-generator must be auto, h2load or vegeta")
	}
	if o.floorMe < 0 || o.floorUsername < 0 {
		problems = append(problems, "-floor-me and -floor-username must not be negative")
	}
	if o.memoryUsers < 1 {
		problems = append(problems, "-memory-users must be at least 1")
	}
	if _, err := parseCPUList(o.serverCPUs); err != nil {
		problems = append(problems, "-server-cpus: "+err.Error())
	}
	if _, err := parseCPUList(o.loadCPUs); err != nil {
		problems = append(problems, "-load-cpus: "+err.Error())
	}
	if *list != "all" {
		for _, name := range strings.Split(*list, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(scenarioNames, name) {
				problems = append(problems, fmt.Sprintf("-scenarios: unknown scenario %q", name))
				continue
			}
			o.scenarios = append(o.scenarios, name)
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return o, nil
}

// wants reports whether the scenario was selected.
func (o *options) wants(name string) bool {
	return len(o.scenarios) == 0 || slices.Contains(o.scenarios, name)
}
