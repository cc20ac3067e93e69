"""The kernel's own cost per message: ``python bench/kernel.py {gw,camp} [--n N] [--profile FILE]``.

No network: the provider's requests go to an in-process sender that answers at once
(one ``httpx.Response`` per request, as a real client gives), so what is measured is
smsgate itself: the policy kernel, the plan drivers, the provider adapter
(bench/benchprovider.py), the SQLite log in its worker threads.

``gw``    ``AsyncGateway.send_many`` of ``--n`` national numbers (10,000 opt-outs in the store)
``camp``  ``await camp.run()`` of a campaign of ``--n`` recipients (claims, write-ahead with its
          claim check, recipient states)

Prints one JSON object: CPU per message of the whole process (``cpu_us``) and of the
event-loop thread alone (``loop_us``), and the wall rate. The machine is shared: run
the variants to compare alternately, several times, and compare medians of the CPU
figures, not the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchprovider import TEXT, config, plugins  # noqa: E402
from workloads import _profiled, _seed_optouts, national  # noqa: E402


class InstantSender:
    """An :class:`~smsgate.transport.AsyncSender` that answers every request at once with
    ``{"id": ..., "status": "accepted"}``."""

    def __init__(self) -> None:
        self.requests = 0
        self._ids = itertools.count(1)

    async def send(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        body = b'{"id": "m%d", "status": "accepted"}' % next(self._ids)
        # built as smsgate.aio.AiohttpClient builds its answers: a byte stream, read in full
        response = httpx.Response(200, headers=[(b"content-type", b"application/json")],
                                  stream=httpx.ByteStream(body), request=request)
        response.read()
        return response

    async def aclose(self) -> None:
        pass


@contextlib.contextmanager
def _sampled(path: str) -> Any:
    """pyinstrument (a sampling profiler, if installed) around the block; its text report to ``path``."""
    from pyinstrument import Profiler

    prof = Profiler(interval=0.0005, async_mode="disabled")
    prof.start()
    try:
        yield
    finally:
        prof.stop()
        Path(path).write_text(prof.output_text(unicode=False, color=False, show_all=False))


async def run(kind: str, n: int, concurrency: int, profile: str | None, workdir: Path) -> dict[str, Any]:
    from smsgate import AsyncGateway

    sender = InstantSender()
    gw = AsyncGateway(config("http://bench.invalid", f"sqlite:///{workdir / 'log.db'}"), plugins=plugins(),
                      http_client=sender)
    try:
        tenant = gw.tenant("bench")
        if kind == "gw":
            _seed_optouts(gw.store)
            await tenant.send_many([national(i, "805") for i in range(200)], TEXT, concurrency=concurrency)
            numbers = [national(i) for i in range(n)]
        else:
            pilot = await tenant.campaigns.create("pilot", text=TEXT, audience=[national(i, "805") for i in range(200)],
                                                  concurrency=concurrency)
            await pilot.run()
            camp = await tenant.campaigns.create("bench", text=TEXT, audience=[national(i) for i in range(n)],
                                                 concurrency=concurrency)
        before = sender.requests
        with _profiled(profile) if not (profile or "").endswith(".txt") else _sampled(profile):
            c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
            if kind == "gw":
                results = await tenant.send_many(numbers, TEXT, concurrency=concurrency)
                ok = sum(r.ok for r in results)
            else:
                done = await camp.run()
                ok = done.sent
            secs, cpu, loop = time.perf_counter() - w0, time.process_time() - c0, time.thread_time() - t0
    finally:
        await gw.aclose()
    return {"kind": kind, "n": n, "ok": ok, "requests": sender.requests - before, "rate": round(n / secs),
            "cpu_us": round(cpu / n * 1e6, 1), "loop_us": round(loop / n * 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["gw", "camp"])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--profile", help="cProfile stats to this file; a .txt file: a pyinstrument report")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="smsgate-kernel-") as tmp:
        out = asyncio.run(run(args.kind, args.n, args.concurrency, args.profile, Path(tmp)))
    print(json.dumps(out))
    with contextlib.suppress(Exception):
        sys.stdout.flush()


if __name__ == "__main__":
    main()
