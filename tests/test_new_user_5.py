"""What a new user following the docs (getting started, campaigns, the CLI) ran into: each
test fails without its fix. Delivery claims are read from the emulators' own records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from smsgate import Gateway, Status
from smsgate.cli import app

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
