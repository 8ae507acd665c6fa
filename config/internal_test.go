package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Two settings must never share a variable: each name is read once per
// pass over the configuration.
func TestEveryEnvironmentVariableNamesOneSetting(t *testing.T) {
	reads := map[string]int{}
	cfg := Default()
	applyEnv(reflect.ValueOf(&cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", func(n string) string {
		reads[n]++
		return ""
	}, new(Problems), nil)
	for n, count := range reads {
		if count != 1 {
			t.Errorf("%s is read %d times: it addresses more than one setting", n, count)
		}
	}
	if len(reads) != len(EnvNames()) {
		t.Errorf("EnvNames lists %d names, a pass reads %d", len(EnvNames()), len(reads))
	}
}

// Every listed variable really sets something: junk in it is either
// refused by name or shows up as a changed setting.
func TestEveryListedVariableTakesEffect(t *testing.T) {
	before := flatten(ptr(Default()))
	for _, name := range EnvNames() {
		cfg := Default()
		var ps Problems
		applyEnv(reflect.ValueOf(&cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", func(n string) string {
			if n == name {
				return "junk"
			}
			return ""
		}, &ps, nil)
		if len(ps) > 0 {
			if len(ps) != 1 || ps[0].Path != name {
				t.Errorf("%s=junk: %v", name, ps)
			}
			continue
		}
		after := flatten(&cfg)
		own := false
		for p, v := range after {
			if before[p] == v {
				continue
			}
			if envNameOf(p) == name {
				own = true
				continue
			}
			// Setting one field of a policy section brings the section
			// into being, with its other plain fields at zero.
			if !slices.Contains([]string{"0s", "0", "false", ""}, v.shown) {
				t.Errorf("%s=junk also set %s to %q", name, p, v.shown)
			}
		}
		if !own {
			t.Errorf("%s=junk changed no setting of its own", name)
		}
	}
}

// envNameOf is envName for paths whose map keys (route ids) hold dots.
func envNameOf(path string) string {
	ids := slices.Clone(RouteIDs)
	// Longest first: users.search is also the tail of admin.users.search.
	slices.SortFunc(ids, func(a, b string) int { return len(b) - len(a) })
	for _, id := range ids {
		path = strings.ReplaceAll(path, "."+id+".", "."+strings.ReplaceAll(id, ".", "_")+".")
	}
	return envName(path)
}

func ptr[T any](v T) *T { return &v }

// Every restart-only entry names a real setting (or a real section, when it
// ends in a dot), so a typo cannot silently make a setting live.
func TestRestartOnlyNamesRealSettings(t *testing.T) {
	c := Default()
	c.Ops.Token = "x"
	c.Auth.JWKSURLs = []string{"https://idp.example.com/jwks"}
	settings := flatten(&c)
	for _, p := range restartOnly {
		found := false
		for s := range settings {
			if s == p || strings.HasSuffix(p, ".") && strings.HasPrefix(s, p) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("restartOnly entry %q matches no setting", p)
		}
	}
}

// Redacted walks plain nested structs only; a secret behind a pointer, map
// or slice would be shown. This fails if types.go ever puts one there, or
// if a secret is not a string.
func TestSecretsLiveWhereRedactedLooks(t *testing.T) {
	var secrets []string
	var walk func(t reflect.Type, path string, plain bool)
	walk = func(typ reflect.Type, path string, plain bool) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			walk(typ.Elem(), path+"*", false)
		case reflect.Struct:
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				p := join(path, yamlName(f))
				if f.Tag.Get("secret") == "true" {
					secrets = append(secrets, p)
					if !plain || f.Type.Kind() != reflect.String {
						t.Errorf("secret %s is not a string reachable through plain structs", p)
					}
				}
				walk(f.Type, p, plain)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "", true)
	want := []string{"ops.token", "upstreams.userstore.serviceToken", "cache.invalidationToken"}
	slices.Sort(want)
	slices.Sort(secrets)
	if !slices.Equal(secrets, want) {
		t.Errorf("secrets = %q, want %q (update the tests and the documentation)", secrets, want)
	}
}

func TestSuggest(t *testing.T) {
	server := reflect.TypeOf(Server{})
	for key, want := range map[string]string{
		"lisen":          "listen",
		"listne":         "listen",
		"LISTEN":         "listen",
		"read_timeout":   "readTimeout",
		"readtimeout":    "readTimeout",
		"bodylimits":     "bodyLimit",
		"maxConnection":  "maxConnections",
		"port":           "",
		"xy":             "",
		"completelyelse": "",
	} {
		if got := suggest(server, key); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"listen", "lisen", 1},
		{"kitten", "sitting", 3}, {"perip", "peruser", 4}, {"ütf", "utf", 1},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
