package refstore

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bffgate/edge/upstream/contract"
)

// Input limits of the store. The gateway validates more strictly at the
// edge; these bound what the store itself will work on.
const (
	// DefaultSearchLimit is the page size when a search names none.
	DefaultSearchLimit = 20
	// MaxUsernameBytes bounds the username a check takes.
	MaxUsernameBytes = 64
	// maxNameBytes bounds first and last names on writes.
	maxNameBytes = 100
)

// ValidationError lists what is wrong with a call's input, field by field.
// The HTTP handler answers it with 400 validation_failed and the problems
// as details.
type ValidationError struct {
	Problems map[string]string
}

func invalid(field, problem string) *ValidationError {
	return &ValidationError{Problems: map[string]string{field: problem}}
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("refstore: invalid input: ")
	for i, field := range slices.Sorted(maps.Keys(e.Problems)) {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s", field, e.Problems[field])
	}
	return b.String()
}

// usernameProblem says what makes name unusable for a check, or "".
func usernameProblem(name string) string {
	switch {
	case name == "":
		return "is required"
	case len(name) > MaxUsernameBytes:
		return fmt.Sprintf("must be at most %d bytes", MaxUsernameBytes)
	case !utf8.ValidString(name):
		return "must be valid UTF-8"
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "must not contain whitespace, control or invisible characters"
		}
	}
	return ""
}

// searchProblems validates a search's q, limit and offset.
func searchProblems(q string, limit, offset int) *ValidationError {
	p := map[string]string{}
	if len(q) > contract.MaxQueryBytes {
		p["q"] = fmt.Sprintf("must be at most %d bytes", contract.MaxQueryBytes)
	} else if !utf8.ValidString(q) {
		p["q"] = "must be valid UTF-8"
	}
	if limit < 1 || limit > maxSearchLimit {
		p["limit"] = fmt.Sprintf("must be an integer from 1 to %d", maxSearchLimit)
	}
	if offset < 0 || offset > contract.MaxSearchOffset {
		p["offset"] = fmt.Sprintf("must be an integer from 0 to %d", contract.MaxSearchOffset)
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}
