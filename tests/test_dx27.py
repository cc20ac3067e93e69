"""Frictions new users met on the command line (dx27): a broken plugin said twice by ``config
check``; ``optout remove`` of a number that was not opted out exiting 0 with its line on
stdout; ``--csv -`` named after its temporary copy (``stdin.csv``); no way to name the column
of the contacts' names; no CSV export of a campaign's results.

The command line runs as a user runs it (a subprocess, ``python -m smsgate``), on a real SQLite
store, against the Squad emulator served on loopback (ports 48350-48399); what was sent is read
from the emulator's own request record.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import smsgate
from smsgate.errors import ConfigError
from smsgate.plugins import sandbox_account
from smsgate.server import LiveServer
from smsgate.testing import EmulatorControl

SRC = str(Path(smsgate.__file__).resolve().parents[1])


@pytest.fixture
def squad() -> Iterator[str]:
    """The Squad emulator on a port of 48350-48399; its base URL."""
    app = {ep.name: ep for ep in entry_points(group="smsgate.emulators")}["squad"].load()
    for port in range(48360, 48400):  # (48350-48359: a sandbox started by hand)
        try:
            server = LiveServer(app(), port=port).start()
        except ConfigError:  # in use (another worker's test)
            continue
        break
    else:
        pytest.skip("no free port in 48360-48399")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def project(tmp_path: Path, squad: str) -> Path:
    """A user's directory: smsgate.toml (SQLite store, tenant acme through the emulator)."""
    account = sandbox_account("squad")
    options = ", ".join(f"{k} = {json.dumps(v)}" for k, v in account.settings.get("options", {}).items())
    creds = ", ".join(f"{k} = {json.dumps(v)}" for k, v in dict(account.credentials).items())
    (tmp_path / "smsgate.toml").write_text(
        f'store = "sqlite:///{tmp_path / "smsgate.db"}"\n\n[tenants.acme]\ndefault_region = "NG"\n\n'
        f'[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "{squad}"\nsender = "SMSGATE"\n'
        + (f"options = {{ {options} }}\n" if options else "") + f"credentials = {{ {creds} }}\n")
    return tmp_path


def smsgate_cli(project: Path, *args: str, stdin: str | None = None,
                path: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``smsgate ARGS`` in the user's directory (``path``: more directories on ``PYTHONPATH``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGATE_")}
    env["PYTHONPATH"] = os.pathsep.join([SRC, *(path or [])])
    env["COLUMNS"] = "300"
    return subprocess.run([sys.executable, "-m", "smsgate", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120, input=stdin)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: ...`` line of a command that failed (exit code 2), no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


# ------------------------------------------------------------------ 1. config check: a broken plugin said once
def _broken_plugin(where: Path, module: str) -> None:
    """An installed plugin 'boom' whose entry point's module is ``module`` (written by the caller)."""
    dist = where / "smsgate_boom-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: smsgate-boom\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[smsgate.providers]\nboom = dx27_boom_plugin\n")
    (where / "dx27_boom_plugin.py").write_text(module)


FAILS_TO_IMPORT = ("raise ImportError('needs libfoo 2')\n",
                   "provider plugin 'boom' (dx27_boom_plugin) failed to import: ImportError: needs libfoo 2")
HOOK_FAILS = ("from smsgate.hookspecs import hookimpl\n\n@hookimpl\ndef register_providers(register):\n"
              "    raise RuntimeError('hook boom')\n",
              "provider plugin dx27_boom_plugin: register_providers failed: RuntimeError: hook boom")


@pytest.mark.parametrize(("module", "why"), [FAILS_TO_IMPORT, HOOK_FAILS])
@pytest.mark.parametrize("args", [(), ("--json",)])
def test_config_check_warns_once_of_a_plugin_no_instance_uses(project: Path, tmp_path_factory: Any, module: str,
                                                              why: str, args: tuple[str, ...]) -> None:
    """No instance uses the broken plugin: the check passes (exit 0) and says it once, as the
    command's warning (as 'smsgate providers' does); it printed the library's bare log line."""
    plugins = tmp_path_factory.mktemp("plugins")
    _broken_plugin(plugins, module)
    done = smsgate_cli(project, "config", "check", *args, path=[str(plugins)])
    out = ok(done)
    assert "acme/squad" in out
    assert done.stderr.count(why) == 1, done.stderr
    assert done.stderr.strip() == f"warning: {why}", done.stderr


@pytest.mark.parametrize(("module", "why"), [FAILS_TO_IMPORT, HOOK_FAILS])
def test_config_check_says_a_broken_plugin_an_instance_uses_once(project: Path, tmp_path_factory: Any,
                                                                 module: str, why: str) -> None:
    """An instance of the configuration uses the broken plugin: one ``error:`` line naming the
    instance and why (exit 2). It was said twice: the library's log line as the plugins loaded,
    then the command's error."""
    plugins = tmp_path_factory.mktemp("plugins")
    _broken_plugin(plugins, module)
    with (project / "smsgate.toml").open("a") as toml:
        toml.write('\n[tenants.acme.providers.b]\nplugin = "boom"\nbase_url = "http://127.0.0.1:9"\n')
    line = error_line(smsgate_cli(project, "config", "check", path=[str(plugins)]))
    assert line == f"error: smsgate.toml: tenants.acme.providers.b.plugin: {why}"


def test_config_check_says_each_of_two_broken_plugins_once(project: Path, tmp_path: Path) -> None:
    """One broken plugin used by an instance (the error), another unused (a warning): each said once."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    _broken_plugin(plugins, FAILS_TO_IMPORT[0])
    dist = plugins / "smsgate_bang-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: smsgate-bang\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[smsgate.providers]\nbang = dx27_bang_plugin\n")
    (plugins / "dx27_bang_plugin.py").write_text("raise ImportError('needs libbar 3')\n")
    with (project / "smsgate.toml").open("a") as toml:
        toml.write('\n[tenants.acme.providers.b]\nplugin = "boom"\nbase_url = "http://127.0.0.1:9"\n')
    done = smsgate_cli(project, "config", "check", path=[str(plugins)])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert sorted(lines) == sorted([
        f"error: smsgate.toml: tenants.acme.providers.b.plugin: {FAILS_TO_IMPORT[1]}",
        "warning: provider plugin 'bang' (dx27_bang_plugin) failed to import: ImportError: needs libbar 3"]), lines


# ------------------------------------------------------------------ 2. optout remove: nothing to remove
def test_optout_remove_of_a_number_not_opted_out_says_so_on_stderr_and_exits_1(project: Path) -> None:
    """It printed "... was not opted out" on stdout and exited 0: a script ('> /dev/null', or
    testing the exit code) saw an opt-in that did not happen. Now as 'tenant remove' of a tenant
    that was not stored: exit 1, said on stderr; a removal is still exit 0."""
    done = smsgate_cli(project, "optout", "remove", "08031234567")
    assert (done.returncode, done.stdout) == (1, ""), (done.stdout, done.stderr)
    assert done.stderr.strip() == "+2348031234567 was not opted out (every sender)"
    done = smsgate_cli(project, "optout", "remove", "08031234567", "--all-scopes")
    assert (done.returncode, done.stdout, done.stderr.strip()) == (
        1, "", "+2348031234567 was not opted out (any scope)")
    ok(smsgate_cli(project, "optout", "add", "08031234567", "--scope", "Acme"))
    done = smsgate_cli(project, "optout", "remove", "08031234567")  # not of every sender: the hint stays
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == ("+2348031234567 was not opted out (every sender); it is opted out of "
                                   "sender 'acme' only: --scope acme")
    done = smsgate_cli(project, "optout", "remove", "08031234567", "--scope", "Acme")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "+2348031234567 removed (sender 'acme')", "")


# ------------------------------------------------------------------ 3. --csv -: named <stdin>
def test_a_csv_read_from_standard_input_is_named_stdin_with_the_line(project: Path) -> None:
    """``--csv -`` was named after its temporary copy: ``stdin.csv, line 3``. Now ``<stdin>``,
    as Python names its standard input, with the line: in errors, skipped rows and reports."""
    unclosed = "phone,name\n08031234561,Ada\n\"12x,Bad\n"
    line = error_line(smsgate_cli(project, "campaign", "create", "--name", "t", "--text", "Hi {name}", "--csv", "-",
                                  stdin=unclosed))
    assert line.startswith("error: <stdin>, line 3: a quote opens a field"), line
    line = error_line(smsgate_cli(project, "contacts", "create", "L", "--csv", "-", stdin="phone;name\n1;2\n"))
    assert line.startswith("error: <stdin>, line 1, field 'phone': no 'phone' column"), line
    assert "stdin.csv" not in line
    # a row skipped: its location as stored with the campaign, then listed by preview
    created = json.loads(ok(smsgate_cli(project, "campaign", "create", "--name", "t", "--text", "Hi {name}",
                                        "--csv", "-", "--id", "piped", "--json",
                                        stdin="phone,name\n08031234561,Ada\n12x,Bad\n")))
    assert [e["location"] for e in created["errors"]] == ["<stdin>, line 3"]
    from smsgate import Gateway

    with Gateway(project / "smsgate.toml") as gw:  # the campaign's audience, as stored with it
        assert gw.tenant("acme").campaigns.get("piped").row.spec["audience"] == "CSV <stdin>"
    report = json.loads(ok(smsgate_cli(project, "contacts", "create", "L", "--csv", "-", "--json",
                                       stdin="phone\n08031234561\n12x\n08031234561\n")))
    assert [e["location"] for e in report["invalid_rows"]] == ["<stdin>, line 3"]
    assert [e["detail"] for e in report["duplicate_rows"]] == ["+2348031234561 already at <stdin>, line 2"]
    out = ok(smsgate_cli(project, "optout", "import", "-", stdin="phone\n08031234561\n"))
    assert out.startswith("<stdin>: 1 row(s): 1 opted out of every sender"), out
    # a file keeps its own name
    (project / "crm.csv").write_text("phone;name\n1;2\n")
    line = error_line(smsgate_cli(project, "contacts", "create", "L", "--csv", "crm.csv"))
    assert line.startswith("error: crm.csv, line 1, field 'phone'"), line


# ------------------------------------------------------------------ 4. --name-column
CRM = "Mobile,Full Name,City\n08031234561,Ada Obi,Lagos\n08031234562,Bola Ade,Ibadan\n"


def test_contacts_create_and_add_read_the_names_from_name_column(project: Path) -> None:
    """A contact has a name of its own (``{name}`` in a text): a CSV whose names are in
    'Full Name' could not give it ('name' was the only column read as the name)."""
    (project / "crm.csv").write_text(CRM)
    ok(smsgate_cli(project, "contacts", "create", "CRM", "--csv", "crm.csv", "--id", "crm",
                   "--phone-column", "Mobile", "--name-column", "Full Name"))
    ok(smsgate_cli(project, "contacts", "add", "crm", "--csv", "-", "--phone-column", "Mobile",
                   "--name-column", "Full Name", stdin="Mobile,Full Name,City\n08031234563,Zoë,Abuja\n"))
    shown = json.loads(ok(smsgate_cli(project, "contacts", "show", "crm", "--json")))
    assert [(c["phone"], c["name"], c["fields"]) for c in shown["contacts"]] == [
        ("+2348031234561", "Ada Obi", {"City": "Lagos"}),  # the names column is the name, not also a field
        ("+2348031234562", "Bola Ade", {"City": "Ibadan"}),
        ("+2348031234563", "Zoë", {"City": "Abuja"})]
    exported = ok(smsgate_cli(project, "contacts", "export", "crm"))
    assert next(csv.reader(io.StringIO(exported))) == ["phone", "name", "City"]


def test_name_column_wins_over_a_column_called_name(project: Path) -> None:
    """Given, --name-column is the name even when the file also has a column called 'name'."""
    out = json.loads(ok(smsgate_cli(project, "contacts", "create", "L", "--csv", "-", "--name-column", "full",
                                    "--json", stdin="phone,name,full\n08031234561,nick,Ada Obi\n")))
    assert out["added"] == 1
    shown = json.loads(ok(smsgate_cli(project, "contacts", "show", out["list_id"], "--json")))
    assert [(c["name"], c["fields"]) for c in shown["contacts"]] == [("Ada Obi", {})]


def test_campaign_create_fills_name_from_name_column_and_sends_it(project: Path, squad: str) -> None:
    """``campaign create --name-column`` fills ``{name}`` from that column; what the vendor
    received is read from its own record."""
    (project / "crm.csv").write_text(CRM)
    preview = json.loads(ok(smsgate_cli(project, "campaign", "create", "--name", "VIP", "--text", "Hi {name}",
                                        "--csv", "crm.csv", "--phone-column", "Mobile", "--name-column",
                                        "Full Name", "--id", "vip", "--json")))
    assert [s["text"] for s in preview["samples"]][:1] == ["Hi Ada Obi"]
    ok(smsgate_cli(project, "campaign", "run", "vip"))
    sent = sorted((m["phone_number"], m["message"]) for r in EmulatorControl(squad).processed("/sms", "POST")
                  for m in json.loads(r.body)["messages"])
    assert sent == [("08031234561", "Hi Ada Obi"), ("08031234562", "Hi Bola Ade")]


def test_name_column_errors_name_the_flag_and_the_file(project: Path) -> None:
    """A --name-column the header lacks is an error naming the file's line 1 (with the column
    it most likely meant), not contacts silently without names; with --list, refused as
    --phone-column is."""
    (project / "crm.csv").write_text(CRM)
    line = error_line(smsgate_cli(project, "contacts", "create", "CRM", "--csv", "crm.csv", "--phone-column",
                                  "Mobile", "--name-column", "full name"))
    assert line == ("error: crm.csv, line 1, field 'full name': no 'full name' column in header ['Mobile', "
                    "'Full Name', 'City'] (did you mean 'Full Name'? --name-column 'Full Name')"), line
    line = error_line(smsgate_cli(project, "campaign", "create", "--name", "x", "--text", "Hi {name}", "--csv", "-",
                                  "--phone-column", "Mobile", "--name-column", "Nom", stdin=CRM))
    assert line == ("error: <stdin>, line 1, field 'Nom': no 'Nom' column in header ['Mobile', 'Full Name', "
                    "'City'] (the column of the contacts' names: --name-column COLUMN)"), line
    line = error_line(smsgate_cli(project, "campaign", "create", "--name", "x", "--text", "Hi", "--list", "crm",
                                  "--name-column", "Full Name"))
    assert line.startswith("error: field '--list': --phone-column, --name-column, --delimiter and --encoding read "
                           "a --csv file"), line
    assert not (project / "smsgate.db").exists() or "crm" not in ok(smsgate_cli(project, "contacts", "list"))


# ------------------------------------------------------------------ 5. messages --format csv
def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_messages_format_csv_exports_a_campaigns_results(project: Path, squad: str) -> None:
    """``smsgate messages --campaign ID --format csv``: a header, then one row per message
    (every one: no --limit 20 by default), read back with the csv module; the numbers are those
    the vendor received (its own record), with its ids; no message texts."""
    numbers = [f"0803123{i:04d}" for i in range(1, 26)]
    audience = "phone,name\n" + "".join(f"{n},P{i}\n" for i, n in enumerate(numbers))
    ok(smsgate_cli(project, "campaign", "create", "--name", "Sale", "--text", "Secret offer {name}",
                   "--csv", "-", "--id", "sale", stdin=audience))
    ok(smsgate_cli(project, "campaign", "run", "sale"))
    done = smsgate_cli(project, "messages", "--campaign", "sale", "--format", "csv")
    out = ok(done)
    assert done.stderr == ""
    header = next(csv.reader(io.StringIO(out)))
    assert header == ["message_id", "to", "status", "raw_status", "error", "provider", "provider_message_id",
                      "batch_id", "sender", "reference", "campaign_id", "segments", "cost", "currency",
                      "created_at", "submitted_at", "delivered_at", "updated_at"]
    rows = _rows(out)
    assert len(rows) == 25 == len({r["message_id"] for r in rows})
    received = [m["phone_number"] for r in EmulatorControl(squad).processed("/sms", "POST")
                for m in json.loads(r.body)["messages"]]
    assert sorted(received) == sorted(numbers)
    assert sorted(r["to"] for r in rows) == sorted("+234" + n[1:] for n in numbers)
    assert {(r["status"], r["provider"], r["campaign_id"], r["error"]) for r in rows} == {("sent", "squad", "sale", "")}
    assert all(r["provider_message_id"] and r["created_at"].endswith("+00:00") for r in rows)
    assert "Secret offer" not in out
    # newest first, as the table; --limit still cuts it
    assert [r["message_id"] for r in _rows(ok(smsgate_cli(project, "messages", "--campaign", "sale", "--format",
                                                           "csv", "--limit", "3")))] == \
        [r["message_id"] for r in rows[:3]]
    # the table and JSON keep their default of 20
    assert len(json.loads(ok(smsgate_cli(project, "messages", "--campaign", "sale", "--format", "json")))) == 20
    assert len(json.loads(ok(smsgate_cli(project, "messages", "--campaign", "sale", "--json")))) == 20


def test_messages_format_csv_errors(project: Path) -> None:
    """An unknown campaign is an error before anything is written (not a header alone, as if it had
    sent nothing); --json with --format csv is refused; a filter matching nothing: the header."""
    done = smsgate_cli(project, "messages", "--campaign", "cmp_typo", "--format", "csv")
    assert error_line(done).startswith("error: field '--campaign': tenant 'acme' has no campaign 'cmp_typo'")
    assert done.stdout == ""
    line = error_line(smsgate_cli(project, "messages", "--format", "csv", "--json"))
    assert line == "error: field '--format': --json and --format csv ask for different formats: give one of them"
    assert ok(smsgate_cli(project, "messages", "--format", "csv", "--status", "failed")).startswith("message_id,to,")
    assert len(ok(smsgate_cli(project, "messages", "--format", "csv")).splitlines()) == 1


def test_messages_format_csv_reads_the_store_page_by_page(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written as read, a page at a time (in-process, with pages of 4 messages): every message
    once, newest first, as one read of the whole log lists them; a --limit across pages."""
    from typer.testing import CliRunner

    import smsgate.cli.messages as messages_cli
    from smsgate import Gateway
    from smsgate.cli import app

    with Gateway(project / "smsgate.toml") as gw:
        t = gw.tenant("acme")
        for i in range(10):
            t.send(f"0803123{i:04d}", "x")
        every = [r.message_id for r in t.messages(limit=100)]
    monkeypatch.setattr(messages_cli, "CSV_PAGE", 4)
    monkeypatch.chdir(project)
    runner = CliRunner()
    out = runner.invoke(app, ["messages", "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert [r["message_id"] for r in _rows(out.stdout)] == every
    for limit in (4, 5, 9):
        out = runner.invoke(app, ["messages", "--format", "csv", "--limit", str(limit)])
        assert [r["message_id"] for r in _rows(out.stdout)] == every[:limit]
