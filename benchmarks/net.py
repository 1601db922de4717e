"""net.fetch of a 1 KiB response through dispatch() against a bare httpx GET of the same URL.

A small HTTP/1.1 server (the standard library's, keep-alive, Nagle off) runs in a child
interpreter on 127.0.0.1, so that it never holds this one's GIL. A process granted
``net:127.0.0.1=read`` fetches its 1 KiB page through Runtime.dispatch (the URL parsed, the
decision, the request through HostNetwork, the durable audit record); a bare httpx.AsyncClient
GETs the same URL. The two take turns, call by call, so a busy machine slows both alike; the row
is alos's overhead per call (each dispatch less the bare GET after it), the note gives both.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import time

import httpx

from alos.rights import Effect, parse_grant
from benchmarks.cases import Bench, Plan, Result, Target
from benchmarks.fixture import environment
from benchmarks.stats import summarize

OVERHEAD_TARGET_US = 2_000  # alos's cost per fetch over a bare GET, at most (as shell.run's over subprocess.run)
PAGE_BYTES = 1024

_SERVER = textwrap.dedent(
    f"""
    import http.server, sys

    PAGE = b"x" * {PAGE_BYTES}

    class Page(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server
        disable_nagle_algorithm = True  # the body does not wait on the client's delayed ACK

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    print(f"http://127.0.0.1:{{server.server_address[1]}}/page", flush=True)
    server.serve_forever()
    """
)


def _start() -> tuple[subprocess.Popen[str], str]:
    """Start the page server; return its process and the page's URL."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"the page server said {url!r}, not its URL")
    return proc, url


async def net_fetch(plan: Plan) -> Result:
    """net.fetch of a 1 KiB page through dispatch() against a bare httpx GET (module docstring)."""
    server, url = _start()
    alos_ns: list[int] = []
    bare_ns: list[int] = []
    try:
        async with environment() as env, httpx.AsyncClient(trust_env=False) as client:
            grants = [parse_grant("net:127.0.0.1=read", Effect.ALLOW, env.workspace)]
            pid = await env.rt.spawn("base", "benchmark", workspace=env.workspace, model=env.script([]), grants=grants)
            try:
                for i in range(plan.warmup + plan.calls):
                    start = time.perf_counter_ns()
                    got = await env.rt.dispatch(pid, "net.fetch", {"url": url})
                    middle = time.perf_counter_ns()
                    bare = await client.get(url)
                    end = time.perf_counter_ns()
                    if got["status"] != 200 or len(got["body"]) != PAGE_BYTES or len(bare.content) != PAGE_BYTES:
                        raise RuntimeError(f"a fetch did not get the page: {got!r:.200}")
                    if i >= plan.warmup:
                        alos_ns.append(middle - start)
                        bare_ns.append(end - middle)
            finally:
                await env.rt.kernel.net.aclose()
            audited = sum(1 for r in env.rt.audit(pid) if r.syscall == "net.fetch" and r.outcome == "ok")
            if audited != plan.warmup + plan.calls:
                raise RuntimeError(f"{audited} audited fetches for {plan.warmup + plan.calls} calls")
    finally:
        server.kill()
        server.wait()
    overhead = [a - b for a, b in zip(alos_ns, bare_ns, strict=True)]
    note = (
        f"net.fetch through dispatch() {_us(alos_ns)}, bare httpx GET {_us(bare_ns)} "
        f"(medians; {PAGE_BYTES} B over loopback, a durable audit record each)"
    )
    summary = summarize(overhead)
    name = "net.fetch 1 KiB: alos's overhead over a bare httpx GET"
    return Result(name, summary, None, "", Target("median", OVERHEAD_TARGET_US), note=note)


def _us(samples: list[int]) -> str:
    return f"{statistics.median(samples) / 1e3:,.0f} us"


BENCHES: dict[str, Bench] = {
    "net": net_fetch,
}
