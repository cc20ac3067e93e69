"""PostgreSQL store specifics (the shared contract runs in test_store.py, kind "postgres").

Needs the PostgreSQL server (DSN from ``SMSGATE_TEST_PG_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``). Every store lives in its own
schema, dropped afterwards. Without a server (or without psycopg) the tests are
skipped, except under CI (``CI`` set), where they fail: CI starts PostgreSQL, and
a silent skip would hide a broken store.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

import bounded
from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate.errors import ConfigError, NotFound, StoreError
from smsgate.models import CampaignStatus, Contact, InboundMessage, OptOut, Status, StatusEvent
from smsgate.store.base import ContactListRow, LogWrite, RecipientRow, RecipientState, RecipientUpdate, Store
from store_contract import make_campaign, make_record, report, update

try:
    import psycopg

    from smsgate.store.postgres import MIGRATIONS, PostgresStore
except ImportError as exc:  # psycopg not installed: reported by require_postgres()
    _IMPORT_ERROR: str | None = f"psycopg is not installed ({exc}); pip install 'smsgate[postgres]'"
else:
    _IMPORT_ERROR = None

DSN = os.environ.get("SMSGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

pytestmark = pytest.mark.postgres

_unavailable: list[str | None] = []  # cached result of the first probe


def _probe() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    if not _unavailable:
        reason = _IMPORT_ERROR
        if reason is None:
            try:
                psycopg.connect(DSN, connect_timeout=3).close()
            except psycopg.Error as exc:
                reason = f"PostgreSQL server unreachable at {DSN}: {exc}".strip()
        _unavailable.append(reason)
    return _unavailable[0]


def require_postgres() -> None:
    """Skip the current test without PostgreSQL, or fail it when running under CI."""
    reason = _probe()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: PostgreSQL must be available)", pytrace=False)
        pytest.skip(reason)


def unique_schema() -> str:
    return f"smsgate_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def drop_schema(name: str) -> None:
    bounded.drop_schema(DSN, name)


def scratch_store() -> Store:
    """An unmigrated store in a new, empty schema that is dropped when the store closes.

    (The ``postgres`` kind of the shared store contract.)
    """
    require_postgres()

    class ScratchPostgresStore(PostgresStore):
        _dropped = False

        def close(self) -> None:
            super().close()
            if not self._dropped and self.schema is not None:
                self._dropped = True
                drop_schema(self.schema)

    return ScratchPostgresStore(DSN, schema=unique_schema())


@pytest.fixture
def schema() -> Iterator[str]:
    require_postgres()
    name = unique_schema()
    yield name
    drop_schema(name)


@pytest.fixture
def opened(schema: str) -> Iterator[Callable[..., PostgresStore]]:
    """Open stores on the test's schema (closed afterwards)."""
    stores: list[PostgresStore] = []

    def factory(**kw: Any) -> PostgresStore:
        s = PostgresStore(DSN, **{"schema": schema, **kw})
        stores.append(s)
        return s

    yield factory
    for s in stores:
        s.close()


@pytest.fixture
def store(opened: Callable[..., PostgresStore]) -> PostgresStore:
    s = opened()
    s.migrate()
    return s


def _run_threads(n: int, target: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n, timeout=60)  # a party that never came: an error, not a hang

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


# ------------------------------------------------------------ concurrency
def test_concurrent_claims_from_separate_stores(store: PostgresStore, opened: Callable[..., PostgresStore]) -> None:
    """8 threads, each with its own store (connection): no recipient is claimed twice."""
    n = 2000
    store.create_campaign(make_campaign("c1"))
    store.add_recipients(
        "a", "c1", [RecipientRow(seq=i, phone=f"+23480{i:08d}", state=RecipientState.PENDING) for i in range(n)]
    )
    stores = [opened(pool_size=1) for _ in range(8)]
    claimed: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    counter = itertools.count()

    def work(i: int) -> None:
        while rows := stores[i].claim_recipients("a", "c1", 13, lambda: f"m{next(counter)}"):
            assert all(r.state is RecipientState.SENDING for r in rows)
            assert [r.id for r in rows] == sorted(r.id or 0 for r in rows)
            with lock:
                claimed.extend((r.seq, r.message_id) for r in rows)

    assert _run_threads(8, work) == []
    assert sorted(seq for seq, _ in claimed) == list(range(n))
    assert len({mid for _, mid in claimed}) == n  # one new message id per claimed recipient
    stored = store.recipients("a", "c1", limit=n)
    assert {(r.seq, r.message_id) for r in stored} == set(claimed)
    assert store.recipient_counts("a", "c1") == {(RecipientState.SENDING, None): n}


def test_concurrent_migrate(opened: Callable[..., PostgresStore]) -> None:
    stores = [opened(pool_size=1) for _ in range(6)]
    assert stores[0].schema_version() == 0  # the schema does not even exist yet
    assert _run_threads(6, lambda i: stores[i].migrate()) == []
    assert all(s.schema_version() == Store.SCHEMA_VERSION for s in stores)
    stores[0].insert_messages([make_record("m1")])
    assert stores[5].get_message("a", "m1").message_id == "m1"
    with psycopg.connect(DSN) as conn:
        rows = conn.execute(
            psycopg.sql.SQL("SELECT version FROM {}.schema_version ORDER BY version").format(
                psycopg.sql.Identifier(stores[0].schema or "")
            )
        ).fetchall()
    assert [r[0] for r in rows] == list(range(1, Store.SCHEMA_VERSION + 1))


def test_concurrent_reports_from_separate_stores(store: PostgresStore, opened: Callable[..., PostgresStore]) -> None:
    """Writers on separate connections, overlapping rows in different orders: no lost or
    duplicated history (a row rewritten meanwhile is applied again) and no deadlock (rows
    are written in id order)."""
    n = 300
    providers = ("echo", "other")  # a batch spans providers: still locked in one id order
    store.insert_messages(
        [make_record(f"m{i}", status=Status.SUBMITTED, provider=providers[i % 2], provider_message_id=f"p{i}")
         for i in range(n)]
    )
    stores = [opened(pool_size=1) for _ in range(4)]

    def work(i: int) -> None:
        order = list(range(n))
        random.Random(i).shuffle(order)
        for start in range(0, n, 50):
            batch = order[start : start + 50]
            matched = stores[i].apply_reports(
                "a", [report(f"p{j}", Status.SENT, 1, "SENT", provider=providers[j % 2]) for j in batch]
            )
            assert matched == [f"m{j}" for j in batch]
            stores[i].update_messages("a", [update(f"m{j}", Status.DELIVERED, 2, "DELIVRD") for j in batch])

    assert _run_threads(4, work) == []
    for i in (0, 7, n - 1):
        got = store.get_message("a", f"m{i}")
        assert got.status is Status.DELIVERED
        assert [(e.status, e.raw_status) for e in got.history] in (
            [(Status.SENT, "SENT"), (Status.DELIVERED, "DELIVRD")],
            [(Status.DELIVERED, "DELIVRD")],  # delivered before any "sent" report got there
        )
    with psycopg.connect(DSN) as conn:
        conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(store.schema or "")))
        row = conn.execute(
            "SELECT max(c) FROM (SELECT count(*) AS c FROM message_events GROUP BY message_pk, status) s"
        ).fetchone()
    assert row is not None and row[0] == 1


def test_reports_on_rows_rewritten_meanwhile_apply_to_the_newest_version(store: PostgresStore) -> None:
    """Reports are applied without locking rows ahead: a row another transaction
    rewrites between the statement's snapshot and its update is applied again on a new
    snapshot, with the rule decided on the newest version, and logged once."""
    store.insert_messages([
        make_record(f"m{i}", status=Status.SUBMITTED, provider="echo", provider_message_id=f"p{i}") for i in range(4)
    ])
    writer = psycopg.connect(DSN)  # another writer's transaction, held open
    try:
        writer.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(store.schema or "")))
        writer.execute("UPDATE messages SET status = 'sent', raw_status = 'SENT' WHERE message_id = 'm1'")
        writer.execute("UPDATE messages SET status = 'failed', raw_status = 'REJECTD' WHERE message_id = 'm2'")
        writer_pid = writer.info.backend_pid
        result: list[list[str | None]] = []
        batch = [report("p0", Status.DELIVERED, 5, "DELIVRD"), report("p1", Status.DELIVERED, 5, "DELIVRD"),
                 report("p2", Status.DELIVERED, 5, "DELIVRD"), report("nope", Status.DELIVERED, 5),
                 report("p3", Status.SUBMITTED, 5)]  # a repeat: matched, nothing to write
        applier = threading.Thread(target=lambda: result.append(store.apply_reports("a", batch)))
        applier.start()
        with psycopg.connect(DSN, autocommit=True) as admin:
            for _ in range(600):  # until the reports wait for the writer's rows
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (writer_pid,)
                ).fetchone()
                if row is not None and row[0] > 0:
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("apply_reports never waited for the writer")
        writer.commit()
        applier.join()
    finally:
        writer.close()
    assert result == [["m0", "m1", "m2", None, "m3"]]
    m1 = store.get_message("a", "m1")  # sent (by the writer), then delivered by the report
    assert (m1.status, m1.raw_status) == (Status.DELIVERED, "DELIVRD") and m1.delivered_at is not None
    assert [(e.status, e.source) for e in m1.history if e.source == "report"] == [(Status.DELIVERED, "report")]
    m2 = store.get_message("a", "m2")  # failed meanwhile: final, the report changes nothing
    assert (m2.status, m2.raw_status, m2.delivered_at) == (Status.FAILED, "REJECTD", None)
    assert [e for e in m2.history if e.source == "report"] == []
    assert store.get_message("a", "m0").status is Status.DELIVERED
    m3 = store.get_message("a", "m3")
    assert m3.status is Status.SUBMITTED and [e for e in m3.history if e.source == "report"] == []


# -------------------------------------------------------------- isolation
def test_schema_isolation(opened: Callable[..., PostgresStore]) -> None:
    other_schema = unique_schema()
    try:
        with PostgresStore(DSN, schema=other_schema) as other:
            mine = opened()
            mine.migrate()
            other.migrate()
            mine.insert_messages([make_record("m1")])
            mine.add_optouts("a", [OptOut(phone="+2348000000001")])
            with pytest.raises(NotFound):
                other.get_message("a", "m1")
            assert other.count_optouts("a") == 0
            other.insert_messages([make_record("m1", status=Status.FAILED)])  # same ids, other schema
            assert mine.get_message("a", "m1").status is Status.QUEUED
    finally:
        drop_schema(other_schema)
    assert mine.get_message("a", "m1").status is Status.QUEUED


def test_persists_across_reopen(schema: str) -> None:
    with PostgresStore(DSN, schema=schema) as s:
        assert s.schema_version() == 0
        s.migrate()
        s.insert_messages([make_record("m1", provider="echo", provider_message_id="p1", cost=Decimal("0.50"))])
        s.apply_reports("a", [report("p1", Status.DELIVERED, 1, "DELIVRD")])
        s.claim_idempotency_key("a", "k1", "m1")
        s.create_campaign(make_campaign("c1", spec={"text": "Hi {name}"}))
    with PostgresStore(DSN, schema=schema) as s:
        assert s.schema_version() == Store.SCHEMA_VERSION
        s.migrate()
        got = s.get_message("a", "m1")
        assert got.status is Status.DELIVERED and str(got.cost) == "0.50" and len(got.history) == 1
        assert s.claim_idempotency_key("a", "k1", "m2") == "m1"
        assert s.get_campaign("a", "c1").spec == {"text": "Hi {name}"}


def test_schema_types_and_tenant_columns(store: PostgresStore) -> None:
    assert len(MIGRATIONS) >= Store.SCHEMA_VERSION
    with psycopg.connect(DSN) as conn:
        columns = {
            (table, column): dtype
            for table, column, dtype in conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s",
                (store.schema,),
            )
        }
        indexes = {
            name: definition
            for name, definition in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (store.schema,)
            )
        }
        options = conn.execute(
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'messages'",
            (store.schema,),
        ).fetchone()
    tables = {table for table, _ in columns}
    assert {"schema_version", "messages", "message_events", "optouts", "idempotency_keys", "campaigns",
            "campaign_recipients", "contact_lists", "contacts"} <= tables
    # every table of a tenant's data has its tenant column; the registry of stored tenants is
    # keyed by the tenant's name itself (and a one-row change counter)
    for table in tables - {"schema_version", "stored_tenants", "tenant_changes"}:
        assert columns[(table, "tenant")] == "text", table
    assert columns[("stored_tenants", "name")] == "text"
    assert columns[("messages", "id")] == "bigint"
    assert columns[("messages", "cost")] == "numeric"
    assert columns[("messages", "created_at")] == "timestamp with time zone"
    assert columns[("campaigns", "spec")] == "jsonb"
    assert columns[("campaign_recipients", "fields")] == "jsonb"
    assert {"messages_provider_id", "messages_campaign", "messages_to", "messages_created",
            "campaign_recipients_state", "contacts_list_id"} <= set(indexes)
    # Delivery reports stay HOT updates: no index of messages holds a column they change,
    # and pages keep room for the new row versions.
    for name, definition in indexes.items():
        if " ON " in definition and ".messages " in definition:
            columns = definition.split("(", 1)[1]
            for changed in ("status", "updated_at", "submitted_at", "delivered_at", "cost", "segments", "error"):
                assert changed not in columns, name
    assert options is not None and "fillfactor=80" in (options[0] or [])


def test_upgrade_from_version_1(opened: Callable[..., PostgresStore]) -> None:
    old = opened()
    old.SCHEMA_VERSION = 1  # as released
    old.migrate()
    old.insert_messages([make_record("m1", provider="echo", provider_message_id="p1")])
    s = opened()
    s.migrate()
    assert s.schema_version() == Store.SCHEMA_VERSION
    assert s.apply_reports("a", [report("p1", Status.DELIVERED, 1, "DELIVRD")]) == ["m1"]


def test_upgrade_from_version_4_keeps_data_and_adds_orphans_and_inbound(opened: Callable[..., PostgresStore]) -> None:
    old = opened()
    old.SCHEMA_VERSION = 4  # as released
    old.migrate()
    old.insert_messages([make_record("m1", provider="echo", provider_message_id="p1")])
    with old._conn() as conn:  # an opt-out as version 4 stored it (no scope)
        conn.execute("INSERT INTO optouts (tenant, phone, reason, source, created_at) "
                     "VALUES ('a', '+2348000000001', NULL, 'api', now())")
    assert old.schema_version() == 4
    s = opened()
    s.migrate()
    assert s.schema_version() == Store.SCHEMA_VERSION
    assert s.apply_reports("a", [report("p1", Status.DELIVERED, 1, "DELIVRD"), report("p2", Status.SENT, 1)],
                           keep_orphans=True) == ["m1", None]
    assert [o.provider_message_id for o in s.orphan_reports("a")] == ["p2"]
    assert s.is_opted_out("a", "+2348000000001")
    (stored, new), = s.record_inbound("a", [InboundMessage(provider="c", vendor_id="v1", from_number="+1",
                                                            text="STOP")])
    assert new and s.list_inbound("a")[0].id == stored.id


def test_reports_racing_their_messages_write_are_never_lost(store: PostgresStore,
                                                              opened: Callable[..., PostgresStore]) -> None:
    """A report kept as an orphan and the log write giving its message that provider id,
    on separate connections at once: every report ends up applied, none stays orphaned."""
    n = 200
    writers, readers = opened(pool_size=1), opened(pool_size=1)
    go = threading.Barrier(2, timeout=60)  # a party that never came: an error, not a hang

    def work(i: int) -> None:
        go.wait()
        for j in range(n):
            if i == 0:
                writers.write_log("a", LogWrite(inserts=[make_record(f"m{j}", status=Status.SUBMITTED)],
                                                updates=[update(f"m{j}", Status.SUBMITTED, 1, provider="echo",
                                                                provider_message_id=f"p{j}")]))
            else:
                got = readers.apply_reports("a", [report(f"p{j}", Status.DELIVERED, 2, "DELIVRD")])
                if got == [None]:
                    readers.apply_reports("a", [report(f"p{j}", Status.DELIVERED, 2, "DELIVRD")], keep_orphans=True)

    assert _run_threads(2, work) == []
    assert store.orphan_reports("a") == []
    assert store.count_by_status("a").get(Status.DELIVERED) == n


def test_refuses_newer_schema(store: PostgresStore, opened: Callable[..., PostgresStore]) -> None:
    with psycopg.connect(DSN) as conn:
        conn.execute(
            psycopg.sql.SQL("INSERT INTO {}.schema_version (version) VALUES (999)").format(
                psycopg.sql.Identifier(store.schema or "")
            )
        )
    with pytest.raises(ConfigError, match="newer"):
        opened().migrate()


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        PostgresStore(DSN, pool_size=0)
    with pytest.raises(ConfigError):
        PostgresStore(DSN, schema="")


# ------------------------------------------------------------- round trips
def test_numeric_and_json_round_trip_exactly(store: PostgresStore) -> None:
    costs = ["0.000100", "12345678901234567890.123456789", "0", "1.50"]
    store.insert_messages([make_record(f"m{i}", cost=Decimal(c)) for i, c in enumerate(costs)])
    assert [str(store.get_message("a", f"m{i}").cost) for i in range(len(costs))] == costs
    spec = {"text": "Ẹ kú àárọ̀ {name} 👋", "n": [1, 2.5, None, True, {"deep": "x"}], "empty": {}}
    store.create_campaign(make_campaign("c1", spec=spec))
    assert store.get_campaign("a", "c1").spec == spec
    with pytest.raises(TypeError):
        store.create_campaign(make_campaign("c2", spec={"bad": object()}))
    fields = {"name": "Ọlá", "quote": "a\"b\\c", "tab": "x\ty"}
    store.add_recipients("a", "c1", [RecipientRow(seq=1, phone="+2348000000001", state=RecipientState.PENDING,
                                                  fields=fields)])
    with pytest.raises(TypeError):
        store.add_recipients("a", "c1", [RecipientRow(seq=2, phone="+2348000000002", state=RecipientState.PENDING,
                                                      fields={"bad": object()})])  # type: ignore[dict-item]
    assert [r.fields for r in store.recipients("a", "c1")] == [fields]  # the failed batch left nothing


def test_timestamps_come_back_in_utc(store: PostgresStore) -> None:
    naive = datetime(2026, 1, 1, 12, 0, 0, 123456)  # taken to be UTC
    rec = make_record("m1")
    rec.created_at = naive
    store.insert_messages([rec])
    got = store.get_message("a", "m1")
    assert got.created_at == naive.replace(tzinfo=timezone.utc) and got.created_at.tzinfo is timezone.utc


def test_failed_batch_rolls_back_and_connection_is_reused(opened: Callable[..., PostgresStore]) -> None:
    s = opened(pool_size=1)
    s.migrate()
    s.insert_messages([make_record("m1")])
    with pytest.raises(ValueError):
        s.insert_messages([make_record("m2", history=[StatusEvent(status=Status.QUEUED, at=datetime.now(timezone.utc))]),
                           make_record("m1")])
    assert [m.message_id for m in s.list_messages("a")] == ["m1"]
    assert s.update_messages("a", [update("m1", Status.SENT, 1)]) == [True]


def test_message_times_iterator_gives_its_connection_back(opened: Callable[..., PostgresStore]) -> None:
    s = opened(pool_size=1)
    s.migrate()
    s.insert_messages([make_record(f"m{i}", created=i) for i in range(12_000)])  # several cursor pages
    times = s.message_times("a")
    first = next(times)
    assert first.created_at.tzinfo is timezone.utc
    times.close()  # abandoned early: the transaction ends, the connection returns to the pool
    assert s.count_by_status("a")[Status.QUEUED] == 12_000
    assert sum(1 for _ in s.message_times("a")) == 12_000


def test_broken_connection_is_replaced(opened: Callable[..., PostgresStore]) -> None:
    s = opened(pool_size=1)
    s.migrate()
    with s._conn() as conn:  # the pooled connection's backend pid
        pid = conn.info.backend_pid
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))  # returns once it ended
    # ended while idle in the pool: replaced when taken, no statement fails (a connection ended
    # mid-statement is a StoreError: tests/test_faults.py)
    assert s.count_optouts("a") == 0
    with s._conn() as conn:
        assert conn.info.backend_pid != pid


def test_batch_plans_probe_keys_even_without_statistics(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after a bulk load (no statistics yet) batch lookups and updates probe an
    index per key: they never scan all of a tenant's rows per batch."""
    from smsgate.store import postgres
    from smsgate.store.postgres import (
        _APPLY_REPORTS,
        _CHECK_CLAIMS,
        _KNOWN_KEYS,
        _LOOKUP_BY_MESSAGE_ID,
        _MESSAGES_BY_ID,
        _RECOVER_OWNER,
        _report_columns,
        _write_sql,
    )

    monkeypatch.setattr(postgres, "ANALYZE_MIN_BATCH", 10**9)  # keep insert_messages from analyzing
    with store._conn() as conn:  # keep autovacuum from analyzing them during the test
        for table in ("messages", "campaign_recipients", "optouts"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    n = 5000
    store.insert_messages(
        [make_record(f"m{i}", provider="echo", provider_message_id=f"p{i}") for i in range(n)]
    )
    store.add_recipients(
        "a", "c1", [RecipientRow(seq=i, phone=f"+23480{i:08d}", state=RecipientState.PENDING) for i in range(n)]
    )
    store.add_optouts("a", [OptOut(phone=f"+23480{i:08d}") for i in range(0, n, 2)])
    keys = [f"p{i}" for i in range(1000, 2000)]
    now = datetime.now(timezone.utc)
    same = _report_columns("a", [report(k, Status.SENT, 1) for k in keys])  # one value per field
    varied = _report_columns("a", [report(k, Status.SENT, i % 7, f"r{i}", segments=i % 3 or None, error_code=str(i))
                                   for i, k in enumerate(keys)])  # arrays
    assert same["at"] is None and varied["at"] is not None and varied["segments"] is not None
    statements = [
        (_APPLY_REPORTS, same),
        (_APPLY_REPORTS, varied),
        (_LOOKUP_BY_MESSAGE_ID, {"keys": [f"m{i}" for i in range(1000)], "tenant": "a"}),
        (_write_sql((0, 1, 9)), (list(range(1, 1001)), ["a"] * 1000, ["sent"] * 1000, ["S"] * 1000,
                                [now] * 1000)),
        ("SELECT o.phone FROM unnest(%b::text[]) AS k(phone) CROSS JOIN LATERAL "
         "(SELECT phone FROM optouts WHERE tenant = %s AND phone = k.phone OFFSET 0) AS o",
         ([f"+23480{i:08d}" for i in range(1000)], "a")),
        # a campaign's run: the claim check, a recovery's takeover and the messages it reads
        (_CHECK_CLAIMS, (list(range(1, 28)), "a", 27)),
        (_RECOVER_OWNER, ("new", list(range(1, 251)), ["a"] * 250)),
        (_MESSAGES_BY_ID, ([f"m{i}" for i in range(250)], "a")),
        (_KNOWN_KEYS, ([f"+23480{i:08d}" for i in range(1000)], "a", "c1")),  # loading the next chunk
        # one message by its provider id (the key's hash index, tenant and provider on the row)
        (f"SELECT id FROM messages WHERE {store._q(store._PROVIDER_KEY)} ORDER BY id DESC LIMIT 1",
         ("a", "echo", "p1500")),
    ]
    with store._conn() as conn:
        assert conn.execute(
            "SELECT reltuples < 0 FROM pg_class WHERE oid = 'messages'::regclass"
        ).fetchone() == (True,)  # really never analyzed
        for query, params in statements:
            plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, params))
            assert "Seq Scan" not in plan and "Hash" not in plan and "BitmapAnd" not in plan, plan
            # a bitmap of one key's entries in the key's hash index is a probe per key too
            # (what the planner makes of it without statistics); one of a tenant's range is not
            bitmaps = [line for line in plan.splitlines() if "Bitmap Index Scan" in line]
            assert all("Bitmap Index Scan on messages_provider_id" in line for line in bitmaps), plan
            assert "Join Filter" not in plan, plan
        # the purge's check of report parts against messages (_purge._dangling_parts)
        plan = "\n".join(row[0] for row in conn.execute(
            "EXPLAIN SELECT 1 FROM report_parts WHERE tenant = %s AND (provider, provider_message_id) IN "
            "(VALUES (%s, %s), (%s, %s)) AND NOT EXISTS (SELECT 1 FROM messages m WHERE "
            f"{store._PROVIDER_KEY_OF.format(row='report_parts')})", ("a", "echo", "p1", "echo", "p2")))
        assert "messages_provider_id" in plan and "messages_created" not in plan and "BitmapAnd" not in plan, plan
    ids = [r.id or 0 for r in store.recipients("a", "c1", limit=1000)]
    store.update_recipients("a", "c1", [RecipientUpdate(i, RecipientState.SENT) for i in ids])
    assert store.recipient_counts("a", "c1")[(RecipientState.SENT, None)] == 1000
    assert store.apply_reports("a", [report(k, Status.SENT, 1) for k in keys]) == [f"m{k[1:]}" for k in keys]


def test_plans_made_on_a_young_table_still_probe_keys(opened: Callable[..., PostgresStore],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Statements first run while ``messages`` was nearly empty still probe one index
    entry per key once it has grown: the session keeps no generic plan made for the
    young table (one filtered the tenant's rows through ``messages_created`` per key:
    1,000 reports on 20,000 messages took 4 s instead of 50 ms)."""
    from smsgate.store import postgres

    monkeypatch.setattr(postgres, "ANALYZE_MIN_BATCH", 10**9)  # keep insert_messages from analyzing
    s = opened(pool_size=1)  # one connection, the one whose statements psycopg prepares
    s.migrate()
    with s._conn() as conn:
        conn.execute("ALTER TABLE messages SET (autovacuum_enabled = off)")
    for b in range(12):  # past psycopg's prepare threshold and PostgreSQL's first five custom plans
        keys = range(20 * b, 20 * b + 20)  # batches as a campaign's writes and a webhook's reports come
        s.insert_messages([make_record(f"w{i}", provider="echo", provider_message_id=f"wp{i}") for i in keys])
        s.apply_reports("a", [report(f"wp{i}", Status.SENT, 1) for i in keys])
        s.update_messages("a", [update(f"w{i}", Status.DELIVERED, 2) for i in keys])
    n = 20_000
    s.insert_messages([make_record(f"m{i}", provider="echo", provider_message_id=f"p{i}") for i in range(n)])

    def index_reads() -> int:
        with s._conn() as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")  # this backend's counters, now
        with s._conn() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT sum(idx_tup_read) FROM pg_stat_user_indexes "
                               "WHERE relname = 'messages' AND schemaname = current_schema()").fetchone()
        assert row is not None
        return int(row[0])

    before = index_reads()
    assert s.apply_reports("a", [report(f"p{i}", Status.SENT, 1) for i in range(1000)]) == [
        f"m{i}" for i in range(1000)]
    assert s.update_messages("a", [update(f"m{i}", Status.DELIVERED, 2) for i in range(100)]) == [True] * 100
    read = index_reads() - before
    with s._conn() as conn:
        prepared = [row[0] for row in conn.execute("SELECT statement FROM pg_prepared_statements")]
    assert any("unnest" in p for p in prepared), "nothing was prepared: this test proves nothing"
    assert read <= 3 * 1100, f"{read:,} index entries of messages read for 1,100 keys"


def test_bulk_inserts_analyze_messages(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that is large, or large for the table, is followed by ANALYZE messages
    (statistics for the planner right away, not when autovacuum gets to it)."""
    from smsgate.store import postgres

    monkeypatch.setattr(postgres, "ANALYZE_MIN_BATCH", 10)
    monkeypatch.setattr(postgres, "ANALYZE_ROWS", 1000)
    with store._conn() as conn:
        conn.execute("ALTER TABLE messages SET (autovacuum_enabled = off)")

    def estimate() -> float:
        with store._conn() as conn:
            row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass").fetchone()
        assert row is not None
        return float(row[0])

    batch = iter(range(10**6))
    store.insert_messages([make_record(f"m{next(batch)}") for _ in range(9)])  # below the minimum batch
    assert estimate() < 0  # never analyzed
    store.insert_messages([make_record(f"m{next(batch)}") for _ in range(100)])  # the table had no statistics
    assert estimate() == 109
    store.insert_messages([make_record(f"m{next(batch)}") for _ in range(21)])  # +19%: not worth it
    assert estimate() == 109
    store.insert_messages([make_record(f"m{next(batch)}") for _ in range(30)])  # +27% of the estimate
    assert estimate() == 160
    store.insert_messages([make_record(f"m{next(batch)}") for _ in range(1000)])  # large in itself
    assert estimate() == 1160


def test_status_rule_in_sql_matches_python(store: PostgresStore) -> None:
    """``_rules.accepts_status_sql`` (the rule PostgreSQL applies to reports) against
    ``accepts_status``, for every pair of statuses and raw statuses."""
    from smsgate.store._rules import accepts_status, accepts_status_sql

    cases = [(cur, cur_raw, new, new_raw) for cur in Status for new in Status
             for cur_raw in (None, "A") for new_raw in (None, "A", "B")]
    expression = accepts_status_sql("c.cur", "c.cur_raw", "c.new", "c.new_raw")
    with store._conn() as conn:
        got = conn.execute(
            f"SELECT {expression} FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
            "WITH ORDINALITY AS c(cur, cur_raw, new, new_raw, n) ORDER BY c.n",
            ([c[0].value for c in cases], [c[1] for c in cases], [c[2].value for c in cases], [c[3] for c in cases]),
        ).fetchall()
    assert [row[0] for row in got] == [accepts_status(*c) for c in cases]


# ----------------------------------------------------------- contact lists
# (The behaviour is in the shared contract; these are PostgreSQL specifics.)
def test_concurrent_contact_writers(store: PostgresStore, opened: Callable[..., PostgresStore]) -> None:
    """Writers on separate connections adding and removing overlapping phones in
    different orders: no deadlock, each phone is new (and removed) exactly once."""
    created = datetime.now(timezone.utc)
    store.create_contact_list(ContactListRow(tenant="a", list_id="l1", name="All", created_at=created))
    doomed = [f"+23481{j:08d}" for j in range(300)]
    store.add_contacts("a", "l1", [Contact(phone=p) for p in doomed])
    stores = [opened(pool_size=1) for _ in range(4)]
    added = [0] * 4
    removed = [0] * 4

    def work(i: int) -> None:
        rng = random.Random(i)
        phones = [f"+23480{j:08d}" for j in range(300)]
        gone = list(doomed)
        rng.shuffle(phones)
        rng.shuffle(gone)
        for start in range(0, 300, 50):
            batch = [Contact(phone=p, name=str(i)) for p in phones[start : start + 50]]
            added[i] += stores[i].add_contacts("a", "l1", batch)
            removed[i] += stores[i].remove_contacts("a", "l1", gone[start : start + 50])

    assert _run_threads(4, work) == []
    assert sum(added) == 300 and sum(removed) == 300
    contacts = store.list_contacts("a", "l1", limit=1000)
    assert sorted(c.phone for _, c in contacts) == [f"+23480{j:08d}" for j in range(300)]
    assert store.get_contact_list("a", "l1").size == 300


def test_delete_list_waits_for_a_contact_writer(store: PostgresStore) -> None:
    """A list deleted while contacts are being added to it leaves no contact behind."""
    created = datetime.now(timezone.utc)
    store.create_contact_list(ContactListRow(tenant="a", list_id="l1", name="All", created_at=created))
    writer = psycopg.connect(DSN)  # a transaction of add_contacts, held open
    try:
        writer.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(store.schema or "")))
        writer.execute("SELECT 1 FROM contact_lists WHERE tenant = 'a' AND list_id = 'l1' FOR NO KEY UPDATE")
        writer.execute("INSERT INTO contacts (tenant, list_id, phone) VALUES ('a', 'l1', '+2348000000001')")
        writer_pid = writer.info.backend_pid
        result: list[bool] = []
        deleter = threading.Thread(target=lambda: result.append(store.delete_contact_list("a", "l1")))
        deleter.start()
        with psycopg.connect(DSN, autocommit=True) as admin:
            for _ in range(600):  # until the delete waits for the writer's lock
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (writer_pid,)
                ).fetchone()
                if row is not None and row[0] > 0:
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("delete_contact_list never waited for the writer")
        writer.commit()
        deleter.join()
    finally:
        writer.close()
    assert result == [True]
    with psycopg.connect(DSN) as conn:
        row = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}.contacts").format(psycopg.sql.Identifier(store.schema or ""))
        ).fetchone()
    assert row == (0,)


def test_contact_lists_with_equal_times_newest_inserted_first(store: PostgresStore) -> None:
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for list_id in ("l1", "l2", "l3"):
        store.create_contact_list(ContactListRow(tenant="a", list_id=list_id, name=list_id, created_at=created))
    assert [r.list_id for r in store.list_contact_lists("a")] == ["l3", "l2", "l1"]


def test_update_recipients_in_one_batch_apply_in_order(store: PostgresStore) -> None:
    store.create_campaign(make_campaign("c1"))
    store.add_recipients("a", "c1", [RecipientRow(seq=1, phone="+2348000000001", state=RecipientState.PENDING)])
    (r,) = store.recipients("a", "c1")
    store.update_recipients("a", "c1", [
        RecipientUpdate(r.id or 0, RecipientState.FAILED, reason="E1", detail="first"),
        RecipientUpdate(r.id or 0, RecipientState.UNKNOWN, detail="second"),
    ])
    (got,) = store.recipients("a", "c1")
    assert (got.state, got.reason, got.detail) == (RecipientState.UNKNOWN, "E1", "second")


# -------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    from smsgate.testing import LiveServer

    server = LiveServer(create_emulator()).start()
    yield server.url
    server.stop()


def _gateway_config(url: str) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}
    return {"store": "memory://", "tenants": {
        "acme": {"default_region": "NG", "providers": {"one": prov}},
        "globex": {"default_region": "NG", "providers": {"one": prov}},
    }}


def _plugins() -> Any:
    from smsgate.plugins import PluginManager

    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def test_gateway_end_to_end(emulator_url: str, store: PostgresStore) -> None:
    from smsgate import Gateway
    from smsgate.testing import EmulatorControl

    EmulatorControl(emulator_url).reset()
    with Gateway(_gateway_config(emulator_url), plugins=_plugins(), store=store) as gw:
        acme = gw.tenant("acme")
        result = acme.send("0803 123 4567", "hello", idempotency_key="k1")
        assert result.status is Status.SUBMITTED
        record = acme.status(result.message_id)
        assert record.status is Status.DELIVERED
        assert [e.status for e in record.history] == [Status.QUEUED, Status.SUBMITTED, Status.DELIVERED]
        assert acme.send("0803 123 4567", "hello", idempotency_key="k1").message_id == result.message_id
        acme.optouts.add("08031234568")
        many = acme.send_many(["08031234561", "08031234562", "08031234568"], "bulk")
        assert [r.status for r in many] == [Status.SUBMITTED, Status.SUBMITTED, Status.REJECTED]
        camp = acme.campaigns.create("pg", text="Hi", audience=[f"0805{i:07d}" for i in range(40)])
        assert camp.run().sent == 40
        assert camp.progress().status is CampaignStatus.COMPLETED
    # The gateway does not close a store it was given; everything is in PostgreSQL.
    counts = store.count_by_status("acme")
    assert sum(counts.values()) == 1 + 3 + 40 and counts[Status.REJECTED] == 1
    assert store.list_campaigns("acme")[0].status is CampaignStatus.COMPLETED
    assert sum(store.count_by_status("globex").values()) == 0


def test_open_store_url(schema: str) -> None:
    from smsgate.store import open_store

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
    url = f"{DSN}{'&' if '?' in DSN else '?'}options=-csearch_path%3D{schema}"
    s = open_store(url)
    try:
        assert isinstance(s, PostgresStore) and s.schema_version() == Store.SCHEMA_VERSION
        s.insert_messages([make_record("m1")])
    finally:
        s.close()
    alias = open_store(url.replace("postgresql://", "postgres://", 1))
    try:
        assert isinstance(alias, PostgresStore)
        assert alias.get_message("a", "m1").message_id == "m1"  # the same tables
    finally:
        alias.close()


def test_open_store_url_schema_parameter(schema: str) -> None:
    """``?schema=`` is smsgate's (not libpq's): the store creates and uses that schema."""
    from smsgate.store import open_store

    s = open_store(f"{DSN}{'&' if '?' in DSN else '?'}schema={schema}")
    try:
        assert isinstance(s, PostgresStore) and s.schema == schema and "schema=" not in s.dsn
        s.insert_messages([make_record("m1")])
    finally:
        s.close()
    with psycopg.connect(DSN) as conn:
        row = conn.execute(
            psycopg.sql.SQL("SELECT message_id FROM {}.messages").format(psycopg.sql.Identifier(schema))
        ).fetchone()
    assert row == ("m1",)
    with pytest.raises(ConfigError, match="schema"):
        open_store(f"{DSN}?schema=")


def test_open_store_unreachable_server_is_a_config_error() -> None:
    from smsgate.store import open_store

    require_postgres()  # psycopg is needed to get that far
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1:1/nowhere") as info:
        open_store("postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "s3cret-pw" not in str(info.value)
    with pytest.raises(ConfigError, match="invalid PostgreSQL store URL"):
        open_store("postgresql://127.0.0.1/test?no_such_option=1")


def test_open_store_bad_connect_timeout_is_a_config_error() -> None:
    """A ``connect_timeout`` that is not a number is refused by psycopg only when it connects, with
    a ``psycopg.ProgrammingError``: it reached the user as that traceback (``smsgate config check``
    too); it is the URL's mistake, a :class:`ConfigError` as for an unknown option."""
    from smsgate.store import open_store

    require_postgres()
    for value in ("abc", ""):
        with pytest.raises(ConfigError, match=r"invalid PostgreSQL store URL: .*connect_timeout") as info:
            open_store(f"postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout={value}")
        assert "s3cret-pw" not in str(info.value)


def test_cli_db_upgrade_and_status_on_postgres(schema: str, tmp_path: Any) -> None:
    """The CLI takes a postgresql:// store from ``--url``, the config file and ``SMSGATE_STORE``."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    url = f"{DSN}{'&' if '?' in DSN else '?'}schema={schema}"
    runner = CliRunner()
    done = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert done.exit_code == 0, done.output
    assert f"schema version {Store.SCHEMA_VERSION}" in done.output
    with PostgresStore(DSN, schema=schema) as s:
        assert s.schema_version() == Store.SCHEMA_VERSION
    config = tmp_path / "smsgate.toml"
    config.write_text(f'store = "{url}"\n')
    done = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert done.exit_code == 0 and f"schema version {Store.SCHEMA_VERSION}" in done.output, done.output
    done = runner.invoke(app, ["db", "upgrade", "--config", str(config)],
                         env={"SMSGATE_STORE": "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2"})
    assert done.exit_code == 2 and "cannot open the PostgreSQL store at 127.0.0.1:1/nowhere" in done.output


def test_upgrade_from_version_5_adds_stored_tenants(opened: Callable[..., PostgresStore]) -> None:
    old = opened()
    old.SCHEMA_VERSION = 5  # as released
    old.migrate()
    old.insert_messages([make_record("m1", provider="echo", provider_message_id="p1")])
    assert old.schema_version() == 5
    s = opened()
    s.migrate()
    assert s.schema_version() == Store.SCHEMA_VERSION
    assert s.tenants_version() == 0 and s.list_tenant_rows() == []
    version = s.put_tenant_row("acme", "{}", "ciphertext", create=True)
    assert s.tenants_version() == version and s.get_message("a", "m1").provider_message_id == "p1"


def test_concurrent_tenant_writes_each_get_their_own_version(store: PostgresStore) -> None:
    """Writers of tenants queue on the one-row counter: every write gets a distinct version."""
    versions: list[int] = []
    assert _run_threads(6, lambda i: versions.append(store.put_tenant_row(f"t{i}", "{}", "x", create=True))) == []
    assert sorted(versions) == list(range(1, 7)) and store.tenants_version() == 6


def test_upgrade_from_version_6_keeps_optouts_as_every_sender(opened: Callable[..., PostgresStore]) -> None:
    """Schema 7 gives opt-outs a scope: those of version 6 become opt-outs from every sender."""
    old = opened()
    old.SCHEMA_VERSION = 6  # as released
    old.migrate()
    with old._conn() as conn:  # opt-outs as version 6 stored them
        conn.execute("INSERT INTO optouts (tenant, phone, reason, source, created_at) VALUES "
                     "('a', '+2348000000001', 'replied STOP', 'keyword', '2026-01-02T03:04:05Z'), "
                     "('a', '+2348000000002', NULL, 'api', now())")
    assert old.schema_version() == 6
    s = opened()
    s.migrate()
    assert s.schema_version() == Store.SCHEMA_VERSION >= 7
    first, second = s.list_optouts("a")
    assert (second.phone, second.scope, second.source) == ("+2348000000002", "*", "api")
    assert (first.phone, first.scope, first.reason, first.source) == ("+2348000000001", "*", "replied STOP", "keyword")
    assert first.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert s.opted_out("a", ["+2348000000001", "+2348000000002"], sender="AnyBrand") == {
        "+2348000000001", "+2348000000002"}
    # the key now holds the scope: the same phone can be opted out of one sender too
    assert s.add_optouts("a", [OptOut(phone="+2348000000001", scope="Brand")]) == 1
    assert s.add_optouts("a", [OptOut(phone="+2348000000001")]) == 0
    assert s.optout_scopes("a", ["+2348000000001"]) == {"+2348000000001": {"*", "brand"}}


def test_upgrade_from_version_10_makes_the_report_key_a_hash_index(opened: Callable[..., PostgresStore]) -> None:
    """Schema 11 finds a report's message through a hash index of the provider message id
    (tenant and provider checked on the row): the same id under another tenant or provider,
    several messages with one id (the newest wins) and messages without an id still match
    as before (the plans: test_batch_plans_probe_keys_even_without_statistics)."""
    old = opened()
    old.SCHEMA_VERSION = 10  # as released
    old.migrate()
    old.insert_messages([
        make_record("m1", provider="echo", provider_message_id="p1"),
        make_record("m2", provider="other", provider_message_id="p1"),
        make_record("m3", tenant="b", provider="echo", provider_message_id="p1"),
        make_record("m4", provider="echo", provider_message_id="p2"),
        make_record("m5", provider="echo", provider_message_id="p2"),  # the newer row of p2
        make_record("m6"),  # not sent yet: no provider message id
    ])
    assert old.schema_version() == 10
    s = opened()
    s.migrate()
    assert s.schema_version() == Store.SCHEMA_VERSION >= 11
    with s._conn() as conn:
        row = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                           "AND indexname = 'messages_provider_id'").fetchone()
        assert row is not None and "USING hash (provider_message_id)" in row[0], row
    assert s.apply_reports("a", [report("p1", Status.DELIVERED, 1, "DELIVRD"), report("p2", Status.SENT, 1),
                                 report("p1", Status.SENT, 1, provider="other"), report("p3", Status.SENT, 1)],
                           keep_orphans=True) == ["m1", "m5", "m2", None]
    assert s.apply_reports("b", [report("p1", Status.FAILED, 2, "UNDELIV")]) == ["m3"]
    assert [s.get_message("a", m).status for m in ("m1", "m2", "m4", "m5", "m6")] == [
        Status.DELIVERED, Status.SENT, Status.QUEUED, Status.SENT, Status.QUEUED]
    assert s.get_message("b", "m3").status is Status.FAILED
    found = s.find_by_provider_id("a", "echo", "p2")
    assert found is not None and found.message_id == "m5"
    assert s.find_by_provider_id("b", "other", "p1") is None


def test_a_server_that_cannot_be_reached_at_open_is_a_store_error_too() -> None:
    """Opening the store against a server that is down (or restarting) raises an error that is
    both a ConfigError (as it always was: the address may be wrong) and a StoreError (it may be
    temporary: the caller can retry, the webhook app answers 503)."""
    from smsgate.errors import ConfigError, StoreError, StoreUnavailable
    from smsgate.store import open_store

    with pytest.raises(StoreUnavailable) as err:
        open_store("postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2")
    assert isinstance(err.value, ConfigError) and isinstance(err.value, StoreError)
    assert err.value.store == "127.0.0.1:1/nowhere" and "cannot open the PostgreSQL store" in str(err.value)


# ------------------------------------------------------------- the history's layout
# A database created by this release has one index on message_events, its primary key
# (message_pk, id); one created before keeps a primary key on id plus the index
# (message_pk, id) (migrate() never rebuilds the history under live processes) until the
# operator runs upgrade_history (smsgate store upgrade-history). The shared contract runs on
# both layouts (test_store.py, kinds "postgres" and "postgres-two-index").

def _history_indexes(store: PostgresStore) -> dict[str, str]:
    """``message_events``' indexes: name -> definition (from ``ON`` on)."""
    with store._conn() as conn:
        rows = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                            "AND tablename = 'message_events'").fetchall()
    return {name: d[d.index(" ON "):].replace(f" {store.schema}.", " ") for name, d in rows}


def _two_index_store(opened: Callable[..., PostgresStore], **kw: Any) -> PostgresStore:
    """A store on a database created before this release (at version 10, then migrated)."""
    old = opened(**kw)
    old.SCHEMA_VERSION = 10  # as released
    old.migrate()
    s = opened(**kw)
    s.migrate()
    assert s.schema_version() == Store.SCHEMA_VERSION
    return s


def test_a_new_database_gets_the_one_index_history(store: PostgresStore) -> None:
    assert _history_indexes(store) == {
        "message_events_pkey": " ON message_events USING btree (message_pk, id)"}
    assert store.history_layout() == "one-index"


def test_an_existing_database_keeps_its_history_layout(opened: Callable[..., PostgresStore]) -> None:
    s = _two_index_store(opened)
    assert _history_indexes(s) == {"message_events_pkey": " ON message_events USING btree (id)",
                                   "message_events_message": " ON message_events USING btree (message_pk, id)"}
    assert s.history_layout() == "two-index"
    s.migrate()  # again: still nothing rebuilt
    assert s.history_layout() == "two-index"


def _history_workload(s: PostgresStore) -> list[Any]:
    """Every history write and read path of the store, the same calls each time: what each returned."""
    t = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    out: list[Any] = []
    s.insert_messages([make_record(f"m{i}", provider="echo", provider_message_id=f"p{i}", created=i,
                                   **({"campaign_id": "c1"} if i % 3 == 0 else {}))
                       for i in range(30)])
    out.append(s.update_messages("a", [update(f"m{i}", Status.SENT, 1) for i in range(0, 30, 2)]))
    out.append(s.apply_reports("a", [report(f"p{i}", Status.DELIVERED if i % 4 else Status.FAILED, 2 + i % 3,
                                            "DELIVRD" if i % 4 else "UNDELIV") for i in range(25)]
                               + [report("p3", Status.SENT, 9), report("nope", Status.SENT, 1)], keep_orphans=True))
    out.append(s.note_checks("a", ["m26", "m27", "m1", "nope"], at=datetime.fromtimestamp(t + 5, timezone.utc),
                             source="poll", detail="still there"))
    out.append(s.apply_reports("a", [report(f"p{i}", Status.DELIVERED, 7) for i in range(20, 27)]))
    out.append([s.get_message("a", f"m{i}").model_dump() for i in range(30)])
    out.append([r.model_dump() for r in s.list_messages("a", limit=50)])
    out.append([r.model_dump() for r in s.in_flight("a", [Status.QUEUED, Status.SENT],
                                                    created_before=datetime(2100, 1, 1, tzinfo=timezone.utc))])
    out.append(s.purge("a", before=datetime(2100, 1, 1, tzinfo=timezone.utc), dry_run=True).as_dict())
    out.append(s.purge("a", before=datetime(2100, 1, 1, tzinfo=timezone.utc)).as_dict())
    out.append([r.message_id for r in s.list_messages("a", limit=50)])
    out.append([len(s.get_message("a", r.message_id).history) for r in s.list_messages("a", limit=50)])
    return out


def test_history_reads_and_writes_identical_on_both_layouts(opened: Callable[..., PostgresStore]) -> None:
    old = _two_index_store(opened)
    other = unique_schema()
    try:
        new = opened(schema=other)
        new.migrate()
        assert (old.history_layout(), new.history_layout()) == ("two-index", "one-index")
        before = _history_workload(old)
        assert before == _history_workload(new)
        assert before[-1] and before[-3]["events"] > 0  # the workload did keep and delete histories
        # ...and once upgraded, the same database answers the same again
        assert old.upgrade_history() == "upgraded" and old.history_layout() == "one-index"
        assert old.get_message("a", before[-2][0]).model_dump() == new.get_message("a", before[-2][0]).model_dump()
    finally:
        drop_schema(other)


def _wait_for(what: str, done: Callable[[], bool], limit: float = 120.0) -> None:
    """Poll until ``done()`` (a guard against hanging the run, not a timed assertion)."""
    import time

    deadline = time.monotonic() + limit
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


class _HistoryWriter:
    """A live process's history traffic on its own store: each write one event of message
    ``m<k>`` (a check noted), each followed by a read of a message's history; ``written``
    counts the events the store said it wrote."""

    def __init__(self, store: PostgresStore, messages: int) -> None:
        self.store, self.messages = store, messages
        self.written = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for k in itertools.count():
                if self._stop.is_set():
                    return
                mid = f"m{k % self.messages}"
                self.written += self.store.note_checks("a", [mid], at=datetime.now(timezone.utc), source="live")
                assert self.store.get_message("a", mid).history
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    def __enter__(self) -> _HistoryWriter:
        self._thread.start()
        return self

    def progressed(self, by: int) -> Callable[[], bool]:
        """A condition: ``by`` more events written than now (or the writer failed)."""
        start = self.written
        return lambda: self.written >= start + by or bool(self.errors)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the live writer hung"
        assert not self.errors, self.errors


def _seed(s: PostgresStore, n: int) -> int:
    s.insert_messages([make_record(f"m{i}", provider="echo", provider_message_id=f"p{i}") for i in range(n)])
    s.apply_reports("a", [report(f"p{i}", Status.SENT, 1) for i in range(n)])
    return _event_count(s)


def _event_count(s: PostgresStore) -> int:
    with s._conn() as conn:
        row = conn.execute("SELECT count(*) FROM message_events").fetchone()
    assert row is not None
    return int(row[0])


def test_upgrade_history_gives_up_cleanly_behind_an_open_reader_while_writers_go_on(
        opened: Callable[..., PostgresStore]) -> None:
    """A transaction that read the history stays open: every try of the key swap gives way
    after its lock_timeout (the live writer's statements only queue that long, and it goes on
    writing between tries), and the upgrade fails saying so, layout and version unchanged.
    Once the reader ends, the upgrade goes through under the same live writer; no event lost."""
    s = _two_index_store(opened)
    seeded = _seed(s, 50)
    writer_store = opened()
    lines: list[str] = []
    with _HistoryWriter(writer_store, 50) as writer, psycopg.connect(DSN, options=f"-c search_path={s.schema}") as reader:
        _wait_for("the writer", writer.progressed(5))
        assert reader.execute("SELECT count(*) FROM message_events").fetchone()  # its transaction stays open
        progress: list[int] = []

        def say(line: str) -> None:  # called between tries: the history's lock is not asked for
            lines.append(line)
            if line.startswith("attempt"):
                progress.append(writer.written)
                _wait_for("the writer between the upgrade's tries", writer.progressed(3))

        with pytest.raises(StoreError, match=r"could not take the lock of message_events in 3 attempts.*"
                                             r"idle in transaction.*layout is unchanged"):
            s.upgrade_history(lock_timeout=0.2, attempts=3, pause=0.3, progress=say)
        assert len(progress) == 3 and progress[0] < progress[1] < progress[2], (progress, lines)
        assert s.history_layout() == "two-index" and s.schema_version() == Store.SCHEMA_VERSION
        assert set(_history_indexes(s)) == {"message_events_pkey", "message_events_message", "message_events_key"}
        _wait_for("the writer, after the upgrade gave up", writer.progressed(5))
        reader.rollback()
        lines.clear()
        assert s.upgrade_history(lock_timeout=0.2, attempts=20, progress=lines.append) == "upgraded"
        assert "index message_events_key: built by an earlier run, reused" in lines
        _wait_for("the writer, after the upgrade", writer.progressed(5))
    assert s.history_layout() == "one-index"
    assert _history_indexes(s) == {"message_events_pkey": " ON message_events USING btree (message_pk, id)"}
    assert _event_count(s) == seeded + writer.written  # every event the writer was told it wrote is there
    assert s.upgrade_history() == "already"


def test_upgrade_history_build_waits_for_an_open_writer_without_holding_back_the_others(
        opened: Callable[..., PostgresStore]) -> None:
    """A transaction that wrote an event stays open: the concurrent build waits for it (the
    upgrade's own wait), while the live writer's statements go on meanwhile."""
    s = _two_index_store(opened)
    seeded = _seed(s, 50)
    lines: list[str] = []
    result: list[object] = []
    with _HistoryWriter(opened(), 50) as writer, psycopg.connect(DSN, options=f"-c search_path={s.schema}") as open_tx:
        open_tx.execute("INSERT INTO message_events (tenant, message_pk, status, at) "
                        "SELECT tenant, id, status, now() FROM messages WHERE message_id = 'm7'")
        upgrade = threading.Thread(target=lambda: result.append(s.upgrade_history(progress=lines.append)))
        upgrade.start()
        _wait_for("the build to start", lambda: any("building concurrently" in line for line in lines))
        _wait_for("the writer, while the build waits", writer.progressed(20))
        assert upgrade.is_alive() and result == []  # the build still waits for the open transaction
        open_tx.commit()
        upgrade.join(120)
        assert result == ["upgraded"], (result, lines)
        _wait_for("the writer, after the upgrade", writer.progressed(5))
    assert s.history_layout() == "one-index"
    assert _event_count(s) == seeded + 1 + writer.written


def test_two_concurrent_history_upgrades(opened: Callable[..., PostgresStore]) -> None:
    """Two upgraders at once (each its own store, a live writer meanwhile): one converts, the
    other finds it busy or done; one primary key, no index left over, nothing lost."""
    s = _two_index_store(opened)
    seeded = _seed(s, 20)
    upgraders = [opened(), opened()]
    barrier = threading.Barrier(2, timeout=60)  # a party that never came: an error, not a hang
    results: list[str] = []

    def run(i: int) -> None:
        barrier.wait()
        results.append(upgraders[i].upgrade_history(lock_timeout=0.5))

    with _HistoryWriter(opened(), 20) as writer:
        _wait_for("the writer", writer.progressed(5))
        assert _run_threads(2, run) == []
        _wait_for("the writer, after the upgrades", writer.progressed(5))
    assert sorted(results) in (["busy", "upgraded"], ["already", "upgraded"]), results
    assert _history_indexes(s) == {"message_events_pkey": " ON message_events USING btree (message_pk, id)"}
    assert _event_count(s) == seeded + writer.written
    assert [u.upgrade_history() for u in upgraders] == ["already", "already"]


def test_upgrade_history_rebuilds_an_index_an_interrupted_build_left_invalid(
        opened: Callable[..., PostgresStore]) -> None:
    s = _two_index_store(opened)
    _seed(s, 5)
    with s._conn() as conn:  # what a build cut off leaves: an invalid index of that name
        conn.execute("CREATE UNIQUE INDEX message_events_key ON message_events (message_pk, id)")
        conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'message_events_key'::regclass")
    lines: list[str] = []
    assert s.upgrade_history(progress=lines.append) == "upgraded"
    assert any("left invalid by an interrupted build, dropped" in line for line in lines), lines
    assert _history_indexes(s) == {"message_events_pkey": " ON message_events USING btree (message_pk, id)"}


def test_cli_store_upgrade_history(opened: Callable[..., PostgresStore], schema: str, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from smsgate.cli import app

    s = _two_index_store(opened)
    url = f"{DSN}{'&' if '?' in DSN else '?'}schema={schema}"
    runner = CliRunner()
    done = runner.invoke(app, ["store", "upgrade-history", "--url", url])
    assert done.exit_code == 0, done.output
    assert "history upgraded: one index" in done.output and "building concurrently" in done.output
    assert s.history_layout() == "one-index"
    done = runner.invoke(app, ["store", "upgrade-history", "--url", url])
    assert done.exit_code == 0 and "one index already" in done.output, done.output
    done = runner.invoke(app, ["store", "upgrade-history", "--url", f"sqlite:///{tmp_path / 'x.db'}"])
    assert done.exit_code == 0 and "only PostgreSQL" in done.output, done.output


_STOPS_IN_A_TRANSACTION = """
import os, signal, sys
from smsgate.store.postgres import PostgresStore

PostgresStore.idle_in_transaction_timeout = float(sys.argv[3])
store = PostgresStore(sys.argv[1], schema=sys.argv[2])
print("ready", flush=True)

def stop(states, now):  # inside the limits' transaction, the key's row locked
    print("locked", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
    return None

try:
    store.traffic("t", {"provider:main": 60.0}, stop)
    print("committed", flush=True)
except Exception as exc:
    print(f"error {type(exc).__name__}", flush=True)
"""


@pytest.mark.parametrize("timeout", [1.0, 0.0], ids=["idle-timeout", "server-setting"])
def test_a_process_stopped_inside_a_transaction_holds_other_processes_only_for_the_idle_timeout(
        timeout: float) -> None:
    """A process stopped (SIGSTOP, a paused VM) inside a transaction held its row locks until
    continued: every other process needing those rows (a limit's key here; a campaign's
    claims) waited as long. The store's sessions set ``idle_in_transaction_session_timeout``
    (:attr:`PostgresStore.idle_in_transaction_timeout`, 60 s; 1 s here): past it the server
    ends the stopped session and the others go on; continued, the stopped process gets a
    :class:`StoreError` (its transaction rolled back). With ``0`` (the server's setting,
    none here) the other process still waits while it is stopped."""
    import signal
    import subprocess
    import sys

    from smsgate.store.postgres import PostgresStore

    require_postgres()
    schema = unique_schema()
    store = PostgresStore(DSN, schema=schema)
    store.migrate()
    store.traffic("t", {"provider:main": 60.0}, lambda states, now: None)  # the key's row exists
    proc = subprocess.Popen([sys.executable, "-c", _STOPS_IN_A_TRANSACTION, DSN, schema, str(timeout)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert proc.stdout.readline().strip() == "locked"
        done = threading.Event()
        threading.Thread(target=lambda: (store.traffic("t", {"provider:main": 60.0}, lambda s, n: None),
                                         done.set()), daemon=True).start()
        if timeout:
            assert done.wait(30), "the other process still waits for the stopped one's lock"
            proc.send_signal(signal.SIGCONT)
            assert proc.stdout.readline().strip() == "error StoreError"
        else:
            assert not done.wait(timeout + 3), "the lock was not held: the test shows nothing"
            proc.send_signal(signal.SIGCONT)
            assert proc.stdout.readline().strip() == "committed"
            assert done.wait(30)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
        store.close()
        drop_schema(schema)


def test_a_streamed_read_consumed_slowly_is_not_ended_by_the_idle_timeout() -> None:
    """``message_times`` streams through a server-side cursor inside a read transaction; its
    consumer sets the pace (a page of 5,000 rows at a time). That transaction locks no row, so
    the idle-in-transaction timeout (:attr:`PostgresStore.idle_in_transaction_timeout`) does
    not end it: a consumer pausing longer than the timeout between pages still reads them all."""
    import time

    from smsgate.store.postgres import PostgresStore

    require_postgres()
    schema = unique_schema()
    store = PostgresStore(DSN, schema=schema)
    store.idle_in_transaction_timeout = 0.5
    try:
        store.migrate()
        store.insert_messages([make_record(f"m{i}") for i in range(5_001)])
        rows = store.message_times("a")
        next(rows)  # the first page read, the transaction open
        time.sleep(1.5)
        assert sum(1 for _ in rows) == 5_000  # the second page comes after the pause
    finally:
        store.close()
        drop_schema(schema)
