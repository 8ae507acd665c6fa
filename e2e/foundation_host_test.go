package e2e

import (
	"net/http"
	"testing"
)

// A Host whose value is not a host (RFC 9112 section 3.2: a server MUST
// answer 400) is refused in the caller's language, its framing being sound,
// and the connection kept. fasthttp builds the request's URI from Host and
// target: a Host it could not parse left the URI without its path, and a
// request for the profile was answered 404, as for a path that does not
// exist; one it read leniently ("evil@x", a second port) was served.
func TestFoundationHostInvalidRefused(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	auth := "Authorization: Bearer " + idp.UserToken(t) + "\r\n"
	me := func(proto, host string) string {
		return "GET /api/v1/users/me " + proto + "\r\nHost: " + host + "\r\n" + auth + "X-Language: tr\r\nConnection: keep-alive\r\n\r\n"
	}
	next := "GET /api/v1/users/nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"

	for _, host := range []string{
		"a b", "x/y", "x?y", "x#y", "evil@x", "x\\y", "a%20b", "ca\xc3\xa7.example", "x y:80",
		"a:b", "x:80:90", "x:-1", "x:80a", "[::1", "[]", "[::1]x", "[::1]:b", "[fe80::1%25en0]", "[::g]",
		// Brackets hold an IPv6 address (RFC 3986 section 3.2.2), or
		// nothing the gateway serves.
		"[1]", "[:]", "[1.2.3.4]", "[1.2.3.4]:80", "[v1.x]",
	} {
		for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
			t.Run(proto+" "+host, func(t *testing.T) {
				k := gw.KeepAlive(t)
				fndOnly(t, k.Send(t, me(proto, host)), http.StatusBadRequest, "Doğrulama başarısız oldu", "Host başlığı geçerli değil")
				if r := k.Send(t, next); r.Status != http.StatusNotFound {
					t.Fatalf("the next request on the connection: %d, want 404", r.Status)
				}
			})
		}
	}

	// The absolute form names its host in the target, which RFC 9112
	// section 3.2.2 has a server go by instead of Host: an authority that
	// is not a host is refused as such a Host is (fasthttp read no path
	// out of one it could not parse: a 404; it dropped the "evil@").
	absolute := func(authority string) string {
		return "GET http://" + authority + "/api/v1/users/me HTTP/1.1\r\nHost: gw\r\n" + auth + "X-Language: tr\r\n\r\n"
	}
	for _, authority := range []string{
		"", ":80", "x:abc", "evil@gw", "a%20b", "ca\xc3\xa7.example", "x:80:90", "x:-1", "[::1", "[]", "[::1]x", "[::1]:b", "[::g]",
		"[1]", "[:]", "[1.2.3.4]", "[1.2.3.4]:80",
	} {
		t.Run("absolute-form "+authority, func(t *testing.T) {
			k := gw.KeepAlive(t)
			fndOnly(t, k.Send(t, absolute(authority)), http.StatusBadRequest, "Doğrulama başarısız oldu", "Host başlığı geçerli değil")
			if r := k.Send(t, next); r.Status != http.StatusNotFound {
				t.Fatalf("the next request on the connection: %d, want 404", r.Status)
			}
		})
	}
	// An absolute URI of another scheme than http or https names nothing
	// the gateway serves (fasthttp took its path: the profile was served).
	for _, scheme := range []string{"x", "ftp", "FTP", "ws"} {
		t.Run("scheme "+scheme, func(t *testing.T) {
			k := gw.KeepAlive(t)
			raw := "GET " + scheme + "://gw/api/v1/users/me HTTP/1.1\r\nHost: gw\r\n" + auth + "X-Language: tr\r\n\r\n"
			fndOnly(t, k.Send(t, raw), http.StatusBadRequest, "Doğrulama başarısız oldu", "URL şeması http veya https olmalıdır")
			if r := k.Send(t, next); r.Status != http.StatusNotFound {
				t.Fatalf("the next request on the connection: %d, want 404", r.Status)
			}
		})
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("requests with an invalid Host or scheme reached the store %d times", n)
	}

	// Any host name, IPv4 or bracketed IPv6 address, with or without a
	// port, is served; so is an empty Host, which the RFC allows, and one
	// with an HTAB around it (fasthttp kept it in the host, which it then
	// failed to parse: a 404).
	for _, host := range []string{
		"gw", "GW.Example.COM", "api.example.com:443", "127.0.0.1:8080", "[::1]:8080", "[2001:DB8::1]",
		"[::ffff:192.0.2.1]", "[::]:80", "[1:2:3:4:5:6:7:8]", "x:", "xn--caf-dma.example", "a_b.local", "a-b~c!$&'()*+,;=", " gw\t", "",
	} {
		t.Run("served "+host, func(t *testing.T) {
			k := gw.KeepAlive(t)
			if r := k.Send(t, me("HTTP/1.1", host)); r.Status != http.StatusOK {
				t.Fatalf("Host %q: %d, want 200: %s", host, r.Status, r.Body)
			}
			if host == "" || host[0] == ' ' {
				return // no authority in a target
			}
			if r := k.Send(t, absolute(host)); r.Status != http.StatusOK {
				t.Fatalf("absolute-form %q: %d, want 200: %s", host, r.Status, r.Body)
			}
		})
	}
}

// A target that starts with "//" is a path whose first segment is empty,
// no route's (RFC 9112 section 3.2.1: origin-form is an absolute path).
// fasthttp read it as a network-path reference when the request named no
// host (HTTP/1.0 without Host, an empty Host), and whatever the Host when
// "://" was anywhere in the target: "//x/api/v1/users/me" was served as
// the profile, and "//x/api/admin/..." as the admin search, past any rule
// of a proxy in front that matches on paths starting /api/admin.
func TestFoundationHostlessDoubleSlashTargetIsNoRoute(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	user := "Authorization: Bearer " + idp.UserToken(t) + "\r\n"
	admin := "Authorization: Bearer " + idp.AdminToken(t) + "\r\nX-Platform: admin\r\n"
	next := "GET /api/v1/users/nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"

	for _, c := range []struct{ name, raw string }{
		{"HTTP/1.0 without Host", "GET //x/api/v1/users/me HTTP/1.0\r\nConnection: keep-alive\r\n" + user + "\r\n"},
		{"HTTP/1.1 with an empty Host", "GET //x/api/v1/users/me HTTP/1.1\r\nHost:\r\n" + user + "\r\n"},
		{"HTTP/1.1 with a Host", "GET //x/api/v1/users/me HTTP/1.1\r\nHost: gw\r\n" + user + "\r\n"},
		// fasthttp also reads a host out of the target when "://" is
		// anywhere in it (a URL in the query), whatever the Host.
		{"a URL in the query", "GET //x/api/v1/users/me?next=https://y HTTP/1.1\r\nHost: gw\r\n" + user + "\r\n"},
		{"the admin search, a URL in the query", "GET //x/api/admin/v1/users/search?query=a&next=https://y HTTP/1.1\r\nHost: gw\r\n" + admin + "\r\n"},
		{"an empty authority", "GET ///api/v1/users/me HTTP/1.1\r\nHost:\r\n" + user + "\r\n"},
		{"the admin search", "GET //x/api/admin/v1/users/search?query=a HTTP/1.0\r\nConnection: keep-alive\r\n" + admin + "\r\n"},
		{"a preflight", "OPTIONS //x/api/v1/users/me HTTP/1.0\r\nConnection: keep-alive\r\nOrigin: https://app.example.com\r\n" +
			"Access-Control-Request-Method: GET\r\n\r\n"},
		{"an unknown method", "BREW //x/api/v1/users/me HTTP/1.0\r\nConnection: keep-alive\r\n" + user + "\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := gw.KeepAlive(t)
			r := k.Send(t, c.raw)
			if r.Status != http.StatusNotFound || r.Header.Get("Allow") != "" {
				t.Fatalf("%d (Allow %q), want 404 without Allow: %s", r.Status, r.Header.Get("Allow"), r.Body)
			}
			fndOnly(t, r, http.StatusNotFound, "Resource not found")
			if r := k.Send(t, next); r.Status != http.StatusNotFound {
				t.Fatalf("the next request on the connection: %d, want 404", r.Status)
			}
		})
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("\"//\" targets reached the store %d times", n)
	}

	// The absolute form still names its host, with or without Host.
	for _, raw := range []string{
		"GET http://gw/api/v1/users/me HTTP/1.0\r\nConnection: keep-alive\r\n" + user + "\r\n",
		"GET http://gw/api/v1/users/me HTTP/1.1\r\nHost:\r\n" + user + "\r\n",
		"GET /api/v1/users/me HTTP/1.0\r\nConnection: keep-alive\r\n" + user + "\r\n",
	} {
		if r := gw.KeepAlive(t).Send(t, raw); r.Status != http.StatusOK {
			t.Fatalf("%q: %d, want 200: %s", raw[:40], r.Status, r.Body)
		}
	}
}
