"""A campaign preparation writing in a process of its own (smsgate.campaigns.writer_process).

The same result as the writer thread, chunk for chunk (including a hand-over mid-way); a child
that fails, an audience that fails, Ctrl-C and a parent killed leave nothing behind and no
process; a child that cannot start leaves the writing to the thread. Real SQLite files, real
child processes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.campaigns import CsvAudience, writer_process
from smsgate.campaigns import preparation as prep_mod
from smsgate.campaigns.audiences import Record
from smsgate.campaigns.storing import ChunkStore
from smsgate.errors import StoreError, ValidationError
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import SQLiteStore
from test_prepare import comparable, config, plugins, prepare, reference, write_messy_csv


class Spy:
    """Each ChildWriter started, and which chunk the writer thread handed over at."""

    def __init__(self) -> None:
        self.children: list[writer_process.ChildWriter] = []
        self.finished = 0
        self.thread_chunks = 0
        #: the writer thread writes this many chunks itself, then waits for the child to be ready
        self.hand_over_after = 0
        #: wait for the child to fail instead (one that cannot start)
        self.wait_gone = False


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    real_init, real_finish, real_write = (writer_process.ChildWriter.__init__, writer_process.ChildWriter.finish,
                                          ChunkStore.write)

    def init(self: writer_process.ChildWriter, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        spy.children.append(self)
        if spy.hand_over_after == 0:  # ready before the first chunk: it writes them all
            ready_or_gone(self, spy.wait_gone)

    def finish(self: writer_process.ChildWriter) -> Any:
        spy.finished += 1
        return real_finish(self)

    def write(self: ChunkStore, *args: Any) -> None:  # in the parent: the thread's own writes
        real_write(self, *args)
        spy.thread_chunks += 1
        if spy.children and spy.thread_chunks == spy.hand_over_after:
            ready_or_gone(spy.children[0], False)

    monkeypatch.setattr(writer_process.ChildWriter, "__init__", init)
    monkeypatch.setattr(writer_process.ChildWriter, "finish", finish)
    monkeypatch.setattr(ChunkStore, "write", write)
    monkeypatch.setattr(writer_process, "MIN_BYTES", 0)
    monkeypatch.delenv(writer_process.ENVIRONMENT, raising=False)
    return spy


def ready_or_gone(child: writer_process.ChildWriter, gone: bool) -> None:
    """Wait until the child is ready (or, with ``gone``, has failed); a child that fails instead
    ends the wait (the test then fails on what it finds)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not child.gone.is_set() and (gone or not child.ready.is_set()):
        time.sleep(0.01)


def exited(child: writer_process.ChildWriter) -> bool:
    return child._proc.poll() is not None


#: the child's two ways of answering (``writer_process.ANSWERS_ON_PIPE``): a pipe of its own
#: (POSIX), its standard output (Windows, run here on POSIX)
CHANNELS = pytest.mark.parametrize("answers_on_pipe", [True, False], ids=["pipe", "stdout"])


@CHANNELS
@pytest.mark.parametrize("hand_over_after", [0, 5])
def test_the_writer_process_stores_what_the_writer_thread_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy, hand_over_after: int, answers_on_pipe: bool
) -> None:
    """Opt-outs, duplicates across chunks, the first errors and the samples: the same, whether
    the child writes every chunk or takes over after five (errors kept on both sides)."""
    monkeypatch.setattr(writer_process, "ANSWERS_ON_PIPE", answers_on_pipe)
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 1500)
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    monkeypatch.setattr(prep_mod, "MAX_ERRORS", 120)
    monkeypatch.setattr(writer_process, "MIN_BYTES", None)
    threaded = prepare(tmp_path, "thread", csv_path, optouts)
    assert spy.children == [] and spy.thread_chunks > 50
    monkeypatch.setattr(writer_process, "MIN_BYTES", 0)
    spy.thread_chunks, spy.hand_over_after = 0, hand_over_after
    child = prepare(tmp_path, "child", csv_path, optouts)
    assert len(spy.children) == 1 and spy.finished == 1 and exited(spy.children[0])
    assert spy.thread_chunks == hand_over_after  # the rest was the child's
    assert comparable(*child) == comparable(*threaded)
    preview, rows = child
    assert {r.seq: (r.state.value, r.reason) for r in rows} == reference(csv_path, optouts)
    assert len(preview.errors) == 120 and len(preview.samples) == 5


@CHANNELS
def test_a_failing_child_fails_the_creation_with_its_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy, answers_on_pipe: bool
) -> None:
    """SQLite refuses a row in the child: create() raises that StoreError, nothing is stored."""
    monkeypatch.setattr(writer_process, "ANSWERS_ON_PIPE", answers_on_pipe)
    db = tmp_path / "c.db"
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(3000)))
    with Gateway(config(f"sqlite:///{db}"), plugins=plugins()) as gw:
        gw.tenant("acme").optouts.list()  # the schema is made
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON campaign_recipients WHEN NEW.phone = '+2348030002500' "
                         "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
        with pytest.raises(StoreError, match="refused by a trigger"):
            gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path), campaign_id="x")
        assert gw.tenant("acme").campaigns.list() == []
        assert gw.store.recipient_counts("acme", "x") == {}
    assert len(spy.children) == 1 and exited(spy.children[0])


def test_an_audience_failing_after_the_hand_over_leaves_nothing(tmp_path: Path, spy: Spy) -> None:
    """A bad byte on the last line of a file the child was writing: the typed error naming the
    line, no campaign, no recipient (the child is killed before the campaign is deleted)."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_bytes(b"phone,name\n" + b"".join(b"0803%07d,n%d\n" % (i, i) for i in range(20_000))
                         + b"08039999999,Zo\xe9\n")
    with Gateway(config(f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
        with pytest.raises(ValidationError) as info:
            gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path), campaign_id="x")
        assert info.value.location == "list.csv, line 20002"
        assert gw.tenant("acme").campaigns.list() == []
        assert gw.store.recipient_counts("acme", "x") == {}
    assert len(spy.children) == 1 and spy.finished == 0 and exited(spy.children[0])


class Interrupted(CsvAudience):
    """Ctrl-C after ``at`` rows."""

    at = 4000

    def records(self) -> Iterator[Record]:
        for n, record in enumerate(super().records()):
            if n == self.at:
                raise KeyboardInterrupt
            yield record


@CHANNELS
def test_ctrl_c_while_the_child_writes_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy, answers_on_pipe: bool
) -> None:
    monkeypatch.setattr(writer_process, "ANSWERS_ON_PIPE", answers_on_pipe)
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(20_000)))
    with Gateway(config(f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
        audience = Interrupted(csv_path)
        assert writer_process.usable(gw.store, audience)
        with pytest.raises(KeyboardInterrupt):
            gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=audience, campaign_id="x")
        assert gw.tenant("acme").campaigns.list() == []
        assert gw.store.recipient_counts("acme", "x") == {}
    assert len(spy.children) == 1 and exited(spy.children[0])


def test_a_child_that_cannot_start_leaves_the_writing_to_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy
) -> None:
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 600)
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    broken = tmp_path / "bin" / "python3"  # named as Python is, exits at once, answers nothing
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    spy.wait_gone = True
    _preview, rows = prepare(tmp_path, "nochild", csv_path, optouts)
    assert len(spy.children) == 1 and spy.finished == 0 and spy.thread_chunks > 30
    assert {r.seq: (r.state.value, r.reason) for r in rows} == reference(csv_path, optouts)


def test_which_preparations_use_a_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("phone\n" + "08031234567\n" * 100)
    audience = CsvAudience(csv_path)
    store = SQLiteStore(str(tmp_path / "s.db"))
    monkeypatch.delenv(writer_process.ENVIRONMENT, raising=False)
    monkeypatch.setattr(writer_process, "MIN_BYTES", 1000)
    assert writer_process.usable(store, audience)
    assert not writer_process.usable(SQLiteStore(":memory:"), audience)
    assert not writer_process.usable(MemoryStore(), audience)
    monkeypatch.setattr(writer_process, "MIN_BYTES", 10_000)
    assert not writer_process.usable(store, audience)  # a small file
    monkeypatch.setattr(writer_process, "MIN_BYTES", 1000)
    for off in ("0", "off", "No", "false"):
        monkeypatch.setenv(writer_process.ENVIRONMENT, off)
        assert not writer_process.usable(store, audience)
    monkeypatch.setenv(writer_process.ENVIRONMENT, "1")
    assert writer_process.usable(store, audience)

    class Located(CsvAudience):
        def locate(self, line: int) -> str:
            return f"row {line}"

    assert not writer_process.usable(store, Located(csv_path))  # the child could not name its rows
    for program, ok in (("/usr/bin/uwsgi", False), ("", False), ("/opt/app/bundle", False),
                        ("/usr/bin/python3.11", True), ("C:\\Python311\\python.exe", True), ("/usr/bin/pypy3", True)):
        monkeypatch.setattr(sys, "executable", program)
        assert writer_process.usable(store, audience) is ok, program


def test_a_killed_parent_leaves_no_child_behind(tmp_path: Path) -> None:
    """SIGKILL of the application mid-preparation: its child sees its pipe closed and exits."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(400_000)))
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parent)]!r}
        from smsgate import Gateway
        from smsgate.campaigns import CsvAudience
        from test_prepare import config, plugins
        with Gateway(config("sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
            gw.tenant("acme").campaigns.create("x", text="Hi {{name}}", audience=CsvAudience({str(csv_path)!r}))
    """))
    env = {**os.environ, writer_process.ENVIRONMENT: "1"}
    app = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        child = None
        deadline = time.monotonic() + 60
        while child is None and time.monotonic() < deadline and app.poll() is None:
            child = _child_of(app.pid)
            time.sleep(0.05)
        assert child is not None, "no writer process started"
        time.sleep(0.5)
        app.send_signal(signal.SIGKILL)
        app.wait()
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child}").exists() and _state(child) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{child}").exists() or _state(child) == "Z"
    finally:
        if app.poll() is None:
            app.kill()


def _child_of(pid: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"writer_process" in cmdline:
            return int(entry.name)
    return None


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_the_child_runs_this_smsgate_whatever_the_current_folder_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy
) -> None:
    """A folder named smsgate (or any module's name) in the current folder shadows nothing."""
    work = tmp_path / "cwd"
    (work / "smsgate").mkdir(parents=True)
    (work / "smsgate" / "__init__.py").write_text("raise ImportError('not this smsgate')\n")
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 300)
    monkeypatch.chdir(work)
    _preview, rows = prepare(tmp_path, "cwd", csv_path, optouts)
    assert spy.finished == 1 and spy.thread_chunks == 0
    assert {r.seq: (r.state.value, r.reason) for r in rows} == reference(csv_path, optouts)
