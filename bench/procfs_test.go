package main

import (
	"math"
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis, as the kernel writes it.
	line := []byte("4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 123 4567 89 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n")
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := (cpuUse{user: 250 * clockTick, sys: 75 * clockTick}); got != want || got.total() != 325*clockTick {
		t.Errorf("cpu = %+v, want %+v", got, want)
	}
	ppid, err := parseStatPPID(line)
	if err != nil || ppid != 1 {
		t.Errorf("ppid = %d, %v; want 1", ppid, err)
	}
	for _, bad := range []string{"", "1 (x) S 1", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x y"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
}

// This process's own numbers are readable, and its CPU time moves as it
// works.
func TestCPUTimeOfSelf(t *testing.T) {
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for deadline := time.Now().Add(10 * time.Second); ; x++ {
		if x%100000 == 0 {
			now, err := cpuTime(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			if now-before >= 3*clockTick {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("10 s of spinning counted %s of CPU", now-before)
			}
		}
	}
	m, err := memoryOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSKiB <= 0 || m.HWMKiB < m.RSSKiB {
		t.Errorf("memory %+v", m)
	}
}

func TestParseStatus(t *testing.T) {
	m, err := parseStatus([]byte("Name:\tgateway\nVmPeak:\t  999 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSKiB != 10240 || m.HWMKiB != 20480 {
		t.Errorf("got %+v", m)
	}
	for _, bad := range []string{"VmRSS:\t1 kB\n", "VmRSS:\t1 MB\nVmHWM:\t1 kB\n", "VmRSS:\tx kB\nVmHWM:\t1 kB\n"} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q) accepted", bad)
		}
	}
}

type fixedGroup group

func (g fixedGroup) group() group { return group(g) }

// A snapshot counts processes present at both ends by difference, new ones
// whole, and fails only when the whole group is gone.
func TestSnapshotSince(t *testing.T) {
	sec := func(user, sys float64) cpuUse {
		return cpuUse{time.Duration(user * float64(time.Second)), time.Duration(sys * float64(time.Second))}
	}
	before := cpuSnapshot{1: sec(1, 0), 2: sec(1, 1), 3: sec(1, 0)}
	after := cpuSnapshot{1: sec(2, 1), 2: sec(1, 1), 4: sec(0.25, 0.25)}
	if got, want := after.since(before), sec(1.25, 1.25); got != want {
		t.Errorf("since = %+v, want %+v", got, want)
	}
	if _, err := snapshot(fixedGroup{1 << 30}); err == nil {
		t.Error("a group of only dead processes gave no error")
	}
	s, err := snapshot(fixedGroup{os.Getpid(), 1 << 30})
	if err != nil || len(s) != 1 {
		t.Errorf("snapshot of self and a dead pid = %v, %v", s, err)
	}
	if s, err := snapshot(nil); err != nil || len(s) != 0 {
		t.Errorf("snapshot(nil) = %v, %v", s, err)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"1": {1}, "0,2": {0, 2}, "0-3": {0, 1, 2, 3}, "1, 3-4": {1, 3, 4}} {
		got, err := parseCPUList(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", in, got, err, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("parseCPUList(%q) = %v, want %v", in, got, want)
			}
		}
	}
	for _, bad := range []string{"", "a", "3-1", "-1", "1,"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) accepted", bad)
		}
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	tl := newTail(8)
	for _, s := range []string{"abc", "defg", "hij", "k"} {
		_, _ = tl.Write([]byte(s))
	}
	if got := tl.String(); got != "defghijk" {
		t.Errorf("tail = %q", got)
	}
	_, _ = tl.Write([]byte("0123456789"))
	if got := tl.String(); got != "23456789" {
		t.Errorf("tail after a long write = %q", got)
	}
}

func TestParseCoresUser(t *testing.T) {
	stat := []byte("cpu  900 10 300 5000 0 0 7 0 0 0\n" +
		"cpu0 400 5 100 2500 0 0 5 0 0 0\n" +
		"cpu1 500 5 200 2500 0 0 2 0 0 0\n" +
		"intr 12345\n")
	got, err := parseCoresUser(stat, []int{0})
	if err != nil || got != 405*clockTick {
		t.Errorf("core 0 = %s, %v; want %s", got, err, 405*clockTick)
	}
	got, err = parseCoresUser(stat, []int{0, 1})
	if err != nil || got != 910*clockTick {
		t.Errorf("cores 0,1 = %s, %v", got, err)
	}
	if _, err := parseCoresUser(stat, []int{2}); err == nil {
		t.Error("a missing core accepted")
	}
	if _, err := coresUserTime([]int{0}); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}

// The share of the server core other processes took is the cores' user
// time beyond the measured processes' own.
func TestWindowCPU(t *testing.T) {
	before := cpuMark{contender: cpuSnapshot{1: {}}, upstream: cpuSnapshot{}, coresUser: 10 * time.Second, coresOK: true}
	after := cpuMark{contender: cpuSnapshot{1: {user: 3 * time.Second, sys: time.Second}}, upstream: cpuSnapshot{},
		coresUser: 14 * time.Second, coresOK: true}
	contender, _, other := windowCPU(before, after, 5*time.Second)
	if contender.total() != 4*time.Second || other != 0.2 {
		t.Errorf("contender %+v, other %v; want 4s and 0.2", contender, other)
	}
	after.coresOK = false
	if _, _, other := windowCPU(before, after, 5*time.Second); other != -1 {
		t.Errorf("unknown cores gave %v", other)
	}
}

// A core is busy for everything but idle and iowait: user, nice, system,
// irq, softirq and steal.
func TestParseCoresBusy(t *testing.T) {
	stat := []byte("cpu  900 10 300 5000 0 0 7 0 0 0\n" +
		"cpu0 400 5 100 2500 3 1 5 2 0 0\n" +
		"cpu1 500 5 200 2500 0 0 2 0 0 0\n")
	got, err := parseCoresBusy(stat, []int{0})
	if want := (400 + 5 + 100 + 1 + 5 + 2) * clockTick; err != nil || got != want {
		t.Errorf("core 0 busy = %s, %v; want %s", got, err, want)
	}
	if _, err := parseCoresBusy(stat, []int{2}); err == nil {
		t.Error("a missing core accepted")
	}
}

// The generator's core is as busy as the core was, not only as busy as the
// generator's own process: the harness drains the gateway's access log on
// that core too (~3 µs of it per request at the /me hit's rate), which wrk
// competes with but its own CPU time does not show.
func TestGeneratorBusy(t *testing.T) {
	start := time.Unix(1000, 0)
	before := cpuMark{loadBusy: 10 * time.Second, loadOK: true, at: start}
	after := cpuMark{loadBusy: 14*time.Second + 900*time.Millisecond, loadOK: true, at: start.Add(5 * time.Second)}
	// wrk alone: 4.05 s of 5 s (81 %); the core: 4.9 s of 5 s (98 %).
	if got := generatorBusy(4050*time.Millisecond, 5*time.Second, before, after, 1); got < 0.979 || got > 0.981 {
		t.Errorf("generator core busy = %.3f, want the core's 0.98", got)
	}
	// Unknown cores (not pinned): the generator's own time.
	after.loadOK = false
	if got := generatorBusy(4050*time.Millisecond, 5*time.Second, before, after, 1); got != 0.81 {
		t.Errorf("without the cores = %.3f, want 0.81", got)
	}
}

// The upstream on the server core is under test too: its user time is not
// another process's.
func TestWindowCPUCountsTheUpstreamAsOwn(t *testing.T) {
	before := cpuMark{contender: cpuSnapshot{1: {}}, upstream: cpuSnapshot{2: {}}, coresUser: 10 * time.Second, coresOK: true}
	after := cpuMark{contender: cpuSnapshot{1: {user: 3 * time.Second}}, upstream: cpuSnapshot{2: {user: time.Second}},
		coresUser: 14*time.Second + 500*time.Millisecond, coresOK: true}
	_, upstream, other := windowCPU(before, after, 5*time.Second)
	if upstream.total() != time.Second || math.Abs(other-0.1) > 1e-9 {
		t.Errorf("upstream %+v, other %v; want 1s and 0.1 (0.5 s of 5)", upstream, other)
	}
}
