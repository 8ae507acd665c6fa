package gateway

import "testing"

func TestAmbiguousFraming(t *testing.T) {
	for _, c := range []struct {
		raw    string
		http11 bool
		want   bool
	}{
		{"", true, false},
		{"Host: a\r\nContent-Length: 5\r\n\r\n", true, false},
		{"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n", true, false},
		{"Transfer-Encoding:\tCHUNKED \r\n\r\n", true, false},
		{"X-A: caf\xc3\xa9\tb\r\n\r\n", true, false},
		{"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", true, true},
		{"Content-Length: 5\r\ncontent-length: 5\r\n\r\n", true, true},
		{"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", true, true},
		{"Transfer-Encoding: chunked, identity\r\n\r\n", true, true},
		{"Transfer-Encoding: xchunked\r\n\r\n", true, true},
		{"Transfer-Encoding: identity\r\n\r\n", true, true},
		{"Transfer-Encoding: chunked\r\n\r\n", false, true},
		{"Content-Length: 5\r\n\r\n", false, false},
		{"X-A: 1\r\n b\r\n\r\n", true, true},
		{"X-A: 1\nContent-Length: 5\r\n\r\n", true, true},
		{"X-A: 1\rb\r\n\r\n", true, true},
		{"X-A: \x00\r\n\r\n", true, true},
		{"X-A\x0b: 1\r\n\r\n", true, true},
		{"X A: 1\r\n\r\n", true, true},
		{"no colon\r\n\r\n", true, true},
		{"Host: a\r\nHost: b\r\n\r\n", true, true},
		{"Host: a\r\n\n", true, true},
	} {
		if got := ambiguousFraming([]byte(c.raw), c.http11); got != c.want {
			t.Errorf("ambiguousFraming(%q, %v) = %v, want %v", c.raw, c.http11, got, c.want)
		}
	}
}
