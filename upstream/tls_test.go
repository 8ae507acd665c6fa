package upstream

import (
	"context"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/refstore"
)

// An https store: calls go over TLS, verified against the host name.
func TestTLSStore(t *testing.T) {
	st, _ := store(t)
	srv := httptest.NewTLSServer(st.Handler(refstore.HandlerOptions{ServiceToken: testToken}))
	defer srv.Close()
	c, _ := newClient(t, testConfig(srv.URL))
	ctx := context.Background()
	if _, err := c.UserByID(ctx, testCall(), refstore.DemoUserID); err == nil {
		t.Fatal("a certificate no root vouches for was accepted")
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c.hosts[0].tls.RootCAs = roots // the test server's own root; the system's otherwise
	u, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
	if err != nil || u.ID != refstore.DemoUserID {
		t.Fatalf("over TLS: %+v, %v", u, err)
	}
	if _, err := c.CheckUsername(ctx, testCall(), "sukru.isik"); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
}

// A store that accepts the TCP connection and never answers the TLS
// handshake: the handshake is bounded by the dial timeout (capped by the
// attempt's), not by the pool's 10-s background timeout, and the call
// fails as a connection that could not be set up in time (outcome
// connect, a timeout to the client).
func TestTLSHandshakeIsBoundedByTheDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	cfg := testConfig("https://" + ln.Addr().String())
	cfg.DialTimeout = 100 * time.Millisecond
	eachOp(&cfg, func(o *config.Operation) { o.Timeout, o.Retry.Attempts = time.Second, 0 })
	c, _ := newClient(t, cfg)
	start := time.Now()
	_, err = c.CheckUsername(context.Background(), testCall(), "sukru.isik")
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("the call took %s with a 100ms dial timeout: %v", took, err)
	}
	kindAndOutcome(t, err, KindTimeout, OutcomeConnect)
}
