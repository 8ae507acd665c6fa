package gateway

import "testing"

// An unset ops or invalidation token matches nothing, an empty one
// included: the HTTP path cannot send an empty Bearer token today (Go's
// server trims "Bearer " to "Bearer"), so only this holds the rule.
func TestEqualSecretUnsetMatchesNothing(t *testing.T) {
	for _, c := range []struct {
		given, want string
		match       bool
	}{
		{"", "", false},
		{"secret", "", false},
		{"secret", "secret", true},
		{"secret", "secreT", false},
		{"", "secret", false},
	} {
		if got := equalSecret(c.given, c.want); got != c.match {
			t.Errorf("equalSecret(%q, %q) = %v, want %v", c.given, c.want, got, c.match)
		}
	}
}
