"""Attack 14: what landed on main in the hour before 22:25 UTC, 2026-12-05.

- the answer bounds (:mod:`smsgate.answers`, ``transport.read_answer`` / ``aread_answer``,
  ``aio._bounded_body``): a compressed answer (``Content-Encoding: gzip`` / ``deflate``) was
  counted against :data:`~smsgate.answers.MAX_ANSWER_BYTES` as it arrived, before decoding, and
  then decoded whole into memory (a decompression bomb: a few KiB on the wire, 1000 x that in
  memory); a download (``max_bytes``) counted decoded bytes, but only after httpx decoded each raw
  chunk whole (``gzip, gzip``: ~1 KiB to 64 MiB in one step). A guard: the connection of a
  cut-off answer is not reused for the next send;
- paging: a vendor whose pages are all empty yet each names a new next cursor was walked for
  ever (``Paged.after`` catches a cursor that leads back, not one that counts up);
- the fence at the pooled connection (``transport._Trace``): a runner's fence that is slow
  there (a renewal) held the idle pooled connection it was handed; a vendor closing idle
  connections meanwhile made a request that never arrived end ``unknown``;

Every delivery claim is read from the loopback vendor's own request record.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import zlib
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from smsgate import answers, transport
from smsgate.errors import MalformedResponse
from smsgate.gateway import AsyncGateway, Gateway
from smsgate.lifecycle import Status
from smsgate.store.memory import MemoryStore
from test_attack_13 import Vendor, _squad_plugins, _squad_v1_settings, vendor  # noqa: F401  (the fixture)
from test_fence_pool import _Vendor

_CAP = 1 << 20  # the answer cap in these tests (32 MiB on main): a bomb 20 x past it stays small


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers, "MAX_ANSWER_BYTES", _CAP)
    monkeypatch.setattr(transport, "MAX_ANSWER_BYTES", _CAP)
    import smsgate.aio as aio

    monkeypatch.setattr(aio, "MAX_ANSWER_BYTES", _CAP)


def _squad_answer(pad: int) -> bytes:
    return json.dumps({"status": "SUCCESS", "message": "success",
                       "data": {"sent": 1, "batch_id": "B1", "pad": "x" * pad}}).encode()


def _compressed(encoding: str, body: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "raw deflate":  # sent as "deflate": httpx falls back to raw deflate data
        raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return raw.compress(body) + raw.flush()
    assert encoding == "gzip, gzip"
    return gzip.compress(gzip.compress(body))


def _send(url: str, mode: str) -> tuple[BaseException | None, Any]:
    """Send one SMS through a gateway in ``mode``; what it raised and the message's record."""
    settings = _squad_v1_settings(url)
    if mode == "sync":
        with Gateway(settings, store=MemoryStore(), plugins=_squad_plugins()) as gw:
            try:
                gw.tenant("t").send("08061230002", "hi")
                error: BaseException | None = None
            except Exception as exc:
                error = exc
            (record,) = gw.tenant("t").messages()
            return error, record

    async def go() -> tuple[BaseException | None, Any]:
        client = httpx.AsyncClient() if mode == "httpx-async" else None
        try:
            async with AsyncGateway(settings, store=MemoryStore(), plugins=_squad_plugins(),
                                    http_client=client) as agw:
                try:
                    await agw.tenant("t").send("08061230002", "hi")
                    error = None
                except Exception as exc:
                    error = exc
                (logged,) = await agw.tenant("t").messages()
                return error, logged
        finally:
            if client is not None:
                await client.aclose()

    return asyncio.run(go())


# ----------------------------------------------------------------------------- 2. the answer bounds
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate", "gzip, gzip"])
@pytest.mark.parametrize("mode", ["sync", "aiohttp", "httpx-async"])
def test_a_compressed_answer_past_the_cap_once_decoded_is_cut_off_and_the_message_is_unknown(
        vendor: tuple[Vendor, str], small_cap: None, mode: str, encoding: str) -> None:  # noqa: F811  (the fixture)
    """A vendor answering a send with a gzip body of ~20 KiB that decodes to 20 x the cap was
    read whole: the cap counted the bytes on the wire, httpx then decoded all of it into memory
    (with the real 32 MiB cap, a 32 MiB bomb of zeros is ~32 GiB). The cap holds for the decoded
    answer too: past it the message is ``unknown``, sent once."""
    fake, url = vendor
    wire = _compressed(encoding, _squad_answer(20 * _CAP))
    assert len(wire) < _CAP // 8
    fake.on("POST", "/service/message", lambda request, body: Response(
        wire, headers={"Content-Type": "application/json", "Content-Encoding": encoding.removeprefix("raw ")}))
    error, record = _send(url, mode)
    assert isinstance(error, MalformedResponse) and "larger than" in str(error), repr(error)
    assert len(fake.hits("/service/message")) == 1  # sent once, never again
    assert record.status is Status.UNKNOWN


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
@pytest.mark.parametrize("mode", ["sync", "aiohttp", "httpx-async"])
def test_a_compressed_answer_under_the_cap_once_decoded_is_read(
        vendor: tuple[Vendor, str], small_cap: None, mode: str, encoding: str) -> None:  # noqa: F811  (the fixture)
    """The guard of the one above: a compressed answer just under the cap decoded is read."""
    fake, url = vendor
    wire = _compressed(encoding, _squad_answer(_CAP - 200))
    fake.on("POST", "/service/message", lambda request, body: Response(
        wire, headers={"Content-Type": "application/json", "Content-Encoding": encoding.removeprefix("raw ")}))
    error, record = _send(url, mode)
    assert error is None, repr(error)
    assert len(fake.hits("/service/message")) == 1
    assert record.status is Status.SUBMITTED


# ----------------------------------------------------------------------------- 3. paging
def test_a_status_lookup_whose_vendor_pages_on_empty_for_ever_stops(
        vendor: tuple[Vendor, str]) -> None:  # noqa: F811  (the fixture)
    """``Paged.after`` stops a walk at a page it already asked for; a vendor whose every page is
    empty yet names a next cursor never seen before (``c1 -> c2 -> c3 ...``: a paging bug, a
    cursor that counts up over an empty result) was walked for ever: the status lookup (and the
    poller) never returned, a request a page. A walk stops after
    :data:`smsgate.provider.MAX_EMPTY_PAGES` empty pages in a row that each link to another."""
    fake, url = vendor
    fake.on("POST", "/service/message",
            lambda r, b: JSONResponse({"status": "SUCCESS", "message": "success",
                                       "data": {"sent": 1, "batch_id": "B1"}}))
    limit = 400  # the vendor ends its paging itself after this many pages, so the old code ends

    def by_params(request: Request, body: bytes) -> Response:
        served = len(fake.hits("/service/message/by-params"))
        more = served < limit
        return JSONResponse({"status": "SUCCESS", "message": "success", "data": {
            "items": [],
            "pageInfo": {"hasNextPage": more, "nextCursor": f"c{served}" if more else None, "prevCursor": None}}})

    fake.on("GET", "/service/message/by-params", by_params)
    with Gateway(_squad_v1_settings(url), store=MemoryStore(), plugins=_squad_plugins()) as gw:
        tenant = gw.tenant("t")
        sent = tenant.send("08061230002", "hi")
        with pytest.raises(MalformedResponse, match="empty"):
            tenant.status(sent.message_id)
        record = tenant.status(sent.message_id, refresh=False)
    pages = fake.hits("/service/message/by-params")
    assert len(pages) <= 60, f"one lookup read {len(pages)} empty pages"
    assert record.status is Status.SUBMITTED and record.provider_message_id  # nothing lost


@pytest.mark.parametrize("mode", ["sync", "aiohttp", "httpx-async"])
def test_the_connection_of_a_cut_off_answer_is_not_reused_for_the_next_send(
        vendor: tuple[Vendor, str], small_cap: None, mode: str) -> None:  # noqa: F811  (the fixture)
    """A guard (passes on main): after an answer cut off at the cap (a Content-Length body twice
    the cap), the next send on the same client (a pool of one connection) reaches the vendor
    whole and is read right, not the rest of the old answer: the first is ``unknown``, the
    second ``submitted``, each sent once."""
    fake, url = vendor
    answers_given = iter([_squad_answer(2 * _CAP), _squad_answer(10)])
    fake.on("POST", "/service/message", lambda request, body: Response(
        next(answers_given), headers={"Content-Type": "application/json"}))
    settings = _squad_v1_settings(url)

    def check(errors: list[BaseException | None], records: list[Any]) -> None:
        assert isinstance(errors[0], MalformedResponse) and errors[1] is None, errors
        assert sorted(r.status.value for r in records) == ["submitted", "unknown"]
        sent = [json.loads(b) for m, p, q, b in fake.requests if p == "/service/message"]
        assert len(sent) == 2 and all(s for s in sent)  # each arrived whole, once

    if mode == "sync":
        with Gateway(settings, store=MemoryStore(), plugins=_squad_plugins(),
                     http_client=httpx.Client(limits=httpx.Limits(max_connections=1))) as gw:
            errors: list[BaseException | None] = []
            for number in ("08061230002", "08061230003"):
                try:
                    gw.tenant("t").send(number, "hi")
                    errors.append(None)
                except Exception as exc:
                    errors.append(exc)
            check(errors, gw.tenant("t").messages())
        return

    async def go() -> None:
        if mode == "aiohttp":
            from smsgate.aio import AiohttpClient

            client: Any = AiohttpClient(limit=1, trust_env=False)
        else:
            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1))
        async with client, AsyncGateway(settings, store=MemoryStore(), plugins=_squad_plugins(),
                                        http_client=client) as agw:
            errors: list[BaseException | None] = []
            for number in ("08061230002", "08061230003"):
                try:
                    await agw.tenant("t").send(number, "hi")
                    errors.append(None)
                except Exception as exc:
                    errors.append(exc)
            check(errors, await agw.tenant("t").messages())

    asyncio.run(go())


# ----------------------------------------------------------------------------- 1. the fence at the connection
@pytest.fixture
def idle_closing() -> Any:
    """test_fence_pool's recording server, closing a keep-alive connection idle for 0.2 s."""
    v = _Vendor(idle=0.2)
    yield v
    v.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_fence_slow_at_the_connection_does_not_send_on_a_connection_the_vendor_closed(
        idle_closing: _Vendor, mode: str) -> None:
    """The runner's fence is passed again once a request holds its pooled connection; a fence
    slow there (a lease renewal of 0.6 s) kept an idle keep-alive connection that the vendor
    closed meanwhile, and the request was written on it: a ``RemoteProtocolError`` after the
    request left, so ``UnknownOutcome`` ("may have processed it"), though the vendor's record
    shows it never arrived. After a slow fence the request takes a connection afresh."""
    from smsgate.transport import AsyncDriver, RetryPolicy, SyncDriver

    checks: list[int] = []

    def fence() -> None:
        checks.append(1)
        if len(checks) == 2:  # the check at the connection: a slow renewal
            time.sleep(0.6)

    url = idle_closing.url
    if mode == "sync":
        with httpx.Client(timeout=5) as client:
            driver = SyncDriver(client, RetryPolicy(max_retries=2), sleep=lambda _: None)
            driver.send(httpx.Request("POST", url + "/first"))
            response = driver.send(httpx.Request("POST", url + "/fenced"), fence=fence)
    else:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(timeout=5) as client:
                adriver = AsyncDriver(client, RetryPolicy(max_retries=2))
                await adriver.send(httpx.Request("POST", url + "/first"))
                return await adriver.send(httpx.Request("POST", url + "/fenced"), fence=fence)

        response = asyncio.run(go())
    assert response.status_code == 200
    assert idle_closing.paths == ["/first", "/fenced"]  # the vendor's record: sent once


def download_bomb(fake: Vendor, url: str, mode: str, wire: bytes, encoding: str) -> int:
    """Download ``wire`` (served as ``/media.png`` with ``Content-Encoding: encoding``) under a
    1 MiB ``max_bytes`` in ``mode`` (``sync``, ``async-httpx``, ``async-aiohttp``): it must stop
    with ``DownloadTooLarge``, asked for once; what it held at most (traced) is returned."""
    import tracemalloc

    from smsgate.aio import AiohttpClient
    from smsgate.downloads import DownloadPolicy, download_request
    from smsgate.errors import DownloadTooLarge
    from smsgate.transport import AsyncDriver, SyncDriver

    fake.on("GET", "/media.png", lambda request, body: Response(
        wire, headers={"Content-Type": "image/png", "Content-Encoding": encoding}))
    request = download_request(url + "/media.png", DownloadPolicy(max_bytes=1 << 20, allow_private=True))
    tracemalloc.start()
    try:
        with pytest.raises(DownloadTooLarge):
            if mode == "sync":
                with httpx.Client(timeout=10) as client:
                    SyncDriver(client).send(request)
            else:
                async def go() -> None:
                    client: Any = httpx.AsyncClient(timeout=10) if mode == "async-httpx" else AiohttpClient()
                    async with client:
                        await AsyncDriver(client).send(request)

                asyncio.run(go())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(fake.hits("/media.png")) == 1
    return peak


@pytest.mark.parametrize("mode", ["sync", "async-httpx", "async-aiohttp"])
def test_a_download_of_a_double_gzip_bomb_never_decodes_past_its_cap_in_memory(
        vendor: tuple[Vendor, str], mode: str) -> None:  # noqa: F811  (the fixture)
    """A download counted its bytes once decoded, but after httpx decoded each raw chunk whole:
    with ``Content-Encoding: gzip, gzip`` one chunk of a few KiB decodes to ~1000 x 1000 times
    that in one step (here 64 MiB from ~1 KiB, past a 1 MiB cap: the real cap is 16 MiB). The
    download stops with ``DownloadTooLarge`` having held at most about the cap in memory."""
    fake, url = vendor
    wire = gzip.compress(gzip.compress(bytes(64 << 20), 9), 9)
    assert len(wire) < 64 << 10
    peak = download_bomb(fake, url, mode, wire, "gzip, gzip")
    assert peak < 16 << 20, f"the download held {peak >> 20} MiB for a 1 MiB cap"
