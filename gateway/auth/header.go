package auth

import (
	"bytes"
	"errors"

	"github.com/bffgate/edge/gateway/clientctx"
)

// The Authorization header is checked here, byte by byte and without
// allocating, so that junk is refused before any decoding or crypto.

var (
	errNoToken     = reject("no bearer token")
	errManyHeaders = reject("more than one Authorization header")
	errTooLong     = reject("Authorization header too long")
	errScheme      = reject("authorization scheme is not Bearer")
	errShape       = reject("token is not a compact JWS")
)

// bearerToken returns the token inside the Authorization header values: the
// value must be "Bearer <jwt>" (scheme in any case, then one or more spaces)
// or the bare "<jwt>", because the apps' documentation tells users to paste
// the token without the prefix. The returned slice aliases the caller's
// bytes.
//
// The checks here are the cheap structural ones (header count, length,
// scheme); tokenShape does the rest (no space, three non-empty
// dot-separated segments), all with vectorised byte searches. The
// byte-by-byte alphabet check (compactJWS) runs only when the token is not
// in the cache, and tokenShape only when it is not the connection's memo:
// either means these exact bytes passed them before.
func (v *Verifier) bearerToken(values [][]byte) ([]byte, error) {
	switch {
	case len(values) == 0:
		return nil, errNoToken
	case len(values) > 1:
		// Two headers may disagree; which one a proxy or app honours differs,
		// so neither is trusted.
		return nil, errManyHeaders
	}
	h := values[0]
	if len(h) > v.cfg.maxTokenBytes {
		return nil, errTooLong
	}
	h = clientctx.TrimOWS(h)
	if len(h) == 0 || isBearer(h) { // nothing, or the scheme alone
		return nil, errNoToken
	}
	token := h
	if i := bytes.IndexByte(h, ' '); i >= 0 {
		if !isBearer(h[:i]) {
			return nil, errScheme
		}
		token = h[i:]
		for len(token) > 0 && token[0] == ' ' {
			token = token[1:]
		}
		if len(token) == 0 {
			return nil, errNoToken
		}
	}
	return token, nil
}

// TokenRefused reports whether err, a refusal of the Authorization header
// (it wraps ErrUnauthenticated), is about a bearer token the request
// carried: malformed, expired, for another audience, or signed by a key not
// in the set. It is false when there was no token (no header, an empty
// one, the scheme alone, or credentials of another scheme) and when the
// request itself is malformed (RequestMalformed). RFC 6750 section 3.1
// tells these apart in the challenge: a refused token is
// error="invalid_token", and a request without one gets no error code (a
// client that did not know it had to authenticate).
func TokenRefused(err error) bool {
	return errors.Is(err, ErrUnauthenticated) && !errors.Is(err, errNoToken) && !errors.Is(err, errScheme) &&
		!RequestMalformed(err)
}

// RequestMalformed reports whether err refuses the request's form rather
// than a token: more than one Authorization header, which RFC 9110 allows
// only for list fields, and which RFC 6750 section 3.1 answers with 400
// error="invalid_request".
func RequestMalformed(err error) bool { return errors.Is(err, errManyHeaders) }

// tokenShape refuses a token with a space inside or without exactly three
// non-empty dot-separated segments.
func tokenShape(token []byte) error {
	if bytes.IndexByte(token, ' ') >= 0 {
		return errShape
	}
	if bytes.Count(token, dot) != 2 || token[0] == '.' || token[len(token)-1] == '.' ||
		bytes.Contains(token, twoDots) {
		return errShape
	}
	return nil
}

var (
	dot     = []byte{'.'}
	twoDots = []byte("..")
)

// compactJWS reports whether token has the shape of a compact JWS: three
// non-empty segments of unpadded base64url separated by two dots. Any space,
// tab or other byte inside fails it.
func compactJWS(token []byte) bool {
	dots, segment := 0, 0
	for _, c := range token {
		switch {
		case c == '.':
			if segment == 0 {
				return false
			}
			dots++
			segment = 0
		case base64URL[c]:
			segment++
		default:
			return false
		}
	}
	return dots == 2 && segment > 0
}

var base64URL = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()

func isBearer(scheme []byte) bool {
	const want = "bearer"
	if len(scheme) != len(want) {
		return false
	}
	for i, c := range scheme {
		if c|0x20 != want[i] { // ASCII lower-casing; want has letters only
			return false
		}
	}
	return true
}
