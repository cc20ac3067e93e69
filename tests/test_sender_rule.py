"""Sender IDs: one rule (smsgate.models.SENDER_RULE) for the configuration's senders and for
``send`` / ``send_many`` / campaigns' ``sender=``: 1-11 letters, digits, spaces and - . _ &
(with a letter), or a number of up to 15 digits. Blank ones, newlines, emoji and 12+
characters were accepted and sent."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import echo_config as config
from services import echo_plugins as plugins
from smsgate import AsyncGateway, ConfigError, Gateway, Status, ValidationError
from smsgate.models import SENDER_RULE, sender_problem
from smsgate.store.base import Store
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import EmulatorControl

BAD = [
    "",
    "   ",
    "AC\nME",
    "ACME\r",
    "ACME😀",
    "TWELVECHARSX",
    "1234567890123456",
    "+1234567890123456",
    " ACME",
    "ACME ",
    "12-34",
    "ACMÉ",
    "AC/ME",
]
GOOD = ["ACME", "S-Alert", "ACME SHOP", "A&B.Co_x", "ELEVENCHARS", "12345", "+447700900123", "447700900123"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(str(tmp_path / "senders.db"))
    else:
        from test_store_postgres import scratch_store

        s = scratch_store()
    s.migrate()
    yield s
    s.close()


def posts(url: str) -> int:
    return len([r for r in EmulatorControl(url).requests() if r.method == "POST"])


# An independent reading of the rule, to check the one the library applies.
def reads_as_valid(sender: str) -> bool:
    if re.fullmatch(r"\+?\d{1,15}", sender, re.ASCII):
        return True
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -._&")
    return (
        0 < len(sender) <= 11
        and set(sender) <= allowed
        and sender == sender.strip()
        and any(ch.isalpha() for ch in sender)
    )


@given(st.text(alphabet=st.sampled_from("AZaz09 -._&+/\n\té😀"), max_size=17) | st.text(max_size=14))
def test_the_rule_is_as_documented(sender: str) -> None:
    problem = sender_problem(sender)
    assert (problem is None) == reads_as_valid(sender)
    if problem is not None:
        assert problem.endswith(SENDER_RULE) and repr(sender[:40]) in problem


@pytest.mark.parametrize("sender", BAD)
@pytest.mark.parametrize("where", ["tenant", "provider", "reply"])
def test_a_bad_configured_sender_is_a_config_error_naming_the_key(
    sender: str, where: str, emu_url: str
) -> None:
    cfg = config(emu_url)
    acme = cfg["tenants"]["acme"]
    key = {
        "tenant": "tenants.acme.sender",
        "provider": "tenants.acme.providers.one.sender",
        "reply": "tenants.acme.inbound.reply_sender",
    }[where]
    if where == "tenant":
        acme["sender"] = sender
    elif where == "provider":
        acme["providers"]["one"]["sender"] = sender
    else:
        acme["inbound"] = {"reply_sender": sender}
    with pytest.raises(ConfigError) as info:
        Gateway(cfg, plugins=plugins())
    assert f"{key}: {sender!r}" in str(info.value) and SENDER_RULE in str(info.value)


@pytest.mark.parametrize("sender", BAD)
def test_a_bad_sender_of_a_send_is_a_validation_error_and_nothing_is_logged_or_sent(
    sender: str, store: Store, emu_url: str
) -> None:
    EmulatorControl(emu_url).reset()
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as info:
            acme.send("08031234567", "hi", sender=sender)
        assert info.value.field == "sender" and SENDER_RULE in str(info.value)
        assert acme.messages() == []  # refused before anything is logged
        with pytest.raises(ValidationError) as info:  # a call-wide argument: refused once, up front
            acme.send_many(["08031234567", "08031234568"], "hi", sender=sender)
        assert info.value.field == "sender" and SENDER_RULE in str(info.value)
        with pytest.raises(ValidationError, match="sender"):
            acme.campaigns.create("promo", text="hi", audience=["08031234567"], sender=sender)
        assert acme.campaigns.list() == []
        assert acme.messages() == []
    assert posts(emu_url) == 0

    async def run() -> None:
        async with AsyncGateway(config(emu_url), store=store, plugins=plugins()) as agw:
            with pytest.raises(ValidationError, match="sender"):
                await agw.tenant("acme").send("08031234567", "hi", sender=sender)
            with pytest.raises(ValidationError, match="sender"):
                await agw.tenant("acme").send_many(["08031234567"], "hi", sender=sender)

    asyncio.run(run())
    assert posts(emu_url) == 0


def test_good_senders_go_out_as_given(store: Store, emu_url: str) -> None:
    EmulatorControl(emu_url).reset()
    with Gateway(config(emu_url, sender="S-Alert"), store=store, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        for sender in GOOD:
            assert acme.send("08031234567", "hi", sender=sender).status is Status.SUBMITTED
        assert {m.sender for m in acme.messages()} == set(GOOD)
    assert posts(emu_url) == len(GOOD)


def test_a_non_text_sender_still_names_its_type(emu_url: str) -> None:
    with Gateway(config(emu_url), plugins=plugins()) as gw:
        with pytest.raises(ValidationError, match="field 'sender': expected a string, got int"):
            gw.tenant("acme").send("08031234567", "hi", sender=12345)  # type: ignore[arg-type]
