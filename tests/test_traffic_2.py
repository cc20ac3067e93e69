"""Traffic control under a wall clock that steps back, and a limited campaign run stopped by Ctrl-C.

Proven from the vendor's side, as in :mod:`test_traffic`: the emulator's own request
record and its timestamps (its own clock, never the one stepped back here).

* A shared limit's state (SQLite, PostgreSQL, Redis) is dated by its backend's clock, a wall
  clock: NTP stepping it back an hour must neither hold the sends back until it catches up
  (at most one window more) nor let a window at the vendor hold more than the limit. Only the
  clock the backend reads is moved (``_traffic_now``, Redis' ``TIME``); the store is real.
* A campaign run held back by its rate limit and stopped (Ctrl-C, a cancelled task) leaves
  the recipients whose request never left ``pending``, not in the log (its statistics count
  only what the vendor received), and the resume sends each of them once.
"""

from __future__ import annotations

import _thread
import asyncio
import collections
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from services import redis_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway
from smsgate.models import Stats, Status
from smsgate.store.postgres import PostgresStore
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import EmulatorControl
from test_traffic import arrivals, busiest, config, echo, echo2, pg_store, plugins, provider  # noqa: F401  (a fixture)

HOUR = 3600.0


# ----------------------------------------------------------------------------- a clock stepping back
def clock_stepper(kind: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """A function stepping the clock the ``kind`` backend dates its limits with back by some
    seconds (as NTP correcting it does); nothing else is changed."""
    behind = [0.0]
    if kind == "redis":
        import redis.client

        real_time = redis.client.Pipeline.time

        def redis_time(self: Any, **kwargs: Any) -> Any:
            answer = real_time(self, **kwargs)
            if not isinstance(answer, tuple):  # queued in a MULTI (never done by the backend)
                return answer
            micros = round((answer[0] + answer[1] / 1e6 - behind[0]) * 1e6)
            return divmod(micros, 1_000_000)

        monkeypatch.setattr(redis.client.Pipeline, "time", redis_time)
    else:
        cls: Any = SQLiteStore if kind == "sqlite" else PostgresStore
        real_now = cls._traffic_now
        monkeypatch.setattr(cls, "_traffic_now", lambda self, conn: real_now(self, conn) - behind[0])

    def step_back(seconds: float) -> None:
        behind[0] += seconds

    return step_back


def limited(kind: str, url: str, tmp_path: Path, request: pytest.FixtureRequest,
            **limits: Any) -> dict[str, Any]:
    """A tenant whose one provider is limited, its limits kept in ``kind`` (a store, or Redis)."""
    store = f"sqlite:///{tmp_path / 'limits.db'}" if kind != "postgres" else request.getfixturevalue("pg_store")
    cfg = config(store, {"one": provider(url, **limits)}, max_limit_wait=10)
    if kind == "redis":
        cfg["traffic"] = request.getfixturevalue("redis_url")
        cfg["store"] = "memory://"
    return cfg


def wait_for_requests(ctl: EmulatorControl, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(ctl.requests(method="POST")) < n:
        assert time.monotonic() < deadline, f"the vendor never received {n} requests"
        time.sleep(0.01)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "redis"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", BACKENDS)
def test_a_clock_stepping_back_an_hour_neither_stalls_sends_nor_lets_the_limit_be_exceeded(
        echo: tuple[str, EmulatorControl], tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811  (the fixture)
        request: pytest.FixtureRequest) -> None:
    """2 a second; the clock steps back an hour once two have left, with requests waiting for
    their place. Before: every later request waited for the clock to catch up (an hour;
    ``max_limit_wait`` refused them). Now: the requests sent before the step count as sent at
    the step (one window more at most), and no second at the vendor holds more than 2."""
    url, ctl = echo
    step_back = clock_stepper(kind, monkeypatch)
    cfg = limited(kind, url, tmp_path, request, limits=[{"rate": 2}])
    with Gateway(cfg, plugins=plugins()) as gw, ThreadPoolExecutor(3) as pool:
        tenant = gw.tenant("acme")
        first = [pool.submit(tenant.send, f"0803910{i:04d}", "x") for i in range(6)]
        wait_for_requests(ctl, 2)
        step_back(HOUR)
        started = time.monotonic()
        results = [f.result() for f in first]
        results += list(pool.map(lambda i: tenant.send(f"0803910{i:04d}", "x"), range(6, 10)))
        took = time.monotonic() - started
    assert {r.status for r in results} == {Status.SUBMITTED}
    got = arrivals(ctl)
    assert sum(n for _, n in got) == 10
    assert busiest(got, 1.0) <= 2, got
    # 8 more at 2 a second (4 s), and one window more at most for those sent before the step
    assert took < 4.0 + 1.0 + 2.0, took


@pytest.mark.timeout(90)
def test_a_request_waiting_its_place_through_the_step_leaves_at_its_time(
        echo: tuple[str, EmulatorControl], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811  (the fixture)
        request: pytest.FixtureRequest) -> None:
    """One every 6 s: the second request's place is 6 s away, a wait long enough to renew its
    place's lease on the way (every 5 s). The clock steps back an hour meanwhile: it used to
    wait for its place in the stepped-back clock (an hour); it leaves within one more window."""
    url, ctl = echo
    step_back = clock_stepper("sqlite", monkeypatch)
    cfg = limited("sqlite", url, tmp_path, request, limits=[{"rate": 1, "per": 6}])
    cfg["tenants"]["acme"].pop("max_limit_wait")
    with Gateway(cfg, plugins=plugins()) as gw, ThreadPoolExecutor(2) as pool:
        tenant = gw.tenant("acme")
        started = time.monotonic()
        sends = [pool.submit(tenant.send, f"0803920{i:04d}", "x") for i in range(2)]
        wait_for_requests(ctl, 1)
        time.sleep(0.5)  # the second waits for its place
        step_back(HOUR)
        done = threading.Event()
        pool.submit(lambda: (sends[1].exception(), done.set()))
        assert done.wait(6.0 + 6.0 + 3.0), "the request waiting for its place stalled after the clock stepped back"
        took = time.monotonic() - started
        assert {f.result().status for f in sends} == {Status.SUBMITTED}
    got = arrivals(ctl)
    assert len(got) == 2 and busiest(got, 6.0) <= 1, got
    assert took < 6.0 + 6.0 + 2.0, took


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", BACKENDS)
def test_an_open_breaker_is_probed_after_its_cooldown_though_the_clock_stepped_back(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl], tmp_path: Path, kind: str,  # noqa: F811  (the fixture)
        monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The breaker's state is dated by the same clock: opened, then the clock steps back an
    hour. It used to skip the instance until the clock caught up (an hour); it is probed one
    cooldown after the step at most, and the vendor that answers again gets the message."""
    (url1, ctl1), (url2, ctl2) = echo, echo2
    step_back = clock_stepper(kind, monkeypatch)
    ctl1.fault(kind="status", status=503, count=None)  # refused, "not processed" (declared below)
    one = provider(url1, max_retries=0, not_processed_statuses=[503],
                   breaker={"failures": 2, "window": 60, "cooldown": 1})
    cfg = limited(kind, url1, tmp_path, request)
    cfg["tenants"]["acme"]["providers"] = {"one": one, "two": provider(url2, max_retries=0)}
    cfg["tenants"]["acme"]["routes"] = [{"providers": ["one", "two"]}]
    with Gateway(cfg, plugins=plugins()) as gw:
        tenant = gw.tenant("acme")
        assert [tenant.send(f"0803930{i:04d}", "x").provider for i in range(3)] == ["two"] * 3
        assert len(ctl1.requests(method="POST")) == 2  # then open: skipped
        step_back(HOUR)
        ctl1.reset()  # the vendor answers again
        started = time.monotonic()
        while tenant.send("08039400000", "x").provider != "one":
            assert time.monotonic() - started < 1.0 + 1.0 + 3.0, "the breaker stayed open after the clock stepped back"
            time.sleep(0.2)
    assert len(ctl1.requests(method="POST")) == 1  # the probe (the reset forgot the refused ones)
    assert len(ctl2.requests(method="POST")) >= 3


# ----------------------------------------------------------------------------- Ctrl-C in a limited campaign
def counted(stats: Stats) -> dict[str, int]:
    """The counts of a campaign's statistics that are not 0."""
    fields = ("total", "queued", "submitted", "sent", "delivered", "unknown", "failed", "not_sent", "rejected")
    return {f: getattr(stats, f) for f in fields if getattr(stats, f)}


NUMBERS = [f"0804100{i:04d}" for i in range(5)]

async def cancel_then_resume(camp: Any, n: int, sent_so_far: Callable[[], int]) -> tuple[dict[str, int],
                                                                                    dict[str, int], int]:
    """Cancel ``camp``'s async run once the vendor took 2 of its ``n`` recipients (and 0.4 s more,
    while the rest wait for a limit), check they are ``pending``, resume it to its end: the
    statistics before and after, and how many the vendor took before the cancel."""
    task = asyncio.ensure_future(camp.run())
    while sent_so_far() < 2:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = sent_so_far()
    progress = await camp.progress()
    assert (progress.sent, progress.pending, progress.failed, progress.unknown) == (sent, n - sent, 0, 0)
    before = counted(await camp.stats())
    final = await camp.run()
    assert (final.sent, final.pending) == (n, 0)
    return before, counted(await camp.stats()), sent
ALL = sorted(f"+234{n[1:]}" for n in NUMBERS)


def received(ctl: EmulatorControl) -> list[str]:
    """The recipient of every send request the vendor received, in order."""
    return [r.json()["to"] for r in ctl.requests(method="POST")]


@pytest.fixture
def interrupt_when() -> Iterator[Callable[[Callable[[], bool]], None]]:
    """Ctrl-C (``KeyboardInterrupt`` in the test's thread) once ``ready()`` holds, and a little
    after (the next requests are waiting for their limit)."""
    threads: list[threading.Thread] = []

    def arm(ready: Callable[[], bool]) -> None:
        def press() -> None:
            deadline = time.monotonic() + 30
            while not ready():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.4)
            _thread.interrupt_main()

        threads.append(threading.Thread(target=press, daemon=True))
        threads[-1].start()

    yield arm
    for t in threads:
        t.join(5)


@pytest.fixture
def interrupt_after(interrupt_when: Callable[[Callable[[], bool]], None]) -> Callable[[EmulatorControl, int], None]:
    """Ctrl-C (``KeyboardInterrupt`` in the test's thread) once the vendor received ``n`` requests
    and the next ones wait for their limit."""
    def arm(ctl: EmulatorControl, n: int) -> None:
        interrupt_when(lambda: len(ctl.requests(method="POST")) >= n)

    return arm


@pytest.mark.timeout(120)
@pytest.mark.parametrize("concurrency", [1, 3])
def test_ctrl_c_in_a_limited_run_leaves_the_unsent_pending_out_of_the_stats_and_sent_once_on_resume(
        echo: tuple[str, EmulatorControl], tmp_path: Path, concurrency: int,  # noqa: F811  (the fixture)
        interrupt_after: Callable[[EmulatorControl, int], None]) -> None:
    """One every 2 s; Ctrl-C once 2 left. Before: the recipients still waiting for the limit
    were logged ``failed`` (``not_sent``), so ``stats()`` counted messages the vendor never
    received (and kept counting them once the resume sent those recipients again under new
    messages: 7 or 8 messages for 5 recipients). Now they are ``pending`` and not in the log,
    as after a kill; the resume sends each once and the statistics match the vendor's record."""
    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 'c.db'}", {"one": provider(url, limits=[{"rate": 1, "per": 2}])})
    with Gateway(cfg, plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("slow", text="x", audience=NUMBERS, mode="fanout",
                                                  batch_size=1, concurrency=concurrency)
        interrupt_after(ctl, 2)
        with pytest.raises(KeyboardInterrupt):
            camp.run()
        sent = len(received(ctl))
        progress = camp.progress()
        assert (progress.sent, progress.pending, progress.failed, progress.unknown, progress.sending) == (
            sent, 5 - sent, 0, 0, 0)
        assert counted(camp.stats()) == {"total": sent, "submitted": sent}
        assert len({m.message_id for m in gw.tenant("acme").messages()}) == sent  # nothing else logged

        final = camp.run()
        assert (final.sent, final.pending, final.failed, final.unknown) == (5, 0, 0, 0)
        assert counted(camp.stats()) == {"total": 5, "submitted": 5}
    assert sorted(received(ctl)) == ALL  # each recipient exactly once
    assert busiest(arrivals(ctl), 2.0) <= 1


@pytest.mark.timeout(120)
def test_a_cancelled_async_limited_run_leaves_the_unsent_pending_out_of_the_stats(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:  # noqa: F811  (the fixture)
    """The async run cancelled (its task, as Ctrl-C under ``asyncio.run`` does) while requests
    wait for the limit: the same as the sync run's Ctrl-C."""
    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 'a.db'}", {"one": provider(url, limits=[{"rate": 1, "per": 2}])})

    async def main() -> tuple[dict[str, int], dict[str, int], int]:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            camp = await gw.tenant("acme").campaigns.create("slow", text="x", audience=NUMBERS, mode="fanout",
                                                            batch_size=1, concurrency=3)
            return await cancel_then_resume(camp, len(NUMBERS), lambda: len(received(ctl)))

    before, after, sent = asyncio.run(main())
    assert before == {"total": sent, "submitted": sent}
    assert after == {"total": 5, "submitted": 5}
    assert collections.Counter(received(ctl)) == collections.Counter(ALL)
