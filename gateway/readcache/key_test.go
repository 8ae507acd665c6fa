package readcache

import (
	"slices"
	"strings"
	"testing"
)

func TestKeyCraftedInputsDoNotCollide(t *testing.T) {
	pairs := [][2][]string{
		{{"a|b", "c"}, {"a", "b|c"}},
		{{"", "a"}, {"a", ""}},
		{{"a"}, {"a", ""}},
		{{"1:a"}, {"1", "a"}},
		{{"1:a1:b"}, {"a", "b"}},
		{{"2:ab"}, {"ab"}},
		{{"a:", "b"}, {"a", ":b"}},
		{{"10:aaaaaaaaaa"}, {"aaaaaaaaaa"}},
		{{}, {""}},
	}
	for _, p := range pairs {
		if Key(p[0]...) == Key(p[1]...) {
			t.Errorf("Key(%q) == Key(%q) = %q", p[0], p[1], Key(p[0]...))
		}
	}
}

// TestKeyIsInjectiveAndPrefixFaithful tries every list of up to three parts
// over an alphabet of troublesome strings.
func TestKeyIsInjectiveAndPrefixFaithful(t *testing.T) {
	alphabet := []string{"", "a", "1", ":", "1:", "a1:", "0:", "1:a", "|", "a|b", "11:", "é"}
	var lists [][]string
	var gen func(prefix []string)
	gen = func(prefix []string) {
		lists = append(lists, slices.Clone(prefix))
		if len(prefix) == 3 {
			return
		}
		for _, s := range alphabet {
			gen(append(prefix, s))
		}
	}
	gen(nil)
	seen := make(map[string][]string, len(lists))
	for _, l := range lists {
		k := Key(l...)
		if other, dup := seen[k]; dup {
			t.Fatalf("Key(%q) == Key(%q)", l, other)
		}
		seen[k] = l
		if string(AppendKey([]byte("x"), l...)) != "x"+k {
			t.Fatalf("AppendKey and Key disagree for %q", l)
		}
	}
	for _, a := range lists {
		for _, b := range lists {
			isPrefix := len(a) <= len(b) && slices.Equal(a, b[:len(a)])
			if strings.HasPrefix(Key(b...), Key(a...)) != isPrefix {
				t.Fatalf("Key(%q) prefix of Key(%q) = %v, parts prefix = %v", a, b, !isPrefix, isPrefix)
			}
		}
	}
}

// FuzzKey: no two lists of parts, of the same length or not, share a key;
// a key is a prefix of another exactly when its parts are the other's
// first parts; AppendKey appends what Key returns.
func FuzzKey(f *testing.F) {
	f.Add("a|b", "c", "a", "b|c")
	f.Add("1:a", "", "1", "a")
	f.Add("1:a1:b", "", "a", "b")
	f.Add("a", "", "a", "")
	f.Add("2:ab", "x", "ab", "x")
	f.Fuzz(func(t *testing.T, a1, a2, b1, b2 string) {
		a := []string{a1, a2}
		for _, b := range [][]string{{b1}, {b1, b2}, {b1, b2, a2}} {
			if (Key(a...) == Key(b...)) != slices.Equal(a, b) {
				t.Fatalf("Key(%q) vs Key(%q)", a, b)
			}
			if got := string(AppendKey([]byte(a1), b...)); got != a1+Key(b...) {
				t.Fatalf("AppendKey(%q, %q) = %q, Key gives %q", a1, b, got, Key(b...))
			}
			for k := 0; k <= len(a); k++ {
				isPrefix := k <= len(b) && slices.Equal(a[:k], b[:k])
				if strings.HasPrefix(Key(b...), Key(a[:k]...)) != isPrefix {
					t.Fatalf("Key(%q) prefix of Key(%q) = %v, parts prefix = %v", a[:k], b, !isPrefix, isPrefix)
				}
			}
		}
	})
}

// The encoding is the documented one, and stays injective when a length
// takes two digits: without the colon, "2", "aaaaaaaaa", "a" would read as
// one part of twelve bytes.
func TestKeyEncodingWithLongParts(t *testing.T) {
	if got := Key("a|b", "c"); got != "3:a|b1:c" {
		t.Errorf(`Key("a|b", "c") = %q, want "3:a|b1:c"`, got)
	}
	long := strings.Repeat("a", 12)
	if got := Key(long); got != "12:"+long {
		t.Errorf("Key of 12 bytes = %q, want %q", got, "12:"+long)
	}
	a, b := []string{"2", "aaaaaaaaa", "a"}, []string{"9aaaaaaaaa1a"}
	if Key(a...) == Key(b...) {
		t.Errorf("Key(%q) == Key(%q) = %q", a, b, Key(a...))
	}
}
