package clientctx

import (
	"strings"
	"testing"
)

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in       string
		want     Platform
		rejected bool
	}{
		{"", PlatformWeb, false},
		{"  \t", PlatformWeb, false},
		{"web", PlatformWeb, false},
		{"WEB", PlatformWeb, false},
		{"browser", PlatformWeb, false},
		{"mobile_ios", PlatformIOS, false},
		{"mobile-ios", PlatformIOS, false},
		{"Mobile-IOS", PlatformIOS, false},
		{"ios", PlatformIOS, false},
		{"iOS", PlatformIOS, false},
		{"iphone", PlatformIOS, false},
		{"iPad", PlatformIOS, false},
		{"iPadOS", PlatformIOS, false},
		{"mobile_android", PlatformAndroid, false},
		{"MOBILE-ANDROID", PlatformAndroid, false},
		{"Android", PlatformAndroid, false},
		{"admin", PlatformAdmin, false},
		{" Admin ", PlatformAdmin, false},
		{"\tadmin", PlatformAdmin, false},
		{"administrator", PlatformUnknown, true},
		{"api", PlatformAPI, false},
		{"unknown", PlatformUnknown, false},
		{"all", PlatformUnknown, true},
		{"ALL", PlatformUnknown, true},
		{"desktop", PlatformUnknown, true},
		{"mobile", PlatformUnknown, true},
		{"mobile ios", PlatformUnknown, true},
		{"mobile__ios", PlatformUnknown, true},
		{"webx", PlatformUnknown, true},
		{"adm", PlatformUnknown, true},
		// Hostile values.
		{"../../etc/passwd", PlatformUnknown, true},
		{"admin\x00", PlatformUnknown, true},
		{"web\r\nX-Evil: 1", PlatformUnknown, true},
		{"\xff\xfe", PlatformUnknown, true},
		{"admİn", PlatformUnknown, true},
		{"ａｄｍｉｎ", PlatformUnknown, true},
		{strings.Repeat("admin", 1000), PlatformUnknown, true},
		{"web" + strings.Repeat(" ", 100) + "x", PlatformUnknown, true},
	}
	for _, tt := range tests {
		if got := ParsePlatform(bytesOrNil(tt.in)); got != tt.want {
			t.Errorf("ParsePlatform(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if _, rejected := parsePlatform(bytesOrNil(tt.in)); rejected != tt.rejected {
			t.Errorf("parsePlatform(%q) rejected = %v, want %v", tt.in, rejected, tt.rejected)
		}
	}
}

// seedPlatforms is the seed's list of platforms, less "all", which is a
// policy target.
var seedPlatforms = []string{"web", "mobile_ios", "mobile_android", "admin", "api", "unknown"}

func TestSeedPlatformsRoundTrip(t *testing.T) {
	for _, name := range seedPlatforms {
		p := ParsePlatform([]byte(name))
		if p.String() != name {
			t.Errorf("%q read back as %q", name, p)
		}
		q, ok := ParsePlatformName(name)
		if !ok || q != p {
			t.Errorf("ParsePlatformName(%q) = %v, %v; want %v", name, q, ok, p)
		}
	}
	// The constants are contiguous and each has its own name.
	seen := map[string]bool{}
	for p := PlatformWeb; p <= PlatformUnknown; p++ {
		if seen[p.String()] {
			t.Errorf("%q named twice", p)
		}
		seen[p.String()] = true
	}
	if len(seen) != len(seedPlatforms) {
		t.Errorf("%d platforms, the seed has %d", len(seen), len(seedPlatforms))
	}
	if Platform(0) != PlatformWeb {
		t.Error("the zero Platform must be the default, web")
	}
	if Platform(200).String() != "unknown" {
		t.Errorf("out-of-range platform is %q", Platform(200))
	}
}

func TestParsePlatformName(t *testing.T) {
	for _, bad := range []string{"", "all", "Web", "ios", "android", "mobile-ios", " web", "browser"} {
		if p, ok := ParsePlatformName(bad); ok {
			t.Errorf("ParsePlatformName(%q) = %v, true; config names are exact", bad, p)
		}
	}
}
