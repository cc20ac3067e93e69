"""The SQLite store's history chain (schema version 9): each event names the message's
event before it (``prev``), each message its newest (``last_event``); histories are read
by following the chain, no index of events by message is kept.

Checked here: the migration of a version-8 database (interleaved histories, several
tenants, messages without history), the chain's integrity after every kind of writer
(in threads, through two store objects on one file), and against the memory store
(hypothesis) for histories read one by one, in lists, and after a purge.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgate.models import MessageRecord, Status, StatusEvent
from smsgate.store.base import LogWrite, NewMessage, Store
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import SQLiteStore
from store_contract import at, make_record, report, update

_FAR = at(10**7)


def broken_links(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """Events whose ``prev`` is not their message's event before them, and messages whose
    ``last_event`` is not their newest event (by id: the order events were written in)."""
    bad = [("event", int(r[0])) for r in conn.execute(
        "SELECT e.id FROM message_events e WHERE e.prev IS NOT (SELECT max(p.id) FROM message_events p "
        "WHERE p.message_pk = e.message_pk AND p.id < e.id)")]
    bad += [("message", int(r[0])) for r in conn.execute(
        "SELECT m.id FROM messages m WHERE m.last_event IS NOT "
        "(SELECT max(e.id) FROM message_events e WHERE e.message_pk = m.id)")]
    bad += [("tenant", int(r[0])) for r in conn.execute(
        "SELECT e.id FROM message_events e JOIN messages m ON m.id = e.message_pk WHERE e.tenant <> m.tenant")]
    return bad


def stored_histories(conn: sqlite3.Connection) -> dict[tuple[str, str], list[tuple[str, str, str | None]]]:
    """Every message's events read straight from the table, in id order (no chain)."""
    out: dict[tuple[str, str], list[tuple[str, str, str | None]]] = {}
    for tenant, mid in conn.execute("SELECT tenant, message_id FROM messages"):
        out[(tenant, mid)] = []
    for tenant, mid, status, source, detail in conn.execute(
            "SELECT m.tenant, m.message_id, e.status, e.source, e.detail FROM message_events e "
            "JOIN messages m ON m.id = e.message_pk ORDER BY e.id"):
        out[(tenant, mid)].append((status, source, detail))
    return out


def _short(history: list[StatusEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.status.value, e.source, e.detail) for e in history]


def test_upgrade_from_version_8_chains_existing_history(tmp_path: Path) -> None:
    """Version 9 links the events a version-8 database holds (interleaved between messages
    and tenants) in id order, points each message at its newest, and drops the index."""
    path = str(tmp_path / "v8.db")
    with SQLiteStore(path) as old:
        old.SCHEMA_VERSION = 8  # as released
        old.migrate()
    when = at(0).isoformat(timespec="microseconds")
    conn = sqlite3.connect(path)
    with conn:
        pks = {}
        for tenant, mid, pmid in [("a", "m1", "p1"), ("a", "m2", "p2"), ("b", "m1", "p3"), ("a", "m3", None)]:
            pks[(tenant, mid)] = conn.execute(
                "INSERT INTO messages (tenant, message_id, to_phone, status, provider, provider_message_id, "
                "created_at, updated_at) VALUES (?, ?, '+2348012345678', 'submitted', 'echo', ?, ?, ?)",
                (tenant, mid, pmid, when, when)).lastrowid
        order = [("a", "m1"), ("a", "m2"), ("b", "m1"), ("a", "m1"), ("a", "m2"), ("a", "m1"), ("b", "m1")]
        for n, key in enumerate(order):
            conn.execute("INSERT INTO message_events (tenant, message_pk, status, at, source, detail) "
                         "VALUES (?, ?, 'submitted', ?, 'old', ?)", (key[0], pks[key], when, f"e{n}"))
    conn.close()
    with SQLiteStore(path) as s:
        s.migrate()
        assert s.schema_version() == Store.SCHEMA_VERSION >= 9
        assert _short(s.get_message("a", "m1").history) == [("submitted", "old", d) for d in ("e0", "e3", "e5")]
        assert _short(s.get_message("a", "m2").history) == [("submitted", "old", d) for d in ("e1", "e4")]
        assert _short(s.get_message("b", "m1").history) == [("submitted", "old", d) for d in ("e2", "e6")]
        assert s.get_message("a", "m3").history == []
        listed = {m.message_id: _short(m.history) for m in s.in_flight("a", list(Status), created_before=_FAR)}
        assert listed == {"m1": [("submitted", "old", d) for d in ("e0", "e3", "e5")],
                          "m2": [("submitted", "old", d) for d in ("e1", "e4")], "m3": []}
        # the chain goes on from the migrated head
        assert s.apply_reports("a", [report("p1", Status.DELIVERED, 5, "DELIVRD")]) == ["m1"]
        assert [e.detail for e in s.get_message("a", "m1").history] == ["e0", "e3", "e5", None]
        assert s.note_checks("a", ["m3"], at=at(6), source="check") == 1
        assert _short(s.get_message("a", "m3").history) == [("submitted", "check", None)]
        # a purge finds the events through the chain (the index is gone)
        done = s.purge("a", before=_FAR)
        assert (done.messages, done.events) == (1, 4)
        assert {m.message_id for m in s.list_messages("a")} == {"m2", "m3"}
    conn = sqlite3.connect(path)
    try:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "message_events_message" not in indexes
        assert broken_links(conn) == []
        assert conn.execute("SELECT count(*) FROM message_events").fetchone() == (5,)
    finally:
        conn.close()


def test_chain_holds_under_interleaved_writers(tmp_path: Path) -> None:
    """Every writer of history (inserts with history, log writes of new messages, updates,
    checks, reports, adopted orphans, a purge), from four threads on two store objects
    sharing one file, leaves every chain whole: each message's history read through it is
    exactly its events in the order they were written."""
    path = str(tmp_path / "chain.db")
    stores = [SQLiteStore(path, timeout=30), SQLiteStore(path, timeout=30)]
    stores[0].migrate()
    errors: list[BaseException] = []
    statuses = [Status.SENT, Status.SUBMITTED, Status.DELIVERED, Status.FAILED]

    def writer(w: int) -> None:
        rng = random.Random(w)
        s = stores[w % 2]
        try:
            for n in range(60):
                mid, t = f"w{w}-{n}", n + w / 10
                kind = n % 4
                if kind == 0:  # a record with a history of several events
                    history = [StatusEvent(status=Status.QUEUED, at=at(t), source="import", detail=f"{mid}.{i}")
                               for i in range(rng.randint(0, 3))]
                    s.insert_messages([make_record(mid, provider="echo", provider_message_id=f"p-{mid}",
                                                   history=history)])
                elif kind == 1:  # a report before its message: kept, adopted by the log write below
                    s.apply_reports("a", [report(f"p-{mid}", Status.DELIVERED, t + 5, "DELIVRD")], keep_orphans=True)
                    s.write_log("a", LogWrite(inserts=[NewMessage(tenant="a", message_id=mid, to="+2348012345678",
                                                                  status=Status.SUBMITTED, created_at=at(t),
                                                                  provider="echo",
                                                                  provider_message_id=f"p-{mid}")]))
                else:  # messages of every writer: updates, reports and checks interleave on them
                    other = f"w{rng.randrange(4)}-{rng.randrange(max(1, n))}"
                    if kind == 2:
                        s.update_messages("a", [update(other, rng.choice(statuses), t, f"r{n}")])
                        s.note_checks("a", [other, mid], at=at(t), source="check", detail=f"c{w}.{n}")
                    else:
                        s.apply_reports("a", [report(f"p-{other}", rng.choice(statuses), t, f"x{n}"),
                                              report(f"p-w{w}-0", Status.SENT, t, f"y{n}")])
                if n == 40 and w == 0:
                    s.purge("a", before=at(15) + timedelta(seconds=1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    conn = sqlite3.connect(path)
    try:
        assert broken_links(conn) == []
        expected = stored_histories(conn)
        (events,) = conn.execute("SELECT count(*) FROM message_events").fetchone()
    finally:
        conn.close()
    s = stores[1]
    got = {("a", mid): _short(s.get_message("a", mid).history) for _, mid in expected}
    assert got == expected
    listed = {("a", m.message_id): _short(m.history)
              for m in s.in_flight("a", list(Status), created_before=_FAR, limit=10_000)}
    assert listed == expected
    assert sum(map(len, expected.values())) == events  # no event outside a message's chain
    assert any(len(h) >= 3 for h in expected.values())
    for store in stores:
        store.close()


_ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 5), st.integers(0, 3)),
    st.tuples(st.just("new"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("update"), st.integers(0, 5), st.sampled_from(list(Status))),
    st.tuples(st.just("check"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("report"), st.integers(0, 5), st.sampled_from(list(Status))),
    st.tuples(st.just("purge"), st.just(0), st.just(0)),
), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_chain_histories_match_the_memory_store(ops: list[tuple[str, int, object]]) -> None:
    """Any sequence of history writers leaves the SQLite store's histories (one message,
    listed messages) equal to the memory store's, with every chain whole."""
    sqlite = SQLiteStore(":memory:")
    sqlite.migrate()
    memory = MemoryStore()
    stores: list[Store] = [sqlite, memory]
    for t, (op, i, arg) in enumerate(ops):
        mid = f"m{i}"
        for s in stores:
            exists = bool(s.messages_by_id("a", [mid]))
            if op == "insert" and not exists:
                assert isinstance(arg, int)
                s.insert_messages([MessageRecord(
                    tenant="a", message_id=mid, to="+2348012345678", status=Status.QUEUED, created_at=at(t),
                    updated_at=at(t), provider="echo", provider_message_id=f"p{i}",
                    history=[StatusEvent(status=Status.QUEUED, at=at(t), source="import", detail=str(k))
                             for k in range(arg)])])
            elif op == "new" and not exists:
                s.write_log("a", LogWrite(inserts=[NewMessage(
                    tenant="a", message_id=mid, to="+2348012345678", status=Status.SUBMITTED, created_at=at(t),
                    provider="echo", provider_message_id=f"p{i}")]))
            elif op == "update":
                assert isinstance(arg, Status)
                s.update_messages("a", [update(mid, arg, t, f"u{t}")])
            elif op == "check":
                s.note_checks("a", [mid, f"m{arg}"], at=at(t), source="check", detail=str(t))
            elif op == "report":
                assert isinstance(arg, Status)
                s.apply_reports("a", [report(f"p{i}", arg, t, f"r{t}")], keep_orphans=True)
            elif op == "purge":
                s.purge("a", before=at(t))
    listed = [{m.message_id: m.history for m in s.in_flight("a", list(Status), created_before=_FAR)}
              for s in stores]
    assert listed[0] == listed[1]
    for mid in listed[1]:
        assert sqlite.get_message("a", mid).history == memory.get_message("a", mid).history
    with sqlite._read() as conn:
        assert broken_links(conn) == []
    sqlite.close()
