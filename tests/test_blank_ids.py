"""A blank id (``""``, spaces: an unset variable or form field) is the argument's error, never a
lookup that finds nothing: ``campaigns.get("")`` was ``NotFound`` as if such a campaign might
exist, ``contact_lists.delete(" ")`` answered ``False`` and ``contact_lists.contacts("")`` an
empty stream, and ``campaigns.create(..., campaign_id="")`` made a campaign whose id is empty
(the message ids' rule, ``tenant.status("")``, tests/test_new_user_dx6.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from smsgate import AsyncGateway, Gateway
from smsgate.errors import NotFound, ValidationError

CFG = {"store": "memory://", "tenants": {"t": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}

CALLS: dict[str, Callable[[Any, str], Any]] = {
    "campaigns.get": lambda t, i: t.campaigns.get(i),
    "contact_lists.get": lambda t, i: t.contact_lists.get(i),
    "contact_lists.delete": lambda t, i: t.contact_lists.delete(i),
    "contact_lists.contacts": lambda t, i: t.contact_lists.contacts(i),
    "contact_lists.audience": lambda t, i: t.contact_lists.audience(i),
    "contact_lists.add": lambda t, i: t.contact_lists.add(i, ["08031234567"]),
    "contact_lists.remove": lambda t, i: t.contact_lists.remove(i, ["08031234567"]),
}


@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_blank_id_is_a_validation_error_naming_the_argument(call: str, blank: str) -> None:
    field = "campaign_id" if call.startswith("campaigns") else "list_id"
    with Gateway(CFG) as gw, pytest.raises(ValidationError) as caught:
        CALLS[call](gw.tenant("t"), blank)
    assert caught.value.field == field and "is blank" in str(caught.value), caught.value
    assert not isinstance(caught.value, NotFound)


def test_a_well_formed_id_naming_nothing_stays_not_found() -> None:
    with Gateway(CFG) as gw:
        with pytest.raises(NotFound):
            gw.tenant("t").campaigns.get("cmp_nothere")
        with pytest.raises(NotFound):
            gw.tenant("t").contact_lists.get("lst_nothere")


def test_a_campaign_is_not_created_under_a_blank_id() -> None:
    with Gateway(CFG) as gw:
        t = gw.tenant("t")
        with pytest.raises(ValidationError) as caught:
            t.campaigns.create("x", text="hi", audience=["08031234567"], campaign_id="")
        assert caught.value.field == "campaign_id" and "new campaign" in str(caught.value), caught.value
        assert t.campaigns.list() == []


def test_the_async_campaigns_get_refuses_a_blank_id_alike() -> None:
    async def main() -> None:
        async with AsyncGateway(CFG) as gw:
            with pytest.raises(ValidationError) as caught:
                await gw.tenant("t").campaigns.get(" ")
            assert caught.value.field == "campaign_id", caught.value

    asyncio.run(main())


@pytest.mark.parametrize("command", ["status", "run", "stats", "pause", "retry-unknown"])
def test_a_blank_campaign_id_on_the_command_line_names_the_argument(tmp_path: Any, command: str) -> None:
    """``smsgate campaign status ""`` (an unset shell variable) said ``field 'campaign_id'`` and
    the library's hint; it names the command's argument, as a missing one is named, before any
    store is opened."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.t]\ndefault_region = "NG"\n'
                   '[tenants.t.providers.m]\nplugin = "memory"\n')
    out = CliRunner().invoke(app, ["campaign", command, "", "-c", str(cfg)])
    assert out.exit_code == 2, out.output
    assert "argument 'campaign_id': is blank" in out.output and "smsgate campaign list" in out.output, out.output
    assert not (tmp_path / "s.db").exists()
