package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
	"go.uber.org/goleak"
)

// The identity provider misbehaves while authenticated traffic runs: its
// key set endpoint turns slow, answers 503, garbage, an HTML page, an
// empty set. The keys already loaded stay, so every request with a known
// key keeps answering 200 and readiness stays true; a token whose kid
// nobody knows gets its 401 within unknownKIDWait instead of hanging on
// the broken endpoint.
func TestFaultsIdentityProviderUnderLoad(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	const (
		fetchTimeout   = time.Second
		unknownKIDWait = 200 * time.Millisecond
		clients        = 4
	)
	// Fresh tokens of both algorithms; the token cache is off, so every
	// request really is verified against the loaded keys.
	var tokens []string
	for i := range 8 {
		alg := []string{devidp.RS256, devidp.ES256}[i%2]
		tok, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user"}}, devidp.WithAlgorithm(alg))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	unknown, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user"}}, devidp.WithKeyID("kid-nobody-published"))
	if err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	gw := StartInProcess(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		"GATEWAY_CACHE__ENABLED":                            "false",
		"GATEWAY_LOG__ACCESS":                               "false",
		"GATEWAY_AUTH__TOKENCACHE__ENABLED":                 "false",
		"GATEWAY_AUTH__JWKS__REFRESHINTERVAL":               "50ms",
		"GATEWAY_AUTH__JWKS__FETCHTIMEOUT":                  fetchTimeout.String(),
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDINTERVAL":            "50ms",
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDWAIT":                unknownKIDWait.String(),
		"GATEWAY_UPSTREAMS__USERSTORE__MAXIDLECONNDURATION": fltIdle.String(),
		// The subject is the identity provider: a store call that
		// outlasts config.yaml's 500ms and 300ms on a busy machine (the
		// whole suite on 2 cores, the race detector on) is not a
		// failure of this test, and its 504 would fail the traffic.
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERBYID__TIMEOUT":    "2s",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__LIVESTREAMS__TIMEOUT": "2s",
	}})
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			gw.Stop(t)
		}
	})

	// The traffic: a few clients asking for their profile without pause.
	var (
		ok, failed atomic.Int64
		firstBad   atomic.Value
		quit       = make(chan struct{})
		wg         sync.WaitGroup
		client     = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	)
	me := gw.URL + "/api/v1/users/me"
	for c := range clients {
		wg.Go(func() {
			for i := c; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, me, nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
					continue
				}
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("status %d %s", resp.StatusCode, fltReadAll(resp)))
					continue
				}
				resp.Body.Close()
				ok.Add(1)
			}
		})
	}
	stopTraffic := func() {
		select {
		case <-quit:
		default:
			close(quit)
			wg.Wait()
			client.CloseIdleConnections()
		}
	}
	defer stopTraffic()
	eventually(t, 5*time.Second, func() error {
		if ok.Load() < 20 {
			return fmt.Errorf("%d requests answered", ok.Load())
		}
		return nil
	})

	for _, mode := range []devidp.JWKSMode{
		devidp.JWKSSlow(10 * fetchTimeout),
		devidp.JWKSStatus(http.StatusServiceUnavailable),
		devidp.JWKSGarbage,
		devidp.JWKSHTML,
		devidp.JWKSEmpty,
	} {
		t.Run(mode.String(), func(t *testing.T) {
			idp.SetJWKSMode(mode)
			fetches, served := idp.JWKSFetches(), ok.Load()
			// Two fetches started in this mode: the first one has ended (a
			// slow one by the fetch timeout) and failed.
			eventually(t, 5*fetchTimeout, func() error {
				if n := idp.JWKSFetches() - fetches; n < 2 {
					return fmt.Errorf("%d fetches in mode %s", n, mode)
				}
				return nil
			})
			var waits []time.Duration
			for range 3 {
				resp, d := fltTimed(func() *Response {
					return gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(unknown))
				})
				fltFailure(t, resp, http.StatusUnauthorized, "en")
				// Bounded by unknownKIDWait, not by the broken endpoint:
				// a slow fetch would hold it for the whole fetch timeout.
				if d >= fetchTimeout {
					t.Fatalf("a token with an unknown kid waited %s (fetch timeout %s, unknownKIDWait %s)", d, fetchTimeout, unknownKIDWait)
				}
				waits = append(waits, d)
			}
			if r := fltOps(t, gw, "/readyz"); r.Status != http.StatusOK {
				t.Fatalf("readyz %d with keys loaded and the JWKS %s: %s", r.Status, mode, r.Body)
			}
			eventually(t, 5*time.Second, func() error {
				if n := ok.Load() - served; n < 20 {
					return fmt.Errorf("%d requests answered in mode %s", n, mode)
				}
				return nil
			})
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d requests with known keys failed (first: %v)", n, firstBad.Load())
			}
			t.Logf("RESULT | JWKS %s under load (%d clients) | 200 ×%d, 0 failed; unknown kid 401 in median %s | %d JWKS fetches in the mode | readiness 200 throughout | — | — |",
				mode, clients, ok.Load()-served, fltMedian(waits).Round(time.Millisecond), idp.JWKSFetches()-fetches)
			idp.SetJWKSMode(devidp.JWKSNormal)
		})
	}
	stopTraffic()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests with known keys failed (first: %v)", n, firstBad.Load())
	}
	if err := gw.Stop(t); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	stopped = true
	http.DefaultClient.CloseIdleConnections()
	for _, addr := range []string{store.Addr, idp.srv.Listener.Addr().String()} {
		eventually(t, fltIdle/4, func() error {
			if n := fltOpenConns(t, addr); n > 0 {
				return fmt.Errorf("%d connections to %s still open after the gateway stopped", n, addr)
			}
			return nil
		})
	}
	fltNoLeaks(t, before)
	t.Logf("traffic: %d requests answered 200, none failed", ok.Load())
}

func fltReadAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
