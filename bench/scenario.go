package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// scenario is one contender on one path: the request, the processes whose
// CPU and memory it costs, and what a correct answer is.
type scenario struct {
	Name  string
	Title string
	// Group: "gateway", "baseline" or "real store".
	Group string
	// Contender and Upstream name the processes measured.
	Contender string
	Upstream  string

	Method string
	URL    string
	Header http.Header
	Body   []byte

	// contender and upstream are the measured processes (upstream may be
	// empty).
	contender measured
	upstream  measured

	// CacheHit: answers are expected from a cache (X-Cache or nginx's
	// X-Cache-Status HIT/STALE); others are counted as NotFromCache.
	CacheHit bool
	// cacheHeader is the header that says so.
	cacheHeader string
	// envelope: the body must be a success envelope (the gateway's).
	envelope bool
	// exactData: the envelope's data must be exactly this JSON.
	exactData string
	// exact: the body must be these bytes (static answers). Set from the
	// verified probe when nil.
	exact []byte
	// wantCache is the X-Cache value a gateway answer must carry when not
	// a cache scenario (BYPASS with the cache off), or "".
	wantCache string

	// ResponseBytes is the full size on the wire (status line, headers,
	// body) of the verified probe answer; the closed loop's bytes per
	// answer are compared with it.
	ResponseBytes int
	// halfOf names the scenario whose maximum, halved, is this one's
	// open-loop rate ("" means its own).
	halfOf string
	// closedConns is the closed loop's connection count; 0 means the
	// -connections option.
	closedConns int
	// path, for a gateway scenario, is the path its answers must take,
	// checked by the gateway's counters around every closed-loop window.
	path *gatewayPath
}

// Successful envelope pieces (gateway/envelope.go writes them).
var (
	envelopeHead   = []byte(`{"isSuccess":true,"statusCode":200,"data":`)
	envelopeErrors = []byte(`,"errors":[],"timestamp":"`)
	envelopeTail   = []byte(`"}`)
)

// check judges one answer: an error when it is not a correct 2xx answer of
// the expected shape; fromCache when it came from the cache.
func (sc *scenario) check(status int, h http.Header, body []byte, transportErr string) (fromCache bool, err error) {
	if status == 0 {
		return false, fmt.Errorf("no answer: %s", transportErr)
	}
	if status < 200 || status > 299 {
		return false, fmt.Errorf("status %d: %.200s", status, body)
	}
	if sc.envelope {
		if ct := h.Get("Content-Type"); ct != "application/json" {
			return false, fmt.Errorf("content type %q", ct)
		}
		if !bytes.HasPrefix(body, envelopeHead) || !bytes.Contains(body, envelopeErrors) || !bytes.HasSuffix(body, envelopeTail) ||
			bytes.HasPrefix(body[len(envelopeHead):], []byte("null")) {
			return false, fmt.Errorf("not a success envelope with data: %.200s", body)
		}
		if sc.exactData != "" && !bytes.HasPrefix(body[len(envelopeHead):], []byte(sc.exactData+string(envelopeErrors))) {
			return false, fmt.Errorf("data is not %s: %.200s", sc.exactData, body)
		}
		if p := h.Get("X-Partial-Response"); p != "" {
			return false, fmt.Errorf("partial answer (X-Partial-Response: %s)", p)
		}
	}
	if sc.exact != nil && !bytes.Equal(body, sc.exact) {
		return false, fmt.Errorf("body differs from the verified answer: %.200s", body)
	}
	if sc.wantCache != "" && h.Get("X-Cache") != sc.wantCache {
		return false, fmt.Errorf("X-Cache %q, want %q", h.Get("X-Cache"), sc.wantCache)
	}
	if sc.cacheHeader != "" {
		v := h.Get(sc.cacheHeader)
		fromCache = v == "HIT" || v == "STALE"
	}
	return fromCache, nil
}

// probe sends the scenario's request a few times on one fresh keep-alive
// connection, checks every answer, and records the size on the wire of
// one answer. For exact scenarios without fixed bytes, the first checked
// body becomes the expected one. Cache scenarios are probed until they
// answer from the cache.
func (sc *scenario) probe(ctx context.Context) error {
	var read atomic.Int64
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, read: &read}, nil
		},
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < 5; i++ {
		req, err := http.NewRequestWithContext(ctx, sc.Method, sc.URL, bytes.NewReader(sc.Body))
		if err != nil {
			return err
		}
		for k, v := range sc.Header {
			req.Header[k] = v
		}
		before := read.Load()
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %v", sc.Method, sc.URL, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: reading: %v", sc.Method, sc.URL, err)
		}
		fromCache, err := sc.check(resp.StatusCode, resp.Header, body, "")
		if err != nil {
			return fmt.Errorf("%s %s: %v", sc.Method, sc.URL, err)
		}
		if sc.exact == nil && !sc.envelope {
			sc.exact = body
		}
		if sc.CacheHit && !fromCache {
			continue // the first answers fill the cache
		}
		sc.ResponseBytes = int(read.Load() - before)
	}
	if sc.ResponseBytes == 0 {
		return fmt.Errorf("%s %s: never answered from the cache (%s)", sc.Method, sc.URL, sc.cacheHeader)
	}
	return nil
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}
