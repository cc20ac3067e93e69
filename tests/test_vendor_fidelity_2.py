"""Vendor fidelity, second round: the adapters against the vendors' documents, over loopback HTTP.

Each test names its source: FACTS.md (``/work/shared/providers/FACTS.md``, the project's research
notes: [DOC] vendor docs, [SEED] seed documents only, [INF] an inference the adapter must
tolerate), a seed document (``/work/shared/seeds/``) or the vendor's public docs. The emulators
run on loopback ports (``serve_app``); where a test needs an answer the emulator does not give
(a status the vendor may choose), a thin ASGI wrapper rewrites the real emulator's answer, so
the vendor side still acts as it would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import pytest
from starlette.responses import Response

from smsgate.config import Settings, TenantConfig
from smsgate.errors import AuthFailed, MalformedResponse
from smsgate.gateway import Gateway
from smsgate.models import OutboundMessage, Status
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate.transport import SyncDriver
from test_attack_13 import Vendor, vendor  # noqa: F401  (a fixture)
from test_attack_14 import _CAP, _send, _squad_answer, download_bomb, small_cap  # noqa: F401  (a fixture)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _answer_status(app: Any, path: str, status: int) -> ASGIApp:
    """``app`` with the status of its 2xx answers to ``path`` (a prefix) replaced by ``status``:
    the vendor acts as the emulator does, only the status line differs."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(path):
            await app(scope, receive, send)
            return

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                message = {**message, "status": status}
            await send(message)

        await app(scope, receive, rewrite)

    return wrapped


# ================================================================== Colony
# Seed 002 (FACTS.md §2.1): the single and the bulk send document the (empty) model ``{}`` and no
# status; FACTS.md §2 reads Colony as Django REST framework [INF, strong]. A DRF ``CreateAPIView``
# answers 201, a plain ``APIView`` (what an empty model ``{}`` suggests) 200: both are the
# documented answer, and neither carries a message id. FACTS.md's rule for [INF]: "emulator may
# choose, adapter must tolerate".
COLONY_NUMBERS = ("+27815854565", "+27825550123", "+27835550124")


def _colony_gateway(url: str, **options: Any) -> Gateway:
    from smsgate_colony import ColonyProvider
    from smsgate_colony.emulator import SANDBOX_CREDENTIALS

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(ColonyProvider)
    settings = Settings(store="memory://", tenants={"acme": TenantConfig(default_region="ZA", providers={
        "colony": ProviderSettings(plugin="colony", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                   options=options, max_retries=0)})})
    return Gateway(settings, plugins=pm)


def test_colony_send_answered_200_with_the_documented_empty_model_is_submitted(
        serve_app: Callable[[Any], str]) -> None:
    """``200 {}`` is the seed's model under DRF's other status: submitted, single and bulk, one
    request each (not ``unknown``, which would leave every send of such an account unresolved)."""
    from smsgate_colony.emulator import create_app

    app = create_app(delivery_delay=60.0)
    url = serve_app(_answer_status(app, "/contact/message/", 200))
    with _colony_gateway(url) as gw:
        tenant = gw.tenant("acme")
        one = tenant.send(COLONY_NUMBERS[0], "hello")
        many = tenant.send_many(list(COLONY_NUMBERS[1:]), "hello all")
        assert (one.status, one.raw_status) == (Status.SUBMITTED, "HTTP 200")
        assert [(r.status, r.raw_status) for r in many] == [(Status.SUBMITTED, "HTTP 200")] * 2
        assert {m.status for m in tenant.messages()} == {Status.SUBMITTED}
    assert len(app.vendor.sends) == 3  # the vendor did take each message, once


@pytest.mark.parametrize("status", [202, 204])
def test_colony_send_answered_with_an_undocumented_status_is_unknown(
        serve_app: Callable[[Any], str], status: int) -> None:
    """A status neither reading of the seed gives (202, or 204 without the model ``{}``) does not
    confirm the send: ``MalformedResponse`` naming the statuses expected, logged ``unknown``."""
    from smsgate_colony.emulator import create_app

    app = create_app(delivery_delay=60.0)
    url = serve_app(_answer_status(app, "/contact/message/", status))
    with _colony_gateway(url) as gw:
        with pytest.raises(MalformedResponse, match=r"expected HTTP 200 or 201 with a JSON object"):
            gw.tenant("acme").send(COLONY_NUMBERS[0], "hello")
        assert {m.status for m in gw.tenant("acme").messages()} == {Status.UNKNOWN}


# FACTS.md §2: the token answer of the password grant is ``{"access_token", "scope": "read",
# "expires_in": 86399, "refresh_token"}`` [DOC]; which scope an endpoint needs is not documented.
# django-oauth2-provider (the library behind that answer, [INF]) grants ``read`` unless ``write``
# is asked for, and DRF refuses a write with a read-only token: 403 "You do not have permission
# to perform this action." The emulator's ``write_scope=True`` enforces that reading.
def test_colony_token_without_write_scope_is_a_typed_error_naming_the_scope(
        serve_app: Callable[[Any], str]) -> None:
    from smsgate_colony import ColonyProvider
    from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app

    url = serve_app(create_app(delivery_delay=60.0, write_scope=True))
    provider = ColonyProvider(ProviderSettings(plugin="colony", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                               max_retries=0))
    msg = OutboundMessage(to=COLONY_NUMBERS[0], text="hello")
    with httpx.Client() as client, pytest.raises(AuthFailed) as info:
        SyncDriver(client).run(provider.send(msg))
    text = str(info.value)
    assert "POST /contact/message/send/" in text and "HTTP 403" in text
    assert "scope 'read'" in text and "'write'" in text and "options.scope" in text, text
    for secret in SANDBOX_CREDENTIALS.values():
        assert secret not in text
    # a read is allowed with the same token
    with httpx.Client() as client:
        assert SyncDriver(client).run(provider.list_optouts()) is not None

    # asking for the scope (options.scope, sent with the password grant) lets the send through
    provider = ColonyProvider(ProviderSettings(plugin="colony", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                               options={"scope": "read write"}, max_retries=0))
    with httpx.Client() as client:
        result = SyncDriver(client).run(provider.send(msg))
    assert result.status == Status.SUBMITTED


# ================================================================== error texts naming URL paths
# A provider error names its request as ``METHOD /path`` (never the query: it may carry
# credentials). A path may hold a phone number (Squad v1's ``/message/by-phone/{phone}`` [DOC],
# a generic_http vendor's ``/send/tel:{to}``) or an id the caller gave: the number is masked as
# every other error and log masks numbers (smsgate.errors.mask_phone), in the vendor's text too.
PHONE = "+2348031234567"
MASKED = "+234*******567"


def _no_number(exc: BaseException, *forms: str) -> str:
    text = f"{exc} {exc!r} {getattr(exc, 'body', '')}"
    for form in (PHONE, PHONE[1:], "2348031234567", *forms):
        assert form not in text, text
    return text


def test_squad_v1_by_phone_error_masks_the_number_in_its_path(serve_app: Callable[[Any], str]) -> None:
    """Squad v1 ``GET /service/message/by-phone/{phone}`` (seed 001) with the local number."""
    from smsgate.emulation import EmulatorControl
    from smsgate.errors import MalformedResponse, ProviderUnavailable
    from smsgate_squad import SquadProvider
    from smsgate_squad.emulator import SANDBOX_V1_CREDENTIALS, SANDBOX_V1_OPTIONS, create_app

    url = serve_app(create_app())
    ctl = EmulatorControl(url)
    provider = SquadProvider(ProviderSettings(plugin="squad", base_url=url, credentials=dict(SANDBOX_V1_CREDENTIALS),
                                              sender="GTBank", options=dict(SANDBOX_V1_OPTIONS), max_retries=0))
    ctl.fault(kind="status", status=500, path="/service/message/by-phone/", count=4)  # a GET: retried
    with httpx.Client() as client, pytest.raises(ProviderUnavailable) as info:
        list(SyncDriver(client).iterate(provider.messages_by_phone(PHONE)))
    text = _no_number(info.value, "08031234567")
    assert "GET /service/message/by-phone/0803****567" in text, text
    ctl.fault(kind="malformed", path="/service/message/by-phone/", count=1)
    with httpx.Client() as client, pytest.raises(MalformedResponse) as bad:
        list(SyncDriver(client).iterate(provider.messages_by_phone(PHONE)))
    assert "/service/message/by-phone/0803****567" in _no_number(bad.value, "08031234567")


@pytest.mark.parametrize("template", ["/v1/send/tel:{to}", "/v1/send/{to}"])
def test_generic_http_error_masks_the_number_in_its_path(serve_app: Callable[[Any], str], template: str) -> None:
    """``tel:`` then the number, percent-encoded on the wire (``tel:%2B234...``): masked in the error."""
    from smsgate.emulation import EmulatorControl
    from smsgate.errors import RequestRejected
    from smsgate_generic_http import GenericHttpProvider
    from smsgate_generic_http.emulator import SANDBOX_CREDENTIALS, SANDBOX_OPTIONS, create_app

    options: dict[str, Any] = {**SANDBOX_OPTIONS, "request": {**SANDBOX_OPTIONS["request"], "url": template}}
    url = serve_app(create_app(options))
    EmulatorControl(url).fault(kind="status", status=400, path="/v1/send/", count=1)
    provider = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url=url, sender="ACME",
                                                    credentials=dict(SANDBOX_CREDENTIALS), options=options,
                                                    max_retries=0))
    with httpx.Client() as client, pytest.raises(RequestRejected) as info:
        SyncDriver(client).run(provider.send(OutboundMessage(to=PHONE, text="hello", message_id="m1")))
    text = _no_number(info.value)
    assert MASKED in text and "POST /v1/send/" in text, text
    for secret in SANDBOX_CREDENTIALS.values():
        assert secret not in text


def test_generic_http_status_lookup_error_masks_an_id_holding_a_number(serve_app: Callable[[Any], str]) -> None:
    """An id in the path (the status lookup's ``/v1/messages/{id}``) that is a number: masked."""
    from smsgate.errors import ResourceNotFound
    from smsgate.models import SendResult
    from smsgate_generic_http import GenericHttpProvider
    from smsgate_generic_http.emulator import SANDBOX_CREDENTIALS, SANDBOX_OPTIONS, create_app

    url = serve_app(create_app())
    provider = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url=url, sender="ACME",
                                                    credentials=dict(SANDBOX_CREDENTIALS),
                                                    options=SANDBOX_OPTIONS, max_retries=0))
    sent = SendResult(message_id="m1", to=PHONE, status=Status.SUBMITTED, provider="generic_http",
                      provider_message_id=PHONE)
    with httpx.Client() as client, pytest.raises(ResourceNotFound) as info:
        SyncDriver(client).run(provider.status(sent))
    assert MASKED in _no_number(info.value)


def test_campaigns_api_error_masks_a_number_in_its_path(serve_app: Callable[[Any], str]) -> None:
    """Dynamic Messaging ``GET /api/SMSMessages/{id}`` [DOC] asked with an id that is a number."""
    from smsgate.errors import ProviderError
    from smsgate_campaigns_api import CampaignsApiProvider
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    url = serve_app(create_app(delivery_delay=60.0))
    provider = CampaignsApiProvider(ProviderSettings(plugin="campaigns_api", base_url=url, sender="DynamicM",
                                                     credentials={"api_key": SANDBOX_API_KEY}, max_retries=0))
    with httpx.Client() as client, pytest.raises(ProviderError) as info:
        SyncDriver(client).run(provider.get_message(PHONE[1:]))
    text = _no_number(info.value)
    assert "GET /api/SMSMessages/2348******567" in text, text
    assert SANDBOX_API_KEY not in text


def test_broadcast_error_masks_a_number_in_its_path(serve_app: Callable[[Any], str]) -> None:
    """WAABOT ``GET /contact/{id}`` [DOC] asked with a WhatsApp id holding the number."""
    from smsgate.errors import ProviderError
    from smsgate_broadcast import BroadcastProvider
    from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS, create_app

    url = serve_app(create_app())
    provider = BroadcastProvider(ProviderSettings(plugin="broadcast", base_url=url + "/api/v1",
                                                  credentials=dict(SANDBOX_CREDENTIALS), max_retries=0))
    with httpx.Client() as client, pytest.raises(ProviderError) as info:
        SyncDriver(client).run(provider.get_contact(PHONE[1:] + "@s.whatsapp.net"))
    text = _no_number(info.value)
    assert "2348******567@s.whatsapp.net" in text, text
    for secret in SANDBOX_CREDENTIALS.values():
        assert secret not in text


def test_colony_error_masks_a_number_in_its_path(serve_app: Callable[[Any], str]) -> None:
    """Colony's contact detail path with an id that is a number (its ``where`` and the core's)."""
    from smsgate.emulation import EmulatorControl
    from smsgate.errors import MalformedResponse, ResourceNotFound
    from smsgate_colony import ColonyProvider
    from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app

    url = serve_app(create_app(delivery_delay=60.0))
    provider = ColonyProvider(ProviderSettings(plugin="colony", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                               max_retries=0))
    with httpx.Client() as client, pytest.raises(ResourceNotFound) as info:
        SyncDriver(client).run(provider.api.get_contact(2348031234567))
    assert "/contact/contactlists/contact/2348******567/" in _no_number(info.value)
    EmulatorControl(url).fault(kind="malformed", path="/contact/contactlists/contact/", count=1)
    with httpx.Client() as client, pytest.raises(MalformedResponse) as bad:
        SyncDriver(client).run(provider.api.get_contact(2348031234567))
    assert "2348******567" in _no_number(bad.value)


def test_vendor_text_repeating_the_path_number_is_masked_too(serve_app: Callable[[Any], str]) -> None:
    """A vendor whose refusal repeats the number of its path (message and body excerpt)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from smsgate.errors import RequestRejected
    from smsgate_generic_http import GenericHttpProvider
    from smsgate_generic_http.emulator import SANDBOX_CREDENTIALS, SANDBOX_OPTIONS

    async def refuse(request: Request) -> JSONResponse:
        number = request.path_params["to"]
        return JSONResponse({"error": {"message": f"number {number} is barred"}}, status_code=400)

    url = serve_app(Starlette(routes=[Route("/v1/send/{to}", refuse, methods=["POST"])]))
    options: dict[str, Any] = {**SANDBOX_OPTIONS, "request": {**SANDBOX_OPTIONS["request"], "url": "/v1/send/{to}"}}
    provider = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url=url, sender="ACME",
                                                    credentials=dict(SANDBOX_CREDENTIALS), options=options,
                                                    max_retries=0))
    with httpx.Client() as client, pytest.raises(RequestRejected) as info:
        SyncDriver(client).run(provider.send(OutboundMessage(to=PHONE, text="hello", message_id="m1")))
    text = _no_number(info.value)
    assert f"number {MASKED} is barred" in text and MASKED in (info.value.body or ""), text


@pytest.mark.parametrize(("raw", "shown"), [
    ("/send/tel%3A%2B2348031234567", "/send/tel%3A%2B234*******567"),
    ("/send/tel%3A2348031234567", "/send/tel%3A2348******567"),
    ("/send/%2B2348031234567", "/send/%2B234*******567"),
    ("/by-phone/08031234567", "/by-phone/0803****567"),
    ("/b/20250522081746187_541_EAZMC2DZ", "/b/20250522081746187_541_EAZMC2DZ"),  # a Squad batch id
    ("/c/9405c9d2-2411-42af-8ec7-88ffbc70ea61", "/c/9405c9d2-2411-42af-8ec7-88ffbc70ea61"),  # a UUID
    ("/broadcast/64ac509d05a7cc2b8c2bd9ab", "/broadcast/64ac509d05a7cc2b8c2bd9ab"),  # a WAABOT ObjectId
])
def test_httpx_request_log_masks_numbers_as_errors_do(raw: str, shown: str) -> None:
    """One rule (smsgate.errors.mask_path) for the httpx request log line and for error texts."""
    import logging

    from smsgate.errors import mask_path
    from smsgate.transport import HttpxLogRedactor

    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
                               ("POST", f"https://vendor.example{raw}?api_key=s3cret", "HTTP/1.1", 400, "Bad"), None)
    assert HttpxLogRedactor().filter(record)
    assert str(record.args[1]) == f"https://vendor.example{shown}"  # type: ignore[index]
    assert mask_path(raw) == shown


# ================================================================== decoded size of brotli / zstd answers
# httpx decodes ``Content-Encoding: br`` when brotli (or brotlicffi) is installed and ``zstd`` when
# zstandard is (``httpx[brotli,zstd]``), and asks for both in Accept-Encoding then. The answer cap
# (smsgate.answers.MAX_ANSWER_BYTES) held gzip and deflate to it once decoded; a brotli or zstd
# answer was decoded whole: 102 bytes of brotli are 64 MiB of zeros (a 32 MiB cap: 32 GiB from
# ~50 KiB). These run with the real decoders (requirements-dev installs them).


def _bomb(encoding: str, body: bytes) -> bytes:
    if encoding == "br":
        brotli = pytest.importorskip("brotli")
        return bytes(brotli.compress(body, quality=5))
    zstandard = pytest.importorskip("zstandard")
    return bytes(zstandard.ZstdCompressor(level=3).compress(body))


@pytest.mark.parametrize("encoding", ["br", "zstd"])
@pytest.mark.parametrize("mode", ["sync", "aiohttp", "httpx-async"])
def test_a_brotli_or_zstd_answer_past_the_cap_once_decoded_is_cut_off(
        vendor: tuple[Vendor, str], small_cap: None, mode: str, encoding: str) -> None:  # noqa: F811  (the fixtures)
    """64 x the cap once decoded: ``MalformedResponse`` ("larger than"), the message ``unknown``,
    sent once (the vendor took it), and no more than a decoding step past the cap held to find out."""
    import tracemalloc

    from smsgate.lifecycle import Status as LifecycleStatus

    fake, url = vendor
    wire = _bomb(encoding, _squad_answer(64 * _CAP))  # read whole: 64 MiB, twice over (bytes joined)
    assert len(wire) < _CAP // 8
    fake.on("POST", "/service/message", lambda request, body: Response(
        wire, headers={"Content-Type": "application/json", "Content-Encoding": encoding}))
    tracemalloc.start()
    try:
        error, record = _send(url, mode)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, MalformedResponse) and "larger than" in str(error), repr(error)
    assert len(fake.hits("/service/message")) == 1
    assert record.status is LifecycleStatus.UNKNOWN
    # one decoding step past the cap at most: brotli's is its 16 MiB window (DECODE_STEPS)
    assert peak < 40 * _CAP, f"{peak >> 20} MiB held for a {_CAP >> 20} MiB cap"


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip"])
@pytest.mark.parametrize("mode", ["sync", "aiohttp", "httpx-async"])
def test_a_brotli_or_zstd_answer_under_the_cap_is_read(
        vendor: tuple[Vendor, str], small_cap: None, mode: str, encoding: str) -> None:  # noqa: F811  (the fixtures)
    """The guard: a compressed answer just under the cap once decoded is read (and submitted)."""
    import gzip as gzip_

    from smsgate.lifecycle import Status as LifecycleStatus

    fake, url = vendor
    body = _squad_answer(_CAP - 200)
    wire = gzip_.compress(body) if encoding == "gzip" else _bomb(encoding, body)
    fake.on("POST", "/service/message", lambda request, _: Response(
        wire, headers={"Content-Type": "application/json", "Content-Encoding": encoding}))
    error, record = _send(url, mode)
    assert error is None, repr(error)
    assert record.status is LifecycleStatus.SUBMITTED


@pytest.mark.parametrize("encoding", ["br", "zstd"])
@pytest.mark.parametrize("mode", ["sync", "async-httpx", "async-aiohttp"])
def test_a_download_of_a_brotli_or_zstd_bomb_stops_at_its_cap(
        vendor: tuple[Vendor, str], mode: str, encoding: str) -> None:  # noqa: F811  (the fixture)
    """A media download (``max_bytes`` 1 MiB) of 64 MiB packed into ~100 bytes (brotli): stopped
    with ``DownloadTooLarge``, having held no more than a decoding step (16 MiB for brotli) past it."""
    fake, url = vendor
    peak = download_bomb(fake, url, mode, _bomb(encoding, bytes(64 << 20)), encoding)
    assert peak < 40 << 20, f"the download held {peak >> 20} MiB for a 1 MiB cap"


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip"])
def test_a_compressed_answer_reads_as_httpx_reads_it(serve_app: Callable[[Any], str], encoding: str) -> None:
    """The driver's bounded read leaves the answer as httpx's own ``read()`` does: decoded content,
    the headers as they came (``Content-Encoding`` included)."""
    import gzip as gzip_

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    from smsgate.transport import read_answer

    body = b'{"status": "SUCCESS", "data": {"batch_id": "B1", "pad": "%s"}}' % (b"x" * 5000)
    wire = gzip_.compress(body) if encoding == "gzip" else _bomb(encoding, body)

    async def answer(request: Request) -> Response:
        return Response(wire, headers={"Content-Type": "application/json", "Content-Encoding": encoding})

    url = serve_app(Starlette(routes=[Route("/x", answer)]))
    with httpx.Client() as client:
        ours = read_answer(client, httpx.Request("GET", url + "/x"))
        theirs = client.get(url + "/x")
    assert ours.content == theirs.content == body
    assert ours.headers.multi_items() == theirs.headers.multi_items()
    assert ours.headers["content-encoding"] == encoding and ours.json() == theirs.json()


def test_an_answer_compressed_with_brotli_under_gzip_is_refused_not_decoded(
        vendor: tuple[Vendor, str]) -> None:  # noqa: F811  (the fixture)
    """Two layers with brotli or zstd in them cannot be held to the cap step by step (one byte of
    gzip is a KiB of brotli, up to GiB decoded): a ``MalformedResponse`` naming the encodings, the
    message ``unknown`` (the vendor took it)."""
    import gzip as gzip_

    from smsgate.lifecycle import Status as LifecycleStatus

    fake, url = vendor
    wire = gzip_.compress(_bomb("br", _squad_answer(100)))
    fake.on("POST", "/service/message", lambda request, body: Response(
        wire, headers={"Content-Type": "application/json", "Content-Encoding": "br, gzip"}))
    for mode in ("sync", "aiohttp", "httpx-async"):
        error, record = _send(url, mode)
        assert isinstance(error, MalformedResponse) and "'br, gzip' is not read" in str(error), repr(error)
        assert record.status is LifecycleStatus.UNKNOWN
    assert len(fake.hits("/service/message")) == 3  # once per mode: never sent twice


# ================================================================== documented sample ids
# Dynamic Messaging, github.com/DynamicMessagingLTD/UserDocumenation, UserDocs/content/Web_Hooks/
# _index.md, "SMS Call Json Example", verbatim (FACTS.md §3.4): ``Id`` is a JSON integer,
# ``phoneNumberId`` a string, keys in mixed case (``clientId``, ``Id``).
DM_WEBHOOK_SAMPLE = b"""
{
    "webHookType": 1,
    "data":{
        "clientId":0,
        "Id":0,
        "phoneNumberId":"",
        "phoneNumber":"",
        "parts":0,
        "dateCreated":"2023-06-27T03:04:01.374Z",
        "lastUpdated":"2023-06-27T03:04:01.374Z",
        "price": 0.0,
        "statusCode":0
    }
}
"""


def test_dm_webhook_sample_is_read_with_its_ids_as_documented() -> None:
    """The sample as printed parses (its placeholder ``Id`` 0 read as the id, the empty
    ``phoneNumberId`` skipped); the same shape with values: the GUID wins, else the integer."""
    import json

    from smsgate_campaigns_api import CampaignsApiProvider

    provider = CampaignsApiProvider(ProviderSettings(plugin="campaigns_api",
                                                     credentials={"api_key": "k", "webhook_token": "t"}))
    (report,) = provider.parse_webhook({"x-webhook-token": "t"}, DM_WEBHOOK_SAMPLE)
    assert (report.provider_message_id, report.status, report.to) == ("0", Status.SENT, None)
    sample = json.loads(DM_WEBHOOK_SAMPLE)
    sample["data"].update({"Id": 4711, "phoneNumberId": "cbd21c29-a5d0-4103-ab25-fa70c220b239",
                           "phoneNumber": "447912345678", "statusCode": 1})
    (report,) = provider.parse_webhook({"x-webhook-token": "t"}, json.dumps(sample).encode())
    assert (report.provider_message_id, report.status, report.to) == (
        "cbd21c29-a5d0-4103-ab25-fa70c220b239", Status.DELIVERED, "+447912345678")
    sample["data"]["phoneNumberId"] = ""
    (report,) = provider.parse_webhook({"x-webhook-token": "t"}, json.dumps(sample).encode())
    assert report.provider_message_id == "4711"  # the integer, as a string id


def test_dm_webhook_in_the_documented_shape_updates_the_sent_message_over_http(
        serve_app: Callable[[Any], str]) -> None:
    """A send through the emulator, then its callback in the sample's shape and types posted to
    the webhook app over loopback: matched, the message delivered."""
    import json

    from smsgate.webhooks import webhook_app
    from smsgate_campaigns_api import CampaignsApiProvider
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(CampaignsApiProvider)
    url = serve_app(create_app(delivery_delay=60.0))
    settings = Settings(store="memory://", tenants={"acme": TenantConfig(default_region="GB", providers={
        "dm": ProviderSettings(plugin="campaigns_api", base_url=url, sender="ACME",
                               credentials={"api_key": SANDBOX_API_KEY, "webhook_token": "tok-1"})})})
    with Gateway(settings, plugins=pm) as gw:
        sent = gw.tenant("acme").send("+447912345678", "hello")
        hooks = serve_app(webhook_app(gw))
        sample = json.loads(DM_WEBHOOK_SAMPLE)
        sample["data"].update({"clientId": 1, "Id": 1, "phoneNumberId": sent.provider_message_id,
                               "phoneNumber": "447912345678", "parts": 1, "statusCode": 1})
        answer = httpx.post(f"{hooks}/acme/dm?token=tok-1", content=json.dumps(sample).encode())
        assert answer.status_code == 200 and answer.json()["matched"] == 1, answer.text
        assert gw.tenant("acme").get(sent.message_id).status is Status.DELIVERED


# WAABOT, seed 004 (docs/.../broadcasts-messages.md): the ``POST /broadcast`` answer verbatim. Ids
# are 24-hex Mongo ObjectIds (``_id``, ``client_id``, ``contactId``); a neutral message id is
# ``<broadcast _id>:<number>``. WAABOT documents no webhook (FACTS.md §4.4): none is parsed.
WAABOT_BROADCAST = {
    "status": True, "message": "Broadcast group created successfully!",
    "data": {"client_id": "649ff7e0e6046617c8aeabf0", "send_type": "individual",
             "to": "2348179803743,2349048988056",
             "message": {"text": "New Test Broadcasts text",
                         "attachments": ["64ac311eee05a1a2c27fbdb5", "64ac265749240c35b96cb78c"],
                         "location": {"name": "optional", "lat": "6.556452", "lng": "3.2774487"},
                         "contactId": "64a00ec7c5e487d95dcb0d5e"},
             "status": "sending", "sent": [], "pending": [], "failed": [], "_id": "64ac509d05a7cc2b8c2bd9ab",
             "createdAt": "2023-07-10T18:40:29.784Z", "updatedAt": "2023-07-10T18:40:29.784Z", "__v": 0}}


def test_waabot_broadcast_sample_ids_are_kept_as_documented() -> None:
    from smsgate.transport import run_with_responses
    from smsgate_broadcast import BroadcastProvider

    creds = {"session_id": "sess-1", "access_token": "bot-1", "email": "ops@example.ng", "password": "pw"}
    provider = BroadcastProvider(ProviderSettings(plugin="broadcast", credentials=creds))
    login = {"accessToken": "eyJ-access", "refreshToken": "eyJ-refresh"}
    results = run_with_responses(
        provider.send_many([OutboundMessage(to="+2348179803743", text="New Test Broadcasts text", message_id="a"),
                            OutboundMessage(to="+2349048988056", text="New Test Broadcasts text", message_id="b")]),
        [httpx.Response(200, json=login), httpx.Response(200, json=WAABOT_BROADCAST)])
    assert [r.provider_message_id for r in results] == [
        "64ac509d05a7cc2b8c2bd9ab:2348179803743", "64ac509d05a7cc2b8c2bd9ab:2349048988056"]
    assert {r.batch_id for r in results} == {"64ac509d05a7cc2b8c2bd9ab"}
    later = {**WAABOT_BROADCAST, "data": {**WAABOT_BROADCAST["data"], "sent": ["2348179803743"]}}
    report = run_with_responses(provider.status(results[0]), [httpx.Response(200, json=later)])
    assert report.provider_message_id == "64ac509d05a7cc2b8c2bd9ab:2348179803743"
