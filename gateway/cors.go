package gateway

import (
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// applyCORS adds the CORS headers of an actual (non-preflight) request
// from a browser, when the caller's policy allows its origin.
func (s *Server) applyCORS(c *fiber.Ctx, rq *request) {
	actualCORS(rq.policy, rq.headers.origin, isPreflight(&c.Request().Header), &c.Response().Header)
}

// isPreflight reports whether a request is a CORS preflight: OPTIONS with
// Access-Control-Request-Method. An OPTIONS request without it (a
// script's own, once its preflight allowed the method) is an actual
// request.
func isPreflight(h *fasthttp.RequestHeader) bool {
	return string(h.Method()) == fiber.MethodOptions && len(h.Peek(fiber.HeaderAccessControlRequestMethod)) > 0
}

// actualCORS sets the CORS headers of policy p on an actual request from
// origin (none without an origin, or for a preflight: preflight answers).
func actualCORS(p *policies.Policy, origin []byte, preflight bool, h *fasthttp.ResponseHeader) {
	if len(origin) == 0 || preflight {
		return
	}
	if cors := p.CORS(); cors != nil {
		cors.Actual(string(origin), h.Set)
	}
}

// preflight answers CORS preflights. Browsers send no custom headers on a
// preflight, so X-Platform is unknown here: the policy is the one whose
// CORS allows the origin (see policies.Set.PreflightPolicy), and its
// per-IP limit is the one charged, as for the requests the preflight is
// for. A preflight from an origin no policy allows, and a plain OPTIONS,
// are charged under the policy X-Platform names, as any request (browsers
// send none on a preflight: web's, the policy of a request that names no
// platform). A refused preflight
// is a 403 envelope; a plain OPTIONS gets 204 with Allow.
func (s *Server) preflight(c *fiber.Ctx, rq *request) error {
	h := &c.Request().Header
	origin := h.Peek(fiber.HeaderOrigin)
	method := h.Peek(fiber.HeaderAccessControlRequestMethod)
	allow := allowedMethods(c.Path())
	isPreflight := allow != "" && len(origin) > 0 && len(method) > 0
	var p *policies.Policy
	if isPreflight {
		rq.route = "preflight"
		if p = rq.rt.policies.PreflightPolicy(string(origin)); p != nil {
			rq.policy = p
		}
	}
	if err := s.limitIP(rq); err != nil {
		return err
	}
	if allow == "" {
		return errNotFound
	}
	if !isPreflight {
		c.Set(fiber.HeaderAllow, allow)
		c.Status(fiber.StatusNoContent)
		return nil
	}
	if p == nil || p.CORS() == nil {
		c.Append(fiber.HeaderVary, fiber.HeaderOrigin)
		return errForbidden
	}
	if !p.CORS().Preflight(string(origin), string(method), string(h.Peek(fiber.HeaderAccessControlRequestHeaders)), c.Response().Header.Set) {
		return errForbidden
	}
	c.Status(fiber.StatusNoContent)
	return nil
}

// unroutedCORS adds the CORS headers to an answer the edge never saw (a
// body over the limit, an unknown method) whose headers were read, so
// that a browser lets the web app read the envelope as it does the other
// errors. The policy is the one X-Platform names, as for any request.
func (s *Server) unroutedCORS(resp *fasthttp.Response, h *fasthttp.RequestHeader) {
	p := s.rt.Load().policies.For(clientctx.ParsePlatform(h.Peek(clientctx.HeaderPlatform)))
	actualCORS(p, h.Peek(fiber.HeaderOrigin), isPreflight(h), &resp.Header)
}
