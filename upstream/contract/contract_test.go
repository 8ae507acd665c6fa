package contract

import "testing"

func TestIsUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11":   true,
		"8D7C6F0E-3B0A-4C1E-9A59-3F1F1C2B7D11":   true,
		"00000000-0000-0000-0000-000000000000":   true,
		"":                                       false,
		"8d7c6f0e3b0a4c1e9a593f1f1c2b7d11":       false,
		"8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d1":    false,
		"8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d111":  false,
		"8d7c6f0e_3b0a-4c1e-9a59-3f1f1c2b7d11":   false,
		"8d7c6f0g-3b0a-4c1e-9a59-3f1f1c2b7d11":   false,
		"{8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11}": false,
		"8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d1 ":   false,
		"../../../../etc/passwd/aaaaaaaaaaaaaa":  false,
		"8d7c6f0e-3b0a-4c1e-9a5٩-3f1f1c2b7d11":   false, // an Arabic-Indic digit
	} {
		if got := IsUUID(s); got != want {
			t.Errorf("IsUUID(%q) = %v, want %v", s, got, want)
		}
	}
}
