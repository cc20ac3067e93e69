"""Reconciliation: the status poller over loopback against the echo emulator, on real
SQLite and PostgreSQL stores. What the poller asked is read from the emulator's own
request record."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_provider import API_KEY, EchoPlugin, create_emulator
from services import ECHO_CLI
from smsgate import AsyncGateway, Gateway, Status
from smsgate.cli.messages import parse_duration
from smsgate.core.reconcile import due_at
from smsgate.errors import UnknownOutcome, ValidationError
from smsgate.models import MessageRecord, StatusEvent, utcnow
from smsgate.plugins import PluginManager
from smsgate.store.base import MessageUpdate, Store
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import EmulatorControl, LiveServer

HERE = Path(__file__).parent
#: numbers whose messages the emulator keeps ``accepted`` when looked up
PENDING = "+2348030000007"


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def provider(url: str, **extra: Any) -> dict[str, Any]:
    return {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "max_retries": 0, **extra}


@dataclass
class Env:
    gw: Gateway
    store: Store
    vendor: dict[str, dict[str, Any]]
    ctl: EmulatorControl
    url: str

    def log(self, mid: str, to: str, *, age: float, status: Status = Status.SUBMITTED, vendor_id: str | None = None,
            at_vendor: bool = True, provider: str | None = "one") -> None:
        """A message logged ``age`` seconds ago (and, ``at_vendor``, held by the vendor as ``vendor_id``)."""
        created = utcnow() - timedelta(seconds=age)
        self.store.insert_messages([MessageRecord(
            tenant="acme", message_id=mid, to=to, status=status, raw_status="accepted", provider=provider,
            provider_message_id=vendor_id, created_at=created, updated_at=created,
            history=[StatusEvent(status=status, at=created, source="gateway")])])
        if at_vendor:
            vid = vendor_id or f"v-{mid}"
            self.vendor[vid] = {"id": vid, "to": to, "status": "accepted", "client_ref": mid}

    def gets(self) -> list[str]:
        """The ids the vendor was asked about (``GET /messages/{id}``), in order."""
        return [r.path.rsplit("/", 1)[1] for r in self.ctl.requests("/messages/", "GET")]

    def reference_lookups(self) -> int:
        return len([r for r in self.ctl.requests("/messages", "GET") if r.path == "/messages"])


def open_store(kind: str, tmp_path: Path) -> Store:
    if kind == "sqlite":
        store: Store = SQLiteStore(str(tmp_path / "log.db"))
    else:
        from test_store_postgres import scratch_store  # a fresh schema, dropped on close

        store = scratch_store()
    store.migrate()
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    vendor: dict[str, dict[str, Any]] = {}
    store = open_store(request.param, tmp_path)
    try:
        with LiveServer(create_emulator(vendor, in_flight=[PENDING])) as emu:
            cfg = {"tenants": {"acme": {"default_region": "NG", "providers": {
                "one": provider(emu.url, breaker={"failures": 1, "window": 60, "cooldown": 600})}}}}
            with Gateway(cfg, store=store, plugins=plugins()) as gw:
                yield Env(gw, store, vendor, EmulatorControl(emu.url), emu.url)
    finally:
        store.close()


def test_old_in_flight_messages_are_looked_up_young_ones_left_alone(env: Env) -> None:
    env.log("old-1", "+2348031111111", age=600, vendor_id="v1")
    env.log("old-9", "+2348031111119", age=400, vendor_id="v2", status=Status.SENT)
    env.log("young", "+2348031111112", age=10, vendor_id="v3")
    summary = env.gw.tenant("acme").sync_statuses(older_than=timedelta(minutes=5))
    assert sorted(env.gets()) == ["v1", "v2"]  # the vendor was never asked about the young one
    assert (summary.looked_up, summary.changed, summary.more) == (2, 2, False)
    t = env.gw.tenant("acme")
    assert t.get("old-1").status is Status.DELIVERED
    assert (t.get("old-9").status, t.get("old-9").raw_status) == (Status.FAILED, "failed")
    assert t.get("young").status is Status.SUBMITTED
    assert t.get("old-1").history[-1].source == "one:lookup"


def test_a_real_send_is_reconciled_end_to_end(env: Env) -> None:
    t = env.gw.tenant("acme")
    sent = t.send("08031234567", "hello")
    assert sent.status is Status.SUBMITTED
    assert t.sync_statuses(older_than=60).looked_up == 0  # too young
    summary = t.sync_statuses(older_than=0)
    assert summary.changed == 1 and env.gets() == [sent.provider_message_id]
    assert t.get(sent.message_id).status is Status.DELIVERED
    assert env.ctl.requests("/messages", "POST")[0:1] and len(env.ctl.requests("/messages", "POST")) == 1


def test_work_per_tick_is_bounded_and_oldest_first(env: Env) -> None:
    for i in range(5):
        env.log(f"m{i}", f"+23480322222{i:02d}", age=1000 - i, vendor_id=f"v{i}")
    t = env.gw.tenant("acme")
    first = t.sync_statuses(older_than=60, limit=2)
    assert (first.looked_up, first.more) == (2, True)
    assert env.gets() == ["v0", "v1"]
    second = t.sync_statuses(older_than=60, limit=2)
    assert env.gets() == ["v0", "v1", "v2", "v3"]
    assert second.more
    third = t.sync_statuses(older_than=60, limit=2)
    assert (third.looked_up, third.more) == (1, False)
    assert [t.get(f"m{i}").status for i in range(5)] == [Status.DELIVERED] * 5


def test_a_message_looked_up_recently_is_not_asked_again_before_its_backoff(env: Env) -> None:
    env.log("slow", PENDING, age=600, vendor_id="v1")
    t = env.gw.tenant("acme")
    first = t.sync_statuses(older_than=60, backoff=600)
    assert (first.looked_up, first.unchanged) == (1, 1)
    assert env.gets() == ["v1"]
    record = t.get("slow")
    assert record.status is Status.SUBMITTED
    assert (record.history[-1].source, record.history[-1].detail) == ("one:lookup", "no change")
    second = t.sync_statuses(older_than=60, backoff=600)
    assert env.gets() == ["v1"], "asked again within its backoff"
    assert (second.looked_up, second.not_due) == (0, 1)
    # the backoff is read from the history (not this process's memory): a new gateway agrees
    with Gateway(env.gw.settings, store=env.store, plugins=plugins()) as other:
        assert other.tenant("acme").sync_statuses(older_than=60, backoff=600).not_due == 1
    assert env.gets() == ["v1"]
    # once due, it is asked again
    t.sync_statuses(older_than=60, backoff=0)
    assert env.gets() == ["v1", "v1"]


def test_backoff_doubles_per_lookup_up_to_its_cap() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=utcnow().tzinfo)

    def history(n: int) -> list[StatusEvent]:
        return [StatusEvent(status=Status.SUBMITTED, at=t0, source="gateway")] + [
            StatusEvent(status=Status.SUBMITTED, at=t0 + timedelta(seconds=i), source="one:lookup", detail="no change")
            for i in range(n)]

    assert due_at(history(0), backoff=60, max_backoff=3600) is None
    waits = [(due_at(history(n), backoff=60, max_backoff=3600) or t0) - (t0 + timedelta(seconds=n - 1))
             for n in range(1, 9)]
    assert [w.total_seconds() for w in waits] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert due_at(history(500), backoff=60, max_backoff=3600) == t0 + timedelta(seconds=499 + 3600)


def test_unknown_messages_are_resolved_by_reference_both_ways(env: Env) -> None:
    env.log("found", "+2348033333331", age=600, status=Status.UNKNOWN)  # the vendor has it (client_ref)
    env.log("lost", "+2348033333332", age=600, status=Status.UNKNOWN, at_vendor=False)  # it never arrived
    summary = env.gw.tenant("acme").sync_statuses(older_than=60)
    assert (summary.found, summary.not_received, summary.looked_up) == (1, 1, 2)
    assert env.reference_lookups() == 2
    t = env.gw.tenant("acme")
    found = t.get("found")
    assert (found.status, found.provider_message_id) == (Status.SUBMITTED, "v-found")
    lost = t.get("lost")
    assert (lost.status, lost.raw_status) == (Status.FAILED, "not_received")
    assert env.ctl.requests("/messages", "POST") == [], "the poller sent something"
    # the found one is now in flight with a provider id: the next tick asks its status
    t.sync_statuses(older_than=60, backoff=0)
    assert env.gets() == ["v-found"]
    assert t.get("found").status is Status.DELIVERED


def test_an_unknown_message_stays_unknown_when_a_candidate_cannot_be_asked(tmp_path: Path) -> None:
    vendor: dict[str, dict[str, Any]] = {}
    store = open_store("sqlite", tmp_path)
    with LiveServer(create_emulator(vendor)) as emu:
        cfg = {"tenants": {"acme": {"default_region": "NG", "providers": {
            "one": provider(emu.url), "down": provider("http://127.0.0.1:9")}}}}
        with Gateway(cfg, store=store, plugins=plugins()) as gw:
            e = Env(gw, store, vendor, EmulatorControl(emu.url), emu.url)
            e.log("nobody", "+2348034444441", age=600, status=Status.UNKNOWN, at_vendor=False, provider=None)
            # only "one" asked: it has not got it, but "down" might have: no certainty
            only = gw.tenant("acme").sync_statuses(older_than=60, instances=["one"])
            assert (only.looked_up, only.not_received, only.errors) == (1, 0, 0)
            assert gw.tenant("acme").get("nobody").status is Status.UNKNOWN
            summary = gw.tenant("acme").sync_statuses(older_than=60, backoff=0)
            assert (summary.not_received, summary.errors) == (0, 1)  # "down" could not answer
            record = gw.tenant("acme").get("nobody")
            assert record.status is Status.UNKNOWN
            assert record.history[-1].source == "reconcile:lookup"
    store.close()


def test_an_instance_whose_breaker_is_open_is_skipped(env: Env) -> None:
    env.ctl.fault(kind="status", status=503, path="/messages", method="POST", count=1)
    t = env.gw.tenant("acme")
    # a 503 the vendor does not document as "not processed": the outcome is unknown (not repeated),
    # and it still counts against the vendor: it opens the breaker (failures=1)
    with pytest.raises(UnknownOutcome):
        t.send("08035555555", "x")
    assert len(env.ctl.requests("/messages", "POST")) == 1
    env.log("waiting", "+2348035555556", age=600, vendor_id="v1")
    summary = t.sync_statuses(older_than=60)
    assert summary.skipped_instances == ["one"]
    assert (summary.looked_up, summary.changed) == (0, 0)
    assert env.gets() == []
    assert t.get("waiting").status is Status.SUBMITTED


def test_async_tenant_sync_statuses(env: Env) -> None:
    env.log("a1", "+2348036666661", age=600, vendor_id="v1")

    async def run() -> int:
        async with AsyncGateway(env.gw.settings, store=env.store, plugins=plugins()) as agw:
            return (await agw.tenant("acme").sync_statuses(older_than=60)).changed

    assert asyncio.run(run()) == 1
    assert env.gets() == ["v1"]
    assert env.gw.tenant("acme").get("a1").status is Status.DELIVERED


def test_look_up_settles_one_message_now_by_the_tick_s_rules(env: Env) -> None:
    """``tenant.look_up(id)``: one message, now, no backoff or window: found by reference,
    never received (``failed``, ``not_received``) only once the provider had time to act on
    it (twice its timeout after it was logged), in flight by status lookup, a ``queued`` one
    of a process that died made ``unknown`` first; sends nothing. The async form is the same."""
    env.log("found", "+2348037777771", age=600, status=Status.UNKNOWN)
    env.log("lost", "+2348037777772", age=600, status=Status.UNKNOWN, at_vendor=False)
    env.log("young", "+2348037777773", age=0, status=Status.UNKNOWN, at_vendor=False)
    env.log("flying", "+2348037777774", age=5, vendor_id="v4")
    env.log("crashed", "+2348037777775", age=900, status=Status.QUEUED, at_vendor=False)
    t = env.gw.tenant("acme")
    assert t.look_up("found").status is Status.SUBMITTED
    lost = t.look_up("lost")
    assert (lost.status, lost.raw_status) == (Status.FAILED, "not_received")
    assert t.look_up("young").status is Status.UNKNOWN  # too early to call it never received
    assert t.look_up("flying").status is Status.DELIVERED and env.gets() == ["v4"]
    assert t.look_up("crashed", recover_after=3600).status is Status.QUEUED  # a live process may still send it

    async def run() -> MessageRecord:
        async with AsyncGateway(env.gw.settings, store=env.store, plugins=plugins()) as agw:
            return await agw.tenant("acme").look_up("crashed", recover_after=600)

    crashed = asyncio.run(run())  # no live process: unknown, then resolved by reference
    assert (crashed.status, crashed.raw_status) == (Status.FAILED, "not_received")
    assert env.reference_lookups() == 3
    assert env.ctl.requests("/messages", "POST") == [], "look_up sent something"


def test_bad_arguments_are_typed_errors(env: Env) -> None:
    t = env.gw.tenant("acme")
    for kwargs in ({"limit": 0}, {"older_than": -1}, {"backoff": float("nan")}, {"max_age": "5 minutes"}):
        with pytest.raises(ValidationError):
            t.sync_statuses(**kwargs)
    assert env.ctl.requests() == []


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "s", "m", "h", "d", "M", " m"]))
def test_parse_duration(n: int, unit: str) -> None:
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit.strip().lower()]
    assert parse_duration(f"{n}{unit}") == n * factor


@given(st.text(max_size=8).filter(lambda s: not s.strip().rstrip("smhdSMHD").strip().replace(".", "", 1).isdigit()))
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_duration(text)


def test_cli_status_sync_in_a_subprocess(tmp_path: Path) -> None:
    vendor: dict[str, dict[str, Any]] = {}
    db = tmp_path / "log.db"
    store = open_store("sqlite", tmp_path)
    with LiveServer(create_emulator(vendor)) as emu:
        e = Env(None, store, vendor, EmulatorControl(emu.url), emu.url)  # type: ignore[arg-type]
        for i in range(3):
            e.log(f"c{i}", f"+23480377777{i:02d}", age=900 - i, vendor_id=f"v{i}")
        e.log("young", "+2348037777799", age=5, vendor_id="vy")
        store.close()
        cfg = tmp_path / "smsgate.toml"
        cfg.write_text(f'store = "sqlite:///{db}"\n[tenants.acme]\ndefault_region = "NG"\n'
                       f'[tenants.acme.providers.one]\nplugin = "echo"\nbase_url = "{emu.url}"\n'
                       f'credentials = {{ api_key = "{API_KEY}" }}\n')
        env = {**os.environ, "PYTHONPATH": str(HERE)}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-c", ECHO_CLI, *args], capture_output=True, text=True, env=env,
                                  timeout=120)

        out = cli("status", "sync", "-c", str(cfg), "--older-than", "5m", "--limit", "2", "--json")
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert (summary["looked_up"], summary["changed"], summary["more"]) == (2, 2, True)
        assert sorted(e.gets()) == ["v0", "v1"]
        out = cli("status", "sync", "-c", str(cfg), "--tenant", "acme", "--older-than", "5m")
        assert out.returncode == 0, out.stderr
        assert "looked up 1" in out.stdout
        assert sorted(e.gets()) == ["v0", "v1", "v2"]  # never the young one
        # `smsgate status ID` still shows one message
        shown = cli("status", "c0", "-c", str(cfg), "--json", "--no-refresh")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["status"] == "delivered"
        bad = cli("status", "sync", "-c", str(cfg), "--older-than", "soon")
        assert bad.returncode == 2 and "duration" in bad.stderr


def test_celery_beat_task_runs_a_tick_for_every_tenant(env: Env) -> None:
    celery = pytest.importorskip("celery")
    from smsgate.contrib.celery import configure

    env.log("b1", "+2348038888881", age=600, vendor_id="v1")
    app = celery.Celery(f"sync-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
    configure(app, gateway=lambda: env.gw)
    result = app.tasks["smsgate.sync_statuses"].apply(kwargs={"older_than": 300, "limit": 10}).result
    assert result["acme"]["changed"] == 1 and env.gets() == ["v1"]
    assert env.gw.tenant("acme").get("b1").status is Status.DELIVERED


def test_messages_of_an_instance_no_longer_configured_are_reported_not_silently_skipped(env: Env) -> None:
    env.log("orphan-1", "+2348038888881", age=600, vendor_id="g1", provider="gone")
    env.log("orphan-2", "+2348038888882", age=500, vendor_id="g2", provider="gone", status=Status.SENT)
    env.log("orphan-3", "+2348038888883", age=500, provider="old", status=Status.UNKNOWN)
    env.log("kept", "+2348038888884", age=600, vendor_id="v1")
    summary = env.gw.tenant("acme").sync_statuses(older_than=60)
    assert summary.skipped_instances == ["gone", "old"]
    assert summary.unconfigured == {"gone": 2, "old": 1}
    assert env.gets() == ["v1"]  # the vendor was asked about the configured instance's message only
    assert env.gw.tenant("acme").get("orphan-1").status is Status.SUBMITTED
    # a tick limited to configured instances does not report the others
    assert env.gw.tenant("acme").sync_statuses(older_than=60, instances=["one"]).skipped_instances == []
    from smsgate.cli.messages import _sync_line

    line = _sync_line(summary)
    assert "gone (not configured: 2 messages)" in line and "old (not configured: 1 message)" in line


def test_a_tick_calls_nothing_never_received_before_the_provider_had_time_to_act(env: Env) -> None:
    """One rule with ``look_up`` and campaign recovery (:func:`smsgate.core.received.ask`):
    not found moments after it was logged proves nothing, whatever ``older_than`` says."""
    env.log("young", "+2348038888881", age=1, status=Status.UNKNOWN, at_vendor=False)
    summary = env.gw.tenant("acme").sync_statuses(older_than=0)
    assert (summary.looked_up, summary.not_received) == (1, 0)
    assert env.reference_lookups() == 1
    assert env.gw.tenant("acme").get("young").status is Status.UNKNOWN


def test_a_message_found_by_reference_keeps_no_stale_error(env: Env) -> None:
    """Found at the vendor: the error of its unknown outcome no longer holds (as campaign recovery does)."""
    env.log("found", "+2348038888882", age=600, status=Status.UNKNOWN)
    env.store.update_messages("acme", [MessageUpdate(message_id="found", status=Status.UNKNOWN, at=utcnow(),
                                                     source="test", error="the request may have left")])
    assert env.gw.tenant("acme").sync_statuses(older_than=60).found == 1
    found = env.gw.tenant("acme").get("found")
    assert found.status is Status.SUBMITTED and not found.error


def test_a_lookup_keeps_the_vendor_s_time_and_the_backoff_its_own(env: Env) -> None:
    """The status and its history event take the time the vendor gives (``delivered_at`` is
    when it was delivered, not when the poller asked); the backoff times the lookup itself."""
    vendor_time = (utcnow() - timedelta(minutes=8)).replace(microsecond=0)
    env.log("done", "+2348031111111", age=600, vendor_id="v1")
    env.vendor["v1"]["updated_at"] = vendor_time.isoformat()
    env.log("moving", PENDING, age=600, vendor_id="v2")  # the vendor says sent (still in flight)
    env.vendor["v2"].update(status="sent", updated_at=vendor_time.isoformat())
    t = env.gw.tenant("acme")
    first = t.sync_statuses(older_than=60, backoff=600)
    assert (first.looked_up, first.changed) == (2, 2)
    done = t.get("done")
    assert done.status is Status.DELIVERED and done.delivered_at == vendor_time
    assert next(e.at for e in done.history if e.status is Status.DELIVERED) == vendor_time
    moving = t.get("moving")
    assert moving.status is Status.SENT
    assert next(e.at for e in moving.history if e.status is Status.SENT) == vendor_time
    # looked up just now (whatever the vendor's time): not asked again within its backoff
    second = t.sync_statuses(older_than=60, backoff=600)
    assert (second.looked_up, second.not_due) == (0, 1)
    assert env.gets() == ["v1", "v2"]
    t.sync_statuses(older_than=60, backoff=0)  # once due, it is asked again
    assert env.gets() == ["v1", "v2", "v2"]
