"""Attacks, round 13: hostile or buggy vendors -- their delivery-report and inbound callbacks,
their answers to sends, and the pages their listings return to the status poller.

A vendor's listing whose cursor or ``next`` link leads back to a page already read (``A -> B ->
A``) must not keep the poller asking for ever; a callback that is forged, replayed, out of order,
malformed or enormous must be refused with a clear 4xx or applied right, losing nothing stored; a
bulk answer that is not what the contract expects (not JSON, an array, ids missing or repeated,
results short or long) must never have a message the vendor may have taken marked "not sent".

Every claim about what reached a vendor reads the vendor's own record of the requests it
received (a loopback server of the test's own, or ``EmulatorControl.requests``), never smsgate's log.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from smsgate.answers import MAX_ANSWER_BYTES
from smsgate.config import Settings, TenantConfig
from smsgate.errors import MalformedResponse, UnknownOutcome
from smsgate.gateway import AsyncGateway, Gateway
from smsgate.lifecycle import Status
from smsgate.models import OutboundMessage
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing.server import LiveServer
from smsgate.transport import SyncDriver
from smsgate_broadcast import BroadcastProvider
from smsgate_campaigns_api import CampaignsApiProvider
from smsgate_campaigns_api.emulator import SANDBOX_CREDENTIALS as CA_CREDENTIALS
from smsgate_colony import ColonyProvider
from smsgate_colony.emulator import SANDBOX_CREDENTIALS as COLONY_CREDENTIALS
from smsgate_squad import SquadProvider, SquadV1Provider
from smsgate_squad.emulator import SANDBOX_CREDENTIALS, SANDBOX_V1_CREDENTIALS, SANDBOX_V1_OPTIONS


class Vendor:
    """A loopback vendor of the test's own: each route answers what the test tells it, and
    every request it receives is recorded (method, path, query, body) before it answers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.handlers: dict[tuple[str, str], Callable[[Request, bytes], Response]] = {}
        self._lock = threading.Lock()

    def on(self, method: str, path: str, handler: Callable[[Request, bytes], Response]) -> None:
        self.handlers[(method, path)] = handler

    def hits(self, path: str) -> list[dict[str, str]]:
        """The query of every request the vendor received at ``path``."""
        with self._lock:
            return [q for _, p, q, _ in self.requests if p == path]

    def app(self) -> Starlette:
        async def any_route(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                self.requests.append((request.method, request.url.path, dict(request.query_params), body))
            handler = self.handlers.get((request.method, request.url.path))
            if handler is None:
                return JSONResponse({"message": "not found"}, status_code=404)
            return handler(request, body)

        return Starlette(routes=[Route("/{path:path}", any_route, methods=["GET", "POST", "PUT", "DELETE"])])


@pytest.fixture
def vendor() -> Iterator[tuple[Vendor, str]]:
    fake = Vendor()
    with LiveServer(fake.app()) as server:
        yield fake, server.url


def _squad_plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(SquadProvider)
    return pm


def _squad_v1_settings(url: str) -> Settings:
    return Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG", providers={
        "legacy": ProviderSettings(plugin="squad", base_url=url, credentials=dict(SANDBOX_V1_CREDENTIALS),
                                   sender="GTBank", options=dict(SANDBOX_V1_OPTIONS), timeout=2.0)})})


def _squad_v1_gateway(url: str) -> Gateway:
    return Gateway(_squad_v1_settings(url), store=MemoryStore(), plugins=_squad_plugins())


def _v1_item(number: str, status: str = "submitted") -> dict[str, Any]:
    return {"status": status, "id": 1, "transaction_id": "B1_000", "phonenumber": number, "message": "hi",
            "sender_id": "GTBank", "network": "MTN", "charge": "4", "created_at": "2026-01-01T00:00:00Z",
            "pages": 1, "message_type": "direct"}


# ----------------------------------------------------------------------------- 3. the poller's pages
def test_a_status_lookup_whose_cursors_lead_back_stops_instead_of_asking_for_ever(
        vendor: tuple[Vendor, str]) -> None:
    """Squad v1's ``by-params`` pages are walked by ``pageInfo.nextCursor``; the adapter only
    refused a cursor equal to the current one. A vendor whose cursors cycle (``B -> C -> B``, a
    paging bug at the vendor) kept the status lookup asking for ever: the poller hammered the
    vendor and never returned. The walk must stop at a page it has already asked for."""
    fake, url = vendor
    fake.on("POST", "/service/message",
            lambda r, b: JSONResponse({"status": "SUCCESS", "message": "success",
                                       "data": {"sent": 1, "batch_id": "B1"}}))
    limit = 60  # the vendor breaks the cycle itself after this many pages, so the old code ends

    def by_params(request: Request, body: bytes) -> Response:
        served = len(fake.hits("/service/message/by-params"))
        cursor = request.query_params.get("cursor")
        nxt = {None: "B", "B": "C", "C": "B"}[cursor]
        more = served < limit
        # other recipients' messages only: the one asked about is never found, so every page is read
        return JSONResponse({"status": "SUCCESS", "message": "success", "data": {
            "items": [_v1_item("08061230009")],
            "pageInfo": {"hasNextPage": more, "nextCursor": nxt if more else None, "prevCursor": None}}})

    fake.on("GET", "/service/message/by-params", by_params)
    with _squad_v1_gateway(url) as gw:
        tenant = gw.tenant("t")
        sent = tenant.send("08061230002", "hi")
        with pytest.raises(MalformedResponse, match="pages loop"):
            tenant.status(sent.message_id)
        summary = tenant.sync_statuses(older_than=0)  # the poller: one failed lookup, tried again later
        record = tenant.status(sent.message_id, refresh=False)
    pages = fake.hits("/service/message/by-params")
    assert len(pages) <= 6, f"two lookups read {len(pages)} pages of a 3-page cycle"
    assert summary.looked_up == 1 and summary.errors == 1
    assert record.status is Status.SUBMITTED and record.provider_message_id  # nothing lost


def test_walking_a_listing_whose_pages_lead_back_stops_sync_and_async(vendor: tuple[Vendor, str]) -> None:
    """The drivers' ``iterate`` (``tenant.iterate``) walks a listing page by page too: a cycle of
    cursors made it yield the same items for ever (a ``list(...)`` of it filled memory)."""
    fake, url = vendor

    def by_params(request: Request, body: bytes) -> Response:
        served = len(fake.hits("/service/message/by-params"))
        cursor = request.query_params.get("cursor")
        more = served < 40
        return JSONResponse({"status": "SUCCESS", "message": "success", "data": {
            "items": [_v1_item("08061230009")],
            "pageInfo": {"hasNextPage": more, "nextCursor": {None: "B", "B": "C", "C": "B"}[cursor] if more else None}}})

    fake.on("GET", "/service/message/by-params", by_params)
    with _squad_v1_gateway(url) as gw:
        tenant = gw.tenant("t")
        prov = tenant.provider("legacy")
        assert isinstance(prov, SquadV1Provider)
        with pytest.raises(MalformedResponse, match="pages loop"):
            list(tenant.iterate("legacy", prov.message_status("B1")))
    # 3 for the cycle of cursors; 2 since a page repeating an earlier page's items also stops a walk
    assert len(fake.hits("/service/message/by-params")) <= 3
    before = len(fake.hits("/service/message/by-params"))

    async def walk() -> None:
        async with AsyncGateway(_squad_v1_settings(url), store=MemoryStore(),
                                plugins=_squad_plugins()) as agw:
            atenant = agw.tenant("t")
            aprov = atenant.provider("legacy")
            assert isinstance(aprov, SquadV1Provider)
            with pytest.raises(MalformedResponse, match="pages loop"):
                [item async for item in atenant.iterate("legacy", aprov.message_status("B1"))]

    asyncio.run(walk())
    assert len(fake.hits("/service/message/by-params")) - before <= 3


# ----------------------------------------------------------------------------- 2. hostile answers to sends
_HEAD = b'{"status":"SUCCESS","message":"success","data":{"sent":1,"batch_id":"B1","pad":"'


class Stream:
    """An answer body the vendor streams: ``chunks`` chunks of ``size`` bytes, ``pause`` seconds
    apart, after :data:`_HEAD`, then the JSON's end; how much it wrote before the client hung up."""

    def __init__(self, chunks: int, size: int, pause: float = 0.0) -> None:
        self.chunks, self.size, self.pause = chunks, size, pause
        self.written = 0
        self.finished = False

    def __call__(self, request: Request, body: bytes) -> Response:
        async def gen() -> Any:
            yield _HEAD
            chunk = b"x" * self.size
            for _ in range(self.chunks):
                await asyncio.sleep(self.pause)  # lets the server see the client hang up
                self.written += len(chunk)
                yield chunk
            self.finished = True
            yield b'"}}'

        return StreamingResponse(gen(), media_type="application/json")


def _loopback_in_flight() -> int:
    """The most bytes loopback TCP can hold between the vendor's writes and the client's reads:
    the largest send and receive buffers the kernel lets a socket grow to (Linux's
    ``tcp_wmem``/``tcp_rmem`` maxima, which autotuning reaches when the reader lags, as it does
    on a loaded machine; 16 MiB where they cannot be read)."""
    try:
        return sum(int(open(f"/proc/sys/net/ipv4/tcp_{k}mem").read().split()[2]) for k in ("r", "w"))
    except (OSError, ValueError, IndexError):
        return 16 << 20


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_enormous_answer_to_a_send_is_cut_off_and_the_message_is_unknown(
        vendor: tuple[Vendor, str], mode: str) -> None:
    """A vendor answering a send with a body of no end (here some 90 MiB, then it stops so the old
    code ends) had the whole of it read into memory (a 64 MiB answer took ~380 MB): a buggy or
    hostile vendor could take the sending process's memory. The answer is read up to
    :data:`smsgate.transport.MAX_ANSWER_BYTES`; past it the message is ``unknown`` (the vendor
    took the request: never sent again), never ``failed``/"not sent"."""
    fake, url = vendor
    # What the vendor may have written when the client hangs up: the cap, what the kernel's
    # buffers hold in between (a CI run's 43 MiB against the old flat 40 MiB bound was the
    # receive window grown under load, not the client reading on) and 8 MiB of slack; the
    # answer is 16 MiB longer than that, so a client reading it all fails both checks.
    bound = MAX_ANSWER_BYTES + _loopback_in_flight() + (8 << 20)
    stream = Stream(chunks=(bound + (16 << 20)) // (64 << 10), size=64 << 10)
    fake.on("POST", "/service/message", stream)
    if mode == "sync":
        with _squad_v1_gateway(url) as gw:
            with pytest.raises(MalformedResponse, match="larger than"):
                gw.tenant("t").send("08061230002", "hi")
            (record,) = gw.tenant("t").messages()
    else:
        async def go() -> Any:
            async with AsyncGateway(_squad_v1_settings(url), store=MemoryStore(), plugins=_squad_plugins()) as agw:
                with pytest.raises(MalformedResponse, match="larger than"):
                    await agw.tenant("t").send("08061230002", "hi")
                (logged,) = await agw.tenant("t").messages()
                return logged

        record = asyncio.run(go())
    assert not stream.finished and stream.written < bound, f"the client read {stream.written >> 20} MiB"
    assert len(fake.hits("/service/message")) == 1  # sent once, never again
    assert record.status is Status.UNKNOWN



@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_answer_trickled_past_twice_the_timeout_ends_the_send_unknown(
        vendor: tuple[Vendor, str], mode: str) -> None:
    """httpx times each read, not the whole answer: a vendor sending its body a few bytes every
    0.2 s (timeout 1 s) held the send for as long as it liked (here 6 s, then it stops so the old
    code ends), past the 2 x timeout that the limits' lease of a request in flight and the
    "never received" settle time count on. The body must have arrived within
    :data:`smsgate.transport.ANSWER_TIME_FACTOR` x the read timeout; past it the try ends as a
    read timeout: ``unknown``, sent once."""
    fake, url = vendor
    stream = Stream(chunks=30, size=8, pause=0.2)
    fake.on("POST", "/service/message", stream)
    settings = _squad_v1_settings(url)
    settings.tenants["t"].providers["legacy"].timeout = 1.0
    started = time.monotonic()
    if mode == "sync":
        with Gateway(settings, store=MemoryStore(), plugins=_squad_plugins()) as gw:
            with pytest.raises(UnknownOutcome):
                gw.tenant("t").send("08061230002", "hi")
            (record,) = gw.tenant("t").messages()
    else:
        async def go() -> Any:
            async with AsyncGateway(settings, store=MemoryStore(), plugins=_squad_plugins()) as agw:
                with pytest.raises(UnknownOutcome):
                    await agw.tenant("t").send("08061230002", "hi")
                (logged,) = await agw.tenant("t").messages()
                return logged

        record = asyncio.run(go())
    took = time.monotonic() - started
    assert took < 4.0, f"the send took {took:.1f} s with a 1 s timeout"
    assert len(fake.hits("/service/message")) == 1  # sent once, never again
    assert record.status is Status.UNKNOWN


def _squad_v2_failover(url: str, backup: str) -> Settings:
    prov = {"plugin": "squad", "credentials": dict(SANDBOX_CREDENTIALS), "sender": "SMSGATE", "timeout": 2.0,
            "max_retries": 0}
    return Settings(store="memory://", tenants={"t": TenantConfig(
        default_region="NG", providers={"sq": ProviderSettings(base_url=url, **prov),
                                        "backup": ProviderSettings(base_url=backup, **prov)},
        routes=[{"providers": ["sq", "backup"]}])})


def _instant_ok(request: Request, body: bytes) -> Response:
    """Squad v2's documented answer: every message listed under ``sent``."""
    numbers = [m["phone_number"] for m in json.loads(body)["messages"]]
    return JSONResponse({"status": 200, "success": True, "message": "Success", "data": {
        "success": True, "message": "submitted successfully", "data": {
            "batch_id": "B2", "sent": [{"phone_number": n, "status": "SENT", "cost": 5.41,
                                        "transaction_id": f"B2_{i:03}"} for i, n in enumerate(numbers)],
            "errors": [], "total_cost": 5.41, "currency": "NGN"}}})


def test_a_bulk_answer_saying_success_false_over_messages_it_sent_never_fails_them_over() -> None:
    """Squad v2 answered a bulk send ``success: false`` at the top of its envelope (one number
    refused) while ``data.data.sent`` lists the messages it took. The adapter raised
    ``RequestRejected`` on the envelope's flag before reading ``sent``: the gateway failed the
    whole batch over to the backup provider, and the recipients Squad had texted were texted
    twice (both vendors' records). A provider never raises after the vendor accepted something:
    the listed messages are ``sent`` by Squad, the refused one ``rejected``, none sent again."""
    first, second = Vendor(), Vendor()

    def partial(request: Request, body: bytes) -> Response:
        numbers = [m["phone_number"] for m in json.loads(body)["messages"]]
        return JSONResponse({"status": 200, "success": False, "message": "1 message failed", "data": {
            "success": False, "message": "1 message failed", "data": {
                "batch_id": "B1", "sent": [{"phone_number": n, "status": "SENT", "cost": 5.41,
                                            "transaction_id": f"B1_{i:03}"} for i, n in enumerate(numbers[:-1])],
                "errors": [{"phone_number": numbers[-1], "message": "invalid number"}],
                "total_cost": 10.82, "currency": "NGN"}}})

    first.on("POST", "/sms/send/instant", partial)
    second.on("POST", "/sms/send/instant", _instant_ok)
    numbers = ["08061230001", "08061230002", "08061230003"]
    with LiveServer(first.app()) as a, LiveServer(second.app()) as b, \
            Gateway(_squad_v2_failover(a.url, b.url), store=MemoryStore(), plugins=_squad_plugins()) as gw:
        results = gw.tenant("t").send_many([{"to": n, "text": "hi"} for n in numbers])
    texted_first = [m["phone_number"] for _, _, _, body in first.requests for m in json.loads(body)["messages"]]
    texted_second = [m["phone_number"] for _, _, _, body in second.requests for m in json.loads(body)["messages"]]
    assert texted_first == numbers
    twice = set(numbers[:-1]) & set(texted_second)
    assert not twice, f"texted by both vendors: {sorted(twice)}"
    assert [r.status for r in results] == [Status.SENT, Status.SENT, Status.REJECTED]  # as Squad said
    assert [r.provider for r in results[:2]] == ["sq", "sq"]


def test_a_v1_answer_with_a_failure_status_that_says_it_sent_the_message_never_fails_it_over() -> None:
    """The same on Squad v1: ``{"status": "FAILED", "data": {"sent": 1, "batch_id": ...}}`` (a
    vendor whose envelope and data disagree) was a refusal, and the message went to the backup
    provider as well: two SMS. The answer says it sent the message: ``submitted`` at Squad."""
    first, second = Vendor(), Vendor()
    first.on("POST", "/service/message", lambda r, b: JSONResponse(
        {"status": "FAILED", "message": "delivery report service unavailable", "data": {"sent": 1, "batch_id": "V1B"}}))
    second.on("POST", "/service/message", lambda r, b: JSONResponse(
        {"status": "SUCCESS", "message": "success", "data": {"sent": 1, "batch_id": "V1C"}}))
    prov = {"plugin": "squad", "credentials": dict(SANDBOX_V1_CREDENTIALS), "sender": "GTBank",
            "options": dict(SANDBOX_V1_OPTIONS), "timeout": 2.0, "max_retries": 0}
    with LiveServer(first.app()) as a, LiveServer(second.app()) as b:
        settings = Settings(store="memory://", tenants={"t": TenantConfig(
            default_region="NG", providers={"sq": ProviderSettings(base_url=a.url, **prov),
                                            "backup": ProviderSettings(base_url=b.url, **prov)},
            routes=[{"providers": ["sq", "backup"]}])})
        with Gateway(settings, store=MemoryStore(), plugins=_squad_plugins()) as gw:
            result = gw.tenant("t").send("08061230002", "hi")
    assert len(first.requests) == 1
    assert second.requests == [], "texted by both vendors"
    assert result.status is Status.SUBMITTED and result.provider == "sq" and result.provider_message_id == "V1B"


def test_a_broadcast_created_under_a_status_false_envelope_is_never_sent_again() -> None:
    """WAABOT answered ``POST /broadcast`` with ``"status": false`` (some numbers are not on
    WhatsApp) while ``data`` is the broadcast it created, one number ``pending`` and one
    ``failed``. The adapter raised ``RequestRejected`` on the flag: the gateway sent the
    broadcast again through the backup, and the pending recipient got it twice (both vendors'
    records). A created broadcast is read whatever the envelope's flag says."""
    first, second = Vendor(), Vendor()

    def created(ok: bool) -> Callable[[Request, bytes], Response]:
        def answer(request: Request, body: bytes) -> Response:
            to = json.loads(body)["to"].split(",")
            return JSONResponse({"status": ok, "message": "Broadcast group created successfully!" if ok else
                                 "some numbers are not on WhatsApp", "data": {
                                     "_id": "64b000000000000000000001" if ok else "64b000000000000000000002",
                                     "client_id": "c1", "send_type": "individual", "to": ",".join(to),
                                     "message": {"text": "hi"}, "status": "sending", "sent": [],
                                     "pending": to if ok else to[:1], "failed": [] if ok else to[1:],
                                     "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
                                     "__v": 0}})
        return answer

    first.on("POST", "/api/v1/broadcast", created(False))
    second.on("POST", "/api/v1/broadcast", created(True))
    prov = {"plugin": "broadcast", "credentials": {"session_id": "s1", "access_token": "a1"}, "timeout": 2.0,
            "max_retries": 0}
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(BroadcastProvider)
    numbers = ["+2348061230001", "+2348061230002"]
    with LiveServer(first.app()) as a, LiveServer(second.app()) as b:
        settings = Settings(store="memory://", tenants={"t": TenantConfig(
            default_region="NG", providers={"wa": ProviderSettings(base_url=a.url, **prov),
                                            "backup": ProviderSettings(base_url=b.url, **prov)},
            routes=[{"providers": ["wa", "backup"]}])})
        with Gateway(settings, store=MemoryStore(), plugins=pm) as gw:
            results = gw.tenant("t").send_many([{"to": n, "text": "hi"} for n in numbers])
    assert len(first.requests) == 1
    texted_second = [n for _, _, _, body in second.requests for n in json.loads(body)["to"].split(",")]
    assert "2348061230001" not in texted_second, "the pending recipient was texted by both vendors"
    assert results[0].provider == "wa" and results[0].status is Status.SUBMITTED
    assert results[1].status is Status.FAILED  # WAABOT listed it as failed: its word, not re-sent


def test_a_created_sms_whose_answer_also_carries_errors_is_never_sent_again() -> None:
    """Campaigns REST answered ``POST /api/SMSMessages`` with a 201 whose object carries both
    the new SMS's ``id`` and an ``errors`` entry (a warning about the sender). The adapter
    looked at ``errors`` first and raised ``RequestRejected``: the gateway sent the message
    again through the backup (both vendors' records). A 201 naming the new id created it."""
    first, second = Vendor(), Vendor()
    first.on("POST", "/api/SMSMessages", lambda r, b: JSONResponse(
        {"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "errors": {"sender": ["sender not registered; sent as default"]}},
        status_code=201))
    second.on("POST", "/api/SMSMessages", lambda r, b: JSONResponse("1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                                                                    status_code=201))
    prov = {"plugin": "campaigns_api", "credentials": dict(CA_CREDENTIALS), "sender": "Shop", "timeout": 2.0,
            "max_retries": 0}
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(CampaignsApiProvider)
    with LiveServer(first.app()) as a, LiveServer(second.app()) as b:
        settings = Settings(store="memory://", tenants={"t": TenantConfig(
            default_region="GB", providers={"dm": ProviderSettings(base_url=a.url, **prov),
                                            "backup": ProviderSettings(base_url=b.url, **prov)},
            routes=[{"providers": ["dm", "backup"]}])})
        with Gateway(settings, store=MemoryStore(), plugins=pm) as gw:
            result = gw.tenant("t").send("+447911123456", "hi")
    assert len(first.requests) == 1
    assert second.requests == [], "texted by both vendors"
    assert result.provider == "dm" and result.provider_message_id == "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_a_sent_lookup_whose_filter_the_vendor_ignores_never_finds_another_recipients_text(
        vendor: tuple[Vendor, str]) -> None:
    """Campaign recovery asks Campaigns REST whether it received a message through its SMS
    listing filtered ``phoneNumber==...`` (``find_sent``). The .NET Sieve library the vendor uses
    ignores a filter on a property it was not told to filter by, silently: the listing is then
    the account's newest SMS, and the adapter took the first with the same text, another
    recipient's copy of the campaign text, as this recipient's. The recipient was called
    "received" (its id another SMS's) and never texted. Only an SMS to the recipient's own
    number is it."""
    fake, url = vendor
    other = {"newId": "9a9a9a9a-0000-4000-8000-000000000001", "id": 7, "phoneNumber": "07911000111",
             "status": 1, "message": "Sale today", "dateCreated": "2030-01-01T00:00:00Z", "smsCount": 1}
    fake.on("GET", "/api/SMSMessages", lambda r, b: JSONResponse(
        {"pageIndex": 1, "totalPages": 1, "totalRecords": 1, "items": [other]}))
    prov = CampaignsApiProvider(ProviderSettings(plugin="campaigns_api", base_url=url,
                                                 credentials=dict(CA_CREDENTIALS), sender="Shop"), "dm")
    msg = OutboundMessage(to="+447911123456", text="Sale today", message_id="m1", sender="Shop")
    with httpx.Client() as client:
        found = SyncDriver(client).run(prov.find_sent(msg, datetime(2029, 12, 31, tzinfo=timezone.utc)))
    (query,) = fake.hits("/api/SMSMessages")
    assert "phoneNumber" in query.get("filters", "")  # it asked for this number's SMS
    assert found is None, f"another recipient's SMS was taken for this one: {found}"
    own = {**other, "newId": "9a9a9a9a-0000-4000-8000-000000000002", "id": 8, "phoneNumber": "07911123456"}
    fake.on("GET", "/api/SMSMessages", lambda r, b: JSONResponse(
        {"pageIndex": 1, "totalPages": 1, "totalRecords": 2, "items": [other, own]}))
    with httpx.Client() as client:
        found = SyncDriver(client).run(prov.find_sent(msg, datetime(2029, 12, 31, tzinfo=timezone.utc)))
    assert found is not None and found.provider_message_id == own["newId"]  # its own SMS still is


def test_polling_inbound_replies_whose_next_links_lead_back_stops_and_keeps_what_it_read(
        vendor: tuple[Vendor, str]) -> None:
    """Colony has no inbound webhook: ``poll_inbound`` reads the whole collate message list,
    DRF pages linked by ``next``. The adapter refused a ``next`` naming the same page only; a
    vendor whose page 2 links back to page 1 (a paging bug) had the poll read and keep the same
    replies for ever (memory growing, the vendor hammered). The walk stops at the repeated page
    (a ``MalformedResponse``: nothing half-read is stored; the next poll tries again)."""
    fake, url = vendor
    fake.on("POST", "/oauth2/access_token/", lambda r, b: JSONResponse(
        {"access_token": "tok", "scope": "read", "expires_in": 86399, "refresh_token": "ref"}))

    def reply(i: int) -> dict[str, Any]:
        return {"id": i, "originator": f"2781555000{i}", "text": "STOP", "campaign": 1,
                "date_created": "2026-01-01T00:00:00Z"}

    def listing(request: Request, body: bytes) -> Response:
        served = len(fake.hits("/collate/campaigns/message/"))
        page = request.query_params.get("page", "1")
        nxt = None if served >= 40 else f"{url}/collate/campaigns/message/?page={'2' if page == '1' else '1'}"
        return JSONResponse({"count": 4, "next": nxt, "previous": None,
                             "results": [reply(1), reply(2)] if page == "1" else [reply(3), reply(4)]})

    fake.on("GET", "/collate/campaigns/message/", listing)
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(ColonyProvider)
    settings = Settings(store="memory://", tenants={"t": TenantConfig(default_region="ZA", providers={
        "colony": ProviderSettings(plugin="colony", base_url=url, credentials=dict(COLONY_CREDENTIALS),
                                   timeout=2.0)})})
    with Gateway(settings, store=MemoryStore(), plugins=pm) as gw:
        with pytest.raises(MalformedResponse, match="pages loop"):
            gw.tenant("t").poll_inbound("colony")
    assert len(fake.hits("/collate/campaigns/message/")) <= 3  # page 1 is first asked without ?page=1
