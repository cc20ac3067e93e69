"""What a new user following the docs (getting started, campaigns, quiet hours, retry-unknown,
writing a provider) ran into: each test fails without its fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsgate import Gateway
from smsgate.cli import app
from smsgate.errors import ValidationError
from smsgate.testing import FaultRule
from smsgate.zones import parse_quiet_hours

runner = CliRunner()


def cli(config: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "-c", str(config), "-t", "acme"])


# ----------------------------------------------------------------------- quiet hours that start at their end
def test_cli_quiet_hours_starting_at_their_end_are_explained_in_the_flags_syntax(config: Path) -> None:
    """``--quiet-hours 08:00-08:00`` answered in Python syntax (``['08:00', '08:00'] ... e.g.
    ['21:00', '08:00'], or no quiet_hours``), which is not what the flag takes."""
    path = config.parent / "c.csv"
    path.write_text("phone\n08031234561\n")
    result = cli(config, "campaign", "create", "--name", "n", "--csv", str(path), "--text", "hi",
                 "--quiet-hours", "08:00-08:00")
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "'08:00-08:00' start and end at the same time" in out
    assert "e.g. 21:00-08:00, or off for none" in out and "[" not in out


def test_parse_quiet_hours_names_the_text_as_written() -> None:
    with pytest.raises(ValueError, match=r"^'8:00 - 08:00' start and end at the same time: .* 21:00-08:00, or off"):
        parse_quiet_hours("8:00 - 08:00")


def test_campaign_quiet_hours_starting_at_their_end_point_to_false(config: Path) -> None:
    """``campaigns.create(quiet_hours=["08:00", "08:00"])`` said "or no quiet_hours": leaving it out
    keeps the tenant's; ``False`` is what gives none."""
    with Gateway(config) as gw:
        with pytest.raises(ValidationError) as exc:
            gw.tenant("acme").campaigns.create("n", text="hi", audience=["08031234561"],
                                               quiet_hours=["08:00", "08:00"])
    assert exc.value.field == "quiet_hours"
    assert exc.value.reason.endswith("or quiet_hours=False for none"), exc.value.reason


# ----------------------------------------------------------------------- campaign create, piped
def test_campaign_create_piped_writes_nothing_to_stderr(config: Path) -> None:
    """The "rows read" spinner is for a terminal; piped, it still left an empty line on stderr."""
    path = config.parent / "c.csv"
    path.write_text("phone\n08031234561\n")
    result = cli(config, "campaign", "create", "--name", "n", "--csv", str(path), "--text", "hi")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "rows: 1, to send: 1" in result.stdout


# ----------------------------------------------------------------------- campaign run: what next
def test_campaign_run_says_how_to_go_on_with_unknown_recipients(
        tmp_path: Path, sms_emulator: Callable[..., Any]) -> None:
    """A run that left recipients ``unknown`` ended with their count only; ``retry-unknown`` was
    documented but nothing pointed at it (failures get a "why they failed" hint). Squad keeps no
    client reference: an answer lost after the vendor acted stays unknown."""
    squad = sms_emulator("squad")
    key = squad.provider_settings().credentials["secret_key"].get_secret_value()
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   f'[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "{squad.url}"\n'
                   f'sender = "ACME"\ncredentials = {{ secret_key = "{key}" }}\n')
    with Gateway(cfg) as gw:
        camp = gw.tenant("acme").campaigns.create("n", text="hi", audience=["08031234561"])
    squad.add(FaultRule.reset(process=True, path="/sms/send", count=None))
    result = runner.invoke(app, ["campaign", "run", camp.campaign_id, "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "unknown 1" in out
    assert f"'smsgate campaign retry-unknown {camp.campaign_id}' sends them again" in out
    assert len(squad.processed("/sms/send")) == 1  # the vendor has it: the hint warns of a duplicate


# ----------------------------------------------------------------------- new-provider --dir
def test_new_provider_into_a_missing_directory_says_so_and_names_the_flag(tmp_path: Path) -> None:
    """``smsgate new-provider acme_sms --dir ~/src`` (the documented example) with no ~/src said
    "field 'directory': ... is not a directory"."""
    missing = tmp_path / "src"
    result = runner.invoke(app, ["new-provider", "acme_four", "--dir", str(missing)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "field '--dir'" in out and f"{missing} does not exist: create it first (mkdir -p {missing})" in out
    assert not missing.exists()
    afile = tmp_path / "f"
    afile.write_text("x")
    result = runner.invoke(app, ["new-provider", "acme_four", "--dir", str(afile)])
    assert result.exit_code == 2 and "is not a directory" in result.output


# ----------------------------------------------------------------------- capabilities without operations
def test_a_capability_without_its_operation_is_refused_when_the_provider_is_built() -> None:
    """docs/writing-a-provider.md's AcmeProvider declared ``bulk=True, status_lookup=True`` and
    implemented only ``send``: every bulk send then failed with "does not support bulk send; the
    gateway sends one by one instead" (it did not), and status lookups raised ``Unsupported``."""
    from smsgate import Capabilities, OutboundMessage, Provider, SendResult, Status, hookimpl
    from smsgate.errors import ConfigError
    from smsgate.plugins import PluginManager
    from smsgate.provider import Operation

    class Half(Provider):
        name = "half"
        capabilities = Capabilities(bulk=True, max_batch=10, status_lookup=True)

        def send(self, msg: OutboundMessage) -> Operation[SendResult]:
            yield from ()
            return SendResult(to=msg.to, status=Status.SUBMITTED)

    class Plugin:
        @hookimpl
        def register_providers(self, register: Callable[[type[Provider]], None]) -> None:
            register(Half)

    pm = PluginManager(load_entry_points=False)
    pm.register(Plugin())
    config = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {
        "main": {"plugin": "half", "base_url": "http://127.0.0.1:9"}}}}}
    with pytest.raises(ConfigError) as exc, Gateway(config, plugins=pm) as gw:
        gw.tenant("acme").send("08031234561", "hi")
    assert exc.value.field == "tenants.acme.providers.main.plugin"
    assert "declares bulk=True without send_many(), status_lookup=True without status()" in str(exc.value)


# ----------------------------------------------------------------------- the preview says when it sends
def test_the_preview_shows_the_quiet_hours_and_start_a_campaign_keeps(config: Path) -> None:
    """Nothing in a preview (nor ``campaign create``'s output) said whether a campaign keeps quiet
    hours: ``--quiet-hours off`` could not be checked before the run."""
    from datetime import datetime, timedelta, timezone

    config.write_text(config.read_text().replace('default_region = "NG"',
                                                 'default_region = "NG"\nquiet_hours = ["21:00", "08:00"]'))
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(days=2)
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        held = acme.campaigns.create("Sale", text="hi", audience=["08031234561"], start_at=start).preview()
        assert held.quiet_hours == ("21:00", "08:00") and held.quiet_zone == "Africa/Lagos"
        assert "  quiet hours: 21:00-08:00 (Africa/Lagos): nothing is sent between them" in str(held)
        assert f"  scheduled for {start:%Y-%m-%d %H:%M} UTC: nothing is sent before" in str(held)
        notice = acme.campaigns.create("Outage", text="hi", audience=["08031234561"], quiet_hours=False).preview()
        assert notice.quiet_hours is None and notice.start_at is None
        assert "quiet hours" not in str(notice) and "scheduled" not in str(notice)
    path = config.parent / "c.csv"
    path.write_text("phone\n08031234561\n")
    for flags, shown in ((["--quiet-hours", "off"], False), ([], True)):
        result = cli(config, "campaign", "create", "--name", "n", "--csv", str(path), "--text", "hi", *flags)
        assert result.exit_code == 0, result.output
        assert ("quiet hours: 21:00-08:00" in result.stdout) is shown, result.stdout


def test_campaign_status_says_what_holds_a_waiting_campaign_back(config: Path) -> None:
    """``campaign status`` of a campaign still to send shows its scheduled start and quiet hours,
    as its preview does (it showed only counts: why nothing went out could not be seen); the
    preview says "1 recipient", not "1 recipients"."""
    import json
    import re
    from datetime import datetime, timedelta, timezone

    config.write_text(config.read_text().replace('default_region = "NG"',
                                                 'default_region = "NG"\nquiet_hours = ["21:00", "08:00"]'))
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(days=2)
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        held = acme.campaigns.create("Sale", text="hi", audience=["08031234561"], start_at=start)
        notice = acme.campaigns.create("Outage", text="hi", audience=["08031234561", "08031234562"],
                                       quiet_hours=False)
        assert re.search(r"^  via \w+: 1 recipient$", str(held.preview()), re.M), str(held.preview())
        assert re.search(r"^  via \w+: 2 recipients$", str(notice.preview()), re.M), str(notice.preview())
    result = cli(config, "campaign", "status", held.campaign_id)
    assert result.exit_code == 0, result.output
    assert f"scheduled for {start:%Y-%m-%d %H:%M} UTC: nothing is sent before" in result.stdout
    assert "quiet hours: 21:00-08:00 (Africa/Lagos): nothing is sent between them" in result.stdout
    data = json.loads(cli(config, "campaign", "status", held.campaign_id, "--json").stdout)
    assert (data["quiet_hours"], data["quiet_zone"]) == (["21:00", "08:00"], "Africa/Lagos")
    assert datetime.fromisoformat(data["start_at"].replace("Z", "+00:00")) == start  # (Python 3.10 reads no Z)
    plain = cli(config, "campaign", "status", notice.campaign_id)
    assert plain.exit_code == 0 and "quiet hours" not in plain.stdout and "scheduled" not in plain.stdout
    assert json.loads(cli(config, "campaign", "status", notice.campaign_id, "--json").stdout)["quiet_hours"] is None


# ----------------------------------------------------------------------- contacts show
def test_contacts_show_says_how_to_see_the_rest_on_one_line(config: Path) -> None:
    """The hint was the table's title, wrapped to the width of a narrow table:
    "contacts (2 of 3; 'smsgate" / "contacts export vip' writes them" / "all)"."""
    path = config.parent / "vip.csv"
    path.write_text("phone,name\n08031234561,Ada\n08031234562,Bayo\n08031234563,Chidi\n")
    assert cli(config, "contacts", "create", "VIP", "--csv", str(path), "--id", "vip").exit_code == 0
    result = runner.invoke(app, ["contacts", "show", "vip", "--limit", "2", "-c", str(config), "-t", "acme"],
                           env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "contacts (2 of 3)" in lines and "'smsgate contacts export vip' writes them all" in lines, result.stdout
