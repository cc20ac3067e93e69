"""End-to-end: every adapter operation against the emulator over loopback HTTP, sync and async."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smsgate.config import Settings
from smsgate.errors import AuthFailed, ResourceNotFound
from smsgate.gateway import AsyncGateway, Gateway
from smsgate.models import Campaign, CampaignStatus, Contact, Status, utcnow
from smsgate.plugins import PluginManager
from smsgate.provider import Operation, Paged, ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing.emulator import EmulatorControl
from smsgate.testing.server import LiveServer
from smsgate.transport import run_with_responses
from smsgate_campaigns_api import CampaignRejected, CampaignsApiProvider, Filter, Sort
from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

T = TypeVar("T")
TENANT = "acme"
ANN, BOB, CAT = "+447912345678", "+447911123456", "+447912345679"  # CAT ends in 9: undeliverable


def settings(url: str, **options: Any) -> Settings:
    creds = {"api_key": options.pop("api_key", SANDBOX_API_KEY)}
    if "webhook_token" in options:
        creds["webhook_token"] = options.pop("webhook_token")
    return Settings(store="memory://", tenants={TENANT: {
        "default_region": "GB",
        "providers": {"dm": {"plugin": "campaigns_api", "base_url": url, "credentials": creds, "sender": "ACME",
                             "options": options, "max_retries": 2}},
    }})


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(CampaignsApiProvider)
    return pm


def gateway(url: str, **options: Any) -> Gateway:
    return Gateway(settings(url, **options), store=MemoryStore(), plugins=plugins())


def agateway(url: str, **options: Any) -> AsyncGateway:
    return AsyncGateway(settings(url, **options), store=MemoryStore(), plugins=plugins())


def wait_until(check: Callable[[], Any], what: str, limit: float = 10.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.03)


@pytest.fixture
def serve_fast() -> Iterator[Callable[[Any], str]]:
    """Like the core ``serve_app`` fixture, with TCP_NODELAY on the listening socket.

    Without it every response (headers and body written separately by uvicorn)
    waits ~40 ms for a delayed ACK on this machine: 428 pages would take ~19 s.
    (Core change requested: ``LiveServer`` should set TCP_NODELAY itself.)
    """
    servers: list[LiveServer] = []

    def start(app: Any) -> str:
        server = LiveServer(app)
        server._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        servers.append(server.start())
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def emulator(serve_fast: Callable[[Any], str]) -> Iterator[tuple[str, Any]]:
    app = create_app(delivery_delay=0.15, campaign_delay=0.2)
    yield serve_fast(app), app


# ------------------------------------------------------------------ single SMS


def test_send_and_status_lookup_sync(emulator: tuple[str, Any]) -> None:
    url, _ = emulator
    control = EmulatorControl(url)
    with gateway(url) as gw:
        t = gw.tenant(TENANT)
        good = t.send("07912 345678", "Hello Ann")
        bad = t.send(CAT, "Hello Cat")
        assert good.status == Status.SUBMITTED and good.provider_message_id
        wait_until(lambda: t.status(good.message_id).status.is_final, "delivery")
        wait_until(lambda: t.status(bad.message_id).status.is_final, "failure")
        record = t.get(good.message_id)
        assert record.status == Status.DELIVERED and record.raw_status == "1"
        assert record.cost == Decimal("0.035")
        assert t.get(bad.message_id).status == Status.UNDELIVERED
    [post, _] = control.requests("/api/SMSMessages", method="POST")
    assert post.json() == {"message": "Hello Ann", "sender": "ACME", "phoneNumber": "07912345678"}
    assert post.headers["authorization"] == f"Bearer {SANDBOX_API_KEY}"


def test_send_and_status_lookup_async(emulator: tuple[str, Any]) -> None:
    url, _ = emulator

    async def go() -> None:
        async with agateway(url) as gw:
            t = gw.tenant(TENANT)
            results = await t.send_many([ANN, BOB, CAT], "Hello all")
            assert [r.status for r in results] == [Status.SUBMITTED] * 3
            deadline = time.monotonic() + 10
            while True:
                records = [await t.status(r.message_id) for r in results]
                if all(r.status.is_final for r in records) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.03)
            assert [r.status for r in records] == [Status.DELIVERED, Status.DELIVERED, Status.UNDELIVERED]

    asyncio.run(go())


@pytest.mark.parametrize("mode", ["bearer", "header", "query"])
def test_auth_modes_against_emulator(emulator: tuple[str, Any], mode: str) -> None:
    url, _ = emulator
    control = EmulatorControl(url)
    with gateway(url, auth=mode) as gw:
        assert gw.tenant(TENANT).send(ANN, "key check").ok
    [request] = control.requests("/api/SMSMessages", method="POST")
    if mode == "bearer":
        assert request.headers["authorization"] == f"Bearer {SANDBOX_API_KEY}"
    elif mode == "header":
        assert request.headers["api-key"] == SANDBOX_API_KEY and "authorization" not in request.headers
    else:
        assert f"api-key={SANDBOX_API_KEY}" in request.query and "authorization" not in request.headers
    with gateway(url, auth=mode, api_key="wrong-key-999") as gw:
        t = gw.tenant(TENANT)
        with pytest.raises(AuthFailed) as info:
            t.run("dm", t.provider("dm").get_campaign("anything"))
    assert "wrong-key-999" not in f"{info.value} {info.value!r} {info.value.body}"


def test_default_auth_is_a_header() -> None:
    # the docs allow Bearer, an api-key header or ?api-key=; a query string is seen by proxies and logs
    prov = CampaignsApiProvider(ProviderSettings(plugin="campaigns_api", credentials={"api_key": "k-123"},
                                                 sender="ACME"))
    assert prov.opts.auth == "bearer"
    request = prov.request("GET", "/api/Campaigns")
    run_with_responses(prov.authorized(request), [])
    assert request.headers["authorization"] == "Bearer k-123" and "k-123" not in str(request.url)


@pytest.mark.parametrize("mode", ["bearer", "header", "query"])
def test_api_key_never_reaches_the_logs(emulator: tuple[str, Any], mode: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """Every record of every logger at DEBUG, sync and async, success and failure: no key."""
    url, _ = emulator
    wrong = "dm-wrong-key-4711"
    caplog.set_level(logging.DEBUG)  # the root logger: every logger propagates here
    with gateway(url, auth=mode) as gw:
        t = gw.tenant(TENANT)
        result = t.send(ANN, "log check")
        assert result.ok
        t.status(result.message_id)
        list(t.iterate("dm", t.provider("dm").list_campaigns(page_size=2)))  # a query string of its own
    with gateway(url, auth=mode, api_key=wrong) as gw:
        t = gw.tenant(TENANT)
        with pytest.raises(AuthFailed):
            t.send(ANN, "refused")
        with pytest.raises(AuthFailed):
            t.run("dm", t.provider("dm").get_campaign("anything"))

    async def go() -> None:
        async with agateway(url, auth=mode) as agw:
            assert (await agw.tenant(TENANT).send(BOB, "log check async")).ok

    asyncio.run(go())
    requests = [r.getMessage() for r in caplog.records if r.getMessage().startswith("HTTP Request:")]
    assert any("/api/SMSMessages" in line for line in requests)  # httpx's INFO line was captured
    formatter = logging.Formatter()
    for record in caplog.records:
        seen = " ".join([
            record.getMessage(), repr(record.args), repr(record.msg),
            formatter.formatException(record.exc_info) if record.exc_info else "", record.stack_info or "",
        ])
        for secret in (SANDBOX_API_KEY, wrong):
            assert secret not in seen, f"{record.name} logged the key: {record.getMessage()}"
    assert SANDBOX_API_KEY not in caplog.text and wrong not in caplog.text


def test_routes_are_case_insensitive_and_errors_are_problem_details(emulator: tuple[str, Any]) -> None:
    url, _ = emulator
    auth = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    assert httpx.get(url + "/API/CAMPAIGNS", headers=auth).json()["pageIndex"] == 1
    assert httpx.get(url + "/api/smsmessages/", headers=auth).status_code == 200
    created = httpx.post(url + "/api/SMSMESSAGES", headers=auth,
                         json={"message": "x", "sender": "ACME", "phoneNumber": "447912345678"})
    assert created.status_code == 201 and created.text.count("-") == 4  # the bare GUID, as documented
    by_guid = httpx.get(url + "/api/SMSMessages/" + created.text.upper(), headers=auth).json()
    assert httpx.get(url + f"/api/SMSMessages/{by_guid['id']}", headers=auth).json()["newId"] == created.text
    missing = httpx.get(url + "/api/Campaigns/nope", headers=auth)
    assert missing.status_code == 404 and missing.json()["title"] == "Not Found"
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert httpx.patch(url + "/api/Campaigns/nope", headers=auth).status_code == 405
    unauthorised = httpx.get(url + "/api/Campaigns")
    assert unauthorised.status_code == 401 and unauthorised.headers["www-authenticate"] == "Bearer"
    assert httpx.get(url + "/api/Campaigns", params={"api-key": SANDBOX_API_KEY}).status_code == 200
    bad = httpx.post(url + "/api/SMSMessages", headers=auth, json={"message": "", "phoneNumber": "12"})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"Message", "PhoneNumber"}
    bad_query = httpx.get(url + "/api/Campaigns", headers=auth, params={"filters": "nosuchfield==1"})
    assert bad_query.status_code == 400 and "filters" in bad_query.json()["errors"]


# ------------------------------------------------------------------- campaigns

Call = Callable[[Operation[Any]], Awaitable[Any]]
Collect = Callable[[Paged[Any]], Awaitable[list[Any]]]


async def campaign_scenario(prov: CampaignsApiProvider, call: Call, collect: Collect,
                            control: EmulatorControl) -> None:
    """Create, read, list, run, count, update, delete: every campaign operation."""
    start = utcnow() + timedelta(seconds=0.3)
    campaign = Campaign(
        text="Hi {name}, code {code}",
        sender="ACME",
        start_at=start,
        contact_list_id="3fa85f64-5717-4562-b3fc-2c963f66afa6",
        contacts=[Contact(phone=ANN, name="Ann", fields={"code": "A1"}),
                  Contact(phone=BOB, name="Bob", fields={"code": "B2"}),
                  Contact(phone=CAT, name="Cat", fields={"code": "C3"})],
        provider_options={"custom_fields": ["code"], "optOutLinkId": 7, "trackLinkUrl": "https://acme.example/t"},
    )
    created = await call(prov.create_campaign(campaign))
    assert created.id and created.recipient_count == 3
    assert created.status == CampaignStatus.SCHEDULED and created.raw_status == "0"
    assert created.provider_options == {"optOutLinkId": 7, "trackLinkUrl": "https://acme.example/t"}
    assert created.text == "Hi {name}, code {custom1}"  # vendor tokens read back
    [post] = [r for r in control.requests("/api/Campaigns", method="POST")]
    assert post.json()["contacts"][0] == {"phoneNumber": "07912345678", "name": "Ann", "custom1": "A1",
                                          "contactGroupId": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}

    fetched = await call(prov.get_campaign(created.id))
    assert fetched.start_at is not None and abs((fetched.start_at - start).total_seconds()) < 0.002
    contacts = await collect(prov.list_campaign_contacts(created.id, page_size=2))
    assert [(c.phone, c.name, c.fields) for c in contacts] == [
        (ANN, "Ann", {"custom1": "A1"}), (BOB, "Bob", {"custom1": "B2"}), (CAT, "Cat", {"custom1": "C3"})]
    assert len(control.requests(f"/api/Campaigns/{created.id}/Contacts")) == 2
    only_bob = await collect(prov.list_campaign_contacts(created.id, filters=Filter("name", "==*", "BOB")))
    assert [c.name for c in only_bob] == ["Bob"]
    listed = await collect(prov.list_campaigns(filters=[Filter("id", "==", created.id)]))
    assert [c.id for c in listed] == [created.id]

    for _ in range(300):  # the campaign starts, sends and completes
        state = await call(prov.get_campaign(created.id))
        if state.status == CampaignStatus.COMPLETED:
            break
        await asyncio.sleep(0.03)
    assert state.status == CampaignStatus.COMPLETED
    for _ in range(300):
        messages = await collect(prov.list_messages(filters=Filter("campaignId", "==", created.id), sorts="id"))
        if len(messages) == 3 and all(m.status.is_final for m in messages):
            break
        await asyncio.sleep(0.03)
    assert [m.message for m in messages] == ["Hi Ann, code A1", "Hi Bob, code B2", "Hi Cat, code C3"]
    assert [m.phone for m in messages] == [ANN, BOB, CAT]
    assert [m.status for m in messages] == [Status.DELIVERED, Status.DELIVERED, Status.UNDELIVERED]
    stats = await call(prov.statistics(campaign_id=created.id, page_size=2))
    assert (stats.total, stats.delivered, stats.undelivered) == (3, 2, 1)
    assert stats.cost == Decimal("0.105")

    # update (REST verb), read back
    later = Campaign(text="Later {name}", sender="ACME", start_at=utcnow() + timedelta(days=1),
                     contacts=[Contact(phone=ANN, name="Ann")])
    pending = await call(prov.create_campaign(later, ignore_invalid_phone_numbers=False))
    changed = pending.model_copy(update={"text": "Changed {name}", "sender": "ACME2",
                                         "provider_options": {"trackLinkUrl": "https://x.example"}})
    await call(prov.update_campaign(changed))
    again = await call(prov.get_campaign(pending.id))
    assert (again.text, again.sender, again.provider_options) == ("Changed {name}", "ACME2",
                                                                  {"trackLinkUrl": "https://x.example"})
    assert again.status == CampaignStatus.SCHEDULED
    # delete (REST verb)
    await call(prov.delete_campaign(pending.id))
    with pytest.raises(ResourceNotFound):
        await call(prov.get_campaign(pending.id))
    with pytest.raises(ResourceNotFound):
        await call(prov.update_campaign(changed))
    with pytest.raises(ResourceNotFound):
        await call(prov.delete_campaign(pending.id))

    # validation: per-contact errors, then the same campaign with invalid numbers ignored
    mixed = Campaign(text="x", sender="ACME", contacts=[Contact(phone=ANN), Contact(phone="12345"),
                                                        Contact(phone="+4412"), Contact(phone=BOB)])
    with pytest.raises(CampaignRejected) as info:
        await call(prov.create_campaign(mixed))
    assert [(c.index, c.phone, c.field) for c in info.value.contacts] == [
        (1, "12345", "phoneNumber"), (2, "+4412", "phoneNumber")]
    assert "not a valid phone number" in info.value.contacts[0].reason
    lenient = await call(prov.create_campaign(mixed, ignore_invalid_phone_numbers=True))
    assert lenient.recipient_count == 2


def test_campaign_operations_sync(emulator: tuple[str, Any]) -> None:
    url, _ = emulator
    with gateway(url) as gw:
        t = gw.tenant(TENANT)

        async def call(op: Operation[Any]) -> Any:
            return t.run("dm", op)

        async def collect(paged: Paged[Any]) -> list[Any]:
            return list(t.iterate("dm", paged))

        prov = t.provider("dm")
        assert isinstance(prov, CampaignsApiProvider)
        asyncio.run(campaign_scenario(prov, call, collect, EmulatorControl(url)))


def test_campaign_operations_async(emulator: tuple[str, Any]) -> None:
    url, _ = emulator

    async def go() -> None:
        async with agateway(url) as gw:
            t = gw.tenant(TENANT)

            async def collect(paged: Paged[Any]) -> list[Any]:
                return [item async for item in t.iterate("dm", paged)]

            prov = t.provider("dm")
            assert isinstance(prov, CampaignsApiProvider)
            await campaign_scenario(prov, lambda op: t.run("dm", op), collect, EmulatorControl(url))

    asyncio.run(go())


def test_documented_post_verbs_for_update_and_delete(emulator: tuple[str, Any]) -> None:
    url, _ = emulator
    control = EmulatorControl(url)
    with gateway(url, write_verbs="documented") as gw:
        t = gw.tenant(TENANT)
        prov = t.provider("dm")
        created = t.run("dm", prov.create_campaign(Campaign(
            text="Hi", sender="ACME", start_at=utcnow() + timedelta(days=1), contacts=[Contact(phone=ANN)])))
        t.run("dm", prov.update_campaign(created.model_copy(update={"text": "Updated"})))
        assert t.run("dm", prov.get_campaign(created.id)).text == "Updated"
        t.run("dm", prov.delete_campaign(created.id))
        with pytest.raises(ResourceNotFound):
            t.run("dm", prov.get_campaign(created.id))
    methods = [(r.method, r.path) for r in control.requests(f"/api/Campaigns/{created.id}")
               if r.method != "GET"]
    assert methods == [("POST", f"/api/Campaigns/{created.id}")] * 2


def test_listing_sorts_and_filters_against_emulator(serve_fast: Callable[[Any], str]) -> None:
    url = serve_fast(create_app(seed_campaigns=30))
    with gateway(url) as gw:
        t = gw.tenant(TENANT)
        prov = t.provider("dm")
        newest = list(t.iterate("dm", prov.list_campaigns(sorts=[Sort("startDateTime", descending=True)],
                                                          page_size=7)))
        assert len(newest) == 30
        assert [c.start_at for c in newest] == sorted((c.start_at for c in newest), reverse=True)
        completed = list(t.iterate("dm", prov.list_campaigns(filters=Filter("status", "==", 5))))
        assert completed and all(c.status == CampaignStatus.COMPLETED for c in completed)
        sending_or_paused = list(t.iterate("dm", prov.list_campaigns(filters=Filter("status", "==", [1, 3]))))
        assert {c.raw_status for c in sending_or_paused} == {"1", "3"}
        text = list(t.iterate("dm", prov.list_campaigns(filters=[Filter(("message", "sender"), "@=*", "campaign 1"),
                                                                 Filter("recipientCount", ">=", 2)])))
        assert {c.text for c in text} == {"Seeded campaign 1"} | {f"Seeded campaign 1{i}" for i in range(10)}


def test_listing_survives_a_503_page(serve_fast: Callable[[Any], str]) -> None:
    url = serve_fast(create_app(seed_campaigns=25))
    control = EmulatorControl(url)
    control.fault(kind="status", status=503, retry_after=0, path="/api/Campaigns", method="GET", count=1)
    with gateway(url) as gw:
        t = gw.tenant(TENANT)
        assert len(list(t.iterate("dm", t.provider("dm").list_campaigns(page_size=10)))) == 25
    assert len(control.requests("/api/Campaigns")) == 4  # 3 pages + 1 retry


# ------------------------------------------------- 4,274 campaigns, walked lazily


def test_4274_campaigns_walk_lazily_sync(serve_fast: Callable[[Any], str]) -> None:
    url = serve_fast(create_app(seed_campaigns=4274))
    control = EmulatorControl(url)
    with gateway(url) as gw:
        t = gw.tenant(TENANT)
        items = t.iterate("dm", t.provider("dm").list_campaigns(page_size=10))
        first = [next(items) for _ in range(15)]
        assert len({c.id for c in first}) == 15
        assert len(control.requests("/api/Campaigns")) == 2  # pages 1 and 2 only
        count = 15 + sum(1 for _ in items)
    assert count == 4274
    assert len(control.requests("/api/Campaigns")) == 428


def test_4274_campaigns_walk_lazily_async(serve_fast: Callable[[Any], str]) -> None:
    url = serve_fast(create_app(seed_campaigns=4274))
    control = EmulatorControl(url)

    async def go() -> tuple[int, int]:
        async with agateway(url) as gw:
            t = gw.tenant(TENANT)
            items: AsyncIterator[Campaign] = t.iterate("dm", t.provider("dm").list_campaigns(page_size=10))
            count = 0
            after_15 = -1
            async for _ in items:
                count += 1
                if count == 15:
                    after_15 = len(control.requests("/api/Campaigns"))
            return count, after_15

    count, after_15 = asyncio.run(go())
    assert (count, after_15) == (4274, 2)


# ----------------------------------------------------------------- webhooks


def test_a_burst_of_callbacks_is_posted_a_few_at_a_time_and_all_arrive(serve_fast: Callable[[Any], str]) -> None:
    """A campaign's worth of delivery reports falls due within a moment: the emulator posts at
    most ``CALLBACK_CONCURRENCY`` at once and every one arrives. (They all waited in httpx's
    connection pool before, whose cost grows with its queue: under a sandbox campaign the
    emulator spent its CPU there, answered sends after the senders' timeouts and dropped every
    callback.)"""
    from smsgate.emulation import CALLBACK_CONCURRENCY

    in_flight = peak = 0
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.05)  # a webhook app writing to its store
            received.append(await request.body())
        finally:
            in_flight -= 1
        return Response(status_code=200)

    hook_url = serve_fast(Starlette(routes=[Route("/hooks/dm", hook, methods=["POST"])]))
    url = serve_fast(create_app(delivery_delay=1.0, webhook_url=hook_url + "/hooks/dm?token=tok-123"))
    numbers = [f"+4479111{i:05d}" for i in range(120)]

    async def burst() -> None:
        async with agateway(url, webhook_token="tok-123") as gw:
            results = await gw.tenant(TENANT).send_many(numbers, "burst", concurrency=64)
            assert all(r.provider_message_id for r in results)

    asyncio.run(burst())
    wait_until(lambda: len(received) >= 2 * len(numbers), "a Sent and a final callback per message", limit=30)
    assert 1 < peak <= CALLBACK_CONCURRENCY, peak


def test_delivery_webhooks_ingested(serve_fast: Callable[[Any], str]) -> None:
    received: list[tuple[dict[str, str], bytes, str]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body(), str(request.url)))
        return Response(status_code=200)

    hook_url = serve_fast(Starlette(routes=[Route("/hooks/dm", hook, methods=["POST"])]))
    url = serve_fast(create_app(delivery_delay=0.15, webhook_url=hook_url + "/hooks/dm?token=tok-123"))
    control = EmulatorControl(url)
    with gateway(url, webhook_token="tok-123") as gw:
        t = gw.tenant(TENANT)
        good = t.send(ANN, "hooked")
        bad = t.send(CAT, "hooked")
        wait_until(lambda: len(received) >= 4, "four callbacks")
        for headers, body, full_url in received:
            query = urlsplit(full_url).query
            reports = gw.ingest(TENANT, "dm", {**headers, "X-Smsgate-Query": query}, body)
            assert len(reports) == 1
        assert t.get(good.message_id).status == Status.DELIVERED  # no lookup: the webhooks did it
        assert t.get(bad.message_id).status == Status.UNDELIVERED
        assert [e.status for e in t.get(good.message_id).history][-2:] == [Status.SENT, Status.DELIVERED]
        # a callback without the token is refused
        from smsgate_campaigns_api import WebhookTokenRejected

        with pytest.raises(WebhookTokenRejected):
            gw.ingest(TENANT, "dm", {}, received[0][1])
        # dropped callbacks: the emulator stays silent, status lookup still works
        control.fault(kind="drop_callbacks", count=None)
        before = len(received)
        quiet = t.send(BOB, "no hooks")
        wait_until(lambda: t.status(quiet.message_id).status.is_final, "lookup")
        time.sleep(0.2)
        assert len(received) == before
