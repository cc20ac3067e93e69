"""End-to-end: every broadcast operation over real loopback HTTP against the emulator, sync and async."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate.config import Settings, TenantConfig
from smsgate.errors import (
    AuthFailed,
    DownloadRefused,
    DownloadTooLarge,
    RequestRejected,
    ResourceNotFound,
    UnknownOutcome,
    Unsupported,
)
from smsgate.gateway import AsyncGateway, Gateway
from smsgate.models import Attachment, Location, OutboundMessage, SendResult, Status
from smsgate.plugins import PluginManager
from smsgate.provider import Capabilities, Operation, Provider, ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing.emulator import EmulatorControl, emulator_app
from smsgate.testing.server import LiveServer
from smsgate.transport import AsyncDriver, SyncDriver
from smsgate_broadcast import BroadcastProvider
from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS, create_app, vendor_state

T = TypeVar("T")
Runner = Callable[[Operation[Any]], Any]
JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg body" * 4


# ---------------------------------------------------------------- servers and runners
@pytest.fixture(scope="module")
def fast() -> Iterator[tuple[str, Any]]:
    """An emulator whose numbers leave `pending` at the first look (delivery_delay=0)."""
    app = create_app(delivery_delay=0.0)
    server = LiveServer(app).start()
    yield server.url, app
    server.stop()


@pytest.fixture(scope="module")
def slow() -> Iterator[str]:
    """An emulator whose numbers stay `pending` for an hour."""
    server = LiveServer(create_app(delivery_delay=3600.0)).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    """A third-party web server hosting an image (an attachment given by URL)."""
    async def image(request: Request) -> Response:
        return Response(JPEG, media_type="image/jpeg")

    server = LiveServer(Starlette(routes=[Route("/img/shop.jpg", image)])).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """Drive an operation with the sync or the async driver."""
    if request.param == "sync":
        client = httpx.Client(timeout=10)
        yield SyncDriver(client).run
        client.close()
    else:
        loop = asyncio.new_event_loop()

        async def make_client() -> httpx.AsyncClient:
            return httpx.AsyncClient(timeout=10)

        aclient = loop.run_until_complete(make_client())
        driver = AsyncDriver(aclient)

        def run_async(op: Operation[Any]) -> Any:
            return loop.run_until_complete(driver.run(op))

        yield run_async
        loop.run_until_complete(aclient.aclose())
        loop.close()


def provider(url: str, creds: dict[str, str] | None = None, **options: Any) -> BroadcastProvider:
    return BroadcastProvider(ProviderSettings(plugin="broadcast", base_url=url,
                                              credentials=creds or SANDBOX_CREDENTIALS, options=options))


def msg(to: str, text: str = "hello", **kw: Any) -> OutboundMessage:
    return OutboundMessage(to=to, text=text, message_id=f"m{to}", **kw)


# ---------------------------------------------------------------- broadcasts
def test_broadcast_create_get_list_update_delete(fast: tuple[str, Any], run: Runner) -> None:
    url, _ = fast
    p = provider(url)
    made = run(p.create_broadcast(["+2348179803743", "+2349048988059"], "New Test Broadcasts text",
                                  location=Location(name="optional", lat=6.556452, lng=3.2774487),
                                  contact_id="64a00ec7c5e487d95dcb0d5e"))
    assert made.status == "sending" and made.sent == made.pending == made.failed == ()
    assert made.to == ("2348179803743", "2349048988059") and len(made.id) == 24
    got = run(p.get_broadcast(made.id))
    assert got.id == made.id and got.location == Location(name="optional", lat=6.556452, lng=3.2774487)
    assert got.sent == ("2348179803743",) and got.failed == ("2349048988059",) and got.status == "completed"
    assert made.id in {b.id for b in run(p.list_broadcasts())}
    updated = run(p.update_broadcast(made.id, text="Changed text", to=["+2348179803743", "+2348031112222"]))
    assert updated.text == "Changed text" and updated.to == ("2348179803743", "2348031112222")
    assert updated.location is not None  # fields not sent are kept
    assert "2348031112222" in run(p.get_broadcast(made.id)).sent
    run(p.delete_broadcast(made.id))
    with pytest.raises(ResourceNotFound, match="Broadcast not found"):
        run(p.get_broadcast(made.id))
    assert made.id not in {b.id for b in run(p.list_broadcasts())}


def test_numbers_stay_pending_then_resolve(slow: str, fast: tuple[str, Any], run: Runner) -> None:
    p = provider(slow)
    result = run(p.send(msg("+2348031234567")))
    assert result.status == Status.SUBMITTED and result.raw_status == "sending"
    report = run(p.status(result))
    assert (report.status, report.raw_status) == (Status.SUBMITTED, "pending")
    q = provider(fast[0])
    ok, bad = run(q.send_many([msg("+2348031234567"), msg("+2348031234569")]))
    assert ok.batch_id == bad.batch_id
    assert run(q.status(ok)).status == Status.SENT
    assert run(q.status(bad)).status == Status.FAILED
    reports = run(q.broadcast_reports(ok.batch_id or ""))
    assert {(r.to, r.status) for r in reports} == {("+2348031234567", Status.SENT), ("+2348031234569", Status.FAILED)}


# ---------------------------------------------------------------- attachments
def test_attachment_upload_list_get_delete(fast: tuple[str, Any], run: Runner) -> None:
    p = provider(fast[0])
    up = run(p.upload_attachment(JPEG, "shop.jpg"))
    assert up.data_uri == "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    assert up.attachment is not None and up.attachment.mimetype == "image/jpeg" and up.attachment.type == "jpeg"
    assert up.attachment.path == f"./public/attachments/{up.attachment.name}.jpeg"
    assert up.id in {a.id for a in run(p.list_attachments())}
    assert run(p.get_attachment(up.id or "")) == up.attachment
    run(p.delete_attachment(up.id or ""))
    with pytest.raises(ResourceNotFound, match="Attachment not found"):
        run(p.get_attachment(up.id or ""))
    bare = run(p.upload_attachment(b"%PDF-1.4", "terms.pdf", resolve_id=False))
    assert bare.id is None and bare.data_uri.startswith("data:application/pdf;base64,")


def test_send_with_attachment_by_id_url_and_data_uri(fast: tuple[str, Any], files: str, run: Runner) -> None:
    url, app = fast
    p = provider(url, attachment_private_hosts=True)  # the image server is on loopback: opted in
    by_id = run(p.upload_attachment(JPEG, "a.jpg")).id
    atts = [Attachment(provider_id=by_id), Attachment(url=f"{files}/img/shop.jpg"),
            Attachment(url="data:image/png;base64,iVBORw0KGgo=", filename="dot.png")]
    r1, r2 = run(p.send_many([msg("+2348031230001", "pics", attachments=atts),
                              msg("+2348031230002", "pics", attachments=atts)]))
    assert r1.batch_id == r2.batch_id and r1.status == Status.SUBMITTED
    record = run(p.get_broadcast(r1.batch_id or ""))
    assert record.attachments[0] == by_id and len(record.attachments) == 3
    stored = vendor_state(app).attachments
    assert stored[record.attachments[1]][1] == JPEG  # downloaded and uploaded once, for both numbers
    assert stored[record.attachments[2]][0]["mimetype"] == "image/png"
    with pytest.raises(RequestRejected, match="Attachment not found"):
        run(p.send(msg("+2348031230003", attachments=[Attachment(provider_id="000000000000000000000000")])))


def test_url_attachment_on_a_private_host_is_refused_by_default(fast: tuple[str, Any], files: str,
                                                                  run: Runner) -> None:
    """Without the explicit opt-in, a loopback image server is never contacted, and nothing
    reaches the vendor."""
    url, _ = fast
    control = EmulatorControl(url)
    control.reset()
    att = [Attachment(url=f"{files}/img/shop.jpg")]
    with pytest.raises(DownloadRefused, match=r"'127\.0\.0\.1' has the address 127\.0\.0\.1, which is not public"):
        run(provider(url).send(msg("+2348031230004", "pic", attachments=att)))
    assert control.requests("/api/v1/attachment") == [] and control.requests("/api/v1/broadcast") == []
    with pytest.raises(DownloadTooLarge, match=rf"{files}/img/shop\.jpg refused: .*cap of 4 bytes"):
        run(provider(url, attachment_private_hosts=True, attachment_max_bytes=4).send(
            msg("+2348031230004", "pic", attachments=att)))
    assert control.requests("/api/v1/attachment", "POST") == []


# ---------------------------------------------------------------- send_many at scale
def test_1000_numbers_one_broadcast(fast: tuple[str, Any], run: Runner) -> None:
    """The adapter sends what it is given in one request (the gateway batches to ``max_batch``)."""
    url, _ = fast
    control = EmulatorControl(url)
    control.reset()
    numbers = [f"+23480{i:08d}" for i in range(1000)]
    p = provider(url)
    results: list[SendResult] = run(p.send_many([msg(n, "big news") for n in numbers]))
    posts = control.requests("/api/v1/broadcast", method="POST")
    assert len(posts) == 1
    assert [r.to for r in results] == numbers
    assert all(r.status == Status.SUBMITTED for r in results)
    assert len({r.provider_message_id for r in results}) == 1000
    (bid,) = {r.batch_id for r in results}
    outcome = {rep.to or "": rep.status for rep in run(p.broadcast_reports(bid or ""))}
    assert outcome == {n: Status.FAILED if n.endswith("9") else Status.SENT for n in numbers}


def _gateway_settings(url: str, **options: Any) -> Settings:
    wa = ProviderSettings(plugin="broadcast", base_url=url, credentials=SANDBOX_CREDENTIALS, options=options)
    return Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG", providers={"wa": wa})})


def _plugins(*classes: type[Provider]) -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    for cls in classes:
        pm.add_provider(cls)
    return pm


def test_gateway_send_many_1000_sync(fast: tuple[str, Any]) -> None:
    url, _ = fast
    control = EmulatorControl(url)
    control.reset()
    numbers = [f"080{i:08d}" for i in range(1000)]
    with Gateway(_gateway_settings(url), store=MemoryStore(), plugins=_plugins(BroadcastProvider)) as gw:
        t = gw.tenant("t")
        results = t.send_many(numbers, "gateway news")
        assert len(control.requests("/api/v1/broadcast", method="POST")) == 1
        assert [r.to for r in results] == [t.normalize(n) for n in numbers]
        assert all(r.ok and r.provider == "wa" for r in results)
        assert t.status(results[1].message_id).status == Status.SENT
        assert t.status(results[9].message_id).status == Status.FAILED


def test_gateway_send_many_1000_async(fast: tuple[str, Any]) -> None:
    url, _ = fast
    control = EmulatorControl(url)
    control.reset()
    numbers = [f"+2348{i:09d}" for i in range(1000)]

    async def go() -> None:
        async with AsyncGateway(_gateway_settings(url, max_batch=250), store=MemoryStore(),
                                plugins=_plugins(BroadcastProvider)) as gw:
            t = gw.tenant("t")
            results = await t.send_many(numbers, "async news")
            assert [r.to for r in results] == numbers and all(r.ok for r in results)
            assert (await t.status(results[3].message_id)).status == Status.SENT
            assert (await t.status(results[19].message_id)).status == Status.FAILED

    asyncio.run(go())
    assert len(control.requests("/api/v1/broadcast", method="POST")) == math.ceil(1000 / 250)


# ---------------------------------------------------------------- media routing through the gateway
class PlainTextProvider(Provider):
    """A text-only vendor for the routing test: POST /sms {"to", "text"} -> {"id"}."""

    name = "plaintext"
    capabilities = Capabilities()

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        response = yield from self.call_ok(self.request("POST", "/sms", json={"to": msg.to, "text": msg.text}))
        return SendResult(to=msg.to, status=Status.SUBMITTED, provider_message_id=self.json(response)["id"])


def plaintext_emulator() -> Any:
    count = iter(range(1, 10**6))

    async def sms(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"id": f"txt-{next(count)}", "to": body["to"]})

    return emulator_app(Starlette(routes=[Route("/sms", sms, methods=["POST"])]))


@pytest.fixture(scope="module")
def textonly() -> Iterator[str]:
    server = LiveServer(plaintext_emulator()).start()
    yield server.url
    server.stop()


def _mixed_settings(text_url: str, wa_url: str) -> Settings:
    providers = {
        "sms": ProviderSettings(plugin="plaintext", base_url=text_url),
        "wa": ProviderSettings(plugin="broadcast", base_url=wa_url, credentials=SANDBOX_CREDENTIALS),
    }
    only_text = {"sms": ProviderSettings(plugin="plaintext", base_url=text_url)}
    return Settings(store="memory://", tenants={
        "mixed": TenantConfig(default_region="NG", providers=providers),
        "textonly": TenantConfig(default_region="NG", providers=only_text),
    })


def test_gateway_routes_media_to_the_broadcast_provider_sync(textonly: str, fast: tuple[str, Any]) -> None:
    url = fast[0]
    control = EmulatorControl(textonly)
    control.reset()
    pic = [Attachment(url="data:image/png;base64,iVBORw0KGgo=")]
    with Gateway(_mixed_settings(textonly, url), store=MemoryStore(),
                 plugins=_plugins(PlainTextProvider, BroadcastProvider)) as gw:
        t = gw.tenant("mixed")
        assert t.send("08031234567", "plain text").provider == "sms"
        assert t.send("08031234567", "a picture", attachments=pic).provider == "wa"
        assert t.send("08031234567", "our shop", location=Location(name="Shop", lat=6.45, lng=3.39)).provider == "wa"
        many = t.send_many(["08031234561", "08031234562"], "pics", attachments=pic)
        assert [r.provider for r in many] == ["wa", "wa"] and many[0].batch_id == many[1].batch_id
        with pytest.raises(Unsupported, match="no provider on the route can carry media"):
            gw.tenant("textonly").send("08031234567", "a picture", attachments=pic)
    assert len(control.requests("/sms")) == 1  # only the plain text went to the text-only vendor


def test_gateway_routes_media_to_the_broadcast_provider_async(textonly: str, fast: tuple[str, Any]) -> None:
    url = fast[0]

    async def go() -> None:
        async with AsyncGateway(_mixed_settings(textonly, url), store=MemoryStore(),
                                plugins=_plugins(PlainTextProvider, BroadcastProvider)) as gw:
            t = gw.tenant("mixed")
            assert (await t.send("08031234567", "plain")).provider == "sms"
            loc = Location(name="Shop", lat=6.45, lng=3.39)
            sent = await t.send("08031234567", "shop", location=loc)
            assert sent.provider == "wa"
            record = await t.status(sent.message_id)
            assert record.status == Status.SENT
            with pytest.raises(Unsupported, match="no provider on the route can carry location"):
                await gw.tenant("textonly").send("08031234567", "shop", location=loc)

    asyncio.run(go())


# ---------------------------------------------------------------- auth over the wire
def test_expired_session_is_renewed_once(fast: tuple[str, Any], run: Runner) -> None:
    url, app = fast
    control = EmulatorControl(url)
    control.reset()
    p = provider(url)
    run(p.list_broadcasts())
    vendor_state(app).revoke_tokens()
    run(p.list_attachments())
    paths = [(r.method, r.path) for r in control.requests()]
    assert paths == [("POST", "/api/v1/sessions"), ("GET", "/api/v1/broadcast"),
                     ("GET", "/api/v1/attachment"), ("POST", "/api/v1/sessions"), ("GET", "/api/v1/attachment")]
    hdrs = control.requests("/api/v1/attachment")[-1].headers
    assert hdrs["authorization"].startswith("Bearer eyJ") and hdrs["x-refresh"].startswith("eyJ")


def test_configured_account_token_and_bad_credentials(fast: tuple[str, Any], run: Runner) -> None:
    url, app = fast
    token = vendor_state(app).issue_token(SANDBOX_CREDENTIALS["email"])
    bot = {k: SANDBOX_CREDENTIALS[k] for k in ("session_id", "access_token")}
    p = provider(url, {**bot, "account_token": token})
    assert isinstance(run(p.list_attachments()), list)
    with pytest.raises(AuthFailed, match="Bearer"):
        run(provider(url, {**bot, "account_token": "eyJ-not-issued"}).list_attachments())
    with pytest.raises(AuthFailed, match="Invalid session_id or access_token") as info:
        run(provider(url, {**SANDBOX_CREDENTIALS, "access_token": "wrong-bot-token"}).list_broadcasts())
    assert "wrong-bot-token" not in f"{info.value} {info.value.body}"
    with pytest.raises(AuthFailed, match="Invalid email or password"):
        run(provider(url, {**SANDBOX_CREDENTIALS, "password": "nope-nope"}).list_broadcasts())


@pytest.mark.parametrize("where", ["body", "both", "query"])
def test_wrong_bot_credentials_are_refused_without_a_second_login(
    fast: tuple[str, Any], where: str, run: Runner
) -> None:
    url, _ = fast
    control = EmulatorControl(url)
    control.reset()
    p = provider(url, {**SANDBOX_CREDENTIALS, "access_token": "wrong-bot-token"}, credentials_in=where)
    with pytest.raises(AuthFailed, match="Invalid session_id or access_token"):
        run(p.send(msg("+2348031230202")))
    assert [(r.method, r.path) for r in control.requests()] == [
        ("POST", "/api/v1/sessions"), ("POST", "/api/v1/broadcast")]


@pytest.mark.parametrize("where", ["body", "query"])
def test_credentials_in_body_only_or_query_only(fast: tuple[str, Any], where: str, run: Runner) -> None:
    p = provider(fast[0], credentials_in=where)
    sent = run(p.send(msg("+2348031239990", attachments=[Attachment(url="data:image/gif;base64,R0lGODlh")])))
    assert sent.status == Status.SUBMITTED
    assert run(p.status(sent)).status == Status.SENT


@pytest.mark.parametrize("where", [None, "body", "both", "query"])
def test_no_secret_in_any_log_record_and_none_in_default_urls(
    fast: tuple[str, Any], where: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """A send (upload, listings, broadcast) and a status lookup through a Gateway with every logger at DEBUG.

    httpx logs every request's URL at INFO; smsgate's HttpxLogRedactor drops the query string
    from that line, so no mode leaks there. Proxies see the URL all the same: by default the
    bot credentials travel in the body only.
    """
    url, app = fast
    control = EmulatorControl(url)
    control.reset()
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    options = {} if where is None else {"credentials_in": where}
    pic = [Attachment(url="data:image/gif;base64,R0lGODlh")]
    with Gateway(_gateway_settings(url, **options), store=MemoryStore(), plugins=_plugins(BroadcastProvider)) as gw:
        t = gw.tenant("t")
        sent = t.send("08031234567", "log check", attachments=pic)
        assert sent.ok and sent.provider == "wa"
        assert t.status(sent.message_id).status == Status.SENT
    state = vendor_state(app)
    secrets = [*SANDBOX_CREDENTIALS.values(), *state.tokens, *state.refresh_tokens]
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert sum(line.startswith("HTTP Request:") for line in lines) >= 5  # the log was on
    for record in caplog.records:
        if record.name.startswith("uvicorn"):
            continue  # the emulator's server, i.e. the vendor's side (it logs the URLs it receives)
        dump = f"{record.getMessage()} {vars(record)!r}"
        assert not [s for s in secrets if s in dump], f"{record.name}: {record.getMessage()}"
    calls = [r for r in control.requests("/api/v1/") if r.path != "/api/v1/sessions"]
    assert len(calls) >= 5
    assert {"access_token=" in r.query or "session_id=" in r.query for r in calls} == {where in ("both", "query")}


# ---------------------------------------------------------------- faults
def test_faults_retries_and_unknown_outcome(fast: tuple[str, Any], run: Runner) -> None:
    url, app = fast
    control = EmulatorControl(url)
    control.reset()
    p = provider(url)
    sent = run(p.send(msg("+2348031230101")))
    control.fault(kind="status", status=500, path=f"/api/v1/broadcast/{sent.batch_id}", method="GET", count=1)
    assert run(p.status(sent)).status == Status.SENT  # a GET is safe to repeat after a 500
    before = len(vendor_state(app).attachments)
    control.fault(kind="status", status=500, path="/api/v1/attachment", method="POST", count=1, process=True)
    with pytest.raises(UnknownOutcome):
        run(p.upload_attachment(JPEG, "x.jpg", resolve_id=False))
    assert len(vendor_state(app).attachments) == before + 1  # it was stored: never blindly repeated
    assert len(control.requests("/api/v1/attachment", method="POST")) == 1
