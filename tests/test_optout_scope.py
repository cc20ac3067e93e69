"""Opt-outs scoped to a sender ID, end to end over the reference emulator.

What was sent (and from which sender) is read from the emulator's own request record;
the store is real SQLite or PostgreSQL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from smsgate import Gateway, OptedOut
from smsgate.config import InboundConfig
from smsgate.errors import ValidationError
from smsgate.keywords import keyword_scope
from smsgate.models import EVERY_SENDER, OptOut, Status, optout_applies, optout_scope
from smsgate.plugins import PluginManager
from smsgate.store.base import Store
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import LiveServer
from smsgate.testing.emulator import EmulatorControl
from smsgate.webhooks import webhook_app

X, Y, Z = "+2348031230001", "+2348031230002", "+2348031230003"


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def config(url: str, **tenant: Any) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}}
    return {"tenants": {"acme": {"default_region": "NG", "sender": "BrandA", "providers": {"one": prov},
                                 **tenant}}}


@pytest.fixture()
def emu() -> Iterator[LiveServer]:
    with LiveServer(create_emulator()) as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        from test_store_postgres import scratch_store  # a fresh schema, dropped on close

        s = scratch_store()
    else:
        s = SQLiteStore(str(tmp_path / "log.db"))
    s.migrate()
    yield s
    s.close()


def sent(emu: LiveServer) -> list[tuple[str, str | None]]:
    """(to, from) of every message the vendor received, single and bulk, in order."""
    out: list[tuple[str, str | None]] = []
    for r in EmulatorControl(emu.url).requests():
        if r.method != "POST":
            continue
        body = r.json()
        items = body["messages"] if r.path.endswith("/bulk") else [body]
        out.extend((m["to"], m.get("from")) for m in items)
    return out


def post(url: str, items: list[dict[str, Any]]) -> None:
    body = json.dumps(items).encode()
    r = httpx.post(url, content=body, headers={"X-Echo-Signature": sign(body)})
    assert r.status_code == 200, r.text


def reply(vid: str, text: str, frm: str, to: str | None) -> dict[str, Any]:
    return {"type": "inbound", "id": vid, "from": frm, "to": to, "text": text}


# ------------------------------------------------------------------------------ the rule
def test_scope_keys_and_the_rule() -> None:
    assert optout_scope(None) == optout_scope("") == optout_scope(" * ") == EVERY_SENDER
    assert optout_scope("AcmeShop") == optout_scope(" ACMESHOP ") == "acmeshop"
    assert optout_scope("+44 7700 900-123") == optout_scope("447700900123") == "447700900123"
    with pytest.raises(ValueError, match="printable"):
        optout_scope("a\nb")
    with pytest.raises(ValueError, match="at most 64"):
        optout_scope("x" * 65)
    assert optout_applies({"*"}, None) and optout_applies({"*"}, "Any")
    assert optout_applies({"brand"}, "BRAND") and not optout_applies({"brand"}, "other")
    assert not optout_applies({"brand"}, None) and not optout_applies(set(), "brand")
    # a sender no scope can name matches only an opt-out from every sender (never an error)
    assert not optout_applies({"brand"}, "x" * 65) and optout_applies({"*"}, "bad\nsender")
    assert OptOut(phone=X, scope=None).scope == "*" and OptOut(phone=X, scope="Shop").scope == "shop"


def test_keyword_scope() -> None:
    assert keyword_scope(False, {}, "12345") == EVERY_SENDER
    assert keyword_scope(True, {}, None) == EVERY_SENDER  # the vendor did not say where the reply went
    assert keyword_scope(True, {}, "AcmeShop") == "acmeshop"
    assert keyword_scope(True, {"+1 2345": "AcmeShop"}, "12345") == "acmeshop"
    assert keyword_scope(True, {}, "bad\x00to") == EVERY_SENDER
    with pytest.raises(ValueError, match="reply_scopes"):
        InboundConfig(reply_scopes={"12345": "*"})
    assert InboundConfig().optout_scope == "tenant"


# ------------------------------------------------------------------------- end to end
def test_opted_out_of_one_sender_still_gets_the_others(emu: LiveServer, store: Store) -> None:
    """X opted out of BrandA, Y of every sender: sends, bulk sends and campaigns honour both."""
    with Gateway(config(emu.url), store=store, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        assert t.optouts.add("08031230001", scope="BrandA", reason="asked") is True
        assert t.optouts.add("08031230001", scope="BRANDA") is False  # one scope, however it is spelt
        assert t.optouts.add(Y) is True
        assert [(o.phone, o.scope) for o in t.optouts.list()] == [(X, "branda"), (Y, "*")]
        assert t.optouts.check(X, sender="BrandA") and not t.optouts.check(X, sender="BrandB")
        assert not t.optouts.check(X) and t.optouts.check(Y) and t.optouts.check(Y, sender="BrandB")

        with pytest.raises(OptedOut, match="sender 'BrandA'") as refused:
            t.send(X, "from A")  # the tenant's sender is BrandA
        assert refused.value.sender == "BrandA"
        assert t.send(X, "from B", sender="BrandB").ok
        for sender in ("BrandA", "BrandB"):
            with pytest.raises(OptedOut):
                t.send(Y, "never", sender=sender)
        results = t.send_many([X, Y, Z], "bulk A")
        assert [(r.status, r.error_code) for r in results] == [
            (Status.REJECTED, "opted_out"), (Status.REJECTED, "opted_out"), (Status.SUBMITTED, None)]
        assert [r.ok for r in t.send_many([X, Y, Z], "bulk B", sender="BrandB")] == [True, False, True]

        # a campaign from A skips X and Y when it is prepared; one from B skips Y only
        from_a = t.campaigns.create("a", text="camp A", audience=[X, Y, Z])
        assert from_a.preview().skipped == {"opted_out": 2}
        from_b = t.campaigns.create("b", text="camp B", audience=[X, Y, Z], sender="BrandB")
        assert from_b.preview().skipped == {"opted_out": 1}
        # opted out of B after B's preparation: its dispatch skips X too
        t.optouts.add(X, scope="BrandB")
        assert from_a.run().sent == 1
        done = from_b.run()
        assert (done.sent, done.skipped_by_reason) == (1, {"opted_out": 2})
        # back in for B: later sends from B reach X again, A still does not
        assert t.optouts.remove(X, scope="BrandB") is True and t.optouts.remove(X) is False
        assert t.send(X, "B again", sender="BrandB").ok
        assert t.optouts.remove(X, every_scope=True) is True and t.optouts.list() == [
            OptOut(phone=Y, scope="*", created_at=t.optouts.list()[0].created_at)]

    record = sent(emu)
    assert Y not in {to for to, _ in record}  # opted out of every sender: nothing, ever
    assert [sender for to, sender in record if to == X] == ["BrandB", "BrandB", "BrandB"]
    assert sorted(record) == sorted([(X, "BrandB"), (Z, "BrandA"), (X, "BrandB"), (Z, "BrandB"),
                                      (Z, "BrandA"), (Z, "BrandB"), (X, "BrandB")])


def test_failover_goes_to_a_provider_whose_sender_was_not_opted_out(emu: LiveServer, tmp_path: Path) -> None:
    """A number opted out of the first provider's sender ID gets the message from the second's."""
    prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
    cfg = {"tenants": {"acme": {"default_region": "NG",
                                "providers": {"one": {**prov, "sender": "BrandA"}, "two": {**prov, "sender": "BrandB"}},
                                "routes": [{"providers": ["one", "two"]}]}}}
    store = SQLiteStore(str(tmp_path / "f.db"))
    store.migrate()
    with Gateway(cfg, store=store, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        t.optouts.add(X, scope="BrandA")
        first = t.send(X, "hi")
        assert first.ok and first.provider == "two"
        assert t.send(Z, "hi").provider == "one"
        t.optouts.add(X, scope="BrandB")
        with pytest.raises(OptedOut):
            t.send(X, "none left")
        assert t.send(X, "explicit", sender="BrandC").provider == "one"
    assert sent(emu) == [(X, "BrandB"), (Z, "BrandA"), (X, "BrandC")]


def test_stop_to_one_brand_leaves_the_other(emu: LiveServer, store: Store) -> None:
    """With keyword scope per sender, STOP sent to a brand's short code opts out of that brand only."""
    inbound = {"optout_scope": "sender", "reply_scopes": {"12345": "BrandA"}}
    with Gateway(config(emu.url, inbound=inbound), store=store, plugins=plugins()) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        url = f"{hooks.url}/acme/one"
        post(url, [reply("s1", "Stop", X, "12345")])
        assert [(o.phone, o.scope, o.source) for o in t.optouts.list()] == [(X, "branda", "keyword")]
        with pytest.raises(OptedOut):
            t.send(X, "from A")
        assert t.send(X, "from B", sender="BrandB").ok
        camp = t.campaigns.create("a", text="camp A", audience=[X, Z])
        assert camp.run().sent == 1 and camp.progress().skipped_by_reason == {"opted_out": 1}
        post(url, [reply("s2", "START", X, "+1 2345")])  # the same short code, written another way
        assert t.optouts.list() == [] and t.send(X, "A again").ok
        # a STOP whose destination the vendor does not give opts out of every sender
        post(url, [reply("s3", "STOP", Y, None)])
        assert [(o.phone, o.scope) for o in t.optouts.list()] == [(Y, "*")]
        assert [m.action for m in t.inbound()] == ["optout", "optin", "optout"]
    assert [(to, frm) for to, frm in sent(emu)] == [(X, "BrandB"), (Z, "BrandA"), (X, "BrandA")]


def test_default_keyword_scope_is_the_whole_tenant(emu: LiveServer) -> None:
    with Gateway(config(emu.url), store=MemoryStore(), plugins=plugins()) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        post(f"{hooks.url}/acme/one", [reply("s1", "STOP", X, "BrandA")])
        assert [(o.phone, o.scope) for o in t.optouts.list()] == [(X, "*")]
        with pytest.raises(OptedOut):
            t.send(X, "from B", sender="BrandB")
    assert sent(emu) == []


def test_bad_scope_is_a_validation_error(emu: LiveServer) -> None:
    with Gateway(config(emu.url), store=MemoryStore(), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        with pytest.raises(ValidationError, match="scope"):
            t.optouts.add(X, scope="x" * 65)
        with pytest.raises(ValidationError, match="scope"):
            t.optouts.check(X, sender="bad\nsender")
        assert t.optouts.list() == []


def test_async_registry_has_the_same_scopes(emu: LiveServer) -> None:
    import asyncio

    from smsgate import AsyncGateway

    async def run() -> None:
        gw = AsyncGateway(config(emu.url), store=MemoryStore(), plugins=plugins())
        try:
            t = gw.tenant("acme")
            assert await t.optouts.add(X, scope="BrandB") is True
            assert await t.optouts.check(X, sender="brandb") and not await t.optouts.check(X)
            assert (await t.send(X, "from A")).ok  # the tenant's sender BrandA
            with pytest.raises(OptedOut):
                await t.send(X, "from B", sender="BrandB")
            assert [(o.phone, o.scope) for o in await t.optouts.list()] == [(X, "brandb")]
            assert await t.optouts.count() == 1
            assert await t.optouts.remove(X, scope="BRANDB") is True
            assert (await t.send(X, "B again", sender="BrandB")).ok
        finally:
            await gw.aclose()

    asyncio.run(run())
    assert sent(emu) == [(X, "BrandA"), (X, "BrandB")]


def test_native_campaign_hands_over_no_one_opted_out_of_its_sender() -> None:
    """A campaign handed to the provider's campaign API leaves out numbers opted out of its sender."""
    pytest.importorskip("smsgate_campaigns_api")
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    prov = {"plugin": "campaigns_api", "credentials": {"api_key": SANDBOX_API_KEY}, "sender": "ACME"}
    a, b, c = "+447912345601", "+447912345602", "+447912345603"
    with LiveServer(create_app(delivery_delay=0.05, campaign_delay=0.05)) as server:
        cfg = {"tenants": {"acme": {"default_region": "GB",
                                    "providers": {"dm": {**prov, "base_url": server.url}}}}}
        with Gateway(cfg, store=MemoryStore()) as gw:
            t = gw.tenant("acme")
            t.optouts.add(b, scope="OTHER")
            camp = t.campaigns.create("promo", text="Hi", audience=[a, b, c], provider="dm", mode="native")
            assert camp.preview().recipients == 3
            t.optouts.add(a, scope="ACME")  # after preparation: the handover leaves it out
            done = camp.run()
            assert (done.sent, done.skipped_by_reason) == (2, {"opted_out": 1})
        bodies = " ".join(r.body for r in EmulatorControl(server.url).requests() if r.method == "POST")
    assert "7912345601" not in bodies and "7912345602" in bodies and "7912345603" in bodies


@pytest.mark.parametrize("scope", ["", "   ", 12345])
def test_a_blank_or_non_text_scope_is_a_typed_error_not_every_sender(scope: Any) -> None:
    """An unset shell variable ("") silently widened an opt-out to every sender; an int short
    code raised AttributeError."""
    with Gateway(config("http://127.0.0.1:9"), store=MemoryStore(), plugins=plugins()) as gw:
        optouts = gw.tenant("acme").optouts
        with pytest.raises(ValidationError, match="scope"):
            optouts.add("08031234567", scope=scope)
        with pytest.raises(ValidationError, match="scope"):
            optouts.remove("08031234567", scope=scope)
        assert optouts.list() == []
        if not isinstance(scope, str):
            with pytest.raises(ValidationError, match="sender"):
                optouts.check("08031234567", sender=scope)


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_text_is_refused_locally(text: str, emu: LiveServer) -> None:
    """An empty text went to the vendor (refused there) and a blank one was sent; an empty
    campaign text made a campaign (found by a new-user trial)."""
    with Gateway(config(emu.url), store=MemoryStore(), plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError, match="is empty"):
            acme.send("08031234567", text)
        with pytest.raises(ValidationError, match="is empty"):
            acme.campaigns.create("empty", text=text, audience=["08031234567"])
        assert acme.campaigns.list() == []
    assert sent(emu) == []


@pytest.mark.parametrize(("call", "field"), [
    (lambda o: o.add("08031234567", reason=5), "reason"),
    (lambda o: o.add("08031234567", source=None), "source"),
    (lambda o: o.add("08031234567", source=""), "source"),
    (lambda o: o.list(limit=-1), "limit"),
    (lambda o: o.list(limit="5"), "limit"),
    (lambda o: o.list(offset=-5), "offset"),
    (lambda o: o.list(offset=1.5), "offset"),
])
def test_bad_optout_arguments_are_typed_errors_naming_the_argument(call: Any, field: str) -> None:
    """A non-text reason raised pydantic's own error, a negative limit answered [] and a
    negative offset the whole list, a text limit a TypeError (found by a new-user trial)."""
    with Gateway(config("http://127.0.0.1:9"), store=MemoryStore(), plugins=plugins()) as gw:
        optouts = gw.tenant("acme").optouts
        optouts.add("08031234599")
        with pytest.raises(ValidationError) as info:
            call(optouts)
        assert info.value.field == field
        assert [o.phone for o in optouts.list()] == ["+2348031234599"]  # nothing added


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Connection.setlimit is Python 3.11+")
def test_optout_scopes_stay_within_an_old_sqlites_999_variables(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite before 3.32 takes at most 999 variables a statement: the padded lists of
    ``optout_scopes`` stay under it (900 numbers were padded to 1,000 plus the tenant)."""
    import sqlite3

    from smsgate.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_IN_LIST", 900)  # what an old SQLite gets
    store = SQLiteStore(str(tmp_path / "old.db"))
    try:
        store.migrate()
        store._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        numbers = [f"+23480310{i:05d}" for i in range(1_700)]
        store.add_optouts("acme", [OptOut(phone=n) for n in numbers[::7]])
        found = store.optout_scopes("acme", numbers)
        assert sorted(found) == sorted(numbers[::7])
    finally:
        store.close()
