package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The app answers exactly the given bytes and headers on its one path,
// and 404 elsewhere.
func TestRunServesTheBytes(t *testing.T) {
	body := []byte(`{"isSuccess":true,"statusCode":200,"data":{"id":"x"},"errors":[],"timestamp":"2026-05-22T16:11:26.801Z"}`)
	file := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"barefiber", "-body", file, "-header", "X-Cache: HIT", "-header", "Cache-Control: private, no-store"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	var l struct{ Msg, Addr string }
	if err := json.Unmarshal(line, &l); err != nil || l.Msg != "listening" {
		t.Fatalf("first line %q", line)
	}

	resp, err := http.Get("http://" + l.Addr + "/api/v1/users/me")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("got %d %s, want 200 %s", resp.StatusCode, got, body)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "X-Cache": "HIT", "Cache-Control": "private, no-store"} {
		if resp.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	resp, err = http.Get("http://" + l.Addr + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("other path: %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"barefiber"},
		{"barefiber", "-body", filepath.Join(t.TempDir(), "missing")},
		{"barefiber", "-body", "x", "-header", "no colon"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
