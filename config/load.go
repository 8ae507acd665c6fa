package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
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
	// A second document would be silently ignored; say so instead (an
	// empty one, as after a trailing "---", is harmless).
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems.add("config", "not valid YAML: %v", err)
			return nil, problems
		}
		if len(extra.Content) > 0 && extra.Content[0].ShortTag() != "!!null" {
			problems.add("config", "only one YAML document is allowed (another starts at line %d)", extra.Line)
			break
		}
	}
	if doc.Kind != 0 {
		if !checkAliases(&doc, &problems) {
			return nil, problems
		}
		lines := map[int]string{}
		unshareScalars(&doc)
		checkKeys(&doc, reflect.TypeOf(cfg), "", lines, &problems)
		if err := doc.Decode(&cfg); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				for _, msg := range te.Errors {
					// A node reached through several aliases fails once per
					// alias with the same line: report it once.
					if p := typeProblem(msg, lines); !slices.Contains(problems, p) {
						problems = append(problems, p)
					}
				}
			} else {
				problems.add("config", "%v", err)
			}
		}
	}
	set := map[string]string{}
	if getenv != nil {
		applyEnv(reflect.ValueOf(&cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", getenv, &problems, set)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if ps := Validate(&cfg); len(ps) > 0 {
		return nil, nameOverrides(ps, set)
	}
	return &cfg, nil
}

// maxAliasedNodes bounds the nodes aliases may add to a file. An alias is
// walked where it is used, by checkKeys and then by yaml's decoder, so
// aliases of aliases multiply: ten levels of nine make a 500-byte file of
// billions of nodes, hours of checks before yaml's own limit refuses it.
// A configuration repeats a few blocks, a few hundred nodes.
const maxAliasedNodes = 100_000

// checkAliases refuses a document whose aliases add more than
// maxAliasedNodes nodes, or that has an anchor holding an alias of itself
// (yaml refuses that only when decoding, and checkKeys would follow it
// until the stack overflows), before anything walks it. Each anchored node
// is counted once, so this is linear in the file.
func checkAliases(doc *yaml.Node, ps *Problems) bool {
	written := 0
	var write func(n *yaml.Node)
	write = func(n *yaml.Node) {
		written++
		for _, c := range n.Content {
			write(c)
		}
	}
	write(doc)
	// Sizes saturate above the limit: nine levels of nine overflow an int.
	limit := written + maxAliasedNodes
	const counting = -1
	sizes := map[*yaml.Node]int{} // by anchored node
	var loop *yaml.Node           // the alias that closes a loop
	var count func(n *yaml.Node) int
	count = func(n *yaml.Node) int {
		if loop != nil {
			return 0
		}
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			if s, ok := sizes[n.Alias]; ok {
				if s == counting {
					loop = n
					return 0
				}
				return s
			}
			return count(n.Alias)
		}
		if n.Anchor != "" {
			sizes[n] = counting
		}
		s := 1
		for _, c := range n.Content {
			s = min(s+count(c), limit+1)
		}
		if n.Anchor != "" {
			sizes[n] = s
		}
		return s
	}
	total := count(doc)
	switch {
	case loop != nil:
		ps.add("config", "anchor %q holds an alias of itself (line %d)", loop.Value, loop.Line)
	case total > limit:
		ps.add("config", "aliases repeat more than %d values (aliases of aliases multiply): write fewer", maxAliasedNodes)
	default:
		return true
	}
	return false
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

// checkKeys walks the YAML tree beside the Go type, reporting unknown keys,
// secrets written in the file, durations and sizes that do not parse, and
// nodes of the wrong shape, and recording which path each line holds so
// yaml's type errors can be reported by path. A node it reports is blanked,
// so the decode that follows does not report the same mistake again.
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
		// The anchored node's lines belong to the path where it is
		// written, not to every path that refers to it.
		if n.Alias != nil {
			checkKeys(n.Alias, t, path, map[int]string{}, ps)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	lines[n.Line] = orRoot(path)
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			ps.add(orRoot(path), "expected a mapping (line %d)", n.Line)
			blank(n)
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			// yaml would drop a map's entry with an empty key without a
			// word, as it does a null list entry. (A struct's is an
			// unknown key.)
			if t.Kind() == reflect.Map && k.Kind == yaml.ScalarNode && k.ShortTag() == "!!null" {
				ps.add(orRoot(path), "empty key (line %d): name the entry, or leave it out", k.Line)
				continue
			}
			p := join(path, k.Value)
			if duplicate(n, i, seen, p, ps) {
				i -= 2
				continue
			}
			if isMerge(k) {
				checkMerge(v, t, path, lines, ps)
				continue
			}
			lines[k.Line] = p
			if t.Kind() == reflect.Map {
				checkKeys(v, t.Elem(), p, lines, ps)
				continue
			}
			f, ok := fieldByTag(t, k.Value)
			if !ok {
				msg := "unknown key (line %d)"
				if s := suggest(t, k.Value); s != "" {
					msg += "; did you mean " + strconv.Quote(s) + "?"
				}
				ps.add(p, msg, k.Line)
				continue
			}
			if f.Tag.Get("secret") == "true" && writtenSecret(v) {
				ps.add(p, "secrets must not be written in the file; set %s instead", envName(p))
				continue
			}
			checkKeys(v, f.Type, p, lines, ps)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.add(orRoot(path), "expected a list (line %d)", n.Line)
			blank(n)
			return
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			// yaml would drop the entry without a word: "roles: [~]"
			// would read as "roles: []", which opens a route to any user.
			if c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" {
				ps.add(p, "empty list entry (line %d): write its value, or leave the entry out", c.Line)
				continue
			}
			checkKeys(c, t.Elem(), p, lines, ps)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			ps.add(orRoot(path), "expected a single value (line %d)", n.Line)
			blank(n)
			return
		}
		checkScalar(n, t, orRoot(path), ps)
	}
}

// duplicate reports the key at i of mapping n when an earlier key of n has
// the same name, and removes the pair, so that yaml does not report it
// again: yaml names a mistake only by its line, and checkKeys can only
// turn a line into the path of the last key written on it, the wrong one
// in a flow mapping ({rate: 1, rate: 2, burst: 3}).
func duplicate(n *yaml.Node, i int, seen map[string]int, path string, ps *Problems) bool {
	k := n.Content[i]
	if k.Kind != yaml.ScalarNode {
		return false
	}
	first, ok := seen[k.Value]
	if !ok {
		seen[k.Value] = k.Line
		return false
	}
	ps.add(path, "mapping key %q already defined at line %d (line %d)", k.Value, first, k.Line)
	n.Content = slices.Delete(n.Content, i, i+2)
	return true
}

// checkScalar checks the scalars yaml would get wrong or report badly.
// yaml.v3 refuses a bare number for a time.Duration (rather than reading 5
// as 5ns), even 0; a bare 0 is unambiguous and time.ParseDuration accepts
// it, as the environment does, so it is read as zero here. Every other
// duration needs a unit. yaml.v3 truncates a fraction written for an
// integer (1.5 becomes 1), and reads a leading zero as octal (0100 is 64);
// both are refused, as the environment refuses a fraction and reads 0100
// as 100.
// Numbers and booleans are decoded here, each alone, so that a mistake is
// reported by its own path: the whole document's decode names one by its
// line only, which holds several keys in a flow mapping ({rate: ten,
// burst: 10}).
func checkScalar(n *yaml.Node, t reflect.Type, path string, ps *Problems) {
	if isInteger(t) && n.ShortTag() == "!!float" {
		ps.add(path, "invalid integer %q: write a whole number without a fraction or exponent (line %d)", n.Value, n.Line)
		blank(n)
		return
	}
	if k := t.Kind(); (isInteger(t) || k == reflect.Float32 || k == reflect.Float64) && n.ShortTag() == "!!int" && octalRE.MatchString(n.Value) {
		what := "number"
		if isInteger(t) {
			what = "integer"
		}
		v, _ := strconv.ParseInt(n.Value, 0, 64)
		ps.add(path, "invalid %s %q: YAML reads a leading 0 as octal (%d); write it without (line %d)", what, n.Value, v, n.Line)
		blank(n)
		return
	}
	switch t {
	case durationType:
		if _, err := time.ParseDuration(n.Value); err != nil {
			ps.add(path, "invalid duration %q: %s (line %d)", n.Value, durationHint(n.Value), n.Line)
			blank(n)
			return
		}
		if n.ShortTag() == "!!int" {
			n.Tag = "!!str" // a bare 0, which yaml would refuse
		}
	case byteSizeType:
		if _, err := ParseByteSize(n.Value); err != nil {
			ps.add(path, "%v (line %d)", err, n.Line)
			blank(n)
		}
	default:
		if k := t.Kind(); k != reflect.Bool && k != reflect.Float32 && k != reflect.Float64 && !isInteger(t) {
			return // a string takes any scalar
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				ps.add(path, "%v (line %d)", err, n.Line)
			} else {
				for _, msg := range te.Errors {
					if m := lineRE.FindStringSubmatch(msg); m != nil {
						msg = m[2]
					}
					ps.add(path, "%s (line %d)", msg, n.Line)
				}
			}
			blank(n)
		}
	}
}

// octalRE is a number yaml.v3 reads in octal, as YAML 1.1 did (0100 is
// 64), where the environment, a size and YAML 1.2 read it in decimal.
var octalRE = regexp.MustCompile(`^[-+]?0[0-9_]+$`)

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return t != durationType && t != byteSizeType
	}
	return false
}

// unshareScalars replaces every alias of a scalar by a copy of it, so
// that what checkKeys does to one use (a duration's bare 0 read as 0s)
// cannot change what another setting sharing the anchor reads. Aliases of
// mappings and lists stay shared; their scalars are copied where the
// anchor is written.
func unshareScalars(n *yaml.Node) {
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode && c.Alias != nil && c.Alias.Kind == yaml.ScalarNode {
			copied := *c.Alias
			copied.Anchor = ""
			*c = copied
			continue
		}
		unshareScalars(c)
	}
}

// blank turns a node already reported into null, which decoding skips.
func blank(n *yaml.Node) {
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

// checkMerge checks the mappings a merge key (<<) brings into a mapping of
// type t: their keys land at path just as if they were written there.
func checkMerge(v *yaml.Node, t reflect.Type, path string, lines map[int]string, ps *Problems) {
	// What yaml.v3 accepts: a mapping, an alias of one, or a list of those
	// (not an alias of a list).
	isMapping := func(n *yaml.Node) bool {
		return n.Kind == yaml.MappingNode || n.Kind == yaml.AliasNode && n.Alias != nil && n.Alias.Kind == yaml.MappingNode
	}
	switch {
	case isMapping(v):
		checkKeys(v, t, path, lines, ps)
		return
	case v.Kind == yaml.SequenceNode && !slices.ContainsFunc(v.Content, func(c *yaml.Node) bool { return !isMapping(c) }):
		for _, c := range v.Content {
			checkKeys(c, t, path, lines, ps)
		}
		return
	}
	ps.add(orRoot(path), "a merge (<<) takes a mapping or a list of mappings (line %d)", v.Line)
	// yaml stops decoding altogether on a bad merge; an empty mapping
	// merges nothing.
	*v = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: v.Line, Column: v.Column}
}

// writtenSecret reports whether a secret's node sets a value, following
// aliases so that an anchor elsewhere cannot smuggle one in.
func writtenSecret(v *yaml.Node) bool {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.ScalarNode:
		return v.Value != "" && v.ShortTag() != "!!null"
	default:
		return true
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

// suggest names the field a mistyped key most likely meant: the same name
// in another case or with underscores, or one at most two edits away (one
// for short keys, so that unrelated short names are not offered).
func suggest(t reflect.Type, key string) string {
	fold := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	best, bestDist := "", 3
	if len(key) <= 4 {
		bestDist = 2
	}
	for i := 0; i < t.NumField(); i++ {
		n := yamlName(t.Field(i))
		if n == "" || n == "-" {
			continue
		}
		if fold(n) == fold(key) {
			return n
		}
		if d := editDistance(fold(n), fold(key)); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
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
// anything was set, and records in set (when not nil) each path set with
// its variable.
func applyEnv(v reflect.Value, env, path string, getenv func(string) string, ps *Problems, set map[string]string) bool {
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
		if applyEnvValue(v.Field(i), name, fenv, join(path, name), getenv, ps, set) {
			changed = true
		}
	}
	return changed
}

func applyEnvValue(fv reflect.Value, field, env, path string, getenv func(string) string, ps *Problems, set map[string]string) bool {
	ft := fv.Type()
	switch {
	case ft.Kind() == reflect.Struct:
		return applyEnv(fv, env, path, getenv, ps, set)
	case ft.Kind() == reflect.Pointer:
		tmp := reflect.New(ft.Elem())
		if !fv.IsNil() {
			tmp.Elem().Set(fv.Elem())
		}
		if applyEnvValue(tmp.Elem(), field, env, path, getenv, ps, set) {
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
			if applyEnvValue(tmp, key, env+"__"+envSegment(key), join(path, key), getenv, ps, set) {
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
	if set != nil {
		set[path] = env
	}
	return true
}

// NameOverrides adds to each problem at a setting an environment variable
// set (or at an entry of the list it set) the variable's name: a value out
// of range is reported at its path, and the file, which may not even have
// the setting, is not where to fix it. getenv is the environment the
// configuration was loaded with.
func NameOverrides(ps Problems, getenv func(string) string) Problems {
	set := map[string]string{}
	if getenv != nil {
		cfg := Default()
		applyEnv(reflect.ValueOf(&cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", getenv, new(Problems), set)
	}
	return nameOverrides(ps, set)
}

func nameOverrides(ps Problems, set map[string]string) Problems {
	if len(set) == 0 {
		return ps
	}
	out := slices.Clone(ps)
	for i, p := range out {
		path, _, _ := strings.Cut(p.Path, "[")
		if env, ok := set[path]; ok {
			out[i].Message += " (set by " + env + ")"
		}
	}
	return out
}

// lookup treats an empty (or blank) variable as unset, so an
// exported-but-empty variable never blanks a setting by accident.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, strings.TrimSpace(v) != ""
}

// durationHint says what is wrong with s, which time.ParseDuration
// refused: written as a duration, it can only be too long for one.
func durationHint(s string) string {
	if durationSyntax.MatchString(s) {
		return "too long (a duration is at most about 292 years, 2562047h)"
	}
	return "write a number with a unit, such as 500ms, 5s or 1m"
}

// durationSyntax is what time.ParseDuration reads, whatever its size.
var durationSyntax = regexp.MustCompile(`^[-+]?((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$`)

func setScalar(fv reflect.Value, raw string) error {
	raw = strings.TrimSpace(raw)
	switch ft := fv.Type(); {
	case ft == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %s", raw, durationHint(raw))
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
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
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

// UnknownEnv reports the variables of environ ("NAME=value", as os.Environ
// lists them) that are meant as overrides but name no setting: those that
// start with GATEWAY_ and either hold the "__" between segments that every
// override has or differ from a setting's name only in underscores
// (GATEWAY_SERVER_LISTEN). Load reads only the names it knows, so such a
// typo would be ignored without a word, where the same typo in the file is
// refused. Other GATEWAY_ names (GATEWAY_CONFIG, and the GATEWAY_PORT or
// GATEWAY_SERVICE_HOST that Kubernetes sets for a Service named gateway)
// are left alone. nil when there is none.
func UnknownEnv(environ []string) error {
	known := EnvNames()
	fold := func(s string) string { return strings.ReplaceAll(s, "_", "") }
	var ps Problems
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigPath {
			continue
		}
		if _, ok := slices.BinarySearch(known, name); ok {
			continue
		}
		best, bestDist := "", 3
		for _, k := range known {
			if fold(k) == fold(name) {
				best, bestDist = k, 0
				break
			}
			if d := editDistance(fold(k), fold(name)); d < bestDist {
				best, bestDist = k, d
			}
		}
		if !strings.Contains(name, "__") && bestDist != 0 {
			continue
		}
		if best != "" {
			ps.add(name, "not a setting (did you mean %s?); nothing reads it", best)
		} else {
			ps.add(name, "not a setting; nothing reads it (the names are in docs/configuration.md)")
		}
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}

// EnvNames lists every environment variable Load reads, sorted; used by
// UnknownEnv and the documentation test.
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
	applyEnv(reflect.ValueOf(&cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", getenv, new(Problems), nil)
	sort.Strings(names)
	return names
}
