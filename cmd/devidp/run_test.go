package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func noEnv(string) string { return "" }

// TestRunServesPrintsTokensAndStops starts the binary's run on a free port,
// reads its log lines like a developer would, calls it, and stops it.
func TestRunServesPrintsTokensAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, outW := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"devidp", "-listen", "127.0.0.1:0", "-audience", "aud-x"}, noEnv, outW, &stderr)
		outW.Close()
	}()

	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 64<<10), 64<<10)
	next := func() map[string]any {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("run printed no more lines; stderr %q", stderr.String())
		}
		var m map[string]any
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", lines.Text())
		}
		return m
	}
	listening := next()
	addr, _ := listening["addr"].(string)
	if listening["msg"] != "listening" || addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("first line %v", listening)
	}
	if listening["issuer"] != "http://"+addr {
		t.Errorf("issuer %v, want http://%s", listening["issuer"], addr)
	}

	wantSubs := map[string]string{
		"demo":  "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11",
		"admin": "a0a0a0a0-0000-4000-8000-000000000001",
	}
	for range 2 {
		line := next()
		name, _ := line["name"].(string)
		if line["msg"] != "token" || wantSubs[name] == "" || line["sub"] != wantSubs[name] {
			t.Fatalf("token line %v", line)
		}
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(line["token"].(string), claims); err != nil {
			t.Fatal(err)
		}
		roles, _ := claims["roles"].([]any)
		if claims["sub"] != wantSubs[name] || claims["aud"] != "aud-x" || claims["iss"] != "http://"+addr ||
			(name == "admin") != (len(roles) == 2 && roles[1] == "admin") {
			t.Errorf("%s token claims %v", name, claims)
		}
		delete(wantSubs, name)
	}

	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for _, path := range []string{"/healthz", "/.well-known/jwks.json"} {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}

	cancel()
	go func() { _, _ = io.Copy(io.Discard, out) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after its context was cancelled")
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"devidp", "-nope"},
		{"devidp", "extra"},
		{"devidp", "-token-ttl", "-1s"},
		{"devidp", "-listen", "not-an-address"},
	} {
		var stdout, stderr strings.Builder
		if err := run(context.Background(), args, noEnv, &stdout, &stderr); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// -h prints the flags and is not a failure, as for the other binaries.
func TestRunHelp(t *testing.T) {
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"devidp", "-h"}, noEnv, &stdout, &stderr); err != nil {
		t.Errorf("-h: %v", err)
	}
	if !strings.Contains(stderr.String(), "-listen") {
		t.Errorf("-h printed no usage: %q", stderr.String())
	}
}
