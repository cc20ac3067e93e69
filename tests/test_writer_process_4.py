"""The preparation's writer process answering on its standard output: the way it runs where no
descriptor can be passed to a child (Windows), run here on POSIX
(``writer_process.ANSWERS_ON_PIPE = False``; tests/test_writer_process.py runs its results,
failures and Ctrl-C on both channels). What the child's interpreter prints on standard output
as it starts (a ``sitecustomize``, a ``.pth`` file) is not taken for its answers, on either
channel. Real SQLite files, real child processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smsgate.campaigns import preparation as prep_mod
from smsgate.campaigns import writer_process
from test_prepare import prepare, reference, write_messy_csv
from test_writer_process import Spy, exited, spy  # noqa: F401  (a fixture)


@pytest.fixture
def on_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_process, "ANSWERS_ON_PIPE", False)


@pytest.mark.parametrize("answers_on_pipe", [True, False])
def test_what_the_childs_interpreter_prints_as_it_starts_is_not_an_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy, answers_on_pipe: bool  # noqa: F811  (the fixture)
) -> None:
    """A ``sitecustomize`` that prints on standard output (text, and bytes that read as a frame's
    length): on its standard output the child's first answer came after them, and the parent
    read the printed bytes as a frame header (a length of ~1.7 GB: it waited for the child's end,
    which waited for the parent)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nsys.stdout.write('hello from sitecustomize\\n')\nsys.stdout.flush()\n"
        "sys.stdout.buffer.write(b'\\x00\\x00\\x00\\x05(\\x01\\x00\\x00\\x00')\nsys.stdout.flush()\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setattr(writer_process, "ANSWERS_ON_PIPE", answers_on_pipe)
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 600)
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    _preview, rows = prepare(tmp_path, "child", csv_path, optouts)
    assert len(spy.children) == 1 and spy.finished == 1 and spy.thread_chunks == 0 and exited(spy.children[0])
    assert {r.seq: (r.state.value, r.reason) for r in rows} == reference(csv_path, optouts)


def test_a_child_that_prints_without_end_as_it_starts_leaves_the_writing_to_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: Spy, on_stdout: None  # noqa: F811  (the fixture)
) -> None:
    """More than ``_MARK_WITHIN`` bytes before the mark: the child counts as broken (the parent
    stops reading, the child's next write fails) and the writer thread writes every chunk."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.stdout.write('x' * (3 << 20))\nsys.stdout.flush()\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p))
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 600)
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    _preview, rows = prepare(tmp_path, "nochild", csv_path, optouts)
    (child,) = spy.children
    assert spy.finished == 0 and not child.ready.is_set() and spy.thread_chunks > 30 and exited(child)
    assert {r.seq: (r.state.value, r.reason) for r in rows} == reference(csv_path, optouts)
