package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestNginxConf(t *testing.T) {
	var b bytes.Buffer
	err := nginxConf.Execute(&b, map[string]any{
		"Root": true, "Dir": "/w/nginx", "Fifo": "/w/nginx/access.log", "Upstream": "127.0.0.1:4000",
		"Plain": "127.0.0.1:4001", "Cache": "127.0.0.1:4002",
	})
	if err != nil {
		t.Fatal(err)
	}
	conf := b.String()
	for _, want := range []string{
		"user root;", "worker_processes 1;", "daemon off;", "pid /w/nginx/nginx.pid;",
		"access_log /w/nginx/access.log combined", "server 127.0.0.1:4000;", "keepalive 256;",
		"listen 127.0.0.1:4001;", "listen 127.0.0.1:4002;", "proxy_cache bench;", `proxy_set_header Connection "";`,
		"proxy_http_version 1.1;", "keepalive_requests 10000000;", "proxy_cache_path /w/nginx/cache",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx.conf lacks %q:\n%s", want, conf)
		}
	}
	b.Reset()
	_ = nginxConf.Execute(&b, map[string]any{"Root": false, "Dir": "/w", "Fifo": "/w/a", "Upstream": "u", "Plain": "p", "Cache": "c"})
	if strings.Contains(b.String(), "user root") {
		t.Error("user root without root")
	}
}

func TestTokenLookupsAndCacheStats(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			_, _ = w.Write([]byte("# HELP gateway_token_cache_lookups_total Look-ups.\n# TYPE gateway_token_cache_lookups_total counter\n" +
				"gateway_token_cache_lookups_total{result=\"hit\"} 12345\ngateway_token_cache_lookups_total{result=\"miss\"} 1e+05\n" +
				"gateway_cache_entries 3\n"))
		case "/ops/v1/cache":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"isSuccess":true,"statusCode":200,"data":{"enabled":true,"entries":100000,"bytes":123456789},"errors":[],"timestamp":"t"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	l, err := tokenLookups(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if l.hit != 12345 || l.miss != 100000 {
		t.Errorf("lookups %+v", l)
	}
	n, b, err := cacheStats(context.Background(), srv.URL)
	if err != nil || n != 100000 || b != 123456789 {
		t.Errorf("cache stats %d %d %v", n, b, err)
	}
	if _, err := tokenLookups(context.Background(), srv.URL+"/nothing"); err == nil {
		t.Error("metrics without the counters accepted")
	}
	if _, _, err := cacheStats(context.Background(), srv.URL+"/nothing"); err == nil {
		t.Error("a 404 cache stats accepted")
	}
}

func TestChoosePinning(t *testing.T) {
	o := &options{pin: false, serverCPUs: "0", loadCPUs: "1"}
	if p := choosePinning(o); p.Enabled || !strings.Contains(p.Reason, "-pin=false") {
		t.Errorf("pin=false: %+v", p)
	}
	o = &options{pin: true, serverCPUs: "0", loadCPUs: "0"}
	if p := choosePinning(o); p.Enabled {
		t.Errorf("overlapping cores pinned: %+v", p)
	}
	o = &options{pin: true, serverCPUs: "0", loadCPUs: "4096"}
	if p := choosePinning(o); p.Enabled {
		t.Errorf("missing core: %+v", p)
	}
	if cmd := (pinning{}).command("/bin/x", "-a"); cmd.Args[0] != "/bin/x" {
		t.Errorf("unpinned command %v", cmd.Args)
	}
	if cmd := (pinning{Enabled: true, ServerCPUs: "0", LoadCPUs: "1"}).command("/bin/x", "-a"); strings.Join(cmd.Args, " ") != "taskset -c 0 /bin/x -a" {
		t.Errorf("pinned command %v", cmd.Args)
	}
}

// The real-store scenarios run their closed loop at storeConnections, the
// others at -connections, and the report records what each used.
func TestRealStoreConnections(t *testing.T) {
	gw := func() *gatewayProc { return &gatewayProc{url: "http://127.0.0.1:1"} }
	st := &stack{opts: &options{connections: 64}, gwCache: gw(), gwNoCache: gw(), gwStore: gw()}
	r := &runner{opts: st.opts}
	stores := 0
	for _, sc := range st.scenarios() {
		want := 64
		if sc.Group == groupRealStore {
			want = storeConnections
			stores++
		}
		if got := r.closedConns(sc); got != want {
			t.Errorf("%s: %d closed-loop connections, want %d", sc.Name, got, want)
		}
	}
	if stores != 2 {
		t.Errorf("%d real-store scenarios, want store-me and store-search", stores)
	}
}

// reusingKernel stands in for the kernel's choice of a free port: the
// lowest port none of its open listeners holds, so a port just closed is
// the next one handed out (Linux does that now and then; seen in a run:
// nginx started both servers on one port with only a warning, and the
// proxy_cache scenario was answered by the plain proxy).
type reusingKernel struct{ open map[int]bool }

func (k *reusingKernel) listen() (net.Listener, error) {
	port := 40000
	for k.open[port] {
		port++
	}
	k.open[port] = true
	return &heldPort{kernel: k, port: port}, nil
}

type heldPort struct {
	kernel *reusingKernel
	port   int
}

func (h *heldPort) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (h *heldPort) Close() error              { delete(h.kernel.open, h.port); return nil }
func (h *heldPort) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: h.port}
}

// nginx's two servers get two ports even from a kernel that hands a port
// just closed straight back.
func TestNginxPortsDiffer(t *testing.T) {
	k := &reusingKernel{open: map[int]bool{}}
	defer func(l func() (net.Listener, error)) { listenLoopback = l }(listenLoopback)
	listenLoopback = k.listen
	plain, cache, err := nginxPorts()
	if err != nil {
		t.Fatal(err)
	}
	if plain == cache {
		t.Fatalf("the plain proxy and proxy_cache both on %s", plain)
	}
	if len(k.open) != 0 {
		t.Errorf("%d listeners left open", len(k.open))
	}
}

// Every override of config.yaml that gatewayEnv makes is in the report's
// account of the gateways' configuration and in bench/README.md's list of
// them, which says "these environment overrides only".
func TestGatewayOverridesAreStated(t *testing.T) {
	st := &stack{idp: &identity{issuer: "http://idp", jwksURL: "http://idp/jwks"}}
	env := map[string]string{}
	for _, kv := range st.gatewayEnv("http://store", nil) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The overrides a reader could not guess from the rest of the list.
	for key, stated := range map[string][]string{
		"GATEWAY_SERVER__MAXCONNECTIONSPERIP": {"server.maxConnectionsPerIP 0", "`server.maxConnectionsPerIP: 0`"},
		"GATEWAY_LOG__ACCESS":                 {"access log on", "`log.access: true`"},
		"GOGC":                                {"GOGC=400", "`GOGC=400`"},
	} {
		if _, ok := env[key]; !ok {
			t.Fatalf("gatewayEnv no longer sets %s", key)
		}
		if !strings.Contains(gatewayConfigNote, stated[0]) {
			t.Errorf("the report's gateway configuration does not state %s: %q", key, gatewayConfigNote)
		}
		if !strings.Contains(string(readme), stated[1]) {
			t.Errorf("bench/README.md does not state %s (%s)", key, stated[1])
		}
	}
}
