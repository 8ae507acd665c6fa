package policies

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/clientctx"
)

// Compile resolves and checks the policies of config.yaml (policies:) into
// a Set. auth supplies the admin role. It is pure: the gateway calls it at
// start and on every reload and swaps the Set in only when no problem is
// found. Every problem is reported at once, each at its YAML path; with
// problems the Set is nil.
func Compile(specs map[string]config.Policy, auth config.Auth) (*Set, config.Problems) {
	c := &compiler{seen: map[string]bool{}}
	adminRole := auth.AdminRole
	if strings.TrimSpace(adminRole) == "" || strings.ContainsFunc(adminRole, isSpace) {
		c.add("auth.adminRole", "must be one role name: the admin platform requires it on every route")
	}

	names := make([]string, 0, len(specs))
	for name := range specs {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return policyOrder(names[i]) < policyOrder(names[j]) })
	for _, name := range names {
		path := "policies." + name
		if !slices.Contains(config.PolicyNames, name) {
			c.add(path, "unknown platform; policies are named %s", strings.Join(config.PolicyNames, ", "))
			continue
		}
		spec := specs[name]
		c.checkSpec(path, &spec)
	}

	set := &Set{}
	for i := range set.policies {
		platform := clientctx.Platform(i)
		r := newResolution(platform, adminRole)
		if spec, ok := specs["all"]; ok {
			r.merge("policies.all", &spec)
		}
		if spec, ok := specs[platform.String()]; ok {
			r.merge("policies."+platform.String(), &spec)
		}
		c.checkHardRules(r, adminRole)
		set.policies[i] = r.policy()
	}
	if len(c.problems) > 0 {
		return nil, c.problems
	}
	set.preflightOrder = preflightOrder(set)
	return set, nil
}

// policyOrder sorts policy names as config.PolicyNames lists them, unknown
// names last.
func policyOrder(name string) string {
	if i := slices.Index(config.PolicyNames, name); i >= 0 {
		return fmt.Sprintf("%02d", i)
	}
	return "99" + name
}

// compiler collects problems, each path and message once: a value that
// "all" sets is checked on every platform that inherits it.
type compiler struct {
	problems config.Problems
	seen     map[string]bool
}

func (c *compiler) add(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if key := path + "\x00" + msg; !c.seen[key] {
		c.seen[key] = true
		c.problems = append(c.problems, config.Problem{Path: path, Message: msg})
	}
}

// checkSpec checks one policy as written, before any inheritance.
func (c *compiler) checkSpec(path string, spec *config.Policy) {
	for _, id := range slices.Sorted(maps.Keys(spec.Routes)) {
		rpath := path + ".routes." + id
		if _, ok := routeIndex(id); !ok {
			c.add(rpath, "unknown route; routes are %s", strings.Join(config.RouteIDs, ", "))
			continue
		}
		rule := spec.Routes[id]
		c.checkNames(rpath+".roles", "role", rule.Roles)
		c.checkNames(rpath+".scopes", "scope", rule.Scopes)
	}
	c.checkNames(path+".requireRoles", "role", spec.RequireRoles)

	if rl := spec.RateLimits; rl != nil {
		c.checkLimit(path+".rateLimits.perIP", rl.PerIP)
		c.checkLimit(path+".rateLimits.authFailures", rl.AuthFailures)
		c.checkLimit(path+".rateLimits.perUser", rl.PerUser)
		c.checkLimit(path+".rateLimits.perDevice", rl.PerDevice)
	}

	if cache := spec.Cache; cache != nil {
		for _, k := range slices.Sorted(maps.Keys(cache.TTL)) {
			tpath := path + ".cache.ttl." + k
			if _, ok := cacheRouteIndex(k); !ok {
				c.add(tpath, "unknown cached route; cache.ttl takes %s", strings.Join(config.CacheRouteNames, ", "))
				continue
			}
			if ttl := cache.TTL[k]; ttl < 0 || ttl > maxCacheTTL {
				c.add(tpath, "must be between 0 (not cached) and %s", maxCacheTTL)
			}
		}
	}

	if n := spec.MaxPageSize; n != nil && (*n < 1 || *n > maxPageSizeCap) {
		c.add(path+".maxPageSize", "must be between 1 and %d (the user store's largest page), got %d", maxPageSizeCap, *n)
	}

	if f := spec.Fields; f != nil {
		c.checkFields(path+".fields.public", f.Public)
		c.checkFields(path+".fields.self", f.Self)
		c.checkFields(path+".fields.admin", f.Admin)
	}

	if spec.CORS != nil {
		checkCORS(path+".cors", spec.CORS, c.add)
	}
}

// checkNames checks a role or scope list: every entry is one non-empty
// name, as tokens carry them.
func (c *compiler) checkNames(path, what string, names []string) {
	for i, n := range names {
		switch {
		case strings.TrimSpace(n) == "":
			c.add(fmt.Sprintf("%s[%d]", path, i), "empty %s", what)
		case strings.ContainsFunc(n, isSpace):
			c.add(fmt.Sprintf("%s[%d]", path, i), "%s %q contains white space", what, n)
		}
	}
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

func (c *compiler) checkLimit(path string, l *config.Limit) {
	if l == nil {
		return
	}
	switch {
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Rate < 0:
		c.add(path+".rate", "must be a number of requests per second, at least 0 (0 turns the limit off)")
	case l.Rate > maxRate:
		c.add(path+".rate", "%g per second is beyond any sensible limit (at most %d)", l.Rate, maxRate)
	case l.Rate == 0 && l.Burst > 0:
		// A limit replaces rate and burst together: a burst given alone
		// (say only its environment variable) would switch the inherited
		// limit off without a word.
		c.add(path+".rate", "missing or 0 while burst is %d: a limit replaces rate and burst together, so give both (rate 0 and burst 0 turn the limit off)", l.Burst)
	}
	switch {
	case l.Burst < 0:
		c.add(path+".burst", "must not be negative")
	case l.Burst > maxBurst:
		c.add(path+".burst", "%d is beyond any sensible burst (at most %d)", l.Burst, maxBurst)
	case l.Rate > 0 && l.Burst < 1:
		c.add(path+".burst", "must be at least 1 when rate is set (a bucket of 0 tokens refuses everything)")
	}
}

func (c *compiler) checkFields(path string, names []string) {
	if names != nil && len(names) == 0 {
		c.add(path, "lists no field; leave it out to inherit")
	}
	for i, n := range names {
		if _, ok := ParseField(n); !ok {
			c.add(fmt.Sprintf("%s[%d]", path, i), "unknown field %q; fields are %s", n, strings.Join(fieldNames[:], ", "))
		}
	}
}

// checkHardRules checks what must hold whatever the configuration says,
// on the resolved policy, and blames the layer that set the value.
func (c *compiler) checkHardRules(r *resolution, adminRole string) {
	if r.platform == clientctx.PlatformAdmin {
		if adminRole != "" && !slices.Contains(r.requireRoles.value, adminRole) {
			c.add(r.requireRoles.from, "the admin platform must require auth.adminRole %q on every route; this list would replace it", adminRole)
		}
		if !r.cacheBypass.value {
			c.add(r.cacheBypass.from, "admin data is never cached: the admin platform cannot turn cache bypass off")
		}
	} else {
		for i := range r.routes {
			if isAdminRoute(route(i)) && r.routes[i].allow.value {
				c.add(r.routes[i].allow.from, "admin routes can be allowed only on the admin platform")
			}
		}
		if leak := parseFieldSet(r.fields[ViewPublic].value) & forbiddenPublic; leak != 0 {
			c.add(r.fields[ViewPublic].from, "app platforms never show %s in the public view", strings.Join(leak.Names(), ", "))
		}
	}
	if slices.Contains(r.cors.AllowOrigins, wildcardOrigin) && r.cors.AllowCredentials != nil && *r.cors.AllowCredentials {
		from := r.corsOriginsFrom
		if from == "" {
			from = r.corsCredentialsFrom
		}
		c.add(from, "the \"*\" origin cannot be combined with allowCredentials: list the origins instead")
	}
}

// setting is a resolved value and the YAML path of the layer that set it
// ("" for a built-in value).
type setting[T any] struct {
	value T
	from  string
}

func (s *setting[T]) set(v T, from string) { s.value, s.from = v, from }

// resolution is one platform's policy while its layers are merged.
type resolution struct {
	platform     clientctx.Platform
	routes       [routeCount]routeSetting
	requireRoles setting[[]string]
	limits       [4]config.Limit
	cacheBypass  setting[bool]
	cacheTTL     [cacheRouteCount]*time.Duration
	maxPageSize  int
	fields       [viewCount]setting[[]string]
	cors         config.CORS

	corsOriginsFrom, corsCredentialsFrom string
}

type routeSetting struct {
	allow         setting[bool]
	roles, scopes []string
}

// newResolution starts from the platform's built-in policy.
func newResolution(p clientctx.Platform, adminRole string) *resolution {
	r := &resolution{platform: p}
	b := builtin(p, adminRole)
	r.merge("", &b)
	return r
}

// merge lays spec over what is resolved so far; path is where spec sits in
// config.yaml. Unset (nil) values inherit.
func (r *resolution) merge(path string, spec *config.Policy) {
	at := func(suffix string) string {
		if path == "" {
			return ""
		}
		return path + suffix
	}
	for id, rule := range spec.Routes {
		i, ok := routeIndex(id)
		if !ok {
			continue
		}
		rs := &r.routes[i]
		if rule.Allow != nil {
			rs.allow.set(*rule.Allow, at(".routes."+id+".allow"))
		}
		if rule.Roles != nil {
			rs.roles = rule.Roles
		}
		if rule.Scopes != nil {
			rs.scopes = rule.Scopes
		}
	}
	if spec.RequireRoles != nil {
		r.requireRoles.set(spec.RequireRoles, at(".requireRoles"))
	}
	if rl := spec.RateLimits; rl != nil {
		for i, l := range []*config.Limit{rl.PerIP, rl.AuthFailures, rl.PerUser, rl.PerDevice} {
			if l != nil {
				r.limits[i] = *l
			}
		}
	}
	if cache := spec.Cache; cache != nil {
		if cache.Bypass != nil {
			r.cacheBypass.set(*cache.Bypass, at(".cache.bypass"))
		}
		for name, ttl := range cache.TTL {
			if i, ok := cacheRouteIndex(name); ok {
				r.cacheTTL[i] = &ttl
			}
		}
	}
	if spec.MaxPageSize != nil {
		r.maxPageSize = *spec.MaxPageSize
	}
	if f := spec.Fields; f != nil {
		for v, names := range [viewCount][]string{ViewPublic: f.Public, ViewSelf: f.Self, ViewAdmin: f.Admin} {
			if names != nil {
				r.fields[v].set(names, at(".fields."+View(v).String()))
			}
		}
	}
	if cors := spec.CORS; cors != nil {
		if cors.AllowOrigins != nil {
			r.cors.AllowOrigins = cors.AllowOrigins
			r.corsOriginsFrom = at(".cors.allowOrigins")
		}
		if cors.AllowMethods != nil {
			r.cors.AllowMethods = cors.AllowMethods
		}
		if cors.AllowHeaders != nil {
			r.cors.AllowHeaders = cors.AllowHeaders
		}
		if cors.ExposeHeaders != nil {
			r.cors.ExposeHeaders = cors.ExposeHeaders
		}
		if cors.AllowCredentials != nil {
			r.cors.AllowCredentials = cors.AllowCredentials
			r.corsCredentialsFrom = at(".cors.allowCredentials")
		}
		if cors.MaxAge != 0 {
			r.cors.MaxAge = cors.MaxAge
		}
	}
}

// policy builds the immutable Policy. Values a check refused (unknown
// fields, say) are left out; Compile returns no Set then anyway.
func (r *resolution) policy() Policy {
	p := Policy{
		Name:         r.platform.String(),
		platform:     r.platform,
		requireRoles: cleanNames(r.requireRoles.value),
		limits: Limits{
			PerIP:        Limit(r.limits[0]),
			AuthFailures: Limit(r.limits[1]),
			PerUser:      Limit(r.limits[2]),
			PerDevice:    Limit(r.limits[3]),
		},
		maxPageSize: r.maxPageSize,
		pageSize:    min(defaultPageSize, r.maxPageSize),
		cacheBypass: r.cacheBypass.value,
		cors:        newCORSPolicy(&r.cors),
	}
	p.requireText = strings.Join(p.requireRoles, "|")
	for i, rs := range r.routes {
		roles := cleanNames(rs.roles)
		p.routes[i] = access{
			allowed:   rs.allow.value,
			roles:     roles,
			scopes:    cleanNames(rs.scopes),
			rolesText: strings.Join(roles, "|"),
		}
	}
	for v := range r.fields {
		p.fields[v] = parseFieldSet(r.fields[v].value)
		p.fieldClasses[v] = p.fields[v].Class()
	}
	for i, ttl := range r.cacheTTL {
		if ttl != nil {
			p.cacheTTL[i], p.cacheTTLIsSet[i] = *ttl, true
		}
	}
	return p
}

// cleanNames copies a role or scope list without empty entries or
// duplicates, so the Policy shares nothing with the configuration.
func cleanNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// parseFieldSet reads field names, skipping unknown ones (checkFields
// reports them).
func parseFieldSet(names []string) FieldSet {
	var s FieldSet
	for _, n := range names {
		if f, ok := ParseField(n); ok {
			s |= 1 << f
		}
	}
	return s
}
