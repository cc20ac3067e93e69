"""Every code block of README.md and docs/ is run, so the examples cannot rot (issue 18).

One test per page, its blocks in order, in a fresh directory holding the documented project
files (getting-started's ``smsgate.toml``, campaigns' ``customers.csv``: the blocks marked
``<!-- file: NAME -->``), with the Squad emulator serving what ``smsgate sandbox`` would (its
URL replaces the sandbox's ``http://127.0.0.1:8801``; ``$SQUAD_SECRET_KEY`` is its sandbox key):

* ``python``: executed; the blocks of a page share one namespace, like a reader's session. A
  block marked ``<!-- continues: ... -->`` is the rest of the block before it (indented inside
  its ``with``) and runs joined to it.
* ``bash`` / ``console``: every command line runs in a subprocess (``smsgate`` is this
  environment's); it must exit 0. In a ``console`` block, the lines after a ``$ command`` are
  its output, and each must appear in what the command printed. The placeholders ``msg_01j...``
  and ``cmp_01j...`` stand for the last message and campaign id a command printed. A
  ``pip install`` line is skipped: this environment has every extra installed.
* ``toml``, ``json``, ``csv``: parsed (and written to the page's directory when marked ``file:``).
* ``text`` and blocks without a language show output; they are not code.

A block that cannot run standalone is marked ``<!-- not-run: reason -->`` just before it; the
test fails on an unmarked block it does not know how to run, and on a mark without a reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from smsgate import Gateway, Status
from smsgate.testing import EmulatorControl, LiveServer
from smsgate_squad.emulator import SANDBOX_SECRET_KEY, create_app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SANDBOX_URL = "http://127.0.0.1:8801"  # where `smsgate sandbox` serves Squad, whatever else is installed

PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell", "console"}
DATA = {"toml", "json", "csv"}
OUTPUT = {"text", ""}
MARK = re.compile(r"^\s*<!--\s*(not-run|file|continues)\s*:\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced code block: where it is, its language, its text and the mark before it."""

    page: Path
    line: int
    lang: str
    source: str
    mark: str | None = None
    mark_arg: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(page: Path, text: str | None = None) -> list[Block]:
    """The fenced code blocks of a Markdown page, each with the HTML-comment mark just before it."""
    tokens = MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8") if text is None else text)
    found = []
    for i, tok in enumerate(tokens):
        if tok.type not in ("fence", "code_block"):
            continue
        block = Block(page, (tok.map[0] + 1) if tok.map else 0, tok.info.strip().split(" ")[0].lower(),
                      tok.content)
        before = tokens[i - 1] if i else None
        if before is not None and before.type == "html_block":
            m = MARK.match(before.content.strip().splitlines()[-1])
            if m:
                block.mark, block.mark_arg = m.group(1), m.group(2)
        found.append(block)
    return found


def page_files(page: Path) -> dict[str, str]:
    """A recipe page's Python blocks by the file their first line names (``# shop/views.py``):
    the files of the project the page describes (its test writes and runs them)."""
    files: dict[str, str] = {}
    for block in code_blocks(page):
        if block.lang != "python":
            continue
        first = block.source.splitlines()[0]
        assert first.startswith("# ") and first[2:].split()[0].endswith(".py"), \
            f"{block.where}: the first line names no file"
        files[first[2:].split()[0]] = block.source
    return files


def project_files() -> dict[str, str]:
    """The files the docs tell a reader to create (blocks marked ``file: NAME``), by name."""
    files: dict[str, str] = {}
    for page in PAGES:
        for block in code_blocks(page):
            if block.mark == "file":
                assert block.mark_arg not in files, f"{block.where}: a second {block.mark_arg}"
                files[block.mark_arg] = block.source
    return files


@pytest.fixture(scope="module")
def squad() -> Iterator[LiveServer]:
    with LiveServer(create_app(delivery_delay=0.05)) as server:
        yield server


class Session:
    """A reader working through one page: a directory, an environment, a Python namespace."""

    def __init__(self, cwd: Path, squad_url: str) -> None:
        self.cwd = cwd
        self.squad_url = squad_url
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}
        self.last_ids: dict[str, str] = {}
        bin_dir = str(Path(sys.executable).parent)
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
        self.env = {**clean, "PATH": bin_dir + os.pathsep + clean.get("PATH", ""), "COLUMNS": "200",
                    "SQUAD_SECRET_KEY": SANDBOX_SECRET_KEY}

    def write(self, name: str, text: str) -> None:
        (self.cwd / name).write_text(text.replace(SANDBOX_URL, self.squad_url), encoding="utf-8")

    def python(self, source: str, where: str) -> None:
        code = compile(source, where, "exec")
        exec(code, self.namespace)  # the documented example, as a reader would run it

    def shell(self, block: Block) -> None:
        commands: list[tuple[str, list[str]]] = []
        if block.lang == "console":
            for line in block.source.splitlines():
                if line.startswith("$ "):
                    commands.append((line[2:], []))
                elif line.strip():
                    assert commands, f"{block.where}: output before any command: {line!r}"
                    commands[-1][1].append(line.strip())
        else:
            commands = [(line, []) for line in block.source.splitlines()
                        if line.strip() and not line.lstrip().startswith("#")]
        for command, expected in commands:
            if command.startswith("pip install "):
                continue  # the test environment has every extra
            for kind, placeholder in (("msg", "msg_01j..."), ("cmp", "cmp_01j...")):
                if placeholder in command:
                    assert kind in self.last_ids, f"{block.where}: no {kind} id printed before {command!r}"
                    command = command.replace(placeholder, self.last_ids[kind])
            assert shlex.split(command, comments=True)[0] == "smsgate", \
                f"{block.where}: {command!r} is not an smsgate command: mark the block not-run"
            out = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env, capture_output=True,
                                 text=True, timeout=120)
            assert out.returncode == 0, f"{block.where}: {command!r} exited {out.returncode}:\n{out.stdout}{out.stderr}"
            for kind in ("msg", "cmp"):
                ids = re.findall(rf"\b{kind}_[0-9a-z]{{20,}}\b", out.stdout)
                if ids:
                    self.last_ids[kind] = ids[-1]
            for line in expected:
                assert line in out.stdout, f"{block.where}: {command!r} printed {out.stdout!r}, not {line!r}"


def check_data(block: Block) -> None:
    if block.lang == "toml":
        tomllib.loads(block.source)
    elif block.lang == "json":
        json.loads(block.source)
    else:
        rows = list(csv.reader(io.StringIO(block.source)))
        assert rows and all(len(row) == len(rows[0]) for row in rows), f"{block.where}: ragged CSV"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_code_block_runs(page: Path, squad: LiveServer, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block of the page is run (or parsed) in order, unless marked not-run with a reason."""
    session = Session(tmp_path, squad.url)
    for name, text in project_files().items():
        session.write(name, text)
    for key in [k for k in os.environ if k.upper().startswith("SMSGATE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SQUAD_SECRET_KEY", SANDBOX_SECRET_KEY)
    monkeypatch.chdir(tmp_path)

    blocks = code_blocks(page)
    joined: set[int] = set()
    for i, block in enumerate(blocks):
        if block.mark == "not-run":
            assert block.mark_arg, f"{block.where}: a not-run mark needs a reason"
            continue
        if block.mark == "continues":
            assert block.lang in PYTHON and id(block) in joined, f"{block.where}: continues no block that ran"
            continue  # ran joined to the block it continues
        if block.lang in PYTHON:
            source = block.source
            for later in blocks[i + 1:]:  # its continuations, past the output shown between
                if later.mark == "continues":
                    source += later.source
                    joined.add(id(later))
                elif later.lang not in OUTPUT or later.mark is not None:
                    break
            session.python(source, block.where)
        elif block.lang in SHELL:
            session.shell(block)
        elif block.lang in DATA:
            check_data(block)
            if block.mark == "file":
                session.write(block.mark_arg, block.source)
        elif block.lang in OUTPUT:
            assert block.mark is None, f"{block.where}: output is not run; no mark needed"
        else:
            pytest.fail(f"{block.where}: no way to run a {block.lang!r} block: mark it not-run with a reason")
    assert_nothing_failed(tmp_path)


def assert_nothing_failed(cwd: Path) -> None:
    """The examples are meant to work: no message they sent through the sandbox failed or was lost.

    (An example that prints ``FAILED``, say with a wrong port in its configuration, still runs
    without an exception; the store says what happened.)
    """
    if not (cwd / "smsgate.db").exists():
        return
    with Gateway(str(cwd / "smsgate.toml")) as gw:
        records = gw.tenant("acme").messages(limit=100_000)
    bad = [(r.to, r.status, r.error) for r in records if r.status in (Status.FAILED, Status.UNKNOWN)]
    assert not bad, f"messages sent by the examples failed: {bad}"


def test_the_marks_are_read() -> None:
    """The parser finds marks, reasons and continuations (so the page tests cannot pass vacuously)."""
    page = ROOT / "docs" / "getting-started.md"
    blocks = code_blocks(page)
    assert any(b.mark == "file" and b.mark_arg == "smsgate.toml" for b in blocks)
    assert sum(b.lang in PYTHON and b.mark is None for b in blocks) >= 2
    sample = textwrap.dedent("""\
        <!-- not-run: needs a real vendor -->
        ```python
        raise SystemExit
        ```

        ```python
        x = 1
        ```
        """)
    first, second = code_blocks(page, sample)
    assert (first.mark, first.mark_arg, second.mark) == ("not-run", "needs a real vendor", None)


def test_getting_started_example_reruns_to_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18: a reader runs getting-started's example twice. The second run prints the first
    run's result (the idempotency key's message, not a new send and not FAILED), and the vendor
    handled the keyed message once (the emulator's own record)."""
    with LiveServer(create_app(delivery_delay=0.05)) as server:
        session = Session(tmp_path, server.url)
        for name, text in project_files().items():
            session.write(name, text)
        monkeypatch.setenv("SQUAD_SECRET_KEY", SANDBOX_SECRET_KEY)
        monkeypatch.chdir(tmp_path)
        example = next(b for b in code_blocks(ROOT / "docs" / "getting-started.md")
                       if b.lang in PYTHON and b.mark is None)
        printed = []
        for _ in range(2):
            Session(tmp_path, server.url).python(example.source, example.where)
            printed.append(capsys.readouterr().out.splitlines()[0])
        assert printed[0] == printed[1] and "FAILED" not in printed[0].upper(), printed
        sends = EmulatorControl(server.url).processed("/sms/send/instant", "POST")
        keyed = [r for r in sends if "Your order has shipped" in r.body]
        assert len(keyed) == 1, [r.body for r in sends]
