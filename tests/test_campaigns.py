"""The campaign engine: audiences, preview, dispatch, crash safety, control, statistics."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Contact, Gateway, Status, Template, hookimpl
from smsgate.campaigns import CsvAudience, in_quiet_hours
from smsgate.errors import ConfigError, NotFound, ValidationError
from smsgate.models import CampaignStatus, utcnow
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, FaultRule, LiveServer

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = LiveServer(create_emulator()).start()
    yield server.url
    server.stop()


@pytest.fixture
def ctl(url: str) -> EmulatorControl:
    c = EmulatorControl(url)
    c.reset()
    return c


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def config(url: str, store: str = "memory://", **provider: Any) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            "price_per_segment": 5.41, "currency": "NGN", **provider}
    return {"store": store, "tenants": {
        "acme": {"default_region": "NG", "timezone": "Africa/Lagos", "providers": {"one": prov}},
        "globex": {"default_region": "NG", "providers": {"one": prov}},
    }}


def sent_numbers(ctl: EmulatorControl) -> list[str]:
    out = []
    for r in ctl.requests("/messages", "POST"):
        body = r.json()
        out.extend(m["to"] for m in body["messages"]) if "messages" in body else out.append(body["to"])
    return out


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_csv_preview_counts_and_row_errors(tmp_path: Path, url: str, ctl: EmulatorControl) -> None:
    path = write_csv(tmp_path / "a.csv", [
        {"phone": "08031234561", "name": "Ada", "city": "Lagos"},
        {"phone": "0803 123 4562", "name": "Bayo", "city": "Ibadan"},
        {"phone": "12345", "name": "Bad", "city": "x"},             # invalid
        {"phone": "+2348031234561", "name": "Ada2", "city": "y"},  # duplicate of line 2
        {"phone": "08031234563", "name": "", "city": "Abuja"},     # missing name
        {"phone": "08031234564", "name": "Opted", "city": "Kano"}, # opted out
        {"phone": "", "name": "Empty", "city": "z"},               # empty phone
    ])
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        t.optouts.add("08031234564")
        camp = t.campaigns.create("spring", text="Hi {name} in {city}", audience=CsvAudience(path))
        p = camp.preview()
        assert (p.total_rows, p.recipients) == (7, 2)
        assert p.skipped == {"invalid": 2, "duplicate": 1, "missing_variable": 1, "opted_out": 1}
        assert p.segments == 2 and p.cost == {"one": Decimal("10.82")} and p.currency["one"] == "NGN"
        assert p.samples[0] == {"to": "+2348031234561", "text": "Hi Ada in Lagos"}
        errors = {e.reason: e for e in p.errors if e.phone != ""}
        assert errors["invalid"].location == "a.csv, line 4" and "12345" in errors["invalid"].detail
        assert "line 2" in errors["duplicate"].detail
        assert "'name'" in errors["missing_variable"].detail
        assert any(e.detail == "column 'phone' is empty" and e.location == "a.csv, line 8" for e in p.errors)
        assert "spring" in str(p)
    assert ctl.requests() == []  # preview never sends


def test_bad_csv_header_is_reported_before_anything(tmp_path: Path, url: str) -> None:
    path = tmp_path / "b.csv"
    path.write_text("msisdn,name\n0803,x\n")
    with Gateway(config(url), plugins=plugins()) as gw:
        with pytest.raises(ValidationError, match="no 'phone' column"):
            gw.tenant("acme").campaigns.create("x", text="hi", audience=CsvAudience(path))
        camp = gw.tenant("acme").campaigns.create("y", text="hi {name}", audience=CsvAudience(path, phone="msisdn"))
        assert camp.preview().skipped == {"invalid": 1}


def test_run_sends_each_recipient_once_and_tracks_states(url: str, ctl: EmulatorControl) -> None:
    contacts = [Contact(phone=f"0803123{i:04d}", name=f"n{i}") for i in range(25)]
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("run", text="Hello {name}", audience=[*contacts, "08031230003"], batch_size=4)
        seen: list[Any] = []
        result = camp.run(progress=seen.append)
        assert result.status is CampaignStatus.COMPLETED
        assert (result.sent, result.skipped, result.pending) == (25, 1, 0)
        assert seen and seen[-1].sent == 25
        msgs = t.messages(campaign_id=camp.campaign_id, limit=100)
        assert len(msgs) == 25 and all(m.status == Status.SUBMITTED for m in msgs)
        # running again sends nothing more
        camp.run()
    numbers = sent_numbers(ctl)
    assert len(numbers) == 25 and len(set(numbers)) == 25
    texts = {r.json()["messages"][0]["text"] for r in ctl.requests("/messages/bulk")}
    assert "Hello n0" in texts


def test_a_run_claims_small_first_then_doubling_chunks(url: str, ctl: EmulatorControl) -> None:
    """The first claim of a run is max(batch_size, concurrency) recipients, not the whole
    batch_size x concurrency / 4: requests start once a small chunk is prepared, and each next
    claim (doubling up to that) is prepared while the chunk before is sent."""
    with Gateway(config(url), plugins=plugins()) as gw:
        store = gw.store
        limits: list[int] = []
        claim = store.claim_recipients

        def spy(tenant: str, campaign_id: str, limit: int, *args: Any, **kwargs: Any) -> Any:
            limits.append(limit)
            return claim(tenant, campaign_id, limit, *args, **kwargs)

        store.claim_recipients = spy  # type: ignore[method-assign]
        t = gw.tenant("acme")
        camp = t.campaigns.create("ramp", text="hi", audience=[f"0803124{i:04d}" for i in range(100)],
                                  batch_size=10, concurrency=16)
        assert camp.run().sent == 100
    assert limits[:4] == [16, 32, 40, 40]  # max(10, 16), doubling, at most 10 x 16 / 4
    numbers = sent_numbers(ctl)
    assert len(numbers) == 100 and len(set(numbers)) == 100


def _live_results() -> int:
    import gc

    from smsgate.models import SendResult
    return sum(1 for o in gc.get_objects() if type(o) is SendResult)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_run_keeps_no_result_of_the_recipients_it_sent(url: str, ctl: EmulatorControl, driver: str) -> None:
    """A run's outcomes are in the store: the run holds none of its messages' results, so its
    memory stays flat however large the campaign (it used to keep every ``SendResult`` to the
    end: a million recipients, a million results, and the garbage collector walking them)."""
    numbers = [f"0803125{i:04d}" for i in range(1500)]
    seen: list[int] = []

    def progress(_: Any) -> None:  # before each chunk after the first (30 chunks of 50)
        seen.append(_live_results())

    if driver == "sync":
        with Gateway(config(url), plugins=plugins()) as gw:
            camp = gw.tenant("acme").campaigns.create("flat", text="hi", audience=numbers, batch_size=50,
                                                       concurrency=4)
            assert camp.run(progress=progress).sent == 1500
    else:
        import asyncio

        from smsgate import AsyncGateway

        async def main() -> None:
            async with AsyncGateway(config(url), plugins=plugins()) as gw:
                camp = await gw.tenant("acme").campaigns.create("flat", text="hi", audience=numbers,
                                                                 batch_size=50, concurrency=4)
                assert (await camp.run(progress=progress)).sent == 1500
        asyncio.run(main())
    assert len(seen) >= 20
    assert max(seen) < 300, seen  # a chunk or two in flight, never the run's 1,500
    assert sorted(sent_numbers(ctl)) == sorted(f"+234803125{i:04d}" for i in range(1500))


def test_template_campaign_and_stats(url: str) -> None:
    tpl = Template(name="t", body="Dear {name}, code {code}")
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        rows = [{"phone": f"0803123456{i}", "name": f"N{i}", "code": str(i)} for i in range(10)]
        camp = t.campaigns.create("tpl", template=tpl, audience=rows)
        assert camp.run().sent == 10
        for m in t.messages(campaign_id=camp.campaign_id, limit=5):
            t.status(m.message_id)   # the echo emulator delivers on lookup (or fails numbers ending in 9)
        stats = camp.stats("hour")
        assert stats.total == 10 and stats.delivered == 4 and stats.failed == 1 and stats.submitted == 5
        assert stats.delivery_rate == pytest.approx(0.8)
        assert stats.avg_queue_seconds is not None and stats.avg_queue_seconds >= 0
        assert len(stats.detail) == 1 and stats.detail[0].total == 10
        assert stats.detail[0].period_start.utcoffset() == timedelta(hours=1)  # Africa/Lagos
        day = t.stats("day", provider="one")
        assert day.total == 10 and day.cost is not None


def test_pause_resume_cancel(url: str, ctl: EmulatorControl) -> None:
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("ctl", text="x", audience=[f"0803123{i:04d}" for i in range(30)], batch_size=2,
                                  concurrency=4)
        calls = {"n": 0}

        def pause_after_first(p: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                camp.pause()

        first = camp.run(progress=pause_after_first)
        assert first.status is CampaignStatus.PAUSED and 0 < first.sent < 30
        assert camp.run().sent == first.sent  # paused: nothing happens
        camp.resume()
        second = camp.run()
        assert second.status is CampaignStatus.COMPLETED and second.sent == 30
        other = t.campaigns.create("c2", text="y", audience=[f"0803124{i:04d}" for i in range(5)])
        assert other.cancel() == 5
        assert other.run().sent == 0 and other.progress().skipped_by_reason == {"cancelled": 5}
        with pytest.raises(ValidationError):
            other.pause()
    assert len(sent_numbers(ctl)) == 30


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_stopped_run_leaves_the_campaign_interrupted_deletable_and_resumable(
    url: str, ctl: EmulatorControl, stop: type[BaseException]
) -> None:
    """Ctrl-C (or an error) in a run: the campaign is no longer ``running`` (nothing runs it),
    it can be deleted at once, and running it again sends the rest, each recipient once."""
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        numbers = [f"0803126{i:04d}" for i in range(20)]
        camp = t.campaigns.create("stopped", text="x", audience=numbers, batch_size=2, concurrency=4)

        def stop_after_first(p: Any) -> None:
            raise stop("stop")

        with pytest.raises(stop):
            camp.run(progress=stop_after_first)
        p = camp.progress()
        assert p.status is CampaignStatus.INTERRUPTED and 0 < p.sent < 20 and p.sending == 0
        assert camp.runners() == {}
        with pytest.raises(ValidationError, match="not paused: run it again"):
            camp.resume()
        assert camp.run().status is CampaignStatus.COMPLETED
        assert sorted(sent_numbers(ctl)) == sorted(f"+234{n[1:]}" for n in numbers)  # each once

        other = t.campaigns.create("other", text="x", audience=numbers[:4], batch_size=2)
        with pytest.raises(stop):
            other.run(progress=stop_after_first)
        assert other.delete() is True  # no live runner: deleted without force
        with pytest.raises(NotFound):
            t.campaigns.get(other.campaign_id)


def test_delete_refuses_a_campaign_a_live_runner_holds_unless_forced(url: str) -> None:
    from smsgate.core.campaign import lease_end

    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("held", text="x", audience=["08031234561"])
        gw.store.start_runner("acme", camp.campaign_id, "run_other_process", lease_end(30))
        assert list(camp.runners()) == ["run_other_process"]
        with pytest.raises(ValidationError) as refused:
            camp.delete()
        assert refused.value.field == "campaign" and "live lease" in str(refused.value)
        assert "force=True" in str(refused.value)
        assert t.campaigns.get(camp.campaign_id)  # still there
        assert camp.delete(force=True) is True
        # a runner that was killed: its lease has ended, the campaign still says running
        dead = t.campaigns.create("dead", text="x", audience=["08031234562"])
        gw.store.update_campaign("acme", dead.campaign_id, status=CampaignStatus.RUNNING)
        gw.store.start_runner("acme", dead.campaign_id, "run_killed", lease_end(-1))
        assert dead.runners() == {}
        assert dead.delete() is True


def test_a_runner_stopping_beside_a_live_one_leaves_the_campaign_running(url: str) -> None:
    """``running`` stays while another runner holds the campaign (it sets it back if it raced)."""
    from smsgate.core.campaign import lease_end

    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("two", text="x", audience=[f"0803127{i:04d}" for i in range(8)], batch_size=2,
                                  concurrency=4)
        gw.store.start_runner("acme", camp.campaign_id, "run_other_process", lease_end(30))

        def stop(p: Any) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            camp.run(progress=stop)
        assert camp.progress().status is CampaignStatus.RUNNING
        gw.store.stop_runner("acme", camp.campaign_id, "run_other_process")

        # a runner that stopped while this one started marked it interrupted: this one takes it back
        seen: list[CampaignStatus] = []

        def other_stops(p: Any) -> None:
            seen.append(camp.row.status)  # as stored now
            if len(seen) == 1:
                gw.store.update_campaign("acme", camp.campaign_id, status=CampaignStatus.INTERRUPTED)

        done = camp.run(progress=other_stops)
        assert done.status is CampaignStatus.COMPLETED
        assert seen[:2] == [CampaignStatus.RUNNING, CampaignStatus.RUNNING], seen  # set back at the next chunk


def test_a_run_sending_takes_back_a_campaign_another_run_left_scheduled(url: str, ctl: EmulatorControl) -> None:
    """A run with ``wait=False`` leaves a campaign ``scheduled`` in its quiet hours while another
    run waits them out (``wait=True``) and sends once they end: the waiting run sets it running
    again at its next chunk (the kernel's resume rule). Before, it sent every recipient and left
    the campaign ``scheduled``, never ``completed``."""
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        numbers = [f"0803128{i:04d}" for i in range(8)]
        camp = t.campaigns.create("two", text="x", audience=numbers, batch_size=2, concurrency=4)
        seen: list[CampaignStatus] = []

        def other_goes_quiet(p: Any) -> None:
            seen.append(camp.row.status)  # as stored now
            if len(seen) == 1:  # as a --no-wait run in the quiet hours that have just ended leaves it
                gw.store.update_campaign("acme", camp.campaign_id, status=CampaignStatus.SCHEDULED)

        done = camp.run(progress=other_goes_quiet)
        assert done.status is CampaignStatus.COMPLETED and done.sent == 8
        assert seen[:2] == [CampaignStatus.RUNNING, CampaignStatus.RUNNING], seen  # set back at the next chunk
    assert sorted(sent_numbers(ctl)) == sorted(f"+234{n[1:]}" for n in numbers)  # each once


def test_scheduled_start_and_quiet_hours(url: str, ctl: EmulatorControl) -> None:
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        later = datetime.now(timezone.utc) + timedelta(hours=2)
        camp = t.campaigns.create("later", text="x", audience=["08031234567"], start_at=later)
        assert camp.waits_until() == ("scheduled", later)
        assert camp.run(wait=False).status is CampaignStatus.SCHEDULED
        now_local = datetime.now(timezone.utc).astimezone(__import__("zoneinfo").ZoneInfo("Africa/Lagos"))
        window = [(now_local - timedelta(hours=1)).strftime("%H:%M"), (now_local + timedelta(hours=1)).strftime("%H:%M")]
        quiet = t.campaigns.create("quiet", text="x", audience=["08031234568"], quiet_hours=window)
        reason, until = quiet.waits_until() or ("", None)
        assert reason == "quiet hours" and until is not None and until.strftime("%H:%M") == (
            (now_local + timedelta(hours=1)).astimezone(timezone.utc).strftime("%H:%M"))
        assert quiet.run(wait=False).status is CampaignStatus.SCHEDULED
        assert t.campaigns.create("now", text="x", audience=["08031234569"]).waits_until() is None
    assert ctl.requests() == []


def test_quiet_hours_of_a_tenant_without_timezone_are_its_regions_local_time(url: str, ctl: EmulatorControl) -> None:
    # globex: default_region NG, no timezone -> quiet hours in Lagos time (UTC+1), not UTC
    now_lagos = datetime.now(timezone.utc).astimezone(__import__("zoneinfo").ZoneInfo("Africa/Lagos"))
    window = [(now_lagos - timedelta(minutes=30)).strftime("%H:%M"), (now_lagos + timedelta(minutes=30)).strftime("%H:%M")]
    with Gateway(config(url), plugins=plugins()) as gw:
        quiet = gw.tenant("globex").campaigns.create("quiet", text="x", audience=["08031234568"], quiet_hours=window)
        assert (quiet.waits_until() or ("",))[0] == "quiet hours"  # in UTC "now" is an hour before the window
        assert quiet.run(wait=False).status is CampaignStatus.SCHEDULED
    assert ctl.requests() == []


def test_campaign_quiet_hours_without_a_tenant_zone_are_refused_at_create(url: str, ctl: EmulatorControl) -> None:
    cfg = config(url)
    cfg["tenants"]["globex"]["default_region"] = "US"  # 29 zones: which one is "21:00"?
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("globex")
        with pytest.raises(ConfigError, match=r"default_region 'US' spans 29 time zones.*set the tenant's timezone"):
            t.campaigns.create("quiet", text="x", audience=["+12025550143"], quiet_hours=["21:00", "08:00"])
        assert t.campaigns.list() == []  # nothing half-made
        assert t.campaigns.create("any time", text="x", audience=["+12025550143"]).waits_until() is None


# ------------------------------------------------------------------ retry_failed
NUMBERS = [f"0803123{i:04d}" for i in range(12)]


def _fail_some(ctl: EmulatorControl) -> None:
    """Requests 1-2 refused for bad credentials (never taken), request 3 taken with its answer lost
    (unknown: the vendor cannot be asked), the rest accepted: 4 failed, 2 unknown, 6 sent."""
    ctl.fault(kind="status", status=401, path="/messages/bulk", count=2)
    ctl.fault(kind="reset", process=True, path="/messages/bulk", count=1)
    ctl.fault(kind="status", status=503, path="/messages", method="GET", count=None)


def _taken(vendor: dict[str, dict[str, Any]]) -> Counter[str]:
    return Counter(m["to"] for m in vendor.values())


def test_retry_failed_sends_each_failed_recipient_once_after_the_fix() -> None:
    vendor: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(vendor)) as server:
        ctl = EmulatorControl(server.url)
        ctl.reset()
        _fail_some(ctl)
        with Gateway(config(server.url, timeout=0.5), plugins=plugins()) as gw:
            camp = gw.tenant("acme").campaigns.create("r", text="x", audience=NUMBERS, batch_size=2, concurrency=1)
            first = camp.run()
            assert (first.sent, first.failed, first.unknown) == (6, 4, 2)
            assert first.failed_by_reason == {"AuthFailed": 4}
            assert len(_taken(vendor)) == 8  # 6 sent + the 2 whose answer was lost
            ctl.clear_faults()  # the cause is fixed
            assert camp.retry_failed(reason="RateLimited") == 0  # another reason: none
            assert camp.retry_failed(reason=["AuthFailed", "other"]) == 4
            assert camp.retry_failed() == 0  # nothing failed left; unknown and sent ones untouched
            p = camp.progress()
            assert (p.pending, p.unknown, p.sent, p.failed) == (4, 2, 6, 0)
            done = camp.run()  # the unknown ones are looked up (found), the failed ones sent
            assert (done.status, done.sent, done.failed, done.unknown) == (CampaignStatus.COMPLETED, 12, 0, 0)
        expected = {f"+234{n[1:]}" for n in NUMBERS}
        assert set(_taken(vendor)) == expected and set(_taken(vendor).values()) == {1}  # each exactly once
        posted = Counter(m["to"] for r in ctl.processed("/messages/bulk", "POST") for m in r.json()["messages"])
        assert posted == Counter(expected)  # and the vendor's own request record agrees


def test_a_completed_campaign_given_recipients_back_is_runnable_again_and_sends_each_once() -> None:
    """A run ends ``completed`` with failed and unknown recipients. ``retry_failed()`` and
    ``retry_unknown()`` put some back to ``pending``: the campaign is no longer ``completed``
    (which said it was done, and which runners such as ``dispatch_campaign`` take as "nothing to
    do"): it is ``scheduled`` (to send when run, as a resumed one), and a run sends each once."""
    vendor: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(vendor)) as server:
        ctl = EmulatorControl(server.url)
        ctl.reset()
        _fail_some(ctl)
        with Gateway(config(server.url, timeout=0.5), plugins=plugins()) as gw:
            camp = gw.tenant("acme").campaigns.create("r", text="x", audience=NUMBERS, batch_size=2, concurrency=1)
            assert camp.run().status is CampaignStatus.COMPLETED
            ctl.clear_faults()
            assert camp.retry_failed() == 4
            p = camp.progress()
            assert (p.status, p.pending) == (CampaignStatus.SCHEDULED, 4)
            assert not p.status.is_finished and camp.waits_until() is None  # a run sends them now
            assert camp.retry_unknown() == 2
            assert camp.progress().status is CampaignStatus.SCHEDULED
            done = camp.run()
            assert (done.status, done.sent, done.failed, done.unknown, done.pending) == (
                CampaignStatus.COMPLETED, 12, 0, 0, 0)
            assert camp.retry_failed() == 0 and camp.retry_unknown() == 0
            assert camp.progress().status is CampaignStatus.COMPLETED  # nothing put back: still done
        expected = {f"+234{n[1:]}" for n in NUMBERS}
        # the 2 unknown ones had reached the vendor: retry_unknown sends them again (documented)
        assert Counter(_taken(vendor).values()) == Counter({1: 10, 2: 2}) and set(_taken(vendor)) == expected
        posted = Counter(m["to"] for r in ctl.processed("/messages/bulk", "POST") for m in r.json()["messages"])
        assert set(posted) == expected and sorted(posted.values()) == sorted(_taken(vendor).values())


def test_a_completion_racing_a_put_back_leaves_the_campaign_runnable(url: str) -> None:
    """A runner found nothing left and completes the campaign just as ``retry_failed()`` puts
    recipients back and reopens it (seeing it still ``running``, so changing nothing): the
    completion sees the ``pending`` ones after it writes ``completed`` and makes it
    ``scheduled`` again, never ``completed`` with recipients to send."""
    from smsgate.core import campaign as plans
    from smsgate.core.drive import store_driver

    with Gateway(config(url), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("race", text="x", audience=NUMBERS[:2])
        cid = camp.campaign_id
        gw.store.update_campaign("acme", cid, status=CampaignStatus.RUNNING)  # a runner at work
        assert store_driver(gw.store, "acme").drive(plans.reopen("acme", cid)).status is CampaignStatus.RUNNING
        row = store_driver(gw.store, "acme").drive(plans.complete("acme", cid, plans.RUNNABLE))
        assert row.status is CampaignStatus.SCHEDULED and camp.progress().pending == 2
        gw.store.update_campaign("acme", cid, status=CampaignStatus.CANCELLED)
        assert store_driver(gw.store, "acme").drive(plans.reopen("acme", cid)).status is CampaignStatus.CANCELLED


@pytest.mark.parametrize("action, read", [("retry_failed", 4), ("retry_unknown", 2)])
def test_a_retry_counts_only_the_recipients_it_put_back(action: str, read: int) -> None:
    """Two ``retry_failed()`` (or ``retry_unknown()``) at once: the second reads the failed
    (unknown) recipients, then the first puts them back before the second writes. The second's
    guarded write changes none of them, and it returns 0, not how many it read (it returned
    ``read``, so ``smsgate campaign retry-failed`` said they were put back twice)."""
    from smsgate.store.base import RecipientState
    from smsgate.store.memory import MemoryStore

    class RacedStore(MemoryStore):
        """Its next read of retryable recipients returns them as they were, after ``race()``
        (another operator's retry) changed them."""

        race: Any = None

        def recipients(self, tenant: str, campaign_id: str, *, states: Any = None, after_id: int = 0,
                       limit: int = 1000) -> Any:
            rows = super().recipients(tenant, campaign_id, states=states, after_id=after_id, limit=limit)
            if self.race is not None and rows and states in ([RecipientState.FAILED], [RecipientState.UNKNOWN]):
                race, self.race = self.race, None
                race()
            return rows

    store = RacedStore()
    with LiveServer(create_emulator({})) as server:
        ctl = EmulatorControl(server.url)
        ctl.reset()
        _fail_some(ctl)
        with Gateway(config(server.url, timeout=0.5), plugins=plugins(), store=store) as gw:
            camp = gw.tenant("acme").campaigns.create("r", text="x", audience=NUMBERS, batch_size=2, concurrency=1)
            first = camp.run()
            assert (first.failed, first.unknown) == (4, 2)
            ctl.clear_faults()
            other: list[int] = []
            store.race = lambda: other.append(getattr(gw.tenant("acme").campaigns.get(camp.campaign_id), action)())
            assert getattr(camp, action)() == 0  # the other operator put every one back
            assert other == [read]
            p = camp.progress()
            assert p.pending == read and (p.failed, p.unknown) == (4 - read if action == "retry_failed" else 4,
                                                                   2 - read if action == "retry_unknown" else 2)


def test_retry_failed_on_the_async_handle() -> None:
    import asyncio

    from smsgate import AsyncGateway

    vendor: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(vendor)) as server:
        ctl = EmulatorControl(server.url)
        ctl.reset()
        _fail_some(ctl)

        async def go() -> None:
            async with AsyncGateway(config(server.url, timeout=0.5), plugins=plugins()) as gw:
                camp = await gw.tenant("acme").campaigns.create("r", text="x", audience=NUMBERS, batch_size=2,
                                                                concurrency=1)
                first = await camp.run()
                assert (first.sent, first.failed, first.unknown) == (6, 4, 2)
                ctl.clear_faults()
                assert await camp.retry_failed("AuthFailed") == 4
                assert (await camp.run()).sent == 12

        asyncio.run(go())
        assert len(_taken(vendor)) == 12 and set(_taken(vendor).values()) == {1}


def test_retry_failed_of_a_cancelled_campaign_is_refused(url: str, ctl: EmulatorControl) -> None:
    with Gateway(config(url), plugins=plugins()) as gw:
        ctl.fault(kind="status", status=401, path="/messages/bulk", count=None)
        camp = gw.tenant("acme").campaigns.create("r", text="x", audience=NUMBERS[:4], batch_size=2)
        assert camp.run().failed == 4
        camp.cancel()
        with pytest.raises(ValidationError, match="campaign is cancelled"):
            camp.retry_failed()
        assert camp.progress().failed == 4
    assert ctl.processed("/messages") == []


def test_in_quiet_hours() -> None:
    at = datetime(2026, 1, 1, 22, 30, tzinfo=timezone.utc)  # 23:30 in Lagos
    end = in_quiet_hours(at, ["21:00", "08:00"], "Africa/Lagos")
    assert end == datetime(2026, 1, 2, 7, 0, tzinfo=timezone.utc)
    assert in_quiet_hours(at, ["09:00", "17:00"], "Africa/Lagos") is None
    assert in_quiet_hours(at, None, "UTC") is None
    with pytest.raises(ConfigError):
        in_quiet_hours(at, ["9pm", "8am"], "UTC")


def test_rate_limit_from_config(url: str, ctl: EmulatorControl) -> None:
    with Gateway(config(url, rate_limit=20), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("rl", text="x", audience=[f"0803125{i:04d}" for i in range(45)])
        assert camp.run().sent == 45
    # as the vendor saw it: no second holds more than 20 messages (bulk requests of 2)
    got = sorted((r.at, len(r.json().get("messages", [None]))) for r in ctl.requests("/messages", "POST"))
    assert sum(n for _, n in got) == 45
    assert max(sum(n for at, n in got if t <= at < t + 1.0) for t, _ in got) <= 20


def test_campaigns_are_tenant_scoped(url: str) -> None:
    with Gateway(config(url), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("mine", text="x", audience=["08031234567"])
        with pytest.raises(NotFound):
            gw.tenant("globex").campaigns.get(camp.campaign_id)
        assert gw.tenant("globex").campaigns.list() == []


def test_unknown_outcome_resolved_by_reference(url: str, ctl: EmulatorControl) -> None:
    # the provider processes the bulk request but answers 500: outcome unknown, resolved by lookup at the run's end
    ctl.fault(kind="status", status=500, path="/messages/bulk", process=True, count=1)
    with Gateway(config(url), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("u", text="x", audience=["08031234561", "08031234562"])
        first = camp.run()  # ends by asking the vendor: both were received, so neither is sent again
        assert (first.sent, first.unknown) == (2, 0)
        second = camp.run()  # nothing left to do
        assert (second.sent, second.unknown) == (2, 0)
    assert Counter(sent_numbers(ctl)) == {"+2348031234561": 1, "+2348031234562": 1}


def test_interrupted_before_sending_is_sent_on_resume(url: str, ctl: EmulatorControl) -> None:
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("crash", text="x", audience=["08031234561", "08031234562", "08031234563"])
        # simulate a crash right after claiming: rows are 'sending', nothing was logged or sent
        claimed = gw.store.claim_recipients("acme", camp.campaign_id, 2, lambda: f"msg_fake{time.time_ns()}")
        assert len(claimed) == 2 and camp.progress().sending == 2
        assert camp.run().sent == 3
    assert sorted(sent_numbers(ctl)) == ["+2348031234561", "+2348031234562", "+2348031234563"]


def make_big_csv(path: Path, n: int) -> dict[str, int]:
    """n rows: 5% invalid, 3% duplicates, 2% opted out (listed separately)."""
    counts = {"invalid": 0, "duplicate": 0, "opted": 0}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "name"])
        for i in range(n):
            k = i % 100
            if k < 5:
                w.writerow([f"12{i}", "bad"])
                counts["invalid"] += 1
            elif k < 8 and i >= 100:
                w.writerow([f"0803{(i // 100 - 1) * 100 + 50:07d}", "dup"])  # row 50 of the previous block
                counts["duplicate"] += 1
            else:
                w.writerow([f"0803{i % 10_000_000:07d}", f"c{i}"])
                if 8 <= k < 10:
                    counts["opted"] += 1
    return counts


def test_100k_rows_preview_exact_counts_and_run(tmp_path: Path, url: str, ctl: EmulatorControl) -> None:
    n = 100_000
    path = tmp_path / "big.csv"
    counts = make_big_csv(path, n)
    opted = [f"+234803{i % 10_000_000:07d}" for i in range(n) if 8 <= i % 100 < 10]
    import dataclasses

    from reference_provider import EchoProvider

    class BulkEcho(EchoProvider):  # the echo vendor with a bulk limit of 1,000
        capabilities = dataclasses.replace(EchoProvider.capabilities, max_batch=1000)

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(BulkEcho)
    # 1,000-message requests to an in-process emulator: generous timeout, modest concurrency
    with Gateway(config(url, store=f"sqlite:///{tmp_path / 'big.db'}", timeout=60), plugins=pm) as gw:
        t = gw.tenant("acme")
        from smsgate.models import OptOut

        gw.store.add_optouts("acme", [OptOut(phone=p) for p in opted])
        camp = t.campaigns.create("big", text="Hi {name}", audience=CsvAudience(path), batch_size=1000,
                                  concurrency=4)
        p = camp.preview()
        assert p.total_rows == n
        assert p.skipped == {"invalid": counts["invalid"], "duplicate": counts["duplicate"], "opted_out": counts["opted"]}
        expected = n - counts["invalid"] - counts["duplicate"] - counts["opted"]
        assert p.recipients == expected and expected > 89_000
        result = camp.run()
        if result.unknown:  # a timed-out bulk call under heavy load: resolved by reference, never re-sent
            result = camp.run()
        assert result.status is CampaignStatus.COMPLETED and result.sent == expected
    sent = sent_numbers(ctl)
    assert len(sent) == expected and len(set(sent)) == expected


@pytest.mark.slow
@pytest.mark.timeout(300)  # four campaign processes: past 120 s on a loaded machine
@pytest.mark.parametrize("kills", [(300, 1100, 2500)])
def test_sigkill_never_duplicates_or_loses(tmp_path: Path, url: str, ctl: EmulatorControl, kills: tuple[int, ...]) -> None:
    """Kill a real campaign process with SIGKILL at several points; the emulator's log proves
    every recipient got exactly one message."""
    n = 4000
    cfg = config(url, store=f"sqlite:///{tmp_path / 'kill.db'}")
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    audience = [f"0805{i:07d}" for i in range(n)]
    with Gateway(cfg, plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("kill", text="x", audience=audience, batch_size=20, concurrency=8)
    # 50 ms at the vendor: requests are in flight at each kill, and at most 8 x 20 messages a
    # look can miss (the looks below are 50 ms apart)
    ctl.fault(kind="latency", delay=0.05, path="/messages", count=None)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    for target in kills:
        proc = subprocess.Popen([sys.executable, str(HERE / "campaign_worker.py"), str(cfg_path), camp.campaign_id],
                                env=env, stderr=subprocess.PIPE)
        try:
            # each look reads the emulator's whole record (thousands of messages, parsed in this
            # process, whose thread also serves the worker): every 50 ms, not every 10 ms, or a
            # loaded machine starves the emulator and its control call hits its 5 s limit
            deadline = time.monotonic() + 120
            while len(sent_numbers(ctl)) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, f"worker ended early: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    done = subprocess.run([sys.executable, str(HERE / "campaign_worker.py"), str(cfg_path), camp.campaign_id],
                          env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    # the emulator's own record of every request it received, across all runs
    received = Counter(sent_numbers(ctl))
    expected = {f"+234805{i:07d}" for i in range(n)}
    assert set(received) == expected, "a recipient was lost"
    assert max(received.values()) == 1, f"duplicates: {[k for k, v in received.items() if v > 1][:5]}"
    with Gateway(cfg, plugins=plugins()) as gw:
        progress = gw.tenant("acme").campaigns.get(camp.campaign_id).progress()
        assert progress.status is CampaignStatus.COMPLETED
        assert (progress.sent, progress.pending, progress.sending, progress.unknown) == (n, 0, 0, 0)


@pytest.mark.parametrize("store", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_stored_contact_list_as_audience(tmp_path: Path, url: str, ctl: EmulatorControl, store: str,
                                        request: pytest.FixtureRequest) -> None:
    url_store = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'lists.db'}"
    pg_store = None  # the postgres kind: a store object given to the gateway
    if store == "postgres":
        from test_store_postgres import scratch_store  # a fresh schema, dropped on close

        pg_store = scratch_store()
        request.addfinalizer(pg_store.close)
        pg_store.migrate()
    csv_path = write_csv(tmp_path / "vip.csv", [
        {"phone": "08031234561", "name": "Ada", "tier": "gold"},
        {"phone": "bad", "name": "X", "tier": "none"},
        {"phone": "0803 123 4562", "name": "Bayo", "tier": "silver"},
    ])
    with Gateway(config(url, store=url_store), plugins=plugins(), store=pg_store) as gw:
        t = gw.tenant("acme")
        report = t.contact_lists.create("VIP", CsvAudience(csv_path))
        assert (report.rows, report.added, report.updated) == (3, 2, 0)
        assert report.errors[0].location == "vip.csv, line 3" and report.errors[0].phone == "bad"
        again = t.contact_lists.add(report.contact_list.list_id, [Contact(phone="+2348031234561", name="Ada L",
                                                                            fields={"tier": "platinum"})])
        assert (again.added, again.updated, again.contact_list.size) == (0, 1, 2)
        list_id = report.contact_list.list_id
        assert [c.name for c in t.contact_lists.contacts(list_id)] == ["Ada L", "Bayo"]
        assert gw.tenant("globex").contact_lists.list() == []
        with pytest.raises(NotFound):
            gw.tenant("globex").contact_lists.audience(list_id)
        camp = t.campaigns.create("vip", text="Hi {name} ({tier})", audience=t.contact_lists.audience(list_id))
        assert camp.preview().recipients == 2
        assert camp.run().sent == 2
        assert t.contact_lists.remove(list_id, ["08031234562"]) == 1
        assert t.contact_lists.get(list_id).size == 1
        assert t.contact_lists.delete(list_id) and t.contact_lists.list() == []
    texts = sorted(m["text"] for r in ctl.requests("/messages/bulk") for m in r.json()["messages"])
    assert texts == ["Hi Ada L (platinum)", "Hi Bayo (silver)"]


class _StatusHook:
    """An application's ``smsgate_on_status`` hook, recording its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Status, str | None]] = []

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: Any) -> None:
        self.calls.append((tenant, message_id, report.status, report.raw_status))


def _dead_runner_claim(gw: Gateway, camp: Any) -> str:
    """What a runner killed after logging its message ahead leaves: its recipient claimed
    (``sending``), its lease ended, the message ``queued``. Its message id."""
    from smsgate.core.campaign import lease_end
    from smsgate.store.base import LogWrite

    policy = gw.tenant("acme")._policy
    gw.store.start_runner("acme", camp.campaign_id, "run_killed", lease_end(-1))
    (row,) = gw.store.claim_recipients("acme", camp.campaign_id, 1, lambda: "m-killed", owner="run_killed")
    msg = policy.build(row.phone, "x", message_id="m-killed", campaign_id=camp.campaign_id,
                       reference=camp.campaign_id)
    gw.store.write_log("acme", LogWrite(inserts=[policy.record(msg, Status.QUEUED, utcnow() - timedelta(minutes=10))]))
    return "m-killed"


@pytest.mark.parametrize("how", ["run", "purge"])
def test_a_dead_runners_message_marked_unknown_tells_the_status_hook_once(
        tmp_path: Path, url: str, ctl: EmulatorControl, how: str) -> None:
    """A killed runner's message whose request may have left, and that no provider can say
    anything of (the look-up fails; a cancelled campaign is resolved by a purge without
    look-ups), becomes ``unknown`` (``interrupted``): ``smsgate_on_status`` is told, once."""
    # a short timeout: the run's look-ups of unknown ones wait twice that for the vendor to settle
    with Gateway(config(url, f"sqlite:///{tmp_path / 's.db'}", timeout=0.5), plugins=plugins()) as gw:
        hook = _StatusHook()
        gw.plugins.register(hook)
        t = gw.tenant("acme")
        camp = t.campaigns.create("killed", text="x", audience=["08031234561"])
        mid = _dead_runner_claim(gw, camp)
        if how == "run":
            ctl.add(FaultRule.error(400, path="/messages", method="GET", count=None))  # not retried
            camp.run()
        else:
            camp.cancel()
            assert gw.purge(older_than=timedelta(days=3650)).messages == 0
        assert gw.store.messages_by_id("acme", [mid])[mid].status is Status.UNKNOWN
        assert hook.calls == [("acme", mid, Status.UNKNOWN, "interrupted")]
        if how == "run":
            camp.run()  # looked up again, still cannot tell: no change, no call
        else:
            assert gw.purge(older_than=timedelta(days=3650)).messages == 0
        assert len(hook.calls) == 1


def test_a_run_whose_campaign_is_deleted_under_it_stops_with_a_notfound_saying_so(url: str,
                                                                                  ctl: EmulatorControl) -> None:
    """The campaign is deleted (``delete(force=True)``, its tenant erased) while a run sends it:
    the run stops sending and raises ``NotFound`` saying what happened, not the store's bare
    "no campaign ..." of a look-up."""
    with Gateway(config(url), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("gone", text="x", audience=[f"0803128{i:04d}" for i in range(20)], batch_size=2)

        def delete(p: Any) -> None:
            camp.delete(force=True)

        with pytest.raises(NotFound) as gone:
            camp.run(progress=delete)
        assert str(gone.value) == (f"campaign {camp.campaign_id!r} of tenant 'acme' was deleted while this run "
                                   "was sending it: the run stopped, nothing more is sent")
        sent = len(sent_numbers(ctl))
        assert 0 < sent < 20


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x1f", "\x0b"])
def test_a_control_character_in_a_text_is_refused_naming_the_field_and_never_sent(
        tmp_path: Path, url: str, ctl: EmulatorControl, char: str) -> None:
    """NUL and the other C0 control characters (but newline, carriage return and tab) are never
    sent to a vendor: ``send`` refuses the text (``ValidationError`` on field ``text``, saying
    which character and where, not the text); a campaign row whose rendered text holds one is
    skipped ``invalid_text`` at preparation, the others sent."""
    with Gateway(config(url, f"sqlite:///{tmp_path / 's.db'}"), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        with pytest.raises(ValidationError) as refused:
            t.send("08031234561", f"code{char}123456")
        assert refused.value.field == "text" and f"{char!a} at position 4" in str(refused.value), refused.value
        assert "123456" not in str(refused.value)
        (many,) = t.send_many(["08031234562"], f"hi{char}")  # refused per recipient, as any bad text
        assert many.status is Status.REJECTED and "field 'text'" in (many.error or "") \
            and "control character" in (many.error or ""), many
        assert t.send("08031234563", "line\r\nnext\tcol").status is Status.SUBMITTED  # these are text
        camp = t.campaigns.create("ctl", text="Hi {name}", audience=[
            Contact(phone="08031234564", fields={"name": f"A{char}a"}), Contact(phone="08031234565",
                                                                              fields={"name": "Bo"})])
        p = camp.preview()
        (error,) = p.errors
        if char == "\x00":  # a field the store cannot keep: refused as the audience is read
            assert (p.recipients, p.skipped) == (1, {"invalid": 1}) and "NUL" in error.detail, p
        else:
            assert (p.recipients, p.skipped) == (1, {"invalid_text": 1}), p
            assert "control character" in error.detail and "position 4" in error.detail, error
        assert camp.run().sent == 1
    assert sorted(sent_numbers(ctl)) == ["+2348031234563", "+2348031234565"]
