package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bffgate/edge/cmd/internal/signals"
	"github.com/bffgate/edge/upstream/refstore"
)

// shutdownGrace bounds how long in-flight requests may finish after a
// signal.
const shutdownGrace = 10 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, hurry, release := signals.Watch(ctx)
	defer release()

	name := "userstore"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", "127.0.0.1:8082", "address to listen on (port 0 picks a free port)")
	data := flags.String("data", "", "SQLite database file (default: a new file in a temporary directory, removed on exit)")
	users := flags.Int("users", refstore.DefaultUsers, "number of users to seed an empty database with")
	seed := flags.Int64("seed", refstore.DefaultSeed, "seed of the generated data (same seed, same data)")
	record := flags.Bool("record", false, "record requests and serve /_debug/requests, /_debug/counts, /_debug/reset")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", flags.Args())
	}

	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	started := time.Now()
	store, err := refstore.Open(ctx, refstore.Options{Path: *data, Users: *users, Seed: *seed})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while seeding
		}
		return err
	}
	defer store.Close()
	logger.Info("store ready", "path", store.Path(), "took", time.Since(started).String())

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// Read like the gateway reads its copy (config.lookup): surrounding
	// whitespace, such as the newline of a secret mounted from a file, is
	// not part of the token, and a blank variable means none.
	token := strings.TrimSpace(getenv("USERSTORE_SERVICE_TOKEN"))
	srv := &http.Server{
		Handler: store.Handler(refstore.HandlerOptions{
			ServiceToken: token,
			Record:       *record,
			Logger:       logger,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	handlers := signals.TrackConns(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	addr := ln.Addr().String()
	line, _ := json.Marshal(struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}{"listening", addr})
	fmt.Fprintf(stdout, "%s\n", line)
	logger.Info("listening", "addr", addr, "serviceToken", token != "", "record", *record)

	// Serve that fails on its own (its listener lost) stops the store as a
	// signal does: the handlers still running finish, or are cut, before
	// the database is closed and removed; its error is returned.
	var failed error
	select {
	case err := <-served:
		failed = fmt.Errorf("serve: %w", err)
		logger.Error("serve failed", "error", err.Error())
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(hurry, shutdownGrace)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if err != nil {
		// Cut what still runs before the store closes under it.
		_ = srv.Close()
	}
	if failed == nil {
		<-served // Serve has returned ErrServerClosed
	}
	// Close does not wait for the handlers it cut: the store's database is
	// closed, and removed, only once they have returned.
	handlers()
	if failed != nil {
		return failed
	}
	if cause := context.Cause(hurry); err != nil && cause != nil {
		return fmt.Errorf("%w: exiting without finishing the drain", cause)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}
