package main

import (
	"fmt"
	"net/http"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/upstream/contract"
)

// scenarioNames lists every scenario in report order.
var scenarioNames = []string{
	"gw-me-hit", "gw-search-hit", "gw-username", "gw-me-nocache", "gw-search-nocache",
	"bare-fiber", "fiber-proxy-username", "bare-fiber-floor", "fiber-proxy-floor-username", "upstream-direct", "nginx-proxy", "nginx-proxy-username", "nginx-cache-hit",
	"store-me", "store-search",
}

// Groups of scenarios in the report.
const (
	groupGateway   = "gateway"
	groupBaseline  = "baseline"
	groupRealStore = "real store"
)

// appHeaders is the client context an app sends with every request (the
// names are gateway/clientctx's, the values from the seed API): a Turkish
// iOS app of one version on one device. With -app-headers every request of
// the run carries it, the baselines' too, so that every contender of a
// ratio reads the same request bytes. Without it the requests carry only
// what their path needs (Authorization, Content-Type), lighter than an
// app's, as in the kept runs.
var appHeaders = [...][2]string{
	{clientctx.HeaderLanguage, "tr"},
	{clientctx.HeaderTimezone, "UTC+03:00"},
	{clientctx.HeaderPlatform, "mobile_ios"},
	{clientctx.HeaderAppVersion, "5.12.0"},
	{clientctx.HeaderDeviceID, "5d0c6f3a-8e21-4b7c-9f4e-2a6b1c8d7e90"},
}

// requestHeader is h (which it may change) with the app's client context
// when the run sends it.
func (o *options) requestHeader(h http.Header) http.Header {
	if !o.appHeaders {
		return h
	}
	if h == nil {
		h = make(http.Header, len(appHeaders))
	}
	for _, kv := range appHeaders {
		h.Set(kv[0], kv[1])
	}
	return h
}

// scenarios builds the selected scenarios whose processes are running.
func (st *stack) scenarios() []*scenario {
	bearer := func(token string) http.Header {
		return http.Header{"Authorization": {"Bearer " + token}}
	}
	jsonBearer := func(token string) http.Header {
		h := bearer(token)
		h.Set("Content-Type", "application/json")
		return h
	}
	userPath := contract.PathUserPrefix + benchUserID
	var all []*scenario
	add := func(sc *scenario) {
		if st.opts.wants(sc.Name) {
			sc.Header = st.opts.requestHeader(sc.Header)
			all = append(all, sc)
		}
	}

	gw, off := st.gwCache, st.gwNoCache
	via := func(g *gatewayProc, p gatewayPath) *gatewayPath {
		p.opsURL = g.opsURL
		return &p
	}
	add(&scenario{
		Name: "gw-me-hit", Title: "gateway: GET /api/v1/users/me, cache hit (token cache hit)", Group: groupGateway,
		Contender: "gateway (cache on)", Method: http.MethodGet, URL: gw.url + "/api/v1/users/me",
		Header: bearer(st.meToken), contender: gw,
		CacheHit: true, cacheHeader: "X-Cache", envelope: true, path: via(gw, pathMeHit),
	})
	add(&scenario{
		Name: "gw-search-hit", Title: "gateway: GET /api/v2/users/search (20 users), cache hit", Group: groupGateway,
		Contender: "gateway (cache on)", Method: http.MethodGet, URL: gw.url + searchQuery,
		Header: bearer(st.meToken), contender: gw,
		CacheHit: true, cacheHeader: "X-Cache", envelope: true, path: via(gw, pathSearchHit),
	})
	add(&scenario{
		Name: "gw-username", Title: "gateway: POST /api/v1/users/check-username (one upstream call, never cached)", Group: groupGateway,
		Contender: "gateway (cache on)", Upstream: "static upstream", Method: http.MethodPost, URL: gw.url + "/api/v1/users/check-username",
		Header: jsonBearer(st.meToken), Body: []byte(usernameBody), contender: gw, upstream: st.static,
		envelope: true, exactData: `{"available":true}`, path: via(gw, pathUsername),
	})
	add(&scenario{
		Name: "gw-me-nocache", Title: "gateway: GET /api/v1/users/me, cache off (user + live-stream calls)", Group: groupGateway,
		Contender: "gateway (cache off)", Upstream: "static upstream", Method: http.MethodGet, URL: off.url + "/api/v1/users/me",
		Header: bearer(st.meToken), contender: off, upstream: st.static,
		envelope: true, wantCache: "BYPASS", path: via(off, pathMeCall),
	})
	add(&scenario{
		Name: "gw-search-nocache", Title: "gateway: GET /api/v2/users/search (20 users), cache off (search + live-stream calls)", Group: groupGateway,
		Contender: "gateway (cache off)", Upstream: "static upstream", Method: http.MethodGet, URL: off.url + searchQuery,
		Header: bearer(st.meToken), contender: off, upstream: st.static,
		envelope: true, wantCache: "BYPASS", path: via(off, pathSearchCall),
	})
	if st.bare != nil {
		add(&scenario{
			Name: "bare-fiber", Title: "baseline: bare Fiber handler answering the /me cache-hit bytes", Group: groupBaseline,
			Contender: "bare Fiber", Method: http.MethodGet, URL: st.bareURL + "/api/v1/users/me",
			contender: st.bare, exact: st.envelope, halfOf: "gw-me-hit",
		})
		add(&scenario{
			Name: "fiber-proxy-username", Title: "reference: the cheapest Go reverse proxy (Fiber + fasthttp client, no work) → static upstream, POST " + contract.PathUsernameCheck, Group: groupBaseline,
			Contender: "bare Fiber proxy", Upstream: "static upstream", Method: http.MethodPost, URL: st.bareURL + contract.PathUsernameCheck,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(usernameBody),
			contender: st.bare, upstream: st.static,
		})
	}
	if st.floor != nil {
		add(&scenario{
			Name: "bare-fiber-floor", Title: fmt.Sprintf("floor contender: bare Fiber + %v of pure CPU per request (the /me cache hit's floor), the /me cache-hit bytes", st.opts.floorMe), Group: groupBaseline,
			Contender: "bare Fiber + /me floor", Method: http.MethodGet, URL: st.floorURL + "/api/v1/users/me",
			contender: st.floor, exact: st.envelope,
		})
		add(&scenario{
			Name: "fiber-proxy-floor-username", Title: fmt.Sprintf("floor contender: the reference proxy + %v of pure CPU per call (the username check's floor) → static upstream, POST %s", st.opts.floorUsername, contract.PathUsernameCheck), Group: groupBaseline,
			Contender: "bare Fiber proxy + username floor", Upstream: "static upstream", Method: http.MethodPost, URL: st.floorURL + contract.PathUsernameCheck,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(usernameBody),
			contender: st.floor, upstream: st.static,
		})
	}
	add(&scenario{
		Name: "upstream-direct", Title: "baseline: static upstream called directly, GET " + contract.PathUserPrefix + "{id}", Group: groupBaseline,
		Contender: "static upstream", Method: http.MethodGet, URL: st.staticURL + userPath,
		contender: st.static,
	})
	if n := st.nginx; n != nil {
		add(&scenario{
			Name: "nginx-proxy", Title: "baseline: nginx plain reverse proxy → static upstream, GET " + contract.PathUserPrefix + "{id}", Group: groupBaseline,
			Contender: "nginx", Upstream: "static upstream", Method: http.MethodGet, URL: n.plainURL + userPath,
			contender: n, upstream: st.static,
		})
		add(&scenario{
			Name: "nginx-proxy-username", Title: "baseline: nginx plain reverse proxy → static upstream, POST " + contract.PathUsernameCheck, Group: groupBaseline,
			Contender: "nginx", Upstream: "static upstream", Method: http.MethodPost, URL: n.plainURL + contract.PathUsernameCheck,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(usernameBody),
			contender: n, upstream: st.static,
		})
		add(&scenario{
			Name: "nginx-cache-hit", Title: "baseline: nginx proxy_cache hit, answering the /me cache-hit bytes", Group: groupBaseline,
			Contender: "nginx", Method: http.MethodGet, URL: n.cacheURL + "/bench/v1/payload",
			contender: n, exact: st.envelope, CacheHit: true, cacheHeader: "X-Cache-Status",
		})
	}
	if g := st.gwStore; g != nil {
		add(&scenario{
			Name: "store-me", Title: "real store: gateway (cache off) → cmd/userstore (SQLite), GET /api/v1/users/me", Group: groupRealStore,
			Contender: "gateway (cache off)", Upstream: "user store", Method: http.MethodGet, URL: g.url + "/api/v1/users/me",
			Header: bearer(st.storeToken), contender: g, upstream: st.store,
			envelope: true, wantCache: "BYPASS", closedConns: storeConnections, path: via(g, pathMeCall),
		})
		add(&scenario{
			Name: "store-search", Title: "real store: gateway (cache off) → cmd/userstore (SQLite), GET /api/v2/users/search (20 users)", Group: groupRealStore,
			Contender: "gateway (cache off)", Upstream: "user store", Method: http.MethodGet, URL: g.url + storeSearchQuery,
			Header: bearer(st.storeToken), contender: g, upstream: st.store,
			envelope: true, wantCache: "BYPASS", closedConns: storeConnections, path: via(g, pathSearchCall),
		})
	}
	return all
}
