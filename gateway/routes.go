package gateway

import (
	"strings"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/policies"
	"github.com/gofiber/fiber/v2"
)

// routes maps the whole public API surface. Every route is edged: the
// edge (request id, client context, CORS, envelope for errors) runs before
// it; every API route is an endpoint: rate limits, authentication and the
// platform policy run before its handler. A catch-all behind the routes
// edges everything else, answered 404 or 405; it and the preflights are
// charged to the per-IP limit as the endpoints are.
func (s *Server) routes() {
	app := s.app
	api := func(route string, h func(*fiber.Ctx, *request) error) fiber.Handler {
		return s.edged(s.endpoint(route, h))
	}

	app.Post("/api/v1/users/check-username", api(config.RouteCheckUsername, s.checkUsername))
	app.Get("/api/v2/users/search", api(config.RouteSearch, s.searchUsers))
	app.Get("/api/v1/users/me", api(config.RouteMe, s.me))

	app.Get("/api/admin/v1/users/search", api(config.RouteAdminSearch, s.adminSearchUsers))
	app.Get("/api/admin/v1/users/:id", api(config.RouteAdminUser, s.adminUser))

	// CORS preflights (and plain OPTIONS) on every API path; other paths
	// stay 404 for every method.
	for _, path := range []string{
		"/api/v1/users/check-username", "/api/v2/users/search", "/api/v1/users/me",
		"/api/admin/v1/users/search", "/api/admin/v1/users/:id",
	} {
		app.Options(path, s.edged(s.preflight))
	}
	app.Use(s.edged(s.unrouted))
}

// allowedMethods answers the Allow header of a 405 for the known paths,
// "" for any other. path is the target's path as sent, which is what the
// router matches (Fiber routes on the undecoded path: "/api/v1/users/%6De"
// and "//api/v1/users/me" are no route's).
func allowedMethods(path string) string {
	// Routing is not strict: the routes take trailing slashes too.
	for len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	switch path {
	case "/api/v1/users/check-username":
		return "POST, OPTIONS"
	case "/api/v2/users/search", "/api/v1/users/me", "/api/admin/v1/users/search":
		return "GET, HEAD, OPTIONS"
	}
	// The :id parameter is one segment: "/api/admin/v1/users/a/b" is no
	// route's path.
	if len(path) > len(adminUserPrefix) && path[:len(adminUserPrefix)] == adminUserPrefix &&
		strings.IndexByte(path[len(adminUserPrefix):], '/') < 0 {
		return "GET, HEAD, OPTIONS"
	}
	return ""
}

const adminUserPrefix = "/api/admin/v1/users/"

// views of each route, for field visibility.
var (
	viewSearch = policies.ViewPublic
	viewMe     = policies.ViewSelf
	viewAdmin  = policies.ViewAdmin
)
