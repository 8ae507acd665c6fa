package config_test

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/bffgate/edge/config"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]config.ByteSize{
		"4096":       4096,
		"0":          0,
		"64KiB":      64 << 10,
		"1MiB":       1 << 20,
		"2GiB":       2 << 30,
		"512kb":      512 << 10,
		"512KB":      512 << 10,
		"3mb":        3 << 20,
		"1g":         1 << 30,
		"8k":         8 << 10,
		"10B":        10,
		" 1 MiB ":    1 << 20,
		"+5":         5,
		"1048576GiB": 1 << 50, // the largest size accepted
	} {
		got, err := config.ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestParseByteSizeRejects(t *testing.T) {
	for _, in := range []string{
		"", " ", "KiB", "-1", "-1KiB", "1.5MiB", "1e6", "0x100", "lots", "12 parsecs",
		"5TiB", "1KiB5", "1048577GiB", "1125899906842625",
		"9223372036854775807", "99999999999999999999", "9223372036854775807KiB",
	} {
		if got, err := config.ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "invalid size") {
			t.Errorf("ParseByteSize(%q) error %q does not say what is wrong", in, err)
		}
	}
}

func TestByteSizeStringRoundTrips(t *testing.T) {
	for b, want := range map[config.ByteSize]string{
		0:                "0",
		1:                "1",
		1023:             "1023",
		1024:             "1KiB",
		1536:             "1536",
		16 << 10:         "16KiB",
		1 << 20:          "1MiB",
		(1 << 20) + 1:    "1048577",
		3 << 30:          "3GiB",
		(1 << 30) + 1024: "1048577KiB",
		1 << 50:          "1048576GiB",
	} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(b), got, want)
		}
		back, err := config.ParseByteSize(b.String())
		if err != nil || back != b {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", b.String(), back, err, int64(b))
		}
	}
}

func TestByteSizeYAMLRoundTrip(t *testing.T) {
	type limits struct {
		Body   config.ByteSize `yaml:"body"`
		Header config.ByteSize `yaml:"header"`
	}
	in := limits{Body: 64 << 20, Header: 1000}
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	// A size without a unit is written as a string; reading it back
	// accepts both.
	if got, want := string(out), "body: 64MiB\nheader: \"1000\"\n"; got != want {
		t.Errorf("Marshal = %q, want %q", got, want)
	}
	var back limits
	if err := yaml.Unmarshal(out, &back); err != nil || back != in {
		t.Errorf("Unmarshal(%q) = %+v, %v; want %+v", out, back, err, in)
	}
}

// A bad size must not stop yaml from reporting the other mistakes in the
// same document (any error other than a TypeError would).
func TestByteSizeYAMLErrorsAreTypeErrors(t *testing.T) {
	var v struct {
		Size  config.ByteSize `yaml:"size"`
		List  config.ByteSize `yaml:"list"`
		Count int             `yaml:"count"`
	}
	err := yaml.Unmarshal([]byte("size: huge\nlist: [1]\ncount: many\n"), &v)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		t.Fatalf("got %T %v, want a *yaml.TypeError", err, err)
	}
	if len(te.Errors) != 3 ||
		!strings.HasPrefix(te.Errors[0], `line 1: invalid size "huge"`) ||
		!strings.HasPrefix(te.Errors[1], "line 2: a size must be") ||
		!strings.HasPrefix(te.Errors[2], "line 3: cannot unmarshal") {
		t.Errorf("errors = %q", te.Errors)
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"4096", "64KiB", "1MiB", "2GiB", "512kb", "-1", "1e3", "b", " 7 k ", "1048576GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := config.ParseByteSize(s)
		if err != nil {
			return
		}
		if b < 0 || b > 1<<50 {
			t.Fatalf("ParseByteSize(%q) = %d, outside 0..1PiB", s, int64(b))
		}
		if back, err := config.ParseByteSize(b.String()); err != nil || back != b {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", s, int64(b), b.String(), int64(back), err)
		}
	})
}
