package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
	"go.yaml.in/yaml/v3"
)

// The policies suite (issue 6): each platform's policy as ops write it in
// config.yaml, seen from the apps through the real gateway binary.

// polRoute is one API route as an app calls it.
type polRoute struct {
	id, method, path, body string
}

// polRoutes are every API route, in the order config.RouteIDs lists them.
var polRoutes = []polRoute{
	{"users.checkUsername", http.MethodPost, "/api/v1/users/check-username", `{"username":"johndoe123"}`},
	{"users.search", http.MethodGet, "/api/v2/users/search?query=sukru", ""},
	{"users.me", http.MethodGet, "/api/v1/users/me", ""},
	{"admin.users.search", http.MethodGet, "/api/admin/v1/users/search?query=sukru", ""},
	{"admin.users.get", http.MethodGet, "/api/admin/v1/users/" + refstore.DemoUserID, ""},
}

// polPlatforms are the six platforms a client may name in X-Platform.
var polPlatforms = []string{"web", "mobile_ios", "mobile_android", "admin", "api", "unknown"}

// call sends the route's request with opts.
func (r polRoute) call(t testing.TB, gw *Gateway, opts ...ReqOpt) *Response {
	t.Helper()
	if r.body != "" {
		opts = append(opts, JSONBody(r.body))
	}
	return gw.Do(t, r.method, r.path, opts...)
}

// polConfig is the repository's config.yaml with overlay (YAML) merged
// over it: mappings merge key by key, any other value replaces, and a null
// removes the key. The result is what a test passes as ConfigYAML.
func polConfig(t testing.TB, overlay string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc, over map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if err := yaml.Unmarshal([]byte(overlay), &over); err != nil {
		t.Fatalf("overlay: %v\n%s", err, overlay)
	}
	polMerge(doc, over)
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func polMerge(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				polMerge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// polForbidden checks the 403 envelope in English and Turkish: the only
// thing a denied caller ever learns.
func polForbidden(t testing.TB, gw *Gateway, r polRoute, opts ...ReqOpt) {
	t.Helper()
	r.call(t, gw, append(opts, Lang("en"))...).Failure(t, http.StatusForbidden, "Insufficient permissions")
	msgs := r.call(t, gw, append(opts, Lang("tr"))...).Failure(t, http.StatusForbidden, "Yetersiz yetki")
	if len(msgs) != 1 {
		t.Fatalf("%s: a denial names nothing but the generic message, got %q", r.id, msgs)
	}
}

// polMint mints a token with scopes (and roles).
func polMint(t testing.TB, idp *IdP, sub string, roles, scopes []string) string {
	t.Helper()
	tok, err := idp.Mint(devidp.MintClaims{Subject: sub, Roles: roles, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// polPage is a search page as the apps receive it.
type polPage struct {
	Items []map[string]json.RawMessage `json:"items"`
	Page  int                          `json:"page"`
	Limit int                          `json:"limit"`
	Total int                          `json:"total"`
}

// item finds a user of the page by id.
func (p polPage) item(t testing.TB, id string) map[string]json.RawMessage {
	t.Helper()
	for _, it := range p.Items {
		if string(it["id"]) == strconv.Quote(id) {
			return it
		}
	}
	t.Fatalf("user %s not on the page (%d items)", id, len(p.Items))
	return nil
}

func polKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func polSorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// polRunBinary runs the gateway binary with args and an environment free
// of GATEWAY_ variables, and returns its combined output and exit code.
func polRunBinary(t testing.TB, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bins.gateway, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEWAY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	}
	t.Fatalf("gateway %v: %v", args, err)
	return "", -1
}

// polWriteFile writes a file of the test's own and returns its path.
func polWriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// polMetric reads one series of the ops listener's /metrics, such as
// `gateway_config_reloads_total{result="error"}`; a series not exported
// (yet) reads 0.
func polMetric(t testing.TB, gw *Gateway, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(gw.Metrics(t), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// Every platform's routes as the repository's config.yaml sets them, for a
// user and for an admin: the app platforms share the user routes and never
// the admin ones; the admin platform has the admin routes (and /me) only,
// and only for the admin role. Every denial is a 403 envelope in the
// caller's language that never reaches the user store.
func TestPolicyRoutesPerPlatform(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	user, admin := idp.UserToken(t), idp.AdminToken(t)

	allowed := func(platform, route string, isAdmin bool) bool {
		if platform != "admin" {
			return !strings.HasPrefix(route, "admin.")
		}
		return isAdmin && route != "users.checkUsername" && route != "users.search"
	}

	store.Reset(t)
	for _, platform := range polPlatforms {
		for _, r := range polRoutes {
			for _, who := range []struct {
				name    string
				token   string
				isAdmin bool
			}{{"user", user, false}, {"admin", admin, true}} {
				if allowed(platform, r.id, who.isAdmin) {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%s denied", platform, r.id, who.name), func(t *testing.T) {
					polForbidden(t, gw, r, Bearer(who.token), Platform(platform))
				})
			}
		}
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("denied requests reached the user store %d times: %v", n, store.Counts(t))
	}

	for _, platform := range polPlatforms {
		for _, r := range polRoutes {
			for _, who := range []struct {
				name    string
				token   string
				isAdmin bool
			}{{"user", user, false}, {"admin", admin, true}} {
				if !allowed(platform, r.id, who.isAdmin) {
					continue
				}
				if resp := r.call(t, gw, Bearer(who.token), Platform(platform)); resp.Status != http.StatusOK {
					t.Errorf("%s %s as %s: %d %s", platform, r.id, who.name, resp.Status, resp.Body)
				} else {
					resp.Envelope(t)
				}
			}
		}
	}
}

// Inheritance: "all" overrides the built-in defaults for every platform,
// and a platform's own value beats "all". Seen through the page size each
// platform accepts and through whether its searches are cached.
func TestPolicyInheritanceAllAndPlatformOverrides(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, ConfigYAML: polConfig(t, `
policies:
  all:
    maxPageSize: 30          # built-in 50 for app platforms
    cache:
      ttl: {search: 0s}      # searches not cached ...
  api:
    maxPageSize: 10          # ... but api pages are smaller
  mobile_ios:
    cache:
      ttl: {search: 1m}      # ... and iOS searches are cached
`)})
	user, admin := idp.UserToken(t), idp.AdminToken(t)

	for _, tc := range []struct {
		platform, token, path string
		maxPage               int
	}{
		{"web", user, "/api/v2/users/search", 30},
		{"mobile_ios", user, "/api/v2/users/search", 30},
		{"mobile_android", user, "/api/v2/users/search", 30},
		{"api", user, "/api/v2/users/search", 10},
		{"unknown", user, "/api/v2/users/search", 30},
		// config.yaml gives admin 100 itself, over all's 30.
		{"admin", admin, "/api/admin/v1/users/search", 100},
	} {
		t.Run(tc.platform, func(t *testing.T) {
			var page polPage
			gw.Do(t, http.MethodGet, fmt.Sprintf("%s?limit=%d", tc.path, tc.maxPage), Bearer(tc.token), Platform(tc.platform)).Data(t, &page)
			if page.Limit != tc.maxPage || len(page.Items) != tc.maxPage {
				t.Fatalf("limit %d: got limit %d with %d items", tc.maxPage, page.Limit, len(page.Items))
			}
			msgs := gw.Do(t, http.MethodGet, fmt.Sprintf("%s?limit=%d", tc.path, tc.maxPage+1), Bearer(tc.token), Platform(tc.platform)).
				Failure(t, http.StatusBadRequest, "Validation failed")
			if want := fmt.Sprintf("limit must be a whole number between 1 and %d", tc.maxPage); len(msgs) != 2 || msgs[1] != want {
				t.Fatalf("errors %q, want the detail %q", msgs, want)
			}
			// Without a limit a page has 20 users, never more than the
			// platform's maximum.
			gw.Do(t, http.MethodGet, tc.path, Bearer(tc.token), Platform(tc.platform)).Data(t, &page)
			if want := min(20, tc.maxPage); page.Limit != want {
				t.Fatalf("default page size %d, want %d", page.Limit, want)
			}
		})
	}

	xcache := func(platform string) []string {
		var seen []string
		for range 2 {
			r := gw.Do(t, http.MethodGet, "/api/v2/users/search?query=ayse", Bearer(user), Platform(platform))
			r.Data(t, nil)
			seen = append(seen, r.Header.Get("X-Cache"))
		}
		return seen
	}
	if got := xcache("web"); !slices.Equal(got, []string{"BYPASS", "BYPASS"}) {
		t.Errorf("web inherits all's search TTL 0 (not cached): X-Cache %v", got)
	}
	if got := xcache("mobile_ios"); !slices.Equal(got, []string{"MISS", "HIT"}) {
		t.Errorf("mobile_ios's own TTL beats all's: X-Cache %v", got)
	}
	// The admin platform never caches, whatever the TTLs say.
	for range 2 {
		r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(admin), Platform("admin"))
		r.Data(t, nil)
		if got := r.Header.Get("X-Cache"); got != "BYPASS" {
			t.Fatalf("admin /me: X-Cache %q, want BYPASS", got)
		}
	}
}

// A platform whose policy turns a route's cache off (cache.ttl 0s, or
// cache.bypass) never reads what another platform of the same visibility
// class cached: every call of it reaches the store, and its answers carry
// no ETag and are never a 304.
func TestPolicyCacheOffPlatformNeverReadsAnotherPlatformsEntry(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, ConfigYAML: polConfig(t, `
policies:
  api:
    cache:
      ttl: {search: 0s, me: 0s}
  unknown:
    cache:
      bypass: true
`)})
	user := idp.UserToken(t)
	search, me := polRoutes[1], polRoutes[2]

	for _, r := range []polRoute{search, me} {
		first := r.call(t, gw, Bearer(user), Platform("web"))
		first.Data(t, nil)
		etag := first.Header.Get("ETag")
		if x := r.call(t, gw, Bearer(user), Platform("mobile_ios")).Header.Get("X-Cache"); x != "HIT" || etag == "" {
			t.Fatalf("%s: mobile_ios after web: X-Cache %q, ETag %q; want web's entry", r.id, x, etag)
		}
		for _, platform := range []string{"api", "unknown"} {
			before := store.Total(t)
			resp := r.call(t, gw, Bearer(user), Platform(platform), Header("If-None-Match", etag))
			resp.Data(t, nil)
			if x := resp.Header.Get("X-Cache"); x != "BYPASS" {
				t.Errorf("%s on %s: X-Cache %q, want BYPASS", r.id, platform, x)
			}
			if e := resp.Header.Get("ETag"); e != "" {
				t.Errorf("%s on %s: ETag %q on an answer from no cache", r.id, platform, e)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "private, no-store" {
				t.Errorf("%s on %s: Cache-Control %q, want private, no-store", r.id, platform, cc)
			}
			if store.Total(t) == before {
				t.Errorf("%s on %s: answered without asking the store", r.id, platform)
			}
		}
	}
}

// Each denial path, with no user-store call: a route a platform turns off,
// a route rule asking for a role, one asking for a scope, a user token on
// the admin platform, an admin token from a mobile app. The positive
// controls show the rules are real rules, not blanket denials.
func TestPolicyDenialPathsNeverReachTheStore(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, ConfigYAML: polConfig(t, `
policies:
  web:
    routes:
      users.checkUsername: {allow: false}
  mobile_android:
    routes:
      users.search: {roles: [premium]}
  api:
    routes:
      users.me: {scopes: [profile.read, profile.email]}
`)})
	user, admin := idp.UserToken(t), idp.AdminToken(t)
	premium := idp.Token(t, refstore.DemoUserID, "user", "premium")
	oneScope := polMint(t, idp, refstore.DemoUserID, []string{"user"}, []string{"profile.read"})
	bothScopes := polMint(t, idp, refstore.DemoUserID, []string{"user"}, []string{"profile.read", "profile.email"})
	checkUsername, search, me, adminSearch, adminGet := polRoutes[0], polRoutes[1], polRoutes[2], polRoutes[3], polRoutes[4]

	store.Reset(t)
	t.Run("route turned off on the platform", func(t *testing.T) {
		polForbidden(t, gw, checkUsername, Bearer(user), Platform("web"))
		polForbidden(t, gw, checkUsername, Bearer(admin), Platform("web"))
	})
	t.Run("admin route from web", func(t *testing.T) {
		polForbidden(t, gw, adminSearch, Bearer(admin))
		polForbidden(t, gw, adminGet, Bearer(admin), Platform("web"))
	})
	t.Run("route rule needs a role", func(t *testing.T) {
		polForbidden(t, gw, search, Bearer(user), Platform("mobile_android"))
		polForbidden(t, gw, search, Bearer(admin), Platform("mobile_android"))
	})
	t.Run("route rule needs every scope", func(t *testing.T) {
		polForbidden(t, gw, me, Bearer(user), Platform("api"))
		polForbidden(t, gw, me, Bearer(oneScope), Platform("api"))
	})
	t.Run("user token on the admin platform", func(t *testing.T) {
		for _, r := range polRoutes {
			polForbidden(t, gw, r, Bearer(user), Platform("admin"))
		}
	})
	t.Run("admin token from a mobile app", func(t *testing.T) {
		for _, p := range []string{"mobile_ios", "mobile_android"} {
			polForbidden(t, gw, adminSearch, Bearer(admin), Platform(p))
			polForbidden(t, gw, adminGet, Bearer(admin), Platform(p))
		}
	})
	if n := store.Total(t); n != 0 {
		t.Fatalf("denied requests reached the user store %d times: %v", n, store.Counts(t))
	}

	// The same rules let the right callers through.
	gw.Do(t, http.MethodPost, checkUsername.path, Bearer(user), Platform("mobile_ios"), JSONBody(checkUsername.body)).Data(t, nil)
	gw.Do(t, http.MethodGet, search.path, Bearer(premium), Platform("mobile_android")).Data(t, nil)
	gw.Do(t, http.MethodGet, search.path, Bearer(user), Platform("mobile_ios")).Data(t, nil)
	gw.Do(t, http.MethodGet, me.path, Bearer(bothScopes), Platform("api")).Data(t, nil)
	gw.Do(t, http.MethodGet, me.path, Bearer(user), Platform("web")).Data(t, nil)
	var mine map[string]json.RawMessage
	gw.Do(t, http.MethodGet, me.path, Bearer(admin), Platform("mobile_ios")).Data(t, &mine)
	// An admin on a mobile app is a mobile user: the self view, no admin
	// fields.
	for _, f := range []string{"roles", "status", "updatedAt"} {
		if _, ok := mine[f]; ok {
			t.Errorf("admin /me from mobile_ios shows %q: %v", f, polKeys(mine))
		}
	}
	counts := store.Counts(t)
	if counts[refstore.OpUsernameCheck] != 1 || counts[refstore.OpSearch] < 1 || counts[refstore.OpUser] < 1 {
		t.Fatalf("allowed calls should reach the store: %v", counts)
	}
}

// X-Platform only selects a policy. However a client spells or repeats it,
// and whatever identity headers it adds, nothing is granted that the
// verified token does not carry.
func TestPolicyPlatformSpoofingGrantsNothing(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	user := idp.UserToken(t)
	// Tokens that say "admin" anywhere but in the roles claim.
	adminScope := polMint(t, idp, refstore.DemoUserID, []string{"user"}, []string{"admin"})
	adminElsewhere, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user"},
		Extra: map[string]any{"role": "admin", "admin": true, "groups": []string{"admin"}}})
	if err != nil {
		t.Fatal(err)
	}
	spoof := []ReqOpt{
		Header("X-User-Id", refstore.DemoAdminID),
		Header("X-User-Roles", "admin"),
		Header("X-Roles", "admin"),
	}

	store.Reset(t)
	for _, tok := range []string{user, adminScope, adminElsewhere} {
		for _, platform := range []string{"admin", "ADMIN", " Admin ", "all", "admin, web", "superadmin"} {
			for _, r := range polRoutes[3:] {
				polForbidden(t, gw, r, append(spoof, Bearer(tok), Platform(platform))...)
			}
		}
		// Two X-Platform headers: the first counts, and neither grants.
		polForbidden(t, gw, polRoutes[3], append(spoof, Bearer(tok), Platform("mobile_ios"), Platform("admin"))...)
		polForbidden(t, gw, polRoutes[4], append(spoof, Bearer(tok), Platform("admin"), Platform("web"))...)
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("denied requests reached the user store %d times: %v", n, store.Counts(t))
	}

	// On a route the user may call, the store hears the verified identity,
	// never the client's copy.
	var mine struct{ ID string }
	gw.Do(t, http.MethodGet, "/api/v1/users/me", append(spoof, Bearer(user), Platform("mobile_ios"))...).Data(t, &mine)
	if mine.ID != refstore.DemoUserID {
		t.Fatalf("/me answered for %q", mine.ID)
	}
	reqs := store.Requests(t)
	if len(reqs) == 0 {
		t.Fatal("the store saw no request")
	}
	for _, r := range reqs {
		if got := r.Headers["X-User-Id"]; got != refstore.DemoUserID {
			t.Errorf("store saw X-User-Id %q on %s", got, r.Path)
		}
		if got := r.Headers["X-User-Roles"]; strings.Contains(got, "admin") {
			t.Errorf("store saw X-User-Roles %q on %s", got, r.Path)
		}
		if got := r.Headers["X-Platform"]; got != "mobile_ios" {
			t.Errorf("store saw X-Platform %q on %s", got, r.Path)
		}
	}
}

// HEAD takes the policy of the GET it stands for: every denial of the
// routes table is a 403 without a body that never reaches the store, and
// an allowed HEAD carries the headers of its GET (the same ETag and
// X-Cache from the apps' cache; none of either on the admin routes).
func TestPolicyHeadFollowsThePolicyOfItsGet(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	user, admin := idp.UserToken(t), idp.AdminToken(t)
	gets := []polRoute{polRoutes[1], polRoutes[2], polRoutes[3], polRoutes[4]}

	store.Reset(t)
	for _, c := range []struct {
		token, platform string
		routes          []polRoute
	}{
		{user, "admin", gets},
		{user, "web", gets[2:]},
		{admin, "web", gets[2:]},
		{admin, "", gets[2:]},
		{admin, "mobile_ios", gets[2:]},
		{admin, "admin", gets[:1]},
	} {
		for _, r := range c.routes {
			resp := gw.Do(t, http.MethodHead, r.path, Bearer(c.token), Platform(c.platform))
			if resp.Status != http.StatusForbidden || len(resp.Body) != 0 {
				t.Fatalf("HEAD %s on %q: %d with %d body bytes, want 403 without a body", r.path, c.platform, resp.Status, len(resp.Body))
			}
		}
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("denied HEADs reached the user store %d times: %v", n, store.Counts(t))
	}

	for _, c := range []struct {
		token, platform string
		r               polRoute
		cached          bool
	}{
		{user, "mobile_ios", gets[0], true},
		{user, "web", gets[1], true},
		{admin, "admin", gets[1], false},
		{admin, "admin", gets[2], false},
		{admin, "admin", gets[3], false},
	} {
		get := gw.Do(t, http.MethodGet, c.r.path, Bearer(c.token), Platform(c.platform))
		get.Data(t, nil)
		head := gw.Do(t, http.MethodHead, c.r.path, Bearer(c.token), Platform(c.platform))
		if head.Status != http.StatusOK || len(head.Body) != 0 {
			t.Fatalf("HEAD %s on %s: %d with %d body bytes, want 200 without a body", c.r.path, c.platform, head.Status, len(head.Body))
		}
		for _, h := range []string{"ETag", "Cache-Control", "Vary"} {
			if g, hd := get.Header.Get(h), head.Header.Get(h); g != hd {
				t.Errorf("%s on %s: %s %q on GET, %q on HEAD", c.r.path, c.platform, h, g, hd)
			}
		}
		if c.cached && (head.Header.Get("X-Cache") != "HIT" || head.Header.Get("ETag") == "") {
			t.Errorf("HEAD %s on %s: X-Cache %q, ETag %q, want the GET's cached answer", c.r.path, c.platform, head.Header.Get("X-Cache"), head.Header.Get("ETag"))
		}
		if !c.cached && (head.Header.Get("ETag") != "" || head.Header.Get("X-Cache") == "HIT") {
			t.Errorf("HEAD %s on %s: X-Cache %q, ETag %q, want neither from a cache", c.r.path, c.platform, head.Header.Get("X-Cache"), head.Header.Get("ETag"))
		}
	}
}

// Field visibility per platform and view: ops hide expertise from the api
// platform's public view; the search items lose it there only, /me (the
// self view) keeps it, and the admin view shows what apps never see.
func TestPolicyFieldVisibilityPerPlatform(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, ConfigYAML: polConfig(t, `
policies:
  api:
    fields:
      public: [id, username, firstName, lastName, minutePrice, profilePhotoUrl, liveStream]
`)})
	user, admin := idp.UserToken(t), idp.AdminToken(t)
	public := polSorted("id", "username", "firstName", "lastName", "expertise", "minutePrice", "profilePhotoUrl", "liveStream")
	apiPublic := polSorted("id", "username", "firstName", "lastName", "minutePrice", "profilePhotoUrl", "liveStream")
	self := polSorted("id", "username", "firstName", "lastName", "email", "phone", "bio", "expertise", "minutePrice",
		"profilePhotoUrl", "photos", "liveStream", "createdAt")
	adminView := polSorted("id", "username", "firstName", "lastName", "email", "phone", "bio", "roles", "expertise",
		"minutePrice", "profilePhotoUrl", "photos", "liveStream", "status", "createdAt", "updatedAt")

	search := func(platform string) polPage {
		var page polPage
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(user), Platform(platform)).Data(t, &page)
		return page
	}
	// web first, so its answer is cached when api asks the same question:
	// the cache must keep answers of different visibilities apart.
	for _, platform := range []string{"web", "api", "mobile_ios", "api", "unknown"} {
		want := public
		if platform == "api" {
			want = apiPublic
		}
		page := search(platform)
		for _, it := range page.Items {
			if got := polKeys(it); !slices.Equal(got, want) {
				t.Fatalf("%s search item fields %v, want %v", platform, got, want)
			}
		}
		if demo := page.item(t, refstore.DemoUserID); platform != "api" && string(demo["expertise"]) != `["career coaching","astrology"]` {
			t.Fatalf("%s: expertise %s", platform, demo["expertise"])
		}
	}

	for _, platform := range []string{"web", "api"} {
		var mine map[string]json.RawMessage
		gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Platform(platform)).Data(t, &mine)
		if got := polKeys(mine); !slices.Equal(got, self) {
			t.Fatalf("%s /me fields %v, want the self view %v", platform, got, self)
		}
		if string(mine["email"]) != `"sukru.isik@example.com"` {
			t.Fatalf("%s /me email %s", platform, mine["email"])
		}
	}

	var page polPage
	gw.Do(t, http.MethodGet, "/api/admin/v1/users/search?query=sukru", Bearer(admin), Platform("admin")).Data(t, &page)
	demo := page.item(t, refstore.DemoUserID)
	if got := polKeys(demo); !slices.Equal(got, adminView) {
		t.Fatalf("admin search fields %v, want %v", got, adminView)
	}
	if string(demo["status"]) != `"active"` || string(demo["phone"]) != `"+905551112233"` {
		t.Fatalf("admin view: status %s phone %s", demo["status"], demo["phone"])
	}
	var one map[string]json.RawMessage
	gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+refstore.DemoUserID, Bearer(admin), Platform("admin")).Data(t, &one)
	if got := polKeys(one); !slices.Equal(got, adminView) {
		t.Fatalf("admin user fields %v, want %v", got, adminView)
	}
}

// Ops review a change before shipping it: `gateway validate -config NEW
// -diff OLD` says the new file is valid and lists every change, marking
// what needs a restart. A change that breaks a hard rule is refused with
// the path of the value that breaks it.
func TestPolicyValidateDiffReviewsAChange(t *testing.T) {
	dir := t.TempDir()
	oldPath := filepath.Join(repoRoot, "config.yaml")
	newPath := polWriteFile(t, dir, "new.yaml", polConfig(t, `
server:
  listen: 127.0.0.1:8088
cache:
  routes:
    search: {ttl: 1m}
policies:
  api:
    rateLimits:
      perUser: {rate: 2, burst: 10}
  mobile_ios:
    routes:
      users.search: {scopes: [search]}
`))
	out, code := polRunBinary(t, "validate", "-config", newPath, "-diff", oldPath)
	want := newPath + ": valid\n" +
		"4 change(s) against " + oldPath + ":\n" +
		"  cache.routes.search.ttl: 30s -> 1m0s\n" +
		"  policies.api.rateLimits.perUser.rate: 5 -> 2\n" +
		"  policies.mobile_ios.routes.users.search.scopes: (unset) -> [search]\n" +
		"  server.listen: 127.0.0.1:8080 -> 127.0.0.1:8088  (needs a restart)\n" +
		"1 change(s) need a restart; the rest apply on reload (SIGHUP or file change)\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}

	out, code = polRunBinary(t, "validate", "-config", oldPath, "-diff", oldPath)
	if code != 0 || out != oldPath+": valid\nno changes\n" {
		t.Fatalf("same file: exit %d, output:\n%s", code, out)
	}

	// Hard rules: email in an app's public view, an admin route on web.
	bad := polWriteFile(t, dir, "bad.yaml", polConfig(t, `
policies:
  api:
    fields:
      public: [id, username, email]
  web:
    routes:
      admin.users.search: {allow: true}
`))
	out, code = polRunBinary(t, "validate", "-config", bad, "-diff", oldPath)
	if code != 1 {
		t.Fatalf("exit %d, want 1; output:\n%s", code, out)
	}
	for _, want := range []string{
		"policies.api.fields.public: app platforms never show email in the public view",
		"policies.web.routes.admin.users.search.allow: admin routes can be allowed only on the admin platform",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "change(s)") {
		t.Errorf("an invalid file must not be diffed:\n%s", out)
	}
}
