"""What a new user following the docs (getting started, campaigns, the CLI) ran into: each
test fails without its fix. Delivery claims are read from the emulators' own records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsgate import Gateway, Status
from smsgate.cli import app
from smsgate.errors import InvalidPhoneNumber

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
    """Which of the two test numbers (whatever format the vendor takes) reached an emulator."""
    bodies = " ".join(req.body for req in emulator.processed(method="POST"))
    return [n for n in ("+447912345671", "+2348031234571") if n[-10:] in bodies]


# ----------------------------------------------------------------------- bulk sends fail over like single ones
def test_send_many_fails_a_number_its_first_provider_cannot_take_over_to_the_next(
        tmp_path: Path, sms_emulator: Callable[..., Any]) -> None:
    """``send("+44...")`` failed over from Squad (Nigerian numbers only) to the next provider, but
    the same number in ``send_many`` or a campaign beside a Nigerian one was logged ``rejected``
    ("Squad delivers to Nigerian (+234) numbers only") and never sent: whether a message went
    depended on the batch it happened to share."""
    cfg, squad, dm = two_vendors(tmp_path, sms_emulator)
    with Gateway(cfg) as gw:
        results = gw.tenant("acme").send_many(["08031234571", "+447912345671"], "Sale")
    assert [(r.status, r.provider) for r in results] == [(Status.SENT, "squad"), (Status.SUBMITTED, "dm")]
    assert numbers_received(squad) == ["+2348031234571"] and numbers_received(dm) == ["+447912345671"]


def test_a_campaign_sends_a_number_its_first_provider_cannot_take_through_the_next(
        tmp_path: Path, sms_emulator: Callable[..., Any]) -> None:
    cfg, squad, dm = two_vendors(tmp_path, sms_emulator)
    with Gateway(cfg) as gw:
        camp = gw.tenant("acme").campaigns.create("n", text="hi", audience=["08031234571", "+447912345671"])
        result = camp.run()
    assert (result.sent, result.failed) == (2, 0)
    assert numbers_received(squad) == ["+2348031234571"] and numbers_received(dm) == ["+447912345671"]


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
