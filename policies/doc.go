// Package policies decides, per request, what a caller may do and how: which
// routes a platform may call and with which roles and scopes, which user
// fields each view shows, how hard each client may push (token-bucket rate
// limits), page sizes, cache behaviour and cross-origin access.
//
// The X-Platform header only selects which policy applies. It never grants
// anything: identity, roles and scopes come from the verified token alone.
// A user token sent with X-Platform: admin meets the admin policy, which
// requires the admin role on every route; an admin token sent from a mobile
// app meets the mobile policy, which has no admin routes.
//
// # Inheritance
//
// Compile resolves each platform's policy from three layers: the built-in
// defaults (defaults.go, the one place they are written down), then the
// "all" policy from config.yaml, then the platform's own policy. A field a
// layer leaves unset is inherited from the layer below. Route rules merge
// per route id and per field, so a platform can change the roles of a route
// without repeating whether it is allowed. Rate limits merge per limit
// (perIP, authFailures, …; a limit replaces rate and burst together), cache
// TTLs per route name, visible fields per view and CORS per setting.
//
// # Built-in defaults
//
//	                        web, mobile_ios, mobile_android,   admin
//	                        api, unknown ("app platforms")
//	users.checkUsername     any verified user                  denied
//	users.search            any verified user                  denied
//	users.me                any verified user                  admin role
//	admin.users.search      denied                             admin role
//	admin.users.get         denied                             admin role
//	requireRoles            none                               [auth.adminRole]
//	rate perIP              50/s, burst 100                    20/s, burst 40
//	rate authFailures       0.5/s, burst 20                    0.1/s, burst 5
//	rate perUser            10/s, burst 30                     5/s, burst 20
//	rate perDevice          10/s, burst 30                     5/s, burst 20
//	maxPageSize             50                                 100
//	defaultPageSize         20 (never above maxPageSize; not configurable)
//	cache                   used (TTLs of cache.routes)        bypassed (never cached)
//	fields.public           id username firstName lastName expertise minutePrice
//	                        profilePhotoUrl liveStream
//	fields.self             public + email phone bio photos createdAt
//	fields.admin            every field
//	cors                    off; when origins are configured: methods GET POST,
//	                        the gateway's request headers, rate-limit and
//	                        request-id headers exposed, max-age 10m, no credentials
//
// # Hard rules
//
// Some rules hold whatever the configuration says; Compile reports a
// configuration that breaks one, at the path of the value that breaks it:
// admin routes are allowed only on the admin platform; the admin platform
// requires auth.adminRole on every route and never uses the cache; the
// public view of an app platform never shows email, phone or status;
// maxPageSize stays within 1..100 (the user store's cap); CORS never pairs
// the "*" origin with credentials.
package policies
