"""Traffic control: rate and concurrency limits, proven from the vendor's side.

The end-to-end tests read the emulator's own request record and its timestamps:
no provider ever receives more than its limit in any window, whatever path the
messages took (single, bulk, campaign, failover, retries, several processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bounded import drop_schema
from reference_provider import API_KEY, EchoPlugin, create_emulator
from services import redis_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway
from smsgate.config import load_config
from smsgate.errors import ConfigError
from smsgate.plugins import PluginManager
from smsgate.provider import Operation, Provider, ProviderSettings, is_auth_request
from smsgate.store import open_store
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.text import segment_info
from smsgate.traffic import Charge, KeyState, Limit, LocalTraffic, Usage
from smsgate.traffic.limits import admit, release, reserve
from smsgate.traffic.redis_backend import RedisTraffic

HERE = Path(__file__).parent
PG_DSN = os.environ.get("SMSGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


@pytest.fixture
def echo() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


@pytest.fixture
def echo2() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


@pytest.fixture
def pg_store() -> Iterator[str]:
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed")
    schema = f"traffic_{uuid.uuid4().hex[:10]}"
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield f"{PG_DSN}?schema={schema}"
    finally:
        drop_schema(PG_DSN, schema)


def provider(url: str, **extra: Any) -> dict[str, Any]:
    return {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME", **extra}


def config(store: str, providers: dict[str, dict[str, Any]], **tenant: Any) -> dict[str, Any]:
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": providers, **tenant}}}


def arrivals(ctl: EmulatorControl, unit: str = "messages") -> list[tuple[float, int]]:
    """(time the vendor received it, messages or segments it carried) of every send request."""
    out = []
    for r in ctl.requests(method="POST"):
        body = r.json()
        msgs = body["messages"] if r.path.endswith("/bulk") else [body]
        size = len(msgs) if unit == "messages" else sum(segment_info(m["text"]).segments for m in msgs)
        out.append((r.at, size))
    return sorted(out)


def busiest(events: list[tuple[float, int]], period: float) -> float:
    """The most any window ``[t, t + period)`` holds (windows start at an arrival)."""
    best = 0
    for i, (t, _) in enumerate(events):
        best = max(best, sum(n for at, n in events[i:] if at < t + period))
    return best


# ----------------------------------------------------------------------------- rules
def test_limits_normalise_to_whole_counts_per_period() -> None:
    assert Limit(rate=0.5).rule().count == 1 and Limit(rate=0.5).rule().period == 2.0  # one every 2 s
    r = Limit(rate=2.5, per="minute").rule()
    assert (r.count, r.period, r.interval) == (2, 60.0, 24.0)
    assert Limit(rate=1, per="day").rule().period == 86400.0
    assert Limit(rate=3, per=10, unit="segments").rule().period == 10.0


@pytest.mark.parametrize("bad, where", [
    ({"rate": 0}, "rate"), ({"rate": -1}, "rate"), ({"rate": float("inf")}, "rate"),
    ({"rate": 5, "burst": 6}, "burst 6"), ({"rate": 5, "per": "week"}, "per"), ({"rate": 5, "per": 0}, "per"),
    ({"rate": 5, "unit": "bytes"}, "unit"),
])
def test_bad_limits_are_config_errors_naming_the_field(bad: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(config("memory://", {"one": provider("http://x", limits=[bad])}))
    assert "tenants.acme.providers.one.limits.0" in str(err.value) and where in str(err.value)


class Sim:
    """Clients sending through one backend on a simulated clock (no sleeping)."""

    def __init__(self, charges: list[Charge], clients: int, plan: list[tuple[int, float, float]]) -> None:
        self.now = 0.0
        self.backend = LocalTraffic(lambda: self.now)
        self.charges = charges
        self.plan = list(plan)  # (cost, latency, where in the request the vendor receives it 0..1)
        self.clients = clients
        self.done: list[tuple[float, float, float, int]] = []  # start, end, arrival, cost

    def tx(self, fn: Any) -> Any:
        return self.backend.traffic("t", {c.key: c.horizon for c in self.charges}, fn)

    def run(self) -> None:
        events: list[tuple[float, int, str, Any]] = []
        seq = 0
        for c in range(min(self.clients, len(self.plan))):
            events.append((0.0, c, "next", None))
        heapq.heapify(events)
        while events:
            self.now, _, what, data = heapq.heappop(events)
            seq += 1
            if what == "next":
                if not self.plan:
                    continue
                cost, latency, where = self.plan.pop(0)
                charges = [Charge(c.key, c.rules, Usage(cost, cost), c.concurrency) for c in self.charges]
                delay = self.tx(lambda s, n, ch=charges: reserve(s, ch, n))
                heapq.heappush(events, (self.now + delay, seq, "admit", (charges, cost, latency, where, f"r{seq}")))
            elif what == "admit":
                charges, cost, latency, where, rid = data
                wait = self.tx(lambda s, n, ch=charges, rid=rid: admit(s, ch, n, rid, 1e9))
                if wait > 0:
                    heapq.heappush(events, (self.now + wait, seq, "admit", data))
                else:
                    heapq.heappush(events, (self.now + latency, seq, "end", (self.now, cost, latency, where, rid)))
            else:
                start, cost, latency, where, rid = data
                self.tx(lambda s, n, rid=rid: release(s, [c.key for c in self.charges], rid, n))
                self.done.append((start, self.now, start + where * latency, cost))
                heapq.heappush(events, (self.now, seq, "next", None))
            assert seq < 200_000, "the simulation does not end: a request never got through"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 8), period=st.sampled_from([0.5, 1.0, 2.0]), burst_part=st.floats(0, 1),
    concurrency=st.one_of(st.none(), st.integers(1, 4)), clients=st.integers(1, 6),
    plan=st.lists(st.tuples(st.integers(1, 3), st.floats(0, 0.8), st.floats(0, 1)), min_size=1, max_size=40),
)
def test_no_window_at_the_vendor_ever_holds_more_than_the_limit(
    count: int, period: float, burst_part: float, concurrency: int | None, clients: int,
    plan: list[tuple[int, float, float]],
) -> None:
    plan = [(min(cost, count), lat, where) for cost, lat, where in plan]
    burst = 1 + int(burst_part * (count - 1))
    rule = Limit(rate=count, per=period, unit="segments", burst=burst).rule()
    sim = Sim([Charge("k", (rule,), Usage(0, 0), concurrency)], clients, plan)
    sim.run()
    assert len(sim.done) == len(plan)  # every request got through
    # wherever within its request the vendor saw each one, no window of the period holds more
    seen = sorted((arrival, cost) for _, _, arrival, cost in sim.done)
    assert busiest(seen, period) <= count
    if concurrency is not None:
        edges = sorted([(s, 1) for s, e, _, _ in sim.done] + [(e, -1) for s, e, _, _ in sim.done],
                       key=lambda x: (x[0], x[1]))
        level = 0
        for _, step in edges:
            level += step
            assert level <= concurrency


def test_a_request_larger_than_the_limit_goes_alone() -> None:
    rule = Limit(rate=2, unit="segments").rule()
    sim = Sim([Charge("k", (rule,), Usage(0, 0))], 2, [(1, 0.1, 0.5), (5, 0.1, 0.5), (1, 0.1, 0.5)])
    sim.run()
    big = next(d for d in sim.done if d[3] == 5)
    others = [d for d in sim.done if d[3] == 1]
    # nothing else counts in the big one's window, before or after it
    assert all(e <= big[0] - rule.period or s >= big[1] + rule.period for s, e, _, _ in others)


@pytest.mark.parametrize("kind", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                  "redis"])
def test_backends_keep_limit_state_per_tenant_across_calls(kind: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 't.db'}"}.get(kind)
    store: Any
    if kind == "redis":
        store = RedisTraffic(request.getfixturevalue("redis_url"))
    else:
        store = open_store(url or request.getfixturevalue("pg_store"))
    rule = Limit(rate=2, per=60).rule()
    charges = [Charge("provider:one", (rule,), Usage(1, 1), 5)]
    horizons = {"provider:one": rule.period}
    with contextlib.closing(store):
        for rid in ("a", "b"):
            assert store.traffic("acme", horizons, lambda s, n, rid=rid: admit(s, charges, n, rid, 30.0)) == 0
        # the window (2 a minute) is full for acme, in flight or answered ...
        assert store.traffic("acme", horizons, lambda s, n: admit(s, charges, n, "c", 30.0)) > 0
        store.traffic("acme", horizons, lambda s, n: release(s, ["provider:one"], "a", n))
        wait = store.traffic("acme", horizons, lambda s, n: admit(s, charges, n, "c", 30.0))
        assert 59 < wait <= 60.01  # ... until a minute after the first answer
        # ... and untouched for another tenant
        assert store.traffic("globex", horizons, lambda s, n: admit(s, charges, n, "x", 30.0)) == 0

        def look(states: dict[str, KeyState], now: float) -> list[tuple[str, bool]]:
            return sorted((e.id, e.end is None) for e in states["provider:one"].entries)

        assert store.traffic("acme", horizons, look) == [("a", False), ("b", True)]


def test_token_requests_are_marked_and_not_charged() -> None:
    class Tokened(Provider):
        name = "tokened"

        def authenticate(self, request: httpx.Request) -> Operation[None]:
            yield self.request("POST", "/token")

    prov = Tokened(ProviderSettings(plugin="tokened", base_url="http://x"))
    flow = prov.call(prov.request("POST", "/send"))
    token = next(flow)
    message = flow.send(httpx.Response(200))
    assert is_auth_request(token) and not is_auth_request(message)


# ------------------------------------------------------------------- end to end
@pytest.mark.parametrize("backend", ["store", "redis"])
def test_send_from_many_threads_never_exceeds_the_rate_at_the_vendor(
        echo: tuple[str, EmulatorControl], tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 's.db'}", {"one": provider(url, rate_limit=20)})
    if backend == "redis":  # many threads race on one key: Redis transactions rerun the rule
        cfg["traffic"] = request.getfixturevalue("redis_url")
    with Gateway(cfg, plugins=plugins()) as gw, ThreadPoolExecutor(8) as pool:
        t = gw.tenant("acme")
        results = list(pool.map(lambda i: t.send(f"0803100{i:04d}", "hello"), range(50)))
    assert all(r.ok for r in results)
    got = arrivals(ctl)
    assert sum(n for _, n in got) == 50
    assert busiest(got, 1.0) <= 20
    assert sum(n for at, n in got if at < got[0][0] + 1.0) <= 20  # no initial burst either


def test_send_many_in_segments_splits_requests_to_fit_and_holds(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    text = "x" * 200  # two segments each
    cfg = config("memory://", {"one": provider(url, limits=[{"rate": 10, "unit": "segments"}])})

    async def go() -> None:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            results = await gw.tenant("acme").send_many([f"0803200{i:04d}" for i in range(40)], text)
            assert all(r.ok for r in results)

    asyncio.run(go())
    got = arrivals(ctl, "segments")
    assert sum(n for _, n in got) == 80 and max(n for _, n in got) <= 4  # echo takes 2 a request
    assert busiest(got, 1.0) <= 10


def test_failover_and_retries_are_charged_to_the_provider_that_gets_them(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl]) -> None:
    (url1, ctl1), (url2, ctl2) = echo, echo2
    # the primary refuses everything with 503 (its vendor documents it "not processed": retried, then failed over)
    ctl1.fault(kind="status", status=503, count=None)
    cfg = config("memory://", {"one": provider(url1, rate_limit=15, max_retries=1, breaker={"enabled": False},
                                               not_processed_statuses=[503]),
                               "two": provider(url2, rate_limit=10)}, routes=[{"providers": ["one", "two"]}])
    with Gateway(cfg, plugins=plugins()) as gw, ThreadPoolExecutor(6) as pool:
        t = gw.tenant("acme")
        results = list(pool.map(lambda i: t.send(f"0803300{i:04d}", "x"), range(30)))
    assert all(r.ok and r.provider == "two" for r in results)
    primary, backup = arrivals(ctl1), arrivals(ctl2)
    assert len(primary) == 60  # every attempt reached it, each charged
    assert busiest(primary, 1.0) <= 15
    assert sum(n for _, n in backup) == 30 and busiest(backup, 1.0) <= 10


def test_a_rate_below_one_a_second_works(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    with Gateway(config("memory://", {"one": provider(url, rate_limit=0.5)}), plugins=plugins()) as gw:
        for i in range(3):
            assert gw.tenant("acme").send(f"0803400{i:04d}", "x").ok
    times = [at for at, _ in arrivals(ctl)]
    assert len(times) == 3
    assert all(b - a >= 2.0 for a, b in itertools.pairwise(times))  # one per two seconds


def test_a_limit_on_a_sender_applies_to_each_sender_id(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    cfg = config("memory://", {"one": provider(url, limits=[{"rate": 4, "scope": "sender"}])})
    with Gateway(cfg, plugins=plugins()) as gw, ThreadPoolExecutor(8) as pool:
        t = gw.tenant("acme")
        list(pool.map(lambda i: t.send(f"0803500{i:04d}", "x", sender="A" if i % 2 else "B"), range(16)))
    per_sender: dict[str, list[tuple[float, int]]] = {"A": [], "B": []}
    for r in ctl.requests(method="POST"):
        per_sender[r.json()["from"]].append((r.at, 1))
    assert {k: len(v) for k, v in per_sender.items()} == {"A": 8, "B": 8}
    assert busiest(sorted(per_sender["A"]), 1.0) <= 4 and busiest(sorted(per_sender["B"]), 1.0) <= 4
    assert busiest(arrivals(ctl), 1.0) > 4  # the two senders do not share one limit


def test_a_tenant_limit_holds_across_its_providers(echo: tuple[str, EmulatorControl],
                                                   echo2: tuple[str, EmulatorControl]) -> None:
    (url1, ctl1), (url2, ctl2) = echo, echo2
    cfg = config("memory://", {"one": provider(url1), "two": provider(url2)}, limits=[{"rate": 6}])
    with Gateway(cfg, plugins=plugins()) as gw, ThreadPoolExecutor(8) as pool:
        t = gw.tenant("acme")
        list(pool.map(lambda i: t.send(f"0803600{i:04d}", "x", provider="one" if i % 2 else "two"), range(24)))
    both = sorted(arrivals(ctl1) + arrivals(ctl2))
    assert len(both) == 24 and busiest(both, 1.0) <= 6


def test_max_concurrency_caps_requests_in_flight(echo: tuple[str, EmulatorControl]) -> None:
    url, ctl = echo
    ctl.fault(kind="latency", delay=0.2, count=None)
    cfg = config("memory://", {"one": provider(url, max_concurrency=2)})

    async def go() -> None:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            t = gw.tenant("acme")
            await asyncio.gather(*(t.send(f"0803700{i:04d}", "x") for i in range(8)))

    asyncio.run(go())
    got = arrivals(ctl)
    # each request is held 0.2 s by the vendor: with 2 in flight at most, no 0.2 s holds 3 arrivals
    assert len(got) == 8 and busiest(got, 0.19) <= 2


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "redis"])
def test_two_processes_share_one_limit_through_the_store_or_redis(
        echo: tuple[str, EmulatorControl], tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    url, ctl = echo
    store = f"sqlite:///{tmp_path / 'shared.db'}" if kind != "postgres" else request.getfixturevalue("pg_store")
    cfg = config(store, {"one": provider(url, rate_limit=25)})
    if kind == "redis":  # each process keeps its own store (in memory); only Redis is shared
        cfg["traffic"] = request.getfixturevalue("redis_url")
        store = cfg["store"] = "memory://"
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    open_store(store).close()  # the schema exists before two processes race to make it
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    procs = [subprocess.Popen([sys.executable, str(HERE / "traffic_worker.py"), str(cfg_path), "60", prefix],
                              env=env, stderr=subprocess.PIPE) for prefix in ("0803810", "0803820")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    got = arrivals(ctl)
    assert sum(n for _, n in got) == 120
    assert busiest(got, 1.0) <= 25


def test_local_limits_are_per_process_and_say_so(echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    url, ctl = echo
    cfg = {**config(f"sqlite:///{tmp_path / 'l.db'}", {"one": provider(url, rate_limit=10)}), "traffic": "local"}
    with Gateway(cfg, plugins=plugins()) as gw, ThreadPoolExecutor(4) as pool:
        t = gw.tenant("acme")
        list(pool.map(lambda i: t.send(f"0803900{i:04d}", "x"), range(20)))
        with gw._core_.store._read() as conn:  # type: ignore[attr-defined]
            assert conn.execute("SELECT count(*) FROM traffic_entries").fetchone() == (0,)
    assert busiest(arrivals(ctl), 1.0) <= 10


def test_a_campaign_stopped_while_waiting_for_its_limit_leaves_nothing_unknown(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    url, ctl = echo
    numbers = [f"0804000{i:04d}" for i in range(4)]
    cfg = config(f"sqlite:///{tmp_path / 'c.db'}", {"one": provider(url, limits=[{"rate": 1, "per": 3}])})

    async def first_run() -> str:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            camp = await gw.tenant("acme").campaigns.create("slow", text="x", audience=numbers, mode="fanout",
                                                            batch_size=1, concurrency=4)
            task = asyncio.ensure_future(camp.run())
            while not ctl.requests(method="POST"):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # the others now wait for the limit
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            progress = await camp.progress()
            assert (progress.sent, progress.unknown, progress.failed, progress.pending) == (1, 0, 0, 3)
            return camp.campaign_id

    cid = asyncio.run(first_run())
    assert len(ctl.requests(method="POST")) == 1
    with Gateway(cfg, plugins=plugins()) as gw:
        final = gw.tenant("acme").campaigns.get(cid).run()
    assert (final.sent, final.unknown, final.failed) == (4, 0, 0)
    got = arrivals(ctl)
    sent_to = sorted(r.json()["to"] for r in ctl.requests(method="POST"))
    assert sent_to == sorted(f"+234{n[1:]}" for n in numbers)  # each exactly once
    assert busiest(got, 3.0) <= 1


def test_the_traffic_setting_is_checked_and_a_redis_password_never_shown() -> None:
    with pytest.raises(ConfigError, match="traffic"):
        load_config({"traffic": "redis:/nowhere", "tenants": {}})
    backend = RedisTraffic("redis://:s3cret-pass@127.0.0.1:6379/2?prefix=app1")
    try:
        assert "s3cret" not in repr(backend) and repr(backend) == "RedisTraffic('127.0.0.1:6379/2')"
    finally:
        backend.close()
