"""A pause or cancel stops the runners already sending, within a bounded time, and exactly once holds.

What the vendor received is read from the emulator's own request records: after the pause or
cancel, a running runner sends at most what was in flight plus what its rate allows until its
heartbeat reads the campaign's status (every ``STATUS_CHECK`` seconds); the recipients it had
claimed and not sent end ``skipped`` (cancelled) or ``pending`` (paused, sent once on resume).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY
from smsgate import AsyncGateway, Gateway
from smsgate.core.campaign import STATUS_CHECK
from smsgate.models import CampaignStatus
from smsgate.testing import EmulatorControl
from test_exactly_once import echo, pg_store, plugins  # noqa: F401  (fixtures: the echo emulator, a fresh PostgreSQL schema)

RATE = 20  # messages per second
CONCURRENCY = 4
N = 300


def config(url: str, store: str) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            "rate_limit": RATE}
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}


def received(ctl: EmulatorControl) -> list[tuple[float, str]]:
    """(when, number) of every message the echo vendor received."""
    out = []
    for r in ctl.requests(method="POST"):
        body = r.json()
        out.extend((r.at, m["to"]) for m in (body["messages"] if r.path.endswith("/bulk") else [body]))
    return out


def bound() -> int:
    """What a runner may still send after a pause or cancel: the requests in flight (bulk
    requests of up to 2) plus what its rate allows until its heartbeat's next status read
    (one second of slack for the run's own steps)."""
    return 2 * CONCURRENCY + int(RATE * (STATUS_CHECK + 1))


def stop_when(ctl: EmulatorControl, at_least: int, action: Callable[[], Any]) -> tuple[threading.Thread, list[float]]:
    """A thread doing ``action`` (from another gateway) once the vendor received ``at_least`` messages;
    the list gets the time (``time.time()``, as the emulator's records) just before it."""
    when: list[float] = []

    def watch() -> None:
        deadline = time.monotonic() + 120  # (a test that failed first: no thread polling for ever)
        while len(received(ctl)) < at_least:
            if time.monotonic() > deadline:
                return  # nothing in ``when``: the test says so
            time.sleep(0.05)
        when.append(time.time())
        action()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t, when


def store_of(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return f"sqlite:///{tmp_path / 'stop.db'}" if kind == "sqlite" else str(request.getfixturevalue("pg_store"))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_cancel_stops_a_rate_limited_run_and_skips_the_rest(
    tmp_path: Path, echo: tuple[str, EmulatorControl], kind: str, request: pytest.FixtureRequest  # noqa: F811  (the fixture)
) -> None:
    url, ctl = echo
    cfg = config(url, store_of(kind, tmp_path, request))
    numbers = [f"+234806{i:07d}" for i in range(N)]
    with Gateway(cfg, plugins=plugins()) as gw, Gateway(cfg, plugins=plugins()) as other:
        camp = gw.tenant("acme").campaigns.create("c", text="x", audience=numbers, concurrency=CONCURRENCY)
        cid = camp.campaign_id
        t, when = stop_when(ctl, 50, lambda: other.tenant("acme").campaigns.get(cid).cancel())
        result = camp.run()
        t.join()
    got = received(ctl)
    after = [n for at, n in got if at > when[0]]
    assert len(after) <= bound(), f"{len(after)} messages were sent after the cancel"
    counted = Counter(n for _, n in got)
    assert max(counted.values()) == 1
    assert result.status is CampaignStatus.CANCELLED
    assert (result.sent, result.pending, result.sending, result.unknown) == (len(counted), 0, 0, 0)
    assert result.skipped_by_reason == {"cancelled": N - len(counted)}


def test_pause_stops_a_run_and_resume_sends_each_recipient_once(
    tmp_path: Path, echo: tuple[str, EmulatorControl], request: pytest.FixtureRequest  # noqa: F811  (the fixture)
) -> None:
    url, ctl = echo
    cfg = config(url, store_of("sqlite", tmp_path, request))
    numbers = [f"+234807{i:07d}" for i in range(N)]
    with Gateway(cfg, plugins=plugins()) as gw, Gateway(cfg, plugins=plugins()) as other:
        camp = gw.tenant("acme").campaigns.create("p", text="x", audience=numbers, concurrency=CONCURRENCY)
        cid = camp.campaign_id
        t, when = stop_when(ctl, 50, lambda: other.tenant("acme").campaigns.get(cid).pause())
        first = camp.run()
        t.join()
        got = received(ctl)
        assert first.status is CampaignStatus.PAUSED
        assert len([n for at, n in got if at > when[0]]) <= bound()
        assert (first.sent, first.pending, first.sending, first.unknown) == (len(got), N - len(got), 0, 0)
        camp.resume()
        second = camp.run()
    assert second.status is CampaignStatus.COMPLETED and second.sent == N
    counted = Counter(n for _, n in received(ctl))
    assert set(counted) == set(numbers) and max(counted.values()) == 1


def test_cancel_stops_an_async_run(tmp_path: Path, echo: tuple[str, EmulatorControl],  # noqa: F811  (the fixture)
                                   request: pytest.FixtureRequest) -> None:
    url, ctl = echo
    cfg = config(url, store_of("sqlite", tmp_path, request))
    numbers = [f"+234808{i:07d}" for i in range(N)]

    async def go() -> tuple[Any, list[float]]:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            camp = await gw.tenant("acme").campaigns.create("a", text="x", audience=numbers,
                                                            concurrency=CONCURRENCY)
            with Gateway(cfg, plugins=plugins()) as other:
                t, when = stop_when(ctl, 50, lambda: other.tenant("acme").campaigns.get(camp.campaign_id).cancel())
                result = await camp.run()
                await asyncio.to_thread(t.join)
            return result, when

    result, when = asyncio.run(go())
    got = received(ctl)
    assert len([n for at, n in got if at > when[0]]) <= bound()
    assert result.status is CampaignStatus.CANCELLED
    assert (result.sent, result.pending, result.sending, result.unknown) == (len(got), 0, 0, 0)
    assert result.skipped_by_reason == {"cancelled": N - len(got)}


def test_the_heartbeat_renews_the_lease_by_the_clock_when_status_reads_are_slow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A beat whose status read is slow (a busy connection pool) still renews the runner's lease
    once a third of it has passed: renewals are due by the clock, not every Nth beat (which,
    with beats spaced out by the reads, let a 30 s lease lapse under a live runner)."""
    from smsgate.campaigns import handles
    from smsgate.store.sqlite import SQLiteStore

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(handles, "_clock", lambda: clock[0])
    renewals: list[float] = []

    class SlowReads(SQLiteStore):
        def get_campaign(self, tenant: str, campaign_id: str) -> Any:
            clock[0] += 6.0  # each status read takes 6 s
            return super().get_campaign(tenant, campaign_id)

        def renew_runner(self, *args: Any, **kwargs: Any) -> Any:
            renewals.append(clock[0])
            return super().renew_runner(*args, **kwargs)

    store = SlowReads(str(tmp_path / "beat.db"))
    store.migrate()
    with Gateway(config("http://127.0.0.1:9", "memory://"), plugins=plugins(), store=store) as gw:
        camp = gw.tenant("acme").campaigns.create("beat", audience=["08030000001"], text="hi")
        beat = handles.RunnerBeat(store, "acme", camp.campaign_id, "runner-1", 30.0)
        for _ in range(5):  # beats at 1000 + 2 s wait, each read 6 s: 30 s pass
            clock[0] += beat.interval
            beat.tick()
    assert renewals and renewals[0] <= 1000.0 + 10.0 + beat.interval + 6.0  # due at a third of 30 s
    assert all(b - a <= 10.0 + beat.interval + 6.0 for a, b in zip([1000.0, *renewals], renewals))


def test_a_runner_whose_claims_were_taken_over_passes_no_fence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's fence (each try of a request of its claimed messages): a clock read while
    its lease was renewed less than half of it ago; past that it renews the lease itself (the
    row still there: it goes on); once another runner took its claims over (its lease had
    ended: a paused process), the store refuses the renewal: LeaseLost, the runner is lost
    and halted, and every later try is refused without asking the store again."""
    from datetime import timedelta

    from smsgate.campaigns import handles
    from smsgate.errors import LeaseLost
    from smsgate.models import utcnow
    from smsgate.store.sqlite import SQLiteStore

    clock = [1000.0]
    monkeypatch.setattr(handles, "_clock", lambda: clock[0])
    renewals: list[str] = []

    class Counted(SQLiteStore):
        def renew_runner(self, tenant: str, campaign_id: str, owner: str, lease_until: Any) -> bool:
            renewals.append(owner)
            return super().renew_runner(tenant, campaign_id, owner, lease_until)

    store = Counted(str(tmp_path / "fence.db"))
    store.migrate()
    with Gateway(config("http://127.0.0.1:9", "memory://"), plugins=plugins(), store=store) as gw:
        camp = gw.tenant("acme").campaigns.create("fence", audience=["08030000001", "08030000002"], text="hi")
    cid = camp.campaign_id
    store.start_runner("acme", cid, "r1", utcnow() + timedelta(seconds=30))
    ids = iter(["m1", "m2"])
    store.claim_recipients("acme", cid, 2, lambda: next(ids), owner="r1")
    halted: list[bool] = []
    beat = handles.RunnerBeat(store, "acme", cid, "r1", 30.0, halt=lambda: halted.append(True))
    clock[0] += 14.0
    beat.fence()  # fresh: no store call
    assert renewals == [] and beat.fresh()
    clock[0] += 2.0  # renewed 16 s ago (a starved beat): the fence renews the lease first
    beat.fence()
    assert renewals == ["r1"] and beat.fresh() and not beat.lost
    clock[0] += 40.0  # paused past its lease: another runner takes its claims over
    store.start_runner("acme", cid, "r2", utcnow() + timedelta(seconds=30))
    taken = store.recover_claims("acme", cid, "r2", utcnow() + timedelta(seconds=31), 100)
    assert {r.message_id for r in taken} == {"m1", "m2"}
    with pytest.raises(LeaseLost, match=r"lost its lease .* another runner took its claims over"):
        beat.fence()
    assert beat.lost and beat.stopped.is_set() and halted == [True] and renewals == ["r1", "r1"]
    with pytest.raises(LeaseLost):
        beat.fence()
    beat.tick()  # a lost runner renews nothing more
    assert renewals == ["r1", "r1"] and halted == [True]


def test_a_runner_whose_campaign_was_deleted_says_so_not_that_another_runner_took_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``delete(force=True)`` while a runner runs: its lease row goes with the campaign, the
    renewal is refused, and the fence's LeaseLost said "another runner took its claims over",
    which sent an operator looking for a runner that never was. It says the campaign was deleted."""
    from datetime import timedelta

    from smsgate.campaigns import handles
    from smsgate.errors import LeaseLost
    from smsgate.models import utcnow
    from smsgate.store.sqlite import SQLiteStore

    clock = [1000.0]
    monkeypatch.setattr(handles, "_clock", lambda: clock[0])
    store = SQLiteStore(str(tmp_path / "deleted.db"))
    store.migrate()
    with Gateway(config("http://127.0.0.1:9", "memory://"), plugins=plugins(), store=store) as gw:
        camp = gw.tenant("acme").campaigns.create("gone", audience=["08030000001"], text="hi")
    cid = camp.campaign_id
    store.start_runner("acme", cid, "r1", utcnow() + timedelta(seconds=30))
    beat = handles.RunnerBeat(store, "acme", cid, "r1", 30.0)
    assert store.delete_campaign("acme", cid)
    clock[0] += 20.0  # the lease is due for renewal
    with pytest.raises(LeaseLost, match="the campaign was deleted") as lost:
        beat.fence()
    assert "another runner" not in str(lost.value)
    assert beat.lost and beat.deleted and beat.stopped.is_set()


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_a_pause_or_cancel_racing_a_runner_that_completes_leaves_the_campaign_completed(
        tmp_path: Path, echo: tuple[str, EmulatorControl], action: str) -> None:  # noqa: F811  (the fixture)
    """``pause()`` / ``cancel()`` read the campaign ``running``, then the runner completes it (every
    recipient sent) just before they write. They wrote ``paused`` / ``cancelled`` over ``completed``: a
    campaign whose recipients were all sent read as paused (to be resumed) or cancelled. They now
    check and set at once: the campaign stays ``completed`` and they say it cannot be paused / has
    nothing left to cancel."""
    from smsgate.errors import ValidationError

    url, _ = echo
    with Gateway(config(url, f"sqlite:///{tmp_path / 'race.db'}"), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("race", text="hi", audience=["08030000001", "08030000002"])
        camp.run()
        cid, store = camp.campaign_id, gw.store
        store.update_campaign("acme", cid, status=CampaignStatus.RUNNING)  # as read by the call
        real_update = store.update_campaign
        raced: list[bool] = []

        def completed_first(tenant: str, campaign_id: str, **changes: Any) -> Any:
            if changes.get("status") in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED) and not raced:
                raced.append(True)  # the runner completes it just before this write
                real_update(tenant, campaign_id, status=CampaignStatus.COMPLETED)
            return real_update(tenant, campaign_id, **changes)

        store.update_campaign = completed_first  # type: ignore[method-assign]
        try:
            with pytest.raises(ValidationError) as refused:
                getattr(camp, action)()
        finally:
            del store.update_campaign
        assert "completed" in str(refused.value)
        assert camp.progress().status is CampaignStatus.COMPLETED
