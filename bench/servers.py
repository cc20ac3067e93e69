"""Loopback endpoints for the send benchmarks.

* the *fast* endpoint: nginx (one worker) answering every request with a fixed
  JSON body ``{"id": "<request id>", "status": "accepted"}``, run from a generated
  config in a temporary directory on a free port (never the system's nginx
  daemon). If no nginx binary can be found or installed (``apt-get install
  nginx-light``), a uvicorn + Starlette app answering the same body stands in,
  and the results say so.
* the *latency* endpoint: an aiohttp web server answering the same body after
  ``--delay`` seconds (50 ms), so the client needs concurrency to go fast. With
  ``--count`` it also counts the ``to`` of every request's JSON body and answers
  ``GET /_counts`` with ``{"requests", "distinct", "repeated", "unreadable"}`` (its own
  record, for exactly-once checks; bench/workers.py).

Run ``python bench/servers.py latency --port 8080`` (or ``fixed``) to serve one
by hand; :func:`start_fast` / :func:`start_latency` start them as subprocesses.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BODY_TEMPLATE = '{"id":"%s","status":"accepted"}'
HERE = Path(__file__).resolve().parent


@dataclass
class Endpoint:
    """A running benchmark endpoint."""

    url: str
    kind: str  # human description for the report
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start within {timeout:.0f}s")


# -------------------------------------------------------------------- nginx
def find_nginx(install: bool) -> str | None:
    """The nginx binary; with ``install``, try ``apt-get install nginx-light`` as root first."""
    for cand in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if cand and os.access(cand, os.X_OK):
            return cand
    if install and shutil.which("apt-get") and os.geteuid() == 0:
        print("bench: nginx not found; installing nginx-light with apt-get ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["apt-get", "update", "-qq"], timeout=300, check=False, **quiet)  # type: ignore[call-overload]
            for pkg in ("nginx-light", "nginx"):
                done = subprocess.run(["apt-get", "install", "-y", "-qq", pkg], timeout=300, check=False, **quiet)  # type: ignore[call-overload]
                if done.returncode == 0:
                    break
        for cand in (shutil.which("nginx"), "/usr/sbin/nginx"):
            if cand and os.access(cand, os.X_OK):
                return cand
    return None


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


def start_nginx(binary: str, workdir: Path) -> Endpoint:
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    for attempt in range(5):
        port = free_port()
        prefix = workdir / f"nginx-{port}"
        prefix.mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, body=BODY_TEMPLATE % "$request_id"))
        cmd = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, proc)
        except RuntimeError:
            with contextlib.suppress(Exception):
                proc.kill()
            if attempt == 4:
                raise
            continue
        kind = f"nginx ({version.replace('nginx version: ', '')}, 1 worker, fixed JSON body)"
        return Endpoint(f"http://127.0.0.1:{port}", kind, proc)
    raise RuntimeError("nginx did not start")  # pragma: no cover


# ----------------------------------------------------- subprocess servers
def _spawn(mode: str, extra: list[str], python: str) -> tuple[subprocess.Popen[bytes], int]:
    for attempt in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [python, str(HERE / "servers.py"), mode, "--port", str(port), *extra],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, proc)
        except RuntimeError:
            with contextlib.suppress(Exception):
                proc.kill()
            if attempt == 4:
                raise
            continue
        return proc, port
    raise RuntimeError("server did not start")  # pragma: no cover


def start_fast(workdir: Path, *, install: bool, python: str = sys.executable) -> Endpoint:
    """nginx if available (installing it if allowed), else the uvicorn fallback."""
    binary = find_nginx(install)
    if binary is not None:
        try:
            return start_nginx(binary, workdir)
        except (OSError, RuntimeError) as exc:
            print(f"bench: nginx failed to start ({exc}); using the uvicorn fallback", file=sys.stderr)
    proc, port = _spawn("fixed", [], python)
    kind = "FALLBACK uvicorn + Starlette fixed JSON (nginx unavailable: results are server-bound lower)"
    return Endpoint(f"http://127.0.0.1:{port}", kind, proc)


def start_latency(delay: float, *, python: str = sys.executable, count: bool = False) -> Endpoint:
    proc, port = _spawn("latency", ["--delay", str(delay), *(["--count"] if count else [])], python)
    kind = f"aiohttp web server answering after {delay * 1000:.0f} ms" + (", counting recipients" if count else "")
    return Endpoint(f"http://127.0.0.1:{port}", kind, proc)


@contextlib.contextmanager
def running(endpoint: Endpoint) -> Iterator[Endpoint]:
    try:
        yield endpoint
    finally:
        endpoint.stop()


# ------------------------------------------------------------ the servers
def serve_latency(port: int, delay: float, count: bool = False) -> None:
    import asyncio
    import json
    from collections import Counter

    from aiohttp import web

    ids = itertools.count(1)
    seen: Counter[str] = Counter()
    unreadable = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal unreadable
        body = await request.read()
        if count:
            try:
                seen[str(json.loads(body)["to"])] += 1
            except (ValueError, KeyError, TypeError):
                unreadable += 1
        await asyncio.sleep(delay)
        return web.Response(body=(BODY_TEMPLATE % f"L{next(ids)}").encode(), content_type="application/json")

    async def counts(request: web.Request) -> web.Response:
        stats = {"requests": sum(seen.values()) + unreadable, "distinct": len(seen),
                 "repeated": sum(1 for v in seen.values() if v > 1), "unreadable": unreadable}
        return web.json_response(stats)

    app = web.Application()
    if count:
        app.router.add_get("/_counts", counts)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


def serve_fixed(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    ids = itertools.count(1)

    async def handle(request: Request) -> Response:
        await request.body()
        return Response((BODY_TEMPLATE % f"F{next(ids)}").encode(), media_type="application/json")

    app = Starlette(routes=[Route("/{tail:path}", handle, methods=["GET", "POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["latency", "fixed"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--count", action="store_true", help="latency: count recipients, GET /_counts")
    args = parser.parse_args()
    if args.mode == "latency":
        serve_latency(args.port, args.delay, args.count)
    else:
        serve_fixed(args.port)


if __name__ == "__main__":
    main()

