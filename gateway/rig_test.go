package gateway

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/gateway/telemetry"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
)

// loopbackIDP is a development identity provider of issuer, served on
// loopback until the test ends (its JWKS at /.well-known/jwks.json).
func loopbackIDP(tb testing.TB, issuer string) (*devidp.Provider, *httptest.Server) {
	tb.Helper()
	idp, err := devidp.New(devidp.Options{Issuer: issuer, Audience: "edge-gateway"})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(idp.Handler())
	tb.Cleanup(srv.Close)
	return idp, srv
}

// serveLoopback serves s on a loopback port and returns its address.
func serveLoopback(tb testing.TB, s *Server) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go s.Serve(ln)
	return ln.Addr().String()
}

// demoUserToken is an hour's access token of the reference store's demo
// user, with the role user, from idp.
func demoUserToken(tb testing.TB, idp *devidp.Provider) string {
	tb.Helper()
	tok, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user"}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// loopbackStore is the reference user store seeded with users, closed
// when the test ends.
func loopbackStore(tb testing.TB, users int) *refstore.Store {
	tb.Helper()
	st, err := refstore.Open(context.Background(), refstore.Options{Users: users})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// newRepoServer is the gateway as the daemon assembles it, for tests and
// benchmarks: the repository's config.yaml with env on top, the real
// verifier (its keys loaded), user-store client, read cache, limiter and
// tracing, all closed when the test ends. With metrics non-nil, they are
// every part's observer.
func newRepoServer(tb testing.TB, env map[string]string, metrics *telemetry.Metrics) *Server {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "config.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Parse(data, func(k string) string { return env[k] })
	if err != nil {
		tb.Fatal(err)
	}
	set, problems := policies.Compile(cfg.Policies, cfg.Auth)
	if len(problems) > 0 {
		tb.Fatal(problems)
	}
	// No typed nil in an observer interface: nil means none.
	var (
		authObs  auth.Observer
		storeObs upstream.Observer
		cacheObs readcache.Observer
		obs      Observer
	)
	if metrics != nil {
		authObs, storeObs, cacheObs, obs = metrics, metrics, metrics, metrics
	}
	logger, _ := telemetry.NewLogger(io.Discard, cfg.Log.Level)
	verifier, err := auth.New(cfg.Auth, logger, authObs)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(verifier.Close)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ok, _ := verifier.Ready(); ok {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("the verifier never loaded the keys")
		}
		time.Sleep(5 * time.Millisecond)
	}
	store, err := upstream.New(cfg.Upstreams.UserStore, logger, storeObs)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(store.Close)
	cache := readcache.New(readcache.Options{
		MaxEntries: cfg.Cache.MaxEntries, MaxBytes: int64(cfg.Cache.MaxBytes), CleanupInterval: cfg.Cache.CleanupInterval,
	}, cacheObs)
	tb.Cleanup(cache.Close)
	limiter := policies.NewLimiter(policies.DefaultMaxKeys)
	if metrics != nil {
		metrics.SetSources(verifier, store, cache, limiter)
	}
	tracing, err := telemetry.NewTracing(context.Background(), cfg.Tracing, "test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tracing.Shutdown(context.Background()) })
	s, err := New(Deps{
		Config: cfg, Policies: set, Logger: logger, Auth: verifier, Store: store,
		Cache: cache, Limiter: limiter, Observer: obs, AccessLog: io.Discard, Tracing: tracing,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Shutdown(2 * time.Second) })
	return s
}

// raiseRateLimits sets every rate limit of the given policies in env to
// the highest values validation allows, 100,000/s after a burst of
// 1,000,000, far above what a test spends.
func raiseRateLimits(env map[string]string, policyNames ...string) {
	for _, kind := range []string{"PERIP", "PERUSER", "PERDEVICE", "AUTHFAILURES"} {
		for _, p := range policyNames {
			env["GATEWAY_POLICIES__"+p+"__RATELIMITS__"+kind+"__RATE"] = "100000"
			env["GATEWAY_POLICIES__"+p+"__RATELIMITS__"+kind+"__BURST"] = "1000000"
		}
	}
}
