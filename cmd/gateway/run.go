package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/daemon"
	"go.yaml.in/yaml/v3"
)

// run is the whole binary; main only gives it the process's context,
// arguments, environment ("NAME=value", as os.Environ lists it) and
// outputs, so tests can run it in-process.
func run(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	getenv := getenvOf(environ)
	if len(args) > 1 {
		switch args[1] {
		case "validate":
			if err := config.UnknownEnv(environ); err != nil {
				fmt.Fprintf(stdout, "environment: %v\n", err)
				return errInvalid
			}
			return validate(args[2:], getenv, stdout, stderr)
		case "healthcheck":
			return healthcheck(ctx, args[2:], getenv, stdout, stderr)
		case "version":
			// A flag set with no flags: -h prints the usage (exit 0), as
			// after every other command.
			fs := flag.NewFlagSet("gateway version", flag.ContinueOnError)
			fs.SetOutput(stderr)
			if err := fs.Parse(args[2:]); err != nil {
				return parseError(err)
			}
			if err := noArgs(fs); err != nil {
				return err
			}
			fmt.Fprintln(stdout, daemon.Version)
			return nil
		case "serve":
			args = append(args[:1:1], args[2:]...)
		}
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The binary's help names the subcommands, which no flag list shows.
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	path := fs.String("config", defaultConfigPath(getenv), "configuration file (env "+config.EnvConfigPath+")")
	if err := fs.Parse(args[1:]); err != nil {
		return parseError(err)
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := config.UnknownEnv(environ); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	return daemon.Run(ctx, daemon.Options{
		ConfigPath:   *path,
		Getenv:       getenv,
		Stdout:       stdout,
		WatchSignals: true,
		OnStopped:    onStopped,
		OnLogs:       onLogs,
	})
}

// usage is gateway -h's, before the flags of serve (as the package doc).
const usage = `Usage:
  gateway [serve] [-config FILE]                  run the gateway
  gateway validate -config FILE [-diff RUNNING]   check a file; with -diff, what would change
  gateway healthcheck [-config FILE]              ask the ops listener's /healthz
  gateway version                                 print the version

-h after a command prints its flags. Flags of serve:
`

// onStopped is told when the drain is over (daemon.Options.OnStopped);
// main sets it, tests leave it nil.
var onStopped func(err error)

// onLogs is given the run's log queue and its flush (daemon.Options.OnLogs);
// main sets it, tests leave it nil.
var onLogs func(out io.Writer, flush func())

// getenvOf looks names up in environ as os.Getenv does in the process's
// environment: the first entry of a name wins.
func getenvOf(environ []string) func(string) string {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if name, value, ok := strings.Cut(kv, "="); ok {
			if _, seen := vars[name]; !seen {
				vars[name] = value
			}
		}
	}
	return func(name string) string { return vars[name] }
}

// parseError is a flag set's parse error as run returns it: -h printed
// the usage it asked for, which is no failure (exit 0).
func parseError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// noArgs refuses words left after the flags: a mistyped subcommand
// ("healtcheck") or one after a flag ("-config x.yaml validate") would
// otherwise start a gateway, or check nothing.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return unknownArg(fs.Name(), fs.Arg(0))
	}
	return nil
}

func unknownArg(cmd, arg string) error {
	return fmt.Errorf("%s: unknown argument %q (subcommands: serve, validate, healthcheck, version; they come first)", cmd, arg)
}

func defaultConfigPath(getenv func(string) string) string {
	if p := getenv(config.EnvConfigPath); p != "" {
		return p
	}
	return "config.yaml"
}

// errInvalid makes the exit status non-zero after validate printed the
// problems itself.
var errInvalid = errors.New("configuration is not valid")

// validate checks a file as the gateway would load it (environment
// overrides included) and, with -diff, lists what would change against the
// running file, marking what needs a restart.
func validate(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfigPath(getenv), "configuration file to check")
	old := fs.String("diff", "", "running configuration file to compare against")
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, _, err := daemon.Load(*path, getenv)
	if err != nil {
		fmt.Fprintf(stdout, "%s: %v\n", *path, err)
		return errInvalid
	}
	fmt.Fprintf(stdout, "%s: valid\n", *path)
	if *old == "" {
		return nil
	}
	running, _, err := daemon.Load(*old, getenv)
	if err != nil {
		fmt.Fprintf(stdout, "%s (the running file): %v\n", *old, err)
		return errInvalid
	}
	if err := daemon.CheckReload(running, cfg); err != nil {
		// Valid on its own, but the running gateway would reject it.
		fmt.Fprintf(stdout, "a reload from %s would be rejected: %v\n", *old, err)
		return errInvalid
	}
	changes := config.Diff(running, cfg)
	if len(changes) == 0 {
		fmt.Fprintln(stdout, "no changes")
		return nil
	}
	restart := 0
	fmt.Fprintf(stdout, "%d change(s) against %s:\n", len(changes), *old)
	for _, c := range changes {
		fmt.Fprintf(stdout, "  %s\n", c)
		if c.Restart {
			restart++
		}
	}
	if restart > 0 {
		fmt.Fprintf(stdout, "%d change(s) need a restart; the rest apply on reload (SIGHUP or file change)\n", restart)
	}
	return nil
}

// healthcheck asks the ops listener's /healthz, for container
// HEALTHCHECKs in images that have no curl. The address comes from the
// configuration (an unspecified host means this machine).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfigPath(getenv), "configuration file")
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	listen, err := opsListen(*path, getenv)
	if err != nil {
		return err
	}
	if listen == "" {
		return errors.New("healthcheck: ops.listen is empty")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: status %d", resp.StatusCode)
	}
	fmt.Fprintln(stdout, "healthy")
	return nil
}

// opsListen is ops.listen as the file and the environment say, read alone.
// The whole file is not validated: a gateway whose reload rejected the file
// keeps serving on its running configuration, and must not look dead
// because the file on disk (or a secret the probe's environment lacks) is
// wrong.
func opsListen(path string, getenv func(string) string) (string, error) {
	if v := strings.TrimSpace(getenv(config.EnvPrefix + "OPS__LISTEN")); v != "" {
		return v, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("healthcheck: %s: %w", path, err)
	}
	// Only ops (and merges, which may bring it) is decoded, and of ops
	// only listen: yaml refuses a whole mapping with a key written twice,
	// so a second log: section, or a second ops.pprof, would fail the
	// probe too.
	keep := func(m *yaml.Node, names ...string) {
		if m.Kind != yaml.MappingNode {
			return
		}
		var kept []*yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			if k := m.Content[i].Value; k == "<<" || slices.Contains(names, k) {
				kept = append(kept, m.Content[i], m.Content[i+1])
			}
		}
		m.Content = kept
	}
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		m := doc.Content[0]
		keep(m, "ops")
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "ops" {
				keep(m.Content[i+1], "listen")
			}
		}
	}
	var f struct {
		Ops struct {
			Listen *string `yaml:"listen"`
		} `yaml:"ops"`
	}
	if doc.Kind != 0 {
		if err := doc.Decode(&f); err != nil {
			return "", fmt.Errorf("healthcheck: %s: %w", path, err)
		}
	}
	if f.Ops.Listen == nil {
		return config.Default().Ops.Listen, nil
	}
	return *f.Ops.Listen, nil
}
