"""The campaign writer process's grouped commits (smsgate.campaigns.writer_process): one write
transaction over several chunks, committed after ``GROUP_CHUNKS`` chunks, once it is
``GROUP_SECONDS`` old, while the child waits for a late chunk, and before it says it is done;
what a failure leaves (only the groups committed before it); and the store's write group itself
(``SQLiteStore._write_group``). Real SQLite files; the child's work in this process (``_serve``)
unless said otherwise.
"""

from __future__ import annotations

import io
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.campaigns import CsvAudience, writer_process
from smsgate.campaigns import preparation as prep_mod
from smsgate.campaigns.storing import ChunkStore
from smsgate.errors import StoreError
from smsgate.models import CampaignStatus, utcnow
from smsgate.store.base import CampaignRow, RecipientRow, RecipientState
from smsgate.store.sqlite import SQLiteStore
from test_prepare import config, plugins
from test_writer_process import Spy, exited, spy  # noqa: F401  (a fixture)

CHUNK = 50
TALLY = ("p", "gsm7", 1)


def _store(tmp_path: Path) -> tuple[str, SQLiteStore]:
    path = str(tmp_path / "w.db")
    store = SQLiteStore(path)
    store.migrate()
    now = utcnow()
    store.create_campaign(CampaignRow(tenant="acme", campaign_id="x", name="x", status=CampaignStatus.DRAFT,
                                      created_at=now, updated_at=now))
    return path, store


def _chunk(n: int) -> bytes:
    """Chunk ``n``'s frame: CHUNK pending rows with numbers of their own."""
    rows = [(seq, f"+23480{seq:08d}", True, {"name": f"n{seq}"}, None, None, 1, "p", seq + 1, f"+23480{seq:08d}")
            for seq in range(n * CHUNK, (n + 1) * CHUNK)]
    return writer_process._pack(("chunk", rows, [TALLY] * CHUNK, ["Hi"] * CHUNK, ["0"] * CHUNK,
                                 [None] * CHUNK, []))


def _frames(path: str, store: SQLiteStore, chunks: range, close: bool = True) -> bytes:
    init = ("init", path, store.file_id, 30.0, "acme", "x", "list.csv", {None: None, "p": None}, "NG", [])
    return b"".join([writer_process._pack(init), writer_process._pack(("begin", 10, 5)),
                     *map(_chunk, chunks), *([writer_process._pack(("close",))] if close else [])])


def _answers(data: bytes) -> list[str]:
    inp = io.BytesIO(data)
    kinds = []
    while (frame := writer_process._receive(inp)) is not None:
        kinds.append(frame[0])
    return kinds


def _stored(path: str) -> int:
    """Recipients another connection sees (what is committed)."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM campaign_recipients").fetchone()[0])


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The COMMITs the child's connection runs (each: the recipients committed by then)."""
    seen: list[int] = []
    real_open = writer_process._open_store

    def open_store(*args: Any) -> SQLiteStore:
        store = real_open(*args)
        store._conn.set_trace_callback(lambda sql: seen.append(1) if sql.strip().upper() == "COMMIT" else None)
        return store

    monkeypatch.setattr(writer_process, "_open_store", open_store)
    return seen


def test_the_child_commits_a_group_of_chunks_at_a_time_and_all_before_it_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commits: list[int]
) -> None:
    """Ten chunks, four a group (and no time bound): three commits (4 + 4 + 2 chunks), the last
    before "done"; everything is visible to another connection then. It committed every chunk."""
    monkeypatch.setattr(writer_process, "GROUP_CHUNKS", 4, raising=False)
    monkeypatch.setattr(writer_process, "GROUP_SECONDS", 1e9, raising=False)
    path, store = _store(tmp_path)
    out = io.BytesIO()
    assert writer_process._serve(io.BytesIO(_frames(path, store, range(10))), out) == 0
    assert _answers(out.getvalue()) == ["ready", "done"]
    assert len(commits) == 3
    assert _stored(path) == 10 * CHUNK
    store.close()


def test_a_group_that_reaches_its_age_is_committed_after_the_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commits: list[int]
) -> None:
    """GROUP_SECONDS = 0: every chunk is a group of its own, whatever GROUP_CHUNKS says."""
    monkeypatch.setattr(writer_process, "GROUP_CHUNKS", 1000, raising=False)
    monkeypatch.setattr(writer_process, "GROUP_SECONDS", 0.0, raising=False)
    path, store = _store(tmp_path)
    out = io.BytesIO()
    assert writer_process._serve(io.BytesIO(_frames(path, store, range(6))), out) == 0
    assert len(commits) == 6 and _stored(path) == 6 * CHUNK
    store.close()


def test_a_failure_rolls_back_the_group_it_came_in_and_keeps_the_groups_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups of four; the sixth chunk refused by SQLite (a trigger): the first group (chunks
    1-4) is committed, the fifth chunk, written but not committed, is rolled back with the sixth;
    the child answers with the error. (It committed the fifth chunk.)"""
    monkeypatch.setattr(writer_process, "GROUP_CHUNKS", 4, raising=False)
    monkeypatch.setattr(writer_process, "GROUP_SECONDS", 1e9, raising=False)
    path, store = _store(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON campaign_recipients WHEN NEW.seq = {5 * CHUNK + 7} "
                     "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    out = io.BytesIO()
    assert writer_process._serve(io.BytesIO(_frames(path, store, range(8))), out) == 1
    answers = _answers(out.getvalue())
    assert answers == ["ready", "error"]
    assert _stored(path) == 4 * CHUNK
    with sqlite3.connect(path) as conn:
        seqs = {s for (s,) in conn.execute("SELECT seq FROM campaign_recipients")}
    assert seqs == set(range(4 * CHUNK))
    store.close()


def test_the_parent_gone_with_a_group_open_leaves_the_group_unwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The input ends (the parent died) after six chunks, groups of four: chunks 5-6 were never
    committed, and nothing more is written."""
    monkeypatch.setattr(writer_process, "GROUP_CHUNKS", 4, raising=False)
    monkeypatch.setattr(writer_process, "GROUP_SECONDS", 1e9, raising=False)
    path, store = _store(tmp_path)
    out = io.BytesIO()
    assert writer_process._serve(io.BytesIO(_frames(path, store, range(6), close=False)), out) == 0
    assert _answers(out.getvalue()) == ["ready"]
    assert _stored(path) == 4 * CHUNK
    store.close()


def test_the_child_commits_while_it_waits_for_a_late_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk written, the next one late (the parent is slow): another connection gets the
    write lock (within a generous busy timeout, not timed) and sees the chunk; without the
    commit while waiting it would wait for the next chunk, which comes only after its write."""
    monkeypatch.setattr(writer_process, "GROUP_CHUNKS", 1000, raising=False)
    path, store = _store(tmp_path)
    head, last = _frames(path, store, range(1), close=False), _chunk(1) + writer_process._pack(("close",))
    written = threading.Event()
    real_write = ChunkStore.write

    def write(self: ChunkStore, *args: Any) -> None:
        real_write(self, *args)
        written.set()

    monkeypatch.setattr(ChunkStore, "write", write)
    read_end, write_end = os.pipe()
    out = io.BytesIO()
    result: list[int] = []
    with os.fdopen(read_end, "rb") as inp, os.fdopen(write_end, "wb") as feed:
        child = threading.Thread(target=lambda: result.append(writer_process._serve(inp, out)))
        child.start()
        feed.write(head)  # init, begin and chunk 0
        feed.flush()
        assert written.wait(60)  # (in the group's transaction, not committed with it)
        other = sqlite3.connect(path, timeout=60, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # waits for the child's commit
            assert other.execute("SELECT count(*) FROM campaign_recipients").fetchone()[0] == CHUNK
            other.execute("UPDATE campaigns SET name = 'y' WHERE campaign_id = 'x'")
            other.execute("COMMIT")
        finally:
            other.close()
        feed.write(last)  # chunk 1 and close
        feed.flush()
        child.join(60)
    assert result == [0] and _answers(out.getvalue()) == ["ready", "done"]
    assert _stored(path) == 2 * CHUNK
    store.close()


def test_a_failing_child_with_a_group_open_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy  # noqa: F811  (the fixture)
) -> None:
    """A real preparation: chunks of 500 rows, the row refused near the end, so that the child
    has committed groups and holds an uncommitted one when it fails: create() raises the
    store's error, and no campaign, no recipient row is left in the file."""
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 500)
    db = tmp_path / "c.db"
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(12_000)))
    with Gateway(config(f"sqlite:///{db}"), plugins=plugins()) as gw:
        gw.tenant("acme").optouts.list()  # the schema is made
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON campaign_recipients WHEN NEW.phone = '+2348030011900' "
                         "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
        with pytest.raises(StoreError, match="refused by a trigger"):
            gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path), campaign_id="x")
        assert gw.tenant("acme").campaigns.list() == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM campaign_recipients").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0
    assert len(spy.children) == 1 and exited(spy.children[0]) and spy.thread_chunks == 0


# ------------------------------------------------------------------------- the store's write group
def _row(seq: int, key: str | None = None) -> RecipientRow:
    phone = f"+23480{seq:08d}"
    return RecipientRow(seq, phone, RecipientState.PENDING, {}, key=key or phone)


def test_a_write_group_commits_only_when_told_and_each_write_stays_whole(tmp_path: Path) -> None:
    path, store = _store(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON campaign_recipients WHEN NEW.seq = 99 "
                     "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with store._write_group() as group:
        assert not group.open and group.age() == 0.0
        store.add_recipients("acme", "x", [_row(1), _row(2)])
        assert group.open and _stored(path) == 0  # not committed: another connection sees nothing
        assert len(store.recipients("acme", "x")) == 2  # the group's reads see its writes
        with pytest.raises(StoreError, match="refused"):
            store.add_recipients("acme", "x", [_row(3), _row(99)])  # all or nothing: row 3 is not kept
        assert [r.seq for r in store.recipients("acme", "x")] == [1, 2]
        group.commit()
        assert not group.open and _stored(path) == 2
        store.add_recipients("acme", "x", [_row(4)])
        with pytest.raises(RuntimeError, match="open on this store already"):
            with store._write_group():
                pass
    # the block ended with row 4 uncommitted: rolled back
    assert [r.seq for r in store.recipients("acme", "x")] == [1, 2] and _stored(path) == 2
    store.add_recipients("acme", "x", [_row(5)])  # outside a group: committed at once
    assert _stored(path) == 3
    store.close()


def test_a_write_group_left_by_an_exception_rolls_back(tmp_path: Path) -> None:
    path, store = _store(tmp_path)
    with pytest.raises(KeyError), store._write_group():
        store.add_recipients("acme", "x", [_row(1)])
        raise KeyError("boom")
    assert _stored(path) == 0 and store.recipients("acme", "x") == []
    store.close()
