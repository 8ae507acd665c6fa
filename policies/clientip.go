package policies

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/bffgate/edge/gateway/clientctx"
)

// ParseTrusted reads server.trustedProxies: CIDRs ("10.0.0.0/8") or single
// addresses ("10.0.0.7"). IPv4-mapped IPv6 is turned into IPv4, so a peer
// matches whichever way it was written. Every bad entry is reported in the
// one error.
func ParseTrusted(cidrs []string) ([]netip.Prefix, error) {
	var (
		out  []netip.Prefix
		errs []error
	)
	for i, s := range cidrs {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				errs = append(errs, fmt.Errorf("trusted proxy %d: %q is not a CIDR or IP address", i, s))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				errs = append(errs, fmt.Errorf("trusted proxy %d: %q spans more than the IPv4-mapped range", i, s))
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

// Bounds on the X-Forwarded-For walk, so a huge header costs no more than a
// small one.
const (
	// maxForwardedEntries is the most list entries (empty ones included)
	// looked at; no real chain of proxies is this long.
	maxForwardedEntries = 32
	// maxForwardedEntryBytes is the longest entry parsed: a bracketed IPv6
	// address with a port fits.
	maxForwardedEntryBytes = 64
)

// ClientIP finds the client's address.
//
// When the TCP peer is not a trusted proxy, the peer is the client and
// X-Forwarded-For is ignored: a client can write anything there. When it
// is, X-Forwarded-For (every header line, each a comma-separated list; the
// last line is the most recent) is walked from the right, skipping trusted
// addresses, and the first untrusted address is the client.
//
// The walk stops at the last trusted hop, which is then taken as the
// client, when it meets an entry that is not an address (or is too long),
// when the list runs out (everything was trusted), or after
// maxForwardedEntries entries. Entries may carry a port ("192.0.2.1:443",
// "[2001:db8::1]:443"); addresses with a zone are refused. Since every
// entry right of the client was written by a trusted proxy, garbage there
// means a misconfigured proxy, and the last trusted hop is the closest
// address we can vouch for.
//
// IPv4-mapped IPv6 is returned as IPv4, and the peer without its zone: a
// link-local peer carries the zone of the interface it came in on, which
// netip.Prefix.Contains never matches, so a listed link-local proxy would
// otherwise never be trusted. It does not allocate.
func ClientIP(peer netip.Addr, xForwardedFor [][]byte, trusted []netip.Prefix) netip.Addr {
	client := peer.Unmap().WithZone("")
	if !isTrusted(client, trusted) {
		return client
	}
	seen := 0
	for line := len(xForwardedFor) - 1; line >= 0; line-- {
		rest := xForwardedFor[line]
		for len(rest) > 0 {
			if seen++; seen > maxForwardedEntries {
				return client
			}
			var entry []byte
			entry, rest = lastEntry(rest)
			entry = clientctx.TrimOWS(entry)
			if len(entry) == 0 {
				continue
			}
			addr, ok := parseForwardedAddr(entry)
			if !ok {
				return client
			}
			if !isTrusted(addr, trusted) {
				return addr
			}
			client = addr
		}
	}
	return client
}

// lastEntry splits the last comma-separated entry off a list, looking back
// no further than an entry can be long; a longer entry comes back too long
// to parse, which stops the walk.
func lastEntry(list []byte) (entry, rest []byte) {
	stop := max(0, len(list)-maxForwardedEntryBytes-8)
	for i := len(list) - 1; i >= stop; i-- {
		if list[i] == ',' {
			return list[i+1:], list[:i]
		}
	}
	if stop > 0 {
		return list[stop:], nil
	}
	return list, nil
}

// parseForwardedAddr reads one X-Forwarded-For entry: an address, with an
// optional port.
func parseForwardedAddr(b []byte) (netip.Addr, bool) {
	if len(b) > maxForwardedEntryBytes {
		return netip.Addr{}, false
	}
	if bytes.IndexByte(b, '%') >= 0 { // a zone names the proxy's interface, not a client
		return netip.Addr{}, false
	}
	if b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 || !validPort(b[end+1:], true) {
			return netip.Addr{}, false
		}
		b = b[1:end]
	} else if bytes.Count(b, colon) == 1 {
		i := bytes.IndexByte(b, ':')
		if !validPort(b[i:], false) {
			return netip.Addr{}, false
		}
		b = b[:i]
	}
	if len(b) == 0 {
		return netip.Addr{}, false
	}
	// The string only lives for the call: ParseAddr keeps no reference to
	// it in a returned Addr, and the error (which would) is dropped.
	a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(b), len(b)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// validPort accepts ":digits" (1 to 5 digits), or nothing when optional.
func validPort(b []byte, optional bool) bool {
	if len(b) == 0 {
		return optional
	}
	if b[0] != ':' || len(b) < 2 || len(b) > 6 {
		return false
	}
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

var colon = []byte{':'}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// IsTrustedPeer reports whether a connection's peer is one of the trusted
// proxies, as ClientIP judges it (unmapped, without its zone).
func IsTrustedPeer(peer netip.Addr, trusted []netip.Prefix) bool {
	return isTrusted(peer.Unmap().WithZone(""), trusted)
}

// AddressKey is what one client's address counts as, as the per-IP rate
// limits key it: IPv4 as it is, IPv6 by its /64.
func AddressKey(ip netip.Addr) netip.Addr { return ipKey(ip) }
