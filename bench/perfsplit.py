#!/usr/bin/env python3
"""Split two `perf record -g` profiles of proxies into the same categories,
per request, side by side (docs/performance.md, "Username check against nginx").

    # while a scenario runs (go run ./bench -scenarios gw-username ... with the
    # servers built unstripped), record the busy process for 5 s at 2000 Hz:
    perf record -F 2000 -g -p <pid> -o gw.data sleep 5
    perf script -F comm,ip,sym -i gw.data > gw.txt
    python3 bench/perfsplit.py gw.txt:15097 ref.txt:26963 --hz 2000 --seconds 5

Each input is a `perf script` text file and the scenario's closed-loop rate
(req/s) during the recording. A sample is charged to the first category
whose frames it holds; "k" and "u" say whether it was taken in the kernel
or in user space. Output: microseconds of CPU per request.

With --set me, the categories are those of a `/me` cache hit against the
bare Fiber baseline ("`/me` cache hit against bare Fiber"), clock readings
first, wherever they are made. That recording covers a whole subset run on
the server core, both contenders alike:

    perf record -C 0 -F 1999 -g -o all.data -- sleep 400 &
    go run ./bench -scenarios gw-me-hit,bare-fiber -pairs 0 -nginx=false \
        -store=false -memory=false -symbols -keep
    kill -INT %1
    perf script -F comm,ip,sym -i all.data --comms gateway > gw.txt
    perf script -F comm,ip,sym -i all.data --comms barefiber > bare.txt
    python3 bench/perfsplit.py --set me --hz 1999 --seconds 1 \
        gw.txt:<requests> bare.txt:<requests>

where <requests> is what each served in the run (closed-loop rounds,
warm-up and open-loop windows: rate times length, from the run's log).
"""

import argparse
import collections

# (category, every frame substring the stack must hold, any-of substrings or None)
CATEGORIES = [
    ("Go runtime: sysmon", ["runtime.sysmon"], None),
    ("Go runtime: GC", [], ["gcBgMarkWorker", "gcDrain"]),
    ("Go runtime: scheduler", [], ["runtime.mcall", "runtime.schedule"]),
    ("upstream call: write request", ["HostClient"], ["syscall.write"]),
    ("upstream call: read response", ["HostClient"], ["syscall.read", "ResponseHeader).Read", "ReadLimitBody", "acquireReader"]),
    ("upstream call: fasthttp client, other", ["HostClient"], None),
    # The server's own reads, writes and deadlines before the gateway's
    # code: since the public listener's connections are the gateway's
    # (clientConn, docs/performance.md #10), each of them has a gateway
    # frame, and would be charged to the edge.
    ("server: deadlines", ["serveConn"], ["SetReadDeadline", "SetWriteDeadline"]),
    ("server: write response", ["serveConn"], ["syscall.write", "bufio.(*Writer).Flush"]),
    ("server: read request", ["serveConn"], ["syscall.read", "bufio.(*Reader).Peek", "bufio.(*Reader).fill"]),
    ("upstream call: build, check, decode", ["upstream.(*Client).send"], None),
    ("upstream call: breaker, observer, bulkhead, deadline", ["bffgate/edge/upstream."], None),
    ("gateway: access line, metrics", ["gateway.(*Server).finish"], None),
    ("gateway: authentication", ["auth.(*Verifier)"], None),
    ("gateway: username handler (validation, envelope)", ["checkUsername"], None),
    ("gateway: edge and Fiber (ids, normalisation, limits, routing)", ["bffgate/edge/gateway."], None),
    ("reference: Fiber and its handler", [], ["main.AddProxy", "gofiber/fiber"]),
    ("server: fasthttp, other", ["serveConn"], None),
    ("other", [], None),
]

# The same form, for a /me cache hit against bare Fiber (--set me).
ME_CATEGORIES = [
    ("clock readings (vDSO), wherever made", [], ["__vdso_clock_gettime"]),
    ("Go runtime: scheduler, netpoll, sysmon, GC", [], ["runtime.mcall", "runtime.sysmon", "gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge"]),
    ("gateway: access-log writer (batches and their write)", ["accessLog).run"], None),
    ("gateway: header hook (framing checks)", ["gateway.holdHeaders"], None),
    ("gateway: rate limits (per IP, per user, failed authentication)", ["policies.(*Limiter)"], None),
    ("gateway: access line and metrics", ["gateway.(*Server).finish"], None),
    ("gateway: authentication (connection memo)", ["auth.(*Verifier)"], None),
    ("/me: cache look-up, envelope, headers (bare Fiber: its handler)", [], ["gateway.(*Server).me", "main.New.func1"]),
    ("gateway: edge (ids, client context, request state)", ["gateway.(*Server).edge"], None),
    ("Fiber: context and routing", ["fiber/v2.(*App).handler"], None),
    ("server: write the answer", ["serveConn"], ["bufio.(*Writer).Flush", "writeResponse"]),
    ("server: read the request", ["serveConn"], ["bufio.(*Reader)"]),
    ("server: parse, connection state, other", ["serveConn"], None),
    ("other", [], None),
]


def stacks(path):
    """Yields each sample as a list of (in_kernel, symbol), leaf first."""
    cur = None
    with open(path) as f:
        for line in f:
            if not line.strip():
                if cur:
                    yield cur
                cur = None
                continue
            if not line[0].isspace():
                cur = []
                continue
            parts = line.strip().split(None, 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            try:
                kernel = int(parts[0], 16) >= 0xFFFFFFFF00000000
            except ValueError:
                kernel = False
            cur.append((kernel, sym))
    if cur:
        yield cur


def category(syms, categories):
    for name, every, anyof in categories:
        if all(any(m in s for s in syms) for m in every) and (
            anyof is None or any(any(m in s for s in syms) for m in anyof)
        ):
            return name
    return "other"


def split(path, categories):
    counts = collections.Counter()
    for st in stacks(path):
        if not st:
            continue
        counts[(category([s for _, s in st], categories), "k" if st[0][0] else "u")] += 1
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="perf script file:rate (req/s)")
    p.add_argument("--hz", type=float, default=2000, help="perf record -F")
    p.add_argument("--seconds", type=float, default=5, help="length of the recording")
    p.add_argument("--set", choices=["username", "me"], default="username", help="the categories: a proxied username check, or a /me cache hit")
    a = p.parse_args()
    categories = ME_CATEGORIES if a.set == "me" else CATEGORIES
    cols = []
    for spec in a.inputs:
        path, rate = spec.rsplit(":", 1)
        per_sample = 1e6 / a.hz / (float(rate) * a.seconds)  # µs of CPU per request
        cols.append((path, {k: v * per_sample for k, v in split(path, categories).items()}))
    keys = sorted({k for _, c in cols for k in c}, key=lambda k: -cols[0][1].get(k, 0))
    print("| category | | " + " | ".join(path for path, _ in cols) + " |")
    print("| --- | --- |" + " --- |" * len(cols))
    for k in keys:
        print("| %s | %s | " % k + " | ".join("%.2f" % c.get(k, 0) for _, c in cols) + " |")
    print("| **total** | | " + " | ".join("**%.1f**" % sum(c.values()) for _, c in cols) + " |")


if __name__ == "__main__":
    main()
