"""``max_limit_wait``: a direct send is refused, not held, when its limits are full for long.

Outcomes are read from the emulator's own request record: a refused message never reached
the vendor; a campaign run still waits for its limits.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_provider import create_emulator
from reference_provider import echo_sent_to as sent_to
from services import redis_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway, LimitWaitExceeded, Status
from smsgate.config import load_config
from smsgate.errors import ConfigError
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.traffic import Charge, KeyState, LocalTraffic, StoppedWaiting, SyncGate, Usage
from smsgate.traffic.limits import Limit, reserve, spacing_wait
from test_traffic import arrivals, busiest, config, plugins, provider


@pytest.fixture
def echo() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


echo2 = echo


SLOW = [{"rate": 1, "per": 30}]  # one message each 30 s: the second waits ~30 s


def test_reserve_past_the_budget_takes_no_slot() -> None:
    rule = Limit(rate=1, per=10).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    states = {"provider:one": KeyState("provider:one")}
    assert reserve(states, [charge], 100.0, max_delay=0.0) == 0.0  # the first slot is now
    mark = states["provider:one"].marks[rule.name]
    assert reserve(states, [charge], 100.0, max_delay=5.0) == pytest.approx(10.0)
    assert states["provider:one"].marks[rule.name] == mark  # refused: nothing taken
    assert reserve(states, [charge], 100.0) == pytest.approx(10.0)  # no budget: taken
    assert states["provider:one"].marks[rule.name] == mark + rule.interval


def test_a_gate_refuses_a_lost_limit_state_at_once() -> None:
    """A Redis that lost its data holds every limit full for a period (a day for a daily
    limit): a gate with a budget says so at once instead of sleeping through it."""
    traffic = LocalTraffic()
    charge = Charge("provider:one", (Limit(rate=1000, per="day").rule(),), Usage(1, 1))

    def lose(states: dict[str, KeyState], now: float) -> None:
        states["provider:one"].forgotten_at = now

    traffic.traffic("acme", {"provider:one": 86400.0}, lose)
    gate = SyncGate(traffic, "acme", [charge], lease=60.0, max_wait=1.0)
    start = time.monotonic()
    with pytest.raises(LimitWaitExceeded) as err:
        gate.acquire()
    assert time.monotonic() - start < 0.5
    assert err.value.retry_after > 86000  # the day, plus the lease
    assert "max_limit_wait (1s)" in str(err.value)


def test_max_limit_wait_is_checked_when_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in (-1, True, "soon", float("inf")):
        with pytest.raises(ConfigError, match="max_limit_wait"):
            load_config(config("memory://", {}, max_limit_wait=bad))
    assert load_config(config("memory://", {}, max_limit_wait=2)).tenants["acme"].max_limit_wait == 2
    # an environment variable is text
    monkeypatch.setenv("SMSGATE_TENANTS__ACME__MAX_LIMIT_WAIT", "30")
    assert load_config(config("memory://", {})).tenants["acme"].max_limit_wait == 30


def test_send_is_refused_at_once_when_its_limit_is_full(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    cfg = config("memory://", {"one": provider(url, limits=SLOW)}, max_limit_wait=0.5)
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        assert t.send("08031000001", "one").status is Status.SUBMITTED
        start = time.monotonic()
        with pytest.raises(LimitWaitExceeded) as err:
            t.send("08031000002", "two")
        assert time.monotonic() - start < 2.0  # not the 30 s the limit says
        assert 20 < err.value.retry_after <= 30
        logged = t.messages(to="+2348031000002")
        assert [(m.status, m.raw_status) for m in logged] == [(Status.FAILED, "not_sent")]
        # a batch: each message that would wait is refused, none held
        results = t.send_many(["08031000003", "08031000004"], "three")
        assert [(r.status, r.error_code) for r in results] == [(Status.FAILED, "not_sent")] * 2
    assert sent_to(ctl) == ["+2348031000001"]  # the vendor saw only the first


def test_without_max_limit_wait_a_send_waits(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    cfg = config("memory://", {"one": provider(url, limits=[{"rate": 1, "per": 1}])})
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        start = time.monotonic()
        assert [t.send(f"0803110000{i}", "x").status for i in range(2)] == [Status.SUBMITTED] * 2
        assert time.monotonic() - start >= 0.9
    assert busiest(arrivals(ctl), 1.0) <= 1


def test_a_full_limit_fails_over_to_the_next_provider(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl]) -> None:
    (url1, ctl1), (url2, ctl2) = echo, echo2
    cfg = config("memory://", {"one": provider(url1, limits=SLOW), "two": provider(url2)},
                 routes=[{"providers": ["one", "two"]}], max_limit_wait=0.2)
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        results = [t.send(f"0803120000{i}", "x") for i in range(3)]
    assert [r.provider for r in results] == ["one", "two", "two"]
    assert sent_to(ctl1) == ["+2348031200000"]
    assert sent_to(ctl2) == ["+2348031200001", "+2348031200002"]


def test_async_send_is_refused_at_once(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    cfg = config("memory://", {"one": provider(url, limits=SLOW)}, max_limit_wait=0.5)

    async def main() -> float:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            t = gw.tenant("acme")
            await t.send("08031300001", "one")
            start = time.monotonic()
            with pytest.raises(LimitWaitExceeded):
                await t.send("08031300002", "two")
            return time.monotonic() - start

    assert asyncio.run(main()) < 2.0
    assert sent_to(ctl) == ["+2348031300001"]


def test_a_campaign_run_waits_for_its_limits_whatever_max_limit_wait(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    url, ctl = echo
    numbers = [f"0803140000{i}" for i in range(3)]
    cfg: dict[str, Any] = config(f"sqlite:///{tmp_path / 'c.db'}",
                                 {"one": provider(url, limits=[{"rate": 2, "per": 1}])}, max_limit_wait=0)
    with Gateway(cfg, plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("paced", text="x", audience=numbers, batch_size=1)
        final = camp.run()
    assert (final.sent, final.failed, final.pending) == (3, 0, 0)
    assert sorted(sent_to(ctl)) == sorted(f"+234{n[1:]}" for n in numbers)
    assert busiest(arrivals(ctl), 1.0) <= 2


def test_a_redis_that_lost_its_data_shows_in_health_and_explain_and_sends_refuse_at_once(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl],
        request: pytest.FixtureRequest) -> None:
    """Our keys in Redis vanish (a flush, a restart without persistence): the limit counts as
    full for a day (its period), and health() and explain() say so instead of showing it empty;
    with max_limit_wait a send goes to the next provider at once, never to the limited one."""
    import redis

    (url1, ctl1), (url2, ctl2) = echo, echo2
    rurl = request.getfixturevalue("redis_url")
    cfg = {**config("memory://", {"one": provider(url1, limits=[{"rate": 1000, "per": "day", "burst": 10}]),
                                  "two": provider(url2)},
                    routes=[{"providers": ["one", "two"]}], max_limit_wait=1), "traffic": rurl}
    prefix = rurl.split("prefix=")[1]
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        assert t.send("08031500001", "before").provider == "one"
        (before,) = t.health()["one"].limits
        assert (before.used, before.lost, before.wait) == (1, False, 0.0)
        client = redis.Redis.from_url(rurl.split("?")[0])
        client.delete(*client.scan_iter(f"{prefix}:*"))  # our keys gone, as after FLUSHDB
        client.close()
        (after,) = t.health()["one"].limits
        assert after.lost and after.wait > 86000
        (one, _) = t.explain_route("08031500002", text="x").candidates
        assert "state was lost" in " ".join(one.reasons) and "longer than max_limit_wait" in " ".join(one.reasons)
        start = time.monotonic()
        assert t.send("08031500002", "after").provider == "two"
        assert time.monotonic() - start < 2.0
    assert sent_to(ctl1) == ["+2348031500001"] and sent_to(ctl2) == ["+2348031500002"]


def test_a_concurrency_cap_counts_as_full_for_a_lease_after_its_redis_lost_its_data(
        echo: tuple[str, EmulatorControl], request: pytest.FixtureRequest) -> None:
    """The requests in flight when Redis lost its data are forgotten with it: a cap on
    requests in flight (no rate) holds until they were answered (the lease), as rates do."""
    import redis

    url, ctl = echo
    rurl = request.getfixturevalue("redis_url")
    cfg = {**config("memory://", {"one": provider(url, max_concurrency=1, timeout=1)}, max_limit_wait=0.5),
           "traffic": rurl}
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        t.send("08031600001", "before")
        client = redis.Redis.from_url(rurl.split("?")[0])
        client.delete(*client.scan_iter(f"{rurl.split('prefix=')[1]}:*"))
        client.close()
        (cap,) = t.health()["one"].limits
        assert (cap.unit, cap.lost) == ("requests", True) and 55 < cap.wait <= 62
        with pytest.raises(LimitWaitExceeded) as err:
            t.send("08031600002", "after")
        assert 55 < err.value.retry_after <= 62  # the lease: twice the timeout plus a minute
    assert sent_to(ctl) == ["+2348031600001"]


def test_a_request_stopped_while_waiting_gives_its_slot_back() -> None:
    traffic = LocalTraffic()
    rule = Limit(rate=1, per=10).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    stop = threading.Event()
    SyncGate(traffic, "acme", [charge], lease=60.0).acquire()  # the first slot: now
    waiting = SyncGate(traffic, "acme", [charge], lease=60.0, stop=stop)
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(StoppedWaiting):
        waiting.acquire()  # the next slot, 10 s away: stopped after 0.2 s

    def spacing(states: dict[str, KeyState], now: float) -> float:
        return spacing_wait(states["provider:one"], rule, now)

    # the slot it had taken is free again: the next request waits for the one after the first
    assert traffic.traffic("acme", {"provider:one": 10.0}, spacing) == pytest.approx(9.8, abs=0.15)


def test_a_concurrency_cap_is_waited_for_whatever_max_limit_wait() -> None:
    """Requests in flight end within their timeout: a full cap on them is waited for, never
    refused with a meaningless ``retry_after`` (a send_later would retry in a loop)."""
    traffic = LocalTraffic()
    charge = Charge("provider:one", (), Usage(1, 1), concurrency=1)
    first = SyncGate(traffic, "acme", [charge], lease=60.0)
    ticket = first.acquire()
    threading.Timer(0.3, first.release, (ticket,)).start()
    start = time.monotonic()
    SyncGate(traffic, "acme", [charge], lease=60.0, max_wait=0.0).acquire()
    assert 0.25 < time.monotonic() - start < 2.0


def test_a_stopped_campaign_does_not_hold_back_the_next_send(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    """A campaign run's requests waiting for their slots are stopped (here cancelled): their
    slots are given back, so a direct send does not wait behind requests that never left."""
    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 'c.db'}", {"one": provider(url, rate_limit=2)})
    numbers = [f"080317{i:05d}" for i in range(40)]

    async def stopped_run() -> None:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            camp = await gw.tenant("acme").campaigns.create("big", text="x", audience=numbers, batch_size=1,
                                                            concurrency=16, mode="fanout")
            task = asyncio.ensure_future(camp.run())
            await asyncio.sleep(1.5)  # 16 requests reserved their slots, 8 s ahead
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(stopped_run())
    sent_before = len(sent_to(ctl))
    assert sent_before <= 5
    with Gateway(cfg, plugins=plugins()) as gw:
        start = time.monotonic()
        gw.tenant("acme").send("08031899999", "otp")
        assert time.monotonic() - start < 1.5  # was: the stopped run's 16 slots, ~7 s
    assert sent_to(ctl)[-1] == "+2348031899999"
    assert busiest(arrivals(ctl), 1.0) <= 2


def test_health_and_explain_show_the_spacing_and_the_cap_on_requests_in_flight(
        echo: tuple[str, EmulatorControl]) -> None:
    url, _ = echo
    cfg = config("memory://", {"one": provider(url, limits=[{"rate": 2, "per": "minute"}], max_concurrency=4)},
                 max_limit_wait=1)
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        t.send("08031900001", "x")
        rate, cap = t.health()["one"].limits
        assert (rate.used, rate.count) == (1, 2) and 29 < rate.wait <= 30  # one every 30 s
        assert (cap.unit, cap.count, cap.used, cap.wait) == ("requests", 4, 0, 0.0)
        (one,) = t.explain_route("08031900002", text="x").candidates
        assert "longer than max_limit_wait" in " ".join(one.reasons)
        with pytest.raises(LimitWaitExceeded):
            t.send("08031900002", "x")


def test_an_async_send_cancelled_while_waiting_for_its_limit_is_not_sent_not_unknown(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 'a.db'}", {"one": provider(url, limits=SLOW)})

    async def main() -> list[tuple[Status, str | None]]:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            t = gw.tenant("acme")
            await t.send("08032000001", "one")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(t.send("08032000002", "two"), 0.3)  # waits ~30 s for its slot
            return [(m.status, m.raw_status) for m in await t.messages(to="+2348032000002")]

    assert asyncio.run(main()) == [(Status.FAILED, "not_sent")]  # was: unknown ("may have been sent")
    assert sent_to(ctl) == ["+2348032000001"]


def test_a_sync_send_interrupted_while_waiting_for_its_limit_is_not_sent_not_queued(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    import os
    import signal

    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 's.db'}", {"one": provider(url, limits=SLOW)})
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        t.send("08032100001", "one")
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            t.send("08032100002", "two")  # Ctrl-C while it waits ~30 s for its slot
        assert time.monotonic() - start < 5
    with Gateway(cfg, plugins=plugins()) as gw:
        logged = [(m.status, m.raw_status) for m in gw.tenant("acme").messages(to="+2348032100002")]
    assert logged == [(Status.FAILED, "not_sent")]  # was: queued
    assert sent_to(ctl) == ["+2348032100001"]


def test_close_stops_a_send_waiting_for_its_limit(echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    """Shutting down does not wait out a send's limit (up to a day under a per-day limit): the
    send is stopped, not sent, and logged so."""
    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 'c.db'}", {"one": provider(url, limits=SLOW)})
    gw = Gateway(cfg, plugins=plugins())
    t = gw.tenant("acme")
    t.send("08032200001", "one")
    raised: list[BaseException] = []

    def waiting() -> None:
        try:
            t.send("08032200002", "two")  # ~30 s away
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=waiting)
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    gw.close()
    thread.join(5)
    assert time.monotonic() - start < 3  # was: the whole wait (~30 s)
    assert [type(e) for e in raised] == [StoppedWaiting]
    with Gateway(cfg, plugins=plugins()) as again:
        logged = [(m.status, m.raw_status) for m in again.tenant("acme").messages(to="+2348032200002")]
    assert logged == [(Status.FAILED, "not_sent")]
    assert sent_to(ctl) == ["+2348032200001"]


def test_aclose_stops_an_async_send_waiting_for_its_limit(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    cfg = config("memory://", {"one": provider(url, limits=SLOW)})

    async def main() -> float:
        gw = AsyncGateway(cfg, plugins=plugins())
        t = gw.tenant("acme")
        await t.send("08032300001", "one")
        task = asyncio.ensure_future(t.send("08032300002", "two"))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        await gw.aclose()
        with pytest.raises(StoppedWaiting):
            await task
        return time.monotonic() - start

    assert asyncio.run(main()) < 3
    assert sent_to(ctl) == ["+2348032300001"]
