package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a loopback server that keeps the headers of every request
// it gets and answers a cached success envelope.
type recorder struct {
	url string
	mu  sync.Mutex
	got []http.Header
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rec.mu.Lock()
		rec.got = append(rec.got, r.Header.Clone())
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Cache", "HIT")
		w.Header().Set("X-Cache-Status", "HIT")
		_, _ = w.Write([]byte(okEnvelope))
	}))
	t.Cleanup(srv.Close)
	rec.url = srv.URL
	return rec
}

// take returns the headers of the requests since the last take.
func (rec *recorder) take() []http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := rec.got
	rec.got = nil
	return got
}

// fullStack is a stack whose every process "runs" at url, so that it
// builds every scenario.
func fullStack(url string, appHeaders bool) *stack {
	gw := func() *gatewayProc { return &gatewayProc{url: url, opsURL: url} }
	return &stack{opts: &options{connections: 8, appHeaders: appHeaders},
		gwCache: gw(), gwNoCache: gw(), gwStore: gw(),
		static: &server{}, staticURL: url, bare: &server{}, bareURL: url, floor: &server{}, floorURL: url,
		nginx: &nginxProc{server: &server{}, plainURL: url, cacheURL: url}, store: &server{}, storeURL: url,
		meToken: "me.tok.en", storeToken: "store.tok.en", envelope: []byte(okEnvelope)}
}

// lacksAppHeaders says which of the app headers h lacks or has another
// value of.
func lacksAppHeaders(h http.Header) []string {
	var lacks []string
	for _, kv := range appHeaders {
		if got := h.Values(kv[0]); len(got) != 1 || got[0] != kv[1] {
			lacks = append(lacks, kv[0]+": "+kv[1])
		}
	}
	return lacks
}

// With -app-headers, every scenario's request carries the app's client
// context besides its own headers, whichever generator sends it: wrk's
// script, h2load's command line, vegeta's target (the closed loop without
// wrk, the open loop without h2load), and the probe that verifies the
// answer and its size before any of them. Without it, no request does.
func TestAppHeadersOnEveryScenario(t *testing.T) {
	rec := newRecorder(t)
	off := fullStack(rec.url, false).scenarios()
	if len(off) != len(scenarioNames) {
		t.Fatalf("%d scenarios, want all %d", len(off), len(scenarioNames))
	}
	own := map[string]http.Header{}
	for _, sc := range off {
		for _, kv := range appHeaders {
			if sc.Header.Get(kv[0]) != "" {
				t.Errorf("%s sends %s without -app-headers", sc.Name, kv[0])
			}
		}
		own[sc.Name] = sc.Header
	}

	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	h2 := &h2loadOpen{dir: t.TempDir()}
	for _, sc := range fullStack(rec.url, true).scenarios() {
		for k, v := range own[sc.Name] {
			if !slices.Equal(sc.Header[k], v) {
				t.Errorf("%s: %s is %q with -app-headers, %q without", sc.Name, k, sc.Header[k], v)
			}
		}
		if lacks := lacksAppHeaders(sc.Header); len(lacks) > 0 {
			t.Errorf("%s: the scenario's header lacks %q", sc.Name, lacks)
		}

		script := wrkScript(sc)
		var lacks []string
		for _, kv := range appHeaders {
			if line := "wrk.headers[" + luaString(kv[0]) + "] = " + luaString(kv[1]); !strings.Contains(script, line) {
				lacks = append(lacks, line)
			}
		}
		if len(lacks) > 0 {
			t.Errorf("%s: wrk's script lacks %q", sc.Name, lacks)
		}

		args, err := h2.args(sc, 100, 10, 1000, "log")
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		sent := http.Header{}
		for i, a := range args {
			if a == "-H" && i+1 < len(args) {
				k, v, _ := strings.Cut(args[i+1], ": ")
				sent.Add(k, v)
			}
		}
		if lacks := lacksAppHeaders(sent); len(lacks) > 0 {
			t.Errorf("%s: h2load's -H lack %q: %q", sc.Name, lacks, args)
		}

		rec.take()
		attack(context.Background(), client, sc, 50, 1, 100*time.Millisecond)
		got := rec.take()
		if len(got) == 0 {
			t.Errorf("%s: vegeta sent nothing", sc.Name)
		}
		for _, h := range got {
			if lacks := lacksAppHeaders(h); len(lacks) > 0 {
				t.Errorf("%s: a vegeta request lacks %q", sc.Name, lacks)
				break
			}
		}

		_ = sc.probe(context.Background()) // the answer is this test's, not the scenario's: only the requests count
		got = rec.take()
		if len(got) == 0 {
			t.Errorf("%s: the probe sent nothing", sc.Name)
		}
		for _, h := range got {
			if lacks := lacksAppHeaders(h); len(lacks) > 0 {
				t.Errorf("%s: a probe request lacks %q", sc.Name, lacks)
				break
			}
		}
	}
}

// The real wrk and h2load put the app headers on the wire: the scenario
// with a body and its own headers (gw-username) and one without any
// (bare-fiber).
func TestAppHeadersReachWrkAndH2load(t *testing.T) {
	rec := newRecorder(t)
	var picked []*scenario
	for _, sc := range fullStack(rec.url, true).scenarios() {
		if sc.Name == "gw-username" || sc.Name == "bare-fiber" {
			picked = append(picked, sc)
		}
	}
	check := func(gen string, sc *scenario) {
		t.Helper()
		got := rec.take()
		if len(got) == 0 {
			t.Errorf("%s, %s: no request arrived", gen, sc.Name)
		}
		for _, h := range got {
			if lacks := lacksAppHeaders(h); len(lacks) > 0 {
				t.Errorf("%s, %s: a request lacks %q: %v", gen, sc.Name, lacks, h)
				return
			}
		}
	}
	if path, err := exec.LookPath("wrk"); err == nil {
		w := &wrkRunner{dir: t.TempDir(), path: path, threads: 1}
		for _, sc := range picked {
			rec.take()
			if _, err := w.run(context.Background(), sc, time.Second, 1); err != nil {
				t.Fatal(err)
			}
			check("wrk", sc)
		}
	} else {
		t.Log("wrk is not installed: its script is checked by TestAppHeadersOnEveryScenario only")
	}
	if path, err := exec.LookPath("h2load"); err == nil {
		h := &h2loadOpen{path: path, dir: t.TempDir(), connections: 2}
		mark := func() (cpuMark, error) { return cpuMark{at: time.Now()}, nil }
		for _, sc := range picked {
			rec.take()
			if _, _, _, err := h.window(context.Background(), sc, 50, 0, time.Second, mark); err != nil {
				t.Fatal(err)
			}
			check("h2load", sc)
		}
	} else {
		t.Log("h2load is not installed: its command line is checked by TestAppHeadersOnEveryScenario only")
	}
}

// The /me answer the baselines serve is captured with gw-me-hit's
// headers: the gateway's answer depends on the language (and the
// platform), and bare Fiber and nginx's proxy_cache must answer the bytes
// gw-me-hit gets.
func TestCaptureEnvelopeAsksWithAppHeaders(t *testing.T) {
	for _, on := range []bool{false, true} {
		var put []byte
		var asked http.Header
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				put, _ = io.ReadAll(r.Body)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			asked = r.Header.Clone()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Cache", "HIT")
			_, _ = w.Write([]byte(`{"language":"` + r.Header.Get("X-Language") + `"}`))
		}))
		st := fullStack(srv.URL, on)
		if err := st.captureEnvelope(context.Background()); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		var me *scenario
		for _, sc := range st.scenarios() {
			if sc.Name == "gw-me-hit" {
				me = sc
			}
		}
		for k, v := range me.Header {
			if !slices.Equal(asked[k], v) {
				t.Errorf("app headers %v: captured with %s %q, gw-me-hit sends %q", on, k, asked[k], v)
			}
		}
		want := `{"language":""}`
		if on {
			want = `{"language":"tr"}`
		}
		if string(st.envelope) != want || string(put) != want {
			t.Errorf("app headers %v: captured %s, the static upstream got %s, want %s", on, st.envelope, put, want)
		}
	}
}

// The memory phase's fill sends every user's /me with the app headers.
func TestMemoryFillSendsAppHeaders(t *testing.T) {
	rec := newRecorder(t)
	st := fullStack(rec.url, true)
	res := &memoryResult{}
	st.fill(context.Background(), rec.url, []string{"a.b.c", "d.e.f", "g.h.i"}, res)
	got := rec.take()
	if len(got) != 3 || res.Errors != 0 {
		t.Fatalf("%d requests, %d errors %q", len(got), res.Errors, res.ErrorSamples)
	}
	for _, h := range got {
		if lacks := lacksAppHeaders(h); len(lacks) > 0 || !strings.HasPrefix(h.Get("Authorization"), "Bearer ") {
			t.Errorf("a fill request lacks %q: %v", lacks, h)
		}
	}
}

// The report says whether the run sent the app headers, in JSON and
// Markdown, and the index has a column for it: "no" for the reports
// written before the flag, which have no such field.
func TestReportStatesAppHeaders(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC)
	with := &report{Schema: 1, StartedAt: start, Settings: settings{Rounds: 1, AppHeaders: true,
		AppHeaderValues: []string{"X-Language: tr", "X-Device-Id: d"}}}
	if _, err := with.write(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
	if !strings.Contains(string(md), "App headers: **yes**") || !strings.Contains(string(md), "`X-Language: tr`, `X-Device-Id: d`") {
		t.Errorf("Markdown of a run with app headers:\n%s", md)
	}
	var back struct {
		Settings map[string]any `json:"settings"`
	}
	js, _ := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err := json.Unmarshal(js, &back); err != nil || back.Settings["appHeaders"] != true {
		t.Errorf("JSON settings %v (%v)", back.Settings, err)
	}

	without := &report{Schema: 1, StartedAt: start.Add(-time.Hour), Settings: settings{Rounds: 1}}
	md = []byte(without.markdown())
	if !strings.Contains(string(md), "App headers: **no**") {
		t.Errorf("Markdown of a run without app headers:\n%s", md)
	}
	// A report of before the flag: no appHeaders field at all.
	old := []byte(`{"schema":1,"startedAt":"2026-11-28T01:00:00Z","settings":{"rounds":3}}`)
	if err := os.WriteFile(filepath.Join(dir, "2026-11-28T010000Z.json"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := writeIndex(dir); err != nil {
		t.Fatal(err)
	}
	index, _ := os.ReadFile(filepath.Join(dir, indexName))
	if !strings.Contains(string(index), "| rounds | app headers |") {
		t.Errorf("index has no app headers column:\n%s", index)
	}
	for stamp, want := range map[string]string{"2026-11-28T010000Z": "| 3 | no |", "2026-11-29T010000Z": "| 1 | yes |"} {
		found := false
		for _, line := range strings.Split(string(index), "\n") {
			if strings.HasPrefix(line, "| ["+stamp+"]") {
				found = true
				if !strings.Contains(line, want) {
					t.Errorf("index row of %s lacks %q: %s", stamp, want, line)
				}
			}
		}
		if !found {
			t.Errorf("index has no row of %s:\n%s", stamp, index)
		}
	}
}

func TestAppHeadersOption(t *testing.T) {
	for args, want := range map[string]bool{"": false, "-app-headers": true, "-app-headers=false": false} {
		o, err := parseOptions(append([]string{"bench"}, strings.Fields(args)...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.appHeaders != want {
			t.Errorf("%q: appHeaders %v", args, o.appHeaders)
		}
	}
}
