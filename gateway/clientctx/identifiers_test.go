package clientctx

import (
	"strings"
	"testing"
)

// hostileIdentifiers are rejected by both identifier parsers.
var hostileIdentifiers = []string{
	"../../etc/passwd", "1.2.3/../x", "1.2.3\x00", "1.2.3\r\nX-Evil: 1", "1.2.3\n",
	"\xff\xfe", "1.2.\xc3", "1.2.３", "İ1", "1 2", "1,2", "1;2", "<script>", "a'b", "a\"b",
	"a\\b", "a%00b", "1.2.3\u00a0",
}

func TestParseAppVersion(t *testing.T) {
	valid := map[string]string{
		"1.2.3":                 "1.2.3",
		"4.0.0-beta.1+build.7":  "4.0.0-beta.1+build.7",
		"  2.10.0\t":            "2.10.0",
		"v3":                    "v3",
		"2024_11_RC":            "2024_11_RC",
		"7":                     "7",
		strings.Repeat("9", 32): strings.Repeat("9", 32),
	}
	for in, want := range valid {
		got, ok := ParseAppVersion([]byte(in))
		if !ok || got != want {
			t.Errorf("ParseAppVersion(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	invalid := append([]string{
		"", "   ", strings.Repeat("9", 33), "1.2.3:4", strings.Repeat("1.", 1000),
	}, hostileIdentifiers...)
	for _, in := range invalid {
		if got, ok := ParseAppVersion(bytesOrNil(in)); ok || got != "" {
			t.Errorf("ParseAppVersion(%q) = %q, %v; want dropped", in, got, ok)
		}
	}
}

func TestParseDeviceID(t *testing.T) {
	valid := map[string]string{
		"8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11": "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11",
		"E621E1F8-C36C-495A-93FC-0C247A3E6E5F": "E621E1F8-C36C-495A-93FC-0C247A3E6E5F",
		"9774d56d682e549c":                     "9774d56d682e549c",
		" aa:bb:cc:dd ":                        "aa:bb:cc:dd",
		"web_1.x":                              "web_1.x",
		strings.Repeat("a", 128):               strings.Repeat("a", 128),
	}
	for in, want := range valid {
		got, ok := ParseDeviceID([]byte(in))
		if !ok || got != want {
			t.Errorf("ParseDeviceID(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	invalid := append([]string{
		"", "  ", strings.Repeat("a", 129), "a+b", strings.Repeat("x", 1<<16),
	}, hostileIdentifiers...)
	for _, in := range invalid {
		if got, ok := ParseDeviceID(bytesOrNil(in)); ok || got != "" {
			t.Errorf("ParseDeviceID(%q) = %q, %v; want dropped", in, got, ok)
		}
	}
}

// The returned strings must not share memory with fasthttp's buffers, which
// are reused for the next request.
func TestIdentifiersDoNotAliasInput(t *testing.T) {
	buf := []byte("1.2.3")
	version, _ := ParseAppVersion(buf)
	device, _ := ParseDeviceID(buf)
	copy(buf, "9.9.9")
	if version != "1.2.3" || device != "1.2.3" {
		t.Errorf("results changed with the input buffer: %q %q", version, device)
	}
}
