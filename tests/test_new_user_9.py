"""Found by a new user working through the README and docs/ (helper newuser9): each test fails
without its fix."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from smsgate import Gateway
from smsgate.cli import app
from smsgate.models import Stats

runner = CliRunner()


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, no smsgate.toml, no $SMSGATE_CONFIG: a brand-new user's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_CONFIG", raising=False)
    return tmp_path


def _memory_config(tmp_path: Path) -> Path:
    path = tmp_path / "smsgate.toml"
    path.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                    '[tenants.acme.providers.mem]\nplugin = "memory"\n', encoding="utf-8")
    return path


# ----------------------------------------------------------------------- delivery rate
def test_delivery_rate_counts_expired_messages_as_not_delivered() -> None:
    """An expired message was not delivered, yet ``delivery_rate`` left it out: 1 delivered and
    9 expired read 100%."""
    assert Stats(delivered=1, expired=9).delivery_rate == pytest.approx(0.1)
    assert Stats(delivered=1, failed=1, undelivered=1, expired=1).delivery_rate == pytest.approx(0.25)


def test_delivery_rate_leaves_out_rejected_and_pending_messages() -> None:
    """Documented: ``rejected`` (refused before anything was sent: opted out, no route, bad input)
    and messages with no outcome yet are not in the denominator."""
    assert Stats(delivered=1, rejected=5, queued=2, submitted=1, sent=1, unknown=1).delivery_rate == 1.0
    assert Stats(rejected=3).delivery_rate is None


# ----------------------------------------------------------------------- read-only commands create no store
@pytest.mark.parametrize("args", [["tenant", "list"], ["tenant", "list", "--json"], ["tenant", "remove", "acme"],
                                  ["tenant", "erase", "acme", "--yes"], ["tenant", "rekey"],
                                  ["tenant", "rotate", "acme", "m", "-"]])
def test_tenant_commands_without_a_store_do_not_create_one(no_config: Path, args: list[str]) -> None:
    """``smsgate tenant list`` in an empty directory created ./smsgate.db (the default store) to
    list nothing in it."""
    out = runner.invoke(app, args, env={"SMSGATE_TENANT_KEY": ""})
    assert not any(no_config.iterdir()), (sorted(p.name for p in no_config.iterdir()), out.output)
    assert out.exit_code in (0, 1, 2), out.output


@pytest.mark.parametrize("args", [["store", "purge", "--older-than", "90d"],
                                  ["store", "purge", "--older-than", "90d", "--json"],
                                  ["store", "upgrade-history"]])
def test_store_commands_without_a_store_do_not_create_one(no_config: Path, args: list[str]) -> None:
    """``smsgate store purge`` in an empty directory created ./smsgate.db, then purged nothing in it."""
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert not any(no_config.iterdir()), sorted(p.name for p in no_config.iterdir())
    words = " ".join(out.output.split())
    assert "does not exist" in words or words.startswith("{"), words


def test_store_purge_of_an_unknown_tenant_without_a_store_is_still_an_error(no_config: Path) -> None:
    out = runner.invoke(app, ["store", "purge", "--older-than", "90d", "--tenant", "nope"])
    assert out.exit_code == 2, out.output
    assert "unknown tenant 'nope'" in " ".join(out.output.split()), out.output
    assert not any(no_config.iterdir())


def test_tenant_list_without_a_store_says_there_is_none(no_config: Path) -> None:
    out = runner.invoke(app, ["tenant", "list"])
    assert out.exit_code == 0, out.output
    words = " ".join(out.output.split())
    assert "sqlite:///smsgate.db does not exist" in words, words
    assert "smsgate tenant add" in words
    out = runner.invoke(app, ["tenant", "list", "--json"])
    assert out.exit_code == 0 and out.output.strip() == "[]", out.output


def test_tenant_list_of_an_existing_store_still_works(tmp_path: Path) -> None:
    config = _memory_config(tmp_path)
    assert runner.invoke(app, ["db", "upgrade", "-c", str(config)]).exit_code == 0
    out = runner.invoke(app, ["tenant", "list", "-c", str(config)])
    assert out.exit_code == 0 and "no tenants stored" in out.output, out.output


# ----------------------------------------------------------------------- phone errors name what was typed
@pytest.mark.parametrize(("args", "named"), [
    (["messages", "--to", "abc"], "'--to'"),
    (["optout", "add", "12x"], "argument 'phone'"),
    (["optout", "check", "abc"], "argument 'phone'"),
    (["optout", "remove", "1"], "argument 'phone'"),
    (["route", "explain", "abc"], "argument 'to'"),
    (["send", "abc", "hi"], "argument 'to'"),
])
def test_a_bad_number_on_the_command_line_is_named_as_typed(tmp_path: Path, args: list[str], named: str) -> None:
    """``smsgate messages --to abc`` said ``field 'phone': 'abc' is not a valid phone number``:
    the user typed no 'phone'. The error now names the flag or the argument. (``inbound --from``
    takes a short code or a sender ID too: one that matches nothing lists nothing, said so.)"""
    out = runner.invoke(app, [*args, "-c", str(_memory_config(tmp_path))])
    assert out.exit_code == 2, out.output
    line = " ".join(out.output.split())
    assert named in line and "'phone'" not in line.replace("argument 'phone'", ""), line
    assert "is not a valid phone number" in line


def test_a_bad_number_among_contacts_remove_s_numbers_is_named_as_typed(tmp_path: Path) -> None:
    config = str(_memory_config(tmp_path))
    csv = tmp_path / "c.csv"
    csv.write_text("phone,name\n08031234561,Ada\n", encoding="utf-8")
    assert runner.invoke(app, ["contacts", "create", "VIP", "--csv", str(csv), "--id", "vip", "-c", config]).exit_code == 0
    out = runner.invoke(app, ["contacts", "remove", "vip", "08031234561", "0803123456x", "-c", config])
    assert out.exit_code == 2, out.output
    line = " ".join(out.output.split())
    assert line.startswith("error: argument 'PHONE...': '0803123456x' is not a valid phone number"), line


def test_an_empty_text_on_the_command_line_is_named_as_the_text_argument(tmp_path: Path) -> None:
    """``smsgate send 0803... ""`` said ``field 'text': is empty``, as the other flags' errors said
    ``field 'phone'``; it now names the TEXT argument as ``--help`` shows it."""
    out = runner.invoke(app, ["send", "08031234561", "", "-c", str(_memory_config(tmp_path))])
    assert out.exit_code == 2, out.output
    assert " ".join(out.output.split()).startswith("error: argument 'text': is empty"), out.output


# ----------------------------------------------------------------------- help of positional arguments
def test_every_positional_argument_has_help() -> None:
    """``smsgate optout add --help`` listed ``phone <str> [required]`` and nothing more; so did
    every campaign command's CAMPAIGN_ID, ``status show``'s MESSAGE_ID and ``tenant``'s NAME."""
    root = typer.main.get_command(app)
    bare = [f"{' '.join(path)} {p.name}" for path, command in _commands(root)
            for p in getattr(command, "params", []) if p.param_type_name == "argument" and not getattr(p, "help", "")]
    assert bare == []


def test_optout_add_help_describes_its_argument() -> None:
    out = runner.invoke(app, ["optout", "add", "--help"], env={"COLUMNS": "120"})
    assert out.exit_code == 0
    assert "The number" in out.output, out.output


# ----------------------------------------------------------------------- send to an opted-out number
def test_send_to_an_opted_out_number_says_how_to_opt_it_back_in(tmp_path: Path) -> None:
    """``smsgate send`` to a number opted out said only ``+234... has opted out of messages from
    tenant 'acme'; not sent``: a new user trying the getting-started steps in order (optout add,
    then send) was left to find the way back."""
    config = str(_memory_config(tmp_path))
    assert runner.invoke(app, ["optout", "add", "08031234567", "-c", config]).exit_code == 0
    out = runner.invoke(app, ["send", "08031234567", "hi", "-c", config])
    assert out.exit_code == 2, out.output
    line = " ".join(out.output.split())
    assert "has opted out" in line and "smsgate optout remove +2348031234567" in line, line
    assert runner.invoke(app, ["optout", "add", "08031234567", "--scope", "ACME", "-c", config]).exit_code == 0
    assert runner.invoke(app, ["optout", "remove", "08031234567", "-c", config]).exit_code == 0
    out = runner.invoke(app, ["send", "08031234567", "hi", "--sender", "ACME", "-c", config])
    line = " ".join(out.output.split())
    assert "smsgate optout remove +2348031234567 --scope ACME" in line, line


# ----------------------------------------------------------------------- smsgate stats --since
def test_smsgate_stats_takes_since_as_tenant_stats_does(tmp_path: Path) -> None:
    """docs/campaigns.md gives ``tenant.stats(since="1h")`` next to ``smsgate stats``, which had
    no such flag: the command could only count the whole log."""
    config = _memory_config(tmp_path)
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        acme.send("08031234561", "old")
        acme.send("08031234562", "new")
        old = acme.messages(limit=10)[-1]
    # the first message logged two days ago
    db = sqlite3.connect(tmp_path / "s.db")
    when = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()
    assert db.execute("UPDATE messages SET created_at = ? WHERE message_id = ?", (when, old.message_id)).rowcount == 1
    db.commit()
    db.close()
    out = runner.invoke(app, ["stats", "--since", "1d", "--json", "-c", str(config)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["total"] == 1
    out = runner.invoke(app, ["stats", "--json", "-c", str(config)])
    assert json.loads(out.output)["total"] == 2
    out = runner.invoke(app, ["stats", "--since", "soon", "-c", str(config)])
    assert out.exit_code == 2 and "'--since'" in out.output, out.output


# ----------------------------------------------------------------------- a provider that gives no id
def test_send_through_a_provider_that_gives_no_message_id_does_not_print_none(tmp_path: Path) -> None:
    """``smsgate send`` through Colony (which answers no message id) printed ``submitted via
    colony (provider id None)``."""
    from smsgate.testing import LiveServer
    from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app

    creds = ", ".join(f'{k} = "{v}"' for k, v in SANDBOX_CREDENTIALS.items())
    config = tmp_path / "smsgate.toml"
    with LiveServer(create_app()) as colony:
        config.write_text(
            f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
            f'[tenants.acme.providers.colony]\nplugin = "colony"\nbase_url = "{colony.url}"\n'
            f'sender = "SMSGATE"\ncredentials = {{ {creds} }}\n', encoding="utf-8")
        out = runner.invoke(app, ["send", "08031234567", "hi", "-c", str(config)])
    assert out.exit_code == 0, out.output
    assert "None" not in out.output and "via colony" in out.output, out.output


# ----------------------------------------------------------------------- send_later without configure()
def test_send_later_through_an_app_not_configured_for_smsgate_is_refused() -> None:
    """``send_later(...)`` in a process that never imported the module calling ``configure(app)``
    (docs/scaling.md's ``myapp.tasks``) queued the task on Celery's default app: its default
    broker, ``amqp://guest@localhost//``, queue ``celery``, where no smsgate worker listens; the
    send never happened and nothing said so. It is now a ConfigError saying what to do, and
    nothing is queued."""
    pytest.importorskip("celery")
    from celery import Celery

    from smsgate.contrib.celery import send_later
    from smsgate.errors import ConfigError

    app = Celery("not_configured", broker="memory://", set_as_current=False)
    try:
        with pytest.raises(ConfigError, match=r"configure\(app"):
            send_later("acme", "08031234567", "hello", app=app)
    finally:
        app.close()


def test_send_later_through_celery_s_default_app_is_refused(tmp_path: Path) -> None:
    """The same for the app send_later picks itself (Celery's current app): run in a process of
    its own, where no app was made, with a broker that would accept nothing."""
    pytest.importorskip("celery")
    import subprocess
    import sys

    code = ("from smsgate.contrib.celery import send_later\n"
            "from smsgate.errors import ConfigError\n"
            "try:\n    send_later('acme', '08031234567', 'hello')\n"
            "except ConfigError as exc:\n    print('refused:', exc)\n")
    env = {**os.environ, "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                         cwd=tmp_path)
    assert out.stdout.startswith("refused:"), (out.stdout, out.stderr[-2000:])
    assert "myapp.tasks" in out.stdout


# ----------------------------------------------------------------------- the demo's last line
def test_the_demo_s_last_line_keeps_each_command_whole(no_config: Path) -> None:
    """The README's first command ends with the commands to read its log, and broke the second one
    over two lines (``smsgate stats -c`` / ``smsgate-demo.toml``): copied, it ran without its file."""
    out = runner.invoke(app, ["demo"])
    assert out.exit_code == 0, out.output
    last = [line for line in out.output.splitlines() if "demo finished" in line]
    assert last and "smsgate stats -c smsgate-demo.toml" in last[0], out.output[-600:]


# ------------------------------------------------- campaign pause/resume/cancel/retry without secrets
@pytest.fixture(scope="module")
def squad_emulator() -> Iterator[Any]:
    from smsgate.testing import LiveServer
    from smsgate_squad.emulator import create_app

    with LiveServer(create_app(delivery_delay=0.05)) as server:
        yield server


def _squad_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, squad_emulator: Any, *numbers: str) -> None:
    """An operator's directory: smsgate.toml (tenant acme, the squad emulator, its key from
    ``SQUAD_KEY``) and people.csv with ``numbers``; the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_CONFIG", raising=False)
    (tmp_path / "smsgate.toml").write_text(
        f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
        f'[tenants.acme.providers.sq]\nplugin = "squad"\nbase_url = "{squad_emulator.url}"\n'
        'sender = "SMSGATE"\ncredentials = { secret_key = "${SQUAD_KEY}" }\n', encoding="utf-8")
    (tmp_path / "people.csv").write_text("phone\n" + "".join(f"{n}\n" for n in numbers), encoding="utf-8")


def test_campaign_pause_resume_cancel_retry_need_no_provider_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, squad_emulator: Any) -> None:
    """pause, resume, cancel, retry-failed and retry-unknown write only the store, yet each
    failed (exit 2, 'environment variable SQUAD_KEY is not set') in a shell without the
    provider's key: an operator could not stop a campaign from such a machine."""
    from smsgate.testing import EmulatorControl
    from smsgate_squad.emulator import SANDBOX_SECRET_KEY

    _squad_project(tmp_path, monkeypatch, squad_emulator, "08031239001", "08031239002")
    monkeypatch.setenv("SQUAD_KEY", SANDBOX_SECRET_KEY)
    created = runner.invoke(app, ["campaign", "create", "--name", "nu9", "--csv", "people.csv",
                                  "--text", "hello nu9", "--json"])
    assert created.exit_code == 0, created.output
    cid = json.loads(created.stdout)["campaign_id"]
    monkeypatch.delenv("SQUAD_KEY")
    for command in (["pause", cid], ["resume", cid], ["retry-failed", cid], ["retry-unknown", cid, "--yes"],
                    ["cancel", cid]):
        out = runner.invoke(app, ["campaign", *command])
        assert out.exit_code == 0, (command, out.output)
        assert "SQUAD_KEY" not in out.output
    assert "cancelled" in runner.invoke(app, ["campaign", "status", cid]).stdout
    # nothing reached the vendor (the emulator's own record), and sending still needs the key
    assert not [r for r in EmulatorControl(squad_emulator.url).requests(method="POST") if "0803123900" in str(r)]
    out = runner.invoke(app, ["send", "08031239003", "hi"])
    assert out.exit_code == 2 and "SQUAD_KEY is not set" in out.output


def test_root_help_names_exit_code_130() -> None:
    """Every long-running command exits 130 on Ctrl-C (docs), but the root help listed 0, 1 and 2 only."""
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    assert "130 stopped by Ctrl-C" in " ".join(out.stdout.split()), out.stdout


def test_campaign_status_does_not_say_a_past_start_holds_sends_back(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A campaign whose scheduled start has passed (a worker picked it up, then was stopped with
    some sent) still read 'scheduled for <then>: nothing is sent before' under 'sent 10700'."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_CONFIG", raising=False)
    config = _memory_config(tmp_path)
    past = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    future = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(days=2)
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        begun = acme.campaigns.create("Begun", text="hi", audience=["08031234561"], start_at=past).campaign_id
        later = acme.campaigns.create("Later", text="hi", audience=["08031234562"], start_at=future).campaign_id
    out = runner.invoke(app, ["campaign", "status", begun], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "scheduled for" not in out.stdout and "nothing is sent before" not in out.stdout, out.stdout
    out = runner.invoke(app, ["campaign", "status", later], env={"COLUMNS": "200"})
    assert f"scheduled for {future:%Y-%m-%d %H:%M} UTC: nothing is sent before" in out.stdout, out.stdout


def test_an_unset_credential_variable_names_the_configuration_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other problem of a configuration file is prefixed with its path; an unset ``${VAR}``
    credential was not ('error: tenants.acme...: environment variable NU9_UNSET is not set'), so a
    user with several configurations (the demo's, a test one, $SMSGATE_CONFIG) could not tell which."""
    from smsgate.config import load_config
    from smsgate.errors import ConfigError

    monkeypatch.delenv("NU9_UNSET", raising=False)
    path = tmp_path / "prod.toml"
    path.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                    '[tenants.acme.providers.sq]\nplugin = "squad"\nsender = "ACME"\n'
                    'credentials = { secret_key = "${NU9_UNSET}" }\n', encoding="utf-8")
    expected = (f"{path}: tenants.acme.providers.sq.credentials.secret_key: environment variable NU9_UNSET "
                "is not set")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(expected), str(exc.value)
    with Gateway(load_config(path, defer_secrets=True)) as gw, pytest.raises(ConfigError) as exc:
        gw.tenant("acme").send("08031234567", "hi")  # the read-only tools' path: raised when used
    assert str(exc.value).startswith(expected), str(exc.value)
    out = runner.invoke(app, ["send", "08031234567", "hi", "-c", str(path)])
    assert out.exit_code == 2 and f"error: {expected}" in out.output, out.output


@pytest.mark.parametrize(("header", "column"), [
    ("Phone Number,Name", "Phone Number"), ("name,phone_number,city", "phone_number"), ("Mobile,Name", "Mobile"),
])
def test_a_header_without_phone_suggests_the_column_that_looks_like_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: str, column: str) -> None:
    """An export from a CRM or Excel names its numbers' column 'Phone Number' or 'Mobile'; the
    error said only 'name the column that holds the numbers: --phone-column COLUMN'."""
    import shlex

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_CONFIG", raising=False)
    _memory_config(tmp_path)
    (tmp_path / "crm.csv").write_text(f"{header}\n" + ",".join(["08031234561"] + ["x"] * header.count(",")) + "\n",
                                      encoding="utf-8")
    out = runner.invoke(app, ["campaign", "create", "--name", "crm", "--csv", "crm.csv", "--text", "hi"],
                        env={"COLUMNS": "300"})
    assert out.exit_code == 2
    assert f"(is it {column!r}? --phone-column {shlex.quote(column)})" in out.output, out.output
    assert "cmp_" not in runner.invoke(app, ["campaign", "list"]).stdout  # nothing created


@pytest.mark.parametrize("command", [["campaign", "create"], ["contacts", "create"], ["contacts", "add"]])
def test_csv_option_help_says_dash_reads_standard_input(command: list[str]) -> None:
    """``--csv -`` reads the CSV from standard input (docs/campaigns.md), but no --help said so."""
    out = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "300"})
    assert out.exit_code == 0
    assert "'-' reads it from standard input" in " ".join(out.stdout.split()), out.stdout


def test_resuming_a_campaign_that_is_not_paused_names_it_and_says_how_to_run_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``smsgate campaign resume`` of a draft (never paused) said ``error: field 'status': campaign
    is draft, not paused``: a field the user never typed, and no way on."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_CONFIG", raising=False)
    config = _memory_config(tmp_path)
    with Gateway(config) as gw:
        cid = gw.tenant("acme").campaigns.create("Draft", text="hi", audience=["08031234561"]).campaign_id
    out = runner.invoke(app, ["campaign", "resume", cid], env={"COLUMNS": "300"})
    assert out.exit_code == 2
    line = " ".join(out.output.split())
    assert "field 'status'" not in line, line
    assert f"error: campaign {cid}: campaign is draft, not paused: nothing to resume; run it with " \
           f"'smsgate campaign run {cid}'" in line, line


def test_retry_failed_with_a_misspelt_reason_says_which_reasons_there_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, squad_emulator: Any) -> None:
    """``retry-failed --reason Authfailed`` (the reason is ``AuthFailed``) put nothing back and said
    only '2 stay failed (they failed for another reason...)', then '... run ... sends them' though
    nothing was to send."""
    _squad_project(tmp_path, monkeypatch, squad_emulator, "08031239011", "08031239012")
    monkeypatch.setenv("SQUAD_KEY", "sk_wrong")  # every send: AuthFailed
    cid = json.loads(runner.invoke(app, ["campaign", "create", "--name", "r", "--csv", "people.csv",
                                         "--text", "hi", "--json"]).stdout)["campaign_id"]
    assert runner.invoke(app, ["campaign", "run", cid]).exit_code == 0
    out = runner.invoke(app, ["campaign", "retry-failed", cid, "--reason", "Authfailed"], env={"COLUMNS": "400"})
    assert out.exit_code == 0, out.output
    line = " ".join(out.stdout.split())
    assert "none failed for 'Authfailed' (did you mean --reason AuthFailed?): their reasons are AuthFailed 2" \
        in line, line
    assert "sends them" not in line, line
    out = runner.invoke(app, ["campaign", "retry-failed", cid, "--reason", "AuthFailed"], env={"COLUMNS": "400"})
    assert f"2 failed recipient(s) put back to pending; 'smsgate campaign run {cid}' sends them" in out.stdout


def test_a_misspelt_campaign_provider_gets_a_did_you_mean(tmp_path: Path) -> None:
    """``campaigns.create(..., provider="sqaud")`` / ``--provider sqaud`` listed the instances but,
    unlike a misspelt plugin, key or credential, gave no "did you mean"."""
    from smsgate.errors import ConfigError

    path = tmp_path / "smsgate.toml"
    path.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                    '[tenants.acme.providers.squad_main]\nplugin = "memory"\n'
                    '[tenants.acme.providers.backup]\nplugin = "memory"\n', encoding="utf-8")
    with Gateway(path) as gw, pytest.raises(ConfigError) as exc:
        gw.tenant("acme").campaigns.create("x", text="hi", audience=["08031234561"], provider="squad_mian")
    assert "has no provider 'squad_mian' (did you mean 'squad_main'?)" in str(exc.value), str(exc.value)
