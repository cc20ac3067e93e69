"""Attacks on ``inbound.stop_reply`` / ``start_reply``: nothing but the one confirmation of the
opt-out just recorded reaches an opted-out number (the emulator's own record of sends)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from smsgate import AsyncGateway, Gateway, InboundMessage
from smsgate.models import utcnow
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app
from test_inbound import HELP, SENDER, Inbox, config, emu, plugins, post, sent_texts  # noqa: F401

STOPPED = "Acme: you will get no more messages. Reply START to opt back in."
STARTED = "Acme: welcome back. Reply START again if needed."


def scoped(url: str, **inbound: Any) -> dict[str, Any]:
    return config(url, **{"optout_scope": "sender", "stop_reply": STOPPED, "start_reply": STARTED,
                          "help_reply_limit": 5, **inbound})


def to_sender(vid: str, text: str, to: str) -> dict[str, Any]:
    return {"type": "inbound", "id": vid, "from": SENDER, "to": to, "text": text}


def test_a_stop_to_one_sender_is_not_confirmed_from_a_sender_the_number_opted_out_of_before(
        emu: LiveServer) -> None:  # noqa: F811
    """Opted out of ACME (the reply sender) before, the person texts STOP to PROMO: the exemption
    covers the opt-out of PROMO just recorded, not the older one of ACME."""
    with Gateway(scoped(emu.url), plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        t.optouts.add(SENDER, scope="ACME")
        post(f"{hooks.url}/acme/one", [to_sender("s1", "STOP", "PROMO")])
        assert t.optouts.scopes(SENDER) == {"acme", "promo"}
        assert sent_texts(emu) == []
        refused = [m for m in t.messages(to=SENDER) if (m.reference or "").startswith("inbound:")]
        assert [m.status.value for m in refused] == ["rejected"]


def test_a_stop_is_not_confirmed_to_a_number_opted_out_of_every_sender_before(emu: LiveServer) -> None:  # noqa: F811
    """Opted out of every sender by hand (a do-not-contact list), a STOP to one sender records
    that sender's opt-out; the older opt-out of every sender still holds the confirmation back."""
    with Gateway(scoped(emu.url), plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        t.optouts.add(SENDER)
        post(f"{hooks.url}/acme/one", [to_sender("s1", "STOP", "PROMO")])
        assert sent_texts(emu) == []


def test_a_stop_of_every_sender_is_confirmed_even_when_opted_out_before(emu: LiveServer) -> None:  # noqa: F811
    """The scope just recorded (every sender, renewed) is the one the exemption covers."""
    cfg = config(emu.url, stop_reply=STOPPED)
    with Gateway(cfg, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        t.optouts.add(SENDER)
        post(f"{hooks.url}/acme/one", [to_sender("s1", "STOP", "ACME")])
        assert sent_texts(emu) == [STOPPED]


def test_a_start_to_one_sender_is_not_confirmed_from_another_still_opted_out(emu: LiveServer) -> None:  # noqa: F811
    with Gateway(scoped(emu.url), plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        t.optouts.add(SENDER, scope="ACME")
        t.optouts.add(SENDER, scope="PROMO")
        post(f"{hooks.url}/acme/one", [to_sender("s1", "START", "PROMO")])
        assert t.optouts.scopes(SENDER) == {"acme"}
        assert sent_texts(emu) == []  # the reply goes from ACME, still opted out


def test_a_confirmation_reaches_no_other_tenant_and_each_tenant_counts_its_own(emu: LiveServer) -> None:  # noqa: F811
    cfg = config(emu.url, stop_reply=STOPPED)
    cfg["tenants"]["globex"]["inbound"] = {"stop_reply": "Globex: stopped, reply START to resume."}
    with Gateway(cfg, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        post(f"{hooks.url}/acme/one", [to_sender("s1", "STOP", "ACME")])
        post(f"{hooks.url}/globex/one", [to_sender("s1", "STOP", "ACME")])  # same vendor id, other tenant
        assert sent_texts(emu) == [STOPPED, "Globex: stopped, reply START to resume."]
        assert gw.tenant("acme").optouts.check(SENDER) and gw.tenant("globex").optouts.check(SENDER)
        with pytest.raises(Exception, match="opted out"):
            gw.tenant("globex").send(SENDER, "hi")


def test_a_stop_older_than_a_start_already_applied_sends_no_confirmation_that_contradicts_it(
        emu: LiveServer) -> None:  # noqa: F811
    """A poll lists START (said last) before STOP (said first): the START is confirmed; the late
    STOP must leave the person opted in (their last word) and not text "no more messages"."""
    cfg = config(emu.url, stop_reply=STOPPED, start_reply=STARTED)
    with Gateway(cfg, plugins=plugins(Inbox())) as gw:
        t = gw.tenant("acme")
        now = utcnow()
        t.ingest_inbound("one", [InboundMessage(provider="one", vendor_id="s2", from_number=SENDER, to="ACME",
                                                text="START", received_at=now - timedelta(minutes=1))])
        t.ingest_inbound("one", [InboundMessage(provider="one", vendor_id="s1", from_number=SENDER, to="ACME",
                                                text="STOP", received_at=now - timedelta(minutes=2))])
        assert (t.optouts.check(SENDER), sent_texts(emu)) == (False, [STARTED])


def test_an_application_idempotency_key_cannot_take_a_confirmations_place(emu: LiveServer) -> None:  # noqa: F811
    cfg = config(emu.url, stop_reply=STOPPED)
    with Gateway(cfg, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        t.send(SENDER, "your code is 1234", idempotency_key="inbound:one:s1:stop")
        post(f"{hooks.url}/acme/one", [to_sender("s1", "STOP", "ACME")])
        assert sent_texts(emu) == ["your code is 1234", STOPPED]


def test_the_async_gateway_confirms_once_and_holds_back_a_confirmation_from_an_opted_out_sender(
        emu: LiveServer) -> None:  # noqa: F811
    gw = AsyncGateway(scoped(emu.url), plugins=plugins(Inbox()))
    try:
        with LiveServer(webhook_app(gw)) as hooks:
            t = gw.tenant("acme")
            url = f"{hooks.url}/acme/one"
            for _ in range(2):
                post(url, [to_sender("s1", "STOP", "ACME")])  # its own scope: confirmed, once
            assert sent_texts(emu) == [STOPPED]
            post(url, [to_sender("s2", "STOP", "PROMO")])  # ACME (the reply's sender) opted out before
            assert asyncio.run(t.optouts.scopes(SENDER)) == {"acme", "promo"}
            assert sent_texts(emu) == [STOPPED]
    finally:
        asyncio.run(gw.aclose())


def test_reply_scopes_a_stop_on_a_number_mapped_to_the_reply_sender_is_confirmed_from_it(
        emu: LiveServer) -> None:  # noqa: F811
    """A STOP to the number mapped to ACME opts out of ACME: that is the opt-out just recorded,
    so its confirmation (from ACME) goes out; a HELP after it is answered too (CTIA)."""
    cfg = scoped(emu.url, reply_scopes={"+2348020000000": "ACME"})
    with Gateway(cfg, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        post(f"{hooks.url}/acme/one", [to_sender("s1", "STOP", "08020000000")])
        assert t.optouts.scopes(SENDER) == {"acme"}
        post(f"{hooks.url}/acme/one", [to_sender("h1", "HELP", "08020000000")])
        assert sent_texts(emu) == [STOPPED, HELP]


def test_a_start_older_than_the_opt_out_of_its_sender_is_not_confirmed_from_another_sender(
        emu: LiveServer) -> None:  # noqa: F811
    """A START to PROMO said before the STOP to PROMO it would have lifted lifts nothing: the
    person is still opted out of PROMO, and "welcome back" (from ACME, not opted out) would say
    otherwise."""
    cfg = scoped(emu.url, stop_reply=None)
    with Gateway(cfg, plugins=plugins(Inbox())) as gw:
        t = gw.tenant("acme")
        now = utcnow()
        t.ingest_inbound("one", [InboundMessage(provider="one", vendor_id="s1", from_number=SENDER, to="PROMO",
                                                text="STOP", received_at=now - timedelta(minutes=1))])
        t.ingest_inbound("one", [InboundMessage(provider="one", vendor_id="s2", from_number=SENDER, to="PROMO",
                                                text="START", received_at=now - timedelta(minutes=2))])
        assert t.optouts.scopes(SENDER) == {"promo"}
        assert sent_texts(emu) == []


def test_one_stop_seen_through_two_instances_of_one_account_is_confirmed_once(emu: LiveServer) -> None:  # noqa: F811
    """A webhook on one instance and a poll (or second webhook) on another list the same STOP as two
    events: under the default cap (one per number per 10 minutes) it is confirmed once."""
    cfg = config(emu.url, stop_reply=STOPPED)
    acme = cfg["tenants"]["acme"]
    acme["providers"]["two"] = dict(acme["providers"]["one"])
    with Gateway(cfg, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        post(f"{hooks.url}/acme/one", [to_sender("s1", "STOP", "ACME")])
        post(f"{hooks.url}/acme/two", [to_sender("s1", "STOP", "ACME")])
        assert len(gw.tenant("acme").inbound()) == 2
        assert sent_texts(emu) == [STOPPED]
