"""Attacks, round 3: stored tenants rotated or removed while they send; ``send_later`` tasks
redelivered after their worker was SIGKILLed.

A stored tenant (``StoredTenants``: credentials Fernet-encrypted in the store) is rotated or
removed while a campaign of it runs, or while a campaign handle or opt-out registry of it is
kept. The rule (docs/tenants.md): a rotated credential is used from the next request, and a
removed tenant is refused. A ``send_message`` task's worker dies before its request left, or
right after the vendor took it: the redelivered task sends the message once, never twice.
Every claim about what reached the vendor, and with which credential, is read from the echo
emulator's own record of the requests it received.
"""
from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from reference_provider import API_KEY, EchoPlugin, create_emulator
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway
from smsgate.errors import UnknownTenant
from smsgate.hookspecs import hookimpl
from smsgate.models import CampaignStatus
from smsgate.plugins import PluginManager
from smsgate.store import Store, open_store
from smsgate.tenants import StoredTenants
from smsgate.testing import EmulatorControl, LiveServer

KEY = Fernet.generate_key().decode()
#: the credential a rotation gives (the echo vendor refuses it: a request made with it is
#: answered 401, and the vendor's record shows which credential each request carried)
ROTATED = "rotated-echo-key-5d1e"
NUMBERS = [f"+23480600000{i:02d}" for i in range(12)]


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'attack3.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = open_store(url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def vendor() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


@pytest.fixture
def stored(store: Store, vendor: tuple[str, EmulatorControl]) -> Iterator[tuple[Gateway, StoredTenants]]:
    """Tenant ``acme`` stored with the echo vendor's key; a gateway asking the source on every call."""
    url, _ = vendor
    tenants = StoredTenants(store, keys=KEY, plugins=plugins())
    tenants.add("acme", {"default_region": "NG", "sender": "ACME", "providers": {
        "main": {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}}}})
    with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(), tenants=tenants,
                 tenant_refresh=0) as gw:
        yield gw, tenants


def keys_used(ctl: EmulatorControl) -> list[str]:
    """The credential of every send request the vendor received, in order."""
    return [r.headers.get("x-api-key", "") for r in ctl.requests("/messages", "POST")]


def accepted(ctl: EmulatorControl) -> Counter[str]:
    """Numbers the vendor accepted, with how many times."""
    out: Counter[str] = Counter()
    for r in ctl.requests("/messages", "POST"):
        if r.status == 201:
            body = r.json()
            for m in body["messages"] if r.path.endswith("/bulk") else [body]:
                out[m["to"]] += 1
    return out


def states(store: Store, cid: str) -> Counter[str]:
    return Counter(r.state.value for r in store.recipients("acme", cid, limit=100))


def create(gw: Gateway) -> Any:
    # concurrency 1: a chunk's requests have all been answered when the next chunk is claimed
    return gw.tenant("acme").campaigns.create("spring", text="Sale today", audience=NUMBERS, batch_size=4,
                                              concurrency=1)


# ------------------------------------------------------------------ a handle kept across a change
def test_a_campaign_handle_kept_across_a_rotation_runs_with_the_new_credential(
        stored: tuple[Gateway, StoredTenants], vendor: tuple[str, EmulatorControl]) -> None:
    """A campaign handle made before ``tenants.rotate`` returns. Before, the handle kept the
    tenant's policy of its making, so ``camp.run()`` sent every request with the old
    credential however long after the rotation it ran."""
    gw, tenants = stored
    _, ctl = vendor
    camp = create(gw)
    tenants.rotate("acme", "main", {"api_key": ROTATED})
    camp.run()
    assert set(keys_used(ctl)) == {ROTATED}


def test_a_campaign_handle_kept_across_a_removal_sends_nothing(
        stored: tuple[Gateway, StoredTenants], vendor: tuple[str, EmulatorControl], store: Store) -> None:
    """Before, a campaign handle of a tenant removed since sent the whole campaign."""
    gw, tenants = stored
    _, ctl = vendor
    camp = create(gw)
    assert tenants.remove("acme")
    with pytest.raises(UnknownTenant, match="'acme'"):
        camp.run()
    assert ctl.requests("/messages", "POST") == []
    # nothing can run it any more: removing its tenant cancelled it (its recipients skipped)
    assert states(store, camp.campaign_id) == Counter({"skipped": len(NUMBERS)})
    assert store.get_campaign("acme", camp.campaign_id).status is CampaignStatus.CANCELLED


# ------------------------------------------------------------------------ a change during a run
def test_credentials_rotated_during_a_run_are_used_from_its_next_chunk(
        stored: tuple[Gateway, StoredTenants], vendor: tuple[str, EmulatorControl], store: Store) -> None:
    """The credential is rotated between two chunks of a running campaign (from its progress
    callback, so the point is exact). Before, the run sent all its chunks with the old one."""
    gw, tenants = stored
    _, ctl = vendor
    camp = create(gw)
    at: list[int] = []

    def rotate_once(_: Any) -> None:
        if not at:
            tenants.rotate("acme", "main", {"api_key": ROTATED})
            at.append(len(ctl.requests("/messages", "POST")))

    camp.run(progress=rotate_once)
    assert at == [2]  # the first chunk: 4 recipients, two bulk requests of two
    assert keys_used(ctl) == [API_KEY] * 2 + [ROTATED] * 4
    assert accepted(ctl) == Counter(NUMBERS[:4])  # each once; the rest refused (401) with the new key
    assert states(store, camp.campaign_id) == Counter({"sent": 4, "failed": 8})


def test_a_tenant_removed_during_a_run_stops_it_before_its_next_claim(
        stored: tuple[Gateway, StoredTenants], vendor: tuple[str, EmulatorControl], store: Store) -> None:
    """Removed between two chunks: the run raises UnknownTenant naming it, claims nothing
    more, and leaves no recipient claimed (``sending``): the removal cancelled the campaign
    (nothing can run it any more), so the rest are ``skipped``. Before, it sent the whole
    campaign for the removed tenant."""
    gw, tenants = stored
    _, ctl = vendor
    camp = create(gw)
    cid = camp.campaign_id

    def remove(_: Any) -> None:
        tenants.remove("acme")

    with pytest.raises(UnknownTenant, match="'acme'"):
        camp.run(progress=remove)
    assert accepted(ctl) == Counter(NUMBERS[:4])
    assert len(ctl.requests("/messages", "POST")) == 2
    assert states(store, cid) == Counter({"sent": 4, "skipped": 8})
    assert store.get_campaign("acme", cid).status is CampaignStatus.CANCELLED


def test_credentials_rotated_during_an_async_run_are_used_from_its_next_chunk(
        store: Store, vendor: tuple[str, EmulatorControl]) -> None:
    """The same on an AsyncGateway (the source asked in a worker thread, never on the loop)."""
    url, ctl = vendor
    tenants = StoredTenants(store, keys=KEY, plugins=plugins())
    tenants.add("acme", {"default_region": "NG", "sender": "ACME", "providers": {
        "main": {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}}}})
    rotated: list[bool] = []

    def rotate_once(_: Any) -> None:
        if not rotated:
            tenants.rotate("acme", "main", {"api_key": ROTATED})
            rotated.append(True)

    async def go() -> None:
        async with AsyncGateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(),
                                tenants=tenants, tenant_refresh=0) as agw:
            camp = await agw.tenant("acme").campaigns.create("spring", text="Sale today", audience=NUMBERS,
                                                             batch_size=4, concurrency=1)
            await camp.run(progress=rotate_once)

    asyncio.run(go())
    # the first chunk's two requests were made before the rotation, every later one after it
    assert keys_used(ctl) == [API_KEY] * 2 + [ROTATED] * 4
    assert accepted(ctl) == Counter(NUMBERS[:4])


class _AfterFirst:
    """After the vendor answered the first recipient's request: ``action()`` (once)."""

    def __init__(self, action: Any) -> None:
        self.action = action
        self.done = False

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
        if message.to == NUMBERS[0] and not self.done:
            self.done = True
            self.action()


def _chunk_task(gw: Gateway, driver: str) -> Any:
    celery = pytest.importorskip("celery")
    from smsgate.contrib.celery import configure

    app = celery.Celery(f"attack3-{driver}-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
    configure(app, gateway=lambda: gw, chunk_size=100, driver=driver)
    return app.tasks["smsgate.send_chunk"]


@pytest.fixture
def celery_local() -> Iterator[None]:
    pytest.importorskip("celery")
    yield
    from smsgate.contrib.celery import _close_gateways

    _close_gateways()


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_celery_chunk_uses_credentials_rotated_while_it_runs(
        stored: tuple[Gateway, StoredTenants], vendor: tuple[str, EmulatorControl], store: Store,
        celery_local: None, driver: str) -> None:
    """A chunk task (run here as a worker runs it) claims a batch at a time. Rotated after its
    first batch was answered, its next batches go with the new credential. Before, the whole
    chunk (up to ``chunk_size`` recipients: minutes of sending) kept the old one."""
    gw, tenants = stored
    _, ctl = vendor
    cid = create(gw).campaign_id
    gw.store.update_campaign("acme", cid, status=CampaignStatus.RUNNING)
    gw.plugins.register(_AfterFirst(lambda: tenants.rotate("acme", "main", {"api_key": ROTATED})))
    result = _chunk_task(gw, driver).apply(("acme", cid, 100))
    assert result.successful(), result.traceback
    assert keys_used(ctl) == [API_KEY] * 2 + [ROTATED] * 4
    assert accepted(ctl) == Counter(NUMBERS[:4])
    assert states(store, cid) == Counter({"sent": 4, "failed": 8})


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_celery_chunk_of_a_tenant_removed_while_it_runs_claims_nothing_more(
        stored: tuple[Gateway, StoredTenants], vendor: tuple[str, EmulatorControl], store: Store,
        celery_local: None, driver: str) -> None:
    """Removed after the chunk's first batch: the removal cancelled the campaign, so the chunk
    claims nothing more and ends (the rest ``skipped``, nothing half-sent). Before, the chunk
    sent every recipient it could claim for the removed tenant."""
    gw, tenants = stored
    _, ctl = vendor
    cid = create(gw).campaign_id
    gw.store.update_campaign("acme", cid, status=CampaignStatus.RUNNING)
    gw.plugins.register(_AfterFirst(lambda: tenants.remove("acme")))
    result = _chunk_task(gw, driver).apply(("acme", cid, 100))
    assert result.successful() and result.result == {"submitted": 4}, result.traceback
    assert accepted(ctl) == Counter(NUMBERS[:4]) and len(keys_used(ctl)) == 2
    assert states(store, cid) == Counter({"sent": 4, "skipped": 8})
    assert store.get_campaign("acme", cid).status is CampaignStatus.CANCELLED



def test_an_optout_registry_kept_across_a_removal_is_refused(
        stored: tuple[Gateway, StoredTenants], store: Store) -> None:
    """``acme.optouts`` kept by the app (its opt-out sync with the vendor uses the tenant's
    credentials too). Before, it went on writing for a removed tenant (and syncing with the
    credentials of its making)."""
    gw, tenants = stored
    optouts = gw.tenant("acme").optouts
    assert optouts.add("08031234567")
    assert tenants.remove("acme")
    with pytest.raises(UnknownTenant, match="'acme'"):
        optouts.add("08031234568")
    assert store.optout_scopes("acme", ["+2348031234568"]) == {}


# ------------------------------------------- a runner SIGKILLed, then its tenant removed
#: A campaign runner of stored tenant ``acme`` (``argv``: store URL, campaign id, Fernet key,
#: kill point) that SIGKILLs itself mid-run: in the hook before its first message is logged
#: ahead (its chunk claimed, nothing logged), or in the hook after the vendor answered its
#: first request (its answer never logged: the chunk's messages ``queued``, outcome unknown).
_KILLED_RUNNER = """
import os, signal, sys
from reference_provider import EchoPlugin
from smsgate import Gateway
from smsgate.hookspecs import hookimpl
from smsgate.plugins import PluginManager
from smsgate.store import open_store
from smsgate.tenants import StoredTenants

url, cid, key, point = sys.argv[1:5]

class Die:
    @hookimpl
    def smsgate_before_send(self, tenant, message):
        if point == "before":
            os.kill(os.getpid(), signal.SIGKILL)

    @hookimpl
    def smsgate_after_send(self, tenant, message, result):
        if point == "after":
            os.kill(os.getpid(), signal.SIGKILL)

pm = PluginManager(load_entry_points=False)
pm.register(EchoPlugin())
pm.register(Die())
store = open_store(url)
with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm,
             tenants=StoredTenants(store, keys=key, plugins=pm)) as gw:
    gw.tenant("acme").campaigns.get(cid).run()
"""


@pytest.mark.parametrize("point", ["before", "after"])
def test_a_runner_killed_then_its_tenant_removed_leaves_no_claim_and_the_campaign_can_be_purged(
        stored: tuple[Gateway, StoredTenants], vendor: tuple[str, EmulatorControl], store: Store, tmp_path: Path,
        point: str, request: pytest.FixtureRequest) -> None:
    """A runner is SIGKILLed mid-run (its claims ``sending``), then its stored tenant is removed.
    Before, nothing could ever run, cancel or recover that campaign: its claims stayed
    ``sending`` for ever and every purge kept it as held. Now removing the tenant cancels
    it (``pending`` recipients skipped) and a purge, once the dead runner's lease ended,
    resolves its claims by recovery's rule (without look-ups: nobody to ask): never logged,
    ``skipped``; logged and may have left, ``unknown``. A purge then lets the campaign go
    once nothing in it is unresolved. The vendor's own record: nothing sent twice, nothing
    after the removal."""
    import os
    import signal
    import subprocess
    import sys
    import time

    gw, tenants = stored
    _, ctl = vendor
    camp = gw.tenant("acme").campaigns.create("spring", text="Sale today", audience=NUMBERS, batch_size=4,
                                              concurrency=1, lease_seconds=1)
    url = (f"sqlite:///{tmp_path / 'attack3.db'}" if "postgres" not in request.node.callspec.id
           else request.getfixturevalue("pg_url"))
    runner = subprocess.run([sys.executable, "-c", _KILLED_RUNNER, url, camp.campaign_id, KEY, point],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    assert runner.returncode == -signal.SIGKILL, (runner.returncode, runner.stderr[-3000:])
    held = states(store, camp.campaign_id)
    assert held["sending"] == 4, held  # the dead runner's claims (one chunk)
    sent_before = accepted(ctl)
    assert tenants.remove("acme")
    assert store.get_campaign("acme", camp.campaign_id).status is CampaignStatus.CANCELLED
    time.sleep(1.5)  # the dead runner's lease ends
    with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=plugins(), tenants=tenants) as fresh:
        first = fresh.purge(older_than=0)
    after = states(store, camp.campaign_id)
    if point == "before":  # claimed, nothing logged: certainly never sent; the whole campaign goes
        assert first.campaigns == 1 and after == Counter(), (first, after)
    else:  # the chunk's messages may have left: unknown (kept, as any unresolved message is)
        assert after["sending"] == 0 and after["unknown"] >= 1, after
        assert after["unknown"] + after["skipped"] == len(NUMBERS), after
        assert first.kept_campaigns == 1
        assert store.get_campaign("acme", camp.campaign_id).status is CampaignStatus.CANCELLED
    assert accepted(ctl) == sent_before and max(sent_before.values(), default=1) == 1


# ------------------------------------------- send_later: a worker killed while a send waits
#: A worker process running two ``send_message`` tasks (as ``--pool=threads``): the first is
#: sent; the second is logged ahead (``queued``) and its request is being built when the worker
#: is SIGKILLed (an OOM kill, a deploy's kill after its grace): killed after its write-ahead,
#: before its request left (the adapter stalls building it). Its send lease lasts one second
#: (it ends soon after the kill). (A send waiting for its rate limit has logged nothing yet:
#: see the test after the fixture.)
_WAITING_VICTIM = """
import json, os, signal, sys, threading, time
import smsgate.core.recover
from celery import Celery
from reference_provider import EchoProvider
from smsgate import Gateway
from smsgate.contrib.celery import configure
from smsgate.hookspecs import hookimpl
from smsgate.plugins import PluginManager


class Stalled(EchoProvider):
    def send(self, msg):
        if msg.text == "second":
            time.sleep(3600)  # run once its write-ahead is written: killed here, it never leaves
        return (yield from super().send(msg))


class StalledPlugin:
    @hookimpl
    def register_providers(self, register):
        register(Stalled)


smsgate.core.recover.LEASE = 1.0
config = json.loads(sys.argv[1])
pm = PluginManager(load_entry_points=False)
pm.register(StalledPlugin())
gw = Gateway(config, plugins=pm)
app = Celery("victim", broker="memory://", set_as_current=False)
configure(app, gateway=lambda: gw)
send = app.tasks["smsgate.send_message"]
print(json.dumps(send.apply(("acme", "08060000001", "first"), {"idempotency_key": "order-1"}).result), flush=True)
threading.Thread(target=send.apply, args=(("acme", "08060000002", "second"), {"idempotency_key": "order-2"}),
                 daemon=True).start()
while not gw.tenant("acme").messages(status="queued"):
    time.sleep(0.01)
time.sleep(0.2)
os.kill(os.getpid(), signal.SIGKILL)
"""

#: The same worker, its provider limited to one message per 30 s: the second task waits for
#: its limit when the worker is SIGKILLed.
_LIMITED_VICTIM = _WAITING_VICTIM.replace("pm.register(StalledPlugin())", "pm.register(EchoPlugin())").replace(
    "from reference_provider import EchoProvider", "from reference_provider import EchoPlugin, EchoProvider").replace(
    """while not gw.tenant("acme").messages(status="queued"):
    time.sleep(0.01)
time.sleep(0.2)""", "time.sleep(1.0)  # well inside the rate limit's wait")

SECOND = "+2348060000002"


@pytest.fixture
def killed_while_waiting(tmp_path: Path, vendor: tuple[str, EmulatorControl]) -> dict[str, Any]:
    """The configuration after the victim worker died with ``order-2`` logged ahead, never sent."""
    return _killed(tmp_path, vendor, _WAITING_VICTIM, {})


def _killed(tmp_path: Path, vendor: tuple[str, EmulatorControl], victim_code: str,
            provider: dict[str, Any]) -> dict[str, Any]:
    """Run ``victim_code`` (it SIGKILLs itself); the configuration of the workers taking over."""
    import json
    import os
    import signal
    import subprocess
    import sys

    url, ctl = vendor
    prov: dict[str, Any] = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY},
                            "sender": "ACME", "timeout": 1.0, **provider}
    cfg: dict[str, Any] = {"store": f"sqlite:///{tmp_path / 'later.db'}",
                           "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}
    victim = subprocess.run([sys.executable, "-c", victim_code, json.dumps(cfg)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    assert victim.returncode == -signal.SIGKILL, (victim.returncode, victim.stdout, victim.stderr[-3000:])
    assert accepted(ctl) == Counter({"+2348060000001": 1})
    prov.pop("rate_limit", None)  # the workers that take over (redeployed) send at once
    return cfg


def test_a_send_task_killed_while_it_waits_for_its_rate_limit_has_logged_nothing_and_is_sent_once(
        tmp_path: Path, vendor: tuple[str, EmulatorControl], celery_local: None) -> None:
    """A send waits for its place in the limits before its write-ahead: the worker SIGKILLed
    while it waits leaves nothing of it in the log (before, it was ``queued``: "may have left",
    settled only once the dead worker's lease ended and the vendor was asked). The redelivered
    task sends it at once, once (the emulator's record); delivered again, nothing more."""
    _, ctl = vendor
    cfg = _killed(tmp_path, vendor, _LIMITED_VICTIM, {"rate_limit": 1 / 30})
    with Gateway(cfg, plugins=plugins()) as gw:
        assert [m.to for m in gw.tenant("acme").messages()] == ["+2348060000001"]  # the second: nothing
        task = _send_task(gw)
        args, kwargs = ("acme", "08060000002", "second"), {"idempotency_key": "order-2"}
        again = task.apply(args, kwargs)  # the broker's redelivery
        assert again.successful() and again.result["status"] == "submitted", again.result
        assert task.apply(args, kwargs).result["message_id"] == again.result["message_id"]
    assert accepted(ctl) == Counter({"+2348060000001": 1, SECOND: 1})


def _send_task(gw: Gateway) -> Any:
    return _chunk_task(gw, "sync").app.tasks["smsgate.send_message"]  # a worker's app


def _settle(gw: Gateway) -> None:
    """What recovery and the status poller do once the dead worker's send lease has ended.
    ``backoff=0``: the victim's 1 s lease can end (its message recovered) a few ms before the
    message is 2 s old (``settle_seconds``: its timeout is 1 s); a lookup then is "too early,
    unresolved" and the default backoff would put the next one 60 s away (a CI run's red)."""
    import time

    deadline = time.monotonic() + 30
    while not gw.tenant("acme").sync_statuses(older_than=0, recover_after=0, backoff=0).not_received:
        assert time.monotonic() < deadline, gw.tenant("acme").messages()
        time.sleep(0.2)


def test_a_send_later_task_redelivered_after_its_worker_died_before_the_request_left_sends_it_once(
        killed_while_waiting: dict[str, Any], vendor: tuple[str, EmulatorControl], celery_local: None) -> None:
    """Before, the redelivered task replayed the key's message, ``queued`` (success), and once
    recovery and the poller had settled it (``failed``, ``not_received``: never received)
    nothing sent it: lost. Now a message settled "never received" is a new attempt (under
    the key ``order-2:retry:1``), sent once; delivered again, the task sends nothing more."""
    _, ctl = vendor
    with Gateway(killed_while_waiting, plugins=plugins()) as gw:
        _settle(gw)
        task = _send_task(gw)
        args, kwargs = ("acme", "08060000002", "second"), {"idempotency_key": "order-2"}
        again = task.apply(args, kwargs)  # the broker's redelivery
        assert again.successful() and again.result["status"] == "submitted", again.result
        assert task.apply(args, kwargs).result["message_id"] == again.result["message_id"]  # and once more
    assert accepted(ctl) == Counter({"+2348060000001": 1, SECOND: 1})


def test_a_send_later_task_redelivered_before_its_message_is_settled_waits_and_never_guesses(
        killed_while_waiting: dict[str, Any], vendor: tuple[str, EmulatorControl], celery_local: None,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redelivered at once (the dead worker's message still ``queued``: its request may have
    left), the task sends nothing: it looks again later under the same key (a worker would
    wait ``SETTLE_LOOK`` seconds between looks; ``apply`` runs them at once), then its answer
    stands. Before, it answered ``queued`` at its first look and never looked again."""
    import logging

    from smsgate.contrib.celery import SETTLE_LOOKS

    _, ctl = vendor
    # this process's own send lease (its replays log ahead) holds back recovery until renewed: soon
    monkeypatch.setattr("smsgate.core.recover.LEASE", 1.0)
    caplog.set_level(logging.INFO, logger="smsgate.celery")
    with Gateway(killed_while_waiting, plugins=plugins()) as gw:
        task = _send_task(gw)
        args, kwargs = ("acme", "08060000002", "second"), {"idempotency_key": "order-2"}
        first = task.apply(args, kwargs)
        assert first.successful() and first.result["status"] == "queued"
        looks = [r for r in caplog.records if "has no answer yet (queued)" in r.getMessage()]
        assert len(looks) == SETTLE_LOOKS
        assert accepted(ctl)[SECOND] == 0  # never sent while its outcome was not known
        _settle(gw)  # then, once settled, a later delivery (or look) sends it, once
        assert task.apply(args, kwargs).result["status"] == "submitted"
    assert accepted(ctl) == Counter({"+2348060000001": 1, SECOND: 1})


def test_a_send_later_task_settles_its_dead_worker_s_message_itself_without_a_status_poller(
        killed_while_waiting: dict[str, Any], vendor: tuple[str, EmulatorControl], celery_local: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No status poller runs (no ``sync_statuses``): each look of the redelivered task first
    settles its message itself, by the poller's rules (recovery once no live process can send
    it, then a reference lookup at the vendor). Before, the looks ended with ``queued`` and
    nothing sent it. Sent once; asked again, nothing more."""
    import time

    _, ctl = vendor
    monkeypatch.setattr("smsgate.core.recover.LEASE", 1.0)  # this process's replays' own send lease
    monkeypatch.setattr("smsgate.contrib.celery.RECOVER_AFTER", 0.0)  # the grace a worker gives (10 min)
    with Gateway(killed_while_waiting, plugins=plugins()) as gw:
        task = _send_task(gw)
        args, kwargs = ("acme", "08060000002", "second"), {"idempotency_key": "order-2"}
        deadline = time.monotonic() + 30
        while (answer := task.apply(args, kwargs)).result["status"] != "submitted":
            assert answer.successful() and answer.result["status"] in ("queued", "unknown"), answer.result
            assert accepted(ctl)[SECOND] == 0  # never sent while its outcome was not known
            assert time.monotonic() < deadline, gw.tenant("acme").messages()
            time.sleep(0.3)  # (a worker waits SETTLE_LOOK between looks)
        assert task.apply(args, kwargs).result["message_id"] == answer.result["message_id"]
        asked = [r for r in ctl.requests("/messages", "GET") if "client_ref=" in r.query]
        assert asked  # the task asked the vendor itself
    assert accepted(ctl) == Counter({"+2348060000001": 1, SECOND: 1})


#: A worker process whose ``send_message`` task is SIGKILLed right after the vendor answered
#: (the request left and was accepted; its answer never logged).
_ANSWERED_VICTIM = """
import json, os, signal, sys
import smsgate.core.recover
from celery import Celery
from reference_provider import EchoPlugin
from smsgate import Gateway
from smsgate.contrib.celery import configure
from smsgate.hookspecs import hookimpl
from smsgate.plugins import PluginManager

smsgate.core.recover.LEASE = 1.0

class Die:
    @hookimpl
    def smsgate_after_send(self, tenant, message, result):
        os.kill(os.getpid(), signal.SIGKILL)

pm = PluginManager(load_entry_points=False)
pm.register(EchoPlugin())
pm.register(Die())
gw = Gateway(json.loads(sys.argv[1]), plugins=pm)
app = Celery("victim", broker="memory://", set_as_current=False)
configure(app, gateway=lambda: gw)
app.tasks["smsgate.send_message"].apply(("acme", "08060000002", "second"), {"idempotency_key": "order-2"})
"""


def test_a_send_later_task_redelivered_after_its_worker_died_once_the_request_left_never_sends_twice(
        tmp_path: Path, vendor: tuple[str, EmulatorControl], celery_local: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed right after the vendor accepted the message, before its answer was logged: the
    redelivered task sends nothing while the outcome is unknown; once the poller has found the
    message at the vendor (by client reference), the task answers with it. Sent once."""
    import json
    import os
    import signal
    import subprocess
    import sys

    url, ctl = vendor
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            "timeout": 1.0}
    cfg = {"store": f"sqlite:///{tmp_path / 'answered.db'}",
           "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}
    victim = subprocess.run([sys.executable, "-c", _ANSWERED_VICTIM, json.dumps(cfg)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    assert victim.returncode == -signal.SIGKILL, (victim.returncode, victim.stdout, victim.stderr[-3000:])
    assert accepted(ctl) == Counter({SECOND: 1})
    monkeypatch.setattr("smsgate.core.recover.LEASE", 1.0)
    with Gateway(cfg, plugins=plugins()) as gw:
        task = _send_task(gw)
        args, kwargs = ("acme", "08060000002", "second"), {"idempotency_key": "order-2"}
        assert task.apply(args, kwargs).result["status"] == "queued"  # its looks ran out at once (apply)
        import time

        deadline = time.monotonic() + 30
        while not gw.tenant("acme").sync_statuses(older_than=0, recover_after=0).found:
            assert time.monotonic() < deadline, gw.tenant("acme").messages()
            time.sleep(0.2)
        again = task.apply(args, kwargs)
        assert again.result["status"] == "submitted" and again.result["provider_message_id"], again.result
    assert accepted(ctl) == Counter({SECOND: 1})
