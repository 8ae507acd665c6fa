package clientctx

// Length limits of the optional identifiers.
const (
	maxAppVersionBytes = 32
	maxDeviceIDBytes   = 128
)

// ParseAppVersion reads an X-App-Version value: 1 to 32 bytes of ASCII
// letters, digits and ". _ + -" after trimming spaces. It returns a copy, or
// "" and false when v is empty or invalid.
func ParseAppVersion(v []byte) (string, bool) {
	return parseIdentifier(v, maxAppVersionBytes, '+')
}

// ParseDeviceID reads an X-Device-Id value: 1 to 128 bytes of ASCII letters,
// digits and ". _ : -" after trimming spaces. It returns a copy, or "" and
// false when v is empty or invalid.
func ParseDeviceID(v []byte) (string, bool) {
	return parseIdentifier(v, maxDeviceIDBytes, ':')
}

// parseIdentifier accepts letters, digits, ".", "_", "-" and one extra
// punctuation byte, and copies the value out of the caller's buffer.
func parseIdentifier(v []byte, maxBytes int, extra byte) (string, bool) {
	v = TrimOWS(v)
	if len(v) == 0 || len(v) > maxBytes {
		return "", false
	}
	for _, c := range v {
		if !isLetter(c) && !isDigit(c) && c != '.' && c != '_' && c != '-' && c != extra {
			return "", false
		}
	}
	return string(v), true
}
