"""Attacks, round 4: the SQLite store's history chain (schema 9) under several processes.

Each message's history is a chain (``message_events.prev``, ``messages.last_event``), event
ids given ``max(id) + 1`` under the write lock. Here real processes share one SQLite file:
senders (``send_many`` to the echo emulator over loopback), delivery reports, the status
poller, a campaign run and ``purge`` at once; a writer SIGKILLed inside its transaction; a
version-8 database migrated while a process running the version-8 code (the commit before
the chain, from git) keeps writing; a message with hundreds of events. After each, every
message's history read through the store must be exactly its events in the table, in id
order, with no event outside a chain.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway
from smsgate.errors import SmsgateError
from smsgate.models import CampaignStatus, DeliveryReport, Status, StatusEvent
from smsgate.plugins import PluginManager
from smsgate.store import open_store
from smsgate.store.base import LogWrite, NewMessage
from smsgate.store.sqlite import SQLiteStore
from smsgate.tenants import StoredTenants
from smsgate.testing import EmulatorControl, LiveServer
from store_contract import at
from test_store_chain import broken_links, stored_histories

HERE = Path(__file__).parent
SRC = HERE.parent / "src"
_FAR = datetime(2100, 1, 1, tzinfo=timezone.utc)

#: A worker process: ROLE, CONFIG_JSON, SECONDS, SEED. Runs its role against the shared file
#: until SECONDS have passed, and on while the file CONFIG_JSON.hold.SEED exists (a minute at most);
#: exits 0 unless something raised.
WORKER = r'''
import json, os, random, sys, time
from datetime import datetime, timedelta, timezone
UTC = timezone.utc
from reference_provider import EchoPlugin, sign
from smsgate import Gateway
from smsgate.models import DeliveryReport, Status
from smsgate.plugins import PluginManager
from smsgate.models import utcnow

role, config, seconds, seed = sys.argv[1], json.loads(open(sys.argv[2]).read()), float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
pm = PluginManager(load_entry_points=False)
pm.register(EchoPlugin())
end = time.monotonic() + seconds
with Gateway(config, plugins=pm) as gw:
    acme = gw.tenant("acme")
    store = gw.store
    open(f"{sys.argv[2]}.open.{seed}", "w").close()  # the store is open (the test may go on)
    n = 0
    hold = f"{sys.argv[2]}.hold.{seed}"
    while time.monotonic() < end or (os.path.exists(hold) and time.monotonic() < end + 60):
        n += 1
        if role == "send":
            out = acme.send_many([f"+23480{seed:02d}{n:05d}{i}" for i in range(8)], "hi")
            assert all(r.message_id for r in out), out
        elif role == "reports":
            recs = [m for m in store.list_messages("acme", limit=400) if m.provider_message_id]
            if recs:
                batch = []
                for m in rng.sample(recs, min(len(recs), 40)):
                    status = rng.choice([Status.SENT, Status.DELIVERED, Status.SUBMITTED, Status.FAILED,
                                         Status.SENT])
                    batch.append(DeliveryReport(provider=m.provider, provider_message_id=m.provider_message_id,
                                                status=status, raw_status=f"r{seed}.{n}"))
                store.apply_reports("acme", batch, keep_orphans=rng.random() < 0.3)
        elif role == "webhook":  # the vendor's signed callbacks, through the gateway's ingestion
            recs = [m for m in store.list_messages("acme", limit=400) if m.provider_message_id]
            if recs:
                items = [{"id": m.provider_message_id, "status": rng.choice(["delivered", "failed", "accepted"])}
                         for m in rng.sample(recs, min(len(recs), 20))]
                body = json.dumps(items).encode()
                assert len(gw.ingest("acme", "main", {"x-echo-signature": sign(body)}, body)) == len(items)
        elif role == "poller":
            acme.sync_statuses(older_than=0, backoff=0, limit=50)
        elif role == "purge":
            store.purge("acme", before=utcnow() - timedelta(seconds=1), batch_size=rng.choice([5, 50]))
            time.sleep(0.05)
        elif role == "campaign":
            acme.campaigns.create(f"c{seed}-{n}", text="x",
                                  audience=[f"+234807{seed:02d}{n:03d}{i:02d}" for i in range(40)],
                                  batch_size=10).run()
        elif role == "checks":
            mids = [m.message_id for m in store.list_messages("acme", limit=200)]
            if mids:
                store.note_checks("acme", rng.sample(mids, min(10, len(mids))), at=utcnow(), source="check")
'''


@pytest.fixture
def vendor() -> Iterator[str]:
    with LiveServer(create_emulator()) as server:
        yield server.url


def _config(path: Path, url: str) -> Path:
    cfg = path.parent / "config.json"
    cfg.write_text(json.dumps({"store": f"sqlite:///{path}", "tenants": {"acme": {
        "default_region": "NG", "sender": "ACME",
        "providers": {"main": {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}}}}}}))
    return cfg


def _env(pythonpath: Path = SRC) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), str(HERE)])}


def _start(tmp_path: Path, role: str, cfg: Path, seconds: float, seed: int,
           pythonpath: Path = SRC) -> subprocess.Popen[bytes]:
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(WORKER)
    return subprocess.Popen([sys.executable, str(script), role, str(cfg), str(seconds), str(seed)],
                            env=_env(pythonpath), stderr=subprocess.PIPE)


def _short(history: list[StatusEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.status.value, e.source, e.detail) for e in history]


def assert_chains_whole(path: Path) -> dict[tuple[str, str], list[tuple[str, str, str | None]]]:
    """Every chain whole, every event in one, and the store's histories (one by one and
    listed) exactly the table's events of each message in id order."""
    conn = sqlite3.connect(path)
    try:
        assert broken_links(conn) == []
        orphans = conn.execute("SELECT count(*) FROM message_events e WHERE NOT EXISTS "
                               "(SELECT 1 FROM messages m WHERE m.id = e.message_pk)").fetchone()[0]
        assert orphans == 0, f"{orphans} events of no message"
        expected = stored_histories(conn)
        (events,) = conn.execute("SELECT count(*) FROM message_events").fetchone()
    finally:
        conn.close()
    assert sum(map(len, expected.values())) == events
    with SQLiteStore(str(path)) as s:
        for tenant, mid in expected:
            assert _short(s.get_message(tenant, mid).history) == expected[(tenant, mid)], mid
        listed = {("acme", m.message_id): _short(m.history)
                  for m in s.in_flight("acme", list(Status), created_before=_FAR, limit=100_000)}
        assert listed == {k: v for k, v in expected.items() if k[0] == "acme"}
    return expected


def test_chain_holds_with_every_writer_in_its_own_process(tmp_path: Path, vendor: str) -> None:
    """Senders, report appliers (the store's and signed webhooks through ``gw.ingest``), the
    status poller, note_checks, a campaign runner and a purge, each a process of its own on one SQLite file for ~3 s: no error in any, and
    every chain whole afterwards (nothing lost, duplicated or outside a chain)."""
    path = tmp_path / "shared.db"
    cfg = _config(path, vendor)
    with SQLiteStore(str(path)) as s:
        s.migrate()
    roles = ["send", "send", "reports", "webhook", "poller", "checks", "campaign", "purge"]
    procs = [_start(tmp_path, role, cfg, 2.0, seed) for seed, role in enumerate(roles)]
    failures = []
    for role, p in zip(roles, procs, strict=True):
        _, err = p.communicate(timeout=90)
        if p.returncode != 0:
            failures.append((role, err.decode()[-2000:]))
    assert failures == []
    expected = assert_chains_whole(path)
    assert max(map(len, expected.values())) >= 3
    conn = sqlite3.connect(path)
    try:  # both the senders' and the campaign's messages were written (and some kept)
        assert conn.execute("SELECT count(campaign_id), count(*) - count(campaign_id) FROM messages").fetchone() \
            >= (1, 1)
        assert conn.execute("SELECT count(*) FROM message_events WHERE source = 'check'").fetchone()[0] > 0
    finally:
        conn.close()


#: The last commit whose SQLite schema is version 8 (the parent of the chain's commit).
V8_COMMIT = "bc50b0f^"


@pytest.fixture(scope="module")
def version_8_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """smsgate's source as of the commit before the chain (schema version 8), from git."""
    out = tmp_path_factory.mktemp("v8")
    try:
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", f"{V8_COMMIT}", "src"],
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:  # pragma: no cover - not a git checkout
        pytest.skip(f"the version-8 code is not at hand: {exc}")
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"



def test_version_8_processes_keep_writing_while_the_database_is_migrated(
        tmp_path: Path, vendor: str, version_8_code: Path) -> None:
    """A rolling upgrade: processes of the version-8 code send and apply reports; a process
    of the new code opens the file (``open_store`` migrates it to 9) and sends too while the
    old ones go on. The old code writes events without ``prev`` and messages without
    ``last_event``: every history must still be whole through the chain afterwards."""
    path = tmp_path / "rolling.db"
    cfg = _config(path, vendor)
    init = subprocess.run([sys.executable, "-c", "import sys, json; from smsgate.store import open_store; "
                           "s = open_store(json.load(open(sys.argv[1]))['store']); print(s.schema_version())",
                           str(cfg)], env=_env(version_8_code), capture_output=True, check=True)
    assert init.stdout.strip() == b"8"
    holds = [Path(f"{cfg}.hold.{seed}") for seed in range(3)]  # the old processes go on until the new
    for hold in holds:  # ones are done (on a loaded machine they ended before the migration)
        hold.touch()
    old = [_start(tmp_path, role, cfg, 6.0, seed, version_8_code)
           for seed, role in enumerate(["send", "reports", "checks"])]
    # the new code upgrades the file once every old process has it open (on a loaded machine
    # one could start after the upgrade, and refuse the newer schema, as it must), then writes
    deadline = time.monotonic() + 60
    while not all(Path(f"{cfg}.open.{seed}").exists() for seed in range(3)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    new = [_start(tmp_path, role, cfg, 1.5, seed) for seed, role in enumerate(["send", "reports"], start=10)]
    failures = []
    for p in new + old:
        _, err = p.communicate(timeout=90)
        if p is new[-1]:
            for hold in holds:  # the new ones are done: the old ones stop once their time is up
                hold.unlink()
        if p.returncode != 0:
            failures.append(err.decode()[-2000:])
    assert failures == []
    with SQLiteStore(str(path)) as s:
        assert s.schema_version() == SQLiteStore.SCHEMA_VERSION  # migrated from 8 to the newest
    late = subprocess.run([sys.executable, "-c", "import sys, json; from smsgate.store import open_store; "
                           "open_store(json.load(open(sys.argv[1]))['store'])", str(cfg)],
                          env=_env(version_8_code), capture_output=True, text=True)
    assert late.returncode != 0 and "newer than this smsgate supports" in late.stderr  # started late: refused
    conn = sqlite3.connect(path)
    try:  # the old code wrote after the migration
        (after,) = conn.execute("SELECT applied_at FROM schema_version WHERE version = 9").fetchone()
        assert conn.execute("SELECT count(*) FROM messages WHERE created_at > ? AND to_phone LIKE '+234800%'",
                            (after,)).fetchone()[0] > 0
    finally:
        conn.close()
    assert_chains_whole(path)


#: A writer SIGKILLed while it holds the write lock: it applies a batch of reports inside a
#: transaction of the store's own, says so on stdout, and waits to be killed.
KILLED_IN_TX = r'''
import sys, time
from smsgate.models import DeliveryReport, Status
from smsgate.store.sqlite import SQLiteStore
s = SQLiteStore(sys.argv[1])
pmids = sys.argv[2:]
with s._tx() as conn:
    s._apply_reports(conn, "acme", [DeliveryReport(provider="main", provider_message_id=p, status=Status.DELIVERED,
                                                   raw_status="killed") for p in pmids])
    print("in", flush=True)
    time.sleep(60)
'''


def test_writers_killed_mid_transaction_leave_whole_chains(tmp_path: Path, vendor: str) -> None:
    """A process SIGKILLed inside its write transaction (events written, not committed), and
    senders and report appliers SIGKILLed at random moments, three times over: the file keeps
    every chain whole, the killed transaction left nothing, and writing goes on after."""
    path = tmp_path / "killed.db"
    cfg = _config(path, vendor)
    with SQLiteStore(str(path)) as s:
        s.migrate()
    first = _start(tmp_path, "send", cfg, 1.0, 1)
    assert first.wait(timeout=60) == 0
    with SQLiteStore(str(path)) as s:
        before = {m.message_id: _short(m.history) for m in s.list_messages("acme", limit=1000)}
        pmids = [m.provider_message_id for m in s.list_messages("acme", limit=50) if m.provider_message_id]
    child = subprocess.Popen([sys.executable, "-c", KILLED_IN_TX, str(path), *pmids], env=_env(),
                             stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"in\n"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    with SQLiteStore(str(path), timeout=5) as s:  # the lock went with the process; nothing of its batch stayed
        assert {m.message_id: _short(m.history) for m in s.list_messages("acme", limit=1000)} == before
    rng = random.Random(4)
    for round_ in range(3):
        procs = [_start(tmp_path, role, cfg, 5.0, 20 + round_ * 4 + k)
                 for k, role in enumerate(["send", "reports", "checks"])]
        time.sleep(rng.uniform(0.8, 1.6))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(timeout=30)
        assert_chains_whole(path)
    last = _start(tmp_path, "reports", cfg, 0.5, 99)
    assert last.wait(timeout=60) == 0
    assert_chains_whole(path)


def test_a_history_of_hundreds_of_events_reads_whole(tmp_path: Path) -> None:
    """One message with 1,500 events (checks, updates and reports interleaved with other
    messages'): its history reads whole and in order one by one and listed (the chain is
    followed in SQL, no recursion limit of Python's or SQLite's), and a purge deletes all of it."""
    path = tmp_path / "long.db"
    with SQLiteStore(str(path)) as s:
        s.migrate()
        s.write_log("acme", LogWrite(inserts=[
            NewMessage(tenant="acme", message_id=mid, to="+2348012345678", status=Status.SUBMITTED,
                       created_at=at(0), provider="main", provider_message_id=f"p-{mid}") for mid in ("long", "other")]))
        for n in range(1499):
            if n % 3 == 0:
                s.note_checks("acme", ["long", "other"], at=at(n), source="check", detail=str(n))
            elif n % 3 == 1:
                s.note_checks("acme", ["other", "long"], at=at(n), source="check", detail=str(n))
            else:
                s.note_checks("acme", ["long"], at=at(n), source="poll", detail=str(n))
        s.apply_reports("acme", [DeliveryReport(provider="main", provider_message_id="p-long",
                                                status=Status.DELIVERED, raw_status="DELIVRD")])
        history = s.get_message("acme", "long").history
        assert len(history) == 1501
        assert [e.detail for e in history[1:-1]] == [str(n) for n in range(1499)]
        assert history[-1].status is Status.DELIVERED
        (listed,) = [m for m in s.in_flight("acme", list(Status), created_before=_FAR) if m.message_id == "long"]
        assert listed.history == history
        done = s.purge("acme", before=_FAR)
        assert (done.messages, done.events) == (1, 1501)
    assert_chains_whole(path)


# ------------------------------------------------------------------ contact-list imports
_ROWS = [
    "+2348031234561",          # 1
    "0803 123 4562",           # 2
    "not a number",            # 3 invalid
    "234-803-123-4561",        # 4 repeats 1
    "(0803) 123-4563",         # 5
    "",                        # 6 invalid
    "+234 (0) 803 123 4562",   # 7 repeats 2
    "08031234564",             # 8
    "+2348031234563",          # 9 repeats 5
]


def _lists_config(tmp_path: Path) -> dict[str, object]:
    return {"store": f"sqlite:///{tmp_path / 'lists.db'}",
            "tenants": {"acme": {"default_region": "NG", "providers": {"mem": {"plugin": "memory"}}}}}


def test_import_duplicates_in_every_format_across_batches_with_invalid_rows_between(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Numbers written in different formats that normalise the same, spread over the store's
    batches (2 contacts each) with invalid rows between: each repeat is named with the row
    that gave it first, counts add up, and each number is stored once, from its first row."""
    monkeypatch.setattr("smsgate.contacts.CHUNK", 2)
    with Gateway(_lists_config(tmp_path)) as gw:
        lists = gw.tenant("acme").contact_lists
        report = lists.create("VIP", [{"phone": p, "name": f"row{i}"} for i, p in enumerate(_ROWS, 1)],
                              list_id="vip")
        assert [(d.location, d.detail) for d in report.duplicates] == [
            ("contact 4", "+2348031234561 already at contact 1"),
            ("contact 7", "+2348031234562 already at contact 2"),
            ("contact 9", "+2348031234563 already at contact 5"),
        ]
        assert [e.location for e in report.errors] == ["contact 3", "contact 6"]
        assert (report.rows, report.added, report.updated) == (9, 4, 0)
        assert report.rows == report.added + report.updated + len(report.duplicates) + len(report.errors)
        assert [(c.phone, c.name) for c in lists.contacts("vip")] == [
            ("+2348031234561", "row1"), ("+2348031234562", "row2"), ("+2348031234563", "row5"),
            ("+2348031234564", "row8")]


def test_an_import_the_store_fails_partway_leaves_no_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``create`` whose second store batch the database refuses (a real SQLite error, raised by
    a trigger on the contacts table) leaves no list and no contact; ``add`` to an existing
    list keeps the batches stored before (as documented) and adding the rows again reports
    them ``updated``, the repeats again as duplicates."""
    monkeypatch.setattr("smsgate.contacts.CHUNK", 2)
    path = tmp_path / "lists.db"
    with Gateway(_lists_config(tmp_path)) as gw:
        lists = gw.open().tenant("acme").contact_lists  # the store made (a tenant handle opens none)
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("CREATE TRIGGER refuse AFTER INSERT ON contacts WHEN NEW.phone = '+2348031234564' "
                         "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        conn.close()
        with pytest.raises((SmsgateError, sqlite3.Error)):
            lists.create("VIP", list(_ROWS), list_id="vip")
        assert lists.list() == []
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT count(*) FROM contacts").fetchone() == (0,)
        conn.close()
        lists.create("VIP", [], list_id="vip")
        with pytest.raises((SmsgateError, sqlite3.Error)):
            lists.add("vip", list(_ROWS))
        assert [c.phone for c in lists.contacts("vip")] == ["+2348031234561", "+2348031234562"]
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("DROP TRIGGER refuse")
        conn.close()
        again = lists.add("vip", list(_ROWS))
        assert (again.rows, again.added, again.updated, len(again.duplicates), len(again.errors)) == (9, 2, 2, 3, 2)
        assert again.contact_list.size == 4


# ------------------------------------------------------------------ renew: a tenant removed under a run
FERNET_KEY = "p5gWkbqH0f8L1b0yO1jB2k5n2y0dJ3aZQGZc8sXq1Yk="

#: A campaign runner of stored tenant ``acme`` in its own process (the gateway's default
#: ``tenant_refresh``): STORE_URL CAMPAIGN_ID KEY sync|async. Exits 3 on UnknownTenant.
STORED_RUNNER = r'''
import sys
from smsgate import Gateway
from smsgate.errors import UnknownTenant
from smsgate.plugins import PluginManager
from smsgate.store import open_store
from smsgate.tenants import StoredTenants
from reference_provider import EchoPlugin
pm = PluginManager(load_entry_points=False)
pm.register(EchoPlugin())
store = open_store(sys.argv[1])
tenants = StoredTenants(store, keys=sys.argv[3], plugins=pm)
if sys.argv[4] == "async":
    import asyncio
    from smsgate import AsyncGateway

    async def go():
        async with AsyncGateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm,
                                tenants=tenants) as agw:
            await (await agw.tenant("acme").campaigns.get(sys.argv[2])).run()

    try:
        asyncio.run(go())
    except UnknownTenant:
        sys.exit(3)
    sys.exit(0)
with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm, tenants=tenants) as gw:
    try:
        gw.tenant("acme").campaigns.get(sys.argv[2]).run()
    except UnknownTenant:
        sys.exit(3)
'''


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_tenant_removed_under_a_run_in_another_process_stops_it_within_a_chunk(
        tmp_path: Path, pg_url: str, mode: str) -> None:  # noqa: F811  (the fixture)
    """A campaign of a stored tenant runs in its own process (chunks of two recipients, one
    request each) on PostgreSQL; this process rotates the tenant's credential, then removes
    the tenant, while it runs. After ``rotate()`` returned at most one more request carries
    the old credential; after ``remove()`` returned the vendor gets at most one more chunk's
    request, the runner stops (the removal cancelled the campaign, or UnknownTenant), and no recipient is left claimed
    (``sending``). Before, the runner asked the source only every ``tenant_refresh`` second:
    ~180 more chunks went out for the removed tenant."""

    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    numbers = [f"+2348061{i:06d}" for i in range(400)]
    with LiveServer(create_emulator()) as server, open_store(pg_url) as store:
        ctl = EmulatorControl(server.url)
        tenants = StoredTenants(store, keys=FERNET_KEY, plugins=pm)
        tenants.add("acme", {"default_region": "NG", "sender": "ACME", "providers": {
            "main": {"plugin": "echo", "base_url": server.url, "credentials": {"api_key": API_KEY}}}})
        with Gateway({"store": "memory://", "tenants": {}}, store=store, plugins=pm, tenants=tenants) as gw:
            cid = gw.tenant("acme").campaigns.create("spring", text="Sale", audience=numbers, batch_size=2,
                                                     concurrency=1).campaign_id
        runner = subprocess.Popen([sys.executable, "-c", STORED_RUNNER, pg_url, cid, FERNET_KEY, mode], env=_env(),
                                  stderr=subprocess.PIPE)
        def wait_for(n: int) -> None:
            deadline = time.monotonic() + 30
            while len(ctl.requests("/messages/bulk", "POST")) < n and time.monotonic() < deadline:
                time.sleep(0.01)

        wait_for(5)
        tenants.rotate("acme", "main", {"api_key": "rotated-key-the-vendor-refuses"})
        rotated_at = len(ctl.requests("/messages/bulk", "POST"))
        wait_for(rotated_at + 4)
        keys = [r.headers.get("x-api-key") for r in ctl.requests("/messages/bulk", "POST")]
        late = keys[rotated_at:].count(API_KEY)
        assert late <= 1, f"{late} requests with the old credential after the rotation returned"
        assert tenants.remove("acme")
        sent_when_removed = len(ctl.requests("/messages/bulk", "POST"))
        _, err = runner.communicate(timeout=60)
        # the removal cancelled the campaign: the runner stops on that, or on UnknownTenant (3)
        assert runner.returncode in (0, 3), err.decode()[-2000:]
        after = len(ctl.requests("/messages/bulk", "POST")) - sent_when_removed
        assert after <= 1, f"{after} requests (chunks) sent for tenant acme after it was removed"
        counts = Counter(r.state.value for r in store.recipients("acme", cid, limit=1000))
        assert counts["sending"] == 0, counts
        assert counts["pending"] + counts["skipped"] > 0, counts
        assert store.get_campaign("acme", cid).status is CampaignStatus.CANCELLED
