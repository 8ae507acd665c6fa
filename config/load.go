package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override. The rule: GATEWAY_ followed
// by the YAML path in upper case, segments joined by a double underscore,
// dots in map keys written as single underscores. Lists are comma
// separated. Examples:
//
//	GATEWAY_SERVER__LISTEN=0.0.0.0:8080
//	GATEWAY_AUTH__JWKSURLS=https://idp.example.com/jwks.json
//	GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__TIMEOUT=1500ms
//	GATEWAY_POLICIES__MOBILE_IOS__ROUTES__USERS_SEARCH__ALLOW=false
//	GATEWAY_OPS__TOKEN=…   (secrets may only come from the environment)
const EnvPrefix = "GATEWAY_"

// EnvConfigPath names the config file when -config is not given.
const EnvConfigPath = "GATEWAY_CONFIG"

// Policy names that may appear under policies:. "all" is the base the
// others inherit from.
var PolicyNames = []string{"all", "web", "mobile_ios", "mobile_android", "admin", "api", "unknown"}

// Route ids that policies may name under routes:.
const (
	RouteCheckUsername = "users.checkUsername"
	RouteSearch        = "users.search"
	RouteMe            = "users.me"
	RouteAdminSearch   = "admin.users.search"
	RouteAdminUser     = "admin.users.get"
)

// RouteIDs lists every route id, in documentation order.
var RouteIDs = []string{RouteCheckUsername, RouteSearch, RouteMe, RouteAdminSearch, RouteAdminUser}

// CacheRouteNames are the routes a policy's cache.ttl may override.
var CacheRouteNames = []string{"search", "me"}

// Problem is one thing wrong with a configuration, at a YAML path
// (or an environment variable).
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// Problems is every problem found in one configuration.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d configuration problem(s):", len(ps))
	for _, p := range ps {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

func (ps *Problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Load reads the file at path, applies environment overrides read through
// getenv, and validates the result. Every problem is reported at once in a
// Problems error.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, getenv)
}

// Parse is Load for bytes already read.
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	cfg := Default()
	var problems Problems

	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		problems.add("config", "not valid YAML: %v", err)
		return nil, problems
	}
	if doc.Kind != 0 {
		lines := map[int]string{}
		checkKeys(&doc, reflect.TypeOf(cfg), "", lines, &problems)
		if err := doc.Decode(&cfg); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				for _, msg := range te.Errors {
					problems = append(problems, typeProblem(msg, lines))
				}
			} else {
				problems.add("config", "%v", err)
			}
		}
	}
	if getenv != nil {
		applyEnv(reflect.ValueOf(&cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", getenv, &problems)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if ps := Validate(&cfg); len(ps) > 0 {
		return nil, ps
	}
	return &cfg, nil
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// typeProblem turns yaml's "line N: cannot unmarshal …" into a path.
func typeProblem(msg string, lines map[int]string) Problem {
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		if p, ok := lines[n]; ok {
			return Problem{Path: p, Message: m[2] + " (line " + m[1] + ")"}
		}
		return Problem{Path: "line " + m[1], Message: m[2]}
	}
	return Problem{Path: "config", Message: msg}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	byteSizeType = reflect.TypeOf(ByteSize(0))
)

// checkKeys walks the YAML tree beside the Go type, reporting unknown keys
// and secrets written in the file, and recording which path each line
// holds so yaml's type errors can be reported by path.
func checkKeys(n *yaml.Node, t reflect.Type, path string, lines map[int]string, ps *Problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			checkKeys(c, t, path, lines, ps)
		}
		return
	case yaml.AliasNode:
		if n.Alias != nil {
			checkKeys(n.Alias, t, path, lines, ps)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	lines[n.Line] = orRoot(path)
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			ps.add(orRoot(path), "expected a mapping (line %d)", n.Line)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue
			}
			p := join(path, k.Value)
			lines[k.Line] = p
			f, ok := fieldByTag(t, k.Value)
			if !ok {
				msg := "unknown key (line %d)"
				if s := suggest(t, k.Value); s != "" {
					msg += "; did you mean " + strconv.Quote(s) + "?"
				}
				ps.add(p, msg, k.Line)
				continue
			}
			if f.Tag.Get("secret") == "true" && v.Kind == yaml.ScalarNode && v.Value != "" && v.Tag != "!!null" {
				ps.add(p, "secrets must not be written in the file; set %s instead", envName(p))
				continue
			}
			checkKeys(v, f.Type, p, lines, ps)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			ps.add(orRoot(path), "expected a mapping (line %d)", n.Line)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			lines[k.Line] = p
			checkKeys(v, t.Elem(), p, lines, ps)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.add(orRoot(path), "expected a list (line %d)", n.Line)
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lines, ps)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			ps.add(orRoot(path), "expected a single value (line %d)", n.Line)
		}
	}
}

func orRoot(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func suggest(t reflect.Type, key string) string {
	for i := 0; i < t.NumField(); i++ {
		if n := yamlName(t.Field(i)); strings.EqualFold(n, key) || strings.EqualFold(strings.ReplaceAll(n, "_", ""), strings.ReplaceAll(key, "_", "")) {
			return n
		}
	}
	return ""
}

// envName gives the environment variable that overrides a YAML path.
func envName(path string) string {
	segs := strings.Split(path, ".")
	// Map keys such as route ids contain dots; rebuild them from the
	// segments is not possible in general, so callers with such keys use
	// envSegment directly. For plain paths this is exact.
	for i, s := range segs {
		segs[i] = envSegment(s)
	}
	return EnvPrefix + strings.Join(segs, "__")
}

func envSegment(key string) string {
	return strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// mapKeys lists the keys an environment override may address in a map
// field, by the field's YAML name.
func mapKeys(field string) []string {
	switch field {
	case "policies":
		return PolicyNames
	case "routes":
		return RouteIDs
	case "ttl":
		return CacheRouteNames
	}
	return nil
}

// applyEnv sets every field whose environment variable is present. env is
// the variable name built so far, path the YAML path. It reports whether
// anything was set.
func applyEnv(v reflect.Value, env, path string, getenv func(string) string, ps *Problems) bool {
	t := v.Type()
	changed := false
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" || name == "-" {
			continue
		}
		fenv := env + "_" + envSegment(name)
		if env != strings.TrimSuffix(EnvPrefix, "_") {
			fenv = env + "__" + envSegment(name)
		}
		if applyEnvValue(v.Field(i), name, fenv, join(path, name), getenv, ps) {
			changed = true
		}
	}
	return changed
}

func applyEnvValue(fv reflect.Value, field, env, path string, getenv func(string) string, ps *Problems) bool {
	ft := fv.Type()
	switch {
	case ft.Kind() == reflect.Struct:
		return applyEnv(fv, env, path, getenv, ps)
	case ft.Kind() == reflect.Pointer:
		tmp := reflect.New(ft.Elem())
		if !fv.IsNil() {
			tmp.Elem().Set(fv.Elem())
		}
		if applyEnvValue(tmp.Elem(), field, env, path, getenv, ps) {
			fv.Set(tmp)
			return true
		}
		return false
	case ft.Kind() == reflect.Map:
		changed := false
		for _, key := range mapKeys(field) {
			tmp := reflect.New(ft.Elem()).Elem()
			kv := reflect.ValueOf(key)
			if existing := fv.MapIndex(kv); existing.IsValid() {
				tmp.Set(existing)
			}
			if applyEnvValue(tmp, key, env+"__"+envSegment(key), join(path, key), getenv, ps) {
				if fv.IsNil() {
					fv.Set(reflect.MakeMap(ft))
				}
				fv.SetMapIndex(kv, tmp)
				changed = true
			}
		}
		return changed
	}
	raw, ok := lookup(getenv, env)
	if !ok {
		return false
	}
	if err := setScalar(fv, raw); err != nil {
		ps.add(env, "%v (overrides %s)", err, path)
		return false
	}
	return true
}

// lookup treats an empty variable as unset, so an exported-but-empty
// variable never blanks a setting by accident.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func setScalar(fv reflect.Value, raw string) error {
	raw = strings.TrimSpace(raw)
	switch ft := fv.Type(); {
	case ft == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid duration %q", raw)
		}
		fv.SetInt(int64(d))
	case ft == byteSizeType:
		b, err := ParseByteSize(raw)
		if err != nil {
			return err
		}
		fv.SetInt(int64(b))
	case ft.Kind() == reflect.String:
		fv.SetString(raw)
	case ft.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", raw)
		}
		fv.SetBool(b)
	case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, ft.Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", raw)
		}
		fv.SetInt(n)
	case ft.Kind() >= reflect.Uint && ft.Kind() <= reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, ft.Bits())
		if err != nil {
			return fmt.Errorf("invalid unsigned integer %q", raw)
		}
		fv.SetUint(n)
	case ft.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", raw)
		}
		fv.SetFloat(f)
	case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		fv.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("type %s cannot be set from the environment", ft)
	}
	return nil
}

// EnvNames lists every environment variable Load reads, sorted; used by the
// documentation test and by `gateway validate -env`.
func EnvNames() []string {
	var names []string
	seen := map[string]bool{}
	getenv := func(n string) string {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
		return ""
	}
	cfg := Default()
	applyEnv(reflect.ValueOf(&cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", getenv, new(Problems))
	sort.Strings(names)
	return names
}
