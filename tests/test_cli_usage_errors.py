"""A value the command-line parser refuses (typer's and click's own checks: a number out of its
range, not a number, not one of a choice, a missing option or argument, an unknown option or
command) ends as smsgate's own errors do: one ``error: ...`` line on stderr naming the flag or
argument, exit code 2. It was click's box: a ``Usage:`` line, ``Try '... --help' for help.``
and the error in a frame cut at 80 columns. ``--help`` and a bare group still show help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smsgate.cli import app
from smsgate.cli._common import ERROR_EXIT

runner = CliRunner()

#: (command line, the start of the one line, a part of the rest). The start names the flag
#: (``field '--x'``) or the argument (``argument 'phone'``, the name ``--help`` lists).
BAD = [
    (["optout", "list", "--limit", "0"], "error: field '--limit': ", "greater than or equal to 1"),
    (["optout", "list", "--limit", "-3"], "error: field '--limit': ", "greater than or equal to 1"),
    (["optout", "list", "--limit", "many"], "error: field '--limit': ", "integer"),
    (["messages", "--status", "bogus"], "error: field '--status': ", "'bogus' is not one of 'queued'"),
    (["store", "purge", "--older-than", "-5"], "error: field '--older-than': ", "not a duration: '-5'"),
    (["store", "purge", "--older-than", "1x"], "error: field '--older-than': ",
     "not a duration: '1x' (expected e.g. 30s, 5m, 2h, 1d)"),
    (["store", "purge"], "error: field '--older-than': ", "required and not given"),
    (["optout", "check"], "error: argument 'phone': ", "required and not given"),
    (["contacts", "show"], "error: argument 'ID': ", "required and not given"),
    (["optout", "list", "--limit"], "error: ", "'--limit' requires an argument"),
    (["optout", "list", "--bogus"], "error: ", "no such option: --bogus"),
    (["messages", "--limit", "5", "extra"], "error: ", "unexpected extra argument"),
    (["bogus"], "error: ", "no such command 'bogus'"),
]


def _assert_one_line(code: int, stdout: str, stderr: str, start: str, part: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == ERROR_EXIT == 2, (code, stdout, stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith(start) and part in lines[0], lines[0]
    assert stdout == "", stdout
    for box in ("Usage:", "Try '", "╭", "│", "Error"):
        assert box not in stderr, stderr


@pytest.mark.parametrize(("args", "start", "part"), BAD, ids=[" ".join(case[0]) for case in BAD])
def test_a_value_the_parser_refuses_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      args: list[str], start: str, part: str) -> None:
    monkeypatch.chdir(tmp_path)  # no smsgate.toml: nothing reaches a store
    out = runner.invoke(app, args, env={"COLUMNS": "80", "SMSGATE_CONFIG": ""})
    _assert_one_line(out.exit_code, out.stdout, out.stderr, start, part)


@pytest.mark.parametrize(("args", "line"), [
    (["optout", "list", "--bogus"], "error: no such option: --bogus (see 'smsgate optout list --help')"),
    (["store", "purge"], "error: field '--older-than': required and not given (see 'smsgate store purge --help')"),
    (["optout", "list", "--limit", "0"], "error: field '--limit': input should be greater than or equal to 1"),
])
def test_an_error_not_about_a_value_given_points_at_the_commands_help(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], line: str) -> None:
    """What click's box said in its ``Try ... --help`` line is kept, inside the one line, for an
    error that is not about a value given (an unknown option, a missing one); a bad value's
    line says what is wrong with it instead."""
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, args, prog_name="smsgate")
    assert out.exit_code == 2 and out.stderr.strip() == line, out.stderr


@pytest.mark.parametrize(("args", "start", "part"), [BAD[0], BAD[3], BAD[7]], ids=["range", "choice", "argument"])
def test_python_m_smsgate_prints_the_same_line(tmp_path: Path, args: list[str], start: str, part: str) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("SMSGATE_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "smsgate", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    _assert_one_line(done.returncode, done.stdout, done.stderr, start, part)


def test_help_and_a_bare_group_still_show_help(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    helped = runner.invoke(app, ["optout", "list", "--help"])
    assert helped.exit_code == 0 and "Usage:" in helped.stdout and "--limit" in helped.stdout, helped.output
    for args in (["optout"], []):
        bare = runner.invoke(app, args)
        assert "Usage:" in bare.stdout and "error:" not in bare.output, bare.output
        assert bare.exit_code == 2  # as before: click's code for a group given no command


def test_what_was_typed_is_shown_not_obeyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser quotes what was typed (an unknown option); an escape sequence in it is written
    out, as in smsgate's own error lines, not sent to the terminal (which would clear it)."""
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, ["optout", "list", "--x\x1b[2J"], prog_name="smsgate")
    assert out.exit_code == 2
    assert out.stderr.strip() == "error: no such option: --x\\x1b[2J (see 'smsgate optout list --help')"
