package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
)

// stack is everything the benchmark runs on loopback.
type stack struct {
	opts *options
	pin  pinning
	root string
	work string
	bins binaries
	log  *progress

	idp *identity

	static    *server
	staticURL string

	// The gateways: the repository's config.yaml with the cache on, with
	// the cache off, and with the cache off in front of the real store.
	gwCache, gwNoCache, gwStore *gatewayProc

	bare    *server
	bareURL string
	// floor is the floor contender: bench/barefiber spending the floors'
	// CPU per request (-floor-me, -floor-username).
	floor    *server
	floorURL string

	nginx *nginxProc // nil when not run

	store    *server
	storeURL string

	// meToken is the bench user's token; storeToken the real store's demo
	// user's.
	meToken, storeToken string

	// envelope is the gateway's /me cache-hit answer, body and headers,
	// which the bare Fiber baseline and nginx's proxy_cache serve.
	envelope        []byte
	envelopeHeaders [][2]string

	// skipped says what was not run and why.
	skipped []string
}

// benchUserID is the /me user on the static upstream: its id ends in an
// even digit, so the static upstream reports a live stream for it and /me
// carries one, like a profile of a streaming user.
const benchUserID = "b0b0b0b0-0000-4000-8000-00000000be20"

// searchQuery is the search of the search scenarios: a page of 20 users
// (the static upstream ignores the text; the real store matches by prefix).
const searchQuery = "/api/v2/users/search?query=a&limit=20"

// storeSearchQuery is the real store's search: a name as the apps send it
// after the user typed it. A one-letter prefix ("a") matches a fifth of the
// seeded users, all of which SQLite ranks for the page, so at 64 connections
// it measures the store's overload (and the gateway's breaker shedding it)
// rather than the path.
const storeSearchQuery = "/api/v2/users/search?query=mehmet&limit=20"

// storeConnections is the closed loop of the real-store scenarios. SQLite
// on the shared core answers a few thousand /me and under a thousand
// searches a second; 64 connections queue ~100 ms deep in front of it, the
// slowest calls pass the operation timeouts and the breakers shed the rest,
// which measures overload, not the path. 16 keep the store busy without it.
const storeConnections = 16

// benchMemLimit is every gateway's GOMEMLIMIT here, sized for the memory
// target. deploy/kubernetes sets 440MiB: with GOGC=400 the heap grows
// towards the limit before it is collected, so the memory phase's RSS
// follows this limit more than the cached data (the memory verdict says
// so).
const benchMemLimit = "170MiB"

const usernameBody = `{"username":"johndoe123"}`

// start brings everything up, in dependency order.
func (st *stack) start(ctx context.Context) error {
	var err error
	if st.idp, err = startIdentity(); err != nil {
		return err
	}
	if st.meToken, err = st.idp.token(benchUserID, devidp.RS256); err != nil {
		return err
	}
	if st.storeToken, err = st.idp.token(refstore.DemoUserID, devidp.RS256); err != nil {
		return err
	}

	st.log.say("starting the static upstream")
	if st.static, st.staticURL, err = st.startListener(ctx, "staticstore", st.bins.staticstore, goEnv()); err != nil {
		return err
	}
	if err := awaitHTTP(ctx, st.staticURL+"/healthz", 10*time.Second, st.static.alive); err != nil {
		return fmt.Errorf("static upstream: %w", err)
	}

	st.log.say("starting the gateways (cache on, cache off)")
	if st.gwCache, err = st.startGateway(ctx, "gateway-cache-on", st.staticURL, nil); err != nil {
		return err
	}
	if st.gwNoCache, err = st.startGateway(ctx, "gateway-cache-off", st.staticURL, map[string]string{"GATEWAY_CACHE__ENABLED": "false"}); err != nil {
		return err
	}
	if err := st.captureEnvelope(ctx); err != nil {
		return err
	}

	if st.wantsAny("bare-fiber", "fiber-proxy-username", "bare-fiber-floor", "fiber-proxy-floor-username") {
		st.log.say("starting the bare Fiber baseline and the floor contender")
		if err := st.startBare(ctx); err != nil {
			return err
		}
	}

	if st.wantsAny("nginx-proxy", "nginx-proxy-username", "nginx-cache-hit") {
		switch path, err := exec.LookPath("nginx"); {
		case !st.opts.nginx:
			st.skipped = append(st.skipped, "nginx baselines: turned off (-nginx=false)")
		case err != nil:
			st.skipped = append(st.skipped, "nginx baselines: nginx is not installed (Debian: apt-get install -y nginx)")
		default:
			st.log.say("starting nginx (plain proxy and proxy_cache)")
			if st.nginx, err = startNginx(ctx, st.pin, path, filepath.Join(st.work, "nginx"), strings.TrimPrefix(st.staticURL, "http://")); err != nil {
				return err
			}
		}
	}

	if st.wantsAny("store-me", "store-search") {
		if !st.opts.store {
			st.skipped = append(st.skipped, "real user store scenario: turned off (-store=false)")
		} else {
			st.log.say("starting the real user store (seeding its SQLite database) and its gateway")
			if st.store, st.storeURL, err = st.startListener(ctx, "userstore", st.bins.userstore, goEnv(), "-listen", "127.0.0.1:0"); err != nil {
				return err
			}
			if st.gwStore, err = st.startGateway(ctx, "gateway-userstore", st.storeURL, map[string]string{"GATEWAY_CACHE__ENABLED": "false"}); err != nil {
				return err
			}
		}
	}
	return nil
}

// stop ends every process the stack started.
func (st *stack) stop() {
	for _, s := range []*server{st.bare, st.floor, st.gatewayServer(st.gwCache), st.gatewayServer(st.gwNoCache), st.gatewayServer(st.gwStore)} {
		s.stop()
	}
	if st.nginx != nil {
		st.nginx.stop()
	}
	st.static.stop()
	st.store.stop()
	if st.idp != nil {
		st.idp.close()
	}
}

func (st *stack) gatewayServer(g *gatewayProc) *server {
	if g == nil {
		return nil
	}
	return g.server
}

func (st *stack) wantsAny(names ...string) bool {
	return slices.ContainsFunc(names, st.opts.wants)
}

// goEnv is the environment of a Go server under test: one P, so it uses
// exactly the one core it is pinned to.
func goEnv() []string { return append(os.Environ(), "GOMAXPROCS=1") }

// startListener starts a binary that prints {"msg":"listening","addr":…}.
func (st *stack) startListener(ctx context.Context, name, bin string, env []string, args ...string) (*server, string, error) {
	cmd := st.pin.command(bin, args...)
	cmd.Env = env
	s, line, err := startServer(ctx, name, cmd, func(m map[string]any) bool {
		_, ok := m["addr"].(string)
		return ok && m["msg"] == "listening"
	}, 3*time.Minute)
	if err != nil {
		return nil, "", err
	}
	return s, "http://" + line["addr"].(string), nil
}

// gatewayProc is a running gateway binary.
type gatewayProc struct {
	*server
	url, opsURL string
}

// gatewayEnv is the benchmark's configuration: the repository's
// config.yaml with free loopback ports, the in-process identity provider,
// the given upstream, log level info with the access log on (as in
// production; the harness drains it), and every rate limit at the highest
// value the configuration accepts (100,000/s, burst 1,000,000), far above
// what one core answers, so that no answer is a 429; and no cap on the
// connections of one address, since the load generator's one address
// stands for many clients (up to -connections 10000).
func (st *stack) gatewayEnv(upstreamURL string, extra map[string]string) []string {
	env := map[string]string{
		"GOMAXPROCS": "1",
		// The Go runtime settings of deploy/kubernetes (GOGC=400 with a
		// memory limit as the backstop), the limit sized for the 200 MB
		// memory target of the memory phase.
		"GOGC":                                  "400",
		"GOMEMLIMIT":                            benchMemLimit,
		"GATEWAY_SERVER__LISTEN":                "127.0.0.1:0",
		"GATEWAY_OPS__LISTEN":                   "127.0.0.1:0",
		"GATEWAY_LOG__LEVEL":                    "info",
		"GATEWAY_LOG__ACCESS":                   "true",
		"GATEWAY_AUTH__JWKSURLS":                st.idp.jwksURL,
		"GATEWAY_AUTH__ISSUER":                  st.idp.issuer,
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": upstreamURL,
		"GATEWAY_SERVER__MAXCONNECTIONSPERIP":   "0",
	}
	for _, limit := range []string{"PERIP", "PERUSER", "PERDEVICE", "AUTHFAILURES"} {
		env["GATEWAY_POLICIES__ALL__RATELIMITS__"+limit+"__RATE"] = "100000"
		env["GATEWAY_POLICIES__ALL__RATELIMITS__"+limit+"__BURST"] = "1000000"
	}
	for k, v := range extra {
		env[k] = v
	}
	out := os.Environ()
	for k, v := range env {
		out = append(out, k+"="+v) // later entries win
	}
	return out
}

func (st *stack) startGateway(ctx context.Context, name, upstreamURL string, extra map[string]string) (*gatewayProc, error) {
	cmd := st.pin.command(st.bins.gateway, "-config", filepath.Join(st.root, "config.yaml"))
	cmd.Env = st.gatewayEnv(upstreamURL, extra)
	var ops string
	s, line, err := startServer(ctx, name, cmd, func(m map[string]any) bool {
		_, ok := m["addr"].(string)
		return ok && m["msg"] == "listening"
	}, time.Minute)
	if err != nil {
		return nil, err
	}
	ops, _ = line["ops"].(string)
	g := &gatewayProc{server: s, url: "http://" + line["addr"].(string)}
	if ops == "" {
		s.stop()
		return nil, fmt.Errorf("%s: no ops listener address in %v", name, line)
	}
	g.opsURL = "http://" + ops
	if err := awaitHTTP(ctx, g.opsURL+"/readyz", 30*time.Second, s.alive); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w; its output ends:\n%s", name, err, s.out)
	}
	return g, nil
}

// captureEnvelope asks the cache-on gateway for /me until it answers from
// the cache, and keeps that answer: the bytes (timestamp included, fixed
// from then on) and the headers that are not per-connection. The static
// upstream then serves the same bytes to nginx's proxy_cache. It asks with
// gw-me-hit's headers: the answer depends on the language (price display)
// and the platform (fields), and gw-me-hit's is the one the baselines must
// serve.
func (st *stack) captureEnvelope(ctx context.Context) error {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.gwCache.url+"/api/v1/users/me", nil)
		req.Header = st.opts.requestHeader(http.Header{"Authorization": {"Bearer " + st.meToken}})
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("capturing /me: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("capturing /me: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("capturing /me: status %d: %s\ngateway output ends:\n%s", resp.StatusCode, body, st.gwCache.out)
		}
		if resp.Header.Get("X-Cache") != "HIT" {
			continue
		}
		st.envelope = body
		st.envelopeHeaders = nil
		for k := range resp.Header {
			switch k {
			case "Date", "Content-Length", "Connection", "Server", "Keep-Alive", "Transfer-Encoding":
				continue
			}
			st.envelopeHeaders = append(st.envelopeHeaders, [2]string{k, resp.Header.Get(k)})
		}
		slices.SortFunc(st.envelopeHeaders, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		put, _ := http.NewRequestWithContext(ctx, http.MethodPut, st.staticURL+"/bench/v1/payload", strings.NewReader(string(body)))
		resp, err = client.Do(put)
		if err != nil {
			return fmt.Errorf("setting the static payload: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("setting the static payload: status %d", resp.StatusCode)
		}
		return nil
	}
	return errors.New("capturing /me: the gateway never answered from its cache (X-Cache: HIT)")
}

func (st *stack) startBare(ctx context.Context) error {
	file := filepath.Join(st.work, "envelope.json")
	if err := os.WriteFile(file, st.envelope, 0o600); err != nil {
		return err
	}
	args := []string{"-body", file, "-path", "/api/v1/users/me", "-proxy", strings.TrimPrefix(st.staticURL, "http://")}
	for _, h := range st.envelopeHeaders {
		args = append(args, "-header", h[0]+": "+h[1])
	}
	var err error
	if st.bare, st.bareURL, err = st.startListener(ctx, "barefiber", st.bins.barefiber, goEnv(), args...); err != nil {
		return err
	}
	floor := slices.Concat(args, []string{"-get-work", st.opts.floorMe.String(), "-proxy-work", st.opts.floorUsername.String()})
	st.floor, st.floorURL, err = st.startListener(ctx, "barefiber-floor", st.bins.barefiber, goEnv(), floor...)
	return err
}

// ---------------------------------------------------------------------------
// The identity provider, in this process: it only serves the JWKS once per
// gateway start, and mints tokens.

type identity struct {
	*devidp.Provider
	issuer, jwksURL string
	srv             *http.Server
}

func startIdentity() (*identity, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	issuer := "http://" + ln.Addr().String()
	p, err := devidp.New(devidp.Options{Issuer: issuer, Audience: "edge-gateway"})
	if err != nil {
		ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &identity{Provider: p, issuer: issuer, jwksURL: issuer + "/.well-known/jwks.json", srv: srv}, nil
}

// token mints a user token valid for the whole run.
func (i *identity) token(sub, alg string) (string, error) {
	now := time.Now()
	return i.Mint(devidp.MintClaims{Subject: sub, Roles: []string{"user"}, IssuedAt: now, ExpiresAt: now.Add(3 * time.Hour)},
		devidp.WithAlgorithm(alg))
}

func (i *identity) close() { _ = i.srv.Close() }
