package policies

import (
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/clientctx"
)

// Principal is what a policy needs to know of a verified identity. The
// gateway's *auth.Identity satisfies it. Pass a nil interface (not a typed
// nil pointer) for a caller without a verified token.
type Principal interface {
	HasRole(role string) bool
	HasScope(scope string) bool
}

// Reasons a request is denied, for logs and metrics. The client only ever
// sees "Insufficient permissions".
const (
	ReasonNoPolicy        = "no policy"
	ReasonUnknownRoute    = "unknown route"
	ReasonRouteNotAllowed = "route not allowed on this platform"
	ReasonNoIdentity      = "no verified identity"
	ReasonPlatformRole    = "platform requires a role the caller lacks"
	ReasonRouteRole       = "route requires a role the caller lacks"
	ReasonRouteScope      = "route requires a scope the caller lacks"
)

// Decision is the outcome of Authorize.
type Decision struct {
	Allowed bool
	// Reason is one of the Reason constants when denied, empty when allowed.
	Reason string
	// Detail names what was missing: the route, the roles accepted
	// ("admin|support") or the scope.
	Detail string
}

func deny(reason, detail string) Decision {
	return Decision{Reason: reason, Detail: detail}
}

// platformCount is the number of platforms, PlatformWeb to PlatformUnknown.
const platformCount = int(clientctx.PlatformUnknown) + 1

// route is a route id's index in config.RouteIDs.
type route uint8

const routeCount = 5

// routeIndex finds a route id without allocating.
func routeIndex(id string) (route, bool) {
	switch id {
	case config.RouteCheckUsername:
		return 0, true
	case config.RouteSearch:
		return 1, true
	case config.RouteMe:
		return 2, true
	case config.RouteAdminSearch:
		return 3, true
	case config.RouteAdminUser:
		return 4, true
	}
	return 0, false
}

// isAdminRoute reports whether a route shows admin data.
func isAdminRoute(r route) bool { return r >= 3 }

// cacheRoute indexes config.CacheRouteNames.
func cacheRouteIndex(name string) (int, bool) {
	switch name {
	case "search":
		return 0, true
	case "me":
		return 1, true
	}
	return 0, false
}

const cacheRouteCount = 2

// access is one route's resolved rule.
type access struct {
	allowed bool
	roles   []string // one of them is needed; empty: any verified user
	scopes  []string // all of them are needed
	// rolesText is roles joined by "|", ready for Decision.Detail.
	rolesText string
}

// Set is every platform's resolved policy. It is immutable: a reload
// compiles a new Set and the gateway swaps it in atomically.
type Set struct {
	policies [platformCount]Policy
	// preflightOrder is the order PreflightPolicy tries policies in.
	preflightOrder [platformCount]*Policy
}

// For gives the policy of a platform; a value outside the known platforms
// gets the unknown platform's policy.
func (s *Set) For(p clientctx.Platform) *Policy {
	if s == nil {
		return nil
	}
	if int(p) >= platformCount {
		p = clientctx.PlatformUnknown
	}
	return &s.policies[p]
}

// All lists the policies in platform order, for documentation and
// `gateway validate`.
func (s *Set) All() []*Policy {
	if s == nil {
		return nil
	}
	all := make([]*Policy, platformCount)
	for i := range s.policies {
		all[i] = &s.policies[i]
	}
	return all
}

// Policy is one platform's resolved rules. It is immutable; read it through
// its methods.
type Policy struct {
	// Name is the platform's name, e.g. "mobile_ios".
	Name string

	platform      clientctx.Platform
	routes        [routeCount]access
	requireRoles  []string
	requireText   string
	limits        Limits
	maxPageSize   int
	pageSize      int
	fields        [viewCount]FieldSet
	fieldClasses  [viewCount]string
	cacheBypass   bool
	cacheTTL      [cacheRouteCount]time.Duration
	cacheTTLIsSet [cacheRouteCount]bool
	cors          *CORSPolicy
}

// Platform is the platform the policy applies to.
func (p *Policy) Platform() clientctx.Platform { return p.platform }

// Authorize decides whether who may call route on this platform. who is nil
// for a caller without a verified token, who is always denied: every route
// needs a verified user. It does not allocate.
func (p *Policy) Authorize(routeID string, who Principal) Decision {
	if p == nil {
		return deny(ReasonNoPolicy, routeID)
	}
	r, ok := routeIndex(routeID)
	if !ok {
		return deny(ReasonUnknownRoute, routeID)
	}
	rule := &p.routes[r]
	if !rule.allowed {
		return deny(ReasonRouteNotAllowed, routeID)
	}
	if who == nil {
		return deny(ReasonNoIdentity, routeID)
	}
	if len(p.requireRoles) > 0 && !hasAnyRole(who, p.requireRoles) {
		return deny(ReasonPlatformRole, p.requireText)
	}
	if len(rule.roles) > 0 && !hasAnyRole(who, rule.roles) {
		return deny(ReasonRouteRole, rule.rolesText)
	}
	for _, scope := range rule.scopes {
		if !who.HasScope(scope) {
			return deny(ReasonRouteScope, scope)
		}
	}
	return Decision{Allowed: true}
}

func hasAnyRole(who Principal, roles []string) bool {
	for _, role := range roles {
		if who.HasRole(role) {
			return true
		}
	}
	return false
}

// RouteAllowed reports whether the platform may call the route at all,
// before anything is known of the caller.
func (p *Policy) RouteAllowed(routeID string) bool {
	r, ok := routeIndex(routeID)
	return ok && p.routes[r].allowed
}

// MaxPageSize is the largest search page (limit parameter) allowed.
func (p *Policy) MaxPageSize() int { return p.maxPageSize }

// DefaultPageSize is the page size of a search without a limit.
func (p *Policy) DefaultPageSize() int { return p.pageSize }

// Fields is the set of user fields a view shows on this platform.
func (p *Policy) Fields(v View) FieldSet {
	if v >= viewCount {
		return 0
	}
	return p.fields[v]
}

// FieldClass is Fields(v).Class(), computed once at compile time.
func (p *Policy) FieldClass(v View) string {
	if v >= viewCount {
		return FieldSet(0).Class()
	}
	return p.fieldClasses[v]
}

// CacheBypass reports whether the platform skips the read cache entirely.
func (p *Policy) CacheBypass() bool { return p.cacheBypass }

// CacheTTL gives the platform's TTL for a cached route ("search", "me"), or
// fallback (the route's TTL from cache.routes) when the policy sets none.
// A result of 0 means the route is not cached for this platform.
func (p *Policy) CacheTTL(routeName string, fallback time.Duration) time.Duration {
	if i, ok := cacheRouteIndex(routeName); ok && p.cacheTTLIsSet[i] {
		return p.cacheTTL[i]
	}
	return fallback
}

// Limits are the platform's rate limits.
func (p *Policy) Limits() Limits { return p.limits }

// CORS is the platform's cross-origin policy, nil when it lists no origins.
func (p *Policy) CORS() *CORSPolicy { return p.cors }

// RequireRoles lists the roles of which every route of the platform needs
// one (empty: none).
func (p *Policy) RequireRoles() []string { return append([]string(nil), p.requireRoles...) }

// Limits are a policy's token buckets.
type Limits struct {
	// PerIP applies to every request by client IP, before authentication.
	PerIP Limit
	// AuthFailures counts failed authentications per client IP.
	AuthFailures Limit
	// PerUser applies by verified subject.
	PerUser Limit
	// PerDevice applies by normalized device id.
	PerDevice Limit
}

// Limit is a token bucket: Rate tokens per second, up to Burst. A Rate of 0
// turns the limit off.
type Limit struct {
	Rate  float64
	Burst int
}

// Enabled reports whether the limit applies at all.
func (l Limit) Enabled() bool { return l.Rate > 0 && l.Burst > 0 }
