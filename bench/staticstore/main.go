// Command staticstore is the benchmark's upstream: a fast, static server
// that speaks the user-store contract (docs/userstore.openapi.yaml) with
// answers the gateway's strict client accepts, so that a benchmark of a
// proxied path measures the proxy (the gateway, nginx) and not SQLite.
// The real user store (cmd/userstore) is benchmarked as a separate,
// labelled scenario.
//
//	staticstore [-listen 127.0.0.1:0]
//
// It prints one JSON line {"msg":"listening","addr":"…"} on stdout once it
// accepts connections, and stops on SIGINT or SIGTERM. See Store for the
// data it serves.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("staticstore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	store, err := NewStore()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := NewServer(store)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	line, _ := json.Marshal(map[string]string{"msg": "listening", "addr": ln.Addr().String()})
	fmt.Fprintf(stdout, "%s\n", line)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return srv.ShutdownWithContext(sctx)
}

// NewServer is the fasthttp server of a Store: keep-alive without a limit
// on requests per connection (as a real upstream behind a pooled client),
// no Server header.
func NewServer(s *Store) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               s.Handle,
		Name:                  "staticstore",
		NoDefaultServerHeader: true,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           5 * time.Minute,
		MaxRequestBodySize:    64 << 10,
	}
}
