package policies

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/clientctx"
)

// wildcardOrigin allows every origin; it is never combined with credentials.
const wildcardOrigin = "*"

// knownMethods are the methods a CORS policy may list.
var knownMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// CORSPolicy is a platform's cross-origin policy for browsers. Origins are
// matched exactly, as browsers serialize them (scheme://host[:port], lower
// case, no default port); an origin is never reflected unless listed.
type CORSPolicy struct {
	origins     []string
	anyOrigin   bool
	methods     []string
	headers     []string
	expose      []string
	credentials bool
	maxAge      time.Duration

	// Header values, joined once.
	methodsValue, headersValue, exposeValue, maxAgeValue string
}

// newCORSPolicy builds the policy of a resolved CORS block, or nil when it
// lists no origin.
func newCORSPolicy(c *config.CORS) *CORSPolicy {
	if len(c.AllowOrigins) == 0 {
		return nil
	}
	p := &CORSPolicy{
		credentials: c.AllowCredentials != nil && *c.AllowCredentials,
		maxAge:      c.MaxAge,
	}
	for _, o := range c.AllowOrigins {
		if o == wildcardOrigin {
			p.anyOrigin = true
		} else if !slices.Contains(p.origins, o) {
			p.origins = append(p.origins, o)
		}
	}
	for _, m := range c.AllowMethods {
		if m = strings.ToUpper(strings.TrimSpace(m)); !slices.Contains(p.methods, m) {
			p.methods = append(p.methods, m)
		}
	}
	p.headers = dedupeFold(c.AllowHeaders)
	p.expose = dedupeFold(c.ExposeHeaders)
	p.methodsValue = strings.Join(p.methods, ", ")
	p.headersValue = strings.Join(p.headers, ", ")
	p.exposeValue = strings.Join(p.expose, ", ")
	if secs := int64(p.maxAge / time.Second); secs > 0 {
		p.maxAgeValue = strconv.FormatInt(secs, 10)
	}
	return p
}

func dedupeFold(names []string) []string {
	var out []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, n) }) {
			out = append(out, n)
		}
	}
	return out
}

// Origins lists the allowed origins ("*" when any origin is allowed).
func (c *CORSPolicy) Origins() []string {
	if c.anyOrigin {
		return []string{wildcardOrigin}
	}
	return slices.Clone(c.origins)
}

// Methods lists the allowed methods.
func (c *CORSPolicy) Methods() []string { return slices.Clone(c.methods) }

// Headers lists the allowed request headers.
func (c *CORSPolicy) Headers() []string { return slices.Clone(c.headers) }

// ExposeHeaders lists the response headers scripts may read.
func (c *CORSPolicy) ExposeHeaders() []string { return slices.Clone(c.expose) }

// AllowCredentials reports whether credentialed requests are allowed.
func (c *CORSPolicy) AllowCredentials() bool { return c.credentials }

// MaxAge is how long browsers may cache a preflight answer.
func (c *CORSPolicy) MaxAge() time.Duration { return c.maxAge }

// AllowsOrigin reports whether origin, as the browser sent it, is allowed.
func (c *CORSPolicy) AllowsOrigin(origin string) bool {
	if c == nil || origin == "" {
		return false
	}
	return c.anyOrigin || slices.Contains(c.origins, origin)
}

// allowsOriginExactly is AllowsOrigin without the wildcard.
func (c *CORSPolicy) allowsOriginExactly(origin string) bool {
	return c != nil && origin != "" && slices.Contains(c.origins, origin)
}

// Vary values: the answer depends on the Origin (and, for a preflight, on
// what it asks for), so shared caches must key on them.
const (
	varyActual    = "Origin"
	varyPreflight = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
)

// Preflight answers a preflight (OPTIONS with Origin and
// Access-Control-Request-Method). It always sets Vary; when the origin, the
// method and every requested header are allowed it sets the
// Access-Control-Allow-* headers and returns true. With false the gateway
// answers 403 in its envelope. The allowed lists are sent as configured,
// never reflected from the request. set is called once per header; add Vary
// to any Vary already present rather than replacing it. A nil policy
// refuses. It does not allocate.
func (c *CORSPolicy) Preflight(origin, requestMethod, requestHeaders string, set func(key, value string)) bool {
	set("Vary", varyPreflight)
	if !c.AllowsOrigin(origin) || requestMethod == "" || !slices.Contains(c.methods, requestMethod) {
		return false
	}
	if !c.allowsHeaders(requestHeaders) {
		return false
	}
	c.setOrigin(origin, set)
	set("Access-Control-Allow-Methods", c.methodsValue)
	if c.headersValue != "" {
		set("Access-Control-Allow-Headers", c.headersValue)
	}
	if c.maxAgeValue != "" {
		set("Access-Control-Max-Age", c.maxAgeValue)
	}
	return true
}

// Actual sets the CORS headers of an actual (non-preflight) response. It
// always sets Vary: Origin; when the origin is allowed it sets
// Access-Control-Allow-Origin (and credentials and exposed headers) and
// returns true. A disallowed or absent origin gets no CORS headers, and the
// browser keeps the response from the script. It does not allocate.
func (c *CORSPolicy) Actual(origin string, set func(key, value string)) bool {
	set("Vary", varyActual)
	if !c.AllowsOrigin(origin) {
		return false
	}
	c.setOrigin(origin, set)
	if c.exposeValue != "" {
		set("Access-Control-Expose-Headers", c.exposeValue)
	}
	return true
}

// setOrigin names the allowed origin: the exact origin when listed (so
// credentials can work), "*" only for the wildcard, which Compile never
// pairs with credentials.
func (c *CORSPolicy) setOrigin(origin string, set func(key, value string)) {
	if c.anyOrigin && !slices.Contains(c.origins, origin) {
		set("Access-Control-Allow-Origin", wildcardOrigin)
		return
	}
	set("Access-Control-Allow-Origin", origin)
	if c.credentials {
		set("Access-Control-Allow-Credentials", "true")
	}
}

// allowsHeaders checks a comma-separated Access-Control-Request-Headers
// value against the allowed headers, case-insensitively, without
// allocating.
func (c *CORSPolicy) allowsHeaders(list string) bool {
	for list != "" {
		var name string
		name, list, _ = strings.Cut(list, ",")
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.ContainsFunc(c.headers, func(h string) bool { return strings.EqualFold(h, name) }) {
			return false
		}
	}
	return true
}

// PreflightPolicy picks the policy that answers a preflight from origin:
// browsers send no custom header on a preflight, so X-Platform cannot
// choose. Policies listing the origin exactly are tried first, then those
// allowing any origin; within each pass the order is web, admin, then
// mobile_ios, mobile_android, api, unknown. It returns nil when no policy
// allows the origin.
func (s *Set) PreflightPolicy(origin string) *Policy {
	if s == nil || origin == "" {
		return nil
	}
	for _, p := range s.preflightOrder {
		if p.cors.allowsOriginExactly(origin) {
			return p
		}
	}
	for _, p := range s.preflightOrder {
		if p.cors != nil && p.cors.anyOrigin {
			return p
		}
	}
	return nil
}

func preflightOrder(s *Set) [platformCount]*Policy {
	var order [platformCount]*Policy
	order[0] = &s.policies[clientctx.PlatformWeb]
	order[1] = &s.policies[clientctx.PlatformAdmin]
	n := 2
	for i := range s.policies {
		if p := clientctx.Platform(i); p != clientctx.PlatformWeb && p != clientctx.PlatformAdmin {
			order[n] = &s.policies[i]
			n++
		}
	}
	return order
}

// checkCORS checks a CORS block as written. Wildcard with credentials is
// checked after inheritance (checkHardRules), since the two may come from
// different layers.
func checkCORS(path string, c *config.CORS, add func(path, format string, args ...any)) {
	for i, o := range c.AllowOrigins {
		p := path + ".allowOrigins[" + strconv.Itoa(i) + "]"
		if o == wildcardOrigin {
			if len(c.AllowOrigins) > 1 {
				add(p, "\"*\" allows every origin; list it alone or list origins")
			}
			continue
		}
		if msg := checkOrigin(o); msg != "" {
			// A refused reload's problems are logged: an origin written
			// with a password in it must not take it there.
			add(p, "%s (got %q)", msg, config.RedactRefusedURL(o))
		}
	}
	for i, m := range c.AllowMethods {
		if !slices.Contains(knownMethods, strings.ToUpper(strings.TrimSpace(m))) {
			add(path+".allowMethods["+strconv.Itoa(i)+"]", "unknown method %q; methods are %s", m, strings.Join(knownMethods, ", "))
		}
	}
	checkHeaderNames(path+".allowHeaders", c.AllowHeaders, add)
	checkHeaderNames(path+".exposeHeaders", c.ExposeHeaders, add)
	if c.MaxAge < 0 || c.MaxAge > maxCORSMaxAge {
		add(path+".maxAge", "must be between 0 and %s (browsers cap it lower anyway)", maxCORSMaxAge)
	}
}

func checkHeaderNames(path string, names []string, add func(path, format string, args ...any)) {
	for i, n := range names {
		p := path + "[" + strconv.Itoa(i) + "]"
		switch n = strings.TrimSpace(n); {
		case n == "*":
			add(p, "\"*\" is not allowed: it never covers Authorization and means a literal \"*\" with credentials; list the headers")
		case !isToken(n):
			add(p, "%q is not a header name", n)
		}
	}
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// checkOrigin explains what is wrong with an origin, or returns "". An
// origin must be written exactly as browsers send it: http or https, "://",
// a lower-case host, an optional non-default port, nothing else.
func checkOrigin(o string) string {
	scheme, rest, ok := strings.Cut(o, "://")
	if ok && scheme != strings.ToLower(scheme) {
		return "must be lower case, as browsers send it"
	}
	if !ok || (scheme != "http" && scheme != "https") {
		return "must be http://host[:port] or https://host[:port]"
	}
	if rest == "" {
		return "has no host"
	}
	if strings.ContainsAny(rest, "/?#@ ") {
		return "must be scheme://host[:port] only: no path, trailing slash, query or user"
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "has an unclosed IPv6 bracket"
		}
		host, port = rest[:end+1], rest[end+1:]
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "has an invalid IPv6 host"
		}
		if a.Is4In6() {
			return "names an IPv4-mapped address; write the IPv4 address"
		}
		if a.String() != host[1:len(host)-1] {
			return "must write the IPv6 host as browsers do: [" + a.String() + "]"
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i:]
	}
	if port != "" {
		digits := port[1:]
		if port[0] != ':' || digits == "" || digits[0] == '0' || len(digits) > 5 || strings.Trim(digits, "0123456789") != "" {
			return "has an invalid port"
		}
		n, _ := strconv.Atoi(digits)
		switch {
		case n > 65535:
			return "has an invalid port"
		case scheme == "http" && n == 80, scheme == "https" && n == 443:
			return "names the default port, which browsers leave out; remove it"
		}
	}
	if strings.HasPrefix(host, "[") {
		return ""
	}
	if host != strings.ToLower(host) {
		return "must be lower case, as browsers send it"
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return "has an invalid host name"
		}
	}
	return ""
}
