package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bffgate/edge/upstream/contract"
)

// Response checks. A 200 body is accepted only when it decodes into the
// contract's types and says what was asked: required fields present, no
// null where an object is required, no trailing data, ids that match the
// request, no more items than asked for. encoding/json already rejects
// truncated JSON, trailing garbage and floats where integers belong; these
// functions check the rest. Their errors may quote the body, so they only
// ever travel as an Error's cause.

func decodeUsernameCheck(body []byte, asked string) (bool, error) {
	if name, available, ok := plainUsernameCheck(body); ok {
		// The common answer, compact JSON with a plain ASCII name: the
		// same checks without a decoder. The echo is compared as the
		// body's bytes; only a name that differs is made a string, to
		// fold.
		if string(name) != asked && contract.Fold(string(name)) != contract.Fold(asked) {
			return false, errors.New("username check answered for another username")
		}
		return available, nil
	}
	return strictUsernameCheck(body, asked)
}

// strictUsernameCheck is the path of every answer plainUsernameCheck
// leaves: encoding/json and the checks.
func strictUsernameCheck(body []byte, asked string) (bool, error) {
	var w struct {
		Username  *string `json:"username"`
		Available *bool   `json:"available"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return false, err
	}
	if w.Username == nil || w.Available == nil {
		return false, errors.New("username check: username and available are required")
	}
	// The store compares usernames folded (case and diacritics); it may
	// echo the name in its own spelling, but it must be the one asked.
	if *w.Username != asked && contract.Fold(*w.Username) != contract.Fold(asked) {
		return false, errors.New("username check answered for another username")
	}
	return *w.Available, nil
}

// plainUsernameCheck reads exactly {"username":"<printable ASCII, no
// escapes>","available":true|false} and an optional trailing newline, as
// an encoding/json encoder writes it. Anything else is left to the decoder.
// name is body's bytes, not a copy.
func plainUsernameCheck(body []byte) (name []byte, available, ok bool) {
	const head, mid = `{"username":"`, `","available":`
	if !bytes.HasPrefix(body, []byte(head)) {
		return nil, false, false
	}
	rest := body[len(head):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, false, false
	}
	for _, b := range rest[:end] {
		if b < 0x20 || b > 0x7e || b == '\\' {
			return nil, false, false
		}
	}
	tail := rest[end:]
	if !bytes.HasPrefix(tail, []byte(mid)) {
		return nil, false, false
	}
	switch string(bytes.TrimRight(tail[len(mid):], "\n")) {
	case "true}":
		available = true
	case "false}":
	default:
		return nil, false, false
	}
	return rest[:end], available, true
}

func decodeSearch(body []byte, limit int) (*contract.SearchResponse, error) {
	var w struct {
		Items []contract.User `json:"items"`
		Total *int            `json:"total"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	switch {
	case w.Items == nil:
		return nil, errors.New("search: items is required and must be an array")
	case w.Total == nil:
		return nil, errors.New("search: total is required")
	case len(w.Items) > limit:
		return nil, fmt.Errorf("search: %d items for a limit of %d", len(w.Items), limit)
	case *w.Total < len(w.Items):
		return nil, fmt.Errorf("search: total %d is less than the %d items", *w.Total, len(w.Items))
	}
	for i := range w.Items {
		if err := checkUser(&w.Items[i]); err != nil {
			return nil, fmt.Errorf("search: item %d: %w", i, err)
		}
	}
	return &contract.SearchResponse{Items: w.Items, Total: *w.Total}, nil
}

func decodeUser(body []byte, id string) (*contract.User, error) {
	var u contract.User
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, err
	}
	if err := checkUser(&u); err != nil {
		return nil, err
	}
	if !strings.EqualFold(u.ID, id) {
		return nil, errors.New("user: the store answered with another user's id")
	}
	return &u, nil
}

// decodeLiveStreams accepts at most one stream per asked user. asked maps
// lower-cased user ids (the store compares them ignoring case).
func decodeLiveStreams(body []byte, asked map[string]bool) ([]contract.LiveStream, error) {
	var w struct {
		Items []contract.LiveStream `json:"items"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	if w.Items == nil {
		return nil, errors.New("live streams: items is required and must be an array")
	}
	if len(w.Items) > len(asked) {
		return nil, fmt.Errorf("live streams: %d items for %d users", len(w.Items), len(asked))
	}
	seen := make(map[string]bool, len(w.Items))
	for i := range w.Items {
		ls := &w.Items[i]
		key := strings.ToLower(ls.UserID)
		switch {
		case ls.ID == "" || ls.UserID == "":
			return nil, fmt.Errorf("live streams: item %d: id and userId are required", i)
		case !asked[key]:
			return nil, fmt.Errorf("live streams: item %d is for a user that was not asked for", i)
		case seen[key]:
			return nil, fmt.Errorf("live streams: item %d: a second stream for one user", i)
		case ls.ViewerCount < 0:
			return nil, fmt.Errorf("live streams: item %d: negative viewerCount", i)
		}
		if err := canonicalTime("startedAt", &ls.StartedAt); err != nil {
			return nil, fmt.Errorf("live streams: item %d: %w", i, err)
		}
		seen[key] = true
	}
	return w.Items, nil
}

// checkUser checks what the gateway relies on: an id and username, and a
// minute price in integer minor units of a three-letter currency. A null
// in place of a user decodes to the zero User and fails here. Its times
// are put in the apps' form (canonicalTime).
func checkUser(u *contract.User) error {
	switch {
	case u.ID == "" || u.Username == "":
		return errors.New("user: id and username are required")
	case u.MinutePrice.AmountMinor < 0:
		return errors.New("user: negative minutePrice")
	case !isCurrency(u.MinutePrice.Currency):
		return errors.New("user: minutePrice.currency must be a three-letter code")
	}
	if err := canonicalTime("createdAt", &u.CreatedAt); err != nil {
		return fmt.Errorf("user: %w", err)
	}
	if err := canonicalTime("updatedAt", &u.UpdatedAt); err != nil {
		return fmt.Errorf("user: %w", err)
	}
	return nil
}

// apiTime is the one form of a time the apps get (docs/api.md): UTC,
// milliseconds, Z; the contract's own example uses it too.
const apiTime = "2006-01-02T15:04:05.000Z"

// canonicalTime puts a time the store sent in the apps' form: any RFC 3339
// time is accepted (another offset, no fraction, nanoseconds) and given as
// the same instant in UTC, to the millisecond (one whose UTC year is not
// 0000 to 9999 has no such form and is refused, and so is a leap second,
// :60, which time.Parse does not read). What RFC 3339 does not allow is
// refused, though time.Parse reads it (isRFC3339). The contract requires every
// time it names, and the apps are promised a time in each: an absent one
// (or null, or "") is a broken answer, as is one that is not a time, like
// any other field of the wrong type.
func canonicalTime(field string, s *string) error {
	if *s == "" {
		return fmt.Errorf("%s is required", field)
	}
	v := *s
	if len(v) > 10 && (v[10] == 't' || v[len(v)-1] == 'z') {
		// RFC 3339 (section 5.6) allows "t" and "z" in lower case;
		// time.Parse takes them in upper case only.
		b := []byte(v)
		if b[10] == 't' {
			b[10] = 'T'
		}
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		v = string(b)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || !isRFC3339(v) {
		return fmt.Errorf("%s is not an RFC 3339 time", field)
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		// "0000-01-01T00:00:00+01:00" is year -1 in UTC: apiTime has no
		// four-digit year for it.
		return fmt.Errorf("%s is out of the range of an RFC 3339 time in UTC", field)
	}
	if len(*s) == len(apiTime) && (*s)[10] == 'T' && (*s)[19] == '.' && (*s)[23] == 'Z' {
		return nil // parsed, and of that shape: already in the apps' form
	}
	*s = t.UTC().Format(apiTime)
	return nil
}

// isRFC3339 reports whether v, which time.Parse(time.RFC3339Nano) has
// read, is an RFC 3339 time (section 5.6). When its strict reading fails,
// time.Parse reads by the layout, which also takes a comma before the
// fraction, a one-digit hour, and an offset of 24 hours or of 60 minutes
// (go.dev/issue/54580); RFC 3339 has none of these.
func isRFC3339(v string) bool {
	// Parsed, v is at least "2006-01-02T1:04:05Z" long, and at least one
	// byte longer when v[13] is the colon after a two-digit hour.
	if v[13] != ':' || v[19] == ',' {
		return false
	}
	if v[len(v)-1] == 'Z' {
		return true
	}
	offset := v[len(v)-len("+07:00"):]
	return offset[1:3] <= "23" && offset[4:] <= "59"
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
