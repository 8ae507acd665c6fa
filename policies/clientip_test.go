package policies_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/bffgate/edge/policies"
)

func mustTrusted(t testing.TB, cidrs ...string) []netip.Prefix {
	t.Helper()
	p, err := policies.ParseTrusted(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lines(ls ...string) [][]byte {
	out := make([][]byte, len(ls))
	for i, l := range ls {
		out[i] = []byte(l)
	}
	return out
}

func TestClientIP(t *testing.T) {
	trusted := mustTrusted(t, "10.0.0.0/8", "192.168.1.1", "2001:db8:ffff::/48")
	tests := []struct {
		name string
		peer string
		xff  [][]byte
		want string
	}{
		{"untrusted peer is the client", "203.0.113.5", nil, "203.0.113.5"},
		{"spoofed XFF from an untrusted peer is ignored", "203.0.113.5", lines("1.2.3.4"), "203.0.113.5"},
		{"trusted peer without XFF", "10.1.1.1", nil, "10.1.1.1"},
		{"one trusted proxy", "10.1.1.1", lines("198.51.100.20"), "198.51.100.20"},
		{"client's spoofed prefix is skipped", "10.1.1.1", lines("1.2.3.4, 198.51.100.20"), "198.51.100.20"},
		{"chain through several trusted proxies", "10.1.1.1", lines("1.2.3.4, 198.51.100.20, 192.168.1.1, 10.9.9.9"), "198.51.100.20"},
		{"chain over several header lines", "10.1.1.1", lines("1.2.3.4, 198.51.100.20", "192.168.1.1", "10.9.9.9"), "198.51.100.20"},
		{"all trusted: the furthest hop", "10.1.1.1", lines("10.2.2.2, 192.168.1.1"), "10.2.2.2"},
		{"spaces and empty entries", "10.1.1.1", lines("  198.51.100.20 ,, \t10.2.2.2 ,"), "198.51.100.20"},
		{"port on IPv4", "10.1.1.1", lines("198.51.100.20:5555"), "198.51.100.20"},
		{"bracketed IPv6 with port", "10.1.1.1", lines("[2001:db8::7]:443"), "2001:db8::7"},
		{"bracketed IPv6 without port", "10.1.1.1", lines("[2001:db8::7]"), "2001:db8::7"},
		{"IPv6 chain", "2001:db8:ffff::1", lines("2001:db8::7, 2001:db8:ffff:1::2"), "2001:db8::7"},
		{"IPv4-mapped peer", "::ffff:10.1.1.1", lines("198.51.100.20"), "198.51.100.20"},
		{"IPv4-mapped entry", "10.1.1.1", lines("::ffff:198.51.100.20"), "198.51.100.20"},
		{"IPv4-mapped untrusted peer", "::ffff:203.0.113.5", lines("1.2.3.4"), "203.0.113.5"},
		{"malformed entry stops at the last trusted hop", "10.1.1.1", lines("198.51.100.20, garbage, 10.2.2.2"), "10.2.2.2"},
		{"malformed right after the peer", "10.1.1.1", lines("198.51.100.20, unknown"), "10.1.1.1"},
		{"malformed left of the client is never read", "10.1.1.1", lines("garbage, 198.51.100.20"), "198.51.100.20"},
		{"zone refused", "10.1.1.1", lines("fe80::1%eth0"), "10.1.1.1"},
		{"bad port", "10.1.1.1", lines("198.51.100.20:http"), "10.1.1.1"},
		{"empty port", "10.1.1.1", lines("198.51.100.20:"), "10.1.1.1"},
		{"empty port after IPv6", "10.1.1.1", lines("[2001:db8::7]:"), "10.1.1.1"},
		{"bracket without close", "10.1.1.1", lines("[2001:db8::7"), "10.1.1.1"},
		{"overlong entry", "10.1.1.1", lines(strings.Repeat("1", 500)), "10.1.1.1"},
		{"overlong entry before trusted hop", "10.1.1.1", lines(strings.Repeat("9", 500) + ", 10.2.2.2"), "10.2.2.2"},
		{"too many hops", "10.1.1.1", lines("198.51.100.20" + strings.Repeat(", 10.2.2.2", 40)), "10.2.2.2"},
		{"flood of commas", "10.1.1.1", lines("198.51.100.20" + strings.Repeat(",", 100000)), "10.1.1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policies.ClientIP(netip.MustParseAddr(tt.peer), tt.xff, trusted)
			if got != netip.MustParseAddr(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// A proxy that reaches the gateway over IPv6 link-local comes with the
// zone of the interface it came in on (fe80::1%eth0); it is trusted when
// its address is listed, as server.trustedProxies cannot name a zone.
func TestClientIPTrustsALinkLocalProxy(t *testing.T) {
	trusted := mustTrusted(t, "fe80::/10")
	peer := netip.MustParseAddr("fe80::1%eth0")
	if got := policies.ClientIP(peer, lines("198.51.100.20"), trusted); got != netip.MustParseAddr("198.51.100.20") {
		t.Fatalf("got %v, want the client the link-local proxy named", got)
	}
	if got := policies.ClientIP(peer, lines("unknown"), trusted); got != netip.MustParseAddr("fe80::1") {
		t.Fatalf("garbage after the proxy: got %v, want the proxy, without its zone", got)
	}
	untrusted := netip.MustParseAddr("fe80::1%eth0")
	if got := policies.ClientIP(untrusted, lines("198.51.100.20"), mustTrusted(t, "10.0.0.0/8")); got.WithZone("") != netip.MustParseAddr("fe80::1") {
		t.Fatalf("untrusted link-local peer: got %v", got)
	}
}

func TestClientIPWithoutTrustedProxies(t *testing.T) {
	got := policies.ClientIP(netip.MustParseAddr("10.1.1.1"), lines("1.2.3.4"), nil)
	if got != netip.MustParseAddr("10.1.1.1") {
		t.Fatalf("no trusted proxies: the peer is the client, got %v", got)
	}
}

func TestParseTrusted(t *testing.T) {
	got := mustTrusted(t, "10.0.0.0/8", " 192.168.1.7 ", "2001:db8::/32", "::ffff:172.16.0.0/108", "10.1.2.3/8")
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32", "172.16.0.0/12", "10.0.0.0/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %v, want %s", i, got[i], want[i])
		}
	}
	if p, err := policies.ParseTrusted(nil); err != nil || p != nil {
		t.Fatalf("empty: %v %v", p, err)
	}
	_, err := policies.ParseTrusted([]string{"10.0.0.0/8", "bogus", "10.0.0.0/33", "fe80::1%eth0", "::ffff:0:0/90"})
	if err == nil {
		t.Fatal("bad entries accepted")
	}
	for _, bad := range []string{`"bogus"`, `"10.0.0.0/33"`, `"fe80::1%eth0"`, `"::ffff:0:0/90"`} {
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("error does not name %s: %v", bad, err)
		}
	}
}
