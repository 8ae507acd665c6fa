// Command devidp runs the development identity provider: a JWKS endpoint
// with real RSA and EC keys and a token endpoint, so the gateway can be run
// locally without a real identity provider. Never deploy it: POST /token
// hands a signed token to anyone who asks.
//
//	devidp [-listen 127.0.0.1:8081] [-issuer URL] [-audience edge-gateway] [-token-ttl 1h]
//
// The issuer defaults to http://<bound address> (so http://127.0.0.1:8081
// with the default listen address); point the gateway's auth.issuer at the
// same value and auth.jwksURLs at <issuer>/.well-known/jwks.json. Flags may
// also be given as DEVIDP_LISTEN, DEVIDP_ISSUER and DEVIDP_AUDIENCE.
//
// It logs JSON lines to stdout: {"msg":"listening","addr":"…"} once bound,
// then one {"msg":"token",…} line per ready-made token (a demo user and an
// admin).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devidp:", err)
		os.Exit(1)
	}
}

// The ready-made identities printed at start.
var readyTokens = []struct {
	name  string
	sub   string
	roles []string
}{
	{"demo", "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11", []string{"user"}},
	{"admin", "a0a0a0a0-0000-4000-8000-000000000001", []string{"user", "admin"}},
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", envOr(getenv, "DEVIDP_LISTEN", "127.0.0.1:8081"), "address to listen on (:0 picks a free port)")
	issuer := fs.String("issuer", getenv("DEVIDP_ISSUER"), "iss of minted tokens (default http://<bound address>)")
	audience := fs.String("audience", envOr(getenv, "DEVIDP_AUDIENCE", "edge-gateway"), "aud of minted tokens")
	tokenTTL := fs.Duration("token-ttl", time.Hour, "lifetime of the ready-made tokens")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h printed the flags
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *tokenTTL <= 0 {
		return errors.New("-token-ttl must be positive")
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if *issuer == "" {
		*issuer = "http://" + reachable(ln.Addr())
	}
	idp, err := devidp.New(devidp.Options{Issuer: *issuer, Audience: *audience})
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           idp.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	log.Info("listening", "addr", addr, "issuer", *issuer, "audience", *audience,
		"jwks", *issuer+"/.well-known/jwks.json")
	now := time.Now()
	for _, rt := range readyTokens {
		token, err := idp.Mint(devidp.MintClaims{Subject: rt.sub, Roles: rt.roles, IssuedAt: now, ExpiresAt: now.Add(*tokenTTL)})
		if err != nil {
			_ = srv.Close()
			return err
		}
		log.Info("token", "name", rt.name, "sub", rt.sub, "roles", rt.roles,
			"expires", now.Add(*tokenTTL).UTC().Format(time.RFC3339), "token", token)
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// reachable turns a bound address into one a client can dial: an
// unspecified host (":8081", "[::]:8081") becomes 127.0.0.1.
func reachable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
