"""Inbound messages through the webhook app and the kernel (reference provider, over HTTP).

The emulator's own request record shows what was sent; the store shows what was kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from smsgate import AsyncGateway, ConfigError, Gateway, InboundMessage, OptedOut, hookimpl
from smsgate.plugins import PluginManager
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import LiveServer
from smsgate.testing.emulator import EmulatorControl
from smsgate.webhooks import webhook_app

SENDER = "+2348031234567"
HELP = "Acme: reply STOP to stop"


class Inbox:
    def __init__(self) -> None:
        self.seen: list[tuple[str, InboundMessage]] = []

    @hookimpl
    def smsgate_on_inbound(self, tenant: str, message: InboundMessage) -> None:
        self.seen.append((tenant, message))


def config(url: str, **inbound: Any) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}}
    return {"store": "memory://",
            "tenants": {"acme": {"default_region": "NG", "sender": "ACME", "providers": {"one": prov},
                                 "inbound": {"help_reply": HELP, **inbound}},
                        "globex": {"default_region": "NG", "providers": {"one": prov}}}}


@pytest.fixture()
def emu() -> Iterator[LiveServer]:
    with LiveServer(create_emulator()) as server:
        yield server


def plugins(inbox: Inbox) -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    pm.register(inbox)
    return pm


def post(url: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps(items).encode()
    r = httpx.post(url, content=body, headers={"X-Echo-Signature": sign(body)})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def reply(vid: str, text: str, sender: str = SENDER) -> dict[str, Any]:
    return {"type": "inbound", "id": vid, "from": sender, "to": "ACME", "text": text}


def sent_texts(emu: LiveServer, to: str = SENDER) -> list[str]:
    return [r.json()["text"] for r in EmulatorControl(emu.url).requests("/messages", "POST")
            if r.json().get("to") == to]


def test_reports_and_replies_in_one_request_each_applied(emu: LiveServer, tmp_path: Path) -> None:
    inbox = Inbox()
    store = SQLiteStore(str(tmp_path / "log.db"))
    store.migrate()
    with Gateway(config(emu.url), store=store, plugins=plugins(inbox)) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        sent = t.send(SENDER, "hello")
        answer = post(f"{hooks.url}/acme/one", [{"id": sent.provider_message_id, "status": "delivered"},
                                                 reply("e1", "STOP"), reply("e2", "thanks")])
        assert answer == {"reports": 1, "matched": 1, "orphaned": 0, "inbound": 2, "duplicates": 0, "rejected": 0}
        assert [m.action for m in t.inbound()] == ["none", "optout"]
        assert t.optouts.check(SENDER)
        # the other tenant's registry and inbox are untouched
        assert not gw.tenant("globex").optouts.check(SENDER) and gw.tenant("globex").inbound() == []
        assert [(tenant, m.vendor_id) for tenant, m in inbox.seen] == [("acme", "e1"), ("acme", "e2")]


def test_help_reply_is_opt_out_checked_and_sent_once(emu: LiveServer) -> None:
    inbox = Inbox()
    # a cap of 2 per number (the default 1 would withhold h2 before its opt-out check)
    with Gateway(config(emu.url, help_reply_limit=2), plugins=plugins(inbox)) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        url = f"{hooks.url}/acme/one"
        for _ in range(3):
            post(url, [reply("h1", "help")])
        assert sent_texts(emu).count(HELP) == 1
        assert len(inbox.seen) == 1
        # an opted-out sender asking for help is answered (CTIA), still once per event
        t.optouts.add(SENDER, reason="test")
        for _ in range(2):
            post(url, [reply("h2", "INFO")])
        assert sent_texts(emu).count(HELP) == 2
        h2 = t.inbound()[0]
        answered = [m for m in t.messages(to=SENDER) if m.reference == f"inbound:{h2.id}"]
        assert h2.action == "help" and [m.status.value for m in answered] == ["submitted"]


def test_a_help_reply_its_limits_would_hold_past_max_limit_wait_is_logged_not_sent(emu: LiveServer) -> None:
    """The tenant refuses sends its limits would hold past ``max_limit_wait`` (0 here), and its
    provider's limit is full (one message per 60 s, just taken). A HELP arriving then: the
    callback is answered, the reply is logged ``failed`` / ``not_sent`` (it never left), and the
    vendor got only the first message. Waiting instead would hold the vendor's callback open
    for the limit's whole wait (a minute here; hours under a per-day limit)."""
    cfg = config(emu.url)
    cfg["tenants"]["acme"]["max_limit_wait"] = 0
    cfg["tenants"]["acme"]["providers"]["one"]["limits"] = [{"rate": 1, "per": 60}]
    with Gateway(cfg, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        assert t.send("+2348031230000", "hello").status.value == "submitted"  # the limit is full now
        assert post(f"{hooks.url}/acme/one", [reply("w1", "HELP")])["inbound"] == 1
        (h,) = t.inbound()
        answer = [m for m in t.messages(to=SENDER) if m.reference == f"inbound:{h.id}"]
        assert h.action == "help"
        assert [(m.status.value, m.raw_status) for m in answer] == [("failed", "not_sent")]
    assert len(EmulatorControl(emu.url).requests("/messages", "POST")) == 1  # "hello" only


def test_keywords_off_stores_replies_and_acts_on_none(emu: LiveServer) -> None:
    with Gateway(config(emu.url, keywords=False), plugins=plugins(Inbox())) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        post(f"{hooks.url}/acme/one", [reply("s1", "STOP"), reply("s2", "help")])
        t = gw.tenant("acme")
        assert [m.action for m in t.inbound()] == ["none", "none"]
        assert not t.optouts.check(SENDER) and sent_texts(emu) == []


def test_reply_from_an_unreadable_number_is_kept_and_acts_on_nothing(emu: LiveServer) -> None:
    with Gateway(config(emu.url), plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        post(f"{hooks.url}/acme/one", [reply("u1", "STOP", sender="ACME-SHORTCODE")])
        t = gw.tenant("acme")
        assert [(m.from_number, m.action) for m in t.inbound()] == [("ACME-SHORTCODE", "none")]
        assert t.optouts.list() == []


def test_async_gateway_stop_then_start(emu: LiveServer) -> None:
    inbox = Inbox()
    gw = AsyncGateway(config(emu.url), plugins=plugins(inbox))
    try:
        with LiveServer(webhook_app(gw)) as hooks:
            url = f"{hooks.url}/acme/one"
            post(url, [reply("a1", "Stop.")])
            post(url, [reply("a1", "Stop.")])
            t = gw.tenant("acme")
            with pytest.raises(OptedOut):
                asyncio.run(t.send(SENDER, "after stop"))
            post(url, [reply("a2", "unstop")])
            assert asyncio.run(t.send(SENDER, "back")).ok
            listed = asyncio.run(t.inbound())
            assert [(m.vendor_id, m.action) for m in listed] == [("a2", "optin"), ("a1", "optout")]
            assert [m.vendor_id for _, m in inbox.seen] == ["a1", "a2"]
            assert sent_texts(emu) == ["back"]
    finally:
        asyncio.run(gw.aclose())


def test_polled_replies_go_through_the_same_path(emu: LiveServer) -> None:
    """A poller (a vendor that only lists replies) feeds them to tenant.ingest_inbound."""
    inbox = Inbox()
    with Gateway(config(emu.url), plugins=plugins(inbox)) as gw:
        t = gw.tenant("acme")
        polled = [InboundMessage(vendor_id="p1", from_number="08031234567", text="STOP"),
                  InboundMessage(vendor_id="p2", from_number="08031234567", text="help")]
        first = t.ingest_inbound("one", polled)
        again = t.ingest_inbound("one", [m.model_copy() for m in polled])  # the next poll lists them again
        assert [(m.provider, m.action) for m in first] == [("one", "optout"), ("one", "help")]
        assert [m.id for m in again] == [m.id for m in first] and len(t.inbound()) == 2
        assert [m.from_number for m in t.inbound(from_number=SENDER)] == [SENDER, SENDER]  # stored in E.164
        assert t.optouts.check(SENDER) and len(inbox.seen) == 2
        assert sent_texts(emu) == [HELP]  # answered though the sender had just opted out (CTIA)
        with pytest.raises(Exception, match="nope"):
            t.ingest_inbound("nope", polled)


def test_help_delivered_twice_at_once_replies_once(emu: LiveServer, tmp_path: Path) -> None:
    """Two deliveries of one event racing each other (separate requests, one store file)."""
    from concurrent.futures import ThreadPoolExecutor

    store = SQLiteStore(str(tmp_path / "log.db"))
    store.migrate()
    with Gateway(config(emu.url), store=store, plugins=plugins(Inbox())) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        url = f"{hooks.url}/acme/one"
        for n in range(5):
            with ThreadPoolExecutor(4) as pool:
                # each event from its own number: the per-number cap is another test's
                answers = list(pool.map(lambda _: post(url, [reply(f"race-{n}", "HELP", sender=f"+23480312345{n:02d}")]),
                                        range(4)))
            assert sorted(a["duplicates"] for a in answers) == [0, 1, 1, 1]
        assert sum(sent_texts(emu, f"+23480312345{n:02d}").count(HELP) for n in range(5)) == 5


def test_an_oversized_reply_is_stored_truncated_and_the_rest_of_the_callback_applied(
        emu: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox()
    with Gateway(config(emu.url), plugins=plugins(inbox)) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        sent = t.send(SENDER, "hello")
        caplog.set_level("INFO", logger="smsgate")
        answer = post(f"{hooks.url}/acme/one", [{"id": sent.provider_message_id, "status": "delivered"},
                                                 reply("big", "STOP " + "x" * 20_000), reply("s1", "STOP")])
        assert answer == {"reports": 1, "matched": 1, "orphaned": 0, "inbound": 2, "duplicates": 0, "rejected": 0}
        assert t.get(sent.message_id).status.value == "delivered"
        big, stop = sorted(t.inbound(), key=lambda m: m.vendor_id)
        assert (big.vendor_id, len(big.text), big.truncated, big.action) == ("big", 10_000, True, "none")
        assert (stop.truncated, stop.action) == (False, "optout") and t.optouts.check(SENDER)
        said = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
        assert said and "big" in said[0] and "xxxxxxxxxx" not in said[0] and SENDER not in said[0]


def test_help_replies_are_capped_per_number_and_window_across_processes(
        emu: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A sender (or a spoofed number) texting HELP over and over must not make the tenant
    text that number over and over: one reply per number per window by default, counted
    in the store, so two processes sharing it hold the cap together."""
    other = "+2348037654321"
    db = f"sqlite:///{tmp_path / 'log.db'}"
    caplog.set_level("INFO", logger="smsgate")
    with Gateway({**config(emu.url), "store": db}, plugins=plugins(Inbox())) as one, \
            Gateway({**config(emu.url), "store": db}, plugins=plugins(Inbox())) as two, \
            LiveServer(webhook_app(one)) as hooks_one, LiveServer(webhook_app(two)) as hooks_two:
        for i in range(4):  # distinct events: each a new HELP, alternating between the processes
            post(f"{(hooks_one, hooks_two)[i % 2].url}/acme/one", [reply(f"h{i}", "HELP")])
        post(f"{hooks_two.url}/acme/one", [reply("o1", "info", sender=other)])  # another number: its own cap
        assert sent_texts(emu).count(HELP) == 1
        assert sent_texts(emu, other) == [HELP]
        assert [m.action for m in one.tenant("acme").inbound(from_number=SENDER)] == ["help"] * 4
        withheld = [r for r in caplog.records if "withheld" in r.getMessage()]
        assert len(withheld) == 3 and all(r.levelname == "INFO" for r in withheld)
        assert SENDER not in withheld[0].getMessage() and "+234*******567" in withheld[0].getMessage()


def test_the_help_reply_cap_is_configurable(emu: LiveServer) -> None:
    window = 3.0
    cfg = config(emu.url, help_reply_limit=2, help_reply_window=window)
    with Gateway(cfg, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        time.sleep(window - time.time() % window + 0.05)  # windows are fixed: start at one's beginning
        for i in range(3):
            post(f"{hooks.url}/acme/one", [reply(f"c{i}", "HELP")])
        assert sent_texts(emu).count(HELP) == 2
        time.sleep(window - time.time() % window + 0.05)  # the window is over: the number may be answered again
        post(f"{hooks.url}/acme/one", [reply("c9", "HELP")])
        assert sent_texts(emu).count(HELP) == 3


@pytest.mark.parametrize("bad", [{"help_reply_limit": 0}, {"help_reply_window": 0}, {"help_reply_limit": 1001}])
def test_a_bad_help_reply_cap_is_refused_at_load(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="help_reply_"):
        Gateway(config("http://127.0.0.1:9", **bad), plugins=plugins(Inbox()))


def test_the_help_reply_cap_holds_under_the_async_gateway(emu: LiveServer) -> None:
    gw = AsyncGateway(config(emu.url), plugins=plugins(Inbox()))
    try:
        with LiveServer(webhook_app(gw)) as hooks:
            for i in range(3):
                post(f"{hooks.url}/acme/one", [reply(f"a{i}", "HELP")])
        assert sent_texts(emu).count(HELP) == 1
    finally:
        asyncio.run(gw.aclose())


def test_an_item_out_of_bounds_is_refused_alone_and_the_rest_applied(
        emu: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """A vendor id over 200 characters (or a report's part number out of range) refuses that
    item alone: the rest of the callback is applied and the answer is a 200 (the vendor stops
    resending); the refused item is logged at INFO, its number masked, and counted."""
    caplog.set_level("INFO", logger="smsgate")
    inbox = Inbox()
    with Gateway(config(emu.url), plugins=plugins(inbox)) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        sent = t.send(SENDER, "hello")
        answer = post(f"{hooks.url}/acme/one", [
            reply("v" * 201, "STOP", sender="+2348039999999"),
            {"id": "other", "status": "delivered", "part": 999, "parts": 1000},
            {"id": sent.provider_message_id, "status": "delivered"},
            reply("ok1", "thanks")])
        assert answer == {"reports": 1, "matched": 1, "orphaned": 0, "inbound": 1, "duplicates": 0, "rejected": 2}
        assert t.get(sent.message_id).status.value == "delivered"
        assert [m.vendor_id for m in t.inbound()] == ["ok1"]
        assert not t.optouts.check("+2348039999999")  # the refused STOP is not acted on
        assert [m.vendor_id for _, m in inbox.seen] == ["ok1"]
    said = [r.getMessage() for r in caplog.records if "refused on its own" in r.getMessage()]
    assert len(said) == 2 and any("+234*******999" in line for line in said), said
    assert not any("+2348039999999" in r.getMessage() or "v" * 41 in r.getMessage() for r in caplog.records)


def test_items_are_refused_alone_only_while_a_callback_is_parsed() -> None:
    """Elsewhere (a status lookup's report, code building a model) a value out of bounds
    raises as before: only a webhook callback's items are refused on their own."""
    import pydantic

    from smsgate.models import DeliveryReport, refusing_alone

    with pytest.raises(pydantic.ValidationError):
        DeliveryReport(provider_message_id="p", status="delivered", part=999)
    with pytest.raises(pydantic.ValidationError):
        InboundMessage(vendor_id="v" * 201, from_number=SENDER)
    with refusing_alone():
        report = DeliveryReport(provider_message_id="p", status="delivered", part=999)
        msg = InboundMessage(vendor_id="v" * 201, from_number=SENDER)
        empty = InboundMessage(vendor_id="", from_number=SENDER)  # refused alone too (counted)
    assert (report.rejected, report.part) == ("part out of bounds", None)
    assert (msg.rejected, msg.vendor_id) == ("vendor_id out of bounds", "v" * 40)
    assert (empty.rejected, empty.vendor_id) == ("vendor_id out of bounds", "(empty)")
    with pytest.raises(pydantic.ValidationError):  # outside a callback, as before
        InboundMessage(vendor_id="", from_number=SENDER)


def test_an_item_with_an_empty_vendor_id_is_refused_alone_and_the_rest_applied(
        emu: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """A reply whose vendor id is empty (nothing to store it under, nothing to tell a retry by)
    is refused alone, like an item out of bounds: counted in ``rejected``, logged at INFO with
    its number masked, not stored nor acted on (its STOP); the rest of the callback is applied
    and the answer is a 200. Before, the whole callback was refused with a 400."""
    caplog.set_level("INFO", logger="smsgate")
    inbox = Inbox()
    with Gateway(config(emu.url), plugins=plugins(inbox)) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        sent = t.send(SENDER, "hello")
        answer = post(f"{hooks.url}/acme/one", [
            reply("", "STOP", sender="+2348039999999"),
            {"id": sent.provider_message_id, "status": "delivered"},
            reply("ok1", "thanks")])
        assert answer == {"reports": 1, "matched": 1, "orphaned": 0, "inbound": 1, "duplicates": 0, "rejected": 1}
        assert t.get(sent.message_id).status.value == "delivered"
        assert [m.vendor_id for m in t.inbound()] == ["ok1"]
        assert not t.optouts.check("+2348039999999")
        assert [m.vendor_id for _, m in inbox.seen] == ["ok1"]
    said = [r.getMessage() for r in caplog.records if "refused on its own" in r.getMessage()]
    assert len(said) == 1 and "+234*******999" in said[0] and "vendor_id out of bounds" in said[0], said
    assert not any("+2348039999999" in r.getMessage() for r in caplog.records)


def test_an_empty_stop_word_list_is_allowed_but_never_silent(caplog: pytest.LogCaptureFixture) -> None:
    """``stop_words = []`` (with keywords on) makes a STOP opt nobody out: a vendor acting on STOP
    itself may want that, so it is accepted, with a warning saying what it means."""
    import logging

    from smsgate.config import InboundConfig

    with caplog.at_level(logging.WARNING, logger="smsgate"):
        InboundConfig(stop_words=[])
    assert "inbound.stop_words is empty: a STOP reply opts nobody out" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="smsgate"):
        InboundConfig(stop_words=[], keywords=False)
        InboundConfig()
    assert caplog.text == ""


STOPPED = "Acme: you will get no more messages. Reply START to opt back in."
STARTED = "Acme: welcome back. Reply STOP to opt out."


def test_a_stop_word_is_confirmed_once_despite_its_own_opt_out_and_a_start_word_too(emu: LiveServer) -> None:
    """Carriers ask for a confirmation of a STOP: ``stop_reply`` is the one message the opt-out
    just recorded does not hold back (a hook's ``send()`` could not send it: ``OptedOut``), once
    per event however often the vendor delivers it; nothing else reaches the number after it.
    ``start_reply`` confirms a START through the opt-out check (the emulator's record of sends)."""
    inbox = Inbox()
    cfg = config(emu.url, stop_reply=STOPPED, start_reply=STARTED, help_reply_limit=5)
    with Gateway(cfg, plugins=plugins(inbox)) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        url = f"{hooks.url}/acme/one"
        for _ in range(3):  # a callback retried
            post(url, [reply("s1", "STOP")])
        assert t.optouts.check(SENDER)
        assert sent_texts(emu) == [STOPPED]
        with pytest.raises(OptedOut):
            t.send(SENDER, "sale today")
        post(url, [reply("h1", "HELP")])  # still opted out: HELP is answered all the same (CTIA)
        assert sent_texts(emu) == [STOPPED, HELP]
        post(url, [reply("s2", "START")])
        assert not t.optouts.check(SENDER)
        assert sent_texts(emu) == [STOPPED, HELP, STARTED]
        confirmations = [m for m in t.messages(to=SENDER) if (m.reference or "").startswith("inbound:")]
        assert sorted(m.status.value for m in confirmations) == ["submitted", "submitted", "submitted"]


def test_a_stop_confirmation_is_capped_per_number_as_help_replies_are(emu: LiveServer) -> None:
    with Gateway(config(emu.url, stop_reply=STOPPED), plugins=plugins(Inbox())) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        url = f"{hooks.url}/acme/one"
        for i in range(4):  # someone texting STOP over and over (or spoofing the number)
            post(url, [reply(f"s{i}", "STOP")])
        assert sent_texts(emu) == [STOPPED]  # help_reply_limit 1 per 10 minutes


@pytest.mark.parametrize("field", ["stop_reply", "start_reply"])
def test_a_confirmation_that_is_itself_a_keyword_or_has_placeholders_is_refused(emu: LiveServer, field: str) -> None:
    with pytest.raises(ConfigError, match=f"inbound.{field}"):
        Gateway(config(emu.url, **{field: "START"}), plugins=plugins(Inbox())).close()
    with pytest.raises(ConfigError, match=f"inbound.{field}"):
        Gateway(config(emu.url, **{field: "Hi {name}, done"}), plugins=plugins(Inbox())).close()
    with pytest.raises(ConfigError, match=f"inbound.{field}: .*shorten it or raise max_segments"):
        Gateway(config(emu.url, **{field: "Acme. " * 300}), plugins=plugins(Inbox())).close()
