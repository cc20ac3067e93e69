"""Tenant isolation attacked through the public API, on SQLite and PostgreSQL.

Tenant ``a`` is hostile: it is handed tenant ``b``'s message, campaign and list ids,
reuses ``b``'s idempotency key and posts ``b``'s delivery reports to its own webhook
route. Tenants ``b`` and ``B`` differ only in case. Every assertion about what was
sent reads the echo emulator's own record of the requests it received.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from services import pg_url, redis_url  # noqa: F401  (fixtures)
from smsgate import Gateway, Status
from smsgate.errors import NotFound, UnknownTenant
from smsgate.plugins import PluginManager
from smsgate.testing import LiveServer
from smsgate.traffic import Charge, Limit, Usage
from smsgate.traffic.limits import admit
from smsgate.traffic.redis_backend import RedisTraffic
from smsgate.webhooks import webhook_app


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm



@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'attack.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def vendor() -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """The echo emulator (one vendor account shared by every tenant) and its own record."""
    record: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(record, in_flight=["+2348030000001", "+2348030000002"])) as server:
        yield server.url, record


def config(url: str, store: str) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}
    tenant = {"default_region": "NG", "providers": {"one": prov}}
    return {"store": store, "tenants": {"a": tenant, "b": tenant, "B": tenant}}


def sent_to(record: dict[str, dict[str, Any]], number: str) -> int:
    return sum(1 for m in record.values() if m["to"] == number)


def nothing_or_not_found(call: Callable[[], object]) -> bool:
    """Whether ``call`` did nothing (0, False) or refused with NotFound."""
    try:
        return not call()
    except NotFound:
        return True


def test_a_tenant_cannot_reach_another_tenants_data(
    store_url: str, vendor: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    url, record = vendor
    with Gateway(config(url, store_url), plugins=plugins()) as gw:
        a, b, big_b = gw.tenant("a"), gw.tenant("b"), gw.tenant("B")
        # b's data
        sent = b.send("08030000001", "b's secret", idempotency_key="order-1")
        assert sent.provider_message_id
        camp = b.campaigns.create("b campaign", text="hi", audience=["08030000011", "08030000012"],
                                  campaign_id="camp-1")
        lst = b.contact_lists.create("b list", ["08030000021"], list_id="list-1").contact_list
        b.optouts.add("08030000031", reason="b's opt-out")
        inbound = json.dumps([{"type": "inbound", "id": "in-1", "from": "+2348030000041", "to": "ACME",
                               "text": "b's reply"}]).encode()
        assert gw.receive("b", "one", {"x-echo-signature": sign(inbound)}, inbound).inbound

        # a is handed b's ids
        with pytest.raises(NotFound):
            a.get(sent.message_id)
        with pytest.raises(NotFound):
            a.status(sent.message_id)
        with pytest.raises(NotFound):
            a.campaigns.get(camp.campaign_id)
        with pytest.raises(NotFound):
            a.contact_lists.get(lst.list_id)
        with pytest.raises(NotFound):
            a.contact_lists.add(lst.list_id, ["08030000022"])
        with pytest.raises(NotFound):
            a.messages(before=sent.message_id)
        with pytest.raises(NotFound):
            list(a.contact_lists.contacts(lst.list_id))
        assert nothing_or_not_found(lambda: a.contact_lists.remove(lst.list_id, ["08030000021"]))
        assert nothing_or_not_found(lambda: a.contact_lists.delete(lst.list_id))
        assert a.messages() == [] and big_b.messages() == []
        assert a.messages(campaign_id=camp.campaign_id) == []
        assert a.campaigns.list() == [] and a.contact_lists.list() == []
        assert a.optouts.list() == [] and not a.optouts.check("08030000031")
        assert a.inbound() == [] and big_b.inbound() == []
        assert a.stats().total == 0
        assert a.stats(campaign_id=camp.campaign_id).total == 0

        # a may use the same ids and keys for its own things: nothing of b's changes
        mine = a.send("08030000002", "a's own", idempotency_key="order-1")
        assert mine.message_id != sent.message_id and mine.to == "+2348030000002"
        assert sent_to(record, "+2348030000002") == 1
        assert big_b.send("08030000002", "B's own", idempotency_key="order-1").message_id != mine.message_id
        assert sent_to(record, "+2348030000002") == 2
        a.campaigns.create("a campaign", text="yo", audience=["08030000013"], campaign_id="camp-1")
        a.contact_lists.create("a list", ["08030000023"], list_id="list-1")
        a.campaigns.get("camp-1").delete(force=True)
        assert a.contact_lists.delete("list-1") is True
        a.optouts.add("08030000001")

        # b's delivery report posted to a's route (the vendor account is shared, so it verifies)
        report = json.dumps([{"id": sent.provider_message_id, "status": "failed"}]).encode()
        outcome = gw.receive("a", "one", {"x-echo-signature": sign(report)}, report)
        assert outcome.matched == 0
        # a's purge of everything it has
        a.purge(older_than=timedelta(0))

        # b is untouched
        assert b.get(sent.message_id).status is Status.SUBMITTED
        assert b.campaigns.get(camp.campaign_id).progress().pending == 2
        assert [c.phone for c in b.contact_lists.contacts(lst.list_id)] == ["+2348030000021"]
        assert b.optouts.check("08030000031") and not b.optouts.check("08030000001")
        assert [m.text for m in b.inbound()] == ["b's reply"]
        # b's repeat of its key still replays b's message, whatever a did with the same key
        assert b.send("08030000001", "b's secret", idempotency_key="order-1").message_id == sent.message_id
        assert sent_to(record, "+2348030000001") == 1
        with pytest.raises(UnknownTenant):
            gw.tenant("b ")
        with pytest.raises(UnknownTenant):
            gw.tenant("")


def test_a_report_on_the_wrong_tenants_route_never_reaches_the_right_one(
    store_url: str, vendor: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    """Over HTTP: b's report arriving on a's route changes nothing of b's, now or later."""
    url, _ = vendor
    with Gateway(config(url, store_url), plugins=plugins()) as gw, LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("b").send("08030000001", "hi")
        body = json.dumps([{"id": sent.provider_message_id, "status": "delivered"}]).encode()
        headers = {"X-Echo-Signature": sign(body)}
        for route in ("a", "B", "b%20", "b%2F"):
            r = httpx.post(f"{hooks.url}/{route}/one", content=body, headers=headers)
            assert r.status_code in (200, 401), r.text
            if r.status_code == 200:
                assert r.json()["matched"] == 0
        assert gw.tenant("b").get(sent.message_id).status is Status.SUBMITTED
        # the right route applies it
        r = httpx.post(f"{hooks.url}/b/one", content=body, headers=headers)
        assert r.json()["matched"] == 1
        assert gw.tenant("b").get(sent.message_id).status is Status.DELIVERED


def test_tenant_names_with_colons_never_share_limits_in_redis(
    vendor: tuple[str, dict[str, dict[str, Any]]], request: pytest.FixtureRequest
) -> None:
    """Redis keys join prefix, tenant and key with ``:``: tenant ``acme:provider:main``'s
    per-sender key ``sender:ACME`` must not be tenant ``acme``'s key
    ``provider:main:sender:ACME`` (a tenant could spend another's rate limit)."""
    url, _ = vendor
    redis = str(request.getfixturevalue("redis_url"))
    limited = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
               "limits": [{"rate": 1, "per": "hour", "scope": "sender"}]}
    cfg = {"store": "memory://", "traffic": redis,
           "tenants": {"acme": {"default_region": "NG", "providers": {"main": limited}}}}
    with Gateway(cfg, plugins=plugins()) as gw:
        assert gw.tenant("acme").send("08031234567", "hi").status is Status.SUBMITTED
    rule = Limit(rate=1, per=3600).rule()
    backend = RedisTraffic(redis)
    try:
        for tenant, key in [("acme:provider:main", "sender:ACME"), ("acme:provider", "main:sender:ACME"),
                            ("acme:", "provider:main:sender:ACME")]:
            charges = [Charge(key, (rule,), Usage(1, 1))]
            assert backend.traffic(tenant, {key: rule.period}, lambda s, n, c=charges: admit(s, c, n, "x", 30.0)) == 0
        # acme's own key is full (the test would prove nothing otherwise)
        key = "provider:main:sender:ACME"
        charges = [Charge(key, (rule,), Usage(1, 1))]
        assert backend.traffic("acme", {key: rule.period}, lambda s, n: admit(s, charges, n, "y", 30.0)) > 0
    finally:
        backend.close()


@pytest.mark.parametrize("case", ["campaign id", "campaign name", "list id", "list name", "list description",
                                  "contact name", "contact field", "opt-out reason"])
def test_a_nul_character_in_stored_input_is_refused_alike_on_every_store(
    store_url: str, vendor: tuple[str, dict[str, dict[str, Any]]], case: str
) -> None:
    """PostgreSQL keeps no NUL character: such input failed there with psycopg's own error
    and was kept on SQLite. Both refuse it with a ValidationError naming the field, and
    nothing is created."""
    from smsgate.errors import ValidationError

    url, _ = vendor
    with Gateway(config(url, store_url), plugins=plugins()) as gw:
        a = gw.tenant("a")
        calls: dict[str, Callable[[], object]] = {
            "campaign id": lambda: a.campaigns.create("c", text="hi", audience=["08030000001"], campaign_id="c\x00"),
            "campaign name": lambda: a.campaigns.create("c\x00", text="hi", audience=["08030000001"]),
            "list id": lambda: a.contact_lists.create("l", ["08030000001"], list_id="l\x00"),
            "list name": lambda: a.contact_lists.create("l\x00", ["08030000001"]),
            "list description": lambda: a.contact_lists.create("l", ["08030000001"], description="d\x00"),
            "contact name": lambda: a.contact_lists.create("l", [{"phone": "08030000001", "name": "n\x00"}]),
            "contact field": lambda: a.contact_lists.create("l", [{"phone": "08030000001", "city": "x\x00"}]),
            "opt-out reason": lambda: a.optouts.add("08030000001", reason="r\x00"),
        }
        try:
            outcome = calls[case]()
        except ValidationError as exc:  # "a NUL character", or a list's "contains '\x00'" (no control characters)
            assert "NUL" in str(exc) or "'\\x00'" in str(exc), exc
        else:  # a row that cannot be kept may be reported, not stored, like any invalid row
            errors = getattr(outcome, "errors", None)
            assert errors and "NUL" in errors[0].detail, outcome
        assert a.campaigns.list() == [] and a.optouts.list() == []
        assert all(lst.size == 0 for lst in a.contact_lists.list())
