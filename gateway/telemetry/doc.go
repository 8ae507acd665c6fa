// Package telemetry owns what the gateway tells its operators: Prometheus
// metrics, OpenTelemetry traces and the structured JSON log.
//
// # Metrics
//
// [Metrics] implements the small Observer interfaces of gateway, auth,
// upstream and readcache, so that nothing else imports Prometheus. The
// per-request observers cost an array index and an atomic add: no map, no
// lock, no allocation. Every label takes its values from a fixed list, and
// anything unexpected is counted under a catch-all (route "unmatched",
// platform "unknown", everything else "other"), so no caller can grow the
// number of series.
//
// Counted as they happen:
//
//	gateway_requests_total{route,method,status_class,platform}   counter
//	gateway_request_duration_seconds{route,platform}             histogram, 100µs … 10s
//	gateway_requests_in_flight                                   gauge
//	gateway_upstream_calls_total{op,outcome}                     counter
//	gateway_upstream_call_duration_seconds{op}                   histogram, 100µs … 10s
//	gateway_upstream_retries_total{op}                           counter
//	gateway_breaker_transitions_total{op,from,to}                counter
//	gateway_cache_lookups_total{route,status}                    counter (hit, miss, stale, bypass)
//	gateway_cache_evictions_total{reason}                        counter (capacity, expired, purge)
//	gateway_token_cache_lookups_total{result}                    counter (hit, miss)
//	gateway_jwks_fetches_total{result}                           counter (ok, error)
//	gateway_rate_limited_total{policy,kind}                      counter
//	gateway_config_reloads_total{result}                         counter (ok, error)
//	gateway_config_last_reload_success_timestamp_seconds         gauge
//	gateway_build_info{version,goversion}                        gauge, always 1
//
// Read from the components when scraped (see [Metrics.SetSources]); a
// component not named leaves its series out:
//
//	gateway_breaker_state{op}             0 closed, 1 half-open, 2 open (also kept by breaker events)
//	gateway_cache_entries, gateway_cache_bytes, gateway_cache_max_entries, gateway_cache_max_bytes
//	gateway_jwks_keys                     keys in use (every URL's last good set); without a key source, the last good fetch's
//	gateway_jwks_keys_age_seconds         0 until the first good fetch
//	gateway_auth_keys_ready               1 or 0
//	gateway_rate_limit_keys, gateway_rate_limit_max_keys
//	gateway_rate_limit_evictions_total    counter
//
// Label values: route is a config.RouteIDs id or "unmatched"; method is
// GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH or other; status_class is
// 2xx, 3xx, 4xx, 5xx or other; platform is web, mobile_ios, mobile_android,
// admin, api or unknown; op is an upstream.Ops name or other; outcome is an
// upstream.Outcomes label or other; from and to are closed, half-open, open
// or other; policy is a config.PolicyNames name or other; kind is perIP,
// authFailures, perUser, perDevice or other.
//
// The families with many label combinations (requests, durations, upstream
// calls, cache lookups, rate limits, breaker transitions) show a series
// once it was first counted; the small fixed ones (retries, evictions,
// token cache, JWKS fetches, reloads) show every series from the start.
// The Go runtime (go_*) and process (process_*) collectors are registered
// too.
//
// # Tracing
//
// [Tracing] is OpenTelemetry over OTLP/HTTP, off unless configured; off, it
// costs a nil check. [AppendPropagatedTraceparent] gives the user store a W3C
// traceparent even then. The OpenTelemetry SDK stays behind this package's
// small API ([Span], [Traceparent]), which sets no global provider.
//
// # Logging
//
// [NewLogger] writes JSON lines whose level can change while running, and
// redacts secrets and personal data as a last line of defence.
package telemetry
