// Package daemon assembles the gateway process from its configuration: it
// builds every component, opens the public and ops listeners, reloads the
// configuration on SIGHUP and on file change, and shuts down gracefully.
// cmd/gateway and the development stack both run it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway"
	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/gateway/telemetry"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/fsnotify/fsnotify"
)

// Version is stamped at build time (-ldflags "-X …daemon.Version=…").
var Version = "dev"

// Options configure one run.
type Options struct {
	ConfigPath string
	Getenv     func(string) string
	// Logs go to Stdout as JSON lines.
	Stdout io.Writer
	// OnListening, when set, is told the bound addresses once both
	// listeners accept (tests and the development stack use it).
	OnListening func(public, ops net.Addr)
	// WatchSignals turns on SIGHUP reloads (the binary; not tests).
	WatchSignals bool
	// Listen opens the public and the ops listener (nil: net.Listen).
	// Tests use it to make a listener fail while the gateway runs.
	Listen func(network, address string) (net.Listener, error)
	// OnStopped, when set, is told that the drain is over, with what Run
	// will return, before the clean-up (flushing traces, closing the
	// clients) that can still take seconds. The binary uses it to tell a
	// second signal during the drain from one during the clean-up.
	OnStopped func(err error)
	// CutShort, when set, cuts the drain short when it closes: the
	// listeners and every connection are closed at once (gateway.Server's
	// CutShort), and Run returns ErrCutShort as soon as the public
	// listener's handlers still running have, without waiting out the
	// shutdown delay or the drain. The ops listener's are not waited for
	// (http.Server's Close does not, nor its Shutdown after it): they end
	// as their connections close (a CPU profile within a moment), and
	// what they use (the verifier, the store client's breakers, the
	// cache, the metrics registry) is safe to use once Run has closed
	// it. One that closes once the drain is over (OnStopped) cuts
	// nothing, and Run returns what it would have. The development stack
	// closes it on a second Ctrl-C; the binary exits instead.
	CutShort <-chan struct{}
	// OnLogs, when set, is given the run's log output (a queue: a write
	// never waits) and flush, which writes the lines its queues hold, the
	// access log's too, and stops them, waiting a second at most for
	// Stdout. The binary logs its second signal's line there and flushes
	// before it exits: os.Exit would lose what is queued (the access log
	// writes every 100 ms).
	OnLogs func(out io.Writer, flush func())
}

// ErrCutShort is what Run returns when its drain was cut short
// (Options.CutShort), joined to a listener's failure if there was one.
var ErrCutShort = errors.New("drain cut short")

// Load reads, overrides and validates a configuration and compiles its
// policies, reporting every problem at once.
func Load(path string, getenv func(string) string) (*config.Config, *policies.Set, error) {
	cfg, err := config.Load(path, getenv)
	if err != nil {
		return nil, nil, err
	}
	set, problems := policies.Compile(cfg.Policies, cfg.Auth)
	if len(problems) > 0 {
		return nil, nil, config.NameOverrides(problems, getenv)
	}
	return cfg, set, nil
}

// Run runs the gateway until ctx ends, then drains and returns nil. It
// returns an error when it cannot start, and when a listener fails while
// it runs: it then drains as when ctx ends and returns the error, which
// names the listener ("public listener: …", "ops listener: …"). A drain
// cut short (Options.CutShort) returns ErrCutShort.
func Run(ctx context.Context, o Options) error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Listen == nil {
		o.Listen = net.Listen
	}
	// SIGHUP is asked for before anything else and until Run returns: its
	// default action ends the process, so one that came while the gateway
	// starts, or while it drains after SIGTERM, would kill it there, with
	// requests in flight. One that comes before the watcher runs is kept
	// and reloads once it does (the file may have changed since it was
	// read).
	var hup chan os.Signal
	if o.WatchSignals {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	cfg, set, err := Load(o.ConfigPath, o.Getenv)
	if err != nil {
		return err
	}
	// Through a queue: a request, the accept loop or the shutdown must
	// not wait for a log pipeline that stopped taking lines.
	logOut := gateway.NewLogOutput(o.Stdout)
	defer logOut.Close()
	var served atomic.Pointer[gateway.Server] // its access log, once it has one
	if o.OnLogs != nil {
		o.OnLogs(logOut, func() {
			var wg sync.WaitGroup
			wg.Go(logOut.Close)
			if srv := served.Load(); srv != nil {
				wg.Go(srv.CloseAccessLog)
			}
			wg.Wait()
		})
	}
	logger, level := telemetry.NewLogger(logOut, cfg.Log.Level)
	metrics := telemetry.NewMetrics(Version)

	// Not the run's context: the exporter fails to start with a cancelled
	// one, and a stop that comes during start-up is a clean stop (below),
	// whether tracing is on or off.
	tracing, err := telemetry.NewTracing(context.WithoutCancel(ctx), cfg.Tracing, Version)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	if tracing.Enabled() {
		telemetry.LogTracingErrors(logger)
	}
	defer shutdownTracing(tracing, logger)

	verifier, err := auth.New(cfg.Auth, logger, metrics)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer verifier.Close()

	store, err := upstream.New(cfg.Upstreams.UserStore, logger, metrics)
	if err != nil {
		return fmt.Errorf("user store: %w", err)
	}
	defer store.Close()

	var cache *readcache.Cache
	if cfg.Cache.Enabled {
		cache = readcache.New(readcache.Options{
			MaxEntries:      cfg.Cache.MaxEntries,
			MaxBytes:        int64(cfg.Cache.MaxBytes),
			CleanupInterval: cfg.Cache.CleanupInterval,
			Partitions:      gateway.CachePartitions,
		}, metrics)
		// Closed without waiting for its loads: a store call ends only at
		// its attempt's deadline (fasthttp takes no context), an operation
		// timeout away, and one still running after the drain (a handler
		// the drain timeout left running, a background refresh) held the
		// clean-up past AfterDrain. A load that ends after Close stores
		// nothing.
		defer func() { go cache.Close() }()
	}
	limiter := policies.NewLimiter(policies.DefaultMaxKeys)
	metrics.SetSources(verifier, store, cache, limiter)

	srv, err := gateway.New(gateway.Deps{
		Config: cfg, Policies: set, Logger: logger, Auth: verifier, Store: store,
		Cache: cache, Limiter: limiter, Observer: metrics, Tracing: tracing,
		AccessLog: o.Stdout,
	})
	if err != nil {
		return err
	}
	served.Store(srv)
	metrics.SetOpenConnections(srv.OpenConnections)

	ln, err := o.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Server.Listen, err)
	}
	var (
		opsLn  net.Listener
		ops    *gateway.Ops
		opsSrv *http.Server
	)
	if cfg.Ops.Listen != "" {
		if opsLn, err = o.Listen("tcp", cfg.Ops.Listen); err != nil {
			ln.Close()
			return fmt.Errorf("listen %s: %w", cfg.Ops.Listen, err)
		}
		ops = gateway.NewOps(gateway.OpsDeps{
			Config: cfg, Auth: verifier, Store: store, Cache: cache,
			Metrics: metrics.Handler(), Loopback: config.IsLoopback(opsLn.Addr().String()),
		})
		// The header block is bounded as on the public listener: net/http's
		// default (1 MB) is read before any credential is asked.
		// OPTIONS * goes to ops too (Ops.ServeHTTP), not to net/http's
		// empty 200.
		opsSrv = &http.Server{Handler: ops, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
			MaxHeaderBytes: int(cfg.Server.HeaderLimit), ErrorLog: opsErrorLog(logger),
			DisableGeneralOptionsHandler: true}
		opsLn = gateway.OpsListener(opsLn, logger)
	}

	var wg sync.WaitGroup
	serveErr := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil {
			serveErr <- fmt.Errorf("public listener: %w", err)
		}
	}()
	if opsSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := opsSrv.Serve(opsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("ops listener: %w", err)
			}
		}()
	}
	var opsAddr net.Addr
	if opsLn != nil {
		opsAddr = opsLn.Addr()
	}
	logger.Info("listening", "addr", ln.Addr().String(), "ops", addrString(opsAddr), "version", Version)
	if o.OnListening != nil {
		o.OnListening(ln.Addr(), opsAddr)
	}

	r := &reloader{
		path: o.ConfigPath, getenv: o.Getenv, logger: logger, level: level, metrics: metrics,
		current: cfg, srv: srv, store: store, ops: ops,
	}
	// The watcher runs until Run returns, not until ctx ends: a reload
	// during the drain applies like any other (the drain's own settings
	// were read when it began).
	stopWatch := r.watch(hup)
	defer stopWatch()

	// A listener that fails ends the run as ctx would, with the same
	// drain, but its error is returned: the process must exit non-zero,
	// so that a supervisor restarts it and no one reads a clean stop.
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-serveErr:
		logger.Error("listener failed", "error", failed.Error())
	}

	// Shutdown: readiness turns false first, then (after the configured
	// delay, so load balancers notice) the listener stops accepting and
	// in-flight requests get the drain timeout to finish.
	cur := r.config()
	if ops != nil {
		ops.SetDraining()
	}
	logger.Info("shutting down", "shutdown_delay", cur.Server.ShutdownDelay.String(), "drain_timeout", cur.Server.DrainTimeout.String())
	var (
		cutOnce sync.Once
		cutMade bool // read once stopCutShort has returned
	)
	cut := func() {
		cutOnce.Do(func() {
			cutMade = true
			logger.Warn("drain cut short: closing every connection")
			srv.CutShort()
			if opsSrv != nil {
				_ = opsSrv.Close()
			}
		})
	}
	stopCutShort := cutShortOn(o.CutShort, cut)
	if d := cur.Server.ShutdownDelay; d > 0 {
		delay := time.NewTimer(d)
		select {
		case <-delay.C:
		case <-o.CutShort:
			delay.Stop()
		}
	}
	// A cut that came already is made here, not left to cutShortOn's
	// goroutine: the drain could start before it, find nothing open and
	// be reported as a full one, and the goroutine, stopped, might never
	// make it.
	select {
	case <-o.CutShort:
		cut()
	default:
	}
	drained := srv.Shutdown(cur.Server.DrainTimeout)
	if opsSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), opsCloseTimeout)
		_ = opsSrv.Shutdown(sctx)
		cancel()
	}
	wg.Wait()
	stopCutShort()
	// Whatever the cut ended, the drain or only the ops listener's close,
	// the stop is not reported as a full one, and Run says it was cut: a
	// caller that tells the user so (the development stack's exit status)
	// must not say it of a drain that finished. A cut that came too late
	// to be made, as the drain ended, changes nothing.
	if cutMade {
		drained = false
		failed = errors.Join(failed, ErrCutShort)
	}
	if o.OnStopped != nil {
		o.OnStopped(failed)
	}
	logger.Info("stopped", "drained", drained, "in_flight", srv.InFlight())
	return failed
}

// The clean-up after the drain: the ops listener's close, then the
// flush of the spans still buffered.
const (
	opsCloseTimeout     = 2 * time.Second
	tracingFlushTimeout = 3 * time.Second
)

// AfterDrain is the most the clean-up after the drain may take: a
// container's grace period must cover the shutdown delay, the drain and
// this. Beside the ops listener's close and the span flush, the access
// log's queue (closed as the drain ends) and the event log's (as Run
// returns) each wait for a log output that takes nothing.
const AfterDrain = opsCloseTimeout + tracingFlushTimeout + 2*gateway.LogCloseWait

// cutShortOn runs cut if cutShort closes before stop is called, and
// stop returns once it has run or will not. A nil cutShort never closes.
func cutShortOn(cutShort <-chan struct{}, cut func()) (stop func()) {
	if cutShort == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-cutShort:
			cut()
		case <-done:
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func shutdownTracing(t *telemetry.Tracing, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		logger.Warn("tracing shutdown", "error", err.Error())
	}
}

// reloader applies configuration changes while running.
type reloader struct {
	path    string
	getenv  func(string) string
	logger  *slog.Logger
	level   *slog.LevelVar
	metrics *telemetry.Metrics
	srv     *gateway.Server
	store   *upstream.Client
	ops     *gateway.Ops

	mu      sync.Mutex
	current *config.Config
}

func (r *reloader) config() *config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// CheckReload reports why a reload from running to next would be rejected
// beyond next's own validity (Load): the policies compiled with the
// running restart-only settings (auth.adminRole, say), and the user-store
// settings a client started with running takes (a gateway reloaded since
// it started keeps the pool wait of the file it started with, which may
// differ). nil: it would apply.
func CheckReload(running, next *config.Config) error {
	cfg := config.KeepRestartOnly(running, next)
	if _, problems := policies.Compile(cfg.Policies, cfg.Auth); len(problems) > 0 {
		return problems
	}
	return upstream.CheckReload(running.Upstreams.UserStore, cfg.Upstreams.UserStore)
}

// reload validates the file in full first; only a valid file replaces the
// running configuration, atomically. Settings that need a restart are
// reported and keep their running values.
func (r *reloader) reload(trigger string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next, _, err := Load(r.path, r.getenv)
	if err != nil {
		r.metrics.ConfigReload(err)
		r.logger.Error("config reload rejected; the running configuration stays", "trigger", trigger, "error", err.Error())
		return err
	}
	changes := config.Diff(r.current, next)
	// What needs a restart keeps its running value (and is reported), so
	// the running snapshot always says what the process really does.
	cfg := config.KeepRestartOnly(r.current, next)
	set, problems := policies.Compile(cfg.Policies, cfg.Auth)
	if len(problems) > 0 {
		r.metrics.ConfigReload(problems)
		r.logger.Error("config reload rejected; the running configuration stays", "trigger", trigger, "error", problems.Error())
		return problems
	}
	if len(changes) == 0 {
		r.logger.Info("config reload: no changes", "trigger", trigger)
		r.metrics.ConfigReload(nil)
		return nil
	}
	// Lists even when empty: a log query on needs_restart finds [], not null.
	applied, restart := []string{}, []string{}
	for _, c := range changes {
		if c.Restart {
			restart = append(restart, c.Path)
		} else {
			applied = append(applied, c.Path)
		}
	}
	// Everything that can refuse is asked before anything is applied: a
	// rejected reload changes nothing.
	if err := r.store.Check(cfg.Upstreams.UserStore); err != nil {
		r.metrics.ConfigReload(err)
		r.logger.Error("config reload rejected; the running configuration stays", "trigger", trigger, "error", err.Error())
		return err
	}
	if err := r.srv.Reload(cfg, set); err != nil {
		r.metrics.ConfigReload(err)
		r.logger.Error("config reload rejected; the running configuration stays", "trigger", trigger, "error", err.Error())
		return err
	}
	if err := r.store.Update(cfg.Upstreams.UserStore); err != nil {
		// Check said yes to the same settings: not expected.
		r.logger.Error("user store settings not applied", "error", err.Error())
	}
	if lv, err := telemetry.ParseLevel(cfg.Log.Level); err == nil {
		r.level.Set(lv)
	}
	if r.ops != nil {
		r.ops.SetConfig(cfg)
	}
	r.current = cfg
	r.metrics.ConfigReload(nil)
	r.logger.Info("config reloaded", "trigger", trigger, "applied", applied, "needs_restart", restart)
	return nil
}

// watch reloads on each signal of hup (nil: none) and when the config
// file changes, until stop. It watches the file's directory, so editors
// that replace the file and Kubernetes ConfigMap symlink swaps are both
// seen.
func (r *reloader) watch(hup <-chan os.Signal) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if hup != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					_ = r.reload("SIGHUP")
				}
			}
		}()
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(filepath.Dir(r.path))
	}
	if err != nil {
		r.logger.Warn("config file watch unavailable; reload with SIGHUP", "error", err.Error())
		if w != nil {
			w.Close()
		}
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			r.watchFile(ctx, w)
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

func (r *reloader) watchFile(ctx context.Context, w *fsnotify.Watcher) {
	name := filepath.Base(r.path)
	// Debounce: an editor's save is several events.
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			base := filepath.Base(ev.Name)
			if base != name && base != "..data" {
				continue
			}
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(150*time.Millisecond, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case <-fire:
			_ = r.reload("file change")
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			r.logger.Warn("config file watch error", "error", err.Error())
		}
	}
}

// opsErrorLog is the ops listener's log for net/http's own lines (a
// handler's panic, which it recovers): the gateway's log at WARN. Without
// it they are plain text on stderr, outside the JSON log.
func opsErrorLog(logger *slog.Logger) *log.Logger {
	l := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	l.SetPrefix("ops listener: ")
	return l
}
