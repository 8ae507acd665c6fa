package upstream

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
)

// fastStore answers the username check and a 20-user search page from
// memory, so the benchmarks measure the client, not the store.
func fastStore(b *testing.B) string {
	b.Helper()
	st, _ := store(b)
	page, err := st.Search(context.Background(), "", 20, 0)
	if err != nil {
		b.Fatal(err)
	}
	searchBody, _ := json.Marshal(page)
	checkBody := []byte(`{"username":"johndoe123","available":true}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == contract.PathUsernameCheck {
			w.Write(checkBody)
			return
		}
		w.Write(searchBody)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

func BenchmarkCheckUsername(b *testing.B) {
	c, _ := newClient(b, testConfig(fastStore(b)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	call := testCall()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if ok, err := c.CheckUsername(ctx, call, "johndoe123"); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkSearch(b *testing.B) {
	c, _ := newClient(b, testConfig(fastStore(b)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	call := testCall()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if page, err := c.Search(ctx, call, "şükrü ışık", 20, 0); err != nil || len(page.Items) != 20 {
			b.Fatal(err)
		}
	}
}

// BenchmarkBreakerOpen measures how fast a call fails while its breaker
// is open (the store sees nothing).
func BenchmarkBreakerOpen(b *testing.B) {
	p := proxied(b)
	cfg := testConfig(p.URL())
	eachOp(&cfg, func(o *config.Operation) {
		o.Retry.Attempts = 0
		o.Breaker.ConsecutiveFailures = 1
		o.Breaker.OpenTimeout = time.Hour
	})
	c, _ := newClient(b, cfg)
	p.Set(faultproxy.Status(500))
	ctx := context.Background()
	call := testCall()
	c.Search(ctx, call, "ali", 20, 0)
	before := p.Stats().Requests
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Search(ctx, call, "ali", 20, 0); outcomeOf(err) != OutcomeBreakerOpen {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if p.Stats().Requests != before {
		b.Fatal("calls reached the store while open")
	}
}

// BenchmarkAnswerConnRead measures answerConn's look at the start of an
// answer (the username check's 200, whole in one read), without the
// network: a connection that gives the same answer to every read.
func BenchmarkAnswerConnRead(b *testing.B) {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 43\r\n\r\n" +
		`{"username":"johndoe123","available":true}`)
	c := &answerConn{Conn: sameAnswer{answer: answer}, marks: new(connMarks)}
	req := []byte("GET /x HTTP/1.1\r\n\r\n")
	buf := make([]byte, 4096) // fasthttp's read buffer
	b.ReportAllocs()
	for b.Loop() {
		c.Write(req)
		if n, err := c.Read(buf); err != nil || n != len(answer) {
			b.Fatal(n, err)
		}
	}
}

// sameAnswer is a connection that takes every write and answers every
// read with answer.
type sameAnswer struct {
	net.Conn
	answer []byte
}

func (c sameAnswer) Read(p []byte) (int, error)  { return copy(p, c.answer), nil }
func (c sameAnswer) Write(p []byte) (int, error) { return len(p), nil }
