package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine is what the numbers ran on.
type machine struct {
	CPUModel     string `json:"cpuModel"`
	Cores        int    `json:"cores"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"goVersion"`
	Nginx        string `json:"nginx,omitempty"`
	Wrk          string `json:"wrk,omitempty"`
	Taskset      bool   `json:"taskset"`
	LoadAvgStart string `json:"loadAverageStart"`
	LoadAvgEnd   string `json:"loadAverageEnd"`
	// Commit is the repository's HEAD, "+ local changes" when the work
	// tree (outside bench/results) differs from it.
	Commit string `json:"commit"`
}

func describeMachine(ctx context.Context, root string) machine {
	m := machine{
		CPUModel:     cpuModel(),
		Cores:        runtime.NumCPU(),
		Kernel:       strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		GoVersion:    runtime.Version(),
		Taskset:      haveTaskset(),
		LoadAvgStart: loadAverage(),
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		m.Nginx = nginxVersion(p)
	}
	m.Wrk = wrkVersion()
	m.Commit = gitCommit(ctx, root)
	return m
}

func cpuModel() string {
	for _, line := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return runtime.GOARCH
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// wrkVersion is wrk's first line of -v, "" when wrk is not installed.
func wrkVersion() string {
	p, err := exec.LookPath("wrk")
	if err != nil {
		return ""
	}
	out, _ := exec.Command(p, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "installed (version unknown)"
	}
	if i := strings.Index(line, " Copyright"); i > 0 {
		line = line[:i]
	}
	return line
}

func gitCommit(ctx context.Context, root string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	head, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	out := strings.TrimSpace(string(head))
	// The committed reports themselves do not count: every run rewrites
	// latest.*, which would mark the next run as built from local changes.
	status, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no",
		"--", ".", ":(exclude)bench/results").Output()
	if err == nil && len(strings.TrimSpace(string(status))) > 0 {
		out += " + local changes"
	}
	return out
}

// binaries are the programs the harness builds.
type binaries struct {
	gateway, userstore, staticstore, barefiber string
}

// build compiles the binaries the way production does (Dockerfile, e2e):
// static, no cgo, trimmed paths; stripped unless symbols is set (perf needs
// the symbol table to name Go functions).
func build(ctx context.Context, root, dir string, symbols bool) (binaries, error) {
	ldflags := "-s -w -X github.com/bffgate/edge/gateway/daemon.Version=bench"
	if symbols {
		ldflags = strings.TrimPrefix(ldflags, "-s -w ")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags,
		"-o", dir+string(os.PathSeparator),
		"./cmd/gateway", "./cmd/userstore", "./bench/staticstore", "./bench/barefiber")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("building the binaries: %v\n%s", err, out)
	}
	return binaries{
		gateway:     filepath.Join(dir, "gateway"),
		userstore:   filepath.Join(dir, "userstore"),
		staticstore: filepath.Join(dir, "staticstore"),
		barefiber:   filepath.Join(dir, "barefiber"),
	}, nil
}

// repoRoot finds the repository from the working directory: the nearest
// folder up whose go.mod is this module's.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/bffgate/edge\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run it inside the repository (no go.mod of github.com/bffgate/edge above %s)", dir)
		}
		dir = parent
	}
}
