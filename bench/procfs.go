package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What the harness reads from /proc about the processes it measures.

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (the kernel fixes it for
// user space whatever its internal HZ).
const clockTick = 10 * time.Millisecond

// cpuUse is CPU time split as the kernel reports it.
type cpuUse struct {
	user, sys time.Duration
}

func (c cpuUse) total() time.Duration { return c.user + c.sys }

// cpuUsage is the CPU time a process has used so far, all its threads
// included.
func cpuUsage(pid int) (cpuUse, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuUse{}, err
	}
	return parseStatCPU(b)
}

// cpuTime is cpuUsage's total, user + system.
func cpuTime(pid int) (time.Duration, error) {
	u, err := cpuUsage(pid)
	return u.total(), err
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (cpuUse, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuUse{}, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return cpuUse{}, errors.New("stat: too few fields")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return cpuUse{}, errors.New("stat: utime or stime is not a number")
	}
	return cpuUse{time.Duration(utime) * clockTick, time.Duration(stime) * clockTick}, nil
}

// coresUserTime is the user time (user + nice) the given cores have run,
// all processes together, from /proc/stat. Compared with the user time of
// the processes under test it shows how much of their core other
// processes took. (Kernel work on those cores, softirqs and ksoftirqd
// included, is system time and does not count as another process's.)
func coresUserTime(cpus []int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseCoresUser(b, cpus)
}

func parseCoresUser(b []byte, cpus []int) (time.Duration, error) {
	return sumCoreTimes(b, cpus, 1, 2) // user nice
}

// coresBusyTime is the time the given cores were not idle (user, nice,
// system, irq, softirq, steal; not idle or iowait), all processes and the
// kernel together, from /proc/stat.
func coresBusyTime(cpus []int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseCoresBusy(b, cpus)
}

func parseCoresBusy(b []byte, cpus []int) (time.Duration, error) {
	return sumCoreTimes(b, cpus, 1, 2, 3, 6, 7, 8) // user nice system (idle iowait) irq softirq steal
}

// sumCoreTimes adds up the given fields (1 is user) of the cores' lines of
// /proc/stat; every core must be there.
func sumCoreTimes(b []byte, cpus []int, fields ...int) (time.Duration, error) {
	want := map[string]bool{}
	for _, c := range cpus {
		want["cpu"+strconv.Itoa(c)] = true
	}
	var sum time.Duration
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) <= slices.Max(fields) || !want[f[0]] {
			continue
		}
		for _, i := range fields {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat: %q", line)
			}
			sum += time.Duration(n) * clockTick
		}
		found++
	}
	if found != len(want) {
		return 0, fmt.Errorf("/proc/stat: %d of the cores %v found", found, cpus)
	}
	return sum, nil
}

// parseStatPPID reads the parent pid (field 4) of a stat line.
func parseStatPPID(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("stat: too few fields")
	}
	return strconv.Atoi(f[1])
}

// memory is a process's resident set now and at its peak, in KiB.
type memory struct {
	RSSKiB, HWMKiB int64
}

func memoryOf(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(b)
}

// parseStatus reads VmRSS and VmHWM ("VmHWM:   12345 kB") of a
// /proc/<pid>/status file.
func parseStatus(b []byte) (memory, error) {
	var m memory
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("status: unexpected %s line %q", name, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("status: %s: %v", name, err)
		}
		if name == "VmRSS" {
			m.RSSKiB = n
		} else {
			m.HWMKiB = n
		}
		found++
	}
	if found != 2 {
		return m, errors.New("status: VmRSS or VmHWM missing")
	}
	return m, nil
}

// childrenOf lists the pids whose parent is pid (nginx's workers).
func childrenOf(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		if ppid, err := parseStatPPID(b); err == nil && ppid == pid {
			if child, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}

// group is the processes that together make one contender (nginx: master,
// worker and cache helpers), measured as a sum.
type group []int

// measured is something whose processes are measured: a server, or nginx
// whose helper processes come and go (the cache loader exits after a
// minute), so the group is read anew each time.
type measured interface {
	group() group
}

// cpuSnapshot is each process's CPU time at one moment.
type cpuSnapshot map[int]cpuUse

// snapshot reads the CPU time of every process of m; nil m gives an empty
// snapshot. It fails only when no process of the group can be read (the
// contender died).
func snapshot(m measured) (cpuSnapshot, error) {
	s := cpuSnapshot{}
	if m == nil {
		return s, nil
	}
	g := m.group()
	var lastErr error
	for _, pid := range g {
		t, err := cpuUsage(pid)
		if err != nil {
			lastErr = err // exited meanwhile
			continue
		}
		s[pid] = t
	}
	if len(s) == 0 && len(g) > 0 {
		return nil, lastErr
	}
	return s, nil
}

// since is the CPU time used between before and s: processes in both
// count their difference, processes new in s count whole (they started
// within the window), processes gone since before are lost (a helper that
// exited; its share is tiny).
func (s cpuSnapshot) since(before cpuSnapshot) cpuUse {
	var d cpuUse
	for pid, t := range s {
		d.user += t.user - before[pid].user
		d.sys += t.sys - before[pid].sys
	}
	return d
}

// memoryOfGroup sums the group's resident sets and peaks. A sum of peaks
// is an upper bound of the group's peak; for one process it is exact.
func memoryOfGroup(m measured) (memory, error) {
	var sum memory
	if m == nil {
		return sum, errors.New("no processes")
	}
	for _, pid := range m.group() {
		mm, err := memoryOf(pid)
		if err != nil {
			continue // a helper that exited
		}
		sum.RSSKiB += mm.RSSKiB
		sum.HWMKiB += mm.HWMKiB
	}
	return sum, nil
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
