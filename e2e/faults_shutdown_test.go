package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
)

// fltShutdownRig is the gateway binary behind a fault proxy, for SIGTERM.
type fltShutdownRig struct {
	proxy *faultproxy.Proxy
	gw    *Gateway
	token string
}

func fltStartBinary(t *testing.T, env map[string]string) *fltShutdownRig {
	t.Helper()
	store := StartStore(t, nil)
	idp := StartIdP(t)
	p, err := faultproxy.New(store.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	gw := StartGateway(t, GatewayOptions{StoreURL: p.URL(), IdP: idp, Env: fltEnv(env)})
	return &fltShutdownRig{proxy: p, gw: gw, token: idp.UserToken(t)}
}

// holdSearch has the proxy hold every search for d, and starts one that
// it holds (slowSearches), on a client of its own.
func (r *fltShutdownRig) holdSearch(t *testing.T, d time.Duration) <-chan fltAnswer {
	t.Helper()
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(d)); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: d + 10*time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	return r.slowSearches(t, 1, client)
}

// slowSearches starts n searches that the proxy holds, and waits until
// they all are at the proxy. Their answers (or errors) arrive on the
// returned channel.
func (r *fltShutdownRig) slowSearches(t *testing.T, n int, client *http.Client) <-chan fltAnswer {
	t.Helper()
	out := make(chan fltAnswer, n)
	before := r.proxy.Stats().Requests
	url := r.gw.URL + "/api/v2/users/search?query=sukru%20isik"
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+r.token)
			resp, err := client.Do(req)
			a := fltAnswer{err: err, at: time.Now()}
			if err == nil {
				a.status = resp.StatusCode
				resp.Body.Close()
			}
			out <- a
		}()
	}
	eventually(t, 5*time.Second, func() error {
		if got := r.proxy.Stats().Requests - before; got < int64(n) {
			return fmt.Errorf("%d of %d slow searches at the proxy", got, n)
		}
		return nil
	})
	return out
}

type fltAnswer struct {
	status int
	err    error
	at     time.Time
}

// exited waits for the gateway process to end and returns its exit
// error (nil for exit 0) and when it ended.
func (r *fltShutdownRig) exited(t *testing.T, within time.Duration) (error, time.Time) {
	t.Helper()
	select {
	case <-r.gw.stopped:
		return r.gw.exitErr, time.Now()
	case <-time.After(within):
		t.Fatalf("the gateway did not exit within %s\nlogs:\n%s", within, r.gw.Logs())
		return nil, time.Time{}
	}
}

// fltStoppedLine is the gateway's last log line ("stopped").
func fltStoppedLine(t *testing.T, gw *Gateway) map[string]any {
	t.Helper()
	for _, l := range gw.LogLines() {
		if l["msg"] == "stopped" {
			return l
		}
	}
	t.Fatalf("no \"stopped\" log line:\n%s", gw.Logs())
	return nil
}

// SIGTERM with slow requests in flight: readiness turns 503 at once while
// the listener still serves (the shutdown delay, for load balancers to
// notice), then the listener closes and new connections are refused, the
// requests in flight finish with 200, and the process exits 0 well within
// the drain timeout.
func TestFaultsGracefulShutdown(t *testing.T) {
	const (
		// The delay is wide enough for a new request to be served inside
		// it on a busy machine (one took 452ms there against a 300ms
		// delay); the slow requests outlast it by far.
		delay         = time.Second     // server.shutdownDelay
		drain         = 5 * time.Second // server.drainTimeout
		slow          = 3 * time.Second
		inFlight      = 4
		searchTimeout = 5 * time.Second
	)
	r := fltStartBinary(t, map[string]string{
		"GATEWAY_SERVER__SHUTDOWNDELAY":  delay.String(),
		"GATEWAY_SERVER__DRAINTIMEOUT":   drain.String(),
		fltOpKey("SEARCH", "TIMEOUT"):    searchTimeout.String(),
		"GATEWAY_SERVER__REQUESTTIMEOUT": "8s",
	})
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(slow)); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: inFlight}}
	defer client.CloseIdleConnections()
	answers := r.slowSearches(t, inFlight, client)

	sigterm := time.Now()
	r.gw.Signal(t, syscall.SIGTERM)

	// Readiness first: 503 while the public listener still answers.
	eventually(t, delay, func() error {
		if s := fltOps(t, r.gw, "/readyz").Status; s != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d", s)
		}
		return nil
	})
	notReady := time.Since(sigterm)
	ready := fltOps(t, r.gw, "/readyz")
	if e := ready.Failure(t, http.StatusServiceUnavailable, fltMessages[http.StatusServiceUnavailable][0]); len(e) != 2 || e[1] != "draining: the gateway is shutting down" {
		t.Fatalf("readyz while draining: %q", e)
	}
	// During the delay a new request on a fresh connection is still served.
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, r.gw.URL+"/api/v1/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := fresh.Do(req)
	servedDuringDelay := time.Since(sigterm)
	if err != nil {
		t.Fatalf("a new request %s after SIGTERM, inside the %s delay: %v", servedDuringDelay, delay, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || servedDuringDelay >= delay {
		t.Fatalf("a new request %s after SIGTERM got %d", servedDuringDelay, resp.StatusCode)
	}

	// Then the listener closes: new connections are refused while the
	// slow requests are still being served.
	host := r.gw.URL[len("http://"):]
	eventually(t, 2*time.Second, func() error {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
			return errors.New("the listener still accepts")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("dial: %v, want connection refused", err)
		}
		return nil
	})
	refused := time.Since(sigterm)

	// Every request in flight completes with 200.
	var last time.Time
	for range inFlight {
		a := <-answers
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("a request in flight at SIGTERM ended with %d %v", a.status, a.err)
		}
		if a.at.After(last) {
			last = a.at
		}
	}
	if !last.After(sigterm.Add(refused)) {
		// The slow requests (held 3s from before SIGTERM) outlast the 1s
		// delay by far: a listener open until they were done is
		// the gateway closing it only after the drain, which the checks
		// above let through.
		t.Errorf("the last slow request finished %s after SIGTERM, before the listener refused connections (%s): the listener stayed open while they were served",
			last.Sub(sigterm).Round(time.Millisecond), refused.Round(time.Millisecond))
	}

	exitErr, at := r.exited(t, drain+delay+5*time.Second)
	if exitErr != nil {
		t.Fatalf("exit: %v\nlogs:\n%s", exitErr, r.gw.Logs())
	}
	exit := at.Sub(sigterm)
	if exit >= delay+drain {
		t.Fatalf("exited %s after SIGTERM, past delay + drain timeout %s", exit, delay+drain)
	}
	if l := fltStoppedLine(t, r.gw); l["drained"] != true {
		t.Fatalf("stopped line: %v", l)
	}
	t.Logf("RESULT | SIGTERM with %d requests in flight (store %s), shutdownDelay %s, drainTimeout %s | readyz 503 after %s; new request 200 at %s; refused from %s; in-flight 200 ×%d | exit 0 after %s (drained) | — | — | — |",
		inFlight, slow, delay, drain, notReady.Round(time.Millisecond), servedDuringDelay.Round(time.Millisecond),
		refused.Round(time.Millisecond), inFlight, exit.Round(time.Millisecond))
}

// A request stuck longer than the drain timeout does not hold the process:
// it exits 0 at delay + drain timeout, and says it did not drain.
func TestFaultsShutdownDrainTimeoutCutsAStuckRequest(t *testing.T) {
	const (
		delay = 100 * time.Millisecond
		drain = 300 * time.Millisecond
		stuck = 8 * time.Second
	)
	r := fltStartBinary(t, map[string]string{
		"GATEWAY_SERVER__SHUTDOWNDELAY":  delay.String(),
		"GATEWAY_SERVER__DRAINTIMEOUT":   drain.String(),
		"GATEWAY_SERVER__REQUESTTIMEOUT": "10s",
		fltOpKey("SEARCH", "TIMEOUT"):    "10s",
	})
	answers := r.holdSearch(t, stuck)
	sigterm := time.Now()
	r.gw.Signal(t, syscall.SIGTERM)
	exitErr, at := r.exited(t, stuck)
	if exitErr != nil {
		t.Fatalf("exit: %v\nlogs:\n%s", exitErr, r.gw.Logs())
	}
	exit := at.Sub(sigterm)
	// Far below the stuck request's 8s; delay + drain plus process exit.
	if exit >= delay+drain+2*time.Second {
		t.Fatalf("exited %s after SIGTERM; delay %s + drain %s", exit, delay, drain)
	}
	l := fltStoppedLine(t, r.gw)
	if l["drained"] != false || l["in_flight"] != float64(1) {
		t.Fatalf("stopped line %v, want drained false with 1 in flight", l)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		// The stuck client loses its connection with the process.
		if a := <-answers; a.err == nil && a.status == http.StatusOK {
			t.Errorf("the stuck request got 200 from a process that exited")
		}
	})
	wg.Wait()
	t.Logf("RESULT | SIGTERM with a request stuck %s, drainTimeout %s | the stuck client's connection closes | exit 0 after %s (drained false, 1 in flight) | — | — | — |",
		stuck, drain, exit.Round(time.Millisecond))
}

// A SIGHUP while the gateway drains (a config reloader's, or an operator's
// reload that crosses a rollout) is a reload like any other: it used to
// find the signal no longer handled once SIGTERM had ended the reload
// watcher, and the process died of it at once, in the middle of its
// drain, cutting the requests in flight and exiting by signal.
func TestFaultsShutdownSurvivesSIGHUPWhileDraining(t *testing.T) {
	const (
		delay = 500 * time.Millisecond
		drain = 5 * time.Second
		slow  = 1500 * time.Millisecond
	)
	r := fltStartBinary(t, map[string]string{
		"GATEWAY_SERVER__SHUTDOWNDELAY":  delay.String(),
		"GATEWAY_SERVER__DRAINTIMEOUT":   drain.String(),
		"GATEWAY_SERVER__REQUESTTIMEOUT": "5s",
		fltOpKey("SEARCH", "TIMEOUT"):    "3s",
	})
	answers := r.holdSearch(t, slow)

	r.gw.Signal(t, syscall.SIGTERM)
	eventually(t, delay, func() error {
		if s := fltOps(t, r.gw, "/readyz").Status; s != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d", s)
		}
		return nil
	})
	// Sent without failing when the process is gone already: its exit
	// status says what happened.
	hup := func() { _ = r.gw.cmd.Process.Signal(syscall.SIGHUP) }
	hup() // within the shutdown delay
	time.Sleep(delay)
	hup() // while the request in flight drains

	if a := <-answers; a.err != nil || a.status != http.StatusOK {
		t.Fatalf("the request in flight ended with %d %v\nlogs:\n%s", a.status, a.err, r.gw.Logs())
	}
	if exitErr, _ := r.exited(t, drain+delay+5*time.Second); exitErr != nil {
		t.Fatalf("exit: %v\nlogs:\n%s", exitErr, r.gw.Logs())
	}
	if l := fltStoppedLine(t, r.gw); l["drained"] != true {
		t.Fatalf("stopped line: %v", l)
	}
}
