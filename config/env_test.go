package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/bffgate/edge/config"
)

func TestEnvNames(t *testing.T) {
	names := config.EnvNames()
	for _, want := range []string{
		"GATEWAY_SERVER__LISTEN",
		"GATEWAY_SERVER__TRUSTEDPROXIES",
		"GATEWAY_OPS__TOKEN",
		"GATEWAY_AUTH__JWKSURLS",
		"GATEWAY_AUTH__JWKS__MAXBYTES",
		"GATEWAY_UPSTREAMS__USERSTORE__SERVICETOKEN",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__TIMEOUT",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERBYID__BREAKER__HALFOPENREQUESTS",
		"GATEWAY_CACHE__INVALIDATIONTOKEN",
		"GATEWAY_CACHE__ROUTES__ME__STALEIFERROR",
		"GATEWAY_POLICIES__MOBILE_IOS__MAXPAGESIZE",
		"GATEWAY_POLICIES__ALL__RATELIMITS__AUTHFAILURES__BURST",
		"GATEWAY_POLICIES__MOBILE_IOS__ROUTES__USERS_SEARCH__ALLOW",
		"GATEWAY_POLICIES__ADMIN__ROUTES__ADMIN_USERS_GET__ROLES",
		"GATEWAY_POLICIES__WEB__CACHE__TTL__SEARCH",
		"GATEWAY_POLICIES__WEB__CORS__ALLOWCREDENTIALS",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
	if !slices.IsSorted(names) {
		t.Error("EnvNames is not sorted")
	}
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Error("EnvNames lists a name twice")
	}
	for _, n := range names {
		if !strings.HasPrefix(n, config.EnvPrefix) || strings.ToUpper(n) != n || strings.Contains(n, ".") {
			t.Errorf("malformed variable name %q", n)
		}
	}
	for _, unwanted := range []string{"GATEWAY_POLICIES__IOS__MAXPAGESIZE", "GATEWAY_POLICIES__WEB__CACHE__TTL__ADMIN", "GATEWAY_CONFIG"} {
		if slices.Contains(names, unwanted) {
			t.Errorf("EnvNames lists %s", unwanted)
		}
	}
}
