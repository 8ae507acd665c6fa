package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// abuseProbe is the cheapest request there is: a 404, which no rate limit
// counts, so holding a connection open costs a client nothing.
const abuseProbe = "GET /nope HTTP/1.1\r\nHost: gw\r\n\r\n"

// holdConnections opens connections from ip, each served one request,
// until one is refused or want are held; it returns the held ones and the
// refusal (nil when none came).
func holdConnections(t *testing.T, gw *Gateway, ip string, want int) ([]*KeepAlive, *Response) {
	t.Helper()
	var held []*KeepAlive
	for len(held) < want {
		ka := gw.KeepAliveFrom(t, ip)
		r := ka.Send(t, abuseProbe)
		if r.Status != http.StatusNotFound {
			return held, r
		}
		held = append(held, ka)
	}
	return held, nil
}

// One address cannot take every connection the gateway allows: with the
// default server.maxConnectionsPerIP (256) under a server.maxConnections
// above it, a client that holds 256 idle keep-alive connections (refreshed
// by a 404 now and then, which no rate limit counts) is refused its 257th
// with the 503 envelope, and another client is still served. Without the
// per-address cap the first client held all 264 and locked everyone out.
func TestAbuseOneAddressCannotTakeEveryConnection(t *testing.T) {
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: StartIdP(t),
		Env: map[string]string{"GATEWAY_SERVER__MAXCONNECTIONS": "264"}})
	if gw.OpsURL == "" {
		t.Fatal("the gateway has no ops listener: the harness's connections would share the cap")
	}
	held, refused := holdConnections(t, gw, "127.0.0.1", 264)
	if refused == nil {
		t.Fatalf("one address held all %d connections of server.maxConnections; want it refused after 256", len(held))
	}
	if len(held) != 256 {
		t.Fatalf("one address held %d connections before a refusal, want 256 (server.maxConnectionsPerIP)", len(held))
	}
	refused.Failure(t, http.StatusServiceUnavailable, "Service temporarily unavailable, please try again later")
	if got := refused.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	// Another address is served, up to the total cap.
	others, refused := holdConnections(t, gw, "127.0.0.2", 8)
	if refused != nil {
		t.Fatalf("another address was refused (%d %s) after %d connections while one address held 256 of 264", refused.Status, refused.Body, len(others))
	}
	if n := polMetric(t, gw, "gateway_connections_refused_per_ip_total"); n != 1 {
		t.Errorf("gateway_connections_refused_per_ip_total %g, want 1", n)
	}
	if n := polMetric(t, gw, "gateway_connections_refused_total"); n != 0 {
		t.Errorf("gateway_connections_refused_total %g, want 0 (server.maxConnections was never reached)", n)
	}
	// A connection closed frees its address's place.
	held[0].conn.Close()
	eventually(t, 5*time.Second, func() error {
		ka := gw.KeepAliveFrom(t, "127.0.0.1")
		if r := ka.Send(t, abuseProbe); r.Status != http.StatusNotFound {
			return fmt.Errorf("a closed connection's place was not freed: %d %s", r.Status, r.Body)
		}
		return nil
	})
	// The held connections are all still served.
	for _, ka := range held[1:] {
		if r := ka.Send(t, abuseProbe); r.Status != http.StatusNotFound {
			t.Fatalf("a held connection: %d %s", r.Status, r.Body)
		}
	}
}

// A proxy listed in server.trustedProxies carries many clients, so the
// per-address cap does not count its connections; every other address
// keeps it. The setting can be changed (here to 2) and turned off (0).
func TestAbuseConnectionsPerIPSpareTrustedProxies(t *testing.T) {
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: StartIdP(t),
		Env: map[string]string{
			"GATEWAY_SERVER__MAXCONNECTIONSPERIP": "2",
			"GATEWAY_SERVER__TRUSTEDPROXIES":      "127.0.0.3/32",
		}})
	held, refused := holdConnections(t, gw, "127.0.0.1", 3)
	if refused == nil || len(held) != 2 {
		t.Fatalf("an untrusted address held %d connections (refused: %v), want 2 then a refusal", len(held), refused != nil)
	}
	refused.Failure(t, http.StatusServiceUnavailable, "Service temporarily unavailable, please try again later")
	if held, refused := holdConnections(t, gw, "127.0.0.3", 6); refused != nil {
		t.Fatalf("the trusted proxy was refused (%d) after %d connections", refused.Status, len(held))
	}

	off := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: StartIdP(t),
		Env: map[string]string{"GATEWAY_SERVER__MAXCONNECTIONSPERIP": "0", "GATEWAY_SERVER__MAXCONNECTIONS": "300"}})
	if held, refused := holdConnections(t, off, "127.0.0.1", 300); refused != nil {
		t.Fatalf("with maxConnectionsPerIP 0, one address was refused (%d) after %d connections", refused.Status, len(held))
	}
}

// metricSeries is the set of series names with labels the gateway exports.
func metricSeries(t *testing.T, gw *Gateway) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, line := range strings.Split(gw.Metrics(t), "\n") {
		if strings.HasPrefix(line, "gateway_") {
			name, _, _ := strings.Cut(line, " ")
			out[name] = true
		}
	}
	return out
}

// No client-chosen value becomes a metric label: after one round of
// requests with every kind of header, method and path a client can vary,
// a second round with other values makes no new series. Before the first
// round the gateway has seen one request of each route, so the rounds
// only vary what a client controls.
func TestAbuseClientsCannotAddMetricSeries(t *testing.T) {
	idp := StartIdP(t)
	// An X-Platform no one knows is the unknown platform, whose per-IP
	// limit config.yaml sets apart (10/s): raised like the others, so the
	// rounds' 404s and 405s, charged to it, are not refused part-way.
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, Env: map[string]string{
		"GATEWAY_POLICIES__UNKNOWN__RATELIMITS__PERIP__RATE":  "100000",
		"GATEWAY_POLICIES__UNKNOWN__RATELIMITS__PERIP__BURST": "100000",
	}})
	tok := idp.UserToken(t)
	round := func(n int) {
		for i := range n {
			v := fmt.Sprintf("r%di%d", n, i)
			opts := []ReqOpt{Bearer(tok), Header("X-Platform", v), Header("X-App-Version", v),
				Header("X-Device-Id", v), Lang(v), Header("X-Timezone", v), Header("X-Request-Id", v),
				Header("Origin", "https://"+v+".example")}
			for _, m := range []string{"GET", "BREW" + v, "POST"} {
				gw.Do(t, m, "/api/v2/users/search?query="+v+"&page=1&"+v+"=1", opts...)
				gw.Do(t, m, "/"+v, opts...)
				gw.Do(t, m, "/api/v1/users/"+v, opts...)
			}
			gw.Do(t, "GET", "/api/admin/v1/users/"+v, append(opts, Platform("admin"))...)
			gw.Do(t, "GET", "/api/v1/users/me", append(opts, Bearer(idp.Token(t, v)))...)
			gw.Do(t, "GET", "/api/v1/users/me", Bearer(v+".a.b"))
		}
	}
	round(20)
	first := metricSeries(t, gw)
	round(21)
	for s := range metricSeries(t, gw) {
		if !first[s] {
			t.Errorf("a new series after requests with new values: %s", s)
		}
	}
}

// A client trickling its header block a byte at a time does not keep its
// connection past server.readTimeout: the deadline is one for the whole
// request, not renewed by each byte (slowloris).
func TestAbuseTrickledHeadersTimeOut(t *testing.T) {
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: StartIdP(t),
		Env: map[string]string{"GATEWAY_SERVER__READTIMEOUT": "500ms"}})
	ka := gw.KeepAlive(t)
	raw := "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Padding: " + strings.Repeat("a", 200)
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.ReadResponse(ka.br, nil)
		if err == nil {
			resp.Body.Close()
		}
		answered <- resp
	}()
	want408 := func(resp *http.Response) {
		if resp == nil || resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("the trickling client got %v, want a 408", resp)
		}
	}
	// 200 bytes, one each 20 ms: 4 s of trickling, eight read timeouts.
	for i := 0; i < len(raw); i++ {
		select {
		case resp := <-answered:
			want408(resp)
			return
		default:
		}
		if _, err := ka.conn.Write([]byte{raw[i]}); err != nil {
			// Closed on it after the timeout's answer: which must have
			// come.
			select {
			case resp := <-answered:
				want408(resp)
			case <-time.After(2 * time.Second):
				t.Fatal("the connection was closed without the 408")
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("a client trickling its header block kept its connection for the whole trickle")
}

// One user's searches cannot push everyone's profiles out of the read
// cache: a search page counts about 11 KB, a profile under 2 KB, so a
// client paging through searches (each page a new key) filled
// cache.maxBytes and evicted every cached /me, the oldest first. The
// routes now share the bounds: a route that holds more than half of them
// makes room from its own oldest entries, so the profiles stay.
func TestAbuseSearchFloodKeepsProfiles(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{
		"GATEWAY_CACHE__MAXBYTES": "1MiB",
		// Random samples (full pages of the default 20) stay for the test.
		"GATEWAY_CACHE__ROUTES__SEARCH__EMPTYQUERYTTL": "1m",
		"GATEWAY_CACHE__ROUTES__ME__TTL":               "1m",
	})
	res, err := st.Search(context.Background(), "a", 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	var profiles []string
	for _, u := range res.Items[:20] {
		tok := idp.Token(t, u.ID, "user")
		cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok)), "MISS")
		profiles = append(profiles, tok)
	}
	flooder := idp.UserToken(t)
	const pages = 150 // about 1.6 MB of pages for 1 MiB
	for page := 1; page <= pages; page++ {
		cchXCache(t, gw.Do(t, http.MethodGet, fmt.Sprintf("%s?page=%d", cchSearch, page), Bearer(flooder)), "MISS")
	}
	s := cchCacheStats(t, gw)
	if s.Evictions.Capacity == 0 {
		t.Fatalf("the flood evicted nothing: %+v; the test needs the bound met", s)
	}
	for i, tok := range profiles {
		if r := gw.Do(t, http.MethodGet, cchMe, Bearer(tok)); r.Header.Get("X-Cache") != "HIT" {
			t.Fatalf("profile %d of %d: X-Cache %q after another user's %d search pages, want HIT (%+v)",
				i+1, len(profiles), r.Header.Get("X-Cache"), pages, s)
		}
	}
	// The flood still has its share: the newest pages are cached.
	cchXCache(t, gw.Do(t, http.MethodGet, fmt.Sprintf("%s?page=%d", cchSearch, pages), Bearer(flooder)), "HIT")
}

// The ops listener refuses a header block over server.headerLimit (8 KiB;
// net/http allows 4 KiB more) as the public listener does: it took up to
// net/http's 1 MB default, read before any credential is asked, and 300
// connections each sending 1 MB took the gateway from 19 to 538 MB
// (VmRSS), past the pod's 512Mi limit. The 431 is the envelope, as the
// public listener's, and reaches the client, ended by the stream's end
// before the connection closes (net/http's was plain text, and the
// connection was reset where it ended).
func TestAbuseOpsListenerBoundsHeaders(t *testing.T) {
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: StartIdP(t)})
	ops := &Gateway{URL: gw.OpsURL}
	ka := ops.KeepAlive(t)
	raw := "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Padding: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"
	go io.WriteString(ka.conn, raw)
	resp, err := http.ReadResponse(ka.br, nil)
	if err != nil {
		t.Fatalf("a 64 KiB header block on the ops listener: no answer: %v", err)
	}
	readResponse(t, resp, "the 431").Failure(t, http.StatusRequestHeaderFieldsTooLarge, "Request headers too large")
	if n, err := ka.Closed(); n != 0 || err != io.EOF {
		t.Fatalf("after the 431: %d bytes, %v; want the end of the stream", n, err)
	}
	if r := gw.Ops(t, http.MethodGet, "/healthz", Header("X-Padding", strings.Repeat("a", 4<<10))); r.Status != http.StatusOK {
		t.Fatalf("a 4 KiB header block on the ops listener: %d, want 200", r.Status)
	}
}

// The ops listener keeps at most 64 connections of one address open (512
// in all): each idle keep-alive connection costs ~19 KiB, and without a
// cap 5,000 of them (a probe each, then idle for the minute net/http keeps
// them) took the gateway from 19 to 632 MB. One over the cap is closed at
// once; another address is still served.
func TestAbuseOpsListenerBoundsConnections(t *testing.T) {
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: StartIdP(t)})
	ops := &Gateway{URL: gw.OpsURL}
	probe := "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
	served := 0
	for ; served < 200; served++ {
		ka := ops.KeepAliveFrom(t, "127.0.0.2")
		if _, err := io.WriteString(ka.conn, probe); err != nil {
			break
		}
		resp, err := http.ReadResponse(ka.br, nil)
		if err != nil {
			break
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ops probe: %d", resp.StatusCode)
		}
	}
	if served != 64 {
		t.Fatalf("one address held %d ops connections, want 64", served)
	}
	if r := gw.Ops(t, http.MethodGet, "/healthz"); r.Status != http.StatusOK {
		t.Fatalf("another address on the ops listener: %d", r.Status)
	}
}

// The verified-token cache's size is exported, so ops see it fill up to
// auth.tokenCache.maxEntries (a client minting tokens, a key rotation),
// and only valid tokens count: failures are never cached, however many
// distinct forged tokens a client sends.
func TestAbuseTokenCacheCountsOnlyValidTokens(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp})
	valid := idp.UserToken(t)
	head, rest, _ := strings.Cut(valid, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	for i := range 200 {
		forged := fmt.Sprintf("%s.%s.%s%03d", head, payload, sig[:len(sig)-3], i) // a signature that fails
		if r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(forged)); r.Status != http.StatusUnauthorized {
			t.Fatalf("forged token %d: %d", i, r.Status)
		}
	}
	for i := range 5 {
		tok := idp.Token(t, fmt.Sprintf("abuse-user-%d", i), "user")
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=a", Bearer(tok))
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=a", Bearer(tok))
	}
	if n := polMetric(t, gw, "gateway_token_cache_entries"); n != 5 {
		t.Fatalf("gateway_token_cache_entries %g after 5 valid and 200 forged tokens, want 5", n)
	}
	if n := polMetric(t, gw, "gateway_token_cache_max_entries"); n != 100000 {
		t.Fatalf("gateway_token_cache_max_entries %g, want 100000", n)
	}
}
