"""Attacks on this session's traffic-control changes (max_limit_wait, giving slots back),
proven from the vendor's side or from the limits' own state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reference_provider import create_emulator
from services import redis_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway, Status
from smsgate.store import open_store
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.traffic import AsyncGate, Charge, KeyState, LocalTraffic, SyncGate, Usage
from smsgate.traffic.limits import (
    RESERVATION_LEASE,
    Limit,
    Slots,
    admit,
    renew,
    reserve,
    spacing_wait,
    unreserve,
)
from test_limit_wait import echo, sent_to  # noqa: F401  (echo: a fixture)
from test_traffic import HERE, arrivals, busiest, config, pg_store, plugins, provider  # noqa: F401

T = TypeVar("T")


class HeldBackend:
    """A backend in another thread (as the store and Redis are) whose ``hold``-th call
    waits, already running, until ``go`` is set."""

    def __init__(self, hold: int) -> None:
        self.inner = LocalTraffic()
        self.hold = hold
        self.calls = 0
        self.entered = threading.Event()
        self.go = threading.Event()

    def traffic(self, tenant: str, horizons: Any, fn: Callable[[dict[str, KeyState], float], T]) -> T:
        self.calls += 1
        if self.calls == self.hold:
            self.entered.set()
            self.go.wait(5)
        return self.inner.traffic(tenant, horizons, fn)


def in_flight(backend: LocalTraffic, key: str) -> int:
    def count(states: dict[str, KeyState], now: float) -> int:
        return sum(1 for e in states[key].entries if e.ended(now) is None)
    return backend.traffic("acme", {key: 60.0}, count)


async def cancel_during(backend: HeldBackend, gate: AsyncGate) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(gate.acquire())
    await loop.run_in_executor(None, backend.entered.wait, 5)
    task.cancel()  # the backend call goes on in its thread
    await asyncio.sleep(0.05)
    backend.go.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)  # the held call is done


def test_a_request_cancelled_while_its_admission_runs_is_not_left_in_flight() -> None:
    """An async send cancelled while the store (or Redis) admits it in a worker thread: the
    admission completes there, recording the request as in flight, but nothing is sent and
    nothing releases it; a ``max_concurrency = 1`` provider was then held full for the whole
    lease (a minute and more) though nothing was in flight."""
    backend = HeldBackend(hold=2)  # 1: reserve, 2: admit
    charge = Charge("provider:one", (), Usage(1, 1), concurrency=1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        run = lambda fn, *a: loop.run_in_executor(None, partial(fn, *a))  # noqa: E731
        await cancel_during(backend, AsyncGate(backend, "acme", [charge], 60.0, run))

    asyncio.run(main())
    assert in_flight(backend.inner, "provider:one") == 0


def test_a_request_cancelled_while_its_slot_is_reserved_gives_the_slot_back() -> None:
    """Cancelled while the reservation runs in the backend's thread: the slot it took is
    given back (as one cancelled while waiting for it is), not held against the next send."""
    backend = HeldBackend(hold=4)  # 1-3: the first request (reserve, admit, release), 4: the second's reserve
    rule = Limit(rate=1, per=30).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        run = lambda fn, *a: loop.run_in_executor(None, partial(fn, *a))  # noqa: E731
        first = AsyncGate(backend, "acme", [charge], 60.0, run)
        await first.release(await first.acquire())
        await cancel_during(backend, AsyncGate(backend, "acme", [charge], 60.0, run))

    asyncio.run(main())

    def spacing(states: dict[str, KeyState], now: float) -> float:
        return spacing_wait(states["provider:one"], rule, now)

    # the next request waits for the slot after the first (~30 s), not after the cancelled one (~60 s)
    assert backend.inner.traffic("acme", {"provider:one": 30.0}, spacing) < 31


# ----------------------------------------------------------------------------- several processes
RATE = 5  # a second


def run_workers(cfg: dict[str, Any], tmp_path: Path, jobs: list[tuple[str, int, str, str]],
                kill_after: dict[str, float], ready: Callable[[], bool] | None = None,
                ) -> dict[str, list[tuple[str, str]]]:
    """Start one worker per job (prefix, count, mode, seed); SIGKILL those in ``kill_after``
    after that many seconds (counted from when ``ready()`` is first true, if given); each
    worker's outcomes by prefix."""
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    procs = {prefix: subprocess.Popen(
        ["nice", sys.executable, str(HERE / "attack8_worker.py"), str(cfg_path), str(count), prefix, mode, seed],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for prefix, count, mode, seed in jobs}
    while ready is not None and not ready():
        time.sleep(0.05)
    for prefix, after in kill_after.items():
        threading.Timer(after, procs[prefix].kill).start()
    out: dict[str, list[tuple[str, str]]] = {}
    for prefix, p in procs.items():
        stdout, stderr = p.communicate(timeout=180)
        if prefix not in kill_after:
            assert p.returncode == 0 and stdout.endswith("done\n"), stderr[-3000:]
        out[prefix] = [tuple(json.loads(line)) for line in stdout.splitlines() if line.startswith("[")]
    return out


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the processes share their limits: the settings that say so."""
    if request.param == "sqlite":
        return {"store": f"sqlite:///{tmp_path / 's.db'}"}
    if request.param == "postgres":
        return {"store": request.getfixturevalue("pg_store")}
    return {"store": f"sqlite:///{tmp_path / 's.db'}", "traffic": request.getfixturevalue("redis_url")}


@pytest.mark.slow
def test_processes_refused_cancelled_and_killed_mid_wait_never_exceed_the_limit(
        echo:  # noqa: F811
        tuple[str, EmulatorControl], shared: dict[str, Any], tmp_path: Path) -> None:
    url, ctl = echo
    cfg = {**config(shared["store"], {"one": provider(url, limits=[{"rate": RATE, "per": 1, "burst": 2}],
                                                      max_concurrency=3)}, max_limit_wait=3.0),
           **{k: v for k, v in shared.items() if k != "store"}}
    open_store(shared["store"]).close()  # the schema exists before the processes race to make it
    jobs = [("0805100", 25, "sync", "1"), ("0805200", 25, "sync", "2"), ("0805300", 30, "async", "3"),
            ("0805400", 30, "async", "4"), ("0805500", 25, "sync", "5")]
    outcomes = run_workers(cfg, tmp_path, jobs, kill_after={"0805500": 1.5})
    got = arrivals(ctl)
    assert busiest(got, 1.0) <= RATE
    seen = sent_to(ctl)
    assert len(seen) == len(set(seen)), "a message reached the vendor twice"
    for prefix, results in outcomes.items():
        for number, outcome in results:
            to = f"+234{number[1:]}"
            kind, _, arg = outcome.partition(":")
            assert kind in ("ok", "refused", "cancelled"), (number, outcome)
            if kind == "ok":
                assert to in seen, (number, outcome)
            elif kind == "refused":
                assert to not in seen, f"{number} was refused but reached the vendor"
                assert 0 < float(arg) <= 10, (number, outcome)
    kinds = [o.partition(":")[0] for results in outcomes.values() for _, o in results]
    print({k: kinds.count(k) for k in set(kinds)})
    # the log says what the vendor saw: every message of a live process that did not reach
    # it is final (failed, not_sent), none left queued or unknown
    with Gateway(cfg, plugins=plugins()) as gw:
        logged = gw.tenant("acme").messages(limit=1000)
    live = {f"+234{n[1:]}": o for p, results in outcomes.items() if p != "0805500" for n, o in results}
    assert {m.to for m in logged} >= {to for to, o in live.items() if o != "cancelled"}  # (may be before its log)
    for m in logged:
        if m.to not in live:
            continue
        if m.to in seen:
            assert m.status is not Status.FAILED or m.raw_status != "not_sent", m
        elif live[m.to] == "cancelled":  # cancelled while waiting, or while its request was under way
            # (test_a_send_cancelled_while_waiting_for_its_limit_is_logged_not_sent: unknown either way)
            assert m.status in (Status.UNKNOWN, Status.FAILED), m
        else:
            assert (m.status, m.raw_status) == (Status.FAILED, "not_sent"), m


def test_a_send_cancelled_while_waiting_for_its_limit_is_logged_not_sent(
        echo:  # noqa: F811
        tuple[str, EmulatorControl]) -> None:
    """A send cancelled while its limit holds it (``asyncio.wait_for`` in a web handler)
    never left: the log should say ``failed``/``not_sent`` (safe to send again), as a refused
    or stopped one does, not ``unknown`` (which asks for reconciliation)."""
    url, ctl = echo
    cfg = config("memory://", {"one": provider(url, limits=[{"rate": 1, "per": 30}])})

    async def main() -> None:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            t = gw.tenant("acme")
            await t.send("08056000001", "one")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(t.send("08056000002", "two"), 0.5)  # its slot: 30 s away
            (m,) = await t.messages(to="08056000002")
            assert (m.status, m.raw_status) == (Status.FAILED, "not_sent"), m

    asyncio.run(main())
    assert sent_to(ctl) == ["+2348056000001"]


def test_a_short_wait_under_a_zero_budget_still_takes_its_slot() -> None:
    """``max_limit_wait = 0`` with a fast limit (1000 a second: a slot each millisecond): a
    request whose slot is a millisecond away is not refused (a wait shorter than a poll never
    is), so it must take that slot; it did not (``reserve`` refused it past the budget while
    the gate let it go), and every such request went at the same moment, unspaced."""
    now = 0.0
    traffic = LocalTraffic(lambda: now)
    rule = Limit(rate=1000, per=1).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    for _ in range(3):
        SyncGate(traffic, "acme", [charge], lease=60.0, max_wait=0.0).acquire()

    def spacing(states: dict[str, KeyState], t: float) -> float:
        return spacing_wait(states["provider:one"], rule, t)

    assert traffic.traffic("acme", {"provider:one": 1.0}, spacing) == pytest.approx(3 * rule.interval)


@pytest.fixture
def echo_b() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


@pytest.mark.parametrize("traffic", ["store", "redis"])
def test_a_failover_chain_of_full_limits_across_processes(
        echo: tuple[str, EmulatorControl], echo_b: tuple[str, EmulatorControl],  # noqa: F811
        traffic: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Two providers, each with its own limit, in one route; processes whose sends are refused,
    cancelled or fail over at random: neither vendor sees more than its limit in any window,
    no message reaches both (or one twice), a refused one reaches neither, and its
    ``retry_after`` is the soonest of the chain (under a second here)."""
    (url1, ctl1), (url2, ctl2) = echo, echo_b
    store = f"sqlite:///{tmp_path / 'f.db'}"
    cfg: dict[str, Any] = config(store, {"one": provider(url1, limits=[{"rate": 4, "per": 1}]),
                                         "two": provider(url2, limits=[{"rate": 2, "per": 1}], max_concurrency=1)},
                                 routes=[{"providers": ["one", "two"]}], max_limit_wait=0.3)
    if traffic == "redis":
        cfg["traffic"] = request.getfixturevalue("redis_url")
    open_store(store).close()
    jobs = [("0807100", 25, "sync", "1"), ("0807200", 30, "async", "2"), ("0807300", 30, "async", "3")]
    outcomes = run_workers(cfg, tmp_path, jobs, kill_after={})
    assert busiest(arrivals(ctl1), 1.0) <= 4 and busiest(arrivals(ctl2), 1.0) <= 2
    seen1, seen2 = sent_to(ctl1), sent_to(ctl2)
    assert len(seen1 + seen2) == len(set(seen1 + seen2)), "a message reached a vendor twice"
    for results in outcomes.values():
        for number, outcome in results:
            to = f"+234{number[1:]}"
            kind, _, arg = outcome.partition(":")
            assert kind in ("ok", "refused", "cancelled"), (number, outcome)
            if kind == "ok":
                assert to in seen1 + seen2
            elif kind == "refused":
                assert to not in seen1 + seen2
                assert 0 < float(arg) <= 1.0, (number, outcome)  # two's slot: half a second away at most
    kinds = [o.partition(":")[0] for results in outcomes.values() for _, o in results]
    print({k: kinds.count(k) for k in set(kinds)}, len(seen1), len(seen2))


def test_waiting_out_retry_after_gets_every_message_through_without_a_loop(
        echo: tuple[str, EmulatorControl], echo_b: tuple[str, EmulatorControl],  # noqa: F811
        tmp_path: Path) -> None:
    """Callers that wait ``retry_after`` and try again (as send_later does) all get through,
    each in a few tries, within the limits: ``retry_after`` is neither too short (a loop) nor
    the vendor's limit broken."""
    (url1, ctl1), (url2, ctl2) = echo, echo_b
    store = f"sqlite:///{tmp_path / 'r.db'}"
    cfg = config(store, {"one": provider(url1, limits=[{"rate": 5, "per": 1}]),
                         "two": provider(url2, limits=[{"rate": 3, "per": 1}])},
                 routes=[{"providers": ["one", "two"]}], max_limit_wait=0.2)
    open_store(store).close()
    jobs = [("0808100", 20, "retry", "1"), ("0808200", 20, "retry", "2")]
    outcomes = run_workers(cfg, tmp_path, jobs, kill_after={})
    tries = [int(o.split(":")[1]) for results in outcomes.values() for _, o in results if o.startswith("ok:")]
    assert len(tries) == 40, outcomes
    assert busiest(arrivals(ctl1), 1.0) <= 5 and busiest(arrivals(ctl2), 1.0) <= 3
    assert sorted(sent_to(ctl1) + sent_to(ctl2)) == sorted(f"+234{n[1:]}" for r in outcomes.values() for n, _ in r)
    print(sorted(tries))
    assert max(tries) <= 20


def test_send_later_in_eager_mode_under_contention_sends_each_message_once(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:  # noqa: F811
    """Threads running queued sends in eager mode (``apply``) through one full limit with
    ``max_limit_wait``: each limited attempt retries after its countdown under a new key;
    every message reaches the vendor exactly once, within the limit, its task successful, and
    the refused attempts are logged not sent (none left queued or unknown)."""
    celery = pytest.importorskip("celery")
    from smsgate.contrib.celery import configure

    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 'e.db'}", {"one": provider(url, limits=[{"rate": 6, "per": 1}])},
                 max_limit_wait=0.1)
    numbers = [f"08090{i:06d}" for i in range(12)]
    with Gateway(cfg, plugins=plugins()) as gw:
        app = celery.Celery("attack8-eager", broker="memory://", set_as_current=False)
        configure(app, gateway=lambda: gw)
        send = app.tasks["smsgate.send_message"]
        with ThreadPoolExecutor(6) as pool:
            runs = list(pool.map(lambda n: send.apply(("acme", n, "x"), {"idempotency_key": f"k-{n}"}), numbers))
        assert all(r.successful() for r in runs), [r.traceback for r in runs if not r.successful()][:1]
        assert {r.result["status"] for r in runs} == {"submitted"}
        logged = gw.tenant("acme").messages(limit=1000)
    seen = sent_to(ctl)
    assert sorted(seen) == sorted(f"+234{n[1:]}" for n in numbers)
    assert busiest(arrivals(ctl), 1.0) <= 6
    left = [m for m in logged if m.status not in (Status.SUBMITTED, Status.FAILED)]
    assert not left, left[:2]
    assert all(m.raw_status == "not_sent" for m in logged if m.status is Status.FAILED)


@pytest.mark.parametrize("store", ["sqlite", "postgres", "redis"])
def test_async_sends_cancelled_at_random_leave_no_request_in_flight(
        echo: tuple[str, EmulatorControl], store: str, tmp_path: Path,  # noqa: F811
        request: pytest.FixtureRequest) -> None:
    """Many async sends through a ``max_concurrency = 1`` provider whose limits the store (or
    Redis) keeps, cancelled at random moments: once they are all done, nothing counts as in
    flight (a leaked one held the cap full for its lease: every later send waited a minute)."""
    import random

    url, _ = echo
    where = request.getfixturevalue("pg_store") if store == "postgres" else f"sqlite:///{tmp_path / 'a.db'}"
    cfg: dict[str, Any] = config(where, {"one": provider(url, max_concurrency=1, rate_limit=50)})
    if store == "redis":
        cfg["traffic"] = request.getfixturevalue("redis_url")
    rnd = random.Random(8)

    async def main() -> tuple[int, float]:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            t = gw.tenant("acme")

            async def one(i: int) -> None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(t.send(f"0809{i:07d}", "x"), rnd.uniform(0.0, 0.3))

            await asyncio.gather(*(one(i) for i in range(200)))
            await asyncio.sleep(0.3)  # backend calls cut off by a cancel end in their threads
            (_, cap) = (await t.health())["one"].limits
            start = time.monotonic()
            await asyncio.wait_for(t.send("08099999999", "after"), 10)
            return cap.used, time.monotonic() - start

    used, took = asyncio.run(main())
    assert used == 0
    assert took < 2.0


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_bulk_requests_in_segments_across_processes_never_exceed_the_limit(
        echo: tuple[str, EmulatorControl], store: str, tmp_path: Path,  # noqa: F811
        request: pytest.FixtureRequest) -> None:
    """send_many of two-part texts (bulk requests of two, and singles) from several processes
    through a limit in segments with ``max_limit_wait``: no window at the vendor holds more
    segments than the limit, each message is sent once or logged not sent, never both."""
    url, ctl = echo
    where = f"sqlite:///{tmp_path / 'b.db'}" if store == "sqlite" else request.getfixturevalue("pg_store")
    cfg = config(where, {"one": provider(url, limits=[{"rate": 8, "per": 1, "unit": "segments", "burst": 4}])},
                 max_limit_wait=1.0)
    open_store(where).close()
    jobs = [("0810100", 24, "bulk", "1"), ("0810200", 24, "bulk", "2"), ("0810300", 24, "bulk", "3")]
    outcomes = run_workers(cfg, tmp_path, jobs, kill_after={})
    assert busiest(arrivals(ctl, "segments"), 1.0) <= 8
    seen = sent_to(ctl)
    assert len(seen) == len(set(seen))
    kinds = []
    for results in outcomes.values():
        assert len(results) == 24
        for number, outcome in results:
            to = f"+234{number[1:]}"
            kinds.append(outcome)
            assert outcome in ("ok", "failed:not_sent"), (number, outcome)
            assert (to in seen) == (outcome == "ok"), (number, outcome)
    print({k: kinds.count(k) for k in set(kinds)})


def _health_wait(cfg: dict[str, Any]) -> float:
    with Gateway(cfg, plugins=plugins()) as gw:
        (rate,) = gw.tenant("acme").health()["one"].limits
    return rate.wait


def test_slots_reserved_by_a_killed_process_do_not_hold_others_back(
        echo: tuple[str, EmulatorControl], shared: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    """A process with six sends waiting for a slow limit (one each 10 s) is killed: nothing of
    theirs was sent, yet their six reserved slots (60 s) held every other process's sends
    back (refused under max_limit_wait, retry_after ~60 s) until they passed. Their leases
    lapse at most ``RESERVATION_LEASE`` after the kill: then the next send goes in the slot
    after the one sent (from the vendor's record), not after the six that never left."""
    url, ctl = echo
    cfg = {**config(shared["store"], {"one": provider(url, limits=[{"rate": 1, "per": 10}])}),
           **{k: v for k, v in shared.items() if k != "store"}}
    open_store(shared["store"]).close()
    # killed half a second after the first send reached the vendor (the others reserved with it)
    run_workers(cfg, tmp_path, [("0811100", 7, "sync", "1")], kill_after={"0811100": 0.5},
                ready=lambda: bool(sent_to(ctl)))
    assert len(sent_to(ctl)) == 1  # the first; six were waiting
    time.sleep(RESERVATION_LEASE)  # the bound: every place the killed process took has lapsed
    assert _health_wait(cfg) < 10  # the slot after the one sent, not after the six
    cfg["tenants"]["acme"]["max_limit_wait"] = 8.0  # refused if it had to wait for the dead slots
    with Gateway(cfg, plugins=plugins()) as gw:
        assert gw.tenant("acme").send("08111990000", "x").ok
    assert sent_to(ctl)[-1] == "+2348111990000"


@pytest.mark.slow
# one backend: the rule is limits.py's, the same in each (the killed-process test above runs on all
# three); a minute a run
@pytest.mark.parametrize("shared", ["sqlite"], indirect=True)
def test_live_waiters_keep_their_places_past_the_lease_while_a_killed_one_loses_its(
        echo: tuple[str, EmulatorControl], shared: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    """Two processes queue seven sends each behind one limit (one each 4 s: their places run
    ~56 s ahead, far past ``RESERVATION_LEASE``); one is killed at once. The live one's
    waiters renew their places: a lease past, the queue still ends after the live process's
    last place (a new request would wait for it), every one of its sends goes, and no window
    of the vendor's record holds more than the limit."""
    url, ctl = echo
    cfg = {**config(shared["store"], {"one": provider(url, limits=[{"rate": 1, "per": 4}])}),
           **{k: v for k, v in shared.items() if k != "store"}}
    open_store(shared["store"]).close()
    waits: list[float] = []
    # one lease after the kill, the live process's last place (the 7th of its own, >= 28 s
    # from the start) is still well ahead: its places were not given back
    probe = threading.Timer(RESERVATION_LEASE + 2.0, lambda: waits.append(_health_wait(cfg)))

    def first_sent() -> bool:
        if sent_to(ctl):
            probe.start()
            return True
        return False

    outcomes = run_workers(cfg, tmp_path, [("0812100", 7, "sync", "1"), ("0812200", 7, "sync", "2")],
                           kill_after={"0812200": 0.5}, ready=first_sent)
    probe.join()
    assert waits and waits[0] > 4, waits
    assert sorted(o for _, o in outcomes["0812100"]) == ["ok"] * 7
    seen = sent_to(ctl)
    assert {f"+234{n[1:]}" for n, _ in outcomes["0812100"]} <= set(seen)
    assert busiest(arrivals(ctl), 4.0) <= 1


def test_a_dead_waiters_places_are_given_back_once_their_lease_lapses() -> None:
    """The pure rule: places reserved and never renewed (their waiter died) count until their
    lease lapses, then are given back; the place of a request admitted in time is never."""
    rule = Limit(rate=1, per=10).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    states = {"provider:one": KeyState("provider:one")}
    first: Slots = {}
    assert reserve(states, [charge], 0.0, slots=first) == 0.0
    assert admit(states, [charge], 0.0, "r1", 60.0, first) == 0.0  # sent: [0, 10) used
    dead: list[Slots] = [{} for _ in range(6)]
    assert [reserve(states, [charge], 0.5, slots=s) for s in dead] == pytest.approx([9.5, 19.5, 29.5, 39.5, 49.5,
                                                                                     59.5])
    state = states["provider:one"]
    assert spacing_wait(state, rule, 0.5 + RESERVATION_LEASE - 0.01) == pytest.approx(70 - 15.49)  # still held
    t = 0.5 + RESERVATION_LEASE
    assert spacing_wait(state, rule, t) == 0.0  # all six lapsed: back to the end of the one sent (10 < t)
    assert not [n for n in state.marks if " slot " in n or " hole " in n]
    assert reserve(states, [charge], t) == 0.0


def test_a_renewed_place_holds_and_a_dead_one_in_the_middle_becomes_a_hole() -> None:
    """A live waiter behind a dead one renews its place: the dead one's lapses into a hole (the
    live one keeps its moment), and the queue still ends after the live one."""
    rule = Limit(rate=1, per=10).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    states = {"provider:one": KeyState("provider:one")}
    dead: Slots = {}
    live: Slots = {}
    assert reserve(states, [charge], 0.0) == 0.0  # sent at once
    assert reserve(states, [charge], 0.0, slots=dead) == pytest.approx(10.0)
    assert reserve(states, [charge], 0.0, slots=live) == pytest.approx(20.0)
    for t in (5.0, 10.0, 15.0):
        assert renew(states, [charge], t, live) == pytest.approx(20.0 - t)
    state = states["provider:one"]
    assert spacing_wait(state, rule, 16.0) == pytest.approx(30.0 - 16.0)  # the live place holds
    assert [n for n in state.marks if " hole " in n] == [f"{rule.name} hole 10.0"]  # the dead one's
    assert admit(states, [charge], 20.0, "r", 60.0, live) == 0.0
    assert not [n for n in state.marks if " slot " in n]  # no place left to lapse
    assert spacing_wait(state, rule, 20.0 + RESERVATION_LEASE) == 0.0


def test_an_admitted_requests_place_is_never_given_back_as_a_dead_ones() -> None:
    """A request admitted ends its place's lease: its slot (up to one interval ahead, 100 s
    here) is never given back when the lease would have lapsed."""
    rule = Limit(rate=1, per=100).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    states = {"provider:one": KeyState("provider:one")}
    slots: Slots = {}
    assert reserve(states, [charge], 0.0, slots=slots) == 0.0
    assert admit(states, [charge], 0.0, "r", 300.0, slots) == 0.0
    assert reserve(states, [charge], RESERVATION_LEASE + 5) == pytest.approx(100 - RESERVATION_LEASE - 5)


def test_a_waiter_told_to_wait_at_admission_renews_its_place() -> None:
    """Its slot came, but the window is full (answers still to come): each try renews its place."""
    rule = Limit(rate=1, per=10).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    states = {"provider:one": KeyState("provider:one")}
    assert admit(states, [charge], 0.0, "in-flight", 300.0) == 0.0  # never answered
    slots: Slots = {}
    reserve(states, [charge], 0.0, slots=slots)
    reserve(states, [charge], 0.0, slots={})  # after it, so its place is mid-queue
    ((start, _end),) = slots.values()  # its place: the first slot after the spacing of the request in flight

    def until() -> float:
        (value,) = [v for n, v in states["provider:one"].marks.items() if n.startswith(f"{rule.name} slot {start!r} ")]
        return value

    assert admit(states, [charge], 5.0, "r", 300.0, slots) > 0
    assert until() == RESERVATION_LEASE  # more than half its lease left: not renewed (nothing written)
    for t in (9.0, 17.0, 25.0):
        assert admit(states, [charge], t, "r", 300.0, slots) > 0
        assert until() == t + RESERVATION_LEASE  # less than half its lease was left: renewed
    states["provider:one"].marks_changed = False
    assert admit(states, [charge], 26.0, "r", 300.0, slots) > 0
    assert until() == 25.0 + RESERVATION_LEASE and not states["provider:one"].marks_changed


def test_a_slot_given_back_from_the_middle_does_not_double_up_a_later_slot() -> None:
    """Three requests reserve slots 0, 1 and 2 intervals away; the middle one is cancelled
    and gives its slot back. The third still leaves at its own slot (2), so a new request
    must not get slot 2 (two requests at once under ``burst = 1``; before, it did: the give-back
    moved the spacing mark back by one slot). It gets slot 3; once the third is given back
    too, the whole tail (its slot and the middle one's hole) is free again."""
    rule = Limit(rate=5, per=1).rule()  # a slot each 0.2 s
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    states = {"provider:one": KeyState("provider:one")}
    taken: list[Slots] = [{}, {}, {}]
    assert [reserve(states, [charge], 0.0, slots=s) for s in taken] == pytest.approx([0.0, 0.2, 0.4])
    unreserve(states, [charge], 0.1, taken[1])  # the second, stopped
    fourth: Slots = {}
    assert 0.1 + reserve(states, [charge], 0.1, slots=fourth) == pytest.approx(0.6)  # after the third
    unreserve(states, [charge], 0.1, fourth)  # the end of the queue: given back at once
    unreserve(states, [charge], 0.1, taken[2])  # the third: the end, and the hole before it
    assert 0.1 + reserve(states, [charge], 0.1) == pytest.approx(0.2)  # the second's slot again
    assert not [n for n in states["provider:one"].marks if "hole" in n]


def test_holes_in_the_past_are_forgotten_and_a_late_give_back_changes_nothing() -> None:
    rule = Limit(rate=5, per=1).rule()
    charge = Charge("provider:one", (rule,), Usage(1, 1))
    states = {"provider:one": KeyState("provider:one")}
    taken: list[Slots] = [{}, {}, {}]
    for s in taken:
        reserve(states, [charge], 0.0, slots=s)
    unreserve(states, [charge], 0.1, taken[1])
    assert [n for n in states["provider:one"].marks if "hole" in n]
    unreserve(states, [charge], 5.0, taken[0])  # long after: its slot is past, nothing to give back
    assert not [n for n in states["provider:one"].marks if "hole" in n]  # the past hole is gone
    assert reserve(states, [charge], 5.0) == 0.0


def test_queued_sends_refused_together_do_not_stampede(echo: tuple[str, EmulatorControl],  # noqa: F811
                                                       tmp_path: Path) -> None:
    """20 queued sends (eager mode, 20 threads) through one limit of 10 a second with
    ``max_limit_wait``: each refused attempt retries after its ``retry_after``, which is the
    same for all of them (the next slot), so they retry as a herd. Each attempt is a message
    logged ``failed``/``not_sent``; a few per message would be expected, not ~16 (657 attempts
    for 40 messages measured), each a store write and a row in the log."""
    celery = pytest.importorskip("celery")
    from smsgate.contrib.celery import configure

    url, ctl = echo
    cfg = config(f"sqlite:///{tmp_path / 'h.db'}", {"one": provider(url, limits=[{"rate": 10, "per": 1}])},
                 max_limit_wait=0.01)
    with Gateway(cfg, plugins=plugins()) as gw:
        app = celery.Celery("attack8-herd", broker="memory://", set_as_current=False)
        configure(app, gateway=lambda: gw)
        send = app.tasks["smsgate.send_message"]
        with ThreadPoolExecutor(20) as pool:
            runs = list(pool.map(lambda i: send.apply(("acme", f"0812{i:07d}", "x"), {"idempotency_key": f"h{i}"}),
                                 range(20)))
        assert all(r.successful() for r in runs)
        attempts = len(gw.tenant("acme").messages(limit=10000))
    assert len(sent_to(ctl)) == 20
    assert attempts <= 20 * 4, f"{attempts} attempts logged for 20 messages"


def test_a_release_cancelled_while_queued_for_a_worker_thread_is_still_recorded() -> None:
    """The answer came back and the release waits for a free worker thread (the store's
    executor busy with other sends) when the caller's timeout cancels it: a cancelled
    executor job still queued never runs, so the request stayed in flight until its lease
    ended and a ``max_concurrency = 1`` provider took nothing more for a minute (seen with
    200 async sends under ``asyncio.wait_for`` through PostgreSQL)."""
    from concurrent.futures import ThreadPoolExecutor as Pool

    backend = LocalTraffic()
    charge = Charge("provider:one", (), Usage(1, 1), concurrency=1)
    busy, pool = threading.Event(), Pool(1)

    class Threaded:  # the backend behind a worker thread, as the store is
        def traffic(self, tenant: str, horizons: Any, fn: Callable[[dict[str, KeyState], float], T]) -> T:
            return backend.traffic(tenant, horizons, fn)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        run = lambda fn, *a: loop.run_in_executor(pool, partial(fn, *a))  # noqa: E731
        gate = AsyncGate(Threaded(), "acme", [charge], 60.0, run)
        ticket = await gate.acquire()
        pool.submit(busy.wait, 5)  # the only worker thread, busy
        task = asyncio.ensure_future(gate.release(ticket))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.05)
        busy.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await loop.run_in_executor(pool, lambda: None)  # the queue drained

    asyncio.run(main())
    pool.shutdown()
    assert in_flight(backend, "provider:one") == 0
