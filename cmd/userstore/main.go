// Command userstore serves the reference user store (upstream/refstore):
// the backend behind the gateway in the dev stack and in load tests. It
// seeds a SQLite database on first start and serves the user-store contract
// (docs/userstore.openapi.yaml) over HTTP.
//
// Usage:
//
//	userstore [-listen 127.0.0.1:8082] [-data users.db] [-users 10000] [-seed 1] [-record]
//
// USERSTORE_SERVICE_TOKEN, when set, is the bearer token every call must
// carry (surrounding whitespace is ignored and a blank value means none, as
// the gateway reads its copy). Logs are JSON on stderr; once listening it prints one JSON line
// with the bound address on stdout ({"msg":"listening","addr":"…"}), so a
// script can start it on port 0 and read the port. SIGINT, SIGTERM or SIGHUP
// shut it down gracefully; a second one cuts the drain short (exit 1). The
// temporary database is removed either way, once the handlers have returned.
// A listener that fails on its own stops it the same way, with exit 1.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "userstore:", err)
		os.Exit(1)
	}
}
