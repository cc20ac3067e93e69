"""Stores: the shared contract run against every implementation, plus SQLite specifics.

To cover another store (PostgreSQL, ...), add a parameter to ``STORE_KINDS`` and a
branch to ``_open``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.errors import ConfigError
from smsgate.lifecycle import accepts as accepts_status
from smsgate.models import DeliveryReport, InboundMessage, OptOut, Status
from smsgate.store import open_store
from smsgate.store._rules import apply_report, apply_update, report_to_update, stale_report
from smsgate.store.base import LogWrite, Store
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import MIGRATIONS, SQLiteStore
from store_contract import StoreContract, at, make_record, raws, report, statuses, update

#: "sqlite-legacy": the SQLite store as it runs on SQLite before 3.33 / 3.24 (no multi-row
#: UPDATE ... FROM, no upsert): statement by statement.
#: "postgres-two-index": a PostgreSQL database created before the history had one index (its
#: primary key on id plus the index (message_pk, id)), which migrate() leaves as it is.
STORE_KINDS = ["memory", "sqlite-file", "sqlite-memory", "sqlite-legacy",
               pytest.param("postgres", marks=pytest.mark.postgres),
               pytest.param("postgres-two-index", marks=pytest.mark.postgres)]


def _open(kind: str, tmp_path: Path, n: int) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite-file":
        return SQLiteStore(str(tmp_path / f"store-{n}.db"))
    if kind == "sqlite-memory":
        return SQLiteStore(":memory:")
    if kind == "sqlite-legacy":
        return SQLiteStore(str(tmp_path / f"legacy-{n}.db"))
    if kind in ("postgres", "postgres-two-index"):
        from test_store_postgres import scratch_store  # a fresh schema, dropped on close

        return scratch_store()
    raise AssertionError(kind)


@pytest.fixture(params=STORE_KINDS)
def new_store(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []
    if request.param == "sqlite-legacy":
        import smsgate.store.sqlite as sqlite_mod

        monkeypatch.setattr(sqlite_mod, "_MULTI_ROW", False)
        monkeypatch.setattr(sqlite_mod, "_UPSERT", False)
    if request.param == "postgres-two-index":
        import smsgate.store.postgres as postgres_mod

        monkeypatch.setattr(postgres_mod, "_ONE_INDEX_HISTORY_SINCE", 1 << 30)

    def factory() -> Store:
        store = _open(request.param, tmp_path, len(opened))
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(new_store: Callable[[], Store]) -> Store:
    s = new_store()
    s.migrate()
    return s


class TestStoreContract(StoreContract):
    """Every store kind in ``STORE_KINDS`` against the shared contract."""


# ------------------------------------------------------------------ pure rule
class TestStatusRule:
    def test_table(self) -> None:
        S = Status
        assert accepts_status(S.UNKNOWN, None, S.QUEUED, None)
        assert accepts_status(S.UNKNOWN, "x", S.UNKNOWN, "y")
        assert not accepts_status(S.UNKNOWN, "x", S.UNKNOWN, "x")
        assert not accepts_status(S.UNKNOWN, "x", S.UNKNOWN, None)
        assert accepts_status(S.QUEUED, None, S.SUBMITTED, None)
        assert accepts_status(S.SENT, "A", S.SENT, "B")
        assert not accepts_status(S.SENT, "A", S.SENT, None)
        assert not accepts_status(S.SENT, None, S.SUBMITTED, "X")
        assert not accepts_status(S.SENT, None, S.UNKNOWN, None)
        assert accepts_status(S.SENT, None, S.EXPIRED, None)
        for final in (S.DELIVERED, S.UNDELIVERED, S.FAILED, S.REJECTED, S.EXPIRED):
            for new in Status:
                assert not accepts_status(final, None, new, "other")

    @given(status=statuses, raw=raws, new=statuses, new_raw=raws)
    def test_properties(self, status: Status, raw: str | None, new: Status, new_raw: str | None) -> None:
        ok = accepts_status(status, raw, new, new_raw)
        if new is status and (new_raw is None or new_raw == raw):
            assert not ok  # repeats never count
        elif status is Status.UNKNOWN:
            assert ok
        elif status.is_final:
            assert not ok
        else:
            assert ok == (new.rank >= status.rank)
        if ok and status is not Status.UNKNOWN:
            assert new.rank >= status.rank

    @given(
        start=statuses,
        status=statuses,
        raw=raws,
        seconds=st.integers(min_value=-5, max_value=5),
        cost=st.one_of(st.none(), st.decimals(places=3, min_value=0, max_value=10, allow_nan=False)),
        segments=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
        error=st.one_of(st.none(), st.just("E1")),
        batch=st.one_of(st.none(), st.just("b1")),
    )
    def test_apply_report_equals_apply_update(
        self,
        start: Status,
        status: Status,
        raw: str | None,
        seconds: int,
        cost: Decimal | None,
        segments: int | None,
        error: str | None,
        batch: str | None,
    ) -> None:
        rep = DeliveryReport(
            provider="echo",
            provider_message_id="p1",
            status=status,
            raw_status=raw,
            occurred_at=at(seconds),
            cost=cost,
            segments=segments,
            error_code=error,
            batch_id=batch,
        )
        one = make_record("m1", status=start, provider="echo", provider_message_id="p1", segments=2)
        two = one.model_copy(deep=True)
        # a report behind the row's status writes nothing (not even its cost or error)
        stale = stale_report(one, rep)
        assert stale == (status is not start and not accepts_status(start, None, status, raw))
        expected = (False, False) if stale else apply_update(two, report_to_update("m1", rep))
        assert apply_report(one, rep) == expected
        assert one == two


# ---------------------------------------------------------------- SQLite only
def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    with SQLiteStore(str(tmp_path / "wal.db")) as s:
        assert isinstance(s, SQLiteStore)
        assert s.journal_mode() == "wal"
    with SQLiteStore(":memory:") as s:
        assert isinstance(s, SQLiteStore)
        assert s.journal_mode() == "memory"


def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "persist.db")
    with SQLiteStore(path) as s:
        s.migrate()
        s.insert_messages(
            [make_record("m1", provider="echo", provider_message_id="p1", cost=Decimal("0.50"))]
        )
        s.apply_reports("a", [report("p1", Status.DELIVERED, 1, "DELIVRD")])
        s.add_optouts("a", [])
        s.claim_idempotency_key("a", "k1", "m1")
    with SQLiteStore(path) as s:
        assert s.schema_version() == Store.SCHEMA_VERSION
        s.migrate()
        got = s.get_message("a", "m1")
        assert got.status is Status.DELIVERED and str(got.cost) == "0.50" and len(got.history) == 1
        assert s.claim_idempotency_key("a", "k1", "m2") == "m1"


def test_sqlite_schema_tables_and_version(tmp_path: Path) -> None:
    path = str(tmp_path / "schema.db")
    with SQLiteStore(path) as s:
        assert s.schema_version() == 0
        s.migrate()
        s.migrate()
    assert len(MIGRATIONS) >= Store.SCHEMA_VERSION
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"schema_version", "messages", "message_events", "optouts", "idempotency_keys"} <= tables
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"messages_provider_id", "messages_campaign", "messages_to", "messages_created"} <= indexes
        # A status change writes no index entry (version 2 dropped the status indexes).
        for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"):
            if sql is not None:
                for changed in ("status", "updated_at", "submitted_at", "delivered_at", "cost", "segments", "error"):
                    assert changed not in sql.split("(", 1)[1], sql
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (Store.SCHEMA_VERSION,)
        for table in ("messages", "message_events", "optouts", "idempotency_keys"):
            columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            assert "tenant" in columns, table
        # Costs are stored as text, so they round-trip exactly.
        cost_type = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(messages)")}["cost"]
        assert cost_type == "TEXT"
    finally:
        conn.close()


def test_sqlite_refuses_newer_schema(tmp_path: Path) -> None:
    path = str(tmp_path / "newer.db")
    with SQLiteStore(path) as s:
        s.migrate()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (999, 'x')")
    conn.commit()
    conn.close()
    with SQLiteStore(path) as s, pytest.raises(ConfigError, match="newer"):
        s.migrate()


def test_sqlite_concurrent_claims_separate_connections(tmp_path: Path) -> None:
    """8 threads, each with its own store (connection) on one file: exactly one wins."""
    path = str(tmp_path / "claims.db")
    with SQLiteStore(path) as s:
        s.migrate()
    stores = [SQLiteStore(path) for _ in range(8)]
    barrier = threading.Barrier(8, timeout=60)  # a party that never came: an error, not a hang
    results: list[str | None] = [None] * 8
    errors: list[BaseException] = []

    def claim(i: int) -> None:
        try:
            barrier.wait()
            results[i] = stores[i].claim_idempotency_key("a", "shared", f"m{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert set(results) - {None} == {f"m{winners[0]}"}


def test_sqlite_concurrent_writers_separate_connections(tmp_path: Path) -> None:
    """Concurrent batched writes and migrations from several connections do not fail."""
    path = str(tmp_path / "writers.db")
    stores = [SQLiteStore(path) for _ in range(4)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            s = stores[i]
            s.migrate()
            for j in range(20):
                s.insert_messages(
                    [
                        make_record(f"m{i}-{j}-{k}", provider="echo", provider_message_id=f"p{i}-{j}-{k}")
                        for k in range(10)
                    ]
                )
                s.apply_reports("a", [report(f"p{i}-{j}-{k}", Status.DELIVERED, 1) for k in range(10)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stores[0].count_by_status("a")[Status.DELIVERED] == 4 * 20 * 10
    for s in stores:
        s.close()


def test_sqlite_failed_batch_rolls_back(tmp_path: Path) -> None:
    with SQLiteStore(str(tmp_path / "rollback.db")) as s:
        s.migrate()
        s.insert_messages([make_record("m1")])
        with pytest.raises(ValueError):
            s.insert_messages([make_record("m2", history=[]), make_record("m1")])
        assert [m.message_id for m in s.list_messages("a")] == ["m1"]
        # The connection is usable afterwards (no transaction left open).
        assert s.update_messages("a", [update("m1", Status.SENT, 1)]) == [True]


def test_open_store_urls(tmp_path: Path) -> None:
    s = open_store("memory://")
    assert isinstance(s, MemoryStore) and s.schema_version() == Store.SCHEMA_VERSION
    s.close()
    s = open_store("sqlite:///:memory:")
    assert isinstance(s, SQLiteStore) and s.schema_version() == Store.SCHEMA_VERSION
    s.close()
    s = open_store(f"sqlite:///{tmp_path / 'url.db'}")
    assert isinstance(s, SQLiteStore) and s.schema_version() == Store.SCHEMA_VERSION
    s.close()
    assert (tmp_path / "url.db").exists()


def test_open_store_postgres_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg a postgresql:// URL is a ConfigError naming the extra to install."""
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # "import psycopg" now raises ImportError
    monkeypatch.delitem(sys.modules, "smsgate.store.postgres", raising=False)
    for url in ("postgresql://u@localhost/db", "postgres://u@localhost/db"):
        with pytest.raises(ConfigError, match=r"pip install 'smsgate\[postgres\]'"):
            open_store(url)


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://"])
def test_open_store_sqlite_url_without_a_path_is_a_config_error(url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``sqlite:///`` opened a throwaway in-memory database: everything logged was lost at exit."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        open_store(url)
    assert repr(url) in str(info.value) and "sqlite:///relative/path.db" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no file made


@pytest.mark.parametrize("url", ["sqlite:///smsgate.db?mode=ro", "sqlite:///data/smsgate.db?timeout=30"])
def test_open_store_sqlite_url_with_a_query_is_a_config_error(url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``sqlite:///smsgate.db?timeout=30`` (a URL as other libraries take them) created a database
    file named ``smsgate.db?timeout=30``: the parameter was ignored, and a tool given the URL
    without it read another, empty database."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError, match="takes no query") as info:
        open_store(url)
    assert repr(url) in str(info.value)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []  # no file made


def test_open_store_sqlite_path_with_a_question_mark_that_is_no_query_is_a_path(tmp_path: Path) -> None:
    """A folder or file named with a ``?`` in it (POSIX allows it) is a path, not a query string;
    so is a file of a query-like name that exists already."""
    folder = tmp_path / "in?box"
    folder.mkdir()
    store = open_store(f"sqlite:///{folder}/log.db")
    store.close()
    assert (folder / "log.db").is_file()
    odd = tmp_path / "old.db?timeout=30"
    open_store(f"sqlite:///{tmp_path / 'seed.db'}").close()
    (tmp_path / "seed.db").rename(odd)
    store = open_store(f"sqlite:///{odd}")
    store.close()
    assert odd.is_file() and not (tmp_path / "old.db").exists()


def test_open_store_unsupported_url() -> None:
    with pytest.raises(ConfigError, match="unsupported store URL 'mysql'"):
        open_store("mysql://u@localhost/db")


def test_status_rule_sql_matches_python() -> None:
    """``accepts_status_sql`` / ``rank_sql`` (evaluated here by SQLite) against the Python rule."""
    from smsgate.store._rules import accepts_status_sql, rank_sql

    cases = [(cur, cur_raw, new, new_raw) for cur in Status for new in Status
             for cur_raw in (None, "A") for new_raw in (None, "A", "B")]
    conn = sqlite3.connect(":memory:")
    try:
        expression = accepts_status_sql("?1", "?2", "?3", "?4")
        got = [bool(conn.execute(f"SELECT {expression}", (c[0].value, c[1], c[2].value, c[3])).fetchone()[0])
               for c in cases]
        ranks = [conn.execute(f"SELECT {rank_sql('?1')}", (s.value,)).fetchone()[0] for s in Status]
    finally:
        conn.close()
    assert got == [accepts_status(*c) for c in cases]
    assert ranks == [s.rank for s in Status]


def _old_message(path: str, message_id: str, *, events: int = 0, **columns: object) -> int:
    """Write a message row (and ``events`` history events) as schema versions 1-8 stored
    them, in SQL: this code writes version 9's history chain, which an older schema has no
    columns for. Returns the row's id."""
    when = at(0).isoformat(timespec="microseconds")
    row = {"tenant": "a", "message_id": message_id, "to_phone": "+2348012345678", "status": "queued",
           "created_at": when, "updated_at": when, **columns}
    conn = sqlite3.connect(path)
    try:
        with conn:
            pk = conn.execute(f"INSERT INTO messages ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                              list(row.values())).lastrowid
            for i in range(events):
                conn.execute("INSERT INTO message_events (tenant, message_pk, status, at, source, detail) "
                             "VALUES (?, ?, 'queued', ?, 'test', ?)", (row["tenant"], pk, when, f"{message_id}.{i}"))
    finally:
        conn.close()
    assert pk is not None
    return pk


def test_sqlite_upgrade_from_version_4_adds_orphans_parts_and_inbound(tmp_path: Path) -> None:
    path = str(tmp_path / "v4.db")
    with SQLiteStore(path) as old:
        old.SCHEMA_VERSION = 4  # as released
        old.migrate()
    _old_message(path, "m1", provider="echo", provider_message_id="p1")
    with SQLiteStore(path) as old:
        assert old.schema_version() == 4
    with SQLiteStore(path) as s:
        s.migrate()
        assert s.schema_version() == Store.SCHEMA_VERSION
        assert s.apply_reports("a", [report("p1", Status.DELIVERED, 1), report("p2", Status.SENT, 1)],
                               keep_orphans=True) == ["m1", None]
        assert [o.provider_message_id for o in s.orphan_reports("a")] == ["p2"]
        (stored, new), = s.record_inbound("a", [InboundMessage(provider="c", vendor_id="v1", from_number="+1")])
        assert new and s.list_inbound("a")[0].id == stored.id
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        conn.close()
    assert {"orphan_reports", "report_parts", "inbound_messages"} <= tables and versions == list(range(1, Store.SCHEMA_VERSION + 1))


def test_sqlite_reports_racing_their_messages_write_are_never_lost(tmp_path: Path) -> None:
    """Two store objects on one file (as two processes): a report kept as an orphan while its
    message's provider id is written is applied either way."""
    path = str(tmp_path / "race.db")
    with SQLiteStore(path) as writer, SQLiteStore(path) as reader:
        writer.migrate()
        n = 150

        def write() -> None:
            for j in range(n):
                writer.write_log("a", LogWrite(inserts=[make_record(f"m{j}", status=Status.SUBMITTED)],
                                               updates=[update(f"m{j}", Status.SUBMITTED, 1, provider="echo",
                                                               provider_message_id=f"p{j}")]))

        def ingest() -> None:
            for j in range(n):
                reader.apply_reports("a", [report(f"p{j}", Status.DELIVERED, 2)], keep_orphans=True)

        threads = [threading.Thread(target=write), threading.Thread(target=ingest)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert reader.orphan_reports("a") == []
        assert writer.count_by_status("a").get(Status.DELIVERED) == n


def test_sqlite_upgrade_from_version_1_keeps_data(tmp_path: Path) -> None:
    path = str(tmp_path / "v1.db")
    with SQLiteStore(path) as old:
        old.SCHEMA_VERSION = 1  # as released
        old.migrate()
    _old_message(path, "m1", provider="echo", provider_message_id="p1", campaign_id="c1")
    with SQLiteStore(path) as old:
        assert old.schema_version() == 1
    conn = sqlite3.connect(path)  # a recipient as version 1 stored it
    with conn:
        conn.execute("INSERT INTO campaign_recipients (tenant, campaign_id, seq, phone, state) "
                     "VALUES ('a', 'c1', 1, '+2348000000001', 'pending')")
    conn.close()
    with SQLiteStore(path) as s:
        s.migrate()
        assert s.schema_version() == Store.SCHEMA_VERSION
        (claimed,) = s.claim_recipients("a", "c1", 5, lambda: "m2", owner="me")
        assert (claimed.seq, claimed.owner, claimed.line, claimed.key) == (1, "me", None, None)
        assert s.apply_reports("a", [report("p1", Status.DELIVERED, 1, "DELIVRD")]) == ["m1"]
        assert [m.message_id for m in s.list_messages("a", campaign_id="c1", status=Status.DELIVERED)] == ["m1"]
        assert s.count_by_status("a", campaign_id="c1")[Status.DELIVERED] == 1
    conn = sqlite3.connect(path)
    try:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert "messages_campaign" in indexes and not {"messages_status", "messages_campaign_status"} & indexes


def test_report_rounds() -> None:
    from smsgate.store._rules import report_rounds

    batch = [report("p1", Status.SENT, 1), report("p2", Status.SENT, 1), report(None, Status.SENT, 1),
             report("p1", Status.DELIVERED, 2), report("p1", Status.DELIVERED, 2, provider="other"),
             report("p1", Status.FAILED, 3), report("p2", Status.DELIVERED, 2)]
    assert report_rounds(batch) == [[0, 1, 4], [3, 6], [5]]
    assert report_rounds([]) == [] and report_rounds([report(None, Status.SENT, 1)]) == []


def test_sqlite_upgrade_from_version_5_adds_stored_tenants(tmp_path: Path) -> None:
    path = str(tmp_path / "v5.db")
    with SQLiteStore(path) as old:
        old.SCHEMA_VERSION = 5  # as released
        old.migrate()
    _old_message(path, "m1", provider="echo", provider_message_id="p1")
    with SQLiteStore(path) as old:
        assert old.schema_version() == 5
    with SQLiteStore(path) as s:
        s.migrate()
        assert s.schema_version() == Store.SCHEMA_VERSION
        assert s.tenants_version() == 0 and s.list_tenant_rows() == []
        version = s.put_tenant_row("acme", "{}", "ciphertext", create=True)
        assert s.tenants_version() == version and s.get_message("a", "m1").provider_message_id == "p1"
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        conn.close()
    assert {"stored_tenants", "tenant_changes"} <= tables and versions == list(range(1, Store.SCHEMA_VERSION + 1))


def test_sqlite_upgrade_from_version_6_keeps_optouts_as_every_sender(tmp_path: Path) -> None:
    """Schema 7 gives opt-outs a scope: those of version 6 become opt-outs from every sender."""
    path = str(tmp_path / "v6.db")
    with SQLiteStore(path) as old:
        old.SCHEMA_VERSION = 6  # as released
        old.migrate()
        assert old.schema_version() == 6
    conn = sqlite3.connect(path)  # opt-outs as version 6 stored them
    with conn:
        conn.executemany("INSERT INTO optouts (tenant, phone, reason, source, created_at) VALUES (?, ?, ?, ?, ?)",
                         [("a", "+2348000000001", "replied STOP", "keyword", "2026-01-02T03:04:05.000000+00:00"),
                          ("a", "+2348000000002", None, "api", "2026-01-03T00:00:00.000000+00:00"),
                          ("b", "+2348000000001", None, "api", "2026-01-03T00:00:00.000000+00:00")])
    conn.close()
    with SQLiteStore(path) as s:
        s.migrate()
        assert s.schema_version() == Store.SCHEMA_VERSION >= 7
        first, second = s.list_optouts("a")
        assert (second.phone, second.scope, second.source) == ("+2348000000002", "*", "api")
        assert (first.phone, first.scope, first.reason, first.source) == (
            "+2348000000001", "*", "replied STOP", "keyword")
        assert first.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        assert s.opted_out("a", ["+2348000000001", "+2348000000002"], sender="AnyBrand") == {
            "+2348000000001", "+2348000000002"}
        assert s.count_optouts("b") == 1
        assert s.add_optouts("a", [OptOut(phone="+2348000000001", scope="Brand")]) == 1
        assert s.add_optouts("a", [OptOut(phone="+2348000000001")]) == 0
        assert s.optout_scopes("a", ["+2348000000001"]) == {"+2348000000001": {"*", "brand"}}
    conn = sqlite3.connect(path)
    try:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert versions == list(range(1, Store.SCHEMA_VERSION + 1)) and "optouts_v7" not in tables


def test_sqlite_claim_check_looks_recipients_up_by_id(tmp_path: Path) -> None:
    """The write-ahead's claim check reads the claimed rows by rowid, not by walking the tenant's
    recipients (it did: without statistics SQLite took the (tenant, ...) index for an IN list, so
    every campaign request cost time in proportion to the campaign)."""
    from smsgate.store.base import RecipientRow, RecipientState
    from smsgate.store.sqlite import _held_claims_sql
    from store_contract import make_campaign

    with SQLiteStore(str(tmp_path / "plan.db")) as s:
        s.migrate()
        s.create_campaign(make_campaign("c1"))
        s.add_recipients("a", "c1", [RecipientRow(seq=i, phone=f"+23480{i:08d}", state=RecipientState.PENDING)
                                     for i in range(2000)])
        claimed = s.claim_recipients("a", "c1", 40, iter(f"m{i}" for i in range(40)).__next__, owner="o1")
        ids = [r.id for r in claimed]
        plan = " ".join(row[-1] for row in s._conn.execute(
            "EXPLAIN QUERY PLAN " + _held_claims_sql(len(ids)), ("a", "sending", "o1", *ids)))
        assert "INTEGER PRIMARY KEY" in plan and "INDEX" not in plan.replace("INTEGER PRIMARY KEY", "")
        (found,) = s._conn.execute(_held_claims_sql(len(ids)), ("a", "sending", "o1", *ids)).fetchone()
        assert sorted(map(int, found.split(","))) == sorted(ids)


@given(st.dictionaries(st.text(), st.text() | st.integers() | st.none(), max_size=5))
def test_sqlite_recipient_fields_json_is_json_dumps(fields: dict[str, object]) -> None:
    """The recipients' fields column is exactly ``json.dumps(fields)`` (strings through the json
    module's string encoder, anything else through ``json.dumps`` itself)."""
    import json

    from smsgate.store.sqlite import _fields_json

    assert _fields_json(fields) == json.dumps(fields)  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.none() | st.integers(-(2**63), 2**63 - 1), st.none() | st.text(max_size=3), st.none() | st.floats(
    allow_nan=False)), max_size=300), st.sampled_from([1, 3, 64]))
def test_sqlite_insert_rows_writes_what_executemany_writes(rows: list[tuple[object, ...]], block: int) -> None:
    """The multi-row INSERTs (blocks of cached statements, ``None`` written in as ``NULL``) store
    the same rows in the same order as one INSERT per row."""
    import smsgate.store.sqlite as sqlite_mod

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, a, b, c)")
    expected = [("x", *row) for row in rows]
    saved = sqlite_mod._BLOCK
    sqlite_mod._BLOCK = block
    try:
        sqlite_mod._insert_rows(conn, "INSERT INTO t (tenant, a, b, c) VALUES (?, ?, ?, ?)", expected)
    finally:
        sqlite_mod._BLOCK = saved
    assert conn.execute("SELECT tenant, a, b, c FROM t ORDER BY id").fetchall() == expected


@pytest.mark.parametrize("kind", ["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_erase_tenant_knows_every_table_that_holds_a_tenants_data(kind: str, tmp_path: Path) -> None:
    """A table added with a ``tenant`` column must be added to what ``erase_tenant`` deletes
    (else a tenant name given again would read what it left there)."""
    from smsgate.store._sql import _TENANT_TABLES

    store = _open(kind, tmp_path, 0)
    try:
        store.migrate()
        with store._read() as conn:  # type: ignore[attr-defined]
            if kind == "postgres":
                rows = conn.execute("SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant' "
                                    "AND table_schema = current_schema()").fetchall()
            else:
                rows = [(t,) for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                        if any(c[1] == "tenant" for c in conn.execute(f"PRAGMA table_info({t})"))]
        assert {t for (t,) in rows} == set(_TENANT_TABLES)
    finally:
        store.close()
