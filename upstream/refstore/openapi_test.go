package refstore

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/bffgate/edge/upstream/contract"
)

// openAPIPath is the machine-readable copy of the contract.
const openAPIPath = "../../docs/userstore.openapi.yaml"

type openAPISchema struct {
	Type       string                   `yaml:"type"`
	Required   []string                 `yaml:"required"`
	Properties map[string]openAPISchema `yaml:"properties"`
	Enum       []string                 `yaml:"enum"`
	Example    any                      `yaml:"example"`
	Maximum    *int                     `yaml:"maximum"`
	MaxLength  *int                     `yaml:"maxLength"`
	MaxItems   *int                     `yaml:"maxItems"`
}

type openAPIParameter struct {
	Ref    string        `yaml:"$ref"`
	Name   string        `yaml:"name"`
	In     string        `yaml:"in"`
	Schema openAPISchema `yaml:"schema"`
}

type openAPIOperation struct {
	Parameters  []openAPIParameter `yaml:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Schema struct {
				Ref string `yaml:"$ref"`
			} `yaml:"schema"`
		} `yaml:"content"`
	} `yaml:"requestBody"`
	Responses map[string]any `yaml:"responses"`
}

type openAPIDoc struct {
	OpenAPI    string                                 `yaml:"openapi"`
	Paths      map[string]map[string]openAPIOperation `yaml:"paths"`
	Components struct {
		Parameters map[string]openAPIParameter `yaml:"parameters"`
		Schemas    map[string]openAPISchema    `yaml:"schemas"`
	} `yaml:"components"`
}

// TestOpenAPIMatchesContract keeps docs/userstore.openapi.yaml, the Go wire
// types and this store's limits from drifting apart.
func TestOpenAPIMatchesContract(t *testing.T) {
	raw, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse %s: %v", openAPIPath, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}

	calls := map[string]string{
		contract.PathUsernameCheck:       "post",
		contract.PathSearch:              "get",
		contract.PathUserPrefix + "{id}": "get",
		contract.PathLiveStreams:         "get",
	}
	if len(doc.Paths) != len(calls) {
		t.Errorf("%d paths documented, the contract has %d", len(doc.Paths), len(calls))
	}
	headers := []string{}
	for _, p := range doc.Components.Parameters {
		if p.In == "header" {
			headers = append(headers, p.Name)
		}
	}
	slices.Sort(headers)
	wantHeaders := slices.Sorted(slices.Values(recordedHeaders))
	if !slices.Equal(headers, wantHeaders) {
		t.Errorf("documented headers %v, contract %v", headers, wantHeaders)
	}
	query := map[string]openAPISchema{}
	for path, method := range calls {
		ops, ok := doc.Paths[path]
		if !ok || len(ops) != 1 {
			t.Errorf("%s: documented methods %v, want only %s", path, slices.Collect(maps.Keys(ops)), method)
			continue
		}
		op, ok := ops[method]
		if !ok {
			t.Errorf("%s is not documented as %s", path, method)
			continue
		}
		refs := 0
		for _, p := range op.Parameters {
			if strings.HasPrefix(p.Ref, "#/components/parameters/") {
				refs++
			}
			if p.In == "query" {
				query[p.Name] = p.Schema
			}
		}
		if refs != len(recordedHeaders) {
			t.Errorf("%s lists %d propagated headers, want %d", path, refs, len(recordedHeaders))
		}
		for _, status := range []string{"200", "401", "405", "500", "503"} {
			if _, ok := op.Responses[status]; !ok {
				t.Errorf("%s %s documents no %s", method, path, status)
			}
		}
	}
	if body := doc.Paths[contract.PathUsernameCheck]["post"].RequestBody; body == nil ||
		body.Content["application/json"].Schema.Ref != "#/components/schemas/UsernameCheckRequest" {
		t.Error("username check body is not documented")
	}
	for name, want := range map[string]int{"limit": contract.MaxSearchLimit, "offset": contract.MaxSearchOffset} {
		if s := query[name]; s.Maximum == nil || *s.Maximum != want {
			t.Errorf("query %s maximum documented as %v, want %d", name, s.Maximum, want)
		}
	}
	if s := query["q"]; s.MaxLength == nil || *s.MaxLength != contract.MaxQueryBytes {
		t.Errorf("q maxLength %v, want %d", s.MaxLength, contract.MaxQueryBytes)
	}
	if s := query["userIds"]; s.MaxItems == nil || *s.MaxItems != contract.MaxLiveStreamIDs {
		t.Errorf("userIds maxItems %v, want %d", s.MaxItems, contract.MaxLiveStreamIDs)
	}

	schemas := doc.Components.Schemas
	for name, typ := range map[string]reflect.Type{
		"User":                  reflect.TypeFor[contract.User](),
		"Money":                 reflect.TypeFor[contract.Money](),
		"LiveStream":            reflect.TypeFor[contract.LiveStream](),
		"SearchResponse":        reflect.TypeFor[contract.SearchResponse](),
		"LiveStreamsResponse":   reflect.TypeFor[contract.LiveStreamsResponse](),
		"UsernameCheckRequest":  reflect.TypeFor[contract.UsernameCheckRequest](),
		"UsernameCheckResponse": reflect.TypeFor[contract.UsernameCheckResponse](),
		"Error":                 reflect.TypeFor[contract.Error](),
	} {
		s, ok := schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var fields []string
		for f := range typ.Fields() {
			fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		slices.Sort(fields)
		props := slices.Sorted(maps.Keys(s.Properties))
		required := slices.Sorted(slices.Values(s.Required))
		if !slices.Equal(props, fields) || !slices.Equal(required, fields) {
			t.Errorf("schema %s: properties %v, required %v; Go fields %v", name, props, required, fields)
		}
	}
	codes := schemas["Error"].Properties["code"].Enum
	known := []string{contract.CodeValidationFailed, contract.CodeNotFound, contract.CodeConflict,
		contract.CodeInternal, contract.CodeUnavailable, CodeUnauthorized, CodeMethodNotAllowed}
	for _, code := range known {
		if !slices.Contains(codes, code) {
			t.Errorf("error code %s not documented", code)
		}
	}
	// And no other: a store written from the document would send a code
	// the gateway has never heard of.
	for _, code := range codes {
		if !slices.Contains(known, code) {
			t.Errorf("error code %s documented, but the contract has no such code", code)
		}
	}

	// The documented example user is the demo user, byte for byte.
	example, _ := json.Marshal(schemas["User"].Example)
	var u contract.User
	if err := json.Unmarshal(example, &u); err != nil || !reflect.DeepEqual(u, demoUsers[0]) {
		t.Errorf("User example is not the demo user: %v\n%s", err, example)
	}
}
