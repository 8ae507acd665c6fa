package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// perfsplit.py charges a sample to the first category whose frames it
// holds. The gateway's answer is written, and its request read, through
// its own connection type (clientConn), so those samples hold a gateway
// frame too: they are still the server's write and read, not the edge's
// work. Three samples of one request each, at 1 Hz for 1 s: 1,000,000 µs
// of CPU per request in each row.
func TestPerfsplitServerIOThroughTheGatewaysConn(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed (Debian: apt-get install -y python3; .ci/run installs it)")
	}
	const samples = `gateway 
	ffffffff82062ad2 tcp_sendmsg
	            d3ce syscall.write
	          10965f github.com/bffgate/edge/gateway.(*clientConn).Write
	          111111 bufio.(*Writer).Flush
	          222222 github.com/valyala/fasthttp.(*Server).serveConn

gateway 
	ffffffff82062ad2 tcp_recvmsg
	            d3ce syscall.read
	          10965f github.com/bffgate/edge/gateway.(*clientConn).Read
	          111111 bufio.(*Reader).fill
	          222222 github.com/valyala/fasthttp.(*Server).serveConn

gateway 
	          333333 github.com/bffgate/edge/gateway.(*Server).edge
	          222222 github.com/valyala/fasthttp.(*Server).serveConn

`
	file := filepath.Join(t.TempDir(), "gw.txt")
	if err := os.WriteFile(file, []byte(samples), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "perfsplit.py", "--hz", "1", "--seconds", "1", file+":1").CombinedOutput()
	if err != nil {
		t.Fatalf("perfsplit.py: %v\n%s", err, out)
	}
	for _, row := range []string{
		"| server: write response | k | 1000000.00 |",
		"| server: read request | k | 1000000.00 |",
		"| gateway: edge and Fiber (ids, normalisation, limits, routing) | u | 1000000.00 |",
	} {
		if !strings.Contains(string(out), row) {
			t.Errorf("no row %q in\n%s", row, out)
		}
	}
}
