"""Found by a new user working through the README and docs/ (helper newuser8): each test fails
without its fix."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from smsgate.cli import app

runner = CliRunner()


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_command_help_paragraphs_have_no_hard_line_breaks() -> None:
    """A docstring's line breaks (the source's 100 columns) reached the help as written: on an
    80-column terminal ``smsgate serve --help`` showed ``... are in the store. One`` and then
    ``process, no access log ...`` on a line of its own, and ``campaign create --help`` left
    ``fails`` and ``nothing`` alone on their lines; the commands list of ``campaign --help``
    broke ``create``'s and ``resume``'s lines in the middle. Paragraphs are now one line each
    for rich to wrap at the terminal's width."""
    root = typer.main.get_command(app)
    broken = [" ".join(path) for path, command in _commands(root)
              if any("\n" in para.strip() for para in re.split(r"\n\s*\n", command.help or ""))]
    assert broken == []


def test_serve_help_on_80_columns_wraps_cleanly() -> None:
    out = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "80"})
    assert out.exit_code == 0
    lines = [line.strip(" │") for line in out.output.splitlines()]
    assert "One" not in lines and "nothing" not in lines, out.output
    words = " ".join(" ".join(lines).split())
    assert "the reports and replies it took are in the store. One process, no access log" in words
