"""What a new user following the docs (getting started, campaigns, the CLI) ran into: each
test fails without its fix. Delivery claims are read from the emulators' own records."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsgate import Gateway, Status
from smsgate.cli import app
from smsgate.errors import InvalidPhoneNumber, OptedOut, Unsupported
from smsgate.plugins import PluginManager
from smsgate.provider import Provider
from smsgate_squad.provider import SquadV2Provider

runner = CliRunner()


def two_vendors(tmp_path: Path, sms_emulator: Callable[..., Any]) -> tuple[Path, Any, Any]:
    """smsgate.toml with Squad (Nigerian numbers only) first and the Campaigns REST API after it,
    as a user pastes them from `smsgate sandbox`."""
    squad, dm = sms_emulator("squad"), sms_emulator("campaigns_api")
    key = squad.provider_settings().credentials["secret_key"].get_secret_value()
    api_key = dm.provider_settings().credentials["api_key"].get_secret_value()
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   f'[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "{squad.url}"\n'
                   f'sender = "ACME"\ncredentials = {{ secret_key = "{key}" }}\n'
                   f'[tenants.acme.providers.dm]\nplugin = "campaigns_api"\nbase_url = "{dm.url}"\n'
                   f'sender = "ACME"\ncredentials = {{ api_key = "{api_key}" }}\n')
    return cfg, squad, dm


def numbers_received(emulator: Any) -> list[str]:
    """Which of the test numbers (whatever format the vendor takes) reached an emulator."""
    bodies = " ".join(req.body for req in emulator.processed(method="POST"))
    return [n for n in ("+447912345671", "+447912345672", "+2348031234571", "+2348031234572") if n[-10:] in bodies]


# ----------------------------------------------------------------------- bulk sends fail over like single ones
class SquadKeepingNoRoutes(SquadV2Provider):
    """Squad as an adapter that does not say which numbers it carries (no ``reaches``): routing
    gives it every number, and only its ``send_many`` answer says it did not send one."""

    name = "squad_any"
    reaches = Provider.reaches  # type: ignore[assignment]


def test_send_many_fails_a_number_its_first_provider_answers_unsupported_over_to_the_next(
        tmp_path: Path, sms_emulator: Callable[..., Any]) -> None:
    """``send("+44...")`` failed over from Squad (Nigerian numbers only) to the next provider, but
    the same number in ``send_many`` or a campaign, beside a Nigerian one, was logged ``rejected``
    ("Squad delivers to Nigerian (+234) numbers only") and never sent: whether a message went
    depended on the batch it happened to share. (Squad now declares ``reaches``, so routing
    never gives it the number; an adapter that does not, and answers a bulk item
    ``unsupported``, is failed over the same way.)"""
    cfg, squad, dm = two_vendors(tmp_path, sms_emulator)
    cfg.write_text(cfg.read_text().replace('plugin = "squad"', 'plugin = "squad_any"'))
    plugins = PluginManager()
    plugins.add_provider(SquadKeepingNoRoutes)
    with Gateway(cfg, plugins=plugins) as gw:
        acme = gw.tenant("acme")
        results = acme.send_many(["08031234571", "+447912345671"], "Sale")
        camp = acme.campaigns.create("n", text="hi", audience=["08031234572", "+447912345672"])
        result = camp.run()
    assert [(r.status, r.provider) for r in results] == [(Status.SENT, "squad"), (Status.SUBMITTED, "dm")]
    assert (result.sent, result.failed) == (2, 0)
    assert numbers_received(squad) == ["+2348031234571", "+2348031234572"]
    assert numbers_received(dm) == ["+447912345671", "+447912345672"]


# ----------------------------------------------------------------------- smsgate messages: errors whole
def test_messages_piped_shows_each_error_whole(config: Path) -> None:
    """Piped, ``smsgate messages`` cut every error at 60 characters ("... from tenant 'acme';"
    without "not sent"), although output piped or redirected is documented to keep errors whole."""
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        acme.optouts.add("08031234567")
        [result] = acme.send_many(["08031234567"], "hello")
    assert result.error is not None and len(result.error) > 60
    out = runner.invoke(app, ["messages", "-c", str(config), "-t", "acme"])
    assert out.exit_code == 0, out.output
    assert result.error in out.stdout


# ----------------------------------------------------------------------- smsgate status: no secret for a final message
def test_status_of_a_final_message_needs_no_provider_secret(tmp_path: Path, monkeypatch: Any) -> None:
    """``smsgate status ID`` only asks the provider about a message that is not final, yet it
    stopped with "environment variable SQUAD_SECRET_KEY is not set" for any message, a
    delivered or rejected one too (a message in flight still names the variable)."""
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "http://127.0.0.1:9"\n'
                   'sender = "ACME"\ncredentials = { secret_key = "${USER5_SQUAD_KEY}" }\n')
    monkeypatch.setenv("USER5_SQUAD_KEY", "sk_test")
    with Gateway(cfg) as gw:
        acme = gw.tenant("acme")
        acme.optouts.add("08031234567")
        [final] = acme.send_many(["08031234567"], "hello")
    monkeypatch.delenv("USER5_SQUAD_KEY")
    out = runner.invoke(app, ["status", final.message_id, "-c", str(cfg), "-t", "acme"])
    assert out.exit_code == 0, out.output
    assert f"{final.message_id} to +2348031234567: rejected" in " ".join(out.stdout.split())


# ----------------------------------------------------------------------- a bad `to` is named `to`
def test_a_bad_number_given_to_send_names_the_argument_to(config: Path) -> None:
    """docs/concepts.md: a bad argument of ``send`` is a ``ValidationError`` whose ``field`` is the
    argument's name (``InvalidPhoneNumber`` for ``to``), but a bad number said ``field 'phone'``
    (a FastAPI app returning ``str(exc)`` showed its users a field they never sent)."""
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(InvalidPhoneNumber) as exc:
            acme.send("123", "hi")
        [rejected] = acme.send_many(["123"], "hi")
    assert exc.value.field == "to" and exc.value.value == "123"
    assert str(exc.value).startswith("field 'to': '123' is not a valid phone number")
    assert rejected.error is not None and rejected.error.startswith("recipient 0: field 'to': '123'")


# ----------------------------------------------------------------------- opt-out commands: no provider secret
def test_optout_add_import_and_remove_need_no_provider_secret(tmp_path: Path) -> None:
    """``smsgate optout add | import | remove`` write the store only, but stopped with "environment
    variable ... is not set" when a provider's ``${VAR}`` credential was not set (an operator
    importing a list of opt-outs needs no vendor key)."""
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.squad]\nplugin = "squad"\nsender = "ACME"\n'
                   'credentials = { secret_key = "${USER5_UNSET_SQUAD_KEY}" }\n')
    csv = tmp_path / "stop.csv"
    csv.write_text("phone\n08031234561\n")
    for args in (["optout", "add", "08031234567"], ["optout", "import", str(csv)],
                 ["optout", "remove", "08031234567"]):
        out = runner.invoke(app, [*args, "-c", str(cfg), "-t", "acme"])
        assert out.exit_code == 0, (args, out.output)
    check = runner.invoke(app, ["optout", "check", "08031234561", "-c", str(cfg), "-t", "acme"])
    assert check.exit_code == 0, check.output  # imported


# ----------------------------------------------------------------------- scripting campaigns: --json
def test_campaign_create_and_list_print_json_for_scripts(config: Path) -> None:
    """A script that creates a campaign and hands it to ``dispatch_campaign`` or ``campaign run``
    needs its id: ``campaign create`` and ``campaign list`` had no ``--json`` (the other listings
    have one), so the id had to be scraped from the preview's text."""
    path = config.parent / "c.csv"
    path.write_text("phone,name\n08031234561,Ada\n12345,Bad\n")
    created = runner.invoke(app, ["campaign", "create", "--name", "Sale", "--csv", str(path), "--text", "Hi {name}",
                                  "-c", str(config), "-t", "acme", "--json"])
    assert created.exit_code == 0, created.output
    preview = json.loads(created.stdout)
    assert preview["recipients"] == 1 and preview["skipped"] == {"invalid": 1}
    listed = runner.invoke(app, ["campaign", "list", "-c", str(config), "-t", "acme", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["campaign_id"] == preview["campaign_id"] and row["name"] == "Sale" and row["status"] == "draft"
    assert "Hi {name}" not in listed.stdout  # the campaign's text stays out of the listing


# ----------------------------------------------------------------------- help texts: no reST markup
def test_no_command_help_shows_restructuredtext_markup() -> None:
    """``smsgate serve --help`` said "run ``smsgate.webhooks.webhook_app`` under your own ASGI
    server": the docstrings' reST double backticks reached the terminal (demo, campaign run,
    campaign delete and config check too)."""
    import typer

    def walk(command: Any, path: str) -> Any:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    found = []
    for path, command in walk(typer.main.get_command(app), "smsgate"):
        for text in [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]:
            found += [f"{path}: {mark}" for mark in ("``", ":class:", ":meth:", ":func:") if mark in text]
    assert found == []


# ----------------------------------------------------------------------- routing knows what a provider carries
def test_routing_leaves_out_a_provider_that_does_not_carry_the_number(
        tmp_path: Path, sms_emulator: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    """Squad carries Nigerian numbers only, yet ``route explain +44...`` named it first choice,
    a campaign's preview counted the number "via squad" (with Squad's cost), and every such send
    went to Squad first and failed over with a warning. ``Provider.reaches`` now tells routing."""
    cfg, squad, dm = two_vendors(tmp_path, sms_emulator)
    with Gateway(cfg) as gw:
        acme = gw.tenant("acme")
        explained = acme.explain_route("+447912345671")
        assert explained.order == ["dm"]
        assert [(c.instance, c.action) for c in explained.candidates] == [("squad", "excluded"), ("dm", "try")]
        assert "does not carry messages to +447912345671" in explained.candidates[0].reasons[0]
        preview = acme.campaigns.create("n", text="hi", audience=["08031234571", "+447912345671"]).preview()
        assert preview.by_provider == {"squad": 1, "dm": 1}
        forced = acme.campaigns.create("f", text="hi", audience=["08031234571", "+447912345671"],
                                       provider="squad").preview()
        assert forced.by_provider == {"squad": 1} and forced.skipped == {"unsupported": 1}
        assert forced.errors[0].detail == "provider 'squad' does not carry messages to +447912345671"
        caplog.clear()
        assert acme.send("+447912345671", "hi").provider == "dm"
        with pytest.raises(Unsupported, match=r"set options\.allow_international"):  # given by name: its own word
            acme.send("+447912345671", "hi", provider="squad")
    assert "send via squad failed" not in caplog.text
    assert numbers_received(squad) == [] and numbers_received(dm) == ["+447912345671"]


# ----------------------------------------------------------------------- Celery: a refused send is not a worker error
def test_a_send_later_refused_for_the_request_is_no_worker_error(
        config: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``send_later`` to an opted-out or invalid number fails its task with the typed error, as
    documented, but the worker logged each one at ERROR with a traceback ("raised unexpected:
    OptedOut(...)"): an OTP app's logs and alerts filled with its users' opt-outs and typos."""
    import uuid

    from celery import Celery

    from smsgate.contrib.celery import _close_gateways, configure

    with Gateway(config) as gw:
        gw.tenant("acme").optouts.add("08031234567")
        app = Celery(f"user5-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
        configure(app, gateway=lambda: gw)
        send = app.tasks["smsgate.send_message"]
        caplog.set_level(logging.INFO)
        try:
            opted = send.apply(("acme", "08031234567", "hi"), {"idempotency_key": "k1"})
            invalid = send.apply(("acme", "123", "hi"), {"idempotency_key": "k2"})
        finally:
            _close_gateways()
    assert isinstance(opted.result, OptedOut) and isinstance(invalid.result, InvalidPhoneNumber)
    assert opted.state == invalid.state == "FAILURE"
    refused = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert len(refused) == 2 and all(r.levelno == logging.INFO and not r.exc_info for r in refused), [
        (r.levelname, r.getMessage()) for r in refused]


# ----------------------------------------------------------------------- the quickstart's progress lines add up
def test_the_demos_progress_lines_account_for_every_recipient(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README command 1's first progress line read "sent 0, failed 0, unknown 0, pending 0": the
    recipients being sent (claimed by the run) were not shown, so the campaign looked empty."""
    import re

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGATE_CONFIG", raising=False)
    monkeypatch.delenv("SMSGATE_STORE", raising=False)
    out = runner.invoke(app, ["demo", "--db", "demo.db"])
    assert out.exit_code == 0, out.output
    lines = [line for line in out.output.splitlines() if "progress:" in line]
    totals = {sum(int(n) for n in re.findall(r"\d+", line)) for line in lines}
    assert lines and all("sending" in line for line in lines) and len(totals) == 1, lines


# ----------------------------------------------------------------------- smsgate tenant list, with none
def test_tenant_list_with_no_stored_tenant_says_so(config: Path) -> None:
    """With no stored tenant, ``smsgate tenant list`` printed an empty table's header only (and the
    configuration's tenants are not listed), which read as if the command had failed."""
    out = runner.invoke(app, ["tenant", "list", "-c", str(config)])
    assert out.exit_code == 0, out.output
    assert "no tenants stored" in out.stdout and "smsgate tenant add NAME FILE" in out.stdout
    assert json.loads(runner.invoke(app, ["tenant", "list", "-c", str(config), "--json"]).stdout) == []
