"""Attacks, round 11: inbound keywords arriving out of order, tenant isolation, traffic limits
across processes, contact imports and the CLI's secrets.

Vendors retry a callback that failed (a 503 while the store was locked, a timeout) minutes
later, and pollers list replies in any order: a reply can be applied after a newer one of the
same number. A late ``START`` must not undo a newer ``STOP`` (or a newer opt-out made by
hand): the person's last word stands.

Every claim about what reached a vendor reads that vendor emulator's own record of the
requests it received (``RunningEmulator.requests``), never smsgate's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from smsgate import Gateway, OptedOut
from smsgate.testing import LiveServer
from smsgate.testing.emulator import EmulatorControl
from smsgate.testing.sandbox import RunningEmulator, start_emulator
from smsgate.webhooks import webhook_app

NUMBER = "+2348031234567"
OLD = "+2348031234568"
TOKEN = "relay-token"


# ------------------------------------------------------------ keywords out of order (Colony relay)
@pytest.fixture
def colony() -> Iterator[tuple[RunningEmulator, Gateway, str]]:
    emu = start_emulator("colony")
    try:
        gw = emu.gateway("acme", region="NG", instance="main",
                         credentials={**emu._credentials, "webhook_token": TOKEN})
        with LiveServer(webhook_app(gw)) as server:
            yield emu, gw, server.url
    finally:
        emu.stop()


def relay(url: str, reply_id: int, text: str, when: datetime) -> None:
    """Post one collate reply to the webhook app, as a relay forwards it (Colony's model)."""
    body = json.dumps({"id": reply_id, "originator": NUMBER.lstrip("+"), "text": text,
                       "date_created": when.isoformat()}).encode()
    r = httpx.post(f"{url}/acme/main?token={TOKEN}", content=body, timeout=10)
    assert r.status_code == 200, r.text


def texted(emu: RunningEmulator, number: str = NUMBER) -> list[str]:
    """The bodies of the send requests the Colony emulator received that name ``number``."""
    digits = number.lstrip("+")
    return [r.body for r in emu.requests("/contact/message/send/") if digits in r.body]


def send_promo(gw: Gateway) -> bool:
    """Whether a promotion to ``NUMBER`` was sent (False: refused as opted out)."""
    try:
        gw.tenant("acme").send(NUMBER, "Sale today")
    except OptedOut:
        return False
    return True


def test_late_start_does_not_undo_a_newer_stop(colony: tuple[RunningEmulator, Gateway, str]) -> None:
    """STOP at 10:05 is applied; the START the person sent at 10:00 arrives late (the vendor's
    retry): the person's last word is STOP, and nothing may be sent to them."""
    emu, gw, url = colony
    t0 = datetime.now(timezone.utc) - timedelta(minutes=30)
    relay(url, 2, "STOP", t0 + timedelta(minutes=5))
    relay(url, 1, "START", t0)
    assert not send_promo(gw)
    assert texted(emu) == []


def test_late_start_does_not_undo_a_repeated_stop(colony: tuple[RunningEmulator, Gateway, str]) -> None:
    """STOP 10:00, START 10:05 (late), STOP 10:10: the last word is STOP, in whatever order
    the three are applied."""
    emu, gw, url = colony
    t0 = datetime.now(timezone.utc) - timedelta(minutes=30)
    relay(url, 1, "STOP", t0)
    relay(url, 3, "STOP", t0 + timedelta(minutes=10))
    relay(url, 2, "START", t0 + timedelta(minutes=5))
    assert not send_promo(gw)
    assert texted(emu) == []


def test_late_start_does_not_undo_a_newer_opt_out_by_hand(colony: tuple[RunningEmulator, Gateway, str]) -> None:
    """A START the person sent before an operator opted them out (a complaint by phone),
    applied after it, leaves the opt-out in place."""
    emu, gw, url = colony
    gw.tenant("acme").optouts.add(NUMBER, "complained by phone", source="manual")
    relay(url, 1, "START", datetime.now(timezone.utc) - timedelta(minutes=10))
    assert not send_promo(gw)
    assert texted(emu) == []


def test_start_after_stop_in_order_opts_back_in(colony: tuple[RunningEmulator, Gateway, str]) -> None:
    """The control: STOP then a newer START, in order (or the START applied first, then the
    older STOP late): the person's last word is START and the promotion is sent once."""
    emu, gw, url = colony
    t0 = datetime.now(timezone.utc) - timedelta(minutes=30)
    relay(url, 1, "STOP", t0)
    relay(url, 2, "START", t0 + timedelta(minutes=5))
    assert send_promo(gw)
    assert len(texted(emu)) == 1


# ------------------------------------------------------------ purge, then a poll lists old replies again
def test_a_purged_help_listed_again_is_not_answered_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colony lists every reply the account ever had; ``poll_inbound`` stores a listed reply once
    and acts on it once. Three days later ``purge(older_than=2 days)`` deletes the stored reply
    and the help reply's idempotency key: the next poll found the HELP "new" and texted the
    help reply again, days after the person asked (and again after every purge). A HELP
    received long ago gets no auto-reply. The Colony emulator's own record counts the help
    replies sent; the days pass for smsgate's clock only (``utcnow`` of the purge and of
    the inbound kernel)."""
    import smsgate.core.inbound
    import smsgate.gateway

    emu = start_emulator("colony")
    try:
        gw = emu.gateway("acme", region="NG", instance="main")
        t = gw.tenant("acme")
        t.config.inbound.help_reply = "Acme: reply STOP to stop"
        r = httpx.post(f"{emu.url}/_colony/inbound", json={"originator": NUMBER.lstrip("+"), "text": "HELP"},
                       timeout=10)
        assert r.status_code < 300, r.text
        t.poll_inbound("main")
        assert len(texted(emu)) == 1  # answered at once

        later = datetime.now(timezone.utc) + timedelta(days=3)
        for module in (smsgate.gateway, smsgate.core.inbound):
            monkeypatch.setattr(module, "utcnow", lambda: later)
        t.purge(older_than=timedelta(days=2))
        t.poll_inbound("main")
        assert len(texted(emu)) == 1  # not answered again three days later
    finally:
        emu.stop()


# ------------------------------------------------------------ generic_http: an empty webhook token
def generic_config(hook_token: str) -> dict[str, Any]:
    return {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"textly": {
        "plugin": "generic_http", "base_url": "https://api.textly.example",
        "credentials": {"api_key": "k", "hook_token": hook_token},
        "options": {"request": {"method": "POST", "url": "/send", "json": {"to": "{to}", "text": "{text}"}},
                    "response": {"id_path": "id"},
                    "webhook": {"id_path": "id", "status_path": "status", "token": "{secret.hook_token}",
                                "token_query": "token"}}}}}}}


@pytest.mark.parametrize("how", ["query", "header"])
def test_generic_http_webhook_with_an_empty_token_authenticates_nobody(how: str) -> None:
    """``hook_token = "${TEXTLY_HOOK_TOKEN}"`` with the variable set but empty (``TEXTLY_HOOK_TOKEN=``
    in a compose file's ``.env``): the credential is empty, which every other check reads as
    "not configured" (``check_webhook_token``: nothing applied). The generic provider compared
    the callback's token with ``""``, so ``?token=`` (or an empty token header) let anybody post
    reports, and a forged ``failed`` or ``delivered`` is final. It must be refused as not
    configured: nothing applied, answered as a failed authentication (401, as an unknown tenant:
    a caller cannot learn the instance exists; it was 503), the reason in the ERROR log line."""
    cfg = generic_config("")
    if how == "header":
        hook = cfg["tenants"]["acme"]["providers"]["textly"]["options"]["webhook"]
        hook.pop("token_query")
        hook["token_header"] = "X-Callback-Token"
    body = json.dumps({"id": "vendor-1", "status": "failed"}).encode()
    with Gateway(cfg) as gw, LiveServer(webhook_app(gw)) as server:
        if how == "query":
            r = httpx.post(f"{server.url}/acme/textly?token=", content=body, timeout=10)
        else:
            r = httpx.post(f"{server.url}/acme/textly", content=body, headers={"X-Callback-Token": ""}, timeout=10)
        assert r.status_code == 401, r.text
        assert r.json() == {"error": "authentication failed"}


def test_the_first_poll_of_an_account_with_history_answers_no_old_help() -> None:
    """The first ``inbound --poll`` on a Colony account that has had replies for months lists
    them all: each HELP among them was answered, days or months after it was sent (everyone
    who ever texted HELP got a text at once). Only a recent one is answered."""
    emu = start_emulator("colony")
    try:
        vendor = emu._server.app.vendor
        gw = emu.gateway("acme", region="NG", instance="main")
        t = gw.tenant("acme")
        t.config.inbound.help_reply = "Acme: reply STOP to stop"
        for number, days_ago in ((OLD, 40.0), (NUMBER, 0.0)):
            vendor.clock = lambda days_ago=days_ago: time.time() - days_ago * 86400
            r = httpx.post(f"{emu.url}/_colony/inbound", json={"originator": number.lstrip("+"), "text": "HELP"},
                           timeout=10)
            assert r.status_code < 300, r.text
        vendor.clock = time.time
        t.poll_inbound("main")
        assert texted(emu, OLD) == []
        assert len(texted(emu, NUMBER)) == 1
        assert {m.from_number: m.action for m in t.inbound()} == {OLD: "help", NUMBER: "help"}
    finally:
        emu.stop()


# ------------------------------------------------------------ per-sender STOP: the number's format
LONG_CODE = "+2348020000000"


@pytest.mark.parametrize(("sender", "to"), [(LONG_CODE, "08020000000"), (LONG_CODE, "0802 000 0000"),
                                           (LONG_CODE, "+234 (0) 802 000 0000"), ("08020000000", LONG_CODE),
                                           ("08020000000", "08020000000")])
def test_a_per_sender_stop_to_the_national_form_of_the_number_stops_it(sender: str, to: str) -> None:
    """With ``inbound.optout_scope = "sender"`` a STOP acts on the number the reply was sent to.
    A vendor reporting that number in national form (``08020000000``, as many local gateways
    do) stored the opt-out under ``08020000000``, while messages from the tenant's sender
    ``+2348020000000`` are checked against ``2348020000000``: the person who replied STOP to
    the number kept getting texts from it. (A sender configured in national form is stopped
    by a reply to any form of it too.) The echo emulator's own record shows what left."""
    from smsgate.plugins import PluginManager
    from smsgate.testing.reference import API_KEY, EchoPlugin, create_emulator, sign

    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        cfg = {"store": "memory://", "tenants": {"acme": {
            "default_region": "NG", "sender": sender, "providers": {"one": prov},
            "inbound": {"optout_scope": "sender"}}}}
        with Gateway(cfg, plugins=pm) as gw, LiveServer(webhook_app(gw)) as hooks:
            body = json.dumps([{"type": "inbound", "id": "in-1", "from": NUMBER, "to": to, "text": "STOP"}]).encode()
            r = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)}, timeout=10)
            assert r.status_code == 200, r.text
            assert not send_promo(gw)
            sent = [q.json() for q in EmulatorControl(emu.url).requests("/messages", "POST")]
            assert [m for m in sent if m.get("to") == NUMBER] == []


# ------------------------------------------------------------ listing replies from a short code or a brand
@pytest.mark.parametrize("sender", ["MTN", "33011"])
def test_replies_from_a_short_code_or_brand_can_be_listed_by_sender(sender: str) -> None:
    """Inbound messages from a short code or an alphanumeric sender (a carrier's notices) are
    stored with the sender as received; ``tenant.inbound(from_number=...)`` (``smsgate inbound
    --from``) read the filter as a phone number and refused it, so they could not be found."""
    import asyncio

    from smsgate import AsyncGateway
    from smsgate.models import InboundMessage

    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {}}}}
    with Gateway(cfg) as gw:
        gw.store.record_inbound("acme", [InboundMessage(provider="x", vendor_id="1", from_number=sender, text="hi"),
                                         InboundMessage(provider="x", vendor_id="2", from_number=NUMBER, text="yo")])
        assert [m.vendor_id for m in gw.tenant("acme").inbound(from_number=sender)] == ["1"]
        assert [m.vendor_id for m in gw.tenant("acme").inbound(from_number="08031234567")] == ["2"]

        async def listed() -> list[str]:
            async with AsyncGateway(cfg, store=gw.store) as agw:
                return [m.vendor_id for m in await agw.tenant("acme").inbound(from_number=sender)]

        assert asyncio.run(listed()) == ["1"]
