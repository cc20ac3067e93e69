"""One benchmark measurement per process: ``python bench/workloads.py NAME [options]``.

Prints one JSON object on stdout: ``{"name", "n", "seconds", "rate", "ok", "note"}``.
``bench/run.py`` runs every workload in a fresh interpreter (no state carried
between measurements) and builds docs/performance.md from the results.

Every send workload first runs a short *pilot* (which also opens the
connections and warms caches), then sizes the measured run to
``min(--n, pilot rate x --budget)`` messages (at least ``--min-n``), so slow
clients are measured on fewer messages instead of running for minutes. Only the
measured run is timed.

Workloads (see run.py for which endpoint and concurrency each gets):

``aiohttp``          raw aiohttp ClientSession, ``--concurrency`` workers (the ceiling)
``httpx-async``      raw httpx.AsyncClient, ``--concurrency`` workers
``aio-raw``          raw smsgate.aio.AiohttpClient (httpx.Request in, httpx.Response out), ``--concurrency`` workers
``httpx-sync``       raw httpx.Client, sequential
``gw-async-httpx``   smsgate AsyncGateway.send_many on httpx.AsyncClient
``gw-async-aio``     smsgate AsyncGateway.send_many on smsgate.aio.AiohttpClient (its default)
``gw-sync``          smsgate Gateway.send_many (httpx.Client)
``camp-async``       a campaign's run() under AsyncGateway (AiohttpClient): claims, a write-ahead per request
``camp-sync``        a campaign's run() under Gateway (``--concurrency`` worker threads, an httpx.Client each)
``ingest-sqlite``    SQLiteStore.apply_reports: --n messages, reports in batches of --batch
``ingest-postgres``  the same on smsgate.store.postgres (skipped when unavailable)

``--profile FILE`` (gw-* only) runs the measured send_many under cProfile and
dumps the stats to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchprovider import API_KEY, TEXT, config, plugins  # noqa: E402

SENDER = "BENCH"


def national(i: int, block: str = "803") -> str:
    """A distinct Nigerian mobile number as people type it (``0803 000 0042``)."""
    return f"0{block}{i:07d}"


def e164(i: int, block: str = "803") -> str:
    return f"+234{block}{i:07d}"


def payload(to: str) -> dict[str, str]:
    return {"to": to, "text": TEXT, "from": SENDER}


def sized(rate: float, args: argparse.Namespace) -> int:
    return max(min(args.min_n, args.n), min(args.n, int(rate * args.budget)))


def result(name: str, n: int, seconds: float, ok: int, note: str = "", cpu: float = 0.0) -> dict[str, Any]:
    """One measurement: ``cpu`` is this process's CPU seconds during the timed run."""
    return {"name": name, "n": n, "seconds": seconds, "rate": n / seconds if seconds else 0.0, "ok": ok,
            "cpu_us": cpu / n * 1e6 if n else 0.0, "note": note}


# ------------------------------------------------------------- raw async
async def drive(n: int, concurrency: int, one: Callable[[int], Awaitable[bool]],
                deadline: float | None = None) -> tuple[int, int, float]:
    """Run ``one(i)`` for i < n with ``concurrency`` workers; returns (done, ok, seconds)."""
    items = iter(range(n))
    done = ok = 0

    async def worker() -> None:
        nonlocal done, ok
        for i in items:
            if deadline is not None and time.perf_counter() > deadline:
                return
            good = await one(i)
            done += 1
            ok += good

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
    return done, ok, time.perf_counter() - t0


async def raw_async(name: str, args: argparse.Namespace) -> dict[str, Any]:
    url = args.url + "/messages"
    headers = {"X-Api-Key": API_KEY}
    offset = [0]
    if name == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=args.limit or 100)
        session = aiohttp.ClientSession(connector=connector)

        async def one(i: int) -> bool:
            async with session.post(url, json=payload(e164(i + offset[0])), headers=headers) as resp:
                data = await resp.json()
                return resp.status == 200 and data["status"] == "accepted"

        close: Callable[[], Awaitable[None]] = session.close
    elif name == "aio-raw":
        import httpx

        from smsgate.aio import AiohttpClient

        adapter = AiohttpClient(limit=args.limit or 256, timeout=30.0)

        async def one(i: int) -> bool:
            request = httpx.Request("POST", url, json=payload(e164(i + offset[0])), headers=headers)
            resp = await adapter.send(request)
            return resp.status_code == 200 and resp.json()["status"] == "accepted"

        close = adapter.aclose
    else:
        import httpx

        if args.limit:
            client = httpx.AsyncClient(
                timeout=30.0, limits=httpx.Limits(max_connections=args.limit, max_keepalive_connections=args.limit)
            )
        else:
            client = httpx.AsyncClient(timeout=30.0)

        async def one(i: int) -> bool:
            resp = await client.post(url, json=payload(e164(i + offset[0])), headers=headers)
            return resp.status_code == 200 and resp.json()["status"] == "accepted"

        close = client.aclose
    try:
        pilot_n = max(2 * args.concurrency, 100)
        done, _, secs = await drive(pilot_n, args.concurrency, one, time.perf_counter() + args.pilot_seconds)
        offset[0] = pilot_n
        n = sized(done / secs, args)
        c0 = time.process_time()
        n, ok, secs = await drive(n, args.concurrency, one)
        cpu = time.process_time() - c0
    finally:
        await close()
    return result(name, n, secs, ok, f"concurrency {args.concurrency}, pool {args.limit or 'default'}", cpu)


# --------------------------------------------------------------- raw sync
def raw_sync(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    url = args.url + "/messages"
    headers = {"X-Api-Key": API_KEY}
    with httpx.Client(timeout=30.0) as client:

        def one(i: int) -> bool:
            resp = client.post(url, json=payload(e164(i)), headers=headers)
            return resp.status_code == 200 and resp.json()["status"] == "accepted"

        t0 = time.perf_counter()
        deadline = t0 + args.pilot_seconds
        done = 0
        while done < 200 and time.perf_counter() < deadline:
            one(done)
            done += 1
        n = sized(done / (time.perf_counter() - t0), args)
        ok = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        for i in range(n):
            ok += one(1_000_000 + i)
        secs = time.perf_counter() - t0
        cpu = time.process_time() - c0
    return result("httpx-sync", n, secs, ok, "sequential", cpu)


# ---------------------------------------------------------------- gateway
def _seed_optouts(store: Any, count: int = 10_000) -> None:
    from smsgate.models import OptOut

    store.add_optouts("bench", [OptOut(phone=e164(i, "809"), reason="STOP") for i in range(count)])


def _profiled(profile: str | None) -> Any:
    if not profile:
        return contextlib.nullcontext()

    import cProfile

    @contextlib.contextmanager
    def run() -> Any:
        prof = cProfile.Profile()
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
            prof.dump_stats(profile)

    return run()


async def gw_async(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import httpx

    from smsgate import AsyncGateway

    client: Any
    if name == "gw-async-aio":
        from smsgate.aio import AiohttpClient

        client = AiohttpClient(limit=args.limit or 256)  # what AsyncGateway makes by default, with this limit
        pool = f"AiohttpClient, limit {args.limit or 256}"
    elif args.limit:
        client = httpx.AsyncClient(
            timeout=30.0, limits=httpx.Limits(max_connections=args.limit, max_keepalive_connections=args.limit)
        )
        pool = f"httpx pool {args.limit}"
    else:
        client = httpx.AsyncClient(timeout=30.0)
        pool = "httpx default pool"
    gw = AsyncGateway(config(args.url, f"sqlite:///{workdir / 'log.db'}"), plugins=plugins(), http_client=client)
    try:
        _seed_optouts(gw.store)
        tenant = gw.tenant("bench")
        pilot_n = max(args.concurrency, 50)
        t0 = time.perf_counter()
        await tenant.send_many([national(i, "805") for i in range(pilot_n)], TEXT, concurrency=args.concurrency)
        n = sized(pilot_n / (time.perf_counter() - t0), args)
        numbers = [national(i) for i in range(n)]
        with _profiled(args.profile):
            c0 = time.process_time()
            t0 = time.perf_counter()
            results = await tenant.send_many(numbers, TEXT, concurrency=args.concurrency)
            secs = time.perf_counter() - t0
            cpu = time.process_time() - c0
    finally:
        await gw.aclose()
        await client.aclose()
    ok = sum(r.ok for r in results)
    return result(name, n, secs, ok, f"concurrency {args.concurrency}, {pool}, SQLite log", cpu)


def gw_sync(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from smsgate import Gateway

    with Gateway(config(args.url, f"sqlite:///{workdir / 'log.db'}"), plugins=plugins()) as gw:
        _seed_optouts(gw.store)
        tenant = gw.tenant("bench")
        pilot_n = 20
        t0 = time.perf_counter()
        tenant.send_many([national(i, "805") for i in range(pilot_n)], TEXT)
        n = sized(pilot_n / (time.perf_counter() - t0), args)
        numbers = [national(i) for i in range(n)]
        with _profiled(args.profile):
            c0 = time.process_time()
            t0 = time.perf_counter()
            results = tenant.send_many(numbers, TEXT)
            secs = time.perf_counter() - t0
            cpu = time.process_time() - c0
    ok = sum(r.ok for r in results)
    return result("gw-sync", n, secs, ok, "sequential, httpx.Client, SQLite log", cpu)


# -------------------------------------------------------------- campaigns
def _campaign_size(args: argparse.Namespace, rate: float) -> int:
    return sized(rate, args)


async def camp_async(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from smsgate import AsyncGateway
    from smsgate.aio import AiohttpClient

    client = AiohttpClient(limit=args.limit or 256)
    gw = AsyncGateway(config(args.url, f"sqlite:///{workdir / 'log.db'}"), plugins=plugins(), http_client=client)
    try:
        tenant = gw.tenant("bench")
        pilot = await tenant.campaigns.create("pilot", text=TEXT, audience=[national(i, "805") for i in range(200)],
                                              concurrency=args.concurrency)
        t0 = time.perf_counter()
        await pilot.run()
        n = _campaign_size(args, 200 / (time.perf_counter() - t0))
        camp = await tenant.campaigns.create("bench", text=TEXT, audience=[national(i) for i in range(n)],
                                             concurrency=args.concurrency)
        with _profiled(args.profile):
            c0 = time.process_time()
            t0 = time.perf_counter()
            done = await camp.run()
            secs = time.perf_counter() - t0
            cpu = time.process_time() - c0
    finally:
        await gw.aclose()
        await client.aclose()
    return result("camp-async", n, secs, done.sent,
                  f"campaign run(), concurrency {args.concurrency}, AiohttpClient, SQLite store", cpu)


def camp_sync(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from smsgate import Gateway

    with Gateway(config(args.url, f"sqlite:///{workdir / 'log.db'}"), plugins=plugins()) as gw:
        tenant = gw.tenant("bench")
        pilot = tenant.campaigns.create("pilot", text=TEXT, audience=[national(i, "805") for i in range(200)],
                                        concurrency=args.concurrency)
        t0 = time.perf_counter()
        pilot.run()
        n = _campaign_size(args, 200 / (time.perf_counter() - t0))
        camp = tenant.campaigns.create("bench", text=TEXT, audience=[national(i) for i in range(n)],
                                       concurrency=args.concurrency)
        with _profiled(args.profile):
            c0 = time.process_time()
            t0 = time.perf_counter()
            done = camp.run()
            secs = time.perf_counter() - t0
            cpu = time.process_time() - c0
    return result("camp-sync", n, secs, done.sent,
                  f"campaign run(), {args.concurrency} threads, an httpx.Client each, SQLite store", cpu)


# -------------------------------------------------------------- ingestion
def _open_postgres(schema: str) -> tuple[Any, str]:
    """A PostgresStore on 127.0.0.1:5432/test in its own schema, or RuntimeError saying why not."""
    import socket

    try:
        from smsgate.store.postgres import PostgresStore
    except ImportError as exc:
        raise RuntimeError(f"smsgate.store.postgres is not importable ({exc})") from None
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            pass
    except OSError as exc:
        raise RuntimeError(f"PostgreSQL 127.0.0.1:5432 is not reachable ({exc})") from None
    dsn = "postgresql://127.0.0.1:5432/test"
    try:
        store = PostgresStore(dsn, schema=schema)
        store.migrate()
    except Exception as exc:
        raise RuntimeError(f"could not open PostgresStore({dsn!r}): {exc}") from None
    return store, dsn


def _drop_schema(dsn: str, schema: str) -> None:
    with contextlib.suppress(Exception):
        import psycopg
        from psycopg import sql

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def ingest(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from smsgate.models import DeliveryReport, MessageRecord, Status, StatusEvent, utcnow

    tenant = "bench"
    dsn = ""
    schema = f"smsgate_bench_{os.getpid()}"
    if name == "ingest-postgres":
        try:
            store, dsn = _open_postgres(schema)
        except RuntimeError as exc:
            return {"name": name, "skipped": str(exc)}
        where = f"PostgreSQL 127.0.0.1:5432/test, schema {schema} (dropped afterwards)"
    else:
        from smsgate.store import open_store

        store = open_store(f"sqlite:///{workdir / 'ingest.db'}")
        where = "SQLite file (WAL)"
    try:
        now = utcnow()
        n = args.n
        chunk = 5_000
        for start in range(0, n, chunk):
            store.insert_messages([
                MessageRecord(
                    tenant=tenant, message_id=f"msg_{i:08d}", to=e164(i), status=Status.SUBMITTED,
                    raw_status="accepted", provider="main", provider_message_id=f"pm-{i:08d}", sender=SENDER,
                    segments=1, created_at=now, updated_at=now, submitted_at=now,
                    history=[StatusEvent(status=Status.QUEUED, at=now, source="gateway"),
                             StatusEvent(status=Status.SUBMITTED, raw_status="accepted", at=now, source="main")],
                )
                for i in range(start, min(n, start + chunk))
            ])
        order = list(range(n))
        random.Random(8).shuffle(order)  # reports arrive in no particular order
        later = now + timedelta(seconds=5)
        reports = [
            DeliveryReport(provider="main", provider_message_id=f"pm-{i:08d}", status=Status.DELIVERED,
                           raw_status="DELIVRD", occurred_at=later)
            for i in order
        ]
        batches = [reports[i : i + args.batch] for i in range(0, n, args.batch)]
        matched = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        for batch in batches:
            matched += sum(mid is not None for mid in store.apply_reports(tenant, batch))
        secs = time.perf_counter() - t0
        cpu = time.process_time() - c0
        delivered = store.count_by_status(tenant)[Status.DELIVERED]
    finally:
        store.close()
        if dsn:
            _drop_schema(dsn, schema)
    note = f"{where}; {n:,} messages, batches of {args.batch:,}; matched {matched:,}, delivered {delivered:,}"
    return result(name, n, secs, delivered, note, cpu)


# ------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--url", default="")
    parser.add_argument("--n", type=int, default=20_000, help="messages (upper bound for send workloads)")
    parser.add_argument("--min-n", type=int, default=200, help="lower bound on messages measured")
    parser.add_argument("--budget", type=float, default=8.0, help="target seconds for the measured run")
    parser.add_argument("--pilot-seconds", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="connection pool size (0: client default)")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    name = args.name
    with tempfile.TemporaryDirectory(prefix="smsgate-bench-") as tmp:
        workdir = Path(tmp)
        if name in ("aiohttp", "httpx-async", "aio-raw"):
            out = asyncio.run(raw_async(name, args))
        elif name == "httpx-sync":
            out = raw_sync(args)
        elif name in ("gw-async-httpx", "gw-async-aio"):
            out = asyncio.run(gw_async(name, args, workdir))
        elif name == "gw-sync":
            out = gw_sync(args, workdir)
        elif name == "camp-async":
            out = asyncio.run(camp_async(args, workdir))
        elif name == "camp-sync":
            out = camp_sync(args, workdir)
        elif name in ("ingest-sqlite", "ingest-postgres"):
            out = ingest(name, args, workdir)
        else:
            parser.error(f"unknown workload {name!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
