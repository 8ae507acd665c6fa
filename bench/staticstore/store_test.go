package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/valyala/fasthttp"
)

// serve runs a Store on loopback and returns its base URL.
func serve(t *testing.T) string {
	t.Helper()
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// client is the gateway's own strict client with the default settings.
func client(t *testing.T, base string) *upstream.Client {
	t.Helper()
	cfg := config.Default().Upstreams.UserStore
	cfg.BaseURL = base
	c, err := upstream.New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func call() *upstream.Call {
	return &upstream.Call{RequestID: "bench-test", UserID: "u1", Roles: []string{"user"},
		Language: "en", Timezone: "UTC+00:00", Platform: "web"}
}

// The gateway's strict client accepts every answer: the username is the
// one asked, pages hold no more than asked and total covers them, users
// carry the asked id, streams are only for asked users.
func TestGatewayClientAcceptsEveryAnswer(t *testing.T) {
	c := client(t, serve(t))
	ctx := context.Background()

	for name, want := range map[string]bool{"johndoe123": true, "taken.name": false, "a_b.c9": true} {
		got, err := c.CheckUsername(ctx, call(), name)
		if err != nil {
			t.Fatalf("CheckUsername(%q): %v", name, err)
		}
		if got != want {
			t.Errorf("CheckUsername(%q) = %v, want %v", name, got, want)
		}
	}

	for _, tc := range []struct{ limit, offset, items int }{
		{20, 0, 20}, {1, 0, 1}, {100, 0, 100}, {50, 980, 20}, {10, SearchTotal, 0},
	} {
		res, err := c.Search(ctx, call(), "şükrü ışık", tc.limit, tc.offset)
		if err != nil {
			t.Fatalf("Search(limit %d, offset %d): %v", tc.limit, tc.offset, err)
		}
		if len(res.Items) != tc.items || res.Total != SearchTotal {
			t.Errorf("Search(limit %d, offset %d): %d items, total %d; want %d, %d",
				tc.limit, tc.offset, len(res.Items), res.Total, tc.items, SearchTotal)
		}
		seen := map[string]bool{}
		for _, u := range res.Items {
			if seen[u.ID] {
				t.Errorf("Search: user %s twice on one page", u.ID)
			}
			seen[u.ID] = true
		}
	}

	for _, id := range []string{"b0b0b0b0-0000-4000-8000-000000000000", "ABCDEF01-2345-4678-9abc-def012345679", "x"} {
		u, err := c.UserByID(ctx, call(), id)
		if err != nil {
			t.Fatalf("UserByID(%q): %v", id, err)
		}
		if u.ID != id || u.Username == "" || u.Photos["96"] == "" || u.MinutePrice.Currency != "TRY" {
			t.Errorf("UserByID(%q) = %+v", id, u)
		}
	}

	live, quiet := SearchUserID(0), SearchUserID(1)
	if !IsLive(live) || IsLive(quiet) {
		t.Fatalf("test ids: IsLive(%s)=%v IsLive(%s)=%v", live, IsLive(live), quiet, IsLive(quiet))
	}
	streams, err := c.ActiveLiveStreams(ctx, call(), []string{live, quiet, strings.ToUpper(live), SearchUserID(2)})
	if err != nil {
		t.Fatalf("ActiveLiveStreams: %v", err)
	}
	if len(streams) != 2 || streams[0].UserID != live || streams[1].UserID != SearchUserID(2) {
		t.Errorf("ActiveLiveStreams = %+v, want streams of %s and %s", streams, live, SearchUserID(2))
	}
}

// A malformed id is not found and a bad search is a validation failure:
// contract errors, which the client maps to its kinds.
func TestContractErrors(t *testing.T) {
	base := serve(t)
	c := client(t, base)
	ctx := context.Background()

	_, err := c.UserByID(ctx, call(), "not/an id")
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.Kind != upstream.KindNotFound {
		t.Errorf("UserByID(malformed): %v, want not found", err)
	}

	for _, path := range []string{
		contract.PathSearch + "?q=a&limit=0",
		contract.PathSearch + "?q=a&limit=101",
		contract.PathSearch + "?q=a&limit=5&offset=-1",
		contract.PathLiveStreams + "?userIds=",
		contract.PathLiveStreams + "?userIds=a,,b",
		contract.PathLiveStreams + "?userIds=" + strings.Repeat("a,", 100) + "b",
	} {
		status, body := get(t, base+path)
		var e contract.Error
		if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Code != contract.CodeValidationFailed {
			t.Errorf("GET %s = %d %s, want 400 validation_failed", path, status, body)
		}
	}
	status, body := get(t, base+"/internal/v2/nothing")
	if status != http.StatusNotFound || !bytes.Contains(body, []byte(contract.CodeNotFound)) {
		t.Errorf("unknown path = %d %s", status, body)
	}
	resp, err := http.Post(base+contract.PathUsernameCheck, "application/json", strings.NewReader(`{"username":`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed username body = %d, want 400", resp.StatusCode)
	}
}

// A username the fast path does not recognise (escapes, other spelling)
// is decoded properly and echoed as asked.
func TestUsernameSlowPath(t *testing.T) {
	base := serve(t)
	resp, err := http.Post(base+contract.PathUsernameCheck, "application/json",
		strings.NewReader(`{ "username" : "Jo\u0308hn" }`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out contract.UsernameCheckResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Username != "Jo\u0308hn" || !out.Available {
		t.Errorf("slow path answered %+v", out)
	}
}

func TestPayloadIsSettable(t *testing.T) {
	base := serve(t)
	want := []byte(`{"isSuccess":true,"statusCode":200,"data":{"x":1},"errors":[],"timestamp":"2026-01-01T00:00:00.000Z"}`)
	req, _ := http.NewRequest(http.MethodPut, base+PathPayload, bytes.NewReader(want))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT payload = %d", resp.StatusCode)
	}
	status, body := get(t, base+PathPayload)
	if status != http.StatusOK || !bytes.Equal(body, want) {
		t.Errorf("GET payload = %d %s, want %s", status, body, want)
	}
}

// The run function serves until its context ends and says where.
func TestRunPrintsAddressAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"staticstore", "-listen", "127.0.0.1:0"}, out, out) }()
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(bytes.TrimSpace(out.Bytes()), &line) == nil && line.Msg == "listening" {
			addr = line.Addr
		}
	}
	if addr == "" {
		t.Fatalf("no listening line: %q", out.Bytes())
	}
	if status, _ := get(t, "http://"+addr+"/healthz"); status != http.StatusOK {
		t.Errorf("healthz = %d", status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// The handler's own cost per answer, without the network: the upstream
// must stay far cheaper than what it is used to measure.
func BenchmarkHandle(b *testing.B) {
	s, err := NewStore()
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, method, uri, body string }{
		{"user", "GET", contract.PathUserPrefix + "b0b0b0b0-0000-4000-8000-000000000000", ""},
		{"search20", "GET", contract.PathSearch + "?q=a&limit=20&offset=0", ""},
		{"liveStreams20", "GET", contract.PathLiveStreams + "?userIds=" + idList(20), ""},
		{"usernameCheck", "POST", contract.PathUsernameCheck, `{"username":"johndoe123"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod(tc.method)
				ctx.Request.SetRequestURI(tc.uri)
				if tc.body != "" {
					ctx.Request.SetBodyString(tc.body)
				}
				s.Handle(&ctx)
				if ctx.Response.StatusCode() != fasthttp.StatusOK {
					b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}

func idList(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = SearchUserID(i)
	}
	return strings.Join(ids, ",")
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
