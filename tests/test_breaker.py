"""Circuit breakers and provider health, proven from the emulators' request records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_provider import API_KEY, EchoPlugin, create_emulator
from services import redis_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway
from smsgate.hookspecs import hookimpl
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.traffic.breaker import Breaker, observe, settle


def plugins(*extra: Any) -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    for plugin in extra:
        pm.register(plugin)
    return pm


@pytest.fixture
def echo() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


@pytest.fixture
def echo2() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


def provider(url: str, **extra: Any) -> dict[str, Any]:
    return {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            "max_retries": 0, **extra}


#: The instance setting of a vendor whose contract documents 503 as "not processed": a send
#: refused with it is certain to have done nothing, so it fails over.
NOT_PROCESSED_503: dict[str, Any] = {"not_processed_statuses": [503]}


def config(store: str, one: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": {"one": one, "two": two},
                                                 "routes": [{"providers": ["one", "two"]}]}}}


# ----------------------------------------------------------------------------- rules
def test_opens_after_failures_in_the_window_probes_after_cooldown_and_closes() -> None:
    cfg = Breaker(failures=3, window=10, cooldown=5)
    marks: dict[str, float] = {}
    assert [observe(marks, cfg, t, False) for t in (0, 1)] == [None, None]
    assert settle(marks, cfg, 2, 1) == "closed"
    assert observe(marks, cfg, 2, False) == "opened"
    assert settle(marks, cfg, 6.9, 1) == "open"
    assert settle(marks, cfg, 7.0, 1) == "probe"  # the one probe ...
    assert settle(marks, cfg, 7.5, 1) == "open"  # ... while it is out, nobody else goes
    assert observe(marks, cfg, 7.6, False) is None and settle(marks, cfg, 8, 1) == "open"  # failed: open again
    assert settle(marks, cfg, 12.6, 1) == "probe"
    assert observe(marks, cfg, 12.7, True) == "closed" and settle(marks, cfg, 12.8, 1) == "closed"


def test_failures_spread_wider_than_the_window_do_not_open_it() -> None:
    cfg = Breaker(failures=3, window=10, cooldown=5)
    marks: dict[str, float] = {}
    assert [observe(marks, cfg, t, False) for t in (0, 5, 11, 16, 22)] == [None] * 5


@given(st.lists(st.tuples(st.floats(0, 5), st.booleans()), max_size=60))
def test_a_success_always_closes_and_only_enough_failures_open(events: list[tuple[float, bool]]) -> None:
    cfg = Breaker(failures=4, window=3, cooldown=2)
    marks: dict[str, float] = {}
    now, streak = 0.0, []
    for step, ok in events:
        now += step
        change = observe(marks, cfg, now, ok)
        if ok:
            streak = []
            assert settle(marks, cfg, now, 1) == "closed"
        else:
            streak.append(now)
        if change == "opened":  # opened only with `failures` failures within one window
            assert len(streak) >= cfg.failures and streak[-1] - streak[-cfg.failures] <= cfg.window


# ------------------------------------------------------------------- end to end
def test_a_failing_primary_is_skipped_after_its_failures_and_probed_after_the_cooldown(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    (url1, ctl1), (url2, ctl2) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None)  # "not processed" (declared below): fails over
    # the cooldown outlasts the 20 sends even on a loaded machine (a probe would make a 4th request)
    one = provider(url1, breaker={"failures": 3, "window": 60, "cooldown": 4}, **NOT_PROCESSED_503)
    with Gateway(config(f"sqlite:///{tmp_path / 'b.db'}", one, provider(url2)), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        results = [t.send(f"0803100{i:04d}", "x") for i in range(20)]
        assert all(r.ok and r.provider == "two" for r in results)
        # the vendor's side: three requests, then none while the breaker is open
        assert len(ctl1.requests(method="POST")) == 3 and len(ctl2.requests(method="POST")) == 20
        health = t.health()
        assert health["one"].breaker.state == "open" and health["one"].skipped == 17
        assert health["one"].failures == {"ProviderUnavailable": 3} and health["two"].answered == 20
        deadline = time.monotonic() + 10
        while t.health()["one"].breaker.state == "open" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert t.health()["one"].breaker.state == "half-open"
        ctl1.reset()  # the primary answers again: the probe succeeds and closes the breaker
        assert t.send("08032000001", "x").provider == "one"
        assert t.health()["one"].breaker.state == "closed"
        assert t.send("08032000002", "x").provider == "one"


@pytest.mark.parametrize("backend", ["store", "redis"])
def test_the_breaker_is_shared_through_the_store_or_redis(echo: tuple[str, EmulatorControl],
                                                          echo2: tuple[str, EmulatorControl], tmp_path: Path,
                                                          backend: str, request: pytest.FixtureRequest) -> None:
    (url1, ctl1), (url2, _) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None)
    cfg = config(f"sqlite:///{tmp_path / 'shared.db'}",
                 provider(url1, breaker={"failures": 2, "cooldown": 60}, **NOT_PROCESSED_503), provider(url2))
    if backend == "redis":
        cfg["traffic"] = request.getfixturevalue("redis_url")
    with Gateway(cfg, plugins=plugins()) as first:
        for i in range(2):
            first.tenant("acme").send(f"0803300{i:04d}", "x")
    with Gateway(cfg, plugins=plugins()) as second:  # another gateway (another process's view)
        t = second.tenant("acme")
        assert t.health()["one"].breaker.state == "open"
        assert t.send("08033009999", "x").provider == "two"
    assert len(ctl1.requests(method="POST")) == 2  # the second gateway never tried it


def test_a_message_with_no_other_provider_is_still_tried(echo: tuple[str, EmulatorControl],
                                                         echo2: tuple[str, EmulatorControl]) -> None:
    (url1, ctl1), (url2, _) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None)
    with Gateway(config("memory://", provider(url1, breaker={"failures": 1}, **NOT_PROCESSED_503), provider(url2)),
                 plugins=plugins()) as gw:
        t = gw.tenant("acme")
        t.send("08034000001", "x")  # opens it
        results = t.send_many(["08034000002", "08034000003"], "x", provider="one")
    assert [r.error_code for r in results] == ["ProviderUnavailable"] * 2  # tried, not skipped
    assert len(ctl1.requests(method="POST")) == 2  # the first send, then one bulk request


def test_async_breaker_and_health_and_the_call_hook(echo: tuple[str, EmulatorControl],
                                                    echo2: tuple[str, EmulatorControl]) -> None:
    (url1, ctl1), (url2, _) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None)
    seen: list[tuple[str, str | None]] = []

    class Watch:
        @hookimpl
        def smsgate_on_call(self, tenant: str, instance: str, error: BaseException | None, seconds: float,
                            waited: float) -> None:
            seen.append((instance, type(error).__name__ if error else None))

    cfg = config("memory://", provider(url1, breaker={"failures": 2}, **NOT_PROCESSED_503),
                 provider(url2, rate_limit=50))

    async def go() -> None:
        async with AsyncGateway(cfg, plugins=plugins(Watch())) as gw:
            t = gw.tenant("acme")
            for i in range(6):
                assert (await t.send(f"0803500{i:04d}", "x")).provider == "two"
            health = await t.health()
            assert health["one"].breaker.state == "open" and health["one"].skipped == 4
            two = health["two"]
            assert two.calls == two.answered == 6 and two.latency_p50 is not None
            assert two.latency_p50 <= (two.latency_p99 or 0)
            (limit,) = two.limits
            assert (limit.key, limit.count, limit.period) == ("provider:two", 50, 1.0)

    asyncio.run(go())
    assert len(ctl1.requests(method="POST")) == 2
    assert seen.count(("one", "ProviderUnavailable")) == 2 and seen.count(("two", None)) == 6


def test_providers_health_command_shows_the_shared_state(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from smsgate.store import open_store
    from smsgate.traffic import BreakerBoard
    from smsgate.traffic.limits import Charge, Limit, Usage, admit

    db = tmp_path / "h.db"
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f"""
store = "sqlite:///{db}"
[tenants.acme]
default_region = "NG"
[tenants.acme.providers.main]
plugin = "squad"
base_url = "http://127.0.0.1:9"
limits = [{{ rate = 10, per = "minute" }}]
breaker = {{ failures = 2, cooldown = 600 }}
[tenants.acme.providers.spare]
plugin = "squad"
base_url = "http://127.0.0.1:9"
""")
    # another process's traffic: two failures of main, three requests in its window
    with open_store(f"sqlite:///{db}") as store:
        board, breaker = BreakerBoard(store), Breaker(failures=2, cooldown=600)
        board.record("acme", "main", breaker, False)
        board.record("acme", "main", breaker, False)
        rule = Limit(rate=10, per="minute").rule()
        for rid in "abc":
            store.traffic("acme", {"provider:main": 60.0},
                          lambda s, n, rid=rid: admit(s, [Charge("provider:main", (rule,), Usage(1, 1))], n, rid, 60))
    env = {**os.environ, "COLUMNS": "120"}
    out = subprocess.run([sys.executable, "-m", "smsgate", "providers", "health", "-c", str(cfg)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    main = next(line for line in out.stdout.splitlines() if line.startswith("main"))
    assert "open (probe in" in main and "3/10 messages per minute" in main
    spare = next(line for line in out.stdout.splitlines() if line.startswith("spare"))
    assert "closed" in spare and "none" in spare
    js = subprocess.run([sys.executable, "-m", "smsgate", "providers", "health", "-c", str(cfg), "--json"],
                        capture_output=True, text=True, env=env, timeout=60)
    data = json.loads(js.stdout)
    assert data["main"]["breaker"]["state"] == "open" and data["main"]["limits"][0]["used"] == 3
    bad = subprocess.run([sys.executable, "-m", "smsgate", "providers", "health", "-c", str(cfg), "-t", "nope"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown tenant 'nope'")


# ------------------------------------------------------------ throughput recovers
@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose host never completes a TCP handshake: every request is a connect timeout.

    A listening socket that never accepts, with its one-slot backlog filled: the
    kernel drops further SYNs, as a vendor that is down behind a firewall does.
    """
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in (*fillers, server):
            sock.close()


def test_with_the_primary_down_a_campaign_pays_the_breakers_timeouts_then_runs_at_the_backups_limit(
        blackhole: str, echo2: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    """The primary is down (connect timeouts of 0.5 s); the backup is limited to 50/s.

    The breaker opens after its 3 failures, so the run pays those timeouts and then
    carries on at the backup's limit: 400 messages through one provider at 50/s take
    ~8 s, where a timeout per message would cost 200 s. Checked from the backup's own
    record: every recipient once, never more than 50 in any second.
    """
    url2, ctl2 = echo2
    numbers = [f"0803700{i:04d}" for i in range(400)]
    one = provider(blackhole, timeout=0.5, breaker={"failures": 3, "window": 60, "cooldown": 600})
    two = provider(url2, limits=[{"rate": 50}])
    with Gateway(config(f"sqlite:///{tmp_path / 'down.db'}", one, two), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("down", text="x", audience=numbers, mode="fanout", batch_size=1, concurrency=2)
        started = time.monotonic()
        final = camp.run()
        elapsed = time.monotonic() - started
        health = t.health()
    assert (final.sent, final.failed, final.unknown, final.pending) == (400, 0, 0, 0)
    got = ctl2.requests(method="POST")
    assert sorted(r.json()["to"] for r in got) == sorted(f"+234{n[1:]}" for n in numbers)  # each exactly once
    stamps = sorted(r.at for r in got)
    assert max(sum(1 for s in stamps[i:] if s < t0 + 1.0) for i, t0 in enumerate(stamps)) <= 50
    # the primary was tried only until its breaker opened (two requests in flight at once at most)
    assert health["one"].breaker.state == "open"
    assert 3 <= sum(health["one"].failures.values()) <= 3 + 1
    assert health["one"].skipped >= 400 - 4
    # no timeout per message: 400 x 0.5 s would be 200 s; the backup's limit alone needs ~8 s
    assert elapsed < 60, elapsed
