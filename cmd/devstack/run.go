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
	"strings"
	"sync"
	"time"

	"github.com/bffgate/edge/cmd/internal/signals"
	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/daemon"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
)

// environ is the process's environment, for the check of its GATEWAY_
// variables (main's getenv reads the same).
var environ = os.Environ

// devstackSets are the GATEWAY_ variables devstack's flags decide, and the
// flag that does each.
var devstackSets = []struct{ name, flag string }{
	{config.EnvConfigPath, "-config"},
	{"GATEWAY_SERVER__LISTEN", "-gateway"},
	{"GATEWAY_OPS__LISTEN", "-ops"},
	{"GATEWAY_AUTH__JWKSURLS", "-idp"},
	{"GATEWAY_AUTH__ISSUER", "-idp"},
	{"GATEWAY_UPSTREAMS__USERSTORE__BASEURL", "-store"},
}

// run is the whole stack; main passes net.Listen as listenGateway, which
// opens the gateway's two listeners (daemon.Options.Listen), and a test
// one whose listener it can make fail while the stack runs.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer,
	listenGateway func(network, address string) (net.Listener, error)) error {
	ctx, hurry, release := signals.Watch(ctx)
	defer release()

	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath = fs.String("config", "config.yaml", "gateway configuration")
		gatewayAt  = fs.String("gateway", "127.0.0.1:8080", "gateway listen address")
		opsAt      = fs.String("ops", "127.0.0.1:9090", "gateway ops listen address")
		idpAt      = fs.String("idp", "127.0.0.1:8081", "identity provider listen address")
		storeAt    = fs.String("store", "127.0.0.1:8082", "user store listen address")
		users      = fs.Int("users", refstore.DefaultUsers, "users to seed")
		data       = fs.String("data", "", "SQLite file of the user store (default: a temporary one)")
		tokenTTL   = fs.Duration("token-ttl", time.Hour, "lifetime of the printed tokens")
	)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h: the usage is the answer
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q (devstack takes only flags; -h lists them)", fs.Args())
	}
	// A misspelt GATEWAY_ variable is refused, as the gateway binary
	// refuses it: the gateway here reads the environment too (getenv), and
	// a setting that silently does nothing would be tried in vain.
	if err := config.UnknownEnv(environ()); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	// So is one devstack sets itself (overrides below), and GATEWAY_CONFIG,
	// which the gateway binary reads for -config: each would do nothing.
	// Blank is unset, as for the gateway.
	for _, v := range devstackSets {
		if strings.TrimSpace(getenv(v.name)) != "" {
			return fmt.Errorf("environment: %s is set, but devstack sets it itself (use %s)", v.name, v.flag)
		}
	}
	if *tokenTTL <= 0 {
		// Tokens minted already expired: every command of the banner
		// would answer 401.
		return fmt.Errorf("-token-ttl must be positive, got %v", *tokenTTL)
	}

	// Everything that can refuse to start is checked before the user store
	// is seeded, so a second devstack or a port held by something else
	// fails at once and names the flag that moves it. The gateway's two
	// listeners are opened by daemon.Run; trying them here is a moment
	// early, which is good enough on a developer's machine.
	if _, err := os.Stat(*configPath); err != nil {
		return fmt.Errorf("-config: %w (run from the repository root, or pass -config)", err)
	}
	storeLn, err := listen("-store", *storeAt)
	if err != nil {
		return err
	}
	defer storeLn.Close()
	idpLn, err := listen("-idp", *idpAt)
	if err != nil {
		return err
	}
	defer idpLn.Close()
	// Both held until both are tried: -ops on -gateway's address is taken
	// by the gateway's own listener, and refused here as any taken port.
	gatewayLn, err := listen("-gateway", *gatewayAt)
	if err != nil {
		return err
	}
	opsLn, err := listen("-ops", *opsAt)
	gatewayLn.Close()
	if err != nil {
		return err
	}
	opsLn.Close()

	store, err := refstore.Open(ctx, refstore.Options{Path: *data, Users: *users})
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while seeding; Open removed its temporary database
		}
		return fmt.Errorf("user store: %w", err)
	}
	defer store.Close()
	issuer := "http://" + idpLn.Addr().String()
	idp, err := devidp.New(devidp.Options{Issuer: issuer, Audience: "edge-gateway"})
	if err != nil {
		return err
	}

	servers := []*http.Server{
		{Handler: store.Handler(refstore.HandlerOptions{}), ReadHeaderTimeout: 5 * time.Second},
		{Handler: idp.Handler(), ReadHeaderTimeout: 5 * time.Second},
	}
	var wg sync.WaitGroup
	var handlers []func()
	for i, ln := range []net.Listener{storeLn, idpLn} {
		handlers = append(handlers, signals.TrackConns(servers[i]))
		wg.Add(1)
		go func(s *http.Server, ln net.Listener) {
			defer wg.Done()
			_ = s.Serve(ln)
		}(servers[i], ln)
	}
	defer func() {
		for _, s := range servers {
			sctx, cancel := context.WithTimeout(hurry, 2*time.Second)
			if s.Shutdown(sctx) != nil {
				_ = s.Close() // cut what still runs before the store closes under it
			}
			cancel()
		}
		wg.Wait()
		// Close does not wait for the handlers it cut: the store's
		// database is closed and removed only once they have returned.
		for _, wait := range handlers {
			wait()
		}
	}()

	// The repository's config.yaml, pointed at the services just started.
	overrides := map[string]string{
		"GATEWAY_SERVER__LISTEN":                *gatewayAt,
		"GATEWAY_OPS__LISTEN":                   *opsAt,
		"GATEWAY_AUTH__JWKSURLS":                issuer + "/.well-known/jwks.json",
		"GATEWAY_AUTH__ISSUER":                  issuer,
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": "http://" + storeLn.Addr().String(),
	}
	env := func(k string) string {
		if v, ok := overrides[k]; ok {
			return v
		}
		return getenv(k)
	}
	// The banner waits for the gateway to be ready, until the gateway
	// stops; run returns only once it is done.
	bannerCtx, stopBanner := context.WithCancel(ctx)
	var banner sync.WaitGroup
	// A second Ctrl-C cuts the gateway's drain short: it closes its
	// listeners and connections at once, and returns ErrCutShort as soon
	// as its handlers have.
	err = daemon.Run(ctx, daemon.Options{
		ConfigPath: *configPath,
		Getenv:     env,
		Stdout:     stderr, // logs; the banner goes to stdout
		CutShort:   hurry.Done(),
		Listen:     listenGateway,
		OnListening: func(public, ops net.Addr) {
			// The gateway listens before its first key fetch ends; the
			// banner's commands would get 503 until then.
			banner.Go(func() {
				ready := awaitReady(bannerCtx, ops)
				if bannerCtx.Err() != nil {
					return
				}
				if !ready {
					fmt.Fprintln(stderr, "devstack: the gateway is not ready (see its log above); the commands below may answer 503")
				}
				printBanner(stdout, idp, public, ops, storeLn.Addr(), issuer, *tokenTTL)
			})
		},
	})
	stopBanner()
	banner.Wait()
	// Only a cut the gateway made says so: a second Ctrl-C that came once
	// its drain was over cut none of it, and the exit status is the run's,
	// as the gateway binary's is. A listener's failure that ended the run
	// before the cut is said first: it is why the gateway stopped.
	if errors.Is(err, daemon.ErrCutShort) {
		return errors.Join(withoutCut(err), fmt.Errorf("%w: exiting without finishing the drain", context.Cause(hurry)))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// withoutCut is a run's error that holds daemon.ErrCutShort without it:
// the listener's failure joined to it, nil if there was none.
func withoutCut(err error) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil
	}
	var rest []error
	for _, e := range joined.Unwrap() {
		if !errors.Is(e, daemon.ErrCutShort) {
			rest = append(rest, e)
		}
	}
	return errors.Join(rest...)
}

// awaitReady polls the ops listener's /readyz until it answers 200, for at
// most 15 s or until ctx ends, and reports whether it did.
func awaitReady(ctx context.Context, ops net.Addr) bool {
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	c := &http.Client{Timeout: time.Second, Transport: transport}
	deadline := time.Now().Add(15 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ops.String()+"/readyz", nil)
		if err != nil {
			return false
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// listen opens addr for the part of the stack that flag places.
func listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is another devstack running? choose another address with %s)", flag, addr, err, flag)
	}
	return ln, nil
}

func printBanner(w io.Writer, idp *devidp.Provider, public, ops, store net.Addr, issuer string, ttl time.Duration) {
	mint := func(sub string, roles ...string) string {
		tok, err := idp.Mint(devidp.MintClaims{Subject: sub, Roles: roles, ExpiresAt: time.Now().Add(ttl)})
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return tok
	}
	user := mint(refstore.DemoUserID, "user")
	admin := mint(refstore.DemoAdminID, "user", "admin")
	base := "http://" + public.String()
	var b strings.Builder
	fmt.Fprintf(&b, "\nedge gateway development stack is up\n\n")
	fmt.Fprintf(&b, "  gateway            %s\n", base)
	if ops != nil {
		fmt.Fprintf(&b, "  ops                http://%s  (/healthz /readyz /metrics)\n", ops)
	}
	fmt.Fprintf(&b, "  identity provider  %s  (JWKS at /.well-known/jwks.json)\n", issuer)
	fmt.Fprintf(&b, "  user store         http://%s\n\n", store)
	fmt.Fprintf(&b, "Tokens (valid %s): demo user %s (%s), admin %s\n\n", ttl, refstore.DemoUsername, refstore.DemoUserID, refstore.DemoAdminUsername)
	fmt.Fprintf(&b, "  export USER_TOKEN='%s'\n", user)
	fmt.Fprintf(&b, "  export ADMIN_TOKEN='%s'\n\n", admin)
	fmt.Fprintf(&b, "Try:\n")
	fmt.Fprintf(&b, "  curl -s %s/api/v1/users/me -H \"Authorization: Bearer $USER_TOKEN\" -H 'X-Language: tr'\n", base)
	fmt.Fprintf(&b, "  curl -s '%s/api/v2/users/search?query=sukru&limit=5' -H \"Authorization: $USER_TOKEN\" -H 'X-Platform: mobile_ios'\n", base)
	fmt.Fprintf(&b, "  curl -s -X POST %s/api/v1/users/check-username -H \"Authorization: Bearer $USER_TOKEN\" -H 'Content-Type: application/json' -d '{\"username\":\"johndoe123\"}'\n", base)
	fmt.Fprintf(&b, "  curl -s '%s/api/admin/v1/users/search?query=ay' -H \"Authorization: Bearer $ADMIN_TOKEN\" -H 'X-Platform: admin'\n", base)
	fmt.Fprintf(&b, "  curl -s %s/api/admin/v1/users/%s -H \"Authorization: Bearer $ADMIN_TOKEN\" -H 'X-Platform: admin'\n\n", base, refstore.DemoUserID)
	fmt.Fprintf(&b, "Ctrl-C stops everything.\n")
	_, _ = io.WriteString(w, b.String())
}
