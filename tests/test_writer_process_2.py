"""More attacks on the preparation's writer process (smsgate.campaigns.writer_process): file
names that are not text, a store file moved while a campaign is prepared, and what the parent
and child say to each other. Real SQLite files, real child processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.campaigns import CsvAudience, writer_process
from smsgate.errors import StoreError
from smsgate.store.base import RecipientState
from smsgate.store.sqlite import SQLiteStore
from test_attack_20 import write_app
from test_prepare import config, plugins
from test_writer_process import Spy, exited, spy  # noqa: F401  (a fixture)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file names of any bytes are POSIX's")


def _write_csv(path: Path, rows: int, bad_last: bool = True) -> None:
    path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(rows))
                    + ("not a number,Zed\n" if bad_last else ""))


@posix_only
@pytest.mark.parametrize("mode", [None, 0])
def test_a_csv_file_whose_name_is_not_text_is_prepared_as_any_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy, mode: int | None  # noqa: F811  (the fixture)
) -> None:
    """A file named b"\\xff\\xfe-audience.csv" (not UTF-8: surrogate escapes in its str name):
    a skipped row's detail names the file, and writing it (the thread's or the child's) raised
    a raw UnicodeEncodeError; the campaign's audience description held the surrogates too."""
    csv_path = tmp_path / os.fsdecode(b"\xff\xfe-audience.csv")
    _write_csv(csv_path, 12_000)
    monkeypatch.setattr(writer_process, "MIN_BYTES", mode)
    with Gateway(config(f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path),
                                                  campaign_id="x")
        preview = camp.preview()
        assert preview.recipients == 12_000 and preview.skipped == {"invalid": 1}
        assert preview.errors[0].location == "\\xff\\xfe-audience.csv, line 12002"
        (skipped,) = gw.store.recipients("acme", "x", states=[RecipientState.SKIPPED])
        assert skipped.detail is not None and skipped.detail.startswith("\\xff\\xfe-audience.csv, line 12002: ")
        assert gw.store.get_campaign("acme", "x").spec["audience"] == "CSV \\xff\\xfe-audience.csv"
    assert spy.finished == (1 if mode == 0 else 0)


@posix_only
@pytest.mark.parametrize("name", [b"st\xffre/c-\xfe.db", b"a?b#c%41 d/e f?x=1#.db"])
def test_a_store_file_whose_path_is_not_text_or_reads_as_a_uri_is_written_by_the_child(
    tmp_path: Path, spy: Spy, name: bytes  # noqa: F811  (the fixture)
) -> None:
    """A path that is not UTF-8, or holds what a file: URI means something by (the child opens
    the store's file as one: ``?mode=rw``)."""
    db = tmp_path / os.fsdecode(name)
    db.parent.mkdir()
    csv_path = tmp_path / "list.csv"
    _write_csv(csv_path, 12_000)
    with Gateway(config(f"sqlite:///{db}"), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path))
        assert camp.preview().recipients == 12_000
        assert sum(gw.store.recipient_counts("acme", camp.campaign_id).values()) == 12_001
    assert spy.finished == 1 and spy.thread_chunks == 0 and exited(spy.children[0])


@pytest.mark.parametrize("how", ["removed", "renamed", "replaced"])
def test_a_store_file_moved_before_the_child_opens_it_is_never_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy, how: str  # noqa: F811  (the fixture)
) -> None:
    """The store's file removed, renamed, or replaced by another database while a campaign was
    being prepared, before the child opened it: the child made a new, empty database at the old
    path (a stray file; its close took the real database's WAL with it) or wrote every row into
    the other database. Now it opens only the parent's own file; the thread writes instead."""
    db, moved, other = tmp_path / "c.db", tmp_path / "moved.db", tmp_path / "other.db"
    csv_path = tmp_path / "list.csv"
    _write_csv(csv_path, 12_000)
    with Gateway(config(f"sqlite:///{other}"), plugins=plugins()) as gw:
        gw.tenant("acme").optouts.list()  # a database of smsgate's, without the campaign
    real_init = writer_process.ChildWriter.__init__

    def init(self: writer_process.ChildWriter, *args: Any, **kwargs: Any) -> None:
        if how == "removed":
            db.unlink()
        else:
            db.rename(moved)
            if how == "replaced":
                shutil.copy(other, db)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(writer_process.ChildWriter, "__init__", init)
    spy.wait_gone = True  # (the child never gets ready)
    with Gateway(config(f"sqlite:///{db}"), plugins=plugins()) as gw:
        gw.tenant("acme").optouts.list()
        camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path),
                                                  campaign_id="x")
        assert camp.preview().recipients == 12_000  # the thread wrote them, on the store's own connection
        assert sum(gw.store.recipient_counts("acme", "x").values()) == 12_001
        stray = db.exists()
    (child,) = spy.children
    assert spy.finished == 0 and exited(child) and not child.ready.is_set()
    assert "no longer the one the application opened" in str(child._failure())
    assert not stray or how == "replaced", "the child made a database at the store's old path"
    # (what SQLite does with a WAL file whose database was moved is its own: nothing more is asserted)


@pytest.mark.parametrize("variable", ["PYTHONDEVMODE", "PYTHONINSPECT"])
def test_the_child_is_quiet_whatever_the_environment_asks_of_the_interpreter(tmp_path: Path, variable: str) -> None:
    """PYTHONDEVMODE=1 (or PYTHONWARNINGS showing ResourceWarning): the child never closed the
    pipe it answers on, a ResourceWarning on standard error at each creation. PYTHONINSPECT=1:
    once done, the child printed "SystemExit: 0" as a traceback and went interactive."""
    csv_path = tmp_path / "list.csv"
    _write_csv(csv_path, 30_000, bad_last=False)
    script = write_app(tmp_path, csv_path, [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGATE_")}
    done = subprocess.run([sys.executable, str(script)], env={**env, variable: "1"}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["30000", "1"], done.stderr
    assert "Warning" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_store_opened_without_create_never_makes_a_database(tmp_path: Path) -> None:
    """What the child opens its parent's file with: an error naming the file, and no file."""
    missing = tmp_path / "missing.db"
    with pytest.raises(StoreError, match="unable to open database file") as info:
        SQLiteStore(str(missing), create=False)
    assert str(missing) in str(info.value)
    assert sorted(os.listdir(tmp_path)) == []
    made = SQLiteStore(str(tmp_path / "made.db"))
    made.migrate()
    again = SQLiteStore(str(tmp_path / "made.db"), create=False)
    assert again.file_id == made.file_id is not None and again.journal_mode() == "wal"
    again.close()
    made.close()


def test_a_child_killed_while_it_writes_fails_the_creation_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy  # noqa: F811  (the fixture)
) -> None:
    """The child SIGKILLed (the OOM killer) after it took over, mid-frame or mid-chunk."""
    csv_path = tmp_path / "list.csv"
    _write_csv(csv_path, 60_000, bad_last=False)
    real_write = writer_process.ChildWriter.write
    written: list[int] = []

    def write(self: writer_process.ChildWriter, *args: Any) -> None:
        written.append(1)
        if len(written) == 3:
            self._proc.send_signal(signal.SIGKILL)
        real_write(self, *args)

    monkeypatch.setattr(writer_process.ChildWriter, "write", write)
    with Gateway(config(f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
        with pytest.raises(StoreError, match="writer process ended without finishing"):
            gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path), campaign_id="x")
        assert gw.tenant("acme").campaigns.list() == []
        assert gw.store.recipient_counts("acme", "x") == {}
    assert len(spy.children) == 1 and exited(spy.children[0])


_CLOSED_FDS_APP = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from smsgate import Gateway
from smsgate.campaigns import CsvAudience, writer_process
from test_prepare import config, plugins
from test_writer_process import ready_or_gone

writer_process.MIN_BYTES = 0
seen = {"children": 0, "finished": 0}
real_init, real_finish = writer_process.ChildWriter.__init__, writer_process.ChildWriter.finish

def init(self, *args, **kwargs):
    real_init(self, *args, **kwargs)
    seen["children"] += 1
    ready_or_gone(self, False)

def finish(self):
    seen["finished"] += 1
    return real_finish(self)

writer_process.ChildWriter.__init__, writer_process.ChildWriter.finish = init, finish
with Gateway(config("sqlite:///" + sys.argv[2]), plugins=plugins()) as gw:
    for fd in map(int, sys.argv[4].split(",")):
        os.close(fd)  # an application (a daemon) that closed them
    camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(sys.argv[3]))
    seen["recipients"] = camp.preview().recipients
with open(sys.argv[5], "w") as f:
    json.dump(seen, f)
"""


@pytest.mark.skipif(os.name != "posix", reason="descriptors passed to the child are POSIX's")
@pytest.mark.parametrize("closed", ["0", "1", "0,1", "1,2", "0,1,2"])
def test_the_child_answers_when_the_application_closed_its_standard_input_or_output(
        tmp_path: Path, closed: str) -> None:
    """An application whose standard streams are closed (a daemon). With standard error closed
    too, the child failed (it had no descriptor 2 to send its output to) or the answers' pipe
    took descriptor 2 in the child, so the writer thread wrote everything (slow; correct). Now
    the pipe's ends are numbered above 2 and the child's standard error is /dev/null when the
    application has none: the child writes."""
    csv_path = tmp_path / "list.csv"
    _write_csv(csv_path, 12_000)
    out = subprocess.run([sys.executable, "-c", _CLOSED_FDS_APP, str(Path(__file__).parent), str(tmp_path / "c.db"),
                          str(csv_path), closed, str(tmp_path / "seen.json")], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"children": 1, "finished": 1, "recipients": 12_000}, seen


def test_the_child_starts_whatever_the_length_of_the_applications_sys_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy) -> None:  # noqa: F811  (the fixture)
    """A ``sys.path`` of more than 128 KiB (many folders, or long ones): it went to the child as
    one argument, which the system refuses past 128 KiB (E2BIG), so the child never started and
    the writer thread wrote everything. Now it goes on the child's standard input."""
    monkeypatch.setattr(sys, "path", [*sys.path, *(str(tmp_path / f"{i:04d}-{'x' * 200}") for i in range(800))])
    csv_path = tmp_path / "list.csv"
    _write_csv(csv_path, 12_000)
    with Gateway(config(f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path))
        assert camp.preview().recipients == 12_000
    assert spy.finished == 1 and spy.thread_chunks == 0 and exited(spy.children[0])


@pytest.mark.parametrize("flags, expected", [("-I", "-I"), ("-E", "-E"), ("-s", "-s"), ("-E -s", "-E -s"), ("", "")])
def test_the_child_runs_with_the_applications_isolation_flags(tmp_path: Path, flags: str, expected: str) -> None:
    """An application run with ``-I`` (isolated), ``-E`` or ``-s`` starts its writer child the
    same way (it used to start it without them: the user's site folder and its ``.pth`` files,
    the environment's ``PYTHON*`` variables, all back in the child)."""
    code = ("import json, sys; from smsgate.campaigns import writer_process as w; "
            "print(json.dumps(w._interpreter_flags()))")
    out = subprocess.run([sys.executable, *flags.split(), "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(writer_process.__file__).parents[2])})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected.split()
