package clientctx

// Platform is the kind of client a request comes from, as the client claims.
type Platform uint8

// The platforms, contiguous from PlatformWeb to PlatformUnknown. The zero
// value is the default, web.
const (
	PlatformWeb Platform = iota
	PlatformIOS
	PlatformAndroid
	PlatformAdmin
	PlatformAPI
	PlatformUnknown
)

var platformNames = [...]string{
	PlatformWeb:     "web",
	PlatformIOS:     "mobile_ios",
	PlatformAndroid: "mobile_android",
	PlatformAdmin:   "admin",
	PlatformAPI:     "api",
	PlatformUnknown: "unknown",
}

// String gives the seed's value, e.g. "mobile_ios"; "unknown" for a value
// outside the constants.
func (p Platform) String() string {
	if int(p) < len(platformNames) {
		return platformNames[p]
	}
	return "unknown"
}

// ParsePlatformName reads a platform name as configuration writes it: exactly
// one of the six seed values, no aliases. "all" is a policy target, not a
// platform, so it is not accepted here.
func ParsePlatformName(s string) (Platform, bool) {
	for p, name := range platformNames {
		if s == name {
			return Platform(p), true
		}
	}
	return PlatformUnknown, false
}

// ParsePlatform reads an X-Platform value: web when absent or empty, the
// matching platform for a seed value or alias, unknown otherwise.
func ParsePlatform(v []byte) Platform {
	p, _ := parsePlatform(v)
	return p
}

// maxPlatformBytes bounds the value matched; the longest name is 14 bytes.
const maxPlatformBytes = 16

// parsePlatform is ParsePlatform that also reports whether a non-empty value
// was rejected (anything that is neither a platform nor "unknown").
func parsePlatform(v []byte) (p Platform, rejected bool) {
	v = TrimOWS(v)
	if len(v) == 0 {
		return PlatformWeb, false
	}
	if len(v) > maxPlatformBytes {
		return PlatformUnknown, true
	}
	var buf [maxPlatformBytes]byte
	for i, c := range v {
		if c == '-' {
			c = '_'
		}
		buf[i] = toLowerASCII(c)
	}
	switch string(buf[:len(v)]) {
	case "web", "browser":
		return PlatformWeb, false
	case "mobile_ios", "ios", "iphone", "ipad", "ipados":
		return PlatformIOS, false
	case "mobile_android", "android":
		return PlatformAndroid, false
	case "admin":
		return PlatformAdmin, false
	case "api":
		return PlatformAPI, false
	case "unknown":
		return PlatformUnknown, false
	}
	return PlatformUnknown, true
}
