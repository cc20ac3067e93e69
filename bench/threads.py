"""Where a send's CPU goes, thread by thread: ``python bench/threads.py KIND --url URL [--n N]``.

One measured run in this process (after a warm-up), against an endpoint of yours (e.g.
``python bench/servers.py latency --port 8080``, the 50 ms endpoint of bench/run.py):

``aiohttp``  raw aiohttp ``ClientSession.post(json=...)``, ``resp.json()`` (bench/run.py's ceiling row)
``raw``      raw ``smsgate.aio.AiohttpClient``: ``httpx.Request(json=...)`` in, ``httpx.Response`` out
``gw``       ``AsyncGateway.send_many`` on ``AiohttpClient``, SQLite log, 10,000 opt-outs (``gw-async-aio``)
``camp``     a campaign's ``run()`` under the same gateway (``camp-async``)

Prints one JSON object; figures are microseconds per message over the measured run:

* ``threads``: each thread's CPU (user + system, from ``/proc``; ``.sys`` the system part),
  the store's worker threads added up;
* ``loop``: the event-loop thread's wall time split into its own CPU, waiting in the
  kernel's run queue for a core (``/proc/thread-self/schedstat``), blocked in the selector
  (idle: nothing ready), and the rest, which is mostly waiting for the GIL held by another
  thread of the process; ``iterations``: selector calls per message;
* ``gc``: the cyclic collector's collections per generation and their CPU, in whichever
  thread they ran (``gc.callbacks``, measuring only: no setting is changed);
* ``log_writes`` (``gw``, ``camp``): transactions of the dispatch log and the rows they wrote;
* ``in_flight`` (``raw``, ``gw``, ``camp``): requests in the adapter's ``send`` at once, on average over
  the run (time-weighted): at most ``--concurrency``; fewer means workers waiting for
  something else than an answer.

``--concurrency`` workers (256, as bench/run.py's latency rows) over a pool of as many
connections. CPU per message is the figure to compare on a loaded machine, several runs
of each kind alternating; wall rates move with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import selectors
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchprovider import API_KEY, TEXT, config, plugins  # noqa: E402
from workloads import _seed_optouts, drive, e164, national, payload  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


class TimedSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The default selector, timing its ``select`` calls (the event loop's idle time)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self.calls = 0

    def select(self, timeout: float | None = None) -> Any:
        start = time.perf_counter()
        try:
            return super().select(timeout)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def _threads() -> dict[int, tuple[str, float, float]]:
    """Each live thread of this process: (name, CPU seconds, of which system)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        user, system = int(fields[11]) / _TICK, int(fields[12]) / _TICK
        name = names.get(int(tid), "?").split("_")[0]  # smsgate-store_0, _1 ... as one
        out[int(tid)] = (name, user + system, system)
    return out


def _run_queue() -> float:
    """Seconds this thread has waited in the kernel's run queue."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


class InFlight:
    """Counts the requests inside ``client.send`` over time (wraps the instance's method)."""

    def __init__(self, client: Any) -> None:
        self.now = 0
        self.area = 0.0
        self.last = time.perf_counter()
        send = client.send

        async def counted(request: Any) -> Any:
            self._tick(+1)
            try:
                return await send(request)
            finally:
                self._tick(-1)

        client.send = counted

    def _tick(self, step: int) -> None:
        now = time.perf_counter()
        self.area += self.now * (now - self.last)
        self.last, self.now = now, self.now + step

    def reset(self) -> None:
        self._tick(0)
        self.area = 0.0

    def mean(self, seconds: float) -> float:
        self._tick(0)
        return round(self.area / seconds, 1)


class Window:
    """The measured run: per-thread CPU, the loop thread's wall split, collections."""

    def __init__(self, selector: TimedSelector) -> None:
        self.selector = selector
        self.gcs: collections.Counter[int] = collections.Counter()
        self.gc_cpu: collections.Counter[int] = collections.Counter()
        self._gc_start: dict[int, float] = {}

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        me = threading.get_ident()
        if phase == "start":
            self._gc_start[me] = time.thread_time()
        else:
            gen = info["generation"]
            self.gcs[gen] += 1
            self.gc_cpu[gen] += time.thread_time() - self._gc_start.pop(me, time.thread_time())

    def __enter__(self) -> Window:
        gc.callbacks.append(self._on_gc)
        self.sel0 = (self.selector.seconds, self.selector.calls)
        self.threads0 = _threads()
        self.runq0, self.loop0, self.wall0 = _run_queue(), time.thread_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.loop_cpu = time.thread_time() - self.loop0
        self.runq = _run_queue() - self.runq0
        self.idle = self.selector.seconds - self.sel0[0]
        self.iterations = self.selector.calls - self.sel0[1]
        after = _threads()
        gc.callbacks.remove(self._on_gc)
        self.cpu: dict[str, float] = collections.defaultdict(float)
        for tid, (name, cpu, system) in after.items():
            _, cpu0, system0 = self.threads0.get(tid, (name, 0.0, 0.0))
            self.cpu[name] += cpu - cpu0
            self.cpu[name + ".sys"] += system - system0

    def report(self, n: int) -> dict[str, Any]:
        def us(seconds: float) -> float:
            return round(seconds / n * 1e6, 1)

        rest = self.wall - self.loop_cpu - self.runq - self.idle
        return {
            "threads": {k: us(v) for k, v in sorted(self.cpu.items(), key=lambda kv: -kv[1]) if v > 0},
            "loop": {"wall": us(self.wall), "cpu": us(self.loop_cpu), "run_queue": us(self.runq),
                     "idle": us(self.idle), "rest_gil": us(rest), "iterations": round(self.iterations / n, 3)},
            "gc": {str(g): {"collections": self.gcs[g], "cpu": us(self.gc_cpu[g])} for g in sorted(self.gcs)},
        }


async def measure(args: argparse.Namespace, selector: TimedSelector) -> dict[str, Any]:
    import httpx

    from smsgate.aio import AiohttpClient

    n, concurrency = args.n, args.concurrency
    out: dict[str, Any] = {"kind": args.kind, "n": n}
    if args.kind in ("gw", "camp"):
        from smsgate import AsyncGateway

        with tempfile.TemporaryDirectory(prefix="smsgate-threads-") as tmp:
            client = AiohttpClient(limit=concurrency)
            flight = InFlight(client)
            gw = AsyncGateway(config(args.url, f"sqlite:///{tmp}/log.db"), plugins=plugins(), http_client=client)
            store = gw.store
            writes = {"transactions": 0, "inserts": 0, "updates": 0}
            write_log = store.write_log

            def counted(tenant: str, write: Any) -> Any:  # counting only: the store's own method
                writes["transactions"] += 1
                writes["inserts"] += len(write.inserts)
                writes["updates"] += len(write.updates)
                return write_log(tenant, write)

            store.write_log = counted  # type: ignore[method-assign]
            try:
                tenant = gw.tenant("bench")
                pilot = [national(i, "805") for i in range(max(concurrency, 300))]
                numbers = [national(i) for i in range(n)]
                if args.kind == "gw":
                    _seed_optouts(store)
                    await tenant.send_many(pilot, TEXT, concurrency=concurrency)
                else:
                    first = await tenant.campaigns.create("pilot", text=TEXT, audience=pilot, concurrency=concurrency)
                    await first.run()
                    camp = await tenant.campaigns.create("bench", text=TEXT, audience=numbers,
                                                         concurrency=concurrency)
                writes.update(transactions=0, inserts=0, updates=0)
                flight.reset()
                with Window(selector) as window:
                    if args.kind == "gw":
                        results = await tenant.send_many(numbers, TEXT, concurrency=concurrency)
                        out["ok"] = sum(r.ok for r in results)
                    else:
                        out["ok"] = (await camp.run()).sent
                out["in_flight"] = flight.mean(window.wall)
                out["log_writes"] = writes
            finally:
                await gw.aclose()
                await client.aclose()
    else:
        url = args.url + "/messages"
        headers = {"X-Api-Key": API_KEY}
        if args.kind == "raw":
            adapter = AiohttpClient(limit=concurrency, timeout=30.0)
            flight = InFlight(adapter)

            async def one(i: int) -> bool:
                request = httpx.Request("POST", url, json=payload(e164(i)), headers=headers)
                resp = await adapter.send(request)
                return resp.status_code == 200 and resp.json()["status"] == "accepted"

            close = adapter.aclose
        else:
            import aiohttp

            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

            async def one(i: int) -> bool:
                async with session.post(url, json=payload(e164(i)), headers=headers) as resp:
                    data = await resp.json()
                    return resp.status == 200 and bool(data["status"] == "accepted")

            close = session.close
        try:
            await drive(2 * concurrency, concurrency, one)
            if args.kind == "raw":
                flight.reset()
            with Window(selector) as window:
                _, out["ok"], _ = await drive(n, concurrency, lambda i: one(1_000_000 + i))
            if args.kind == "raw":
                out["in_flight"] = flight.mean(window.wall)
        finally:
            await close()
    out["rate"] = round(n / window.wall)
    out.update(window.report(n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["aiohttp", "raw", "gw", "camp"])
    ap.add_argument("--url", required=True, help="the endpoint's base URL (POST /messages)")
    ap.add_argument("--n", type=int, default=8_000)
    ap.add_argument("--concurrency", type=int, default=256)
    args = ap.parse_args()
    selector = TimedSelector()
    loop = asyncio.SelectorEventLoop(selector)
    try:
        out = loop.run_until_complete(measure(args, selector))
    finally:
        loop.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
