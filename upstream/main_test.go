package upstream

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
	"go.uber.org/goleak"
)

// The tests talk to the reference user store over loopback, usually
// through a fault proxy. One store serves the whole test binary.
var shared struct {
	once  sync.Once
	store *refstore.Store
	srv   *httptest.Server
	err   error
}

const testToken = "s3rvice-t0ken"

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Close()
	}
	if shared.store != nil {
		shared.store.Close()
	}
	if code == 0 {
		// fasthttp's idle-connection sweeper wakes every
		// MaxIdleConnDuration (100ms in these tests) and then exits.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// store returns the shared reference store and its URL (it requires the
// test service token).
func store(t testing.TB) (*refstore.Store, string) {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared.store, shared.err = refstore.Open(ctx, refstore.Options{Users: 300})
		if shared.err == nil {
			shared.srv = httptest.NewServer(shared.store.Handler(refstore.HandlerOptions{ServiceToken: testToken}))
		}
	})
	if shared.err != nil {
		t.Fatalf("reference store: %v", shared.err)
	}
	return shared.store, shared.srv.URL
}

// proxied starts a fault proxy in front of the shared store.
func proxied(t testing.TB) *faultproxy.Proxy {
	t.Helper()
	_, url := store(t)
	p, err := faultproxy.New(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// testConfig is a user-store configuration with short timers.
func testConfig(baseURL string) config.UserStore {
	op := config.Operation{
		Timeout:     time.Second,
		MaxInFlight: 64,
		Retry:       config.Retry{Attempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond},
		Breaker: config.Breaker{
			ConsecutiveFailures: 1000, MinRequests: 10, Interval: time.Minute,
			OpenTimeout: 300 * time.Millisecond, HalfOpenRequests: 2,
		},
	}
	check := op
	check.Retry = config.Retry{}
	return config.UserStore{
		BaseURL:             baseURL,
		ServiceToken:        testToken,
		MaxConnsPerHost:     32,
		MaxIdleConnDuration: 100 * time.Millisecond,
		DialTimeout:         time.Second,
		MaxResponseBytes:    256 << 10,
		RetryBudget:         config.RetryBudget{Ratio: 1, MinPerSecond: 1000},
		Operations:          config.Operations{UsernameCheck: check, Search: op, UserByID: op, LiveStreams: op},
	}
}

// eachOp applies change to every operation's settings.
func eachOp(cfg *config.UserStore, change func(*config.Operation)) {
	change(&cfg.Operations.UsernameCheck)
	change(&cfg.Operations.Search)
	change(&cfg.Operations.UserByID)
	change(&cfg.Operations.LiveStreams)
}

func newClient(t testing.TB, cfg config.UserStore) (*Client, *recorder) {
	t.Helper()
	obs := &recorder{}
	c, err := New(cfg, nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, obs
}

// testCall is a fully populated Call.
func testCall() *Call {
	return &Call{
		RequestID:   "req-1",
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		UserID:      refstore.DemoUserID,
		Roles:       []string{"user", "admin"},
		Language:    "tr",
		Timezone:    "UTC+03:00",
		Platform:    "mobile_ios",
		AppVersion:  "5.2.1",
		DeviceID:    "device-42",
	}
}

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu       sync.Mutex
	calls    map[string]int // "op outcome"
	retries  map[Op]int
	breakers []string // "op from>to"
}

func (r *recorder) Call(op Op, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[string(op)+" "+outcome]++
}

func (r *recorder) Retry(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.retries == nil {
		r.retries = map[Op]int{}
	}
	r.retries[op]++
}

func (r *recorder) BreakerState(op Op, from, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.breakers = append(r.breakers, string(op)+" "+from+">"+to)
}

func (r *recorder) outcomes(op Op, outcome string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[string(op)+" "+outcome]
}

func (r *recorder) retried(op Op) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retries[op]
}

func (r *recorder) transitions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.breakers...)
}
