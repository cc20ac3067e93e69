"""Traffic control, third pass: a campaign stopped (Ctrl-C, a cancelled task) or its runner
killed while a failed-over request waits for the second provider's limit; a Redis that loses
its data while a limit is in use, with and without its clock stepping back.

Delivery claims are proven from the vendor's side, as in :mod:`test_traffic`: each
emulator's own request record and its timestamps (its own clock).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from services import redis_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway
from smsgate.lifecycle import Status
from smsgate.store import open_store
from smsgate.store.base import LogWrite, MessageUpdate, NewMessage
from smsgate.testing import EmulatorControl
from test_traffic import arrivals, busiest, config, echo, echo2, pg_store, plugins, provider  # noqa: F401  (a fixture)
from test_traffic_2 import (  # noqa: F401  (interrupt_when: a fixture)
    cancel_then_resume,
    clock_stepper,
    counted,
    interrupt_when,
    wait_for_requests,
)

HERE = Path(__file__).parent


def accepted(ctl: EmulatorControl) -> list[str]:
    """The recipient of every send request the vendor received and took (no fault injected)."""
    return [r.json()["to"] for r in ctl.requests(method="POST") if not r.fault]




# ----------------------------------------------------------------------------- finding 1
FAILOVER_NUMBERS = [f"0804200{i:04d}" for i in range(5)]
FAILOVER_ALL = sorted(f"+234{n[1:]}" for n in FAILOVER_NUMBERS)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("concurrency, store", [(1, "sqlite"), (3, "sqlite"),
                                                pytest.param(3, "postgres", marks=pytest.mark.postgres)])
def test_ctrl_c_while_a_failed_over_request_waits_for_the_second_providers_limit(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl], tmp_path: Path,  # noqa: F811  (the fixture)
        concurrency: int, store: str, interrupt_when: Callable[[Callable[[], bool]], None],  # noqa: F811  (the fixture)
        request: pytest.FixtureRequest) -> None:
    """The first provider refuses every request (503, declared "not processed": never sent),
    the second takes one every 2 s. Ctrl-C once the second took 2 and the next recipients
    wait at its limit. Before: those were logged ``failed`` (``not_sent``) and the resume sent
    them under new messages (the statistics counting 6 or 7 messages for 5 recipients). Now
    each recipient is one message: the resume sends each recipient the vendor never took
    exactly once, and the statistics match the second vendor's record."""
    (url1, ctl1), (url2, ctl2) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None)
    one = provider(url1, max_retries=0, not_processed_statuses=[503])
    two = provider(url2, limits=[{"rate": 1, "per": 2}])
    url = f"sqlite:///{tmp_path / 'f.db'}" if store == "sqlite" else request.getfixturevalue("pg_store")
    cfg = config(url, {"one": one, "two": two},
                 routes=[{"providers": ["one", "two"]}])
    with Gateway(cfg, plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("failover", text="x", audience=FAILOVER_NUMBERS, mode="fanout",
                                                  batch_size=1, concurrency=concurrency)
        interrupt_when(lambda: len(accepted(ctl2)) >= 2)
        with pytest.raises(KeyboardInterrupt):
            camp.run()
        sent = len(accepted(ctl2))
        progress = camp.progress()
        assert (progress.sent, progress.failed, progress.unknown, progress.sending) == (sent, 0, 0, 0)
        assert progress.pending == 5 - sent
        stats = counted(camp.stats())
        assert stats.get("failed", 0) == 0 and stats.get("not_sent", 0) == 0, stats
        assert stats["submitted"] == sent and stats["total"] <= 5, stats

        final = camp.run()
        assert (final.sent, final.pending, final.failed, final.unknown) == (5, 0, 0, 0)
        assert counted(camp.stats()) == {"total": 5, "submitted": 5}
        messages = gw.tenant("acme").messages()
        assert len({m.message_id for m in messages}) == 5
    assert sorted(accepted(ctl2)) == FAILOVER_ALL  # each recipient taken exactly once
    assert accepted(ctl1) == []
    assert busiest(arrivals(ctl2), 2.0) <= 1
    assert collections.Counter(accepted(ctl2)) == collections.Counter(FAILOVER_ALL)


@pytest.mark.parametrize("kind", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_withdrawn_write_ahead_goes_only_while_queued_and_unanswered(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """``LogWrite.withdrawn`` (the write-ahead of a campaign message stopped while waiting at a
    failover provider's limit) deletes the message with its history, and only a message still
    ``queued`` without a provider id: never one answered meanwhile, never another tenant's."""
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'w.db'}"}.get(kind) or request.getfixturevalue(
        "pg_store")
    now = datetime.now(timezone.utc)
    with open_store(url) as store:
        store.migrate()
        store.write_log("a", LogWrite(inserts=[NewMessage("a", f"m{i}", "+2348012345678", Status.QUEUED, now)
                                               for i in range(3)]))
        store.write_log("b", LogWrite(inserts=[NewMessage("b", "m0", "+2348012345678", Status.QUEUED, now)]))
        store.write_log("a", LogWrite(updates=[MessageUpdate("m1", Status.SUBMITTED, now, provider="one",
                                                             provider_message_id="p1")]))
        assert store.write_log("a", LogWrite(withdrawn=["m0", "m1", "nope"])) is not None
        assert sorted(store.messages_by_id("a", ["m0", "m1", "m2"])) == ["m1", "m2"]
        assert store.get_message("a", "m1").status is Status.SUBMITTED
        assert list(store.messages_by_id("b", ["m0"])) == ["m0"]
        assert {s: n for s, n in store.count_by_status("a").items() if n} == {Status.SUBMITTED: 1, Status.QUEUED: 1}
        # the withdrawn id may be logged again (its history went with it)
        store.write_log("a", LogWrite(inserts=[NewMessage("a", "m0", "+2348012345678", Status.QUEUED, now)]))
        assert [e.status for e in store.get_message("a", "m0").history] == [Status.QUEUED]


# ----------------------------------------------------------------------------- finding 2: Redis loses its data
LEASE = 3.0  # how long a request in flight counts if its process never says (shortened: see flush)


def flush(redis_url: str) -> None:  # noqa: F811  (the fixture's value)
    """What ``FLUSHALL`` (or a restart without persistence) does to this test's keys: all gone,
    the generation record too; returns once a sender found the loss and recorded it. Only the
    keys under the test's own prefix: the Redis is shared."""
    import redis

    base, _, prefix = redis_url.partition("?prefix=")
    client = redis.Redis.from_url(base)
    try:
        names = list(client.scan_iter(f"{prefix}:*"))
        assert names, "nothing to lose: the limit was not in use"
        client.delete(*names)
        deadline = time.monotonic() + 10
        while client.get(f"{prefix}:%generation") is None:
            assert time.monotonic() < deadline, "nobody noticed the loss"
            time.sleep(0.005)
    finally:
        client.close()


def redis_limited(url: str, redis_url: str, **limits: Any) -> dict[str, Any]:  # noqa: F811  (the fixture's value)
    cfg = config("memory://", {"one": provider(url, **limits)}, max_limit_wait=30)
    cfg["traffic"] = redis_url
    return cfg


@pytest.mark.timeout(120)
@pytest.mark.parametrize("step_back", [0.0, 3600.0])
def test_a_redis_losing_its_data_mid_run_keeps_the_limit_and_does_not_stall(
        echo: tuple[str, EmulatorControl], redis_url: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811  (the fixture)
        step_back: float) -> None:
    """2 a second through Redis; its data lost (flushed) once 4 left, with requests waiting
    (and with ``step_back``, Redis' clock then stepping back an hour as NTP corrects it). The
    limit holds at the vendor (no second holds more than 2), and the sends go on within the
    documented bound: everything sent before the loss counts until a request lease and one
    window after it (the lease shortened here to 3 s), never until the clock catches up."""
    url, ctl = echo
    monkeypatch.setattr("smsgate.gateway._GatewayCore.lease", lambda self, tenant, instance: LEASE)
    step = clock_stepper("redis", monkeypatch)
    cfg = redis_limited(url, redis_url, limits=[{"rate": 2}])
    with Gateway(cfg, plugins=plugins()) as gw, ThreadPoolExecutor(3) as pool:
        tenant = gw.tenant("acme")
        sends = [pool.submit(tenant.send, f"0804300{i:04d}", "x") for i in range(12)]
        wait_for_requests(ctl, 4)
        flush(redis_url)
        step(step_back)
        started = time.monotonic()
        results = [f.result() for f in sends]
        took = time.monotonic() - started
    assert {r.status for r in results} == {Status.SUBMITTED}
    got = arrivals(ctl)
    assert sum(n for _, n in got) == 12
    assert busiest(got, 1.0) <= 2, got
    # 8 left at 2 a second after the loss (4 s), held back by the lease and a window at most
    assert took < LEASE + 1.0 + 4.0 + 2.0, took


@pytest.mark.timeout(120)
def test_a_cancelled_async_run_while_a_failed_over_request_waits_for_the_second_providers_limit(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl], tmp_path: Path) -> None:  # noqa: F811  (the fixture)
    """The async run cancelled (as Ctrl-C under ``asyncio.run`` does) while failed-over requests
    wait at the second provider's limit: the same as the sync run's Ctrl-C."""
    (url1, ctl1), (url2, ctl2) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None)
    one = provider(url1, max_retries=0, not_processed_statuses=[503])
    two = provider(url2, limits=[{"rate": 1, "per": 2}])
    cfg = config(f"sqlite:///{tmp_path / 'a.db'}", {"one": one, "two": two}, routes=[{"providers": ["one", "two"]}])

    async def main() -> tuple[dict[str, int], dict[str, int], int, int]:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            camp = await gw.tenant("acme").campaigns.create("failover", text="x", audience=FAILOVER_NUMBERS,
                                                            mode="fanout", batch_size=1, concurrency=3)
            before, after, sent = await cancel_then_resume(camp, len(FAILOVER_NUMBERS), lambda: len(accepted(ctl2)))
            messages = len({m.message_id for m in await gw.tenant("acme").messages()})
            return before, after, sent, messages

    before, after, sent, messages = asyncio.run(main())
    assert before.get("failed", 0) == 0 and before["submitted"] == sent, before
    assert after == {"total": 5, "submitted": 5} and messages == 5
    assert collections.Counter(accepted(ctl2)) == collections.Counter(FAILOVER_ALL)


@pytest.mark.timeout(180)
def test_a_runner_killed_while_a_failed_over_request_waits_for_the_second_providers_limit(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl], tmp_path: Path) -> None:  # noqa: F811  (the fixture)
    """SIGKILL of the runner (the OOM killer, a deploy) while failed-over requests wait at the
    second provider's limit. Before: their messages, logged before the first provider's request,
    stayed ``queued`` ("may have left"), so the next run made those recipients ``unknown`` and never
    sent them (the first provider, failing, could not be asked). Now a message failing over to a
    provider with limits is logged again only once that provider's limit admits it, as a first
    request is: the next run sends each recipient the vendor never took, once."""
    (url1, ctl1), (url2, ctl2) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None)
    one = provider(url1, max_retries=0, not_processed_statuses=[503])
    two = provider(url2, limits=[{"rate": 1, "per": 2}])
    cfg = config(f"sqlite:///{tmp_path / 'k.db'}", {"one": one, "two": two}, routes=[{"providers": ["one", "two"]}])
    path = tmp_path / "k.json"
    path.write_text(json.dumps(cfg))
    with Gateway(cfg, plugins=plugins()) as gw:
        cid = gw.tenant("acme").campaigns.create("failover", text="x", audience=FAILOVER_NUMBERS, mode="fanout",
                                                 batch_size=1, concurrency=3, lease_seconds=1.0).campaign_id
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    runner = subprocess.Popen([sys.executable, str(HERE / "campaign_worker.py"), str(path), cid], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(accepted(ctl2)) < 2:
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.4)  # the next ones wait at two's limit
    finally:
        runner.kill()
        runner.wait()
    sent = len(accepted(ctl2))
    assert sent < 5
    with Gateway(cfg, plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.get(cid)
        final = camp.run()
        assert (final.sent, final.pending, final.failed, final.unknown) == (5, 0, 0, 0), final
        assert counted(camp.stats()) == {"total": 5, "submitted": 5}
    assert collections.Counter(accepted(ctl2)) == collections.Counter(FAILOVER_ALL)
    assert busiest(arrivals(ctl2), 2.0) <= 1
