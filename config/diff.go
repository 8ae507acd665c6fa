package config

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Change is one setting that differs between two configurations.
type Change struct {
	Path     string
	Old, New string
	// Restart is true for settings that only take effect on restart
	// (listen addresses, server limits fixed at start-up, connection pools).
	Restart bool
}

func (c Change) String() string {
	s := fmt.Sprintf("%s: %s -> %s", c.Path, c.Old, c.New)
	if c.Restart {
		s += "  (needs a restart)"
	}
	return s
}

// restartOnly lists the path prefixes that cannot change while running.
var restartOnly = []string{
	"server.listen", "server.readTimeout", "server.writeTimeout", "server.idleTimeout",
	"server.bodyLimit", "server.headerLimit", "server.maxConnections",
	"ops.", "tracing.", "auth.",
	"upstreams.userstore.baseURL", "upstreams.userstore.liveStreamsBaseURL",
	"upstreams.userstore.serviceToken", "upstreams.userstore.maxConnsPerHost",
	"upstreams.userstore.maxIdleConnDuration", "upstreams.userstore.dialTimeout",
	"upstreams.userstore.maxResponseBytes",
	"cache.enabled", "cache.maxEntries", "cache.maxBytes", "cache.cleanupInterval", "cache.invalidationToken",
}

// KeepRestartOnly returns next with every restart-only setting taken from
// running: what a live reload can really apply. The settings it keeps are
// exactly those RestartRequired names.
func KeepRestartOnly(running, next *Config) *Config {
	out := *next
	s, r := &out.Server, &running.Server
	s.Listen, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout = r.Listen, r.ReadTimeout, r.WriteTimeout, r.IdleTimeout
	s.BodyLimit, s.HeaderLimit, s.MaxConnections = r.BodyLimit, r.HeaderLimit, r.MaxConnections
	out.Ops = running.Ops
	out.Tracing = running.Tracing
	out.Auth = running.Auth
	u, ru := &out.Upstreams.UserStore, &running.Upstreams.UserStore
	u.BaseURL, u.LiveStreamsBaseURL, u.ServiceToken = ru.BaseURL, ru.LiveStreamsBaseURL, ru.ServiceToken
	u.MaxConnsPerHost, u.MaxIdleConnDuration, u.DialTimeout, u.MaxResponseBytes = ru.MaxConnsPerHost, ru.MaxIdleConnDuration, ru.DialTimeout, ru.MaxResponseBytes
	c, rc := &out.Cache, &running.Cache
	c.Enabled, c.MaxEntries, c.MaxBytes, c.CleanupInterval, c.InvalidationToken = rc.Enabled, rc.MaxEntries, rc.MaxBytes, rc.CleanupInterval, rc.InvalidationToken
	return &out
}

// RestartRequired reports whether a change at path only applies after a
// restart.
func RestartRequired(path string) bool {
	for _, p := range restartOnly {
		if path == p || strings.HasPrefix(path, p) && (strings.HasSuffix(p, ".") || path[len(p)] == '.' || path[len(p)] == '[') {
			return true
		}
	}
	return false
}

// Diff lists the settings that differ from old to new, sorted by path.
// Secrets show only whether they are set; a secret replaced by another is
// still listed, as "(set) -> (set)", since it may need a restart.
func Diff(old, new *Config) []Change {
	a, b := flatten(old), flatten(new)
	var out []Change
	for p, nv := range b {
		if ov, ok := a[p]; !ok || ov.value != nv.value {
			shown := ov.shown
			if !ok {
				shown = "(unset)"
			}
			out = append(out, Change{Path: p, Old: shown, New: nv.shown, Restart: RestartRequired(p)})
		}
	}
	for p, ov := range a {
		if _, ok := b[p]; !ok {
			out = append(out, Change{Path: p, Old: ov.shown, New: "(unset)", Restart: RestartRequired(p)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// setting is one leaf of a flattened configuration: value is compared,
// shown is what a Change may carry (for a secret, only whether it is set).
type setting struct{ value, shown string }

func flatten(c *Config) map[string]setting {
	m := map[string]setting{}
	flattenValue(reflect.ValueOf(c).Elem(), "", false, m)
	return m
}

func flattenValue(v reflect.Value, path string, secret bool, m map[string]setting) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			p := join(path, yamlName(f))
			if f.Tag.Get("redact") == "url" && v.Field(i).Len() > 0 {
				urls := v.Field(i).Interface().([]string)
				m[p] = setting{value: fmt.Sprintf("%q", urls), shown: listShown(redactURLs(urls))}
				continue
			}
			flattenValue(v.Field(i), p, f.Tag.Get("secret") == "true", m)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			flattenValue(v.Elem(), path, secret, m)
		}
	case reflect.Map:
		keys := v.MapKeys()
		for _, k := range keys {
			flattenValue(v.MapIndex(k), join(path, k.String()), secret, m)
		}
	case reflect.Slice:
		// An absent list is no setting, as a nil pointer is: otherwise a
		// policy added with one field would list all its lists as changed.
		// A present empty one is ("roles: []" replaces an inherited list,
		// where leaving the key out inherits it).
		if v.IsNil() {
			return
		}
		if v.Len() == 0 {
			m[path] = setting{value: "[]", shown: "[]"}
			return
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		m[path] = setting{value: fmt.Sprintf("%q", parts), shown: listShown(parts)}
	default:
		s := fmt.Sprint(v.Interface())
		shown := s
		if secret {
			shown = "(not set)"
			if !v.IsZero() {
				shown = "(set)"
			}
		}
		m[path] = setting{value: s, shown: shown}
	}
}

// listShown writes a list as "[a, b]", or with each entry quoted when one
// holds a comma: ["a, b"] and [a, b] are different lists, and are compared
// quoted.
func listShown(parts []string) string {
	if slices.ContainsFunc(parts, func(p string) bool { return strings.Contains(p, ",") }) {
		return fmt.Sprintf("%q", parts)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Redacted returns a copy of c that is safe to show: every field tagged
// secret is replaced by a marker when set, and every URL list tagged
// redact:"url" (the JWKS URLs) is shown as RedactURL gives it.
func Redacted(c *Config) Config {
	out := *c
	redact(reflect.ValueOf(&out).Elem())
	return out
}

// View is c as the ops listener shows it: Redacted, with config.yaml's key
// names and value formats, as a tree of maps. Under policies a list the
// file leaves out is null and one written empty is []: there the first
// inherits from the layer below and the second replaces it with nothing
// ("roles: []" opens a route to any user), so the two must not look alike.
func View(c *Config) (map[string]any, error) {
	r := Redacted(c)
	raw, err := yaml.Marshal(&r)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	if policies, ok := tree["policies"].(map[string]any); ok {
		for name, p := range r.Policies {
			unsetLists(reflect.ValueOf(p), policies[name])
		}
	}
	return tree, nil
}

// unsetLists sets to null, in node (the view of v), every list that v
// leaves nil; it follows v's structs, pointers and maps.
func unsetLists(v reflect.Value, node any) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			unsetLists(v.Elem(), node)
		}
	case reflect.Map:
		m, ok := node.(map[string]any)
		if !ok {
			return
		}
		for _, k := range v.MapKeys() {
			unsetLists(v.MapIndex(k), m[k.String()])
		}
	case reflect.Struct:
		m, ok := node.(map[string]any)
		if !ok {
			return
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name := yamlName(t.Field(i))
			if f := v.Field(i); f.Kind() == reflect.Slice && f.IsNil() {
				if _, ok := m[name]; ok {
					m[name] = nil
				}
			} else {
				unsetLists(f, m[name])
			}
		}
	}
}

// redact walks the nested structs (copied by value into out); secrets
// live only in plain struct fields, never in maps or behind pointers.
func redact(v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := v.Field(i)
		switch {
		case t.Field(i).Tag.Get("secret") == "true" && f.Kind() == reflect.String && f.String() != "":
			f.SetString("<redacted>")
		case t.Field(i).Tag.Get("redact") == "url" && f.Len() > 0:
			f.Set(reflect.ValueOf(redactURLs(f.Interface().([]string))))
		case f.Kind() == reflect.Struct:
			redact(f)
		}
	}
}

// redactURLs is urls as RedactURL shows them, in a new slice (a copied
// Config shares the original's).
func redactURLs(urls []string) []string {
	shown := make([]string, len(urls))
	for i, u := range urls {
		shown[i] = RedactURL(u)
	}
	return shown
}
