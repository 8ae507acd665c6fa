package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Fairness on a small machine: every server under test runs on the server
// cores (one core by default) with GOMAXPROCS 1 or worker_processes 1, and
// the load generator runs on the other cores, so each contender gets the
// same single core and never fights the generator for it.

// pinning says how processes are placed.
type pinning struct {
	Enabled    bool
	ServerCPUs string
	LoadCPUs   string
	// Why pinning is off, when it is.
	Reason string
}

// choosePinning decides whether pinning is possible: taskset installed,
// the cores present, and the two sets disjoint.
func choosePinning(o *options) pinning {
	p := pinning{ServerCPUs: o.serverCPUs, LoadCPUs: o.loadCPUs}
	server, _ := parseCPUList(o.serverCPUs)
	load, _ := parseCPUList(o.loadCPUs)
	switch {
	case !o.pin:
		p.Reason = "turned off (-pin=false)"
	case !haveTaskset():
		p.Reason = "taskset is not installed (Debian: apt-get install -y util-linux)"
	case maxOf(server) >= runtime.NumCPU() || maxOf(load) >= runtime.NumCPU():
		p.Reason = fmt.Sprintf("this machine has %d core(s); -server-cpus %s -load-cpus %s do not exist", runtime.NumCPU(), o.serverCPUs, o.loadCPUs)
	case overlaps(server, load):
		p.Reason = "-server-cpus and -load-cpus overlap"
	default:
		p.Enabled = true
	}
	return p
}

func haveTaskset() bool {
	_, err := exec.LookPath("taskset")
	return err == nil
}

// command wraps a server's command line in taskset when pinning is on.
func (p pinning) command(bin string, args ...string) *exec.Cmd {
	if !p.Enabled {
		return exec.Command(bin, args...)
	}
	return exec.Command("taskset", append([]string{"-c", p.ServerCPUs, bin}, args...)...)
}

// loadCommand is command for the load generator (wrk).
func (p pinning) loadCommand(bin string, args ...string) *exec.Cmd {
	if !p.Enabled {
		return exec.Command(bin, args...)
	}
	return exec.Command("taskset", append([]string{"-c", p.LoadCPUs, bin}, args...)...)
}

// pinSelf moves every thread of this process (the in-process vegeta
// generator and the identity provider) onto the load cores. Threads the
// runtime starts later inherit the mask from the thread that creates them.
func (p pinning) pinSelf() error {
	if !p.Enabled {
		return nil
	}
	cpus, err := parseCPUList(p.LoadCPUs)
	if err != nil {
		return err
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pinning thread %d: %w", tid, err)
		}
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// parseCPUList reads taskset's list form: "1", "0,2", "0-3".
func parseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q is not a core list such as 1, 0,2 or 0-3", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a core list such as 1, 0,2 or 0-3", s)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

func maxOf(xs []int) int {
	m := -1
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func overlaps(a, b []int) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// isRoot is whether nginx must be told to run its worker as root (its
// default user, nobody, could not read the work folder).
func isRoot() bool { return os.Geteuid() == 0 }
