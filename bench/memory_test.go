package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The memory fill counts every answer that is not a success envelope: a
// fill with errors is no measurement of the target.
func TestMemoryFillCountsWrongAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.Header.Get("Authorization"), "bad") {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"isSuccess":false,"statusCode":503,"data":null,"errors":["x"],"timestamp":"t"}`))
			return
		}
		_, _ = w.Write([]byte(okEnvelope))
	}))
	defer srv.Close()
	st := &stack{opts: &options{connections: 2}}
	res := &memoryResult{}
	st.fill(context.Background(), srv.URL, []string{"a.b.c", "x.y.bad", "d.e.f", "u.v.bad"}, res)
	if res.Errors != 2 || len(res.ErrorSamples) != 2 || !strings.Contains(res.ErrorSamples[0], "status 503") {
		t.Errorf("errors %d %q, want the two 503s", res.Errors, res.ErrorSamples)
	}
}

// The read cache's size comes from a 200 only: another status, even with
// an envelope, is an error, not a count.
func TestCacheStatsRefusesOtherStatuses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"isSuccess":false,"statusCode":503,"data":{"entries":100000,"bytes":1},"errors":["x"],"timestamp":"t"}`))
	}))
	defer srv.Close()
	if n, _, err := cacheStats(context.Background(), srv.URL); err == nil {
		t.Errorf("a 503 gave %d entries", n)
	}
}
