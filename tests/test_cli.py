"""The smsgate command line, run in-process against the reference emulator."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import smsgate.plugins
from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Gateway
from smsgate.cli import app
from smsgate.models import CampaignStatus
from smsgate.plugins import PluginManager
from smsgate.store import Store
from smsgate.testing import LiveServer

runner = CliRunner()


@pytest.fixture
def emulator() -> Iterator[LiveServer]:
    """The echo vendor's emulator (reference_provider) on a loopback port."""
    with LiveServer(create_emulator()) as server:
        yield server


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: LiveServer) -> Path:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    monkeypatch.setattr(smsgate.plugins, "_default", pm)
    server = emulator
    path = tmp_path / "smsgate.toml"
    path.write_text(f"""
store = "sqlite:///{tmp_path / "cli.db"}"
[tenants.acme]
default_region = "NG"
[tenants.acme.providers.one]
plugin = "echo"
base_url = "{server.url}"
sender = "ACME"
credentials = {{ api_key = "${{ECHO_KEY}}" }}
""")
    monkeypatch.setenv("ECHO_KEY", API_KEY)
    return path


def test_send_status_messages(cfg: Path) -> None:
    out = runner.invoke(app, ["send", "08031234567", "hi from cli", "-c", str(cfg), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["status"] == "submitted" and result["to"] == "+2348031234567"
    out = runner.invoke(app, ["status", result["message_id"], "-c", str(cfg)])
    assert out.exit_code == 0 and "delivered" in out.stdout
    out = runner.invoke(app, ["messages", "-c", str(cfg), "--json"])
    listed = json.loads(out.stdout)[0]
    assert listed["status"] == "delivered" and "history" not in listed  # listed without histories
    detail = json.loads(runner.invoke(app, ["status", result["message_id"], "-c", str(cfg), "--json"]).stdout)
    assert [e["status"] for e in detail["history"]][-1] == "delivered"


def test_messages_filters_by_status_number_and_campaign(cfg: Path) -> None:
    first = json.loads(runner.invoke(app, ["send", "08031234567", "hi", "-c", str(cfg), "--json"]).stdout)
    assert runner.invoke(app, ["send", "08031234568", "hi", "-c", str(cfg)]).exit_code == 0
    assert runner.invoke(app, ["status", first["message_id"], "-c", str(cfg)]).exit_code == 0  # now delivered
    with Gateway(cfg) as gw:
        camp = gw.tenant("acme").campaigns.create("f", text="x", audience=["08031234569"])
        camp.run()

    def listed(*args: str) -> list[str]:
        out = runner.invoke(app, ["messages", "-c", str(cfg), "--json", *args])
        assert out.exit_code == 0, out.output
        return sorted(r["to"] for r in json.loads(out.stdout))

    assert listed() == ["+2348031234567", "+2348031234568", "+2348031234569"]
    assert listed("--to", "08031234568") == ["+2348031234568"]  # read with the tenant's region
    assert listed("--campaign", camp.campaign_id) == ["+2348031234569"]
    assert listed("--status", "submitted") == ["+2348031234568", "+2348031234569"]
    assert listed("--status", "delivered") == ["+2348031234567"]
    bad = runner.invoke(app, ["messages", "-c", str(cfg), "--status", "nope"])
    assert bad.exit_code == 2
    assert len(listed("--since", "1h")) == 3
    with Gateway(cfg) as gw:  # an old message: logged two days ago
        gw.store.insert_messages([gw.tenant("acme").messages()[0].model_copy(update={
            "message_id": "msg_old", "created_at": datetime.now(timezone.utc) - timedelta(days=2)})])
    assert len(listed()) == 4 and len(listed("--since", "1d")) == 3
    assert runner.invoke(app, ["messages", "-c", str(cfg), "--since", "soon"]).exit_code == 2


def test_messages_table_keeps_ids_and_numbers_whole_in_80_columns(cfg: Path) -> None:
    sent = json.loads(runner.invoke(app, ["send", "08031234567", "hi", "-c", str(cfg), "--json"]).stdout)
    out = runner.invoke(app, ["messages", "-c", str(cfg)], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if sent["message_id"] in line)  # copyable for `smsgate status`
    assert "+2348031234567" in row and sent["status"] in row
    wide = runner.invoke(app, ["messages", "-c", str(cfg)], env={"COLUMNS": "140"})
    assert "segments" in wide.stdout and "segments" not in out.stdout


def test_piped_output_is_never_cut_at_80_columns(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output to a pipe or a file (CliRunner's is not a terminal) without $COLUMNS: rich's 80-column
    fallback wrapped the status line and dropped the messages table's columns; now lines are as
    long as their content. $COLUMNS still wins (see the 80-column test above)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    sent = json.loads(runner.invoke(app, ["send", "08031234567", "hi", "-c", str(cfg), "--json"]).stdout)
    table = runner.invoke(app, ["messages", "-c", str(cfg)])
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[0]
    assert "segments" in header and "error" in header, table.stdout  # every column, as on a wide terminal
    assert len([line for line in table.stdout.splitlines() if sent["message_id"] in line]) == 1
    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("p", text="x", audience=["08031234561"]).campaign_id
    status = runner.invoke(app, ["campaign", "status", cid, "-c", str(cfg)])
    assert status.exit_code == 0, status.output
    (line,) = status.stdout.splitlines()  # one line, not wrapped at 80
    assert len(line) > 80 and line.endswith("skipped 0"), line


def test_optout_commands(cfg: Path) -> None:
    assert (
        runner.invoke(app, ["optout", "add", "08031234567", "-c", str(cfg), "--reason", "STOP"]).exit_code
        == 0
    )
    assert runner.invoke(app, ["optout", "check", "+2348031234567", "-c", str(cfg)]).exit_code == 0
    listed = runner.invoke(app, ["optout", "list", "-c", str(cfg), "--json"])
    assert [o["phone"] for o in json.loads(listed.stdout)] == ["+2348031234567"]
    refused = runner.invoke(app, ["send", "08031234567", "x", "-c", str(cfg)])
    assert refused.exit_code == 2 and "opted out" in refused.output
    assert runner.invoke(app, ["optout", "remove", "08031234567", "-c", str(cfg)]).exit_code == 0
    assert runner.invoke(app, ["optout", "check", "08031234567", "-c", str(cfg)]).exit_code == 1


def test_optout_commands_with_a_scope(cfg: Path) -> None:
    def run(*args: str) -> Any:
        return runner.invoke(app, ["optout", *args, "-c", str(cfg)])

    added = run("add", "08031234567", "--scope", "AcmeShop")
    assert added.exit_code == 0 and "opted out of sender 'acmeshop'" in added.output
    assert run("check", "08031234567").exit_code == 1  # not opted out of every sender
    shop = run("check", "08031234567", "--sender", "ACMESHOP")
    assert shop.exit_code == 0 and "opted out (sender 'ACMESHOP')" in shop.output
    assert run("check", "08031234567", "--sender", "Other").exit_code == 1
    assert run("add", "08031234567").exit_code == 0
    listed = run("list", "--json")
    assert [(o["phone"], o["scope"]) for o in json.loads(listed.stdout)] == [
        ("+2348031234567", "*"), ("+2348031234567", "acmeshop")]
    table = runner.invoke(app, ["optout", "list", "-c", str(cfg)], env={"COLUMNS": "120"})
    assert "scope" in table.stdout and "acmeshop" in table.stdout
    removed = run("remove", "08031234567", "--scope", "acmeshop")
    assert removed.exit_code == 0 and "removed (sender 'acmeshop')" in removed.output
    assert run("check", "08031234567", "--sender", "Other").exit_code == 0  # still out of every sender
    assert "removed (any scope)" in run("remove", "08031234567", "--all-scopes").output
    assert run("check", "08031234567", "--sender", "AcmeShop").exit_code == 1
    bad = run("add", "08031234567", "--scope", "x" * 70)
    assert bad.exit_code == 2 and "scope" in bad.output


def test_inbound_command_lists_replies_newest_first(cfg: Path, tmp_path: Path) -> None:
    from smsgate.models import InboundMessage
    from smsgate.store.sqlite import SQLiteStore

    with SQLiteStore(str(tmp_path / "cli.db")) as store:
        store.migrate()
        stored = store.record_inbound("acme", [
            InboundMessage(provider="one", vendor_id=f"v{i}", from_number=f"+23480312345{i:02d}", text=text)
            for i, text in enumerate(["STOP", "hello there"])])
        store.set_inbound_action("acme", stored[0][0].id or 0, "optout")
    out = runner.invoke(app, ["inbound", "-c", str(cfg), "--json"])
    assert out.exit_code == 0, out.output
    assert [(m["vendor_id"], m["action"]) for m in json.loads(out.stdout)] == [("v1", None), ("v0", "optout")]
    only = json.loads(runner.invoke(app, ["inbound", "-c", str(cfg), "--json", "--from", "08031234500"]).stdout)
    assert [m["text"] for m in only] == ["STOP"]
    table = runner.invoke(app, ["inbound", "-c", str(cfg)], env={"COLUMNS": "120"})
    assert table.exit_code == 0 and "optout" in table.stdout and "+2348031234501" in table.stdout


def test_config_check_and_providers(cfg: Path, tmp_path: Path) -> None:
    out = runner.invoke(app, ["config", "check", "-c", str(cfg)])
    assert out.exit_code == 0 and "acme/one: echo" in out.stdout
    assert API_KEY not in out.stdout
    out = runner.invoke(app, ["providers", "--json"])
    assert json.loads(out.stdout)["echo"]["bulk"] is True
    table = runner.invoke(app, ["providers"], env={"COLUMNS": "80"})
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)  # readable in a narrow terminal
    header = next(line for line in lines if "capability" in line)
    assert "echo" in header  # providers are columns, capabilities are rows
    assert any("bulk" in line and "yes" in line for line in lines)
    bad = tmp_path / "bad.toml"
    bad.write_text('[tenants.x.providers.p]\nplugin = "nope"\n')
    out = runner.invoke(app, ["config", "check", "-c", str(bad)])
    assert out.exit_code == 2 and "unknown provider plugin 'nope'" in out.output


def test_config_check_names_bad_provider_options_without_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smsgate_broadcast import BroadcastProvider

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(BroadcastProvider)
    monkeypatch.setattr(smsgate.plugins, "_default", pm)
    path = tmp_path / "smsgate.toml"
    path.write_text("""
store = "memory://"
[tenants.acme.providers.wa]
plugin = "broadcast"
credentials = { session_id = "s-0001", access_token = "bot-token-0001" }
options = { max_batch = "sk_live_123" }
""")
    out = runner.invoke(app, ["config", "check", "-c", str(path)], env={"COLUMNS": "200"})
    assert out.exit_code == 2 and isinstance(out.exception, SystemExit), out.exception  # not a traceback
    assert "sk_live_123" not in out.output
    assert f"error: {path}: tenants.acme.providers.wa: provider 'wa' (broadcast): invalid options:" in out.output
    assert "options.max_batch: Input should be a valid integer" in out.output


def test_a_provider_that_cannot_be_built_names_the_configuration_file(tmp_path: Path) -> None:
    """An unknown plugin, or credentials the plugin refuses, in the file given with ``--config`` is
    found only when the provider is built (a send, ``config check``, a campaign run): the error
    named the key (``tenants.acme.providers.main...``) but not the file, as every other problem of
    the file is named (``prod.toml: invalid configuration: ...``), so a user with several
    configurations could not tell which was wrong."""
    path = tmp_path / "prod.toml"
    head = f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
    path.write_text(head + '[tenants.acme.providers.main]\nplugin = "sqaud"\nsender = "ACME"\n'
                    'credentials = { secret_key = "sk_test_1" }\n')
    unknown = f"error: {path}: tenants.acme.providers.main.plugin: unknown provider plugin 'sqaud'; "
    for command in (["send", "08031234567", "hi"], ["config", "check"]):
        out = runner.invoke(app, [*command, "-c", str(path)], env={"COLUMNS": "300"})
        assert out.exit_code == 2 and out.output.startswith(unknown), (command, out.output)
    path.write_text(head + '[tenants.acme.providers.main]\nplugin = "squad"\nsender = "ACME"\n'
                    'credentials = { secret_kye = "sk_test_1" }\n')
    refused = (f"error: {path}: tenants.acme.providers.main: provider 'main' (squad v2): credentials.secret_key "
               "is required; credentials.secret_kye is not a credential of plugin 'squad': did you mean "
               "credentials.secret_key?")
    for command in (["send", "08031234567", "hi"], ["config", "check"]):
        out = runner.invoke(app, [*command, "-c", str(path)], env={"COLUMNS": "300"})
        assert out.exit_code == 2 and out.output.strip() == refused, (command, out.output)
    assert "sk_test_1" not in out.output


def test_bad_number_is_a_clean_error(cfg: Path) -> None:
    out = runner.invoke(app, ["send", "12", "x", "-c", str(cfg)])
    assert out.exit_code == 2 and "'12'" in out.output and "Traceback" not in out.output


def test_db_upgrade(tmp_path: Path) -> None:
    out = runner.invoke(app, ["db", "upgrade", "--url", f"sqlite:///{tmp_path / 'x.db'}"])
    assert out.exit_code == 0 and f"schema version {Store.SCHEMA_VERSION}" in out.stdout


def test_demo_runs_and_leaves_a_log_the_cli_can_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's main job: the demo through the installed emulators, then its own hint."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_CONFIG", raising=False)
    monkeypatch.delenv("SMSGATE_STORE", raising=False)
    (tmp_path / "demo.db").symlink_to(tmp_path / "elsewhere.db")  # planted, dangling: never followed
    out = runner.invoke(app, ["demo", "--db", "demo.db"])
    assert out.exit_code == 0, out.output
    assert not (tmp_path / "elsewhere.db").exists() and not (tmp_path / "demo.db").is_symlink()
    assert "demo finished" in out.output and "smsgate messages -c demo.toml" in out.output
    assert "not configured" not in out.output  # every emulator's callbacks reach the webhook app
    messages = runner.invoke(app, ["messages", "-c", "demo.toml", "--json", "--limit", "100"])
    assert messages.exit_code == 0, messages.output
    records = json.loads(messages.stdout)
    assert {r["provider"] for r in records} >= {"squad", "colony", "campaigns_api", "broadcast"}
    assert any(r["status"] == "delivered" for r in records)
    # The emulators are gone: status reads the log instead of failing on a provider it cannot reach.
    final = ("delivered", "undelivered", "failed", "rejected", "expired")
    pending = next((r for r in records if r["status"] not in final), records[0])
    status = runner.invoke(app, ["status", pending["message_id"], "-c", "demo.toml", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["status"] == pending["status"]
    stats = runner.invoke(app, ["stats", "-c", "demo.toml", "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["total"] == len(records)


def test_sandbox_prints_provider_blocks_for_smsgate_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`smsgate sandbox` prints TOML blocks with the emulators' sandbox credentials and a sender."""
    import random
    import socket
    import sys
    import time

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    from smsgate import Gateway

    # five consecutive free ports below the kernel's ephemeral range (32768 and up), where no other
    # test's server (bound to port 0) can take one of them between this check and the sandbox's bind
    for _ in range(200):
        port = random.randrange(20000, 32000)
        try:
            for p in range(port, port + 5):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            break
        except OSError:
            continue

    real_sleep = time.sleep

    def interrupted(seconds: float) -> None:
        if seconds >= 60:  # the sandbox's idle wait: Ctrl-C as soon as it is up
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", interrupted)
    out = runner.invoke(app, ["sandbox", "--port", str(port)])
    assert out.exit_code == 130, out.output  # stopped by Ctrl-C, saying so in one line
    assert out.stderr.strip().splitlines() == [
        "interrupted: the emulators stopped and kept nothing (the messages they took are gone); run the same "
        "'smsgate sandbox' command again to serve them on the same ports with the same credentials"]
    toml_text = out.output.split("not real secrets):", 1)[1].split("Ctrl-C to stop.", 1)[0]
    config = tomllib.loads(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                           + toml_text)
    providers = config["tenants"]["acme"]["providers"]
    assert {"squad", "colony", "campaigns_api", "broadcast"} <= set(providers)
    assert providers["squad"]["base_url"] == f"http://127.0.0.1:{port}"  # squad's own port is the first
    assert all(p["sender"] and p["plugin"] == name and p["credentials"] for name, p in providers.items())
    with Gateway(config) as gw:  # every block is a valid provider configuration
        assert len(gw.check()) == len(providers)


def test_campaign_commands_end_to_end(cfg: Path, tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    audience.write_text("phone,name\n08031234567,Ada\n0803 123 4568,Bola\n12345,Bad\n+2348031234567,Again\n")
    base = ["-c", str(cfg)]
    created = runner.invoke(app, ["campaign", "create", "--name", "Sale", "--csv", str(audience),
                                  "--text", "Hi {name}, sale today", *base], env={"COLUMNS": "100"})
    assert created.exit_code == 0, created.output
    assert "to send: 2" in created.stdout and "duplicate=1, invalid=1" in created.stdout
    assert "audience.csv, line 4" in created.stdout  # the invalid row, located
    match = re.search(r"cmp_\w+", created.stdout)
    assert match is not None
    cid = match.group(0)
    assert runner.invoke(app, ["campaign", "preview", cid, *base]).exit_code == 0
    ran = runner.invoke(app, ["campaign", "run", cid, *base])
    assert ran.exit_code == 0, ran.output
    assert "completed" in ran.stdout
    # not a terminal (a pipe, cron): no progress bar (it went to stdout, box-drawing characters and all)
    assert "━" not in ran.stdout and "━" not in ran.stderr
    status = json.loads(runner.invoke(app, ["campaign", "status", cid, *base, "--json"]).stdout)
    assert (status["status"], status["sent"], status["skipped"]) == ("completed", 2, 2)
    assert status["skipped_by_reason"] == {"duplicate": 1, "invalid": 1}
    plain = runner.invoke(app, ["campaign", "status", cid, *base], env={"COLUMNS": "200"}).stdout
    assert f"{cid} completed: 4 recipients; sent 2" in plain and "skipped 2 (duplicate 1, invalid 1)" in plain
    assert cid in runner.invoke(app, ["campaign", "list", *base]).stdout
    stats = json.loads(runner.invoke(app, ["campaign", "stats", cid, *base, "--json"]).stdout)
    assert stats["total"] == 2


def test_campaign_create_reads_a_csv_from_standard_input_given_as_dash(cfg: Path, tmp_path: Path) -> None:
    """``--csv -`` was "-: cannot open audience file" (``--csv /dev/stdin`` worked)."""
    import subprocess
    import sys

    audience = tmp_path / "audience.csv"
    audience.write_text("phone,name\n08031234567,Ada\n08031234568,Bola\n")
    command = [sys.executable, "-m", "smsgate", "campaign", "create", "--name", "Piped", "--csv", "-",
               "--text", "Hi {name}", "-c", str(cfg)]
    with audience.open("rb") as stdin:  # a file as standard input
        out = subprocess.run(command, stdin=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "to send: 2" in out.stdout
    # a pipe (read once: it was "stdin, line 1: the file is empty" through /dev/stdin)
    piped = subprocess.run(command, input=audience.read_text() + "12345,Bad\n", capture_output=True, text=True,
                           timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert "to send: 2" in piped.stdout and "<stdin>, line 4" in piped.stdout  # (dx27: was the copy's name, stdin.csv)


def test_config_check_shows_the_store_without_its_password(cfg: Path, tmp_path: Path) -> None:
    out = runner.invoke(app, ["config", "check", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert f"store: sqlite:///{tmp_path / 'cli.db'}" in out.stdout  # where the log is
    from smsgate.config import shown_url as _shown_url

    assert _shown_url("postgresql://app:s3cr3t@db:5432/sms?schema=x") == "postgresql://app:***@db:5432/sms?schema=x"
    assert "abc" not in _shown_url("postgresql://db/sms?password=abc")


@pytest.mark.parametrize(("command", "missing", "needs"), [
    (["sandbox"], ["uvicorn"], "uvicorn, which is"),
    (["demo", "--db", "demo.db"], ["uvicorn"], "uvicorn, which is"),
    (["sandbox"], ["uvicorn", "starlette"], "uvicorn and starlette, which are"),
])
def test_sandbox_and_demo_without_the_server_extra_say_what_to_install(
    command: list[str], missing: list[str], needs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip install smsgate smsgate-squad` has no uvicorn: one line naming the extra, no traceback."""
    monkeypatch.chdir(tmp_path)
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)  # `import uvicorn` raises ImportError
    out = runner.invoke(app, command)
    assert out.exit_code == 2, out.output
    assert out.output.strip().splitlines() == [
        f"error: smsgate {command[0]} needs {needs} not installed: pip install 'smsgate[server]'"
    ]
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert not (tmp_path / "demo.db").exists()


def test_live_server_is_runtime_code_still_importable_from_testing(monkeypatch: pytest.MonkeyPatch) -> None:
    import smsgate.server
    import smsgate.testing.server
    from smsgate.errors import ConfigError

    assert smsgate.testing.server.LiveServer is smsgate.server.LiveServer is LiveServer
    assert smsgate.testing.server.serve is smsgate.server.serve
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ConfigError, match=r"pip install 'smsgate\[server\]'"):
        LiveServer(create_emulator())


def test_every_command_goes_through_the_one_error_wrapper() -> None:
    """Each leaf command's callback is wrapped by `handles_errors` (registered through a CommandGroup)."""
    import typer.main

    def leaves(cmd: Any, path: str) -> Iterator[tuple[str, Any]]:
        if hasattr(cmd, "commands"):  # a group (typer >= 0.2x has a click of its own: no isinstance)
            for name, sub in cmd.commands.items():
                yield from leaves(sub, f"{path} {name}")
        else:
            yield path, cmd

    def wrapped(fn: object) -> bool:
        while fn is not None:
            if getattr(fn, "handles_smsgate_errors", False):
                return True
            fn = getattr(fn, "__wrapped__", None)
        return False

    commands = dict(leaves(typer.main.get_command(app), "smsgate"))
    assert {"smsgate send", "smsgate campaign run", "smsgate optout sync", "smsgate db upgrade",
            "smsgate demo", "smsgate sandbox", "smsgate config check", "smsgate providers health"} <= set(commands)
    assert [path for path, cmd in commands.items() if not wrapped(cmd.callback)] == []


def test_errors_are_one_line_even_when_the_cause_spans_several() -> None:
    """A multi-line cause (here psycopg's "connection refused" text) is joined into one error line."""
    out = runner.invoke(app, ["db", "upgrade", "--url", "postgresql://u@127.0.0.1:1/db"])
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.output


# ----------------------------------------------------------------------------- user data is not markup
def test_a_number_in_square_brackets_is_a_clean_error(cfg: Path) -> None:
    out = runner.invoke(app, ["send", "[/x]", "hi", "-c", str(cfg)])
    assert out.exit_code == 2, out.output
    assert "'[/x]'" in out.output and "Traceback" not in out.output and out.exception is not None
    assert isinstance(out.exception, SystemExit)  # not a MarkupError


def test_campaign_text_and_csv_values_in_brackets_are_shown_as_written(cfg: Path, tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    audience.write_text("phone,name\n08031234567,Ada [/b]\n[12],[bold]Bad\n")
    created = runner.invoke(app, ["campaign", "create", "--name", "[sale]", "--csv", str(audience),
                                  "--text", "Hi {name}, reply [stop] to opt out", "-c", str(cfg)],
                            env={"COLUMNS": "200"})
    assert created.exit_code == 0, created.output
    assert "'[sale]'" in created.stdout  # the campaign's name
    assert "Hi Ada [/b], reply [stop] to opt out" in created.stdout  # the sample, not "reply  to opt out"
    assert "[12]" in created.stdout  # the skipped row's phone in the errors table
    cid = re.search(r"cmp_\w+", created.stdout).group(0)  # type: ignore[union-attr]
    preview = runner.invoke(app, ["campaign", "preview", cid, "-c", str(cfg)], env={"COLUMNS": "200"})
    assert "reply [stop] to opt out" in preview.stdout and "[12]" in preview.stdout
    assert "[sale]" in runner.invoke(app, ["campaign", "list", "-c", str(cfg)], env={"COLUMNS": "200"}).stdout


def test_a_reader_that_stops_early_does_not_undo_campaign_create(
        cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`campaign create ... | head -2`: the preview's output hit a closed pipe and the created
    campaign was deleted (found by a new-user trial)."""
    import smsgate.cli.campaign as cli_campaign

    def closed_pipe(preview: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_campaign, "_print_preview", closed_pipe)
    audience = tmp_path / "audience.csv"
    audience.write_text("phone\n08031234567\n")
    runner.invoke(app, ["campaign", "create", "--name", "piped", "--csv", str(audience), "--text", "hi",
                        "-c", str(cfg)])
    listed = runner.invoke(app, ["campaign", "list", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert "piped" in listed.stdout, listed.output


def test_the_postgres_hint_keeps_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # psycopg not installed
    out = runner.invoke(app, ["db", "upgrade", "--url", "postgresql://u@127.0.0.1/db"])
    assert out.exit_code == 2, out.output
    assert "pip install 'smsgate[postgres]'" in out.output


def test_a_provider_error_keeps_its_instance_prefix(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ProviderError messages start with ``[instance]``: in the error line and in the log's error column."""
    monkeypatch.setenv("ECHO_KEY", "wrong-key-456")
    out = runner.invoke(app, ["send", "08031234567", "hi", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert out.exit_code == 2, out.output
    assert out.output.startswith("error: [one] ")
    logged = json.loads(runner.invoke(app, ["messages", "-c", str(cfg), "--json"]).stdout)
    assert logged[0]["error"].startswith("[one] ")  # the log records the failed attempt ...
    for columns in ("200", "80"):  # ... and its error column (or the provider column's note) keeps the prefix
        table = runner.invoke(app, ["messages", "-c", str(cfg)], env={"COLUMNS": columns}).stdout
        assert "[one]" in table, table
    status = runner.invoke(app, ["status", logged[0]["message_id"], "-c", str(cfg), "--no-refresh"],
                           env={"COLUMNS": "200"})
    assert status.exit_code == 0 and f"{logged[0]['message_id']} to +2348031234567: failed" in status.stdout


# ----------------------------------------------------------------------------- campaign run: Ctrl-C
def test_ctrl_c_in_campaign_run_stops_cleanly_and_says_how_to_resume(
    cfg: Path, emulator: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT once the bar shows some sent: one line, exit 130, no traceback; a re-run sends
    the rest, and the emulator's own record shows every recipient received exactly once."""
    import signal
    from collections import Counter

    from rich.progress import Progress

    from smsgate.testing import EmulatorControl

    ctl = EmulatorControl(emulator.url)
    numbers = [f"+234803100{i:04d}" for i in range(200)]
    with Gateway(cfg) as gw:  # small claims (2 at a time) so that some are sent before the interrupt
        camp = gw.tenant("acme").campaigns.create("ctrl-c", text="x", audience=numbers, batch_size=2,
                                                  concurrency=1)
    cid = camp.campaign_id
    ctl.fault(kind="latency", delay=0.01, path="/messages/bulk", count=None)

    real_update = Progress.update
    pressed: list[int] = []

    def update(self: Progress, task: Any, **fields: Any) -> None:
        real_update(self, task, **fields)
        if fields.get("sent", 0) >= 2 and not pressed:
            pressed.append(fields["sent"])
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while the run goes on

    monkeypatch.setattr(Progress, "update", update)
    out = runner.invoke(app, ["campaign", "run", cid, "-c", str(cfg)])
    assert pressed
    assert out.exit_code == 130, out.output
    assert "Traceback" not in out.output and isinstance(out.exception, SystemExit)
    match = re.search(r"interrupted: (\d+) sent so far; run 'smsgate campaign run (\w+)' again to resume\n",
                      out.stderr)
    assert match is not None, out.output
    assert match.group(2) == cid
    status = json.loads(runner.invoke(app, ["campaign", "status", cid, "-c", str(cfg), "--json"]).stdout)
    assert int(match.group(1)) == status["sent"] < 200  # read from the store after the interrupt
    # a clean stop: nothing left claimed, nothing unknown, and nothing runs it any more
    assert (status["status"], status["sending"], status["unknown"], status["runners"]) == ("interrupted", 0, 0, 0)
    shown = runner.invoke(app, ["campaign", "status", cid, "-c", str(cfg)], env={"COLUMNS": "200"})
    # how to resume it, for a command-line run and for an app dispatching with Celery alike
    assert (f"run it again to resume it ('smsgate campaign run {cid}', or dispatch_campaign.delay("
            f"'acme', '{cid}') where Celery workers run it)") in shown.stdout, shown.output
    refused = runner.invoke(app, ["campaign", "resume", cid, "-c", str(cfg)], env={"COLUMNS": "200"})
    assert refused.exit_code == 2 and "not paused: run it again to resume it (camp.run(), 'smsgate campaign run " \
        f"{cid}', or dispatch_campaign.delay('acme', '{cid}') where Celery workers run it)" in refused.stderr, \
        refused.output

    monkeypatch.setattr(Progress, "update", real_update)
    resumed = runner.invoke(app, ["campaign", "run", cid, "-c", str(cfg)])
    assert resumed.exit_code == 0, resumed.output
    status = json.loads(runner.invoke(app, ["campaign", "status", cid, "-c", str(cfg), "--json"]).stdout)
    assert (status["status"], status["sent"], status["pending"], status["sending"]) == ("completed", 200, 0, 0)
    received = Counter(m["to"] for r in ctl.requests(method="POST")
                       for m in (r.json()["messages"] if r.path.endswith("/bulk") else [r.json()]))
    assert set(received) == set(numbers) and max(received.values()) == 1


# ----------------------------------------------------------------------------- campaign retry-unknown
def test_retry_unknown_warns_asks_and_puts_them_back(cfg: Path, emulator: LiveServer) -> None:
    """Unknown outcomes (the vendor acted, its answer was a 500): a warning, a confirmation, then a resend."""
    from smsgate.testing import EmulatorControl

    ctl = EmulatorControl(emulator.url)
    base = ["-c", str(cfg)]
    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("u", text="x", audience=["08031234561", "08031234562"]).campaign_id

    def status() -> dict[str, Any]:
        return dict(json.loads(runner.invoke(app, ["campaign", "status", cid, *base, "--json"]).stdout))

    ctl.fault(kind="status", status=500, path="/messages/bulk", process=True, count=1)
    ctl.fault(kind="status", status=503, method="GET", count=None)  # and the vendor cannot be asked
    ran = runner.invoke(app, ["campaign", "run", cid, *base])
    assert ran.exit_code == 0, ran.output
    assert (status()["unknown"], status()["sent"]) == (2, 0)

    declined = runner.invoke(app, ["campaign", "retry-unknown", cid, *base], input="n\n", env={"COLUMNS": "300"})
    assert declined.exit_code == 1, declined.output
    assert "2 recipient(s) have an unknown outcome" in declined.stdout and "twice" in declined.stdout
    assert "Put them back to pending? [y/N]" in declined.stdout
    assert "nothing changed (pass --yes" in declined.stderr
    no_answer = runner.invoke(app, ["campaign", "retry-unknown", cid, *base])  # no terminal, no input
    assert no_answer.exit_code == 1 and "nothing changed" in no_answer.stderr, no_answer.output
    assert (status()["unknown"], status()["pending"]) == (2, 0)

    confirmed = runner.invoke(app, ["campaign", "retry-unknown", cid, *base], input="y\n", env={"COLUMNS": "300"})
    assert confirmed.exit_code == 0, confirmed.output
    assert f"{cid}: 2 recipient(s) put back to pending; 'smsgate campaign run {cid}' sends them" in confirmed.stdout
    assert (status()["unknown"], status()["pending"]) == (0, 2)
    nothing = runner.invoke(app, ["campaign", "retry-unknown", cid, *base, "--yes"], env={"COLUMNS": "300"})
    assert nothing.exit_code == 0 and "nothing to retry" in nothing.stdout

    resent = runner.invoke(app, ["campaign", "run", cid, *base])
    assert resent.exit_code == 0, resent.output
    assert (status()["status"], status()["sent"]) == ("completed", 2)
    sent = [m["to"] for r in ctl.requests("/messages/bulk", "POST") for m in r.json()["messages"]]
    assert sorted(sent) == ["+2348031234561", "+2348031234561", "+2348031234562", "+2348031234562"]  # as warned


def test_retry_unknown_with_yes_does_not_ask(cfg: Path, emulator: LiveServer) -> None:
    from smsgate.testing import EmulatorControl

    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("u", text="x", audience=["08031234561"]).campaign_id
    EmulatorControl(emulator.url).fault(kind="status", status=500, path="/messages", process=True, count=1)
    EmulatorControl(emulator.url).fault(kind="status", status=503, method="GET", count=None)  # cannot be asked
    assert runner.invoke(app, ["campaign", "run", cid, "-c", str(cfg)]).exit_code == 0
    out = runner.invoke(app, ["campaign", "retry-unknown", cid, "-c", str(cfg), "--yes"], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    assert "twice" in out.stdout and "[y/N]" not in out.stdout and "1 recipient(s) put back to pending" in out.stdout


# ----------------------------------------------------------------------------- campaign retry-failed
def test_retry_failed_after_fixing_the_credentials_sends_each_once(
        cfg: Path, emulator: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong key fails some of the run; once fixed, retry-failed and run send each failed
    recipient once, and leave the one whose outcome is unknown alone (the vendor's record)."""
    from smsgate.testing import EmulatorControl

    ctl = EmulatorControl(emulator.url)
    cfg.write_text(cfg.read_text() + "timeout = 0.5\n")  # (unknown outcomes are looked up after 2 timeouts)
    base = ["-c", str(cfg)]
    numbers = [f"+23480312345{i:02d}" for i in range(6)]
    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("f", text="x", audience=numbers, batch_size=2,
                                                 concurrency=1).campaign_id

    def status() -> dict[str, Any]:
        return dict(json.loads(runner.invoke(app, ["campaign", "status", cid, *base, "--json"]).stdout))

    ctl.fault(kind="status", status=503, method="GET", count=None)  # the vendor cannot be asked
    ctl.fault(kind="status", status=500, path="/messages/bulk", process=True, count=1)  # refused; answer lost
    monkeypatch.setenv("ECHO_KEY", "sk_wrong")  # every request: 401
    assert runner.invoke(app, ["campaign", "run", cid, *base]).exit_code == 0
    assert (status()["unknown"], status()["failed"], status()["failed_by_reason"]) == (2, 4, {"AuthFailed": 4})
    shown = runner.invoke(app, ["campaign", "status", cid, *base], env={"COLUMNS": "300"})
    assert "failed 4 (AuthFailed 4), unknown 2" in shown.stdout

    monkeypatch.setenv("ECHO_KEY", API_KEY)  # fixed
    ctl.clear_faults()
    other = runner.invoke(app, ["campaign", "retry-failed", cid, *base, "--reason", "RateLimited"],
                          env={"COLUMNS": "300"})
    assert other.exit_code == 0, other.output
    assert f"{cid}: 0 failed recipient(s) put back to pending; 4 stay failed (they failed for another reason, or" \
        in other.stdout
    out = runner.invoke(app, ["campaign", "retry-failed", cid, *base], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    assert f"{cid}: 4 failed recipient(s) put back to pending; 'smsgate campaign run {cid}' sends them" in out.stdout
    assert (status()["pending"], status()["unknown"], status()["failed"]) == (4, 2, 0)
    nothing = runner.invoke(app, ["campaign", "retry-failed", cid, *base], env={"COLUMNS": "300"})
    assert "no failed recipients; nothing to retry" in nothing.stdout

    assert runner.invoke(app, ["campaign", "run", cid, *base]).exit_code == 0
    assert (status()["status"], status()["sent"]) == ("completed", 6)  # the unknown ones: not found, sent
    taken = [m["to"] for m in emulator.app.vendor.values()]  # the vendor's own record of what it accepted
    assert sorted(taken) == numbers  # each exactly once


def test_retry_failed_racing_another_says_how_many_it_put_back_and_how_many_stay(
        cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ``smsgate campaign retry-failed`` at once: the other puts the 4 failed recipients back
    between this one's read and its write. This one put none back and none stays failed; it said
    "4 failed recipient(s) put back" (what it had read), then (counting right) "0 ... put back;
    4 stay failed (their message reached the provider)" (the failed count read before, less 0)."""
    from smsgate.store.base import RecipientState
    from smsgate.store.sqlite import SQLiteStore

    base = ["-c", str(cfg)]
    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("r", text="x", audience=[f"+23480312345{i:02d}" for i in range(4)],
                                                 batch_size=2).campaign_id
    monkeypatch.setenv("ECHO_KEY", "sk_wrong")  # every request: 401
    assert runner.invoke(app, ["campaign", "run", cid, *base]).exit_code == 0
    monkeypatch.setenv("ECHO_KEY", API_KEY)
    real, other = SQLiteStore.recipients, []

    def raced(self: SQLiteStore, tenant: str, campaign_id: str, **kw: Any) -> Any:
        rows = real(self, tenant, campaign_id, **kw)
        if rows and kw.get("states") == [RecipientState.FAILED] and not other:
            other.append(-1)
            with Gateway(cfg) as gw:  # the other operator
                other[0] = gw.tenant("acme").campaigns.get(cid).retry_failed()
        return rows

    monkeypatch.setattr(SQLiteStore, "recipients", raced)
    out = runner.invoke(app, ["campaign", "retry-failed", cid, *base], env={"COLUMNS": "300"})
    assert out.exit_code == 0 and other == [4], (out.output, other)
    assert out.stdout.strip() == f"{cid}: 0 failed recipient(s) put back to pending", out.stdout


# ----------------------------------------------------------------------------- campaign run: a smooth bar
def test_campaign_run_bar_moves_per_message_with_an_eta(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the bar moved once per chunk of claims (4,000 messages by default): here all 30
    recipients are one chunk, so it jumped from 0 to 30. It now moves per message answered."""
    from rich.progress import Progress, TimeRemainingColumn

    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create(
            "smooth", text="x", audience=[f"+234803100{i:04d}" for i in range(30)], batch_size=3).campaign_id
    seen: list[float] = []
    columns: list[type] = []
    real_update = Progress.update

    def update(self: Progress, task: Any, **fields: Any) -> None:
        real_update(self, task, **fields)
        seen.append(self.tasks[0].completed)
        columns[:] = [type(c) for c in self.columns]

    monkeypatch.setattr(Progress, "update", update)
    out = runner.invoke(app, ["campaign", "run", cid, "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert TimeRemainingColumn in columns  # an ETA
    assert seen == sorted(seen) and seen[-1] == 30 and max(seen) == 30, seen  # never back, never past
    assert len(set(seen)) >= 10, seen  # it moved with the answers, not in one jump from 0 to 30


def test_campaign_delete_asks_keeps_the_messages_and_refuses_a_running_campaign(cfg: Path) -> None:
    from smsgate.core.campaign import lease_end

    with Gateway(cfg) as gw:
        t = gw.tenant("acme")
        done = t.campaigns.create("done", text="x", audience=["08031234561"])
        done.run()
        running = t.campaigns.create("running", text="x", audience=["08031234562"])
        gw.store.update_campaign("acme", running.campaign_id, status=CampaignStatus.RUNNING)
        gw.store.start_runner("acme", running.campaign_id, "run_elsewhere", lease_end(60))  # a live runner
    base = ["-c", str(cfg)]
    declined = runner.invoke(app, ["campaign", "delete", done.campaign_id, *base], input="n\n")
    assert declined.exit_code == 1 and "nothing changed" in declined.stderr, declined.output
    busy = runner.invoke(app, ["campaign", "delete", running.campaign_id, *base, "--yes"], env={"COLUMNS": "400"})
    assert busy.exit_code == 2, busy.output
    assert f"campaign {running.campaign_id} is being run: 1 runner(s) hold a live lease" in busy.stderr
    assert "--force deletes it anyway" in busy.stderr and "Traceback" not in busy.output
    out = runner.invoke(app, ["campaign", "delete", done.campaign_id, *base, "--yes"])
    assert out.exit_code == 0 and f"{done.campaign_id}: deleted" in out.stdout, out.output
    with Gateway(cfg) as gw:
        t = gw.tenant("acme")
        assert [c.campaign_id for c in t.campaigns.list()] == [running.campaign_id]
        assert [m.to for m in t.messages()] == ["+2348031234561"]  # its message stays in the log
    gone = runner.invoke(app, ["campaign", "delete", done.campaign_id, *base, "--yes"])
    assert gone.exit_code == 2 and "error:" in gone.stderr
    forced = runner.invoke(app, ["campaign", "delete", running.campaign_id, *base, "--yes", "--force"],
                           env={"COLUMNS": "400"})
    assert forced.exit_code == 0 and "1 runner(s) still hold it and will stop (--force)" in forced.stdout, forced.output
    assert f"{running.campaign_id}: deleted" in forced.stdout


def test_campaign_delete_after_ctrl_c_in_campaign_run(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new-user tryout: Ctrl-C in ``campaign run``, then ``campaign delete`` (it said "is running")."""
    import signal

    from rich.progress import Progress

    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("stop", text="x", audience=[f"+234803100{i:04d}" for i in range(40)],
                                                 batch_size=2, concurrency=1).campaign_id
    real_update = Progress.update

    def update(self: Progress, task: Any, **fields: Any) -> None:
        real_update(self, task, **fields)
        if fields.get("sent", 0) >= 2:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Progress, "update", update)
    out = runner.invoke(app, ["campaign", "run", cid, "-c", str(cfg)])
    assert out.exit_code == 130 and "again to resume" in out.stderr, out.output
    monkeypatch.setattr(Progress, "update", real_update)
    listed = runner.invoke(app, ["campaign", "list", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert "interrupted" in listed.stdout, listed.output
    deleted = runner.invoke(app, ["campaign", "delete", cid, "-c", str(cfg), "--yes"], env={"COLUMNS": "200"})
    assert deleted.exit_code == 0 and f"{cid}: deleted" in deleted.stdout, deleted.output


# ----------------------------------------------------------------------------- campaign run: scheduled
def test_campaign_run_of_a_scheduled_campaign_says_when_it_starts(cfg: Path, emulator: LiveServer) -> None:
    """Before, a campaign scheduled far ahead showed a bare bar (0/1, no ETA) and nothing else."""
    from smsgate.testing import EmulatorControl

    later = datetime.now(timezone.utc) + timedelta(days=3, hours=2, minutes=30)
    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("later", text="x", audience=["08031234561"],
                                                 start_at=later).campaign_id
    out = runner.invoke(app, ["campaign", "run", cid, "-c", str(cfg), "--no-wait"], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    when = later.strftime("%Y-%m-%d %H:%M UTC")
    assert (f"{cid} is scheduled for {when} (in 3 days 2 hours): nothing was sent (--no-wait). "
            f"Run 'smsgate campaign run {cid}' then, or without --no-wait to wait for it.") in out.stdout, out.output
    assert EmulatorControl(emulator.url).requests(method="POST") == []

    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    with Gateway(cfg) as gw:
        cid = gw.tenant("acme").campaigns.create("soon", text="x", audience=["08031234562"],
                                                 start_at=soon).campaign_id
    waited = runner.invoke(app, ["campaign", "run", cid, "-c", str(cfg)], env={"COLUMNS": "300"})
    assert waited.exit_code == 0, waited.output
    assert (f"{cid} is scheduled for {soon.strftime('%Y-%m-%d %H:%M UTC')} (in less than a minute): waiting until "
            "then (nothing is sent before)") in waited.stdout, waited.output
    assert f"{cid}: completed; sent 1" in waited.stdout
    assert datetime.now(timezone.utc) >= soon


def test_serve_runs_the_webhook_app_until_ctrl_c(tmp_path: Path) -> None:
    """`smsgate serve`: the webhook app for the configured tenants, in a real subprocess."""
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f"""
store = "sqlite:///{tmp_path / 'hooks.db'}"
[tenants.acme]
default_region = "NG"
[tenants.acme.providers.squad]
plugin = "squad"
sender = "ACME"
credentials = {{ secret_key = "sk_test_0123456789" }}
""")
    proc = subprocess.Popen([sys.executable, "-m", "smsgate", "serve", "-c", str(cfg), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert f"serving webhooks on http://127.0.0.1:{port}/hooks (tenants: acme)" in line, (
            line + (proc.stderr.read() if proc.stderr else ""))
        urls = [proc.stdout.readline() for _ in range(2)] if proc.stdout else []
        assert urls[1].strip() == f"acme/squad (squad): http://127.0.0.1:{port}/hooks/acme/squad", urls
        base = f"http://127.0.0.1:{port}/hooks"
        assert httpx.post(f"{base}/globex/squad", content=b"{}").status_code == 401  # unknown tenant: as unsigned
        unsigned = httpx.post(f"{base}/acme/squad", content=b'{"Event": "sms"}')
        assert unsigned.status_code == 401  # Squad signs its callbacks: an unsigned one is refused
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode in (0, 130)
    bad = subprocess.run([sys.executable, "-m", "smsgate", "serve", "-c", str(cfg), "--path", "hooks"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "field '--path': must start with '/'" in bad.stderr


def test_running_a_paused_campaign_says_how_to_resume_it(cfg: Path, tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    audience.write_text("phone\n08031234567\n")
    base = ["-c", str(cfg)]
    created = runner.invoke(app, ["campaign", "create", "--name", "Held", "--csv", str(audience), "--text", "Hi",
                                  *base])
    match = re.search(r"cmp_\w+", created.stdout)
    assert match is not None
    cid = match.group(0)
    assert runner.invoke(app, ["campaign", "pause", cid, *base]).exit_code == 0
    ran = runner.invoke(app, ["campaign", "run", cid, *base], env={"COLUMNS": "200"})
    assert ran.exit_code == 1, ran.output  # nothing was sent: not a success
    assert "paused; nothing was sent (sent 0" in ran.stdout and f"smsgate campaign resume {cid}" in ran.stdout


def test_providers_health_of_a_tenant_without_providers_says_so(tmp_path: Path) -> None:
    """A tenant with no provider instances (the demo's read-back config) printed an empty table."""
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n\n[tenants.demo]\ndefault_region = "NG"\n')
    out = runner.invoke(app, ["providers", "health", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert "tenant demo has no provider instances configured: nothing to report" in out.output


def test_a_memory_store_says_that_the_command_keeps_nothing(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``store = "memory://"`` (the testing page's configuration) in smsgate.toml: each command has a
    store of its own, empty, gone when it ends. ``optout add`` said the number was opted out and
    ``optout list`` then listed none, ``campaign create`` made a campaign no ``campaign run`` could
    find, without a word: every command opening it says so on stderr (its output is unchanged)."""
    monkeypatch.delenv("SMSGATE_STORE", raising=False)
    path = tmp_path / "smsgate.toml"
    path.write_text('store = "memory://"\n[tenants.acme]\ndefault_region = "NG"\n'
                    '[tenants.acme.providers.m]\nplugin = "memory"\n')
    added = runner.invoke(app, ["optout", "add", "08031234567", "-c", str(path)])
    assert added.exit_code == 0, added.output
    assert "opted out" in added.stdout and "memory://" not in added.stdout
    assert "memory://" in added.stderr and "nothing" in added.stderr, added.stderr
    listed = runner.invoke(app, ["optout", "list", "-c", str(path), "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == [], listed.output
    assert "memory://" in listed.stderr
    path.write_text(path.read_text().replace("memory://", f"sqlite:///{tmp_path / 'kept.db'}"))
    kept = runner.invoke(app, ["optout", "add", "08031234567", "-c", str(path)])
    assert kept.exit_code == 0 and kept.stderr == "", kept.output
