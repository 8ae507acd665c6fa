package policies_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
)

// identity is a verified caller as the gateway's auth package gives it.
type identity struct {
	roles  []string
	scopes []string
}

func (i identity) HasRole(r string) bool  { return slices.Contains(i.roles, r) }
func (i identity) HasScope(s string) bool { return slices.Contains(i.scopes, s) }

var (
	user  = identity{roles: []string{"user"}}
	admin = identity{roles: []string{"admin"}}
)

// specs decodes the policies: block of a config.yaml.
func specs(t *testing.T, doc string) map[string]config.Policy {
	t.Helper()
	var out map[string]config.Policy
	if err := yaml.Unmarshal([]byte(doc), &out); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return out
}

func compile(t *testing.T, doc string) *policies.Set {
	t.Helper()
	set, problems := policies.Compile(specs(t, doc), config.Default().Auth)
	if len(problems) > 0 {
		t.Fatalf("unexpected problems:\n%v", problems)
	}
	if set == nil {
		t.Fatal("nil set without problems")
	}
	return set
}

func TestDefaultsAuthorizeEveryPlatformAndRoute(t *testing.T) {
	set := compile(t, "")
	type want struct {
		user, admin string // "" allowed, else the denial reason
	}
	app := map[string]want{
		config.RouteCheckUsername: {"", ""},
		config.RouteSearch:        {"", ""},
		config.RouteMe:            {"", ""},
		config.RouteAdminSearch:   {policies.ReasonRouteNotAllowed, policies.ReasonRouteNotAllowed},
		config.RouteAdminUser:     {policies.ReasonRouteNotAllowed, policies.ReasonRouteNotAllowed},
	}
	adminPlatform := map[string]want{
		config.RouteCheckUsername: {policies.ReasonRouteNotAllowed, policies.ReasonRouteNotAllowed},
		config.RouteSearch:        {policies.ReasonRouteNotAllowed, policies.ReasonRouteNotAllowed},
		config.RouteMe:            {policies.ReasonPlatformRole, ""},
		config.RouteAdminSearch:   {policies.ReasonPlatformRole, ""},
		config.RouteAdminUser:     {policies.ReasonPlatformRole, ""},
	}
	for p := clientctx.PlatformWeb; p <= clientctx.PlatformUnknown; p++ {
		table := app
		if p == clientctx.PlatformAdmin {
			table = adminPlatform
		}
		pol := set.For(p)
		if pol.Name != p.String() || pol.Platform() != p {
			t.Fatalf("For(%v) gave %q", p, pol.Name)
		}
		for _, route := range config.RouteIDs {
			for _, c := range []struct {
				who  identity
				want string
			}{{user, table[route].user}, {admin, table[route].admin}} {
				d := pol.Authorize(route, c.who)
				if d.Allowed != (c.want == "") || d.Reason != c.want {
					t.Errorf("%s %s roles=%v: got %+v, want reason %q", p, route, c.who.roles, d, c.want)
				}
			}
		}
	}
}

func TestAuthorizeDenials(t *testing.T) {
	set := compile(t, `
web:
  routes:
    users.search: {roles: [member, vip], scopes: [users:read, search]}
`)
	web := set.For(clientctx.PlatformWeb)
	ios := set.For(clientctx.PlatformIOS)
	adm := set.For(clientctx.PlatformAdmin)
	tests := []struct {
		name   string
		policy *policies.Policy
		route  string
		who    policies.Principal
		reason string
		detail string
	}{
		{"unknown route", web, "users.delete", user, policies.ReasonUnknownRoute, "users.delete"},
		{"no identity", web, config.RouteMe, nil, policies.ReasonNoIdentity, config.RouteMe},
		{"route not on platform", web, config.RouteAdminSearch, admin, policies.ReasonRouteNotAllowed, config.RouteAdminSearch},
		{"missing route role", web, config.RouteSearch, identity{roles: []string{"user"}, scopes: []string{"users:read", "search"}}, policies.ReasonRouteRole, "member|vip"},
		{"missing one scope", web, config.RouteSearch, identity{roles: []string{"vip"}, scopes: []string{"users:read"}}, policies.ReasonRouteScope, "search"},
		{"user token on admin platform", adm, config.RouteAdminUser, user, policies.ReasonPlatformRole, "admin"},
		{"user token on admin platform, /me", adm, config.RouteMe, user, policies.ReasonPlatformRole, "admin"},
		{"admin token from mobile: no admin routes", ios, config.RouteAdminSearch, admin, policies.ReasonRouteNotAllowed, config.RouteAdminSearch},
		{"admin token from mobile: admin user", ios, config.RouteAdminUser, admin, policies.ReasonRouteNotAllowed, config.RouteAdminUser},
		{"nil policy", nil, config.RouteMe, admin, policies.ReasonNoPolicy, config.RouteMe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.policy.Authorize(tt.route, tt.who)
			if d.Allowed || d.Reason != tt.reason || d.Detail != tt.detail {
				t.Fatalf("got %+v, want denied %q (%q)", d, tt.reason, tt.detail)
			}
		})
	}
	ok := web.Authorize(config.RouteSearch, identity{roles: []string{"vip"}, scopes: []string{"search", "users:read"}})
	if !ok.Allowed || ok.Reason != "" {
		t.Fatalf("vip with both scopes: %+v", ok)
	}
	// Other platforms keep the built-in rule.
	if d := ios.Authorize(config.RouteSearch, user); !d.Allowed {
		t.Fatalf("ios search: %+v", d)
	}
}

func TestInheritance(t *testing.T) {
	type probe func(*policies.Set) any
	authorized := func(p clientctx.Platform, route string, who identity) probe {
		return func(s *policies.Set) any { return s.For(p).Authorize(route, who).Allowed }
	}
	tests := []struct {
		name  string
		doc   string
		probe probe
		want  any
	}{
		{"built-in app max page", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformIOS).MaxPageSize() }, 50},
		{"built-in admin max page", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformAdmin).MaxPageSize() }, 100},
		{"default page size", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).DefaultPageSize() }, 20},
		{"default page size never above max", `web: {maxPageSize: 10}`, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).DefaultPageSize() }, 10},
		{"all overrides built-in", `all: {maxPageSize: 30}`, func(s *policies.Set) any { return s.For(clientctx.PlatformAndroid).MaxPageSize() }, 30},
		{"all reaches admin too", `all: {maxPageSize: 30}`, func(s *policies.Set) any { return s.For(clientctx.PlatformAdmin).MaxPageSize() }, 30},
		{"platform overrides all", "all: {maxPageSize: 30}\napi: {maxPageSize: 80}", func(s *policies.Set) any { return s.For(clientctx.PlatformAPI).MaxPageSize() }, 80},
		{"sibling keeps all", "all: {maxPageSize: 30}\napi: {maxPageSize: 80}", func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).MaxPageSize() }, 30},

		// Route rules merge per route and per field.
		{"roles from all, allow from built-in", `all: {routes: {users.me: {roles: [member]}}}`, authorized(clientctx.PlatformWeb, config.RouteMe, user), false},
		{"roles from all satisfied", `all: {routes: {users.me: {roles: [member]}}}`, authorized(clientctx.PlatformWeb, config.RouteMe, identity{roles: []string{"member"}}), true},
		{"platform allow keeps roles from all", "all: {routes: {users.search: {roles: [member]}}}\nmobile_ios: {routes: {users.search: {allow: false}}}", authorized(clientctx.PlatformIOS, config.RouteSearch, identity{roles: []string{"member"}}), false},
		{"platform roles keep allow from all", "all: {routes: {users.search: {allow: false}}}\nweb: {routes: {users.search: {roles: [member]}}}", authorized(clientctx.PlatformWeb, config.RouteSearch, identity{roles: []string{"member"}}), false},
		{"platform re-allows", "all: {routes: {users.search: {allow: false, roles: [member]}}}\nweb: {routes: {users.search: {allow: true}}}", authorized(clientctx.PlatformWeb, config.RouteSearch, identity{roles: []string{"member"}}), true},
		{"platform re-allows, roles from all apply", "all: {routes: {users.search: {allow: false, roles: [member]}}}\nweb: {routes: {users.search: {allow: true}}}", authorized(clientctx.PlatformWeb, config.RouteSearch, user), false},
		{"empty roles list clears inherited roles", "all: {routes: {users.me: {roles: [member]}}}\nweb: {routes: {users.me: {roles: []}}}", authorized(clientctx.PlatformWeb, config.RouteMe, user), true},
		{"scopes from all", `all: {routes: {users.me: {scopes: [profile]}}}`, authorized(clientctx.PlatformAndroid, config.RouteMe, user), false},
		{"empty scopes list clears inherited scopes", "all: {routes: {users.me: {scopes: [profile]}}}\nweb: {routes: {users.me: {scopes: []}}}", authorized(clientctx.PlatformWeb, config.RouteMe, user), true},
		{"other routes untouched", `all: {routes: {users.me: {scopes: [profile]}}}`, authorized(clientctx.PlatformAndroid, config.RouteSearch, user), true},
		{"requireRoles from all", "all: {requireRoles: [member]}\nadmin: {requireRoles: [admin]}", authorized(clientctx.PlatformAPI, config.RouteSearch, user), false},
		{"admin may open search", `admin: {routes: {users.search: {allow: true}}}`, authorized(clientctx.PlatformAdmin, config.RouteSearch, admin), true},
		{"admin search still admin-only", `admin: {routes: {users.search: {allow: true}}}`, authorized(clientctx.PlatformAdmin, config.RouteSearch, user), false},
		{"admin may add a second role", `admin: {requireRoles: [admin, support]}`, authorized(clientctx.PlatformAdmin, config.RouteAdminUser, identity{roles: []string{"support"}}), true},

		// Rate limits merge per limit.
		{"limit from all", `all: {rateLimits: {perUser: {rate: 3, burst: 6}}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).Limits().PerUser }, policies.Limit{Rate: 3, Burst: 6}},
		{"sibling limit stays built-in", `all: {rateLimits: {perUser: {rate: 3, burst: 6}}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).Limits().PerIP }, policies.Limit{Rate: 50, Burst: 100}},
		{"platform limit over all", "all: {rateLimits: {perUser: {rate: 3, burst: 6}}}\nweb: {rateLimits: {perUser: {rate: 0}}}", func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).Limits().PerUser.Enabled() }, false},
		{"admin built-in limits", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformAdmin).Limits() }, policies.Limits{
			PerIP: policies.Limit{Rate: 20, Burst: 40}, AuthFailures: policies.Limit{Rate: 0.1, Burst: 5},
			PerUser: policies.Limit{Rate: 5, Burst: 20}, PerDevice: policies.Limit{Rate: 5, Burst: 20},
		}},
		{"app built-in limits", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformUnknown).Limits() }, policies.Limits{
			PerIP: policies.Limit{Rate: 50, Burst: 100}, AuthFailures: policies.Limit{Rate: 0.5, Burst: 20},
			PerUser: policies.Limit{Rate: 10, Burst: 30}, PerDevice: policies.Limit{Rate: 10, Burst: 30},
		}},

		// Cache.
		{"apps use the cache", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).CacheBypass() }, false},
		{"admin bypasses the cache", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformAdmin).CacheBypass() }, true},
		{"ttl fallback", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).CacheTTL("search", 30*time.Second) }, 30 * time.Second},
		{"ttl from all", `all: {cache: {ttl: {search: 5s}}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformIOS).CacheTTL("search", 30*time.Second) }, 5 * time.Second},
		{"ttl merges per route", "all: {cache: {ttl: {search: 5s}}}\nmobile_ios: {cache: {ttl: {me: 2s}}}", func(s *policies.Set) any {
			p := s.For(clientctx.PlatformIOS)
			return [2]time.Duration{p.CacheTTL("search", time.Minute), p.CacheTTL("me", time.Minute)}
		}, [2]time.Duration{5 * time.Second, 2 * time.Second}},
		{"ttl zero turns caching off", `web: {cache: {ttl: {me: 0s}}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).CacheTTL("me", time.Minute) }, time.Duration(0)},
		{"bypass from all on apps", `all: {cache: {bypass: true}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformAPI).CacheBypass() }, true},

		// Fields merge per view.
		{"public from all", `all: {fields: {public: [id, username]}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).Fields(policies.ViewPublic).String() }, "id,username"},
		{"self keeps built-in", `all: {fields: {public: [id, username]}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).Fields(policies.ViewSelf).String() }, "id,username,firstName,lastName,email,phone,bio,expertise,minutePrice,profilePhotoUrl,photos,liveStream,createdAt"},
		{"admin may show email in public", `admin: {fields: {public: [id, email]}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformAdmin).Fields(policies.ViewPublic).String() }, "id,email"},

		// CORS merges per setting.
		{"cors off by default", ``, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).CORS() == nil }, true},
		{"cors origins with built-in methods", `web: {cors: {allowOrigins: ["https://app.example.com"]}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).CORS().Methods() }, []string{"GET", "POST"}},
		{"cors max-age from all", "all: {cors: {maxAge: 1m}}\nweb: {cors: {allowOrigins: [\"https://app.example.com\"]}}", func(s *policies.Set) any { return s.For(clientctx.PlatformWeb).CORS().MaxAge() }, time.Minute},
		{"cors only where origins are", `web: {cors: {allowOrigins: ["https://app.example.com"]}}`, func(s *policies.Set) any { return s.For(clientctx.PlatformIOS).CORS() == nil }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.probe(compile(t, tt.doc))
			if !equal(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}
	return a == b
}

func TestCompileReportsEveryProblemWithItsPath(t *testing.T) {
	doc := `
all:
  rateLimits:
    perIP: {rate: -1, burst: 10}
    perUser: {rate: 5, burst: 0}
    perDevice: {rate: 1e9, burst: 2000000}
web:
  routes:
    users.delete: {allow: true}
    users.search: {roles: [member, ""], scopes: ["a b"]}
  requireRoles: [""]
  maxPageSize: 500
  fields:
    public: [id, nickname]
    self: []
  cache:
    ttl: {profile: 10s, search: -1s}
  cors:
    allowOrigins: ["https://app.example.com/", "HTTPS://APP.EXAMPLE.COM", "https://app.example.com:443", "*"]
    allowMethods: [GET, FETCH]
    allowHeaders: ["X-Ok", "*", "bad header"]
    maxAge: 48h
mobile_ios:
  maxPageSize: 0
desktop: {}
`
	set, problems := policies.Compile(specs(t, doc), config.Default().Auth)
	if set != nil {
		t.Fatal("a Set came back with problems")
	}
	want := []string{
		"policies.all.rateLimits.perIP.rate",
		"policies.all.rateLimits.perUser.burst",
		"policies.all.rateLimits.perDevice.rate",
		"policies.all.rateLimits.perDevice.burst",
		"policies.web.routes.users.delete",
		"policies.web.routes.users.search.roles[1]",
		"policies.web.routes.users.search.scopes[0]",
		"policies.web.requireRoles[0]",
		"policies.web.maxPageSize",
		"policies.web.fields.public[1]",
		"policies.web.fields.self",
		"policies.web.cache.ttl.profile",
		"policies.web.cache.ttl.search",
		"policies.web.cors.allowOrigins[0]",
		"policies.web.cors.allowOrigins[1]",
		"policies.web.cors.allowOrigins[2]",
		"policies.web.cors.allowOrigins[3]",
		"policies.web.cors.allowMethods[1]",
		"policies.web.cors.allowHeaders[1]",
		"policies.web.cors.allowHeaders[2]",
		"policies.web.cors.maxAge",
		"policies.mobile_ios.maxPageSize",
		"policies.desktop",
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Path)
		if p.Message == "" {
			t.Errorf("%s: empty message", p.Path)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no problem reported at %s", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), problems)
	}
}

func TestHardRules(t *testing.T) {
	tests := []struct {
		name, doc string
		path      string
		message   string
	}{
		{"public email on web", `web: {fields: {public: [id, email]}}`, "policies.web.fields.public", "email"},
		{"public phone and status from all", `all: {fields: {public: [id, phone, status]}}`, "policies.all.fields.public", "phone, status"},
		{"admin route opened on mobile", `mobile_android: {routes: {admin.users.get: {allow: true}}}`, "policies.mobile_android.routes.admin.users.get.allow", "only on the admin platform"},
		{"admin route opened for all", `all: {routes: {admin.users.search: {allow: true}}}`, "policies.all.routes.admin.users.search.allow", "only on the admin platform"},
		{"admin without the admin role", `admin: {requireRoles: [support]}`, "policies.admin.requireRoles", `"admin"`},
		{"admin inherits a role list from all", `all: {requireRoles: [member]}`, "policies.all.requireRoles", `"admin"`},
		{"admin cache bypass off", `admin: {cache: {bypass: false}}`, "policies.admin.cache.bypass", "never cached"},
		{"admin cache bypass off from all", `all: {cache: {bypass: false}}`, "policies.all.cache.bypass", "never cached"},
		{"wildcard with credentials", `web: {cors: {allowOrigins: ["*"], allowCredentials: true}}`, "policies.web.cors.allowOrigins", "allowCredentials"},
		{"wildcard and credentials from different layers", "all: {cors: {allowCredentials: true}}\napi: {cors: {allowOrigins: [\"*\"]}}", "policies.api.cors.allowOrigins", "allowCredentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, problems := policies.Compile(specs(t, tt.doc), config.Default().Auth)
			if set != nil || len(problems) != 1 {
				t.Fatalf("want exactly one problem, got %v", problems)
			}
			if problems[0].Path != tt.path || !strings.Contains(problems[0].Message, tt.message) {
				t.Fatalf("got %v, want %s: …%s…", problems[0], tt.path, tt.message)
			}
		})
	}

	// The admin platform is not an app: its public view may show email.
	compile(t, `admin: {fields: {public: [id, email, phone, status]}}`)
	// An app platform that overrides a leaking "all" public view is fine
	// for itself, but the others still inherit the leak.
	_, problems := policies.Compile(specs(t, "all: {fields: {public: [id, email]}}\nweb: {fields: {public: [id]}}"), config.Default().Auth)
	if len(problems) != 1 || problems[0].Path != "policies.all.fields.public" {
		t.Fatalf("got %v", problems)
	}
}

func TestCompileNeedsAnAdminRole(t *testing.T) {
	auth := config.Default().Auth
	for _, role := range []string{"", "  ", "ad min"} {
		auth.AdminRole = role
		set, problems := policies.Compile(nil, auth)
		if set != nil || len(problems) != 1 || problems[0].Path != "auth.adminRole" {
			t.Errorf("adminRole %q: got %v", role, problems)
		}
	}
	auth.AdminRole = "superuser"
	set, problems := policies.Compile(nil, auth)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if d := set.For(clientctx.PlatformAdmin).Authorize(config.RouteAdminUser, admin); d.Allowed {
		t.Fatal("the admin role of the config, not the word admin, opens the admin platform")
	}
	if d := set.For(clientctx.PlatformAdmin).Authorize(config.RouteAdminUser, identity{roles: []string{"superuser"}}); !d.Allowed {
		t.Fatalf("superuser: %+v", d)
	}
	if got := set.For(clientctx.PlatformAdmin).RequireRoles(); !slices.Equal(got, []string{"superuser"}) {
		t.Fatalf("RequireRoles = %v", got)
	}
}

func TestForOutOfRangeIsUnknown(t *testing.T) {
	set := compile(t, "")
	for _, p := range []clientctx.Platform{clientctx.PlatformUnknown + 1, 200} {
		if got := set.For(p).Name; got != "unknown" {
			t.Fatalf("platform %d: got %q", p, got)
		}
	}
	if len(set.All()) != 6 || set.All()[3].Name != "admin" {
		t.Fatal("All lists the six platforms in order")
	}
	var nilSet *policies.Set
	if nilSet.For(clientctx.PlatformWeb) != nil {
		t.Fatal("nil set")
	}
}

func TestPolicyDoesNotShareConfigMemory(t *testing.T) {
	sp := specs(t, `web: {routes: {users.me: {roles: [member]}}}`)
	set, problems := policies.Compile(sp, config.Default().Auth)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	sp["web"].Routes["users.me"].Roles[0] = "user" // mutate the config after compiling
	if d := set.For(clientctx.PlatformWeb).Authorize(config.RouteMe, user); d.Allowed {
		t.Fatal("a compiled policy changed with the config it came from")
	}
}

func TestRouteAllowed(t *testing.T) {
	set := compile(t, "")
	if !set.For(clientctx.PlatformWeb).RouteAllowed(config.RouteSearch) || set.For(clientctx.PlatformWeb).RouteAllowed(config.RouteAdminUser) {
		t.Fatal("web")
	}
	if set.For(clientctx.PlatformAdmin).RouteAllowed("nope") {
		t.Fatal("unknown route")
	}
}

func defaultAuth() config.Auth { return config.Default().Auth }
