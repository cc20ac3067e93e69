"""Inbound messages, second round: the last word of a person whose replies arrive out of order,
auto-replies' own idempotency keys, HELP from an opted-out number, ``tenant.inbound()``'s
``since`` / ``action`` filters, and the sender of a sender-scoped confirmation.

Real code paths: the reference provider's emulator over loopback HTTP (its own record of the
requests it received tells what was sent, and from which sender), real SQLite and PostgreSQL
stores.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services import pg_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway, InboundMessage, OptedOut, ValidationError
from smsgate.cli import app
from smsgate.models import utcnow
from smsgate.store import open_store
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import LiveServer
from smsgate.testing.emulator import EmulatorControl
from smsgate.webhooks import webhook_app
from test_cli import cfg, emulator, runner  # noqa: F401  (fixtures, and the CLI runner)
from test_inbound import HELP, SENDER, Inbox, config, emu, plugins, post, sent_texts  # noqa: F401

STOPPED = "Acme: you will get no more messages. Reply START to opt back in."
STARTED = "Acme: welcome back. Reply STOP to opt out."


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inbound.db'}"
    return str(request.getfixturevalue("pg_url"))


def stored(url: str, store: str, **inbound: Any) -> dict[str, Any]:
    conf = config(url, **inbound)
    conf["store"] = store
    return conf


def said(t: Any, vid: str, text: str, minutes_ago: float, to: str = "ACME") -> None:
    """A reply said ``minutes_ago``, handed to the tenant as a poll would (``ingest_inbound``)."""
    t.ingest_inbound("one", [InboundMessage(provider="one", vendor_id=vid, from_number=SENDER, to=to, text=text,
                                            received_at=utcnow() - timedelta(minutes=minutes_ago))])


def sent_from(server: LiveServer, to: str = SENDER) -> list[tuple[str | None, str]]:
    """(sender, text) of what the emulator at ``server`` received for ``to``, in order."""
    return [(r.json().get("from"), r.json()["text"]) for r in EmulatorControl(server.url).requests("/messages", "POST")
            if r.json().get("to") == to]


# ------------------------------------------------------------------ 1. the last word stands, in any order
def test_a_stop_older_than_a_start_applied_before_it_leaves_the_person_opted_in(
        emu: LiveServer, store_url: str) -> None:  # noqa: F811
    """A poll lists START (said last) before STOP (said first): the late STOP records nothing
    and confirms nothing; a STOP said after the START still opts out."""
    conf = stored(emu.url, store_url, stop_reply=STOPPED, start_reply=STARTED, help_reply_limit=5)
    with Gateway(conf, plugins=plugins(Inbox())) as gw:
        t = gw.tenant("acme")
        said(t, "s2", "START", 2)
        said(t, "s1", "STOP", 3)
        assert (t.optouts.check(SENDER), sent_texts(emu)) == (False, [STARTED])
        assert [m.action for m in t.inbound()] == ["optout", "optin"]  # the word is recorded as said
        said(t, "s3", "STOP", 1)  # said after the START: the person's last word
        assert (t.optouts.check(SENDER), sent_texts(emu)) == (True, [STARTED, STOPPED])


def test_a_stop_older_than_a_start_that_lifted_an_opt_out_does_not_restore_it(
        emu: LiveServer, store_url: str) -> None:  # noqa: F811
    """STOP (t0), START (t2) applied in order; then a STOP said at t1 arrives (a retried callback)."""
    with Gateway(stored(emu.url, store_url), plugins=plugins(Inbox())) as gw:
        t = gw.tenant("acme")
        said(t, "s0", "STOP", 10)
        said(t, "s2", "START", 2)
        assert not t.optouts.check(SENDER)
        said(t, "s1", "STOP", 5)
        assert not t.optouts.check(SENDER)


def test_an_opt_in_trace_is_per_scope(emu: LiveServer, store_url: str) -> None:  # noqa: F811
    """With ``optout_scope = "sender"``, a START to PROMO stands against an older STOP to PROMO
    only: an older STOP to ACME still opts out of ACME."""
    with Gateway(stored(emu.url, store_url, optout_scope="sender"), plugins=plugins(Inbox())) as gw:
        t = gw.tenant("acme")
        said(t, "s2", "START", 2, to="PROMO")
        said(t, "s1", "STOP", 3, to="PROMO")
        said(t, "s3", "STOP", 3, to="ACME")
        assert t.optouts.scopes(SENDER) == {"acme"}


def test_an_opt_out_added_by_hand_is_not_held_back_by_an_opt_in(emu: LiveServer, store_url: str) -> None:  # noqa: F811
    with Gateway(stored(emu.url, store_url), plugins=plugins(Inbox())) as gw:
        t = gw.tenant("acme")
        said(t, "s2", "START", 2)
        t.optouts.add(SENDER, reason="asked on the phone")
        assert t.optouts.check(SENDER)


def test_a_store_of_schema_11_upgrades_and_keeps_opt_ins_from_then_on(store_url: str) -> None:
    """The opt-in trace is a table of its own (schema 12); an opt-out stored at 11 is kept."""
    from smsgate.models import OptOut

    with open_store(store_url) as s:
        pass  # created at the newest version; rebuilt below at 11 for SQLite only
    if store_url.startswith("sqlite"):
        path = store_url.removeprefix("sqlite:///")
        Path(path).unlink()
        from smsgate.store.sqlite import SQLiteStore

        with SQLiteStore(path) as old:
            old.SCHEMA_VERSION = 11  # as released
            old.migrate()
            assert old.schema_version() == 11
            old.add_optouts("acme", [OptOut(phone=SENDER, source="api")])
    with open_store(store_url) as s:
        assert s.schema_version() == s.SCHEMA_VERSION >= 12
        now = utcnow()
        s.add_optouts("acme", [OptOut(phone="+2348031230000", source="keyword", created_at=now - timedelta(minutes=9))])
        assert s.remove_optout("acme", "+2348031230000", "*", not_after=now - timedelta(minutes=5))
        s.add_optouts("acme", [OptOut(phone="+2348031230000", source="keyword",
                                      created_at=now - timedelta(minutes=7))], renew=True)
        assert not s.is_opted_out("acme", "+2348031230000")
        assert s.is_opted_out("acme", SENDER) == store_url.startswith("sqlite")
        assert s.erase_tenant("acme") >= 1
        s.add_optouts("acme", [OptOut(phone="+2348031230000", source="keyword",
                                      created_at=now - timedelta(minutes=7))], renew=True)
        assert s.is_opted_out("acme", "+2348031230000")  # the trace went with the tenant's data


# ------------------------------------------------------------------ 2. auto-replies' own idempotency keys
def test_an_application_key_like_an_auto_replys_cannot_take_its_place(
        emu: LiveServer, store_url: str) -> None:  # noqa: F811
    conf = stored(emu.url, store_url, stop_reply=STOPPED)
    with Gateway(conf, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        t.send(SENDER, "your code is 1234", idempotency_key="inbound:one:s1:stop")
        window = int(utcnow().timestamp() // 600)
        for w in (window, window + 1):  # the cap's slot of this window (and the next, at its edge)
            t.send(SENDER, f"code {w}", idempotency_key=f"auto-reply:stop:{SENDER}:600:{w}:0")
        post(f"{hooks.url}/acme/one", [{"type": "inbound", "id": "s1", "from": SENDER, "to": "ACME", "text": "STOP"}])
        assert sent_texts(emu)[-1] == STOPPED
        assert sent_texts(emu).count(STOPPED) == 1


def test_an_application_key_in_the_auto_replies_namespace_is_refused(emu: LiveServer) -> None:  # noqa: F811
    with Gateway(config(emu.url), plugins=plugins(Inbox())) as gw:
        with pytest.raises(ValidationError) as caught:
            gw.tenant("acme").send(SENDER, "hi", idempotency_key="smsgate:inbound:one:s1:help")
        assert caught.value.field == "idempotency_key" and "reserved" in str(caught.value)
    assert sent_texts(emu) == []


# ------------------------------------------------------------------ 3. HELP from an opted-out number
def test_help_from_an_opted_out_number_is_answered_and_nothing_else_is_sent(
        emu: LiveServer, store_url: str) -> None:  # noqa: F811
    """CTIA: HELP is answered whatever the number's opt-in status; the opt-out still holds back
    every other message (a START confirmation older than the opt-out, the application's sends)."""
    conf = stored(emu.url, store_url, start_reply=STARTED, help_reply_limit=5)
    with Gateway(conf, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        t.optouts.add(SENDER)
        post(f"{hooks.url}/acme/one", [{"type": "inbound", "id": "h1", "from": SENDER, "to": "ACME", "text": "HELP"}])
        post(f"{hooks.url}/acme/one", [{"type": "inbound", "id": "h1", "from": SENDER, "to": "ACME", "text": "HELP"}])
        assert sent_texts(emu) == [HELP]  # once per event
        with pytest.raises(OptedOut):
            t.send(SENDER, "Sale!")
        said(t, "s1", "START", 60 * 24 * 400)  # a START older than the opt-out (and too old to answer)
        assert t.optouts.check(SENDER) and sent_texts(emu) == [HELP]
        (h1,) = [m for m in t.inbound() if m.vendor_id == "h1"]
        (answer,) = [m for m in t.messages(to=SENDER) if m.reference == f"inbound:{h1.id}"]
        assert answer.status.value != "rejected"


def test_help_from_a_number_opted_out_of_one_sender_is_answered_under_the_cap(emu: LiveServer) -> None:  # noqa: F811
    with Gateway(config(emu.url, optout_scope="sender"), plugins=plugins(Inbox())) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        gw.tenant("acme").optouts.add(SENDER, scope="ACME")
        for vid in ("h1", "h2"):  # the default cap: one per number per 10 minutes
            post(f"{hooks.url}/acme/one", [{"type": "inbound", "id": vid, "from": SENDER, "to": "ACME",
                                            "text": "HELP"}])
        assert sent_texts(emu) == [HELP]


# ------------------------------------------------------------------ 4. inbound(since=, action=)
def test_inbound_filters_by_since_and_action(emu: LiveServer, store_url: str) -> None:  # noqa: F811
    with Gateway(stored(emu.url, store_url), plugins=plugins(Inbox())) as gw:
        t = gw.tenant("acme")
        said(t, "old", "STOP", 60 * 5)
        said(t, "new", "hello", 1)
        said(t, "help", "HELP", 2)
        assert [m.vendor_id for m in t.inbound(since="1h")] == ["help", "new"]
        assert [m.vendor_id for m in t.inbound(since=timedelta(hours=6), action="optout")] == ["old"]
        assert [m.vendor_id for m in t.inbound(action="none")] == ["new"]
        assert [m.vendor_id for m in t.inbound(since=utcnow() - timedelta(minutes=90))] == ["help", "new"]
        assert t.inbound(action="optin") == []


@pytest.mark.parametrize(("filters", "field"), [({"action": "stop"}, "action"), ({"action": 3}, "action"),
                                                ({"since": 5}, "since"), ({"since": "yesterday"}, "since"),
                                                ({"since": "-1h"}, "since")])
def test_inbound_refuses_a_bad_since_or_action_naming_it(
        emu: LiveServer, filters: dict[str, Any], field: str) -> None:  # noqa: F811
    with Gateway(config(emu.url), plugins=plugins(Inbox())) as gw:
        with pytest.raises(ValidationError) as caught:
            gw.tenant("acme").inbound(**filters)
        assert caught.value.field == field
    gw2 = AsyncGateway(config(emu.url), plugins=plugins(Inbox()))
    try:
        with pytest.raises(ValidationError) as caught:
            asyncio.run(gw2.tenant("acme").inbound(**filters))
        assert caught.value.field == field
    finally:
        asyncio.run(gw2.aclose())


def test_the_async_inbound_filters_too(emu: LiveServer, store_url: str) -> None:  # noqa: F811
    conf = stored(emu.url, store_url)
    with Gateway(conf, plugins=plugins(Inbox())) as gw:
        said(gw.tenant("acme"), "old", "STOP", 60 * 5)
        said(gw.tenant("acme"), "new", "HELP", 1)

    async def main() -> tuple[list[str], list[str]]:
        agw = AsyncGateway(conf, plugins=plugins(Inbox()))
        try:
            t = agw.tenant("acme")
            recent = [m.vendor_id for m in await t.inbound(since="2h")]
            stops = [m.vendor_id for m in await t.inbound(action="optout")]
            return recent, stops
        finally:
            await agw.aclose()

    assert asyncio.run(main()) == (["new"], ["old"])


# ------------------------------------------------------------------ 5. the sender of a scoped confirmation
@pytest.fixture
def brands(emu: LiveServer) -> Iterator[dict[str, Any]]:  # noqa: F811
    """A tenant sending as ACME (its own sender) and as PROMO (instance two's), its help replies
    from HELPDESK, opt-outs per sender."""
    conf = config(emu.url, optout_scope="sender", reply_sender="HELPDESK", stop_reply=STOPPED,
                 start_reply=STARTED, help_reply_limit=5)
    acme = conf["tenants"]["acme"]
    acme["providers"]["two"] = dict(acme["providers"]["one"], sender="PROMO")
    yield conf


def test_a_scoped_stop_and_start_are_confirmed_from_the_sender_texted(emu: LiveServer,  # noqa: F811
                                                                      brands: dict[str, Any]) -> None:
    with Gateway(brands, plugins=plugins(Inbox())) as gw, LiveServer(webhook_app(gw)) as hooks:
        url = f"{hooks.url}/acme/one"
        post(url, [{"type": "inbound", "id": "s1", "from": SENDER, "to": "promo", "text": "STOP"}])
        assert gw.tenant("acme").optouts.scopes(SENDER) == {"promo"}
        post(url, [{"type": "inbound", "id": "s2", "from": SENDER, "to": "PROMO", "text": "START"}])
        post(url, [{"type": "inbound", "id": "h1", "from": SENDER, "to": "PROMO", "text": "HELP"}])
        post(url, [{"type": "inbound", "id": "s3", "from": SENDER, "to": "ACME", "text": "STOP"}])
        assert sent_from(emu) == [("PROMO", STOPPED), ("PROMO", STARTED), ("HELPDESK", HELP), ("ACME", STOPPED)]


def test_a_scoped_stop_to_a_sender_the_tenant_does_not_send_as_is_confirmed_from_reply_sender(
        emu: LiveServer, brands: dict[str, Any]) -> None:  # noqa: F811
    """A number or sender ID none of the tenant's configuration names (a vendor's shared short
    code): the confirmation goes from ``reply_sender``, as before."""
    with Gateway(brands, plugins=plugins(Inbox())) as gw:
        said(gw.tenant("acme"), "s1", "STOP", 1, to="33011")
        assert gw.tenant("acme").optouts.scopes(SENDER) == {"33011"}
        assert sent_from(emu) == [("HELPDESK", STOPPED)]


def test_a_tenant_wide_stop_is_confirmed_from_reply_sender(emu: LiveServer, brands: dict[str, Any]) -> None:  # noqa: F811
    brands["tenants"]["acme"]["inbound"]["optout_scope"] = "tenant"
    with Gateway(brands, plugins=plugins(Inbox())) as gw:
        said(gw.tenant("acme"), "s1", "STOP", 1, to="PROMO")
        assert sent_from(emu) == [("HELPDESK", STOPPED)]


def test_the_inbound_command_filters_by_since_and_action(cfg: Path, tmp_path: Path) -> None:  # noqa: F811
    path = cfg
    with SQLiteStore(str(tmp_path / "cli.db")) as store:
        store.migrate()
        (old, _), (new, _) = store.record_inbound("acme", [
            InboundMessage(provider="one", vendor_id="old", from_number=SENDER, text="STOP",
                           received_at=utcnow() - timedelta(days=3)),
            InboundMessage(provider="one", vendor_id="new", from_number=SENDER, text="hi")])
        store.set_inbound_action("acme", old.id or 0, "optout")
        store.set_inbound_action("acme", new.id or 0, "none")
    out = runner.invoke(app, ["inbound", "-c", str(path), "--json", "--since", "1d"])
    assert out.exit_code == 0, out.output
    assert [m["vendor_id"] for m in json.loads(out.stdout)] == ["new"]
    out = runner.invoke(app, ["inbound", "-c", str(path), "--json", "--action", "optout"])
    assert [m["vendor_id"] for m in json.loads(out.stdout)] == ["old"]
    bad = runner.invoke(app, ["inbound", "-c", str(path), "--action", "stop"])
    assert bad.exit_code == 2 and "--action" in bad.output and "optout" in bad.output
    bad = runner.invoke(app, ["inbound", "-c", str(path), "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_a_scoped_stop_to_a_number_mapped_to_a_brand_is_confirmed_from_that_number(
        emu: LiveServer, brands: dict[str, Any]) -> None:  # noqa: F811
    """The tenant sends from +2348020000000 too, and ``reply_scopes`` maps replies to it to ACME:
    a STOP texted to it (written in national form) opts out of ACME and is confirmed from the
    number texted, not from ``reply_sender``."""
    acme = brands["tenants"]["acme"]
    acme["providers"]["two"]["sender"] = "+2348020000000"
    acme["inbound"]["reply_scopes"] = {"+2348020000000": "ACME"}
    with Gateway(brands, plugins=plugins(Inbox())) as gw:
        said(gw.tenant("acme"), "s1", "STOP", 1, to="08020000000")
        assert gw.tenant("acme").optouts.scopes(SENDER) == {"acme"}
        assert sent_from(emu) == [("+2348020000000", STOPPED)]
