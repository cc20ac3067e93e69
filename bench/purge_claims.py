#!/usr/bin/env python3
"""What does a purge's first step cost, resolving the expired claims of every campaign
(``Gateway.purge`` -> ``recover_expired_claims``), on a store with many finished campaigns?

``.venv/bin/python bench/purge_claims.py [--stores sqlite,postgres] [--finished 2000] [--running 20]
[--repeat 3]``

A fresh database per store (a temporary SQLite file; a scratch PostgreSQL schema at
127.0.0.1:5432/test, dropped after): ``--finished`` completed campaigns of 5 sent recipients
each and ``--running`` running campaigns of 50 recipients, 10 of them claimed by a runner
whose lease ended (so each step has real work: those 10 are put back to ``pending``, and
claimed again before the next repeat). Prints the median wall time and store queries of the
step, and how many claims it resolved.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from smsgate import Gateway
from smsgate.models import CampaignStatus, utcnow
from smsgate.store.base import CampaignRow, RecipientRow, RecipientState, RecipientUpdate, Store
from smsgate.store.sqlite import SQLiteStore

TENANT = "bench"


def _fill(store: Store, finished: int, running: int) -> list[str]:
    now = utcnow() - timedelta(days=1)
    for i in range(finished):
        cid = f"done{i:05d}"
        store.create_campaign(CampaignRow(TENANT, cid, cid, CampaignStatus.COMPLETED, now, now))
        store.add_recipients(TENANT, cid, [RecipientRow(k, f"+2348030{i:05d}{k}", RecipientState.PENDING)
                                           for k in range(5)])
        store.update_recipients(TENANT, cid, [RecipientUpdate(k + 1, RecipientState.SENT) for k in range(5)])
    live = []
    for i in range(running):
        cid = f"run{i:03d}"
        store.create_campaign(CampaignRow(TENANT, cid, cid, CampaignStatus.RUNNING, now, now))
        store.add_recipients(TENANT, cid, [RecipientRow(k, f"+2348031{i:03d}{k:03d}", RecipientState.PENDING)
                                           for k in range(50)])
        live.append(cid)
    return live


def _claim(store: Store, live: list[str], n: list[int]) -> None:
    """10 claims in each running campaign, by a runner whose lease has ended."""
    for cid in live:
        store.start_runner(TENANT, cid, "dead", utcnow() - timedelta(hours=1))
        n[0] += 1
        store.claim_recipients(TENANT, cid, 10, lambda: f"msg-{n[0]}-{time.monotonic_ns()}", owner="dead")


class Counting:
    """Counts the calls a store gets (wraps it)."""

    def __init__(self, store: Store) -> None:
        self.store, self.calls = store, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if callable(attr) and not name.startswith("_"):
            def counted(*a: Any, **kw: Any) -> Any:
                self.calls += 1
                return attr(*a, **kw)
            return counted
        return attr


def one(kind: str, finished: int, running: int, repeat: int) -> dict[str, float]:
    tmp = tempfile.mkdtemp()
    if kind == "sqlite":
        store: Store = SQLiteStore(str(Path(tmp) / "log.db"))
    else:
        import sys
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from test_store_postgres import scratch_store  # a fresh schema, dropped on close
        store = scratch_store()
    store.migrate()
    try:
        t0 = time.perf_counter()
        live = _fill(store, finished, running)
        fill = time.perf_counter() - t0
        cfg = {"tenants": {TENANT: {"default_region": "NG", "providers": {}}}}
        times, calls, resolved = [], [], []
        n = [0]
        with Gateway(cfg, store=store) as gw:
            core = gw._core_
            for _ in range(repeat):
                _claim(store, live, n)
                counting = Counting(store)
                core.store = counting  # type: ignore[assignment]
                try:
                    t0 = time.perf_counter()
                    resolved.append(core.recover_expired_claims(None))
                    times.append(time.perf_counter() - t0)
                finally:
                    core.store = store
                calls.append(counting.calls)
        return {"fill_s": fill, "median_s": statistics.median(times), "calls": statistics.median(calls),
                "resolved": statistics.median(resolved)}
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--finished", type=int, default=2000)
    ap.add_argument("--running", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| store | campaigns (finished + running) | median time | store calls | claims resolved |")
    print("|---|---|---|---|---|")
    for kind in args.stores.split(","):
        r = one(kind, args.finished, args.running, args.repeat)
        print(f"| {kind} | {args.finished} + {args.running} | {r['median_s'] * 1000:.0f} ms | {r['calls']:.0f} "
              f"| {r['resolved']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
