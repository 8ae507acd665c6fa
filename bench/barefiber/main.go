// Command barefiber is the benchmark's bare baseline: a Fiber app with one handler
// that answers fixed bytes — the gateway's /me cache-hit envelope and its
// headers, captured from the gateway by the harness — with nothing else on
// the path (no authentication, no policy, no cache look-up, no access
// log). The gateway's /me cache hit is measured against it. With -proxy it
// is also the reference proxy of the username check (AddProxy).
//
//	barefiber -body FILE [-header "Name: value"]... [-path /api/v1/users/me] [-listen 127.0.0.1:0]
//	          [-proxy host:port] [-get-work D] [-proxy-work D]
//
// With -get-work or -proxy-work it is the floor contender instead: the
// same handlers, each spending a fixed amount of pure CPU per request
// first. Given the per-request floor of docs/performance.md (the work no
// gateway of ours can drop, priced by benchmarks), it measures the best
// rate such a gateway could reach on this machine, side by side with the
// gateway and the baselines.
//
// It prints one JSON line {"msg":"listening","addr":"…"} on stdout once it
// accepts connections, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// headerFlags collects repeated -header "Name: value" flags.
type headerFlags [][2]string

func (h *headerFlags) String() string { return fmt.Sprint(*h) }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	*h = append(*h, [2]string{name, value})
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("barefiber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	bodyFile := fs.String("body", "", "file whose bytes every answer carries (required)")
	path := fs.String("path", "/api/v1/users/me", "the one GET path served")
	var headers headerFlags
	fs.Var(&headers, "header", `a response header "Name: value" (repeatable)`)
	proxy := fs.String("proxy", "", "also forward POST "+proxyPath+" to this upstream (host:port), the reference proxy")
	getWork := fs.Duration("get-work", 0, "CPU to spend on every GET before answering (the floor contender)")
	proxyWork := fs.Duration("proxy-work", 0, "CPU to spend on every proxied call before forwarding it (the floor contender)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *bodyFile == "" {
		return errors.New("-body is required")
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		return err
	}
	if *getWork < 0 || *proxyWork < 0 {
		return errors.New("-get-work and -proxy-work must not be negative")
	}
	app := New(*path, body, headers, newBurner(*getWork))
	if *proxy != "" {
		AddProxy(app, *proxy, newBurner(*proxyWork))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	line, _ := json.Marshal(map[string]string{"msg": "listening", "addr": ln.Addr().String()})
	fmt.Fprintf(stdout, "%s\n", line)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	return app.ShutdownWithTimeout(3 * time.Second)
}

// New is the app: one GET route answering body with the given headers.
// The content type is the header list's, or application/json. The handler
// is what a Fiber developer writes for fixed bytes: set the headers, Send
// (after work.burn, which is nothing unless this is the floor contender).
func New(path string, body []byte, headers [][2]string, work burner) *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	contentType := "application/json"
	var rest [][2]string
	for _, h := range headers {
		if strings.EqualFold(h[0], fiber.HeaderContentType) {
			contentType = h[1]
			continue
		}
		rest = append(rest, h)
	}
	app.Get(path, func(c *fiber.Ctx) error {
		work.burn()
		c.Set(fiber.HeaderContentType, contentType)
		for _, h := range rest {
			c.Set(h[0], h[1])
		}
		return c.Send(body)
	})
	return app
}

// proxyPath is the reference proxy's one route: the contract's username
// check, forwarded as it is.
const proxyPath = "/internal/v1/usernames/check"

// AddProxy adds the cheapest reverse proxy Go and fasthttp make: the
// request body forwarded to upstream on a keep-alive connection with the
// same client settings as the gateway's (no re-sends, timeouts, a size
// cap), the upstream's body answered back — no authentication, headers,
// validation, decoding, breaker, metrics or log (only work.burn, nothing
// unless this is the floor contender). It is where a Go gateway on this
// machine starts from when compared with nginx.
func AddProxy(app *fiber.App, upstream string, work burner) {
	hc := &fasthttp.HostClient{
		Addr: upstream, MaxConns: 512, MaxIdemponentCallAttempts: 1,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxConnWaitTimeout: 100 * time.Millisecond, MaxResponseBodySize: 2 << 20,
	}
	uri := "http://" + upstream + proxyPath
	app.Post(proxyPath, func(c *fiber.Ctx) error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		work.burn()
		req.SetRequestURI(uri)
		req.Header.SetMethod(fiber.MethodPost)
		req.Header.SetContentType(fiber.MIMEApplicationJSON)
		req.SetBody(c.Body())
		if err := hc.DoDeadline(req, resp, time.Now().Add(time.Second)); err != nil {
			return c.SendStatus(fiber.StatusBadGateway)
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(resp.StatusCode()).Send(resp.Body())
	})
}

// burner spends a fixed amount of CPU per call: a loop of arithmetic whose
// length was calibrated at start-up. It stands for work, so it burns CPU
// rather than waiting for the clock: a call preempted half-way still
// spends all of it. It touches no memory, so it evicts nothing from the
// caches: no real work of the same length is cheaper, and a floor
// contender built on it is a best case.
type burner struct{ loops int }

// burnSink keeps the compiler from dropping the loop.
var burnSink atomic.Uint64

// newBurner calibrates a burner for d. The quickest of several timed runs
// is the one least disturbed by other processes, so the count errs towards
// burning the full d.
func newBurner(d time.Duration) burner {
	if d <= 0 {
		return burner{}
	}
	const probe = 1 << 20
	best := time.Duration(1<<63 - 1)
	for range 7 {
		start := time.Now()
		burnSink.Store(burnLoop(probe))
		best = min(best, time.Since(start))
	}
	return burner{loops: max(1, int(float64(probe)*float64(d)/float64(max(best, 1))))}
}

func (b burner) burn() {
	if b.loops > 0 {
		burnSink.Store(burnLoop(b.loops))
	}
}

// burnLoop runs n steps of a linear congruential generator, each step
// depending on the one before (no vectorising, no skipping), and returns
// the state.
func burnLoop(n int) uint64 {
	x := uint64(1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}
