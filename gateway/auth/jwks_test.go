package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/bffgate/edge/upstream/devidp"
)

func randomKID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "kid-" + hex.EncodeToString(b[:])
}

// A flood of tokens with made-up kids costs at most one key fetch per
// UnknownKIDInterval, sequential or concurrent.
func TestUnknownKIDRefreshIsRateLimited(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.JWKS.UnknownKIDInterval = time.Second
	v := readyVerifier(t, cfg, nil)
	tokens := make([]string, 40)
	for i := range tokens {
		tokens[i] = mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256), devidp.WithKeyID(randomKID()))
	}

	start, before := time.Now(), p.JWKSFetches()
	for _, tok := range tokens[:20] {
		mustRefuse(t, v, tok, errUnknownKID)
	}
	var wg sync.WaitGroup
	for _, tok := range tokens[20:] {
		wg.Go(func() {
			if _, err := authenticate(v, tok); !errors.Is(err, errUnknownKID) {
				t.Errorf("random kid: %v", err)
			}
		})
	}
	wg.Wait()
	fetched := p.JWKSFetches() - before
	allowed := 1 + int64(time.Since(start)/cfg.JWKS.UnknownKIDInterval)
	if fetched < 1 || fetched > allowed {
		t.Fatalf("%d unknown kids caused %d fetches; want 1 to %d", len(tokens), fetched, allowed)
	}

	// Once the interval has passed, a miss may fetch again.
	time.Sleep(cfg.JWKS.UnknownKIDInterval)
	before = p.JWKSFetches()
	mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(randomKID())), errUnknownKID)
	if got := p.JWKSFetches() - before; got != 1 {
		t.Errorf("after the interval an unknown kid caused %d fetches, want 1", got)
	}
}

func TestRotatedKeyIsPickedUpOnKidMiss(t *testing.T) {
	p := startIDP(t)
	v := readyVerifier(t, testConfig(p.jwksURL()), nil)
	oldToken := mint(t, p, devidp.MintClaims{})
	mustAuthenticate(t, v, oldToken)

	for _, alg := range []string{devidp.RS256, devidp.ES256} {
		kid, err := p.Rotate(alg)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(testConfig().JWKS.UnknownKIDInterval) // the limiter allows the next miss
		before := p.JWKSFetches()
		id := mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(alg)))
		if id.KeyID() != kid {
			t.Errorf("verified by %q, want the new key %q", id.KeyID(), kid)
		}
		if got := p.JWKSFetches() - before; got != 1 {
			t.Errorf("picking up the %s key took %d fetches, want 1", alg, got)
		}
	}
	mustAuthenticate(t, v, oldToken) // old keys are still published
}

// An unknown kid never holds the request past UnknownKIDWait nor past the
// request's own deadline, even when the identity provider hangs.
func TestUnknownKIDWaitIsBounded(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.JWKS.FetchTimeout = 5 * time.Second
	cfg.JWKS.UnknownKIDWait = 300 * time.Millisecond
	cfg.JWKS.UnknownKIDInterval = time.Millisecond
	v := readyVerifier(t, cfg, nil)
	p.SetJWKSMode(devidp.JWKSSlow(4 * time.Second))

	token := mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(randomKID()))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Authenticate(ctx, bearer(token))
	if elapsed := time.Since(start); elapsed >= cfg.JWKS.UnknownKIDWait {
		t.Errorf("with a 50ms deadline the request waited %v", elapsed)
	}
	if !errors.Is(err, errUnknownKID) {
		t.Errorf("got %v", err)
	}

	start = time.Now()
	_, err = authenticate(v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(randomKID())))
	if elapsed := time.Since(start); elapsed >= 2*time.Second {
		t.Errorf("with no deadline the request waited %v (UnknownKIDWait %v)", elapsed, cfg.JWKS.UnknownKIDWait)
	}
	if !errors.Is(err, errUnknownKID) {
		t.Errorf("got %v", err)
	}
	// Known keys keep working while the slow fetch is stuck.
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}))
}

// UnknownKIDWait 0 (documented "does not wait") is a setting, not a
// missing one: a token of a key not loaded yet is refused at once, and the
// refresh it asked for still runs, so the requests after it pass.
func TestUnknownKIDWaitZeroDoesNotWait(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.JWKS.UnknownKIDWait = 0
	v := readyVerifier(t, cfg, nil)
	kid, err := p.Rotate(devidp.RS256)
	if err != nil {
		t.Fatal(err)
	}
	before := p.JWKSFetches()
	token := mint(t, p, devidp.MintClaims{})
	// The refresh round would end in a few milliseconds on loopback: a
	// request that waited for it would pass.
	mustRefuse(t, v, token, errUnknownKID)
	eventually(t, "the refresh the miss asked for", func() bool { return p.JWKSFetches() > before })
	eventually(t, "the new key loaded", func() bool { _, ok := v.keys.Load().byKID[kid]; return ok })
	if id := mustAuthenticate(t, v, token); id.KeyID() != kid {
		t.Fatalf("verified by %q, want %q", id.KeyID(), kid)
	}
}

// New never waits for the identity provider, even one that hangs.
func TestNewDoesNotWaitForTheKeySet(t *testing.T) {
	p := startIDP(t)
	p.SetJWKSMode(devidp.JWKSSlow(3 * time.Second))
	cfg := testConfig(p.jwksURL())
	cfg.JWKS.FetchTimeout = 5 * time.Second
	start := time.Now()
	v := newVerifier(t, cfg, nil)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("New took %v", elapsed)
	}
	if ok, reason := v.Ready(); ok || !strings.Contains(reason, "first fetch") {
		t.Errorf("Ready() = %v, %q", ok, reason)
	}
	if _, err := authenticate(v, mint(t, p, devidp.MintClaims{})); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("before the first fetch: %v", err)
	}
	// A malformed token is still a 401, not a 503.
	if _, err := v.Authenticate(context.Background(), header("Basic Zm9v")); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("malformed header before keys: %v", err)
	}
}

// The identity provider is unreachable at start: the verifier runs without
// keys, answers ErrKeysUnavailable, retries, and recovers on its own.
func TestJWKSDownAtStartThenRecovers(t *testing.T) {
	p := startIDP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now: connection refused

	rec := &recorder{}
	v := newVerifier(t, testConfig("http://"+addr+"/.well-known/jwks.json"), rec)
	token := mint(t, p, devidp.MintClaims{})
	eventually(t, "several failed attempts", func() bool { return rec.fetchErr.Load() >= 3 })
	if _, err := authenticate(v, token); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("want ErrKeysUnavailable, got %v", err)
	}
	ok, reason := v.Ready()
	if ok || !strings.Contains(reason, "no identity provider keys") || !strings.Contains(reason, addr) {
		t.Fatalf("Ready() = %v, %q", ok, reason)
	}
	if v.KeysAge() != 0 {
		t.Errorf("KeysAge before any load = %v", v.KeysAge())
	}

	var ln2 net.Listener
	eventually(t, "the port to be free again", func() bool {
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	})
	srv := httptest.NewUnstartedServer(p.Handler())
	srv.Listener.Close() // its own listener, replaced (srv.Close closes only ln2)
	srv.Listener = ln2
	srv.Start()
	defer srv.Close()

	eventually(t, "recovery", func() bool { ok, _ := v.Ready(); return ok })
	mustAuthenticate(t, v, token)
	// A run of identical failures is logged once, then the recovery.
	logs := rec.logText()
	if n := strings.Count(logs, "JWKS fetch failed"); n != 1 {
		t.Errorf("%d failure lines for one run of identical failures, want 1", n)
	}
	if !strings.Contains(logs, "JWKS fetch recovered") {
		t.Error("recovery not logged")
	}
	if rec.lastKeys.Load() != 2 {
		t.Errorf("observer saw %d keys", rec.lastKeys.Load())
	}
	// Normal refresh took over: no more retries every RetryInterval.
	fetches := rec.fetches()
	time.Sleep(10 * testConfig().JWKS.RetryInterval)
	if rec.fetches() != fetches {
		t.Errorf("still retrying after keys loaded: %d → %d fetches", fetches, rec.fetches())
	}
}

// A response that is not a usable key set at start leaves the verifier
// unready (never "ready with no keys"), until the provider is fixed.
func TestBrokenKeySetAtStartIsNotLoaded(t *testing.T) {
	wantReason := map[devidp.JWKSMode]string{
		devidp.JWKSEmpty:       "no usable signing key",
		devidp.JWKSGarbage:     "not a JSON object",
		devidp.JWKSHTML:        "HTML page",
		devidp.JWKSStatus(503): "status 503",
		devidp.JWKSOversized:   "byte limit",
	}
	for _, mode := range []devidp.JWKSMode{devidp.JWKSEmpty, devidp.JWKSGarbage, devidp.JWKSHTML,
		devidp.JWKSStatus(503), devidp.JWKSOversized} {
		t.Run(mode.String(), func(t *testing.T) {
			p := startIDP(t)
			p.SetJWKSMode(mode)
			rec := &recorder{}
			v := newVerifier(t, testConfig(p.jwksURL()), rec)
			eventually(t, "retries", func() bool { return p.JWKSFetches() >= 3 })
			if ok, _ := v.Ready(); ok {
				t.Fatal("ready on a broken key set")
			}
			if rec.fetchOK.Load() != 0 {
				t.Fatalf("a broken response counted as a successful fetch")
			}
			if _, err := authenticate(v, mint(t, p, devidp.MintClaims{})); !errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("got %v", err)
			}
			rec.mu.Lock()
			firstErr := rec.errs[0].Error()
			rec.mu.Unlock()
			if want := wantReason[mode]; !strings.Contains(firstErr, want) {
				t.Errorf("fetch error %q does not say %q", firstErr, want)
			}
			p.SetJWKSMode(devidp.JWKSNormal)
			eventually(t, "recovery", func() bool { ok, _ := v.Ready(); return ok })
			mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}))
		})
	}
}

// Once keys are loaded, no failure of the endpoint drops them.
func TestLoadedKeysSurviveEndpointFailures(t *testing.T) {
	modes := []devidp.JWKSMode{devidp.JWKSEmpty, devidp.JWKSGarbage, devidp.JWKSHTML, devidp.JWKSStatus(503),
		devidp.JWKSStatus(404), devidp.JWKSOversized, devidp.JWKSSlow(time.Second)}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			p := startIDP(t)
			cfg := testConfig(p.jwksURL())
			cfg.JWKS.RefreshInterval = 10 * time.Millisecond
			cfg.JWKS.FetchTimeout = 100 * time.Millisecond
			cfg.TokenCache.Enabled = false
			rec := &recorder{}
			v := readyVerifier(t, cfg, rec)
			rsaToken := mint(t, p, devidp.MintClaims{})
			esToken := mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256))
			mustAuthenticate(t, v, rsaToken)

			p.SetJWKSMode(mode)
			eventually(t, "failed refreshes", func() bool { return rec.fetchErr.Load() >= 3 })
			if ok, reason := v.Ready(); !ok {
				t.Fatalf("not ready after %s refreshes: %s", mode, reason)
			}
			mustAuthenticate(t, v, rsaToken)
			mustAuthenticate(t, v, esToken)
			if v.KeysAge() < 3*cfg.JWKS.RefreshInterval {
				t.Errorf("KeysAge %v: a failed fetch counted as success", v.KeysAge())
			}
		})
	}

	t.Run("server gone", func(t *testing.T) {
		p := startIDP(t)
		cfg := testConfig(p.jwksURL())
		cfg.JWKS.RefreshInterval = 10 * time.Millisecond
		cfg.TokenCache.Enabled = false
		rec := &recorder{}
		v := readyVerifier(t, cfg, rec)
		token := mint(t, p, devidp.MintClaims{})
		p.srv.Close()
		errsBefore := rec.fetchErr.Load()
		eventually(t, "failed refreshes", func() bool { return rec.fetchErr.Load() >= errsBefore+3 })
		mustAuthenticate(t, v, token)
		if ok, _ := v.Ready(); !ok {
			t.Fatal("not ready after the server went away")
		}
	})
}

// A key removed from the JWKS stops verifying tokens once a refresh sees it
// gone.
func TestRemovedKeyIsRefused(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.TokenCache.Enabled = false
	v := readyVerifier(t, cfg, nil)
	oldKID := p.CurrentKID(devidp.RS256)
	oldToken := mint(t, p, devidp.MintClaims{})
	mustAuthenticate(t, v, oldToken)

	if _, err := p.Rotate(devidp.RS256); err != nil {
		t.Fatal(err)
	}
	p.RemoveKey(oldKID)
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{})) // kid miss → refresh
	mustRefuse(t, v, oldToken, errUnknownKID)
}

func TestSeveralJWKSURLs(t *testing.T) {
	a, b := startIDP(t), startIDP(t)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer broken.Close()
	rec := &recorder{}
	v := readyVerifier(t, testConfig(a.jwksURL(), broken.URL, b.jwksURL()), rec)
	eventually(t, "both good sets", func() bool { ks := v.keys.Load(); return ks != nil && len(ks.byKID) == 4 })
	if n := v.KeyCount(); n != 4 {
		t.Errorf("KeyCount = %d, want the 4 keys of both good sets", n)
	}
	mustAuthenticate(t, v, mint(t, a, devidp.MintClaims{}))
	mustAuthenticate(t, v, mint(t, b, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256)))
	if rec.fetchErr.Load() == 0 {
		t.Error("the broken URL's failure was not reported")
	}
}

// One URL of several that keeps failing ages the keys while the others
// succeed: its keys may be out of date, and the runbook's age alert must
// see it. KeysAge said the time since any URL's last good fetch, so a dead
// second provider never aged it.
func TestKeysAgeIsTheStalestURLs(t *testing.T) {
	good := startIDP(t)
	var fail atomic.Bool
	flaky := startIDP(t)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		flaky.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer gate.Close()
	cfg := testConfig(good.jwksURL(), gate.URL+"/.well-known/jwks.json")
	cfg.JWKS.RefreshInterval = 10 * time.Millisecond
	rec := &recorder{}
	v := readyVerifier(t, cfg, rec)
	eventually(t, "both sets", func() bool { ks := v.keys.Load(); return ks != nil && len(ks.byKID) == 4 })

	errs := rec.fetchErr.Load()
	fail.Store(true)
	// Rounds never overlap: once a fetch has failed, the rounds before it,
	// the last to count the failing URL good, have been applied (a round
	// then in flight may have counted it good, and may have taken long on
	// a loaded machine). From here its last good fetch only grows older.
	eventually(t, "a failed fetch", func() bool { return rec.fetchErr.Load() > errs })
	failing := time.Now()
	errs, oks := rec.fetchErr.Load(), rec.fetchOK.Load()
	time.Sleep(300 * time.Millisecond)
	eventually(t, "refreshes with one URL down", func() bool {
		return rec.fetchErr.Load() >= errs+5 && rec.fetchOK.Load() >= oks+5
	})
	// KeysAge reads the wall clock: a few ms spare for its difference.
	if since, age := time.Since(failing), v.KeysAge(); age < since-5*time.Millisecond {
		t.Errorf("KeysAge %v with one URL failing for %v: the good URL's fetches reset it", age, since)
	}

	fail.Store(false)
	eventually(t, "the age back to one interval", func() bool { return v.KeysAge() < time.Second })
}

// Close stops fetching; keys already loaded still verify.
func TestCloseStopsFetching(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.JWKS.RefreshInterval = 5 * time.Millisecond
	cfg.TokenCache.Enabled = false
	v := readyVerifier(t, cfg, nil)
	v.Close()
	v.Close()
	// A fetch on the wire when Close canceled it may still reach the
	// provider's count a moment later: wait until the count holds (at most
	// a second; fetching that went on every 5ms would never hold).
	fetches := p.JWKSFetches()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		n := p.JWKSFetches()
		if n == fetches {
			break
		}
		fetches = n
	}
	time.Sleep(50 * time.Millisecond)
	if p.JWKSFetches() != fetches {
		t.Error("fetching went on after Close")
	}
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}))
	mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(randomKID())), errUnknownKID)
	if ok, _ := v.Ready(); !ok {
		t.Error("Close dropped the loaded keys")
	}
}

func TestKeysAgeAndObserver(t *testing.T) {
	p := startIDP(t)
	rec := &recorder{}
	v := readyVerifier(t, testConfig(p.jwksURL()), rec)
	if age := v.KeysAge(); age <= 0 || age > time.Second {
		t.Errorf("KeysAge right after load = %v", age)
	}
	if rec.fetchOK.Load() != 1 || rec.lastKeys.Load() != 2 {
		t.Errorf("observer: %d good fetches, %d keys", rec.fetchOK.Load(), rec.lastKeys.Load())
	}
}

// Keys the verifier must not use are skipped; the usable ones still load.
func TestUnusableJWKsAreSkipped(t *testing.T) {
	p := startIDP(t)
	resp, err := p.srv.Client().Get(p.jwksURL())
	if err != nil {
		t.Fatal(err)
	}
	good, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(string(good), `{"keys":[`), "]}")
	junk := `{"kty":"oct","kid":"hmac","k":"c2VjcmV0","alg":"HS256"},` +
		`{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},` +
		`{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"off-curve"},` +
		`{"kty":"RSA","n":"AQAB","e":"AQAB","alg":"RS256"},` +
		`{"kty":"RSA","kid":"tiny","n":"AQAB","e":"AQAB","alg":"RS256"},`
	body := `{"keys":[` + junk + inner + `]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	v := readyVerifier(t, testConfig(srv.URL), nil)
	if n := len(v.keys.Load().byKID); n != 2 {
		t.Fatalf("loaded %d keys, want the 2 good ones (kids %v)", n, v.keys.Load().kids)
	}
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}))
	mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID("hmac"), devidp.WithHS256PublicKey()), errAlgorithm)
}

// Keys whose JWK declares no alg are matched to the token's alg by key type
// alone: an RSA key never verifies ES256 and an EC key never RS256.
func TestKeysWithoutAlgMatchByType(t *testing.T) {
	p := startIDP(t)
	resp, err := p.srv.Client().Get(p.jwksURL())
	if err != nil {
		t.Fatal(err)
	}
	var set jwkset.JWKSMarshal
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range set.Keys {
		set.Keys[i].ALG = ""
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.TokenCache.Enabled = false
	v := readyVerifier(t, cfg, nil)

	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}))
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256)))
	mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(p.CurrentKID(devidp.ES256))), errKeyMismatch)
	mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256),
		devidp.WithKeyID(p.CurrentKID(devidp.RS256))), errKeyMismatch)
}

// A key in the JWKS URL's query (some providers take one there) shows in
// neither the log lines nor the readiness reason of a failing fetch: only
// its parameter name does. The *url.Error net/http returns quotes the URL
// whole, so the error is taken apart too.
func TestFailingFetchRedactsTheQuery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now: connection refused

	const secret = "s3cr3t-api-key-value"
	rec := &recorder{}
	v := newVerifier(t, testConfig("http://"+addr+"/jwks.json?tenant=acme&api_key="+secret), rec)
	eventually(t, "a failed attempt", func() bool { return rec.fetchErr.Load() >= 1 })
	eventually(t, "the failure logged", func() bool { return strings.Contains(rec.logText(), "JWKS fetch failed") })

	_, reason := v.Ready()
	for what, text := range map[string]string{"readiness reason": reason, "log": rec.logText()} {
		if strings.Contains(text, secret) || strings.Contains(text, "acme") {
			t.Errorf("the %s shows a query value: %s", what, text)
		}
		if !strings.Contains(text, "api_key=xxxxx") || !strings.Contains(text, addr) {
			t.Errorf("the %s no longer names the URL: %s", what, text)
		}
	}
	if !strings.Contains(reason, "connection refused") {
		t.Errorf("the readiness reason lost the cause: %s", reason)
	}
}

// A JWKS URL whose every connection is reset fails the same way each
// round, though the error's text names the connection's own ephemeral
// port: it is logged at the first failure, not at every retry.
func TestResetJWKSFetchIsLoggedOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = http.ReadRequest(bufio.NewReader(c))
				_ = c.(*net.TCPConn).SetLinger(0) // close with a reset
				c.Close()
			}()
		}
	}()
	rec := &recorder{}
	newVerifier(t, testConfig("http://"+ln.Addr().String()+"/jwks"), rec)
	eventually(t, "ten failed fetches", func() bool { return rec.fetchErr.Load() >= 10 })
	if n := strings.Count(rec.logText(), "JWKS fetch failed"); n != 1 {
		t.Errorf("%d lines for one lasting failure, want 1:\n%s", n, rec.logText())
	}
}

// A token of a key the provider retired does not spend the unknown-kid
// budget (a fetch would not bring the key back): apps keep sending such
// tokens for a while after a rotation, and a token of a key published
// just after them must still get its refresh at once.
func TestRetiredKIDSpendsNoRefresh(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	v := readyVerifier(t, cfg, nil)
	oldKID := p.CurrentKID(devidp.RS256)
	oldToken := mint(t, p, devidp.MintClaims{})
	mustAuthenticate(t, v, oldToken)

	if _, err := p.Rotate(devidp.RS256); err != nil {
		t.Fatal(err)
	}
	if !p.RemoveKey(oldKID) {
		t.Fatalf("the provider has no key %s", oldKID)
	}
	time.Sleep(cfg.JWKS.UnknownKIDInterval)
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{})) // its kid miss fetches the set without oldKID

	for range 3 {
		time.Sleep(cfg.JWKS.UnknownKIDInterval) // the limiter would allow a fetch
		before := p.JWKSFetches()
		mustRefuse(t, v, oldToken, errUnknownKID)
		if got := p.JWKSFetches() - before; got != 0 {
			t.Fatalf("a token of the retired key %s caused %d fetches, want 0", oldKID, got)
		}
		// The next rotation's token, right after it, finds the budget
		// unspent.
		newer, err := p.Rotate(devidp.RS256)
		if err != nil {
			t.Fatal(err)
		}
		if id := mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{})); id.KeyID() != newer {
			t.Fatalf("verified by %q, want the newest key %q", id.KeyID(), newer)
		}
	}
}

// A key published just after a forged kid spent the unknown-kid budget:
// its token asks for the round the budget allows next, when that comes
// within UnknownKIDWait, and passes; it was refused at once.
func TestNewKIDAfterTheBudgetIsSpentWaitsForTheNextRound(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL()) // interval 200ms, wait 500ms
	v := readyVerifier(t, cfg, nil)
	time.Sleep(cfg.JWKS.UnknownKIDInterval)
	before := p.JWKSFetches()
	mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(randomKID())), errUnknownKID)
	kid, err := p.Rotate(devidp.RS256)
	if err != nil {
		t.Fatal(err)
	}
	if id := mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{})); id.KeyID() != kid {
		t.Fatalf("verified by %q, want the new key %q", id.KeyID(), kid)
	}
	if got := p.JWKSFetches() - before; got != 2 {
		t.Fatalf("%d fetches, want 2: the forged kid's and the new key's, one interval apart", got)
	}
}

// With the unknown-kid budget spent and the next round further away than
// UnknownKIDWait, a token of an unknown kid is refused at once: it neither
// waits for a round that cannot come in time (a forged kid would hold its
// request for the whole wait) nor books one.
func TestUnknownKIDPastTheWaitIsRefusedAtOnce(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.JWKS.UnknownKIDInterval = time.Hour
	cfg.JWKS.UnknownKIDWait = time.Minute
	v := readyVerifier(t, cfg, nil)
	mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(randomKID())), errUnknownKID) // spends the budget
	noRound := func() bool { v.mu.Lock(); defer v.mu.Unlock(); return v.kidRound == nil }
	eventually(t, "the first round over", noRound)

	before := p.JWKSFetches()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := v.Authenticate(ctx, bearer(mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(randomKID()))))
	if !errors.Is(err, errUnknownKID) {
		t.Fatalf("got %v, want errUnknownKID", err)
	}
	if ctx.Err() != nil {
		t.Error("the request waited for a round the budget allows only in an hour")
	}
	if !noRound() {
		t.Error("a round was booked that no request waits for")
	}
	if got := p.JWKSFetches() - before; got != 0 {
		t.Errorf("%d fetches, want 0", got)
	}
}

// With several JWKS URLs, a kid claimed by two of them is the first URL's
// key, whichever order the fetches ended in.
func TestKIDClaimedByTwoURLsIsTheFirstURLs(t *testing.T) {
	allowed := []string{"ES256"}
	first, err := parseKeySet(ecJWKS(t, "a", "b"), allowed, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := parseKeySet(ecJWKS(t, "a", "c"), allowed, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{cfg: settings{urls: []string{"x", "y"}}, goodAt: make([]time.Time, 2), log: discardLogger()}
	v.apply([]fetchResult{{keys: first}, {keys: second}}, make([][]*verifyKey, 2), nil)
	set := v.keys.Load()
	if set == nil {
		t.Fatal("no key set published")
	}
	if set.byKID["a"] != first[0] {
		t.Error("kid a is the second URL's key, want the first's")
	}
	if set.byKID["b"] != first[1] || set.byKID["c"] != second[1] || len(set.byKID) != 3 {
		t.Errorf("kids %v, want a, b and c from their URLs", set.kids)
	}
}
