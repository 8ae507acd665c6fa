package daemon

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/bffgate/edge/gateway/telemetry"
)

// syncBuffer is a bytes.Buffer written from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// What net/http itself logs on the ops listener (here a handler's panic,
// which it recovers) is a JSON line of the gateway's log at WARN, not plain
// text on stderr, outside it.
func TestOpsErrorLogWritesTheGatewaysLog(t *testing.T) {
	var out syncBuffer
	logger, _ := telemetry.NewLogger(&out, "info")
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("ops handler bug") }),
		ErrorLog: opsErrorLog(logger),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if resp, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// net/http logs the panic before it closes the connection, which
	// ended the Get.
	var line struct{ Level, Msg string }
	first, _, _ := strings.Cut(out.String(), "\n")
	if err := json.Unmarshal([]byte(first), &line); err != nil {
		t.Fatalf("not a JSON line: %q", out.String())
	}
	if line.Level != "WARN" || !strings.HasPrefix(line.Msg, "ops listener: http: panic serving") || !strings.Contains(line.Msg, "ops handler bug") {
		t.Fatalf("line %+v", line)
	}
}
