"""Verify 8: the async API under task cancellation, as a FastAPI app meets it.

``asyncio.wait_for`` expiring at random points of an ``AsyncTenant.send`` (before the key's
claim, during the write-ahead, while the request is at a slow vendor, while the answer is
logged), of a ``send_many`` of 50 and of a campaign ``run()``; the app then retries with the
same idempotency key, or runs the campaign again. Verdicts come from the echo emulator's own
request record (``EmulatorControl.requests``): each key reaches the vendor at most once, no
message the vendor got is recorded as never sent, no message recorded sent that it did not get,
nothing is left ``queued``, a campaign re-run sends every recipient exactly once overall. While
another process holds the SQLite write lock, the event loop's lag is measured (store work runs
in worker threads).

Found and fixed: a campaign run cancelled while it registered its runner (``start_runner``
waiting for the store's write lock) left that registration to its worker thread: a runner that
never ran held a live lease on the campaign for ``lease_seconds`` (``runners()`` listed it,
``delete()`` refused the campaign).
"""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

import test_attack_10 as attack10
from reference_provider import API_KEY, EchoPlugin
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway, Status
from smsgate.emulation import FaultRule
from smsgate.errors import GatewayClosed
from smsgate.models import MessageRecord
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl

#: ``python -c LOCKER path seconds``: holds the SQLite write lock (BEGIN IMMEDIATE) of ``path``
#: for ``seconds``, printing ``locked`` once it holds it
LOCKER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def config(url: str, store: str) -> dict[str, Any]:
    return {"store": store, "tenants": {"a": {"default_region": "NG", "providers": {"one": {
        "plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
        "max_retries": 0, "timeout": 5}}}}}


def e164(national: str) -> str:
    return "+234" + national[1:]


#: the fixtures (the echo emulator, a store of each kind) and the vendor's record, as test_attack_10's
echo, store_url, vendor_got = attack10.echo, attack10.store_url, attack10.echo_received


def stored(store: str, url: str) -> dict[str, list[MessageRecord]]:
    """The log's records by number, read by a fresh gateway (the async one closed)."""
    with Gateway(config(url, store), plugins=plugins()) as gw:
        out: dict[str, list[MessageRecord]] = {}
        for rec in gw.tenant("a").messages(limit=100_000):
            out.setdefault(rec.to, []).append(rec)
        return out


def breaches(numbers: list[str], got: Counter[str], recs: dict[str, list[MessageRecord]]) -> list[str]:
    """What breaks a promise, number by number (empty: none)."""
    bad = []
    for n in numbers:
        to, rs = e164(n), recs.get(e164(n), [])
        statuses = [(r.status.value, r.raw_status) for r in rs]
        if got[to] > 1:
            bad.append(f"{to}: at the vendor {got[to]} times {statuses}")
        if any(r.status is Status.QUEUED for r in rs):
            bad.append(f"{to}: left queued {statuses}")
        if got[to] and rs and all(r.status in (Status.FAILED, Status.REJECTED) for r in rs):
            bad.append(f"{to}: the vendor got it, the log says never sent {statuses}")
        if not got[to] and any(r.status in (Status.SUBMITTED, Status.SENT, Status.DELIVERED) for r in rs):
            bad.append(f"{to}: logged sent, the vendor never got it {statuses}")
    return bad


class Loop:
    """Records what asyncio reports to the loop's exception handler ("Task exception was never
    retrieved", a callback failing...) and, while :meth:`lag` runs, how late a 5 ms sleep wakes."""

    def __init__(self) -> None:
        self.reports: list[str] = []
        self.lags: list[float] = []

    def watch(self) -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: self.reports.append(str(ctx)))

    async def lag(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            self.lags.append(time.perf_counter() - t0 - 0.005)

    def worst(self) -> float:
        return max(self.lags, default=0.0)


# ------------------------------------------------------------------ 1. send() cancelled, retried
async def _cancelled_sends(store: str, url: str, ctl: EmulatorControl, numbers: list[str], latency: float,
                           seed: int, loop: Loop) -> list[tuple[str, float, str, list[tuple[str, str | None]]]]:
    loop.watch()
    rnd = random.Random(seed)
    cases = []
    async with AsyncGateway(config(url, store), plugins=plugins()) as gw:
        t = gw.tenant("a")
        await t.send("08030000000", "warm-up")  # the pool and the store opened
        spans = []
        for _ in range(5):  # the span of a steady send (the warm-up's includes the opening: far longer)
            t0 = time.perf_counter()
            await t.send("08030000000", "warm-up")
            spans.append(time.perf_counter() - t0)
        span = sorted(spans)[2] + latency
        for i, number in enumerate(numbers):
            key = f"order-{seed}-{i}"
            if latency:
                ctl.add(FaultRule.latency(latency, path="/messages", method="POST", count=1))
            timeout = rnd.uniform(0, span * 1.3)
            try:
                await asyncio.wait_for(t.send(number, "Your order has shipped", idempotency_key=key), timeout)
                first = "answered"
            except asyncio.TimeoutError:
                first = "cancelled"
            retries = []
            for _ in range(2):  # the app's retries with the same key: each gets an answer
                r = await t.send(number, "Your order has shipped", idempotency_key=key)
                retries.append((r.status.value, r.raw_status))
            cases.append((number, timeout, first, retries))
            ctl.clear_faults()
        await asyncio.sleep(latency + 0.05)  # the last slow request reached the vendor
    return cases


@pytest.mark.parametrize("latency", [0.0, 0.15])
def test_a_send_cancelled_anywhere_and_retried_with_its_key_reaches_the_vendor_at_most_once(
    store_url: str, echo: tuple[str, EmulatorControl], latency: float, capfd: pytest.CaptureFixture[str],
) -> None:
    """``wait_for(send(..., idempotency_key=K), t)``, ``t`` drawn over the whole send (with a slow
    vendor: mostly while the request is there), then two retries with ``K``. Each key reached
    the vendor at most once; the retries answer the first message's result: ``unknown`` for
    one cancelled while its request was under way, ``failed`` / ``not_sent`` only for one the
    vendor never got; nothing is left ``queued``; the status poller then settles the
    ``unknown`` ones the vendor got (found: ``submitted``); one cancelled before the whole
    request reached the vendor stays ``unknown`` until its settle time."""
    url, ctl = echo
    _check_cancelled_sends(store_url, url, ctl, capfd, latency, seed=8, n=24)


@pytest.mark.heavy
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("latency", [0.0, 0.15])
def test_heavy_sends_cancelled_anywhere(store_url: str, echo: tuple[str, EmulatorControl], latency: float,
                                        seed: int, capfd: pytest.CaptureFixture[str]) -> None:
    """The same, 80 sends a seed."""
    url, ctl = echo
    _check_cancelled_sends(store_url, url, ctl, capfd, latency, seed=seed, n=80)


def _check_cancelled_sends(store_url: str, url: str, ctl: EmulatorControl, capfd: pytest.CaptureFixture[str],
                           latency: float, *, seed: int, n: int) -> None:
    numbers = [f"0803{1000000 + i:07d}" for i in range(n)]
    loop = Loop()
    cases = asyncio.run(_cancelled_sends(store_url, url, ctl, numbers, latency, seed, loop))
    got = vendor_got(ctl)
    recs = stored(store_url, url)
    assert breaches(numbers, got, recs) == []
    kinds: Counter[str] = Counter()
    for number, timeout, first, retries in cases:
        (rec,) = recs[e164(number)]
        assert retries[0] == retries[1] == (rec.status.value, rec.raw_status), (number, timeout, retries, rec)
        if rec.status is Status.FAILED:
            assert rec.raw_status == "not_sent" and not got[e164(number)], (number, timeout, rec)
        kinds[f"{first}:{rec.status.value}"] += 1
    assert kinds["cancelled:unknown"] + kinds["cancelled:submitted"] > 0, kinds
    if latency:
        assert kinds["cancelled:unknown"] >= 5, kinds  # most cancels land while the vendor holds it
    # the poller settles what a cancel left unknown and the vendor got (found: its status); one
    # cancelled before the vendor had the whole request stays unknown until its settle time
    with Gateway(config(url, store_url), plugins=plugins()) as gw:
        gw.tenant("a").sync_statuses(older_than=0)
        for number in numbers:
            rec = gw.tenant("a").messages(to=e164(number))[0]
            assert not (rec.status is Status.UNKNOWN and got[e164(number)]), rec
    assert loop.reports == []
    err = capfd.readouterr().err
    assert "never retrieved" not in err and "Event loop is closed" not in err, err


# ------------------------------------------------------------------ 2. send_many(50) cancelled
async def _cancelled_send_many(store: str, url: str, ctl: EmulatorControl, batches: list[list[str]],
                               timeouts: list[float], loop: Loop) -> list[str]:
    loop.watch()
    outcomes = []
    async with AsyncGateway(config(url, store), plugins=plugins()) as gw:
        t = gw.tenant("a")
        await t.send("08030000000", "warm-up")
        for numbers, timeout in zip(batches, timeouts):
            ctl.add(FaultRule.latency(0.08, path="/messages", method="POST", count=None))
            try:
                results = await asyncio.wait_for(t.send_many(numbers, "Sale ends tonight", concurrency=4), timeout)
                outcomes.append(f"answered {Counter(r.status.value for r in results)}")
            except asyncio.TimeoutError:
                outcomes.append("cancelled")
            ctl.clear_faults()
        await asyncio.sleep(0.15)
    return outcomes


def test_send_many_of_50_cancelled_mid_way_logs_what_the_vendor_got_as_sent_and_only_that(
    store_url: str, echo: tuple[str, EmulatorControl], capfd: pytest.CaptureFixture[str],
) -> None:
    """50 messages, 2 a request (the echo vendor's ``max_batch``), 4 requests at a time against a
    vendor taking 80 ms: cancelled before the first request, after a few, near the end. What
    the vendor got is logged sent (``submitted``), the rest ``failed`` / ``not_sent``; no
    message twice, none ``queued``."""
    url, ctl = echo
    timeouts = [0.001, 0.05, 0.12, 0.25, 0.4, 0.55]
    batches = [[f"080{31 + b:02d}{j:06d}" for j in range(50)] for b in range(len(timeouts))]
    loop = Loop()
    outcomes = asyncio.run(_cancelled_send_many(store_url, url, ctl, batches, timeouts, loop))
    got = vendor_got(ctl)
    recs = stored(store_url, url)
    reached = []
    for numbers in batches:
        assert breaches(numbers, got, recs) == []
        for n in numbers:
            (rec,) = recs[e164(n)]
            assert (rec.status, rec.raw_status) in ((Status.SUBMITTED, "accepted"), (Status.FAILED, "not_sent")), rec
        reached.append(sum(got[e164(n)] for n in numbers))
    assert outcomes[:4] == ["cancelled"] * 4, outcomes
    # cut at different points: before the first request and part-way, more than once (by the
    # vendor's count, not by which timeout: under load a later timeout may reach less, as a CI
    # run's [0, 8, 0, 24, 40, 50] did, and the ordering asserted before failed the test on that)
    assert 0 in reached and sum(0 < r < 50 for r in reached) >= 2, reached
    assert loop.reports == []
    err = capfd.readouterr().err
    assert "never retrieved" not in err and "Event loop is closed" not in err, err


class SiblingFailed(Exception):
    pass


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is Python 3.11+")
def test_send_many_and_a_campaign_run_in_a_task_group_whose_sibling_fails(
    store_url: str, echo: tuple[str, EmulatorControl],
) -> None:
    """A ``TaskGroup`` cancels ``send_many`` (50) and a campaign ``run()`` when a sibling fails
    at 0.2 s: the vendor's record and the log agree message by message, nothing ``queued`` or
    ``sending``, and the campaign's re-run sends each of its recipients once overall."""
    url, ctl = echo
    bulk = [f"0806{j:07d}" for j in range(50)]
    audience = [f"0807{j:07d}" for j in range(40)]

    async def fail() -> None:
        await asyncio.sleep(0.2)
        raise SiblingFailed

    async def main() -> tuple[Any, Any, Any]:
        async with AsyncGateway(config(url, store_url), plugins=plugins()) as gw:
            t = gw.tenant("a")
            camp = await t.campaigns.create("c", audience=audience, text="hi", concurrency=4, batch_size=10)
            ctl.add(FaultRule.latency(0.08, path="/messages", method="POST", count=None))
            with pytest.raises(ExceptionGroup) as info:  # noqa: F821 - Python 3.11+
                async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined,unused-ignore]
                    group.create_task(t.send_many(bulk, "Sale ends tonight", concurrency=4))
                    group.create_task(camp.run())
                    group.create_task(fail())
            assert [type(e) for e in info.value.exceptions] == [SiblingFailed]
            ctl.clear_faults()
            after, runners = await camp.progress(), await camp.runners()
            return after, runners, await camp.run()

    after, runners, again = asyncio.run(main())
    got = vendor_got(ctl)
    assert breaches(bulk, got, stored(store_url, url)) == []
    assert 0 < sum(got[e164(n)] for n in bulk) < 50
    assert after.sending == 0 and runners == {} and after.status.value == "interrupted", after
    assert again.sent == 40 and Counter(got[e164(n)] for n in audience) == Counter({1: 40})


# ------------------------------------------------------------------ 3. a campaign run cancelled
async def _cancelled_runs(store: str, url: str, ctl: EmulatorControl, audiences: list[list[str]],
                          timeouts: list[float], loop: Loop) -> list[tuple[Any, ...]]:
    loop.watch()
    out = []
    async with AsyncGateway(config(url, store), plugins=plugins()) as gw:
        t = gw.tenant("a")
        for i, (numbers, timeout) in enumerate(zip(audiences, timeouts)):
            camp = await t.campaigns.create(f"c{i}", audience=numbers, text="hi", concurrency=4, batch_size=10)
            ctl.add(FaultRule.latency(0.08, path="/messages", method="POST", count=None))  # ~0.4 s a run
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(camp.run(), timeout)
            ctl.clear_faults()
            after = await camp.progress()
            runners = await camp.runners()
            again = await camp.run()
            out.append((timeout, after, runners, again))
    return out


def test_a_campaign_run_cancelled_anywhere_leaves_no_live_claim_and_a_rerun_sends_each_once(
    store_url: str, echo: tuple[str, EmulatorControl], capfd: pytest.CaptureFixture[str],
) -> None:
    """``wait_for(camp.run(), t)`` for ``t`` from before the runner registers to the last
    requests; right after the cancel no recipient is ``sending`` and no runner holds a lease,
    and a re-run completes the campaign: every recipient reached the vendor exactly once."""
    url, ctl = echo
    timeouts = [0.0005, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3]
    audiences = [[f"080{41 + b:02d}{j:06d}" for j in range(40)] for b in range(len(timeouts))]
    loop = Loop()
    runs = asyncio.run(_cancelled_runs(store_url, url, ctl, audiences, timeouts, loop))
    got = vendor_got(ctl)
    for numbers, (timeout, after, runners, again) in zip(audiences, runs):
        assert after.sending == 0 and runners == {}, (timeout, after, runners)
        assert again.status.value == "completed" and again.sent == 40, (timeout, again)
        assert Counter(got[e164(n)] for n in numbers) == Counter({1: 40}), timeout
    assert loop.reports == []
    gc.collect()
    err = capfd.readouterr().err
    assert "never retrieved" not in err and "Event loop is closed" not in err, err


def _hold_write_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    return locker


def test_a_run_cancelled_while_it_registers_its_runner_leaves_no_runner_behind(
    tmp_path: Path, echo: tuple[str, EmulatorControl],
) -> None:
    """Another process holds the SQLite write lock for 1 s; ``wait_for(camp.run(), 0.3)`` is
    cancelled while the runner's registration waits for it. Before the fix the registration went
    on in its thread once the lock was free: a runner that never ran held a live lease for
    ``lease_seconds`` (30 s): ``runners()`` listed it and ``delete()`` refused the campaign."""
    url, ctl = echo
    path = tmp_path / "verify8.db"

    async def main() -> tuple[dict[str, Any], bool, int]:
        async with AsyncGateway(config(url, f"sqlite:///{path}"), plugins=plugins()) as gw:
            t = gw.tenant("a")
            numbers = [f"0803{j:07d}" for j in range(10)]
            camp = await t.campaigns.create("c", audience=numbers, text="hi")
            locker = await asyncio.to_thread(_hold_write_lock, path, 1.0)
            try:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(camp.run(), 0.3)
            finally:
                locker.wait()
            runners = await camp.runners()
            sent = (await camp.run()).sent
            return runners, await camp.delete(), sent

    runners, deleted, sent = asyncio.run(main())
    assert runners == {}
    assert deleted and sent == 10
    assert Counter(vendor_got(ctl).values()) == Counter({1: 10})


# ------------------------------------------------------------------ 4. the loop under a locked store
async def _under_a_locked_store(path: Path, url: str, what: str, timeout: float, loop: Loop) -> tuple[str, float]:
    loop.watch()
    async with AsyncGateway(config(url, f"sqlite:///{path}"), plugins=plugins()) as gw:
        t = gw.tenant("a")
        await t.send("08030000000", "warm-up")
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(loop.lag(stop))
        await asyncio.sleep(0.05)
        locker = await asyncio.to_thread(_hold_write_lock, path, 1.0)
        t0 = time.perf_counter()
        try:
            if what == "send":
                await asyncio.wait_for(t.send("08039990000", "hi", idempotency_key="K"), timeout)
            else:
                await asyncio.wait_for(t.send_many([f"0803998{j:04d}" for j in range(50)], "hi"), timeout)
            outcome = "answered"
        except asyncio.TimeoutError:
            outcome = "cancelled"
        except Exception as exc:  # (what the test then shows)
            outcome = f"raised {type(exc).__name__}: {exc}"
        took = time.perf_counter() - t0
        await asyncio.to_thread(locker.wait)
        stop.set()
        await watcher
        if what == "send":  # the app's retry: the first message's answer
            again = await t.send("08039990000", "hi", idempotency_key="K")
            outcome += f" retry:{again.status.value}/{again.raw_status}"
    return outcome, took


@pytest.mark.parametrize("what, timeout, expected", [
    ("send", 0.3, "cancelled retry:failed/not_sent"),
    ("send", 5.0, "answered retry:submitted/accepted"),
    ("send_many", 0.3, "cancelled"),
    ("send_many", 5.0, "answered"),
])
def test_the_loop_runs_on_while_another_process_holds_the_sqlite_write_lock(
    tmp_path: Path, echo: tuple[str, EmulatorControl], what: str, timeout: float, expected: str,
) -> None:
    """A send (or a send_many of 50) whose write-ahead waits 1 s for another process's write lock,
    cancelled at 0.3 s or not: a task sleeping 5 ms at a time never wakes more than 100 ms late
    (measured: at most ~5-20 ms; the store's work is in worker threads). A cancelled send
    returns once its write-ahead is written (~1 s: the write is answered, then the message is
    ``failed`` / ``not_sent``, never sent), and its retry answers that; the vendor got nothing
    of a cancelled call."""
    url, ctl = echo
    path = tmp_path / "verify8.db"
    loop = Loop()
    outcome, took = asyncio.run(_under_a_locked_store(path, url, what, timeout, loop))
    assert outcome == expected, (outcome, took, loop.worst())
    assert len(loop.lags) > 50 and loop.worst() < 0.1, (loop.worst(), len(loop.lags))
    assert 0.9 < took < 3.0, took
    got = vendor_got(ctl)
    assert sum(got.values()) == 1 + (0 if outcome.startswith("cancelled") else (1 if what == "send" else 50))
    recs = stored(f"sqlite:///{path}", url)
    assert not any(r.status is Status.QUEUED for rs in recs.values() for r in rs)
    assert loop.reports == []


# ------------------------------------------------------------------ anyio's cancel scopes
# anyio's cancel scopes (what Starlette and FastAPI run on: `anyio.move_on_after`, `fail_after`,
# a task group cancelling on a client's disconnect) cancel level-triggered: the task is cancelled
# again at every await until it leaves the scope. The drivers finish an interrupted plan with
# more awaits (the write-ahead's answer, the answers' log, a campaign's release of its claims),
# which assumed one cancellation, as asyncio's own `wait_for` / `timeout` / `TaskGroup` deliver;
# they now finish it in a shielded scope (smsgate._shield.shielded).
def test_a_send_under_an_anyio_deadline_cancelled_during_its_write_ahead_is_not_left_queued(
    tmp_path: Path, echo: tuple[str, EmulatorControl],
) -> None:
    """``with anyio.move_on_after(0.25): await send(..., idempotency_key=K)`` while another process
    holds the write lock for 1 s: the write-ahead is written (the key bound) after the deadline,
    and the plan marks the message ``failed`` / ``not_sent`` (the second cancellation stopped the
    plan before that: it stayed ``queued`` in a process that lives on, and every retry with ``K``
    answered ``queued``; docs/concepts.md: "nothing is left queued"). Nothing is sent twice."""
    url, ctl = echo
    path = tmp_path / "verify8.db"

    async def main() -> tuple[str, str | None]:
        async with AsyncGateway(config(url, f"sqlite:///{path}"), plugins=plugins()) as gw:
            t = gw.tenant("a")
            await t.send("08030000000", "warm-up")
            locker = await asyncio.to_thread(_hold_write_lock, path, 1.0)
            with anyio.move_on_after(0.25):
                await t.send("08039990000", "hi", idempotency_key="K")
            await asyncio.to_thread(locker.wait)
            await asyncio.sleep(0.3)
            again = await t.send("08039990000", "hi", idempotency_key="K")
            return again.status.value, again.raw_status

    status = asyncio.run(main())
    assert sum(vendor_got(ctl).values()) == 1  # the warm-up only
    assert status == ("failed", "not_sent")  # (was ("queued", None))


def test_a_campaign_run_under_an_anyio_deadline_releases_its_claims(echo: tuple[str, EmulatorControl],
                                                                    store_url: str) -> None:
    """``with anyio.move_on_after(0.25): await camp.run()`` against a vendor taking 100 ms: the
    run waits for its batches in flight, releases its claims and ends ``interrupted`` (its
    Dispatch stopped waiting for the batches, which went on as orphan tasks, and its release,
    ``leave`` and often ``stop_runner`` were cancelled again: recipients stayed ``sending``, the
    runner's lease live, the campaign ``running``). The re-run sends each recipient once."""
    url, ctl = echo
    numbers = [f"0804{j:07d}" for j in range(40)]

    async def main() -> Any:
        async with AsyncGateway(config(url, store_url), plugins=plugins()) as gw:
            camp = await gw.tenant("a").campaigns.create("c", audience=numbers, text="hi", concurrency=4,
                                                         batch_size=10, lease_seconds=2)
            ctl.add(FaultRule.latency(0.1, path="/messages", method="POST", count=None))
            with anyio.move_on_after(0.25):
                await camp.run()
            await asyncio.sleep(0.4)  # the orphaned batches end
            ctl.clear_faults()
            after = await camp.progress()
            return after, await camp.run()

    after, again = asyncio.run(main())
    assert again.sent == 40 and Counter(vendor_got(ctl).values()) == Counter({1: 40})
    assert after.sending == 0 and after.status.value == "interrupted", after  # (was: sending > 0, running)


def test_aclose_under_a_running_campaign_stops_it_cleanly(echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    """An app that runs a campaign in a background task of its FastAPI process and closes the
    gateway in its lifespan: ``aclose()`` stops the run as Ctrl-C does (the requests in flight
    finish and are logged, the claims are released, the runner's lease ends, the campaign is
    ``interrupted``) before it closes the client and the store, and the run raises
    ``GatewayClosed``. (It returned at once, closed them under the run: the answers in flight were
    not logged, claims stayed ``sending`` under a live lease; a re-run waited the lease out and
    settled them by look-up, which a provider without look-ups would leave ``unknown``.)"""
    url, ctl = echo
    store = f"sqlite:///{tmp_path / 'v8.db'}"
    numbers = [f"0804{j:07d}" for j in range(60)]

    async def main() -> str:
        gw = AsyncGateway(config(url, store), plugins=plugins())
        camp = await gw.tenant("a").campaigns.create("c", audience=numbers, text="hi", concurrency=4,
                                                     batch_size=10, lease_seconds=2)
        cid = camp.campaign_id
        ctl.add(FaultRule.latency(0.1, path="/messages", method="POST", count=None))
        task = asyncio.ensure_future(camp.run())
        await asyncio.sleep(0.35)
        await gw.aclose()
        with pytest.raises(GatewayClosed):
            await task
        return cid

    cid = asyncio.run(main())
    ctl.clear_faults()
    with Gateway(config(url, store), plugins=plugins()) as gw:
        camp = gw.tenant("a").campaigns.get(cid)
        after, runners = camp.progress(), camp.runners()
        again = camp.run()
    assert again.sent == 60 and Counter(vendor_got(ctl).values()) == Counter({1: 60})
    assert after.sending == 0 and runners == {}, (after, runners)  # (was: sending > 0, a live runner)
    assert after.status.value == "interrupted", after
