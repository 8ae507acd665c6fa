package refstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bffgate/edge/upstream/contract"
)

func (h *Handler) handleUsernameCheck() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		username, verr := decodeUsernameCheck(w, r)
		if verr != nil {
			writeValidation(w, verr)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		defer cancel()
		available, err := h.store.CheckUsername(ctx, username)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, contract.UsernameCheckResponse{Username: username, Available: available})
	})
}

// decodeUsernameCheck reads {"username": "..."} strictly: JSON content
// type, at most maxBodyBytes, exactly one key spelled exactly "username"
// (encoding/json alone would accept "USERNAME" and duplicates) holding a
// string of valid UTF-8, nothing after the object.
func decodeUsernameCheck(w http.ResponseWriter, r *http.Request) (string, *ValidationError) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return "", invalid("Content-Type", "must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	bodyProblem := func(err error) *ValidationError {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return invalid("body", fmt.Sprintf("must be at most %d bytes", maxBodyBytes))
		}
		return invalid("body", "must be a JSON object like {\"username\": \"...\"}")
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", bodyProblem(err)
	}
	var username *string
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", bodyProblem(err)
		}
		if key != "username" {
			return "", invalid("body", fmt.Sprintf("unknown field %q", truncate(fmt.Sprint(key), 64)))
		}
		if username != nil {
			return "", invalid("body", `"username" must appear once`)
		}
		// The value is read raw first: decoding replaces invalid UTF-8
		// with U+FFFD, which would check a username nobody sent.
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", bodyProblem(err)
		}
		if !utf8.Valid(raw) || escapesLoneSurrogate(raw) {
			return "", invalid("username", "must be valid UTF-8")
		}
		var val any
		if err := json.Unmarshal(raw, &val); err != nil {
			return "", bodyProblem(err)
		}
		s, ok := val.(string)
		if !ok {
			if val == nil {
				return "", invalid("username", "is required")
			}
			return "", invalid("username", "must be a string")
		}
		username = &s
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return "", bodyProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("trailing data")
		}
		return "", bodyProblem(err)
	}
	if username == nil {
		return "", invalid("username", "is required")
	}
	if p := usernameProblem(*username); p != "" {
		return "", invalid("username", p)
	}
	return *username, nil
}

// escapesLoneSurrogate reports whether the JSON value raw holds a \u
// escape of a UTF-16 surrogate that is not half of a pair: no UTF-8 text
// holds one, and encoding/json decodes it to U+FFFD. raw is valid JSON.
func escapesLoneSurrogate(raw []byte) bool {
	hex := func(i int) rune { // the code unit of the \u escape at raw[i]
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return -1
		}
		n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		if err != nil {
			return -1
		}
		return rune(n)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r := hex(i)
		switch {
		case r < 0: // another escape: skip the escaped character
			i++
		case 0xd800 <= r && r < 0xdc00: // high: a low one must follow
			if lo := hex(i + 6); lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 11
		case 0xdc00 <= r && r <= 0xdfff: // low without a high one before it
			return true
		default:
			i += 5
		}
	}
	return false
}

func (h *Handler) handleSearch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, limit, offset, verr := searchParams(r.URL.RawQuery)
		if verr != nil {
			writeValidation(w, verr)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		defer cancel()
		resp, err := h.store.Search(ctx, q, limit, offset)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// searchParams reads q, limit and offset. Each may appear at most once;
// limit and offset are plain decimal integers; unknown parameters are
// ignored so the gateway may add some without breaking older stores.
func searchParams(rawQuery string) (q string, limit, offset int, verr *ValidationError) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", 0, 0, invalid("query", "is not a valid URL query string")
	}
	problems := map[string]string{}
	q = single(values, "q", problems)
	limit, offset = DefaultSearchLimit, 0
	if _, ok := values["limit"]; ok {
		limit = decimal(single(values, "limit", problems))
	}
	if _, ok := values["offset"]; ok {
		offset = decimal(single(values, "offset", problems))
	}
	if verr := searchProblems(q, limit, offset); verr != nil {
		for field, p := range verr.Problems {
			if _, repeated := problems[field]; !repeated {
				problems[field] = p
			}
		}
	}
	if len(problems) > 0 {
		return "", 0, 0, &ValidationError{Problems: problems}
	}
	return q, limit, offset, nil
}

// single returns the one value of name, noting a problem when it repeats.
func single(values url.Values, name string, problems map[string]string) string {
	vs := values[name]
	if len(vs) > 1 {
		problems[name] = "must be given once"
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// decimal parses a small unsigned decimal ("+5", " 5", "5.0" are not), or
// returns -1, which every range check rejects.
func decimal(s string) int {
	if len(s) == 0 || len(s) > 6 || strings.Trim(s, "0123456789") != "" {
		return -1
	}
	n, _ := strconv.Atoi(s)
	return n
}

func (h *Handler) handleUser() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		defer cancel()
		u, ok, err := h.store.UserByID(ctx, r.PathValue("id"))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if !ok {
			h.fail(w, r, ErrNotFound)
			return
		}
		writeJSON(w, http.StatusOK, u)
	})
}

func (h *Handler) handleLiveStreams() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeValidation(w, invalid("query", "is not a valid URL query string"))
			return
		}
		problems := map[string]string{}
		list := single(values, "userIds", problems)
		if len(problems) > 0 {
			writeValidation(w, &ValidationError{Problems: problems})
			return
		}
		if list == "" {
			writeValidation(w, invalid("userIds", "is required: a comma-separated list of user ids"))
			return
		}
		ids := strings.Split(list, ",")
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		defer cancel()
		items, err := h.store.ActiveLiveStreams(ctx, ids)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, contract.LiveStreamsResponse{Items: items})
	})
}

func (h *Handler) handleDebugRequests() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"items": h.recorder.Requests()})
	})
}

func (h *Handler) handleDebugCounts() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"counts": h.recorder.Counts()})
	})
}

func (h *Handler) handleDebugReset() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.recorder.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
}
