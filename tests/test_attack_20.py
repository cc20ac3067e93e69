"""Attacks on the preparation's writer process (smsgate.campaigns.writer_process): what a user's
audience, ids and interruptions can do to it. Real SQLite files, real child processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate._enum import StrEnum
from smsgate.campaigns import CsvAudience, writer_process
from smsgate.campaigns import preparation as prep_mod
from smsgate.campaigns.audiences import AudienceRow
from smsgate.store.base import RecipientRow
from test_cli_interrupt import wait_until
from test_prepare import config, plugins
from test_writer_process import Spy, _child_of, _state, exited, spy  # noqa: F401  (a fixture)


class Tier(StrEnum):
    GOLD = "gold"


class Tiered(CsvAudience):
    """Rows of its own: every row gets a ``tier`` field, an enum member (a ``str`` subclass),
    and its number as a ``str`` subclass too."""

    def rows(self) -> Any:
        for r in super().rows():
            yield AudienceRow(r.seq, Number(r.phone), {**r.fields, "tier": Tier.GOLD}, r.error, r.location, r.line)


class Number(str):
    """A number as a (hypothetical) phone-number type of the application's gives it."""


def _create(tmp_path: Path, name: str, audience: CsvAudience, campaign_id: Any = "x",
            text: str = "Hi {name}, {tier} member") -> tuple[Any, list[RecipientRow]]:
    with Gateway(config(f"sqlite:///{tmp_path / name}.db"), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("x", text=text, audience=audience, campaign_id=campaign_id)
        return camp.preview(), gw.store.recipients("acme", camp.campaign_id, limit=1_000_000)


def _rows(rows: list[RecipientRow]) -> list[tuple[Any, ...]]:
    return sorted((r.seq, r.phone, r.state, r.fields, r.reason, r.detail, r.segments, r.provider) for r in rows)


def test_rows_of_an_audience_s_own_with_str_subclasses_are_written_by_the_child_as_by_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy  # noqa: F811  (the fixture)
) -> None:
    """An enum member in a row's fields (a str subclass marshal refuses) and a number of a str
    subclass: the thread stored them; the child failed the creation with "unmarshallable object"."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(200))
                        + "not a number,Zed\n" + "08030000007,again\n")
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    monkeypatch.setattr(writer_process, "MIN_BYTES", None)
    threaded = _create(tmp_path, "thread", Tiered(csv_path))
    assert spy.children == []
    monkeypatch.setattr(writer_process, "MIN_BYTES", 0)
    spy.thread_chunks = 0
    child = _create(tmp_path, "child", Tiered(csv_path))
    assert len(spy.children) == 1 and spy.finished == 1 and spy.thread_chunks == 0 and exited(spy.children[0])
    assert _rows(child[1]) == _rows(threaded[1])
    assert child[0].model_dump() == threaded[0].model_dump()
    assert child[1][0].fields == {"name": "n0", "tier": "gold"}
    assert child[0].skipped == {"invalid": 1, "duplicate": 1}


class CampaignId(StrEnum):
    SPRING = "spring-2027"


def test_a_campaign_id_of_a_str_subclass_neither_hangs_the_creation_nor_changes_its_result(
    tmp_path: Path, spy: Spy  # noqa: F811  (the fixture)
) -> None:
    """campaign_id=an enum member: the child's start raised ValueError in the writer thread,
    which died; create() then waited forever for it to take the next chunk."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(12_000)))
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(
        _create(tmp_path, "id", CsvAudience(csv_path), CampaignId.SPRING, "Hi {name}")), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "create() hangs"
    (preview, rows), = result
    assert preview.recipients == 12_000 and len(rows) == 12_000
    assert len(spy.children) == 1 and spy.finished == 1 and exited(spy.children[0])


def test_a_killed_parent_s_child_exits_even_when_a_fork_of_the_parent_holds_its_pipe(tmp_path: Path) -> None:
    """The application forks (multiprocessing's default on Linux, a pre-forking server) while a
    preparation runs: the fork inherits the write end of the child's pipe, so once the
    application is killed the child never read the end of its input and lived on."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(400_000)))
    forked = tmp_path / "forked.pid"
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, threading, time
        sys.path[:0] = {[str(Path(__file__).parent)]!r}
        from smsgate import Gateway
        from smsgate.campaigns import CsvAudience, writer_process
        from test_prepare import config, plugins
        started = []
        real = writer_process.ChildWriter.__init__
        def init(self, *args, **kwargs):
            real(self, *args, **kwargs)
            started.append(self)
        writer_process.ChildWriter.__init__ = init
        with Gateway(config("sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
            camps = gw.tenant("acme").campaigns
            threading.Thread(target=lambda: camps.create("x", text="Hi {{name}}", audience=CsvAudience({str(csv_path)!r})),
                             daemon=True).start()
            while not started:
                time.sleep(0.01)
            pid = os.fork()
            if pid == 0:  # a worker of the application's: it lives on (the test ends it)
                time.sleep(120)
                os._exit(0)
            open({str(forked)!r}, "w").write(str(pid))
            time.sleep(120)
    """))
    env = {**os.environ, writer_process.ENVIRONMENT: "1"}
    app = subprocess.Popen([sys.executable, str(script)], env=env)
    sleeper = None
    try:
        wait_until(lambda: forked.exists() and forked.read_text().strip(), "the fork")
        sleeper = int(forked.read_text())
        child = _child_of(app.pid)
        assert child is not None, "no writer process started"
        app.send_signal(signal.SIGKILL)  # (the child may not have started its work yet: it must exit too)
        app.wait()
        wait_until(lambda: not Path(f"/proc/{child}").exists() or _state(child) == "Z", "the child's exit", 30)
    finally:
        if app.poll() is None:
            app.kill()
        if sleeper is not None:
            os.kill(sleeper, signal.SIGKILL)


def write_app(tmp_path: Path, csv_path: Path, path: list[str]) -> Path:
    """An application script (``path`` put first on its ``sys.path``, then this folder) that
    creates a campaign of ``csv_path`` with the writer process taking every chunk, and prints
    the preview's recipients and how many children finished."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = {[*path, str(Path(__file__).parent)]!r}
        from smsgate import Gateway
        from smsgate.campaigns import CsvAudience, writer_process
        from test_prepare import config, plugins
        writer_process.MIN_BYTES = 0
        finished = []
        real_init, real_finish = writer_process.ChildWriter.__init__, writer_process.ChildWriter.finish
        def init(self, *args, **kwargs):
            real_init(self, *args, **kwargs)
            deadline = time.monotonic() + 20
            while not self.ready.is_set() and not self.gone.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)  # it takes every chunk
        def finish(self):
            finished.append(self)
            return real_finish(self)
        writer_process.ChildWriter.__init__, writer_process.ChildWriter.finish = init, finish
        with Gateway(config("sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
            camp = gw.tenant("acme").campaigns.create("x", text="Hi {{name}}", audience=CsvAudience({str(csv_path)!r}))
            print(camp.preview().recipients, len(finished))
    """))
    return script


def test_the_child_imports_from_where_the_application_imports(tmp_path: Path) -> None:
    """An application that puts its dependencies' folder on sys.path itself (a vendored folder, a
    ``pip install --target`` one), or runs with PYTHONSAFEPATH and PYTHONPATH: the child did not
    find them (a ModuleNotFoundError traceback on standard error) and the thread wrote everything."""
    import sysconfig

    site = sysconfig.get_path("purelib")  # this venv's: the bare interpreter below has no httpx
    base = Path(sys.base_prefix) / "bin" / Path(sys.executable).name
    if not base.exists() or subprocess.run([str(base), "-c", "import httpx"], capture_output=True).returncode == 0:
        pytest.skip("needs a base interpreter without this venv's packages")
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(30_000)))
    script = write_app(tmp_path, csv_path, [site, str(Path(__file__).parents[1] / "src")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGATE_", "PYTHON"))}
    for extra in ({}, {"PYTHONSAFEPATH": "1", "PYTHONPATH": site}):
        done = subprocess.run([str(base), str(script)], env={**env, **extra}, capture_output=True, text=True,
                              timeout=100)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["30000", "1"], (extra, done.stderr)
        assert "Traceback" not in done.stderr, (extra, done.stderr)


@pytest.mark.parametrize("variant", ["cp1252;", pytest.param("wide", marks=pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10's csv refuses the NUL of its last line (test_prepare)")),
    "sender-provider"])
def test_csv_options_and_odd_values_come_out_the_same_from_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy, variant: str  # noqa: F811  (the fixture)
) -> None:
    """What held: a cp1252 file with ';' and a fields mapping, a NUL and a near-limit field and
    300 columns, a campaign with a sender and a forced provider, opt-outs for one sender only."""
    csv_path = tmp_path / "list.csv"
    kwargs: dict[str, Any] = {}
    text = "Hi {name}"
    if variant == "cp1252;":
        csv_path.write_bytes(("tel;nom;ville\n" + "".join(f"0803{i:07d};Zoë {i};Cr€te\n" for i in range(300))
                              + "08030000009;dup;x\n").encode("cp1252"))
        kwargs = {"encoding": "cp1252", "delimiter": ";", "phone": "tel", "fields": {"name": "nom"}}
    elif variant == "wide":
        extra = ",".join(f"c{k}" for k in range(300))
        csv_path.write_text(f"phone,name,{extra}\n" + "".join(
            f"0803{i:07d},{'n' * 100_000 if i == 7 else 'Ọlá' + str(i)},{','.join(str(k) for k in range(300))}\n"
            for i in range(200)) + "08031111111,a\0b," + ",".join("x" * 300) + "\n", encoding="utf-8")
    else:
        csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(300)))
        kwargs = {}
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    results = []
    for mode in (None, 0):
        monkeypatch.setattr(writer_process, "MIN_BYTES", mode)
        with Gateway(config(f"sqlite:///{tmp_path / f'{variant}{mode}'}.db"), plugins=plugins()) as gw:
            t = gw.tenant("acme")
            t.optouts.add("08030000003")
            t.optouts.add("08030000004", scope="BRAND")
            extra_args: dict[str, Any] = {"sender": "BRAND", "provider": "intl"} if variant == "sender-provider" else {}
            camp = t.campaigns.create("x", text=text, audience=CsvAudience(csv_path, **kwargs), campaign_id="x",
                                      **extra_args)
            results.append((camp.preview().model_dump(), _rows(gw.store.recipients("acme", "x", limit=10_000))))
    assert len(spy.children) == 1 and spy.finished == 1
    assert results[0] == results[1]
    assert results[0][0]["skipped"].get("opted_out", 0) >= 1


class Interrupted(CsvAudience):
    """Ctrl-C after ``at`` rows (the child has taken over by then)."""

    at = 4000

    def records(self) -> Any:
        for n, record in enumerate(super().records()):
            if n == self.at:
                raise KeyboardInterrupt
            yield record


def test_a_second_ctrl_c_while_the_preparation_stops_leaves_no_rows_and_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy  # noqa: F811  (the fixture)
) -> None:
    """Ctrl-C, then Ctrl-C again while the writer winds down (a notebook's "interrupt" pressed
    twice; the application lives on): the chunks queued were still handed to the child, which
    wrote them after create() had removed the campaign (recipients of no campaign), and the
    child was never stopped (a process waiting for more, for as long as the application ran)."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(20_000)))
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 500)
    real_join = threading.Thread.join
    pressed: list[str] = []

    def join(self: threading.Thread, timeout: float | None = None) -> None:
        if self.name == "smsgate-campaign-writer" and not pressed:
            pressed.append(self.name)
            raise KeyboardInterrupt  # the second Ctrl-C, while close() waits for the writer thread
        real_join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", join)
    with Gateway(config(f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
        with pytest.raises(KeyboardInterrupt):
            gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=Interrupted(csv_path), campaign_id="x")
        assert pressed
        (child,) = spy.children
        wait_until(lambda: exited(child), "the child's end", 20)
        time.sleep(0.5)  # (what a writer still going would write meanwhile)
        assert gw.tenant("acme").campaigns.list() == []
        assert gw.store.recipient_counts("acme", "x") == {}


def test_what_the_interpreter_prints_at_start_up_does_not_turn_the_child_off(tmp_path: Path) -> None:
    """A sitecustomize (or a .pth file) that prints on standard output: the child's first bytes
    were that text, not a frame (read as a frame of some 1.7 GB); the parent never saw it ready
    and the thread wrote everything."""
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "sitecustomize.py").write_text("print('hello from sitecustomize')\n")
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"0803{i:07d},n{i}\n" for i in range(30_000)))
    script = write_app(tmp_path, csv_path, [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGATE_")}
    done = subprocess.run([sys.executable, str(script)], env={**env, "PYTHONPATH": str(custom)}, capture_output=True,
                          text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hello", "from", "sitecustomize", "30000", "1"], done.stderr


def test_a_child_taking_over_once_the_errors_and_samples_are_kept_is_sent_no_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy  # noqa: F811  (the fixture)
) -> None:
    """The writer thread kept every error and sample before the child was ready: the child
    started full and never said so (it says so when it becomes full), so every later chunk
    carried each row's text and number as given, for nothing (some 40% more to marshal)."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("phone,name\n" + "".join(f"{'x' if i < 40 else '0803'}{i:07d},n{i}\n" for i in range(2_000)))
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 50)
    monkeypatch.setattr(prep_mod, "MAX_ERRORS", 10)
    spy.hand_over_after = 2  # the thread writes the first two chunks: 40 errors, 5 samples
    sent: list[bool] = []
    real_write = writer_process.ChildWriter.write

    def write(self: writer_process.ChildWriter, *args: Any) -> None:
        sent.append(self.full)
        real_write(self, *args)

    monkeypatch.setattr(writer_process.ChildWriter, "write", write)
    with Gateway(config(f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path))
        preview = camp.preview()
    assert len(preview.errors) == 10 and len(preview.samples) == 5 and preview.recipients == 1960
    assert spy.finished == 1 and len(sent) == 38 and all(sent)
