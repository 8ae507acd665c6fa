package clientctx

// Length limits of the optional identifiers.
const (
	maxAppVersionBytes = 32
	maxDeviceIDBytes   = 128
)

// ParseAppVersion reads an X-App-Version value: 1 to 32 bytes of ASCII
// letters, digits and ". _ + -" after trimming spaces. It returns a copy, or
// "" and false when v is empty or invalid.
func ParseAppVersion(v []byte) (string, bool) { return new(Memo).appVersionOf(v) }

// ParseDeviceID reads an X-Device-Id value: 1 to 128 bytes of ASCII letters,
// digits and ". _ : -" after trimming spaces. It returns a copy, or "" and
// false when v is empty or invalid.
func ParseDeviceID(v []byte) (string, bool) { return new(Memo).deviceIDOf(v) }

// Memo remembers the app version and device id last accepted on one client
// connection. An app sends the same ones with every request on its
// connection: a request whose trimmed value holds the same bytes gets the
// remembered string instead of a new copy (one comparison, no allocation).
// It holds only copies, never a request's bytes, so what a request keeps
// of them may outlive the request. A Memo belongs to one connection, whose
// requests use it one at a time; it holds at most the 160 bytes of two
// valid values, freed with the connection. The zero Memo is empty.
type Memo struct {
	appVersion, deviceID string
}

// appVersionOf is ParseAppVersion through the memo.
func (m *Memo) appVersionOf(v []byte) (string, bool) {
	return parseIdentifier(v, maxAppVersionBytes, '+', &m.appVersion)
}

// deviceIDOf is ParseDeviceID through the memo.
func (m *Memo) deviceIDOf(v []byte) (string, bool) {
	return parseIdentifier(v, maxDeviceIDBytes, ':', &m.deviceID)
}

// parseIdentifier accepts letters, digits, ".", "_", "-" and one extra
// punctuation byte. A value with the bytes of *last (only ever a value
// accepted before) is *last; any other valid value is copied out of the
// caller's buffer and becomes *last.
func parseIdentifier(v []byte, maxBytes int, extra byte, last *string) (string, bool) {
	v = TrimOWS(v)
	if len(v) == 0 || len(v) > maxBytes {
		return "", false
	}
	if string(v) == *last {
		return *last, true
	}
	for _, c := range v {
		if !isLetter(c) && !isDigit(c) && c != '.' && c != '_' && c != '-' && c != extra {
			return "", false
		}
	}
	*last = string(v)
	return *last, true
}
