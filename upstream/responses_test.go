package upstream

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
	"github.com/valyala/fasthttp"
)

const (
	userJSON    = `{"createdAt":"2025-03-01T09:00:00.000Z","updatedAt":"2026-05-01T12:00:00.000Z","id":"` + refstore.DemoUserID + `","username":"sukru.isik","firstName":"Şükrü","minutePrice":{"amountMinor":1250,"currency":"TRY"}}`
	streamJSON  = `{"id":"s1","userId":"` + refstore.DemoUserID + `","title":"t","startedAt":"2026-01-01T00:00:00.000Z","viewerCount":3}`
	contractErr = `{"code":"%s","message":"m","details":{"field":"problem"}}`
)

// userAt is userJSON with one more string field.
func userAt(field, value string) string {
	return strings.Replace(userJSON, `"username"`, `"`+field+`":"`+value+`","username"`, 1)
}

// The store's times reach the apps in one form, UTC to the millisecond
// with Z (docs/api.md), whatever RFC 3339 spelling the store used: an
// offset, no fraction, nanoseconds. The instant is kept.
func TestStoreTimesAreCanonical(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	ctx := context.Background()

	user := strings.Replace(userAt("createdAt", "2025-03-01T12:00:00+03:00"), `"username"`, `"updatedAt":"2026-05-01T12:00:00.123456789Z","username"`, 1)
	if err := p.Set(faultproxy.Respond(200, "application/json", user)); err != nil {
		t.Fatal(err)
	}
	u, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
	if err != nil {
		t.Fatal(err)
	}
	if u.CreatedAt != "2025-03-01T09:00:00.000Z" || u.UpdatedAt != "2026-05-01T12:00:00.123Z" {
		t.Errorf("createdAt %q, updatedAt %q", u.CreatedAt, u.UpdatedAt)
	}

	if err := p.Set(faultproxy.Respond(200, "application/json", `{"items":[`+userAt("createdAt", "2025-03-01T09:00:00Z")+`],"total":1}`)); err != nil {
		t.Fatal(err)
	}
	page, err := c.Search(ctx, testCall(), "ali", 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := page.Items[0].CreatedAt; got != "2025-03-01T09:00:00.000Z" {
		t.Errorf("search item's createdAt %q", got)
	}

	stream := strings.Replace(streamJSON, "2026-01-01T00:00:00.000Z", "2025-12-31T19:30:00.5-04:30", 1)
	if err := p.Set(faultproxy.Respond(200, "application/json", `{"items":[`+stream+`]}`)); err != nil {
		t.Fatal(err)
	}
	streams, err := c.ActiveLiveStreams(ctx, testCall(), []string{refstore.DemoUserID})
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) != 1 || streams[0].StartedAt != "2026-01-01T00:00:00.500Z" {
		t.Errorf("streams %+v", streams)
	}
}

// callsByOp runs one call of each operation against the client.
func callsByOp(c *Client) map[Op]func() error {
	ctx := context.Background()
	return map[Op]func() error{
		OpUsernameCheck: func() error { _, err := c.CheckUsername(ctx, testCall(), "sukru.isik"); return err },
		OpSearch:        func() error { _, err := c.Search(ctx, testCall(), "ali", 2, 0); return err },
		OpUserByID:      func() error { _, err := c.UserByID(ctx, testCall(), refstore.DemoUserID); return err },
		OpLiveStreams: func() error {
			_, err := c.ActiveLiveStreams(ctx, testCall(), []string{refstore.DemoUserID, refstore.DemoAdminID})
			return err
		},
	}
}

// TestResponsesAreChecked answers every call with canned responses and
// checks how the client classifies them.
func TestResponsesAreChecked(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	eachOp(&cfg, func(o *config.Operation) { o.Retry.Attempts = 0 })
	cfg.MaxResponseBytes = 4 << 10
	c, _ := newClient(t, cfg)
	calls := callsByOp(c)
	all := []Op{OpUsernameCheck, OpSearch, OpUserByID, OpLiveStreams}

	type want struct {
		kind    Kind
		outcome string
		status  int
		code    string
	}
	badGateway := func(outcome string, status int) want { return want{KindBadGateway, outcome, status, ""} }
	for _, tc := range []struct {
		name string
		ops  []Op
		mode faultproxy.Mode
		want want
	}{
		{"html 200", all, faultproxy.HTML(), badGateway(OutcomeBadResponse, 200)},
		{"json as text", all, faultproxy.Respond(200, "text/plain", userJSON), badGateway(OutcomeBadResponse, 200)},
		{"no content type", all, faultproxy.Respond(200, "", userJSON), badGateway(OutcomeBadResponse, 200)},
		{"truncated json", all, faultproxy.TruncatedJSON(), badGateway(OutcomeBadResponse, 200)},
		{"trailing garbage", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", userJSON+`{}`), badGateway(OutcomeBadResponse, 200)},
		{"null", all, faultproxy.Respond(200, "application/json", `null`), badGateway(OutcomeBadResponse, 200)},
		{"empty object", all, faultproxy.Respond(200, "application/json", `{}`), badGateway(OutcomeBadResponse, 200)},
		{"array", all, faultproxy.Respond(200, "application/json", `[]`), badGateway(OutcomeBadResponse, 200)},
		{"empty body", all, faultproxy.Respond(200, "application/json", ``), badGateway(OutcomeBadResponse, 200)},
		{"oversized", all, faultproxy.Oversized(5 << 10), badGateway(OutcomeTooLarge, 0)},
		{"user without id", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", `{"username":"x","minutePrice":{"amountMinor":1,"currency":"TRY"}}`), badGateway(OutcomeBadResponse, 200)},
		{"another user", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", strings.Replace(userJSON, refstore.DemoUserID, refstore.DemoAdminID, 1)), badGateway(OutcomeBadResponse, 200)},
		{"float price", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", strings.Replace(userJSON, "1250", "12.5", 1)), badGateway(OutcomeBadResponse, 200)},
		{"price without currency", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", strings.Replace(userJSON, `"TRY"`, `""`, 1)), badGateway(OutcomeBadResponse, 200)},
		{"null items", []Op{OpSearch, OpLiveStreams}, faultproxy.Respond(200, "application/json", `{"items":null,"total":0}`), badGateway(OutcomeBadResponse, 200)},
		{"null item", []Op{OpSearch, OpLiveStreams}, faultproxy.Respond(200, "application/json", `{"items":[null],"total":1}`), badGateway(OutcomeBadResponse, 200)},
		{"no total", []Op{OpSearch}, faultproxy.Respond(200, "application/json", `{"items":[]}`), badGateway(OutcomeBadResponse, 200)},
		{"total below items", []Op{OpSearch}, faultproxy.Respond(200, "application/json", `{"items":[`+userJSON+`],"total":0}`), badGateway(OutcomeBadResponse, 200)},
		{"more items than the limit", []Op{OpSearch}, faultproxy.Respond(200, "application/json", `{"items":[`+userJSON+`,`+userJSON+`,`+userJSON+`],"total":3}`), badGateway(OutcomeBadResponse, 200)},
		{"stream of a stranger", []Op{OpLiveStreams}, faultproxy.Respond(200, "application/json", `{"items":[`+strings.Replace(streamJSON, refstore.DemoUserID, refstore.DemoMissingID, 1)+`]}`), badGateway(OutcomeBadResponse, 200)},
		{"two streams of one user", []Op{OpLiveStreams}, faultproxy.Respond(200, "application/json", `{"items":[`+streamJSON+`,`+streamJSON+`]}`), badGateway(OutcomeBadResponse, 200)},
		{"createdAt not a time", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", userAt("createdAt", "yesterday")), badGateway(OutcomeBadResponse, 200)},
		{"updatedAt without a zone", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", userAt("updatedAt", "2026-05-01T12:00:00")), badGateway(OutcomeBadResponse, 200)},
		// time.Parse reads these too, but RFC 3339 (section 5.6) has a
		// period before the fraction, a two-digit hour, and an offset of
		// at most 23:59.
		{"createdAt with a comma before its fraction", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", userAt("createdAt", "2025-03-01T09:00:00,123Z")), badGateway(OutcomeBadResponse, 200)},
		{"updatedAt with a one-digit hour", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", userAt("updatedAt", "2026-05-01T2:00:00Z")), badGateway(OutcomeBadResponse, 200)},
		{"search item's createdAt 24 hours ahead of UTC", []Op{OpSearch}, faultproxy.Respond(200, "application/json", `{"items":[`+userAt("createdAt", "2025-03-01T09:00:00+24:00")+`],"total":1}`), badGateway(OutcomeBadResponse, 200)},
		{"startedAt with an offset of 60 minutes", []Op{OpLiveStreams}, faultproxy.Respond(200, "application/json", `{"items":[`+strings.Replace(streamJSON, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000-02:60", 1)+`]}`), badGateway(OutcomeBadResponse, 200)},
		{"search item's createdAt not a time", []Op{OpSearch}, faultproxy.Respond(200, "application/json", `{"items":[`+userAt("createdAt", "1 May")+`],"total":1}`), badGateway(OutcomeBadResponse, 200)},
		{"startedAt not a time", []Op{OpLiveStreams}, faultproxy.Respond(200, "application/json", `{"items":[`+strings.Replace(streamJSON, "2026-01-01T00:00:00.000Z", "now", 1)+`]}`), badGateway(OutcomeBadResponse, 200)},
		{"startedAt missing", []Op{OpLiveStreams}, faultproxy.Respond(200, "application/json", `{"items":[`+strings.Replace(streamJSON, `"startedAt":"2026-01-01T00:00:00.000Z",`, "", 1)+`]}`), badGateway(OutcomeBadResponse, 200)},
		{"startedAt null", []Op{OpLiveStreams}, faultproxy.Respond(200, "application/json", `{"items":[`+strings.Replace(streamJSON, `"2026-01-01T00:00:00.000Z"`, "null", 1)+`]}`), badGateway(OutcomeBadResponse, 200)},
		{"createdAt missing", []Op{OpUserByID}, faultproxy.Respond(200, "application/json", strings.Replace(userJSON, `"createdAt":"2025-03-01T09:00:00.000Z",`, "", 1)), badGateway(OutcomeBadResponse, 200)},
		{"search item's updatedAt empty", []Op{OpSearch}, faultproxy.Respond(200, "application/json", `{"items":[`+userAt("updatedAt", "")+`],"total":1}`), badGateway(OutcomeBadResponse, 200)},
		{"check without available", []Op{OpUsernameCheck}, faultproxy.Respond(200, "application/json", `{"username":"sukru.isik"}`), badGateway(OutcomeBadResponse, 200)},
		{"check of another name", []Op{OpUsernameCheck}, faultproxy.Respond(200, "application/json", `{"username":"someone","available":true}`), badGateway(OutcomeBadResponse, 200)},
		{"201", all, faultproxy.Respond(201, "application/json", userJSON), badGateway(OutcomeBadStatus, 201)},
		{"204", all, faultproxy.Respond(204, "", ""), badGateway(OutcomeBadStatus, 204)},
		{"401", all, faultproxy.Respond(401, "application/json", fmt.Sprintf(contractErr, "unauthorized")), badGateway(OutcomeBadStatus, 401)},
		{"302", all, faultproxy.Respond(302, "text/html", "<a>moved</a>"), badGateway(OutcomeRedirect, 302)},
		{"500", all, faultproxy.Status(500), want{KindBadGateway, OutcomeError5xx, 500, "internal"}},
		{"502 html", all, faultproxy.Respond(502, "text/html", "<h1>Bad Gateway</h1>"), badGateway(OutcomeError5xx, 502)},
		{"503", all, faultproxy.Status(503), want{KindBadGateway, OutcomeError5xx, 503, "unavailable"}},
		{"400", all, faultproxy.Status(400), want{KindBadRequest, OutcomeBadRequest, 400, "validation_failed"}},
		{"400 with details", all, faultproxy.Respond(400, "application/json; charset=utf-8", fmt.Sprintf(contractErr, "validation_failed")), want{KindBadRequest, OutcomeBadRequest, 400, "validation_failed"}},
		{"404", []Op{OpUserByID}, faultproxy.Status(404), want{KindNotFound, OutcomeNotFound, 404, "not_found"}},
		{"404 to a call that names no resource", []Op{OpUsernameCheck, OpSearch, OpLiveStreams}, faultproxy.Status(404), badGateway(OutcomeBadStatus, 404)},
		{"404 html to a call that names no resource", []Op{OpUsernameCheck, OpSearch, OpLiveStreams}, faultproxy.Respond(404, "text/html", "<h1>Not Found</h1>"), badGateway(OutcomeBadStatus, 404)},
		{"409", all, faultproxy.Status(409), want{KindConflict, OutcomeConflict, 409, "conflict"}},
		{"404 html", []Op{OpUserByID}, faultproxy.Respond(404, "text/html", "<h1>Not Found</h1>"), badGateway(OutcomeBadResponse, 404)},
		{"404 foreign json", []Op{OpUserByID}, faultproxy.Respond(404, "application/json", `{"error":"no route"}`), badGateway(OutcomeBadResponse, 404)},
		{"404 with another code", []Op{OpUserByID}, faultproxy.Respond(404, "application/json", fmt.Sprintf(contractErr, "internal")), badGateway(OutcomeBadResponse, 404)},
		{"400 truncated", all, faultproxy.Respond(400, "application/json", `{"code":"validation_failed","mess`), badGateway(OutcomeBadResponse, 400)},
	} {
		if err := p.Set(tc.mode); err != nil {
			t.Fatal(err)
		}
		for _, op := range tc.ops {
			err := calls[op]()
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%s, %s: %v, want an *Error", tc.name, op, err)
				continue
			}
			if e.Op != op || e.Kind != tc.want.kind || e.Outcome != tc.want.outcome || e.Status != tc.want.status || e.Code != tc.want.code {
				t.Errorf("%s, %s: got op %s kind %v outcome %s status %d code %q; want %+v",
					tc.name, op, e.Op, e.Kind, e.Outcome, e.Status, e.Code, tc.want)
			}
			if strings.Contains(tc.name, "details") && e.Details["field"] != "problem" {
				t.Errorf("%s, %s: details %v", tc.name, op, e.Details)
			}
			if fault := IsUpstreamFault(err); fault != (tc.want.kind == KindBadGateway) {
				t.Errorf("%s, %s: IsUpstreamFault = %v", tc.name, op, fault)
			}
			if text := e.Error(); strings.Contains(text, "127.0.0.1") || strings.Contains(text, "<") || strings.Contains(text, "{") {
				t.Errorf("%s, %s: error text leaks: %q", tc.name, op, text)
			}
		}
	}
}

// TestStoreCodeInErrorTextIsBounded: the code of an error body is the
// store's to write, as long as the body; the error's text and its cause,
// which the gateway logs for every failure, quote only the start of it.
func TestStoreCodeInErrorTextIsBounded(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	eachOp(&cfg, func(o *config.Operation) { o.Retry.Attempts = 0 })
	c, _ := newClient(t, cfg)
	calls := callsByOp(c)
	long := strings.Repeat("x", 32<<10)
	for _, tc := range []struct {
		name string
		op   Op
		mode faultproxy.Mode
	}{
		{"500 with a long code", OpSearch, faultproxy.Respond(500, "application/json", fmt.Sprintf(contractErr, long))},
		{"404 with a long code", OpUserByID, faultproxy.Respond(404, "application/json", fmt.Sprintf(contractErr, long))},
		{"400 with a long code", OpSearch, faultproxy.Respond(400, "application/json", fmt.Sprintf(contractErr, long))},
	} {
		if err := p.Set(tc.mode); err != nil {
			t.Fatal(err)
		}
		var e *Error
		if err := calls[tc.op](); !errors.As(err, &e) {
			t.Fatalf("%s: %v, want an *Error", tc.name, err)
		}
		if n := len(e.Error()); n > 256 {
			t.Errorf("%s: error text of %d bytes", tc.name, n)
		}
		if e.Err != nil {
			if n := len(e.Err.Error()); n > 256 {
				t.Errorf("%s: cause text of %d bytes", tc.name, n)
			}
		}
	}
}

// TestRedirectsAreNotFollowed: the Location would answer fine, but a 3xx
// is a failure and nothing follows it.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var hits, followed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(userJSON))
			return
		}
		hits.Add(1)
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	c, _ := newClient(t, cfg)
	_, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
	var e *Error
	if !errors.As(err, &e) || e.Outcome != OutcomeRedirect || e.Kind != KindBadGateway {
		t.Fatalf("got %v", err)
	}
	if hits.Load() != 1 || followed.Load() != 0 {
		t.Fatalf("hits %d, followed %d", hits.Load(), followed.Load())
	}
}

func TestConnectionFailures(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	eachOp(&cfg, func(o *config.Operation) { o.Retry.Attempts = 0 })
	c, _ := newClient(t, cfg)
	calls := callsByOp(c)

	for _, tc := range []struct {
		name string
		mode faultproxy.Mode
		// outcomes of consecutive calls after the switch: a mode that
		// closes connections leaves the client a stale pooled one first
		// (unless the idle sweeper dropped it already: "a|b" allows both).
		outcomes []string
		requests int64 // how many reached the proxy per call
	}{
		{"refused", faultproxy.Refuse(), []string{OutcomeReset + "|" + OutcomeConnect, OutcomeConnect, OutcomeConnect}, 0},
		{"hang up", faultproxy.HangUp(), []string{OutcomeReset, OutcomeReset}, 1},
		{"reset", faultproxy.Reset(), []string{OutcomeReset, OutcomeReset}, 1},
		{"reset mid-body", faultproxy.ResetMidBody(20), []string{OutcomeReset, OutcomeReset}, 1},
		// The RST can race the end of the handshake: either is right.
		{"accept and reset", faultproxy.AcceptClose(), []string{OutcomeReset + "|" + OutcomeConnect, OutcomeReset + "|" + OutcomeConnect}, 0},
	} {
		for _, op := range Ops {
			// A healthy call first, on a fresh connection that stays in the
			// pool: fasthttp re-sends most eagerly on reused connections.
			p.Heal()
			c.Close()
			if err := calls[op](); err != nil {
				t.Fatalf("%s: healthy call: %v", op, err)
			}
			if err := p.Set(tc.mode); err != nil {
				t.Fatal(err)
			}
			for i, outcome := range tc.outcomes {
				before := p.Stats().Requests
				err := calls[op]()
				var e *Error
				if !errors.As(err, &e) || e.Kind != KindBadGateway || !slices.Contains(strings.Split(outcome, "|"), e.Outcome) || !IsUpstreamFault(err) {
					t.Errorf("%s, %s, call %d: got %v (%v), want bad gateway %s", tc.name, op, i, err, errors.Unwrap(err), outcome)
					continue
				}
				if n := p.Stats().Requests - before; n != tc.requests {
					t.Errorf("%s, %s, call %d: %d requests reached the proxy, want %d (no automatic re-send)", tc.name, op, i, n, tc.requests)
				}
				if strings.Contains(e.Error(), "127.0.0.1") {
					t.Errorf("%s: error text has the address: %q", tc.name, e.Error())
				}
			}
		}
	}
}

// rawStore answers the client it returns with serve, called once per
// connection, in its own goroutine (n numbers the connections from 1; the
// connection is closed when serve returns). cfg, when not nil, adjusts the
// client's configuration. The client is closed first when the test ends,
// which ends serve's keep-alive loops.
func rawStore(t *testing.T, cfg func(*config.UserStore), serve func(conn net.Conn, n int64)) *Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	us := testConfig("http://" + ln.Addr().String())
	if cfg != nil {
		cfg(&us)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	c, _ := newClient(t, us)
	var conns atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serve(conn, n)
			}()
		}
	}()
	return c
}

// resetAfterFirst serves the store contract over keep-alive connections,
// except that the first connection's first answer is first (raw bytes),
// followed by a reset (RST) instead of the rest.
func resetAfterFirst(t *testing.T, cfg func(*config.UserStore), first string) *Client {
	t.Helper()
	return rawStore(t, cfg, func(conn net.Conn, n int64) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if n == 1 {
				io.WriteString(conn, first)
				time.Sleep(20 * time.Millisecond)
				conn.(*net.TCPConn).SetLinger(0)
				return
			}
			body := userJSON
			if req.URL.Path == contract.PathUsernameCheck {
				body = `{"username":"sukru.isik","available":true}`
			}
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
}

// A reset right after a chunked body's last data chunk, where the
// terminating chunk should be: fasthttp takes it for the body's end, the
// body decodes, and the dead connection was pooled; the next call, a
// username check that is never retried, failed on it.
func TestResetAfterAWholeChunkedBodyDoesNotPoisonThePool(t *testing.T) {
	c := resetAfterFirst(t, nil, fmt.Sprintf(
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(userJSON), userJSON))
	if _, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID); err != nil {
		t.Logf("the body cut before its last chunk: %v", err) // either answer is right
	}
	if _, err := c.CheckUsername(context.Background(), testCall(), "sukru.isik"); err != nil {
		t.Fatalf("the username check failed on the dead connection: %v", err)
	}
}

// TestCutChunkedBodyDoesNotPoisonThePool: fasthttp takes a reset in the
// middle of a chunked body for its end and pools the dead connection.
func TestCutChunkedBodyDoesNotPoisonThePool(t *testing.T) {
	// The head and part of a chunked body, then RST.
	c := resetAfterFirst(t, func(cfg *config.UserStore) { cfg.Operations.UserByID.Retry.Attempts = 0 },
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"id\":\"8\r\n")
	_, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindBadGateway {
		t.Fatalf("cut body: %v", err)
	}
	if _, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID); err != nil {
		t.Fatalf("the next call failed on the dead connection: %v", err)
	}
}

// A read whose chunked body is cut by a reset is retried, as one cut
// short of its Content-Length is (docs/resilience.md: "connection reset
// or closed before the whole response"): the reference store sends its
// search pages chunked. Cut inside a chunk and at a chunk's end, and a
// body read to the connection's close.
func TestCutChunkedBodyIsRetried(t *testing.T) {
	for name, first := range map[string]string{
		"inside a chunk": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{\"id\":\"8",
		"after a chunk":  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"id\":\"8\r\n",
		"Content-Length": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"id\":\"8",
		"no body at all": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
		// Neither length nor chunks: the body ends with the connection
		// (HTTP/1.0 style), and fasthttp takes a reset for that end.
		"read to the close":           "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"id\":\"8",
		"read to the close, HTTP/1.0": "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"id\":\"8",
	} {
		t.Run(name, func(t *testing.T) {
			c := resetAfterFirst(t, nil, first)
			call := testCall()
			u, err := c.UserByID(context.Background(), call, refstore.DemoUserID)
			if err != nil || u.ID != refstore.DemoUserID {
				t.Fatalf("cut body not retried: %v", err)
			}
			if n := call.Exchanges(); n != 2 {
				t.Fatalf("%d exchanges, want 2 (the cut one and its retry)", n)
			}
		})
	}
}

// A store that sends one answer too many on a connection (here a search
// page after the first answer) puts the connection out of step: the next
// call on it reads the extra answer as its own. It echoes the X-Request-Id
// of the request it answers, as the contract allows, so the client refuses
// an answer naming another request, and drops the connection, on which
// the refused call's own answer is still waiting.
func TestAnswerToAnotherRequestIsRefused(t *testing.T) {
	page := func(id, name string) string { return searchPageAnswer(name, contract.HeaderRequestID+": "+id+"\r\n") }
	c := rawStore(t, func(us *config.UserStore) {
		eachOp(us, func(o *config.Operation) { o.Retry.Attempts = 0 })
		us.MaxIdleConnDuration = 500 * time.Millisecond // the connection stays pooled through the test
	}, func(conn net.Conn, nth int64) {
		br := bufio.NewReader(conn)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			id, q := req.Header.Get(contract.HeaderRequestID), req.URL.Query().Get("q")
			io.WriteString(conn, page(id, q))
			if nth == 1 && n == 0 {
				// One answer too many, after the client read the first
				// (sent together, its reader would drop it).
				time.Sleep(50 * time.Millisecond)
				io.WriteString(conn, page(id, "someone.else"))
			}
		}
	})
	ctx := context.Background()
	call := func(id, q string) (*contract.SearchResponse, error) {
		cl := testCall()
		cl.RequestID = id
		return c.Search(ctx, cl, q, 2, 0)
	}
	if r, err := call("req-1", "ali"); err != nil || len(r.Items) != 1 || r.Items[0].Username != "ali" {
		t.Fatalf("first search: %+v, %v", r, err)
	}
	time.Sleep(100 * time.Millisecond) // the extra answer is in the socket
	r, err := call("req-2", "bob")
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindBadGateway || e.Outcome != OutcomeBadResponse || !errors.Is(err, errOtherRequest) {
		t.Fatalf("the extra answer was taken for the next call's: %+v, %v", r, err)
	}
	if r, err := call("req-3", "cem"); err != nil || r.Items[0].Username != "cem" {
		t.Fatalf("the call after it: %+v, %v (the out-of-step connection was kept)", r, err)
	}
}

// searchPageAnswer is a raw 200 answer to a search: a page with the one
// user named name, with the extra header lines given.
func searchPageAnswer(name, header string) string {
	body := searchPageBody(name)
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", header, len(body), body)
}

// searchPageBody is a search page with the one user named name.
func searchPageBody(name string) string {
	return `{"items":[` + strings.Replace(userJSON, "sukru.isik", name, 1) + `],"total":1}`
}

// An interim answer (1xx other than 100, which fasthttp skips) was taken
// by fasthttp for the whole response, and its connection pooled with the
// final answer still to come on it: the next call on that connection read
// it as its own. A store need not echo X-Request-Id (the contract lets it),
// so nothing else told it apart: the next search was served the previous
// search's page. An interim answer is now skipped, and the call gets the
// final answer after it; a 101, which cannot be skipped (what follows is
// not HTTP), is a failure (bad_status), and its connection is dropped.
func TestInterimAnswerDoesNotPutTheConnectionOutOfStep(t *testing.T) {
	page := func(name string) string { return searchPageAnswer(name, "") }
	for _, tc := range []struct {
		interim string
		refused int // 0: skipped
	}{
		{"103 Early Hints\r\nLink: </style.css>; rel=preload", 0},
		{"102 Processing", 0},
		{"101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade", http.StatusSwitchingProtocols},
	} {
		t.Run(tc.interim[:3], func(t *testing.T) {
			c := rawStore(t, func(us *config.UserStore) {
				eachOp(us, func(o *config.Operation) { o.Retry.Attempts = 0 })
				us.MaxIdleConnDuration = 500 * time.Millisecond // the connection stays pooled through the test
			}, func(conn net.Conn, nth int64) {
				br := bufio.NewReader(conn)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if nth == 1 && n == 0 {
						io.WriteString(conn, "HTTP/1.1 "+tc.interim+"\r\n\r\n")
						// The final answer after the client read the
						// interim one (sent together, its reader would
						// drop it).
						time.Sleep(50 * time.Millisecond)
					}
					io.WriteString(conn, page(req.URL.Query().Get("q")))
				}
			})
			ctx := context.Background()
			r, err := c.Search(ctx, testCall(), "ali", 2, 0)
			if tc.refused == 0 {
				wantOwnPage(t, "the search answered after an interim answer", "ali", r, err)
			} else if e := (*Error)(nil); !errors.As(err, &e) || e.Kind != KindBadGateway || e.Outcome != OutcomeBadStatus || e.Status != tc.refused {
				t.Fatalf("interim answer: %v", err)
			}
			time.Sleep(100 * time.Millisecond) // a final answer not read is in the socket
			r, err = c.Search(ctx, testCall(), "bob", 2, 0)
			wantOwnPage(t, "the next search", "bob", r, err)
		})
	}
}

// A call waiting for a connection (the pool at maxConnsPerHost) is handed
// the connection of a call that ends, directly, before that call can drop
// anything. The connection of an interim answer, its final answer still to
// come, was handed over so: the waiting search read the previous search's
// page as its own. fasthttp skips one 100 Continue and took what came
// next for the response: a 103 after a 100, or a second 100, was handed
// over so too. Every interim answer is now dropped before fasthttp reads
// it, over TLS too (the answer is read above it), and the answer after
// them is the call's; past maxInterim of them, the call fails and its
// connection is closed.
func TestInterimAnswerConnectionIsNotHandedToAWaitingCall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tls      bool
		interims []int
		refused  int // the interim answer refused, 0 if the call gets its page
	}{
		{"103", false, []int{http.StatusEarlyHints}, 0},
		{"102 over TLS", true, []int{http.StatusProcessing}, 0},
		{"100", false, []int{http.StatusContinue}, 0},
		{"100 then 103", false, []int{http.StatusContinue, http.StatusEarlyHints}, 0},
		{"100 then 102 over TLS", true, []int{http.StatusContinue, http.StatusProcessing}, 0},
		{"100 twice", false, []int{http.StatusContinue, http.StatusContinue}, 0},
		{"too many", false, slices.Repeat([]int{http.StatusEarlyHints}, maxInterim+1), http.StatusEarlyHints},
		{"too many over TLS", true, slices.Repeat([]int{http.StatusEarlyHints}, maxInterim+1), http.StatusEarlyHints},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held, interim := make(chan struct{}), make(chan struct{})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query().Get("q")
				if q == "ali" {
					close(held)
					<-interim
					for _, status := range tc.interims {
						w.WriteHeader(status)
					}
					// The final answer after the client read the
					// interim one.
					time.Sleep(50 * time.Millisecond)
				}
				w.Header().Set("Content-Type", mimeJSON)
				io.WriteString(w, searchPageBody(q))
			}))
			ferr := searchWhileOneWaits(t, srv, tc.tls, held, interim)
			if tc.refused == 0 {
				if ferr != nil {
					t.Fatalf("the answer after the interim ones: %v", ferr)
				}
			} else if e := (*Error)(nil); !errors.As(ferr, &e) || e.Outcome != OutcomeBadStatus || e.Status != tc.refused {
				t.Fatalf("interim answer: %v", ferr)
			}
		})
	}
}

// fasthttp skips blank lines (CRLF or LF) before a status line, as many
// as its read buffer holds: a broken store may leave one after a body.
// answerConn looked for an interim answer only at the very start, so one
// after a blank line got past it, fasthttp took it for the whole
// response, and the call waiting for the connection read the final
// answer as its own: the previous search's page. Blank lines are now
// skipped before an answer's status is looked at, between interim
// answers too, and the answer after the interim ones is the call's. So
// did a status line answerConn did not take for one and fasthttp does: a
// code with a leading zero, another protocol word than HTTP/1.x (after
// which fasthttp pools the connection only with Connection: keep-alive).
// The status is now found as fasthttp finds it.
func TestInterimAnswerFasthttpReadsIsSkipped(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tls      bool
		interims string
	}{
		{"before it", false, "\r\nHTTP/1.1 103 Early Hints\r\n\r\n"},
		{"before it over TLS", true, "\r\nHTTP/1.1 103 Early Hints\r\n\r\n"},
		{"LF before it", false, "\n\nHTTP/1.1 103 Early Hints\n\n"},
		{"between two", false, "HTTP/1.1 100 Continue\r\n\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n"},
		{"with a leading zero", false, "HTTP/1.1 0103 Early Hints\r\n\r\n"},
		{"after another protocol word", false, "HTTP/2 103 Early Hints\r\nConnection: keep-alive\r\n\r\n"},
		{"after another protocol word over TLS", true, "X 102\r\nConnection: keep-alive\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rawAnswerWhileOneWaits(t, tc.tls, func(q string, rw *bufio.ReadWriter) {
				io.WriteString(rw, tc.interims)
				rw.Flush()
				// The final answer after the client read the interim
				// ones.
				time.Sleep(50 * time.Millisecond)
				for {
					io.WriteString(rw, searchPageAnswer(q, ""))
					rw.Flush()
					next, err := http.ReadRequest(rw.Reader)
					if err != nil {
						return
					}
					io.Copy(io.Discard, next.Body)
					q = next.URL.Query().Get("q")
				}
			})
			if err != nil {
				t.Fatalf("the answer after the interim ones: %v", err)
			}
		})
	}
}

// fasthttp reads no body after a 204 or a 304 (RFC 9112, 6.3). A store
// that sent one anyway left it on the connection, and fasthttp pooled the
// connection: a call waiting for one (the pool at maxConnsPerHost) was
// handed it at once and read that body as the start of its own answer,
// failing (bad_response) though nothing was wrong with it. Such an answer
// is now refused where it starts, its connection closed, and the call
// that got it fails as it did: a 304 as a redirect, a 204 as a bad
// status. The stray body goes out once the next request has come in on
// the connection: the order in which the waiting call would read it,
// however the store's writes are timed. One after blank lines, which
// fasthttp skips, got past the check at the start, and was handed on so
// too: it is refused as well, and so is a status line answerConn did not
// take for a 204 or 304 and fasthttp does (a code with a leading zero,
// another protocol word than HTTP/1.x, after which fasthttp pools the
// connection only with Connection: keep-alive).
func TestBodyAfterABodilessAnswerIsNotHandedToAWaitingCall(t *testing.T) {
	// As json.Encoder writes it, with a newline: without one, fasthttp
	// would take a body with no space in it for the protocol name of the
	// status line after it.
	stray := searchPageBody("ali") + "\n"
	for _, tc := range []struct {
		name    string
		tls     bool
		lead    string // sent before the answer
		head    string
		status  string
		outcome string
	}{
		{"204", false, "", "HTTP/1.1 204 No Content", "204", OutcomeBadStatus},
		{"304", false, "", "HTTP/1.1 304 Not Modified\r\nETag: \"p1\"", "304", OutcomeRedirect},
		{"204 over TLS", true, "", "HTTP/1.1 204 No Content", "204", OutcomeBadStatus},
		{"304 over TLS", true, "", "HTTP/1.1 304 Not Modified\r\nETag: \"p1\"", "304", OutcomeRedirect},
		// fasthttp skips blank lines before a status line.
		{"204 after a blank line", false, "\r\n", "HTTP/1.1 204 No Content", "204", OutcomeBadStatus},
		{"304 after blank lines", false, "\n\r\n\n", "HTTP/1.1 304 Not Modified\r\nETag: \"p1\"", "304", OutcomeRedirect},
		{"204 after a blank line over TLS", true, "\r\n", "HTTP/1.1 204 No Content", "204", OutcomeBadStatus},
		{"204 after a 103 and a blank line", false, "HTTP/1.1 103 Early Hints\r\n\r\n\r\n", "HTTP/1.1 204 No Content", "204", OutcomeBadStatus},
		// fasthttp reads the status as parseFirstLine finds it.
		{"0204", false, "", "HTTP/1.1 0204 No Content", "204", OutcomeBadStatus},
		{"304 after another protocol word", false, "", "X 304 Not Modified\r\nConnection: keep-alive\r\nETag: \"p1\"", "304", OutcomeRedirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ferr := rawAnswerWhileOneWaits(t, tc.tls, func(_ string, rw *bufio.ReadWriter) {
				fmt.Fprintf(rw, "%s%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", tc.lead, tc.head, len(stray))
				rw.Flush()
				next, err := http.ReadRequest(rw.Reader)
				if err != nil {
					return // the connection was closed, not handed on
				}
				io.Copy(io.Discard, next.Body)
				io.WriteString(rw, stray+searchPageAnswer(next.URL.Query().Get("q"), ""))
				rw.Flush()
			})
			wantBodiless(t, ferr, tc.status, tc.outcome, "status "+tc.status)
		})
	}
}

// rawAnswerWhileOneWaits is searchWhileOneWaits with a store that answers
// "ali" raw, as net/http would not (bytes before an answer, a body after
// a 204 or 304): answer writes on the connection, taken from net/http,
// once the waiting search is in; any other search gets its page.
func rawAnswerWhileOneWaits(t *testing.T, useTLS bool, answer func(q string, rw *bufio.ReadWriter)) error {
	t.Helper()
	held, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		if q != "ali" {
			w.Header().Set("Content-Type", mimeJSON)
			io.WriteString(w, searchPageBody(q))
			return
		}
		close(held)
		<-release
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		answer(q, rw)
	}))
	return searchWhileOneWaits(t, srv, useTLS, held, release)
}

// searchWhileOneWaits starts srv (over TLS or not) and, through a client
// of one connection, searches "ali": once srv's handler has closed held,
// a search for "bob" waits for that connection, and release is closed
// for the handler to answer "ali". It checks that the waiting search got
// its own page, and returns the error of "ali"'s.
func searchWhileOneWaits(t *testing.T, srv *httptest.Server, useTLS bool, held, release chan struct{}) error {
	t.Helper()
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	// The second call waits for the connection (a quarter of the dial
	// timeout, capped by the operations' timeouts): 2s, which a busy
	// machine does not run out between the first call's answer and its
	// close.
	cfg.MaxConnsPerHost = 1
	cfg.DialTimeout = 8 * time.Second
	eachOp(&cfg, func(o *config.Operation) { o.Retry.Attempts = 0; o.Timeout = 8 * time.Second })
	c, _ := newClient(t, cfg)
	if useTLS {
		roots := x509.NewCertPool()
		roots.AddCert(srv.Certificate())
		c.hosts[0].tls.RootCAs = roots
	}
	ctx := context.Background()
	first := make(chan error)
	go func() {
		_, err := c.Search(ctx, testCall(), "ali", 2, 0)
		first <- err
	}()
	<-held
	second := make(chan struct{})
	var r *contract.SearchResponse
	var err error
	go func() {
		defer close(second)
		r, err = c.Search(ctx, testCall(), "bob", 2, 0)
	}()
	for c.hosts[0].client.PendingRequests() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(release) // the second call waits for the first's connection
	ferr := <-first
	<-second
	wantOwnPage(t, "the waiting search", "bob", r, err)
	return ferr
}

// wantBodiless fails the test unless err is the failure of an answer with
// status whose outcome is outcome and whose cause reads cause.
func wantBodiless(t *testing.T, err error, status, outcome, cause string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindBadGateway || e.Outcome != outcome || strconv.Itoa(e.Status) != status ||
		e.Err == nil || e.Err.Error() != cause {
		t.Fatalf("the %s answer: %v (cause %v), want bad gateway, %s, cause %q", status, err, errors.Unwrap(err), outcome, cause)
	}
}

// wantOwnPage fails the test unless the search named what got the page of
// username: not an error, nor another search's page.
func wantOwnPage(t *testing.T, what, username string, r *contract.SearchResponse, err error) {
	t.Helper()
	if err != nil || r.Items[0].Username != username {
		if r != nil {
			t.Fatalf("%s got %q's page (%v)", what, r.Items[0].Username, err)
		}
		t.Fatalf("%s: %v", what, err)
	}
}

// The status of an answer split over reads is still seen: the first read
// of an answer goes on until the status code is in, and past any interim
// answer, which it drops, to the status after it.
func TestAnswerConnSeesTheStatusOfASplitAnswer(t *testing.T) {
	for _, tc := range []struct {
		parts   []string
		interim int
	}{
		{[]string{"HTTP/1.1 1", "03 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"HTTP/1.0 102 Processing\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"HTTP/1.1 10", "0 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"}, 0},
		{[]string{"HTTP/1.1 2", "00 OK\r\nContent-Length: 0\r\n\r\n"}, 0},
		{[]string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"HTTP/1.1 100 Continue\r\n", "\r\nHTTP/1.1 1", "02 Processing\r\n\r\n", "HTTP/1.1 200 OK\r\n"}, 0},
		{[]string{"HTTP/1.1 100 Continue\r", "\n\r", "\nHTTP/1.1 103\r\n\r", "\nHTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"HTTP/1.1 103 Early Hints\nLink: </a.css>\n\n", "HTTP/1.1 200 OK\n\n"}, 0},
		{[]string{"HTTP/1.1 100 Continue\r\nX-A: 1\r\n folded\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", maxInterim) + "HTTP/1.1 200 OK\r\n\r\n"}, 0},
		// What cannot be skipped: a switch of protocols, more interim
		// answers than maxInterim, and one longer than the read buffer
		// (fasthttp would not take it).
		{[]string{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"}, 101},
		{[]string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"}, 101},
		{[]string{strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", maxInterim+1) + "HTTP/1.1 200 OK\r\n\r\n"}, 103},
		{[]string{"HTTP/1.1 100 Continue\r\nX-A: " + strings.Repeat("a", 4096) + "\r\n\r\n"}, 100},
		{[]string{"HTTP/1.1 103 Early Hints\r\nLink: " + strings.Repeat("a", 4096) + "\r\n\r\n"}, 103},
		// Blank lines, which fasthttp skips before a status line, before
		// and between answers, split over reads or not.
		{[]string{"\r\nHTTP/1.1 103 Early Hints\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"\n\r\n\nHTTP/1.1 102 Processing\n\n", "\r\nHTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"\r", "\n", "\r\nHTTP/1.1 1", "03\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"HTTP/1.1 100 Continue\r\n\r\n\r\n", "\r\nHTTP/1.1 103 Early Hints\r\n\r\n\n", "HTTP/1.1 200 OK\r\n"}, 0},
		{[]string{"\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"}, 101},
		{[]string{"HTTP/1.1 103 Early Hints\r\n\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"}, 101},
		{[]string{strings.Repeat("\r\n", 1024) + "HTTP/1.1 103 Early Hints\r\nLink: " + strings.Repeat("a", 2048) + "\r\n\r\n"}, 103},
		// Status lines as fasthttp reads them (parseFirstLine): any word
		// before the first space, leading zeros, the code ended by a
		// space or the line's end, which is waited for.
		{[]string{"HTTP/2 103 Early Hints\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"http/1.1 100 Continue\r\n\r\nX 0102\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"\rHTTP/1.1 103\n\n", "HTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"HTTP/1.1 0103 Early Hints\r\n\r\n", "HTTP/1.1 200 OK\r\n"}, 0},
		{[]string{"HTTP/1", ".1 10", "3", "\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"}, 0},
		{[]string{"HTTP/2 101\r\n\r\n"}, 101},
	} {
		got, marks, err := readAnswerStart(tc.parts)
		if tc.interim != 0 {
			if len(got) != 0 || err != errInterim || marks.refused.Load() != int32(tc.interim) || marks.head != nil {
				t.Errorf("%q: read %d, %v, marked %d; want %d refused", tc.parts, len(got), err, marks.refused.Load(), tc.interim)
			}
		} else if err != nil || marks.refused.Load() != 0 || !strings.HasPrefix(strings.TrimLeft(string(got), "\r\n"), "HTTP/1.1 200") {
			t.Errorf("%q: read %q, %v, marked %d; want the final answer's start", tc.parts, got, err, marks.refused.Load())
		}
	}
}

// readAnswerStart is answerConn's first read of the answer to a request,
// into a buffer of 4096 bytes (fasthttp's default), the store writing the
// answer in parts (one read each when it fits: net.Pipe). It returns what
// the read gave, the connection's marks and the read's error.
func readAnswerStart(parts []string) ([]byte, *connMarks, error) {
	client, store := net.Pipe()
	defer client.Close()
	c := &answerConn{Conn: client, marks: new(connMarks)}
	go func() {
		io.ReadFull(store, make([]byte, 4))
		for _, p := range parts {
			io.WriteString(store, p)
		}
		store.Close()
	}()
	c.Write([]byte("GET "))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	return buf[:n], c.marks, err
}

// An answer that starts with a 204 or 304, split over reads or not, is
// refused once its header block is in, which is kept for send; one whose
// header block outgrows the read buffer is passed on (fasthttp refuses it
// itself), as is any other status.
func TestAnswerConnRefusesABodilessAnswer(t *testing.T) {
	long := "HTTP/1.1 204 No Content\r\nX-A: " + strings.Repeat("a", 4096) + "\r\n\r\n"
	for _, tc := range []struct {
		parts   []string
		refused int    // 0: passed on
		head    string // the header block kept, or the start passed on
	}{
		{[]string{"HTTP/1.1 2", "04 No Content\r\n\r\n{}\n"}, 204, "HTTP/1.1 204 No Content\r\n\r\n"},
		{[]string{"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n", "\r", "\n{}"}, 304, "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n"},
		{[]string{"HTTP/1.0 304 Not Modified\n\n"}, 304, "HTTP/1.0 304 Not Modified\n\n"},
		{[]string{"HTTP/1.1 103 Early Hints\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n"}, 204, "HTTP/1.1 204 No Content\r\n\r\n"},
		{[]string{long}, 0, long[:4096]},
		{[]string{"HTTP/1.1 205 Reset Content\r\n\r\n"}, 0, "HTTP/1.1 205"},
		{[]string{"HTTP/1.1 404 Not Found\r\n\r\n"}, 0, "HTTP/1.1 404"},
		// The status as fasthttp reads it (parseFirstLine): any word
		// before the first space, leading zeros, the code ended by a space
		// or the line's end, which is waited for. A line fasthttp fails on
		// (a code with a letter after it, one that overflows) is passed
		// on, as is one longer than the read buffer.
		{[]string{"HTTP/1.1 0204 No Content\r\n\r\n{}\n"}, 204, "HTTP/1.1 0204 No Content\r\n\r\n"},
		{[]string{"X 304\r\n\r\n"}, 304, "X 304\r\n\r\n"},
		{[]string{"\rHTTP/1.1 204\r\n\r\n"}, 204, "\rHTTP/1.1 204\r\n\r\n"},
		{[]string{"HTTP/2 103\r\n\r\n", "http/1.1 204\n\n"}, 204, "http/1.1 204\n\n"},
		{[]string{"HTTP/1.1 204", "\r\n\r\n"}, 204, "HTTP/1.1 204\r\n\r\n"},
		{[]string{"HTTP/1.1 204", "0 No Content\r\n\r\n"}, 0, "HTTP/1.1 2040 No Content\r\n"},
		{[]string{"HTTP/1.1 2040 No Content\r\n\r\n"}, 0, "HTTP/1.1 2040 No Content\r\n"},
		{[]string{"HTTP/1.1 204x\r\n\r\n"}, 0, "HTTP/1.1 204x\r\n"},
		{[]string{"HTTP/1.1 18446744073709551820\r\n\r\n"}, 0, "HTTP/1.1 18446744073709551820\r\n"},
		{[]string{"HTTP/1.1 204 " + strings.Repeat("a", 4096)}, 0, "HTTP/1.1 204 aaa"},
		// After blank lines, which fasthttp skips; the header block kept
		// starts at the status line. As many as fill the read buffer are
		// passed on: fasthttp refuses them itself.
		{[]string{"\r\n", "HTTP/1.1 204 No Content\r\n\r\n{}\n"}, 204, "HTTP/1.1 204 No Content\r\n\r\n"},
		{[]string{"\n\r\n\nHTTP/1.0 304 Not Modified\n\n"}, 304, "HTTP/1.0 304 Not Modified\n\n"},
		{[]string{"\r", "\nHTTP/1.1 2", "04 No Content\r\n\r\n"}, 204, "HTTP/1.1 204 No Content\r\n\r\n"},
		{[]string{"HTTP/1.1 103 Early Hints\r\n\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n"}, 204, "HTTP/1.1 204 No Content\r\n\r\n"},
		{[]string{"\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n"}, 0, "\r\n\r\nHTTP/1.1 404"},
		{[]string{strings.Repeat("\r\n", 2048) + "HTTP/1.1 204 No Content\r\n\r\n"}, 0, strings.Repeat("\r\n", 2048)},
		{[]string{strings.Repeat("\n", 4090) + "HTTP/1.1 204 No Content\r\n\r\n"}, 0, strings.Repeat("\n", 4090) + "HTTP/1"},
	} {
		got, marks, err := readAnswerStart(tc.parts)
		if tc.refused != 0 {
			if len(got) != 0 || err != errBodiless || marks.refused.Load() != int32(tc.refused) || string(marks.head) != tc.head {
				t.Errorf("%q: read %d, %v, marked %d, head %q; want %d refused", tc.parts, len(got), err, marks.refused.Load(), marks.head, tc.refused)
			}
		} else if err != nil || marks.refused.Load() != 0 || !strings.HasPrefix(string(got), tc.head) {
			t.Errorf("%q: read %q, %v, marked %d; want it passed on", tc.parts, got, err, marks.refused.Load())
		}
	}
}

// FuzzStatusOf: for any status line, answerConn finds the status
// fasthttp finds, judges bodiless exactly the answers fasthttp reads no
// body after, and passes on a line fasthttp fails on (0); cut anywhere, it
// waits for more (-1) or knows already. fasthttp's verdict on the body is
// read from the header it parses: with no Content-Length, an answer whose
// body it would read to the connection's close is marked Connection:
// close, a bodiless one is not (Connection: keep-alive keeps one open
// after another protocol word than HTTP/1.1).
func FuzzStatusOf(f *testing.F) {
	for _, line := range []string{
		"HTTP/1.1 200 OK", "HTTP/1.1 204 No Content", "HTTP/1.0 304 Not Modified\r", "HTTP/1.1 103 Early Hints", "HTTP/1.1 101",
		"HTTP/2 204", "http/1.1 103", "\rHTTP/1.1 204", "X 304", " 204", "HTTP/1.1 0204", "HTTP/1.1 00103 Early Hints",
		"HTTP/1.1 2040", "HTTP/1.1 1030 X", "HTTP/1.1 204x", "HTTP/1.1 204\r", "HTTP/1.1 204\rx", "HTTP/1.1  204", "HTTP/1.1\t204",
		"HTTP/1.1 099", "HTTP/1.1 0", "HTTP/1.1 ", "HTTP/1.1", "HTTP/1.1 18446744073709551820", "HTTP/1.1 9223372036854775807",
		"HTTP/1.1 -204", "HTTP/1.1 +204", "HTTP/1.1 204 ", "HTTP/1.1 199\r\r", "\r\r", "HTTP/1.1 \r",
	} {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if line == "" || line == "\r" || strings.Contains(line, "\n") {
			return // a blank line, or more than one line
		}
		var h fasthttp.ResponseHeader
		block := line + "\nConnection: keep-alive\n\n"
		err := h.Read(bufio.NewReaderSize(strings.NewReader(block), len(block)))
		b := []byte(line + "\n")
		got := statusOf(b)
		switch {
		case err != nil && got != 0:
			t.Fatalf("%q: status %d, fasthttp fails on it: %v", line, got, err)
		case err == nil && got != 0 && got != h.StatusCode():
			t.Fatalf("%q: status %d, fasthttp reads %d", line, got, h.StatusCode())
		case err == nil && bodilessStatus(got) == h.ConnectionClose():
			t.Fatalf("%q: status %d taken for bodiless: %t, not so by fasthttp", line, got, bodilessStatus(got))
		}
		for k := range b {
			if s := statusOf(b[:k]); s != -1 && s != got {
				t.Fatalf("%q: status %d, %d from the first %d bytes", line, got, s, k)
			}
		}
	})
}

// A status of four digits is read whole, as fasthttp reads it: answerConn
// looked at three, refused a 2040 as a 204 before its body was read, and
// send, checking the header block with no body, reported a body cut short
// (reset), which a read re-sent. It is a bad status, sent once.
func TestStatusOfFourDigitsIsNotABodilessOne(t *testing.T) {
	c := rawStore(t, nil, func(conn net.Conn, _ int64) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			fmt.Fprintf(conn, "HTTP/1.1 2040 No Content\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(userJSON), userJSON)
		}
	})
	call := testCall()
	_, err := c.UserByID(context.Background(), call, refstore.DemoUserID)
	var e *Error
	if !errors.As(err, &e) || e.Outcome != OutcomeBadStatus || e.Status != 2040 {
		t.Fatalf("got %v (%v), want bad status 2040", err, errors.Unwrap(err))
	}
	if n := call.Exchanges(); n != 1 {
		t.Fatalf("%d exchanges, want 1", n)
	}
}

// fasthttp reads a body after a status under 100 (only a 1xx, 204 or 304
// has none), so one cut short of its Content-Length by a reset is a
// connection cut, which a read may re-send, as after any other status.
// send took every status under 200 for bodiless: the cut body was not
// seen, and the answer was a bad status, sent once.
func TestStatusUnder100WithItsBodyCutIsAReset(t *testing.T) {
	c := rawStore(t, nil, func(conn net.Conn, _ int64) {
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		fmt.Fprintf(conn, "HTTP/1.1 099 Odd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(userJSON), userJSON[:10])
		conn.(*net.TCPConn).SetLinger(0) // a reset
	})
	_, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
	var e *Error
	if !errors.As(err, &e) || e.Outcome != OutcomeReset || e.Status != 99 {
		t.Fatalf("got %v (%v), want a reset, status 99", err, errors.Unwrap(err))
	}
}

// A 304 may carry the Content-Length of the representation it stands for,
// and never a body (RFC 9110, 8.6); fasthttp reads none after a 204 or a
// 304 either, but keeps the header. The client took the missing body for
// a connection cut short: outcome reset, and the read re-sent, although
// the store had answered (docs/resilience.md retries only refused or
// reset connections and 503s). A 304 is a redirect-class failure, a 204
// a bad status, each sent once.
func TestBodilessStatusWithContentLengthIsNotAReset(t *testing.T) {
	for _, tc := range []struct {
		head    string
		outcome string
	}{
		{"304 Not Modified\r\nContent-Type: application/json\r\nContent-Length: 120", OutcomeRedirect},
		{"204 No Content\r\nContent-Length: 120", OutcomeBadStatus},
	} {
		t.Run(tc.head[:3], func(t *testing.T) {
			c := rawStore(t, nil, func(conn net.Conn, _ int64) {
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(conn, "HTTP/1.1 "+tc.head+"\r\n\r\n")
				}
			})
			call := testCall()
			_, err := c.UserByID(context.Background(), call, refstore.DemoUserID)
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindBadGateway || e.Outcome != tc.outcome || strconv.Itoa(e.Status) != tc.head[:3] {
				t.Fatalf("got %v (%v), want bad gateway %s", err, errors.Unwrap(err), tc.outcome)
			}
			if n := call.Exchanges(); n != 1 {
				t.Fatalf("%d exchanges, want 1 (an answer, not a cut connection, is not re-sent)", n)
			}
		})
	}
}

// A 204 or 304 without a body fails as it always has, though its
// connection is now closed where it used to be pooled: checked as any
// answer, a 304 is a redirect and a 204 a bad status, each sent once, and
// one that echoes another request's X-Request-Id is an answer to another
// request. The next call gets its answer.
func TestBodilessAnswerKeepsItsOutcome(t *testing.T) {
	for _, tc := range []struct {
		head    string
		outcome string
		cause   string
	}{
		{"204 No Content", OutcomeBadStatus, "status 204"},
		{"304 Not Modified\r\nETag: \"p1\"", OutcomeRedirect, "status 304"},
		{"304 Not Modified\r\nX-Request-Id: req-1", OutcomeRedirect, "status 304"},
		{"204 No Content\r\nX-Request-Id: req-0", OutcomeBadResponse, errOtherRequest.Error()},
		{"304 Not Modified\r\nX-Request-Id: req-0", OutcomeBadResponse, errOtherRequest.Error()},
	} {
		t.Run(strings.ReplaceAll(tc.head, "\r\n", ", "), func(t *testing.T) {
			c := rawStore(t, nil, func(conn net.Conn, n int64) {
				br := bufio.NewReader(conn)
				for first := n == 1; ; first = false {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if first {
						io.WriteString(conn, "HTTP/1.1 "+tc.head+"\r\n\r\n")
						continue
					}
					fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(userJSON), userJSON)
				}
			})
			call := testCall()
			_, err := c.UserByID(context.Background(), call, refstore.DemoUserID)
			wantBodiless(t, err, tc.head[:3], tc.outcome, tc.cause)
			if n := call.Exchanges(); n != 1 {
				t.Fatalf("%d exchanges, want 1", n)
			}
			if _, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID); err != nil {
				t.Fatalf("the next call: %v", err)
			}
		})
	}
}

// A whole body of its Content-Length, on a connection the store closes
// after it (Connection: close), was not cut by anything: when it does not
// decode it is a broken answer, sent once, even when another connection
// of the host was found reset during the call. Only a body read to the
// connection's close may be the one a reset ended.
func TestClosingAnswerWithContentLengthIsNotTakenForAReset(t *testing.T) {
	held, answer := make(chan struct{}), make(chan struct{})
	c := rawStore(t, nil, func(conn net.Conn, n int64) {
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if n == 2 {
			conn.(*net.TCPConn).SetLinger(0) // the other call's connection is reset
			return
		}
		if n == 1 {
			close(held)
			<-answer
		}
		body := `{"id":"not a user"}`
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	call := testCall()
	done := make(chan error, 1)
	go func() {
		_, err := c.UserByID(context.Background(), call, refstore.DemoUserID)
		done <- err
	}()
	<-held // the first call holds connection 1
	if _, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID); err == nil {
		t.Fatal("the reset call succeeded")
	}
	close(answer)
	err := <-done
	var e *Error
	if !errors.As(err, &e) || e.Outcome != OutcomeBadResponse {
		t.Fatalf("got %v, want outcome %s", err, OutcomeBadResponse)
	}
	if n := call.Exchanges(); n != 1 {
		t.Fatalf("%d exchanges, want 1 (a whole answer is not re-sent)", n)
	}
}

// TestResponseFieldsAreChecked: the checks of single fields that the
// gateway relies on to show a user's data. A price below zero, a currency
// that is not three capital letters, a stream without its id or with a
// negative viewer count are broken answers; the user's own id written in
// another case is the same user (the contract compares ids ignoring case).
func TestResponseFieldsAreChecked(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	eachOp(&cfg, func(o *config.Operation) { o.Retry.Attempts = 0 })
	c, _ := newClient(t, cfg)
	calls := callsByOp(c)
	for _, tc := range []struct {
		name string
		op   Op
		body string
	}{
		{"negative price", OpUserByID, strings.Replace(userJSON, "1250", "-1250", 1)},
		{"negative price in a search", OpSearch, `{"items":[` + strings.Replace(userJSON, "1250", "-1", 1) + `],"total":1}`},
		{"lower-case currency", OpUserByID, strings.Replace(userJSON, `"TRY"`, `"try"`, 1)},
		{"stream without an id", OpLiveStreams, `{"items":[` + strings.Replace(streamJSON, `"id":"s1"`, `"id":""`, 1) + `]}`},
		{"negative viewer count", OpLiveStreams, `{"items":[` + strings.Replace(streamJSON, `"viewerCount":3`, `"viewerCount":-3`, 1) + `]}`},
	} {
		if err := p.Set(faultproxy.Respond(200, "application/json", tc.body)); err != nil {
			t.Fatal(err)
		}
		var e *Error
		if err := calls[tc.op](); !errors.As(err, &e) || e.Kind != KindBadGateway || e.Outcome != OutcomeBadResponse {
			t.Errorf("%s: got %v, want a bad response", tc.name, err)
		}
	}

	upper := strings.ToUpper(refstore.DemoUserID)
	if err := p.Set(faultproxy.Respond(200, "application/json", strings.Replace(userJSON, refstore.DemoUserID, upper, 1))); err != nil {
		t.Fatal(err)
	}
	u, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
	if err != nil {
		t.Fatalf("the user's id in upper case: %v, want the user", err)
	}
	if u.ID != upper {
		t.Errorf("id %q, want the store's %q", u.ID, upper)
	}
}

// An error's text, which the gateway logs with every failure, names the
// operation, the kind, the outcome, the store's status and its code.
func TestErrorTextNamesStatusAndCode(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.Retry.Attempts = 0
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Status(500))
	_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
	if want := `upstream search: bad gateway (error_5xx, status 500, code "internal")`; err == nil || err.Error() != want {
		t.Fatalf("error text %v, want %s", err, want)
	}
}

// Edges of the answers the client takes: a media type in capitals is
// still JSON (media types are case-insensitive, RFC 9110 section 8.3.1); a
// contract error needs its message; 599 is still a 5xx.
func TestResponseEdgesAreClassified(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.UserByID.Retry.Attempts = 0
	c, _ := newClient(t, cfg)
	user := func() error { _, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID); return err }

	p.Set(faultproxy.Respond(200, "Application/JSON; charset=UTF-8", userJSON))
	if err := user(); err != nil {
		t.Errorf("a 200 of Application/JSON: %v", err)
	}
	p.Set(faultproxy.Respond(404, "application/json", `{"code":"not_found"}`))
	kindAndOutcome(t, user(), KindBadGateway, OutcomeBadResponse)
	p.Set(faultproxy.Respond(404, "APPLICATION/JSON", `{"code":"not_found","message":"m"}`))
	kindAndOutcome(t, user(), KindNotFound, OutcomeNotFound)
	p.Set(faultproxy.Respond(599, "text/plain", "x"))
	if e := kindAndOutcome(t, user(), KindBadGateway, OutcomeError5xx); e.Status != 599 {
		t.Errorf("status %d", e.Status)
	}
}

// A store that restarted closes every kept-alive connection: the call
// that finds its connection closed drops the pool's other idle ones,
// which are just as dead, so the next call opens a fresh connection
// rather than failing on one (the username check is never retried).
func TestConnectionClosedUnderACallDropsTheIdleOnes(t *testing.T) {
	// round reports whether it could look: false when the machine
	// stalled over 250ms and the sweeper dropped the idle connections.
	round := func() bool {
		var mu sync.Mutex
		var open []net.Conn
		arrived := make(chan struct{}, 2)
		both := make(chan struct{})
		c := rawStore(t, func(us *config.UserStore) {
			// The idle connections stay pooled through the test, and the
			// sweeper that drops them still ends before TestMain looks for
			// leaks.
			us.MaxIdleConnDuration = 250 * time.Millisecond
		}, func(conn net.Conn, n int64) {
			br := bufio.NewReader(conn)
			for first := n <= 2; ; first = false {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				if first {
					// The first two connections answer their first
					// request once both are in use.
					mu.Lock()
					open = append(open, conn)
					mu.Unlock()
					arrived <- struct{}{}
					<-both
				}
				body := `{"username":"sukru.isik","available":true}`
				fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}
		})
		check := func() error { _, err := c.CheckUsername(context.Background(), testCall(), "sukru.isik"); return err }
		done := make(chan error, 2)
		for range 2 {
			go func() { done <- check() }()
		}
		<-arrived
		<-arrived
		close(both)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		// The store "restarts": both idle connections end (a FIN, no reset).
		mu.Lock()
		for _, conn := range open {
			conn.(*net.TCPConn).CloseWrite()
		}
		mu.Unlock()
		err := check()
		if err == nil {
			return false // the sweeper dropped the idle connections first
		}
		kindAndOutcome(t, err, KindBadGateway, OutcomeReset)
		if err := check(); err != nil {
			t.Fatalf("the next check failed on the other dead connection: %v", err)
		}
		return true
	}
	for range 3 {
		if round() {
			return
		}
	}
	t.Fatal("the sweeper dropped the idle connections before the call in each of three rounds: the machine stalled over 250ms")
}

// TestStoreOwnRequestIDForACallWithoutOne: a store (or a proxy in front of
// it) that answers with an X-Request-Id of its own when the request had
// none. A nil Call sends an empty one (documented, TestStoreAnswersBecomeKinds):
// there is no id to compare, and the call must not panic on reading one.
func TestStoreOwnRequestIDForACallWithoutOne(t *testing.T) {
	c := rawStore(t, nil, func(conn net.Conn, _ int64) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			id := req.Header.Get(contract.HeaderRequestID)
			if id == "" {
				id = "store-made-id"
			}
			io.WriteString(conn, searchPageAnswer(req.URL.Query().Get("q"), contract.HeaderRequestID+": "+id+"\r\n"))
		}
	})
	for _, call := range []*Call{nil, {}} {
		r, err := c.Search(context.Background(), call, "ali", 2, 0)
		if err != nil || len(r.Items) != 1 || r.Items[0].Username != "ali" {
			t.Fatalf("call %+v: %+v, %v", call, r, err)
		}
	}
}
