package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/devidp"
)

// TestMain proves that Close (and the test servers' Close) leave no
// goroutine behind: fetch loops, transports and waiters all end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testIssuer   = "http://idp.test"
	testAudience = "edge-gateway"
	demoSubject  = "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11"
)

// idp is a development identity provider served on loopback.
type idp struct {
	*devidp.Provider
	srv *httptest.Server
}

func (p *idp) jwksURL() string { return p.srv.URL + "/.well-known/jwks.json" }

func startIDP(t testing.TB) *idp {
	t.Helper()
	p, err := devidp.New(devidp.Options{Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return &idp{Provider: p, srv: srv}
}

// testConfig has short intervals so the suite stays fast. Periodic refresh
// is off (an hour) unless a test asks for it, so fetch counts are exact.
func testConfig(urls ...string) config.Auth {
	return config.Auth{
		JWKSURLs:      urls,
		Issuer:        testIssuer,
		Audiences:     []string{testAudience},
		Algorithms:    []string{"RS256", "ES256"},
		Leeway:        time.Second,
		MaxTokenBytes: 8 << 10,
		RolesClaim:    "roles",
		ScopesClaim:   "scope",
		AdminRole:     "admin",
		JWKS: config.JWKS{
			RefreshInterval:    time.Hour,
			FetchTimeout:       500 * time.Millisecond,
			UnknownKIDInterval: 200 * time.Millisecond,
			UnknownKIDWait:     500 * time.Millisecond,
			RetryInterval:      20 * time.Millisecond,
			MaxBytes:           64 << 10,
		},
		TokenCache: config.TokenCache{Enabled: true, MaxEntries: 1000, MaxTTL: time.Minute},
	}
}

// recorder is an Observer that counts, and a log sink.
type recorder struct {
	fetchOK, fetchErr  atomic.Int64
	cacheHit, cacheMis atomic.Int64
	lastKeys           atomic.Int64

	mu   sync.Mutex
	errs []error
	logs bytes.Buffer
}

func (r *recorder) JWKSFetch(err error, keys int) {
	if err != nil {
		r.fetchErr.Add(1)
		r.mu.Lock()
		r.errs = append(r.errs, err)
		r.mu.Unlock()
		return
	}
	r.fetchOK.Add(1)
	r.lastKeys.Store(int64(keys))
}

func (r *recorder) TokenCache(hit bool) {
	if hit {
		r.cacheHit.Add(1)
	} else {
		r.cacheMis.Add(1)
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.Write(p)
}

func (r *recorder) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

func (r *recorder) fetches() int64 { return r.fetchOK.Load() + r.fetchErr.Load() }

// newVerifier builds a verifier that logs into rec and is closed when the
// test ends.
func newVerifier(t testing.TB, cfg config.Auth, rec *recorder) *Verifier {
	t.Helper()
	if rec == nil {
		rec = &recorder{}
	}
	logger := slog.New(slog.NewJSONHandler(rec, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v, err := New(cfg, logger, rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// readyVerifier is newVerifier, waited on until its keys are loaded.
func readyVerifier(t testing.TB, cfg config.Auth, rec *recorder) *Verifier {
	t.Helper()
	v := newVerifier(t, cfg, rec)
	eventually(t, "keys loaded", func() bool { ok, _ := v.Ready(); return ok })
	return v
}

// eventually polls cond for up to five seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mint(t testing.TB, p *idp, c devidp.MintClaims, opts ...devidp.MintOption) string {
	t.Helper()
	if c.Subject == "" {
		c.Subject = demoSubject
	}
	token, err := p.Mint(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func header(values ...string) [][]byte {
	out := make([][]byte, len(values))
	for i, v := range values {
		out[i] = []byte(v)
	}
	return out
}

func bearer(token string) [][]byte { return header("Bearer " + token) }

func authenticate(v *Verifier, token string) (*Identity, error) {
	return v.Authenticate(context.Background(), bearer(token))
}

func mustAuthenticate(t testing.TB, v *Verifier, token string) *Identity {
	t.Helper()
	id, err := authenticate(v, token)
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	return id
}

func mustRefuse(t testing.TB, v *Verifier, token string, want error) {
	t.Helper()
	_, err := authenticate(v, token)
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("want ErrUnauthenticated, got %v", err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("want %v, got %v", want, err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
