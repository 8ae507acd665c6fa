package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"time"
)

// fetcher downloads key sets with its own client: never http.DefaultClient,
// whose lack of timeouts would let a hung identity provider hold a refresh
// forever.
type fetcher struct {
	client    *http.Client
	transport *http.Transport
	timeout   time.Duration
	maxBytes  int64
}

func newFetcher(s settings) *fetcher {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: s.fetchTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   s.fetchTimeout,
		ResponseHeaderTimeout: s.fetchTimeout,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &fetcher{
		transport: t,
		client: &http.Client{
			Transport: t,
			Timeout:   s.fetchTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return errors.New("too many redirects")
				}
				if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
					return errors.New("redirect from https to http refused")
				}
				return nil
			},
		},
		timeout:  s.fetchTimeout,
		maxBytes: s.jwksMaxBytes,
	}
}

// fetch GETs one key set and returns its body. Everything but a 200 with a
// JSON object of at most maxBytes is an error, so the caller keeps the keys
// it has.
func (f *fetcher) fetch(ctx context.Context, rawURL string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		// Not the *url.Error itself: it quotes the URL whole, query and
		// all, and the caller names the URL, redacted.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if media, _, err := mime.ParseMediaType(ct); err == nil && media == "text/html" {
			return nil, errors.New("response is an HTML page, not a JWK set")
		}
	}
	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("response of %d bytes exceeds the %d-byte limit", resp.ContentLength, f.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, fmt.Errorf("response exceeds the %d-byte limit", f.maxBytes)
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("response is not a JSON object")
	}
	return body, nil
}

func (f *fetcher) close() {
	f.transport.CloseIdleConnections()
}
