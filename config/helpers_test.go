package config_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bffgate/edge/config"
)

// The settings validation insists on, supplied through the environment so
// that test files may write any section they like.
var requiredEnv = map[string]string{
	"GATEWAY_AUTH__JWKSURLS":                "https://idp.example.com/.well-known/jwks.json",
	"GATEWAY_AUTH__ISSUER":                  "https://idp.example.com/",
	"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": "http://userstore.internal:8080",
}

// env returns a getenv that sees the required settings plus vars (which
// win).
func env(vars map[string]string) func(string) string {
	all := maps.Clone(requiredEnv)
	maps.Copy(all, vars)
	return func(name string) string { return all[name] }
}

// noEnv is an environment with nothing set.
func noEnv(string) string { return "" }

// valid returns the defaults with the required fields filled in.
func valid() config.Config {
	c := config.Default()
	c.Auth.JWKSURLs = []string{"https://idp.example.com/.well-known/jwks.json"}
	c.Auth.Issuer = "https://idp.example.com/"
	c.Upstreams.UserStore.BaseURL = "http://userstore.internal:8080"
	return c
}

// mustParse parses a file that must be valid.
func mustParse(t *testing.T, yaml string, getenv func(string) string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), getenv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg == nil {
		t.Fatal("Parse returned neither a config nor an error")
	}
	return cfg
}

// parseProblems parses a file that must be refused and returns the problems.
func parseProblems(t *testing.T, yaml string, getenv func(string) string) config.Problems {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), getenv)
	if err == nil {
		t.Fatalf("Parse accepted:\n%s", yaml)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config alongside the error %v", err)
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %T is not config.Problems: %v", err, err)
	}
	if len(ps) == 0 {
		t.Fatal("an empty Problems was returned as an error")
	}
	return ps
}

// want is one expected problem: its exact path and a part of its message.
type want struct{ path, msg string }

// expectProblems checks that ps holds exactly the wanted problems, in any
// order.
func expectProblems(t *testing.T, ps config.Problems, wants ...want) {
	t.Helper()
	used := make([]bool, len(ps))
	for _, w := range wants {
		found := false
		for i, p := range ps {
			if !used[i] && p.Path == w.path && strings.Contains(p.Message, w.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing problem %s: …%s…", w.path, w.msg)
		}
	}
	for i, p := range ps {
		if !used[i] {
			t.Errorf("unexpected problem %s", p)
		}
	}
}

func paths(ps config.Problems) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Path
	}
	slices.Sort(out)
	return out
}
