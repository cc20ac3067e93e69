#!/usr/bin/env python3
"""How long does retention (``Store.purge``) take per million messages, and what does it cost a
sender writing at the same time? SQLite and PostgreSQL.

``.venv/bin/python bench/purge.py [--stores sqlite,postgres] [--n 200000] [--batches 1000,5000]
[--repeat 3] [--dsn postgresql://postgres@127.0.0.1:5432/test]``

Each run is a fresh interpreter (``--one STORE BATCH``) on a fresh database (a temporary SQLite
file; a scratch PostgreSQL schema, dropped after): ``--n`` messages of one tenant, each with two
history events (``queued``, then its outcome), 90 % logged 100 days ago (of those 5 % still
``sent``: never deleted), 10 % yesterday. Then, with a sender thread on a second store object
logging one message every 10 ms (``write_log``, like a gateway's dispatch log):

* a dry run (``purge(dry_run=True)``), then the purge of everything older than 90 days;
* wall time and CPU time of each: this process (``time.process_time``) and, on PostgreSQL, the
  server backends of the purge's own connections (``/proc/PID/stat``, found by their
  ``application_name``; the sender's connections are not counted);
* the sender's write latency while the purge runs (median, p99, max) against the same sender
  alone for a second before.

Variants (store x batch size) run alternately, ``--repeat`` times each; medians are printed
as a Markdown table. The machine is shared: compare CPU per row, not wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from smsgate.models import MessageRecord, Status, StatusEvent, utcnow
from smsgate.store.base import LogWrite, NewMessage, Store

TENANT = "bench"
APP_NAME = "smsgate-bench-purge"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _records(n: int) -> list[MessageRecord]:
    now = utcnow()
    old, recent = now - timedelta(days=100), now - timedelta(days=1)
    out = []
    for i in range(n):
        is_old = i % 10 != 0
        created = (old if is_old else recent) + timedelta(milliseconds=i)
        final = not (is_old and i % 20 == 1)
        status = Status.DELIVERED if final else Status.SENT
        out.append(MessageRecord(
            tenant=TENANT, message_id=f"m{i:09d}", to=f"+23480{i % 10**8:08d}", status=status,
            provider="one", provider_message_id=f"p{i}", created_at=created, updated_at=created,
            history=[StatusEvent(status=Status.QUEUED, at=created, source="gateway"),
                     StatusEvent(status=status, at=created + timedelta(seconds=5), source="report")]))
    return out


def _open(kind: str, where: str, app: str) -> Store:
    if kind == "sqlite":
        from smsgate.store.sqlite import SQLiteStore

        store: Store = SQLiteStore(where)
    else:
        from smsgate.store.postgres import PostgresStore

        dsn, schema = where.split("#")
        sep = "&" if "?" in dsn else "?"
        store = PostgresStore(f"{dsn}{sep}application_name={app}", schema=schema)
    store.migrate()
    return store


def _server_cpu(dsn: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend named ``APP_NAME`` (this host's /proc)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                           (APP_NAME,))]
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


class _Sender(threading.Thread):
    """Logs one message every ``every`` seconds; records each write's latency."""

    def __init__(self, store: Store, every: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.store, self.every = store, every
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.n = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.n += 1
            msg = NewMessage(TENANT, f"live-{uuid.uuid4().hex}", "+2348000000000", Status.QUEUED, utcnow())
            t0 = time.perf_counter()
            self.store.write_log(TENANT, LogWrite(inserts=[msg]))
            self.latencies.append(time.perf_counter() - t0)
            time.sleep(self.every)


def _lat(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return {}
    return {"median_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 2),
            "max_ms": round(ms[-1], 2), "writes": len(ms)}


def one(kind: str, batch: int, n: int, dsn: str) -> dict[str, Any]:
    """One measured run in this process (see the module doc)."""
    tmp = tempfile.mkdtemp(prefix="bench-purge-")
    schema = f"bench_purge_{uuid.uuid4().hex[:8]}"
    where = str(Path(tmp) / "purge.db") if kind == "sqlite" else f"{dsn}#{schema}"
    store = _open(kind, where, APP_NAME)
    try:
        records = _records(n)
        t0 = time.perf_counter()
        for i in range(0, n, 20_000):
            store.insert_messages(records[i : i + 20_000])
        load = time.perf_counter() - t0
        del records
        if kind == "postgres":
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"ANALYZE {schema}.messages")
                conn.execute(f"ANALYZE {schema}.message_events")
        sender_store = _open(kind, where, "smsgate-bench-sender")
        sender = _Sender(sender_store)
        sender.start()
        time.sleep(1.0)
        alone = list(sender.latencies)
        out: dict[str, Any] = {"store": kind, "batch": batch, "n": n, "load_s": round(load, 2),
                               "sender_alone": _lat(alone)}
        for label, dry in (("dry_run", True), ("purge", False)):
            server0 = _server_cpu(dsn) if kind == "postgres" else {}
            mark = len(sender.latencies)
            c0, w0 = time.process_time(), time.perf_counter()
            result = store.purge(TENANT, before=utcnow() - timedelta(days=90), dry_run=dry, batch_size=batch)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            server = _cpu_delta(server0, _server_cpu(dsn)) if kind == "postgres" else 0.0
            out[label] = {"wall_s": round(wall, 2), "client_cpu_s": round(cpu, 2),
                          "server_cpu_s": round(server, 2), "messages": result.messages, "events": result.events,
                          "kept": result.kept_messages, "sender_during": _lat(sender.latencies[mark:])}
        sender.stop.set()
        sender.join()
        sender_store.close()
        return out
    finally:
        store.close()
        if kind == "postgres":
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for f in Path(tmp).iterdir():
            f.unlink()
        os.rmdir(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--batches", default="1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--one", nargs=2, metavar=("STORE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.n, args.dsn)))
        return
    variants = [(s, int(b)) for s in args.stores.split(",") for b in args.batches.split(",")]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(args.repeat):
        for kind, batch in variants:  # alternately, each in a fresh interpreter
            proc = subprocess.run([sys.executable, __file__, "--one", kind, str(batch), "--n", str(args.n),
                                   "--dsn", args.dsn], capture_output=True, text=True, check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[(kind, batch)].append(row)
            print(f"# run {r + 1} {kind} batch {batch}: {json.dumps(row)}", file=sys.stderr, flush=True)
    deleted = next(iter(runs.values()))[0]["purge"]["messages"]
    print(f"n = {args.n} messages ({deleted} deleted, two events each), medians of {args.repeat}; "
          "per million messages deleted")
    print()
    print("| store | batch | purge wall s/M | client CPU s/M | server CPU s/M | dry run wall s/M "
          "| sender write alone median / max ms | during purge median / p99 / max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for (kind, batch), rows in runs.items():
        per = 1e6 / rows[0]["purge"]["messages"]

        def med(path: tuple[str, ...], rows: list[dict[str, Any]] = rows) -> float:
            vals = []
            for row in rows:
                v: Any = row
                for key in path:
                    v = v[key]
                vals.append(float(v))
            return statistics.median(vals)

        print(f"| {kind} | {batch} | {med(('purge', 'wall_s')) * per:.0f} | {med(('purge', 'client_cpu_s')) * per:.0f} "
              f"| {med(('purge', 'server_cpu_s')) * per:.0f} | {med(('dry_run', 'wall_s')) * per:.0f} "
              f"| {med(('sender_alone', 'median_ms')):.1f} / {med(('sender_alone', 'max_ms')):.1f} "
              f"| {med(('purge', 'sender_during', 'median_ms')):.1f} / {med(('purge', 'sender_during', 'p99_ms')):.1f}"
              f" / {med(('purge', 'sender_during', 'max_ms')):.1f} |")


if __name__ == "__main__":
    main()
