"""smsgate.fast: both engines drive the gateway and keep httpx's error semantics; the lean engine speaks HTTP/1.1."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import AsyncGateway, Status, UnknownOutcome
from smsgate.errors import ConfigError, TransportError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.transport import _NEVER_SENT

HAVE_FAST = all(importlib.util.find_spec(m) is not None for m in ("httpx_aiohttp", "aiohttp"))
needs_fast = pytest.mark.skipif(not HAVE_FAST, reason="the smsgate[fast] extra is not installed")
ENGINES = [pytest.param("lean", id="lean"), pytest.param("aiohttp", id="aiohttp", marks=needs_fast)]


# ----------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = LiveServer(create_emulator()).start()
    yield server.url
    server.stop()


@pytest.fixture
def ctl(url: str) -> EmulatorControl:
    control = EmulatorControl(url)
    control.reset()
    return control


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def config(base_url: str, **provider: Any) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": base_url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            **provider}
    return {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A misbehaving HTTP server on loopback; yields its URL and a list counting connections."""
    seen: list[int] = []

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        try:
            await handler(reader, writer)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)  # the request arrived: the vendor may act on it


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()


async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\"")
    await writer.drain()


async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(5)


# ------------------------------------------------------------------- tests
def test_missing_extra_is_a_config_error_only_where_aiohttp_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from smsgate.fast import fast_async_client

    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)  # makes the import fail
    for kwargs in ({"engine": "aiohttp"}, {"proxy": "http://127.0.0.1:3128"}):
        with pytest.raises(ConfigError, match=r"smsgate\[fast\]") as info:
            fast_async_client(**kwargs)
        cause = info.value.__cause__
        assert isinstance(cause, ImportError)
        assert repr(cause.name) in str(info.value)  # names the module that is missing
        assert "httpx-aiohttp and aiohttp" in str(info.value)
    assert isinstance(fast_async_client(), httpx.AsyncClient)  # the lean engine needs neither
    with pytest.raises(ConfigError, match="lean, aiohttp"):
        fast_async_client(engine="curl")


def test_missing_httptools_is_a_config_error_for_the_lean_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from smsgate import fast
    from smsgate.fast import fast_async_client

    monkeypatch.setitem(sys.modules, "httptools", None)  # makes the import fail
    monkeypatch.setattr(fast, "_parser_class", None)  # as if it had never been imported
    for engine in (None, "lean"):
        with pytest.raises(ConfigError, match=r"smsgate\[fast\]") as info:
            fast_async_client() if engine is None else fast_async_client(engine=engine)
        cause = info.value.__cause__
        assert isinstance(cause, ImportError)
        assert "'httptools'" in str(info.value) and "engine='lean'" in str(info.value)
    if HAVE_FAST:  # the aiohttp engine does not need it
        assert isinstance(fast_async_client(engine="aiohttp"), httpx.AsyncClient)


@pytest.mark.parametrize("engine", ENGINES)
def test_is_an_httpx_async_client_on_the_engine(engine: str) -> None:
    from smsgate.fast import _LeanTransport, fast_async_client

    async def go() -> None:
        async with fast_async_client(limit=7, timeout=3.0, headers={"X-Test": "1"}, engine=engine) as client:
            assert isinstance(client, httpx.AsyncClient)
            if engine == "lean":
                assert isinstance(client._transport, _LeanTransport)
                assert client._transport._limit == 7
            else:
                from httpx_aiohttp import AiohttpTransport

                inner = client._transport.inner  # type: ignore[attr-defined]
                assert isinstance(inner, AiohttpTransport)
                assert inner.limits.max_connections == 7
            assert client.timeout == httpx.Timeout(3.0)
            assert client.headers["x-test"] == "1"

    asyncio.run(go())
    with pytest.raises(ConfigError, match="at least 1"):
        fast_async_client(limit=0, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_drives_a_real_send_through_async_gateway(url: str, ctl: EmulatorControl, engine: str) -> None:
    from smsgate.fast import fast_async_client

    async def go() -> None:
        client = fast_async_client(limit=8, engine=engine)
        try:
            async with AsyncGateway(config(url), plugins=plugins(), http_client=client) as gw:
                acme = gw.tenant("acme")
                one = await acme.send("0803 123 4567", "fast hello")
                assert one.ok and one.status == Status.SUBMITTED and one.to == "+2348031234567"
                assert (await acme.status(one.message_id)).status == Status.DELIVERED  # a GET as well
                many = await acme.send_many([f"0803123450{i}" for i in range(9)], "fast many", concurrency=4)
                assert [r.status for r in many] == [Status.SUBMITTED] * 9
                assert (await acme.get(many[0].message_id)).provider_message_id == many[0].provider_message_id
            assert not client.is_closed  # a client the gateway was given stays open
        finally:
            await client.aclose()

    asyncio.run(go())
    first = ctl.requests("/messages", "POST")[0]
    body = first.json()
    assert (body["to"], body["text"], body["from"]) == ("+2348031234567", "fast hello", "ACME")
    assert first.headers["x-api-key"] == API_KEY
    sent = [m["to"] for r in ctl.requests("/messages/bulk") for m in r.json()["messages"]]
    assert len(sent) == 9


@pytest.mark.parametrize("engine", ENGINES)
def test_connect_error_is_a_transport_error_after_retries(engine: str) -> None:
    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with fast_async_client(engine=engine) as client, AsyncGateway(
            config(f"http://127.0.0.1:{closed_port()}", max_retries=1), plugins=plugins(), http_client=client
        ) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(TransportError, match="could not connect") as info:
                await acme.send("08031234567", "nobody home")
            assert isinstance(info.value.__cause__, httpx.ConnectError)
            assert (await acme.messages())[0].status == Status.FAILED

    asyncio.run(go())


@pytest.mark.parametrize("engine", ENGINES)
def test_timeout_after_send_is_unknown_outcome_and_not_repeated(url: str, ctl: EmulatorControl, engine: str) -> None:
    from smsgate.fast import fast_async_client

    ctl.fault(kind="hang", delay=3, path="/messages")

    async def go() -> None:
        async with fast_async_client(engine=engine) as client, AsyncGateway(
            config(url, timeout=0.3), plugins=plugins(), http_client=client
        ) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(UnknownOutcome) as info:
                await acme.send("08031234567", "slow vendor")
            assert isinstance(info.value.__cause__, httpx.ReadTimeout)
            assert (await acme.messages())[0].status == Status.UNKNOWN

    asyncio.run(go())
    assert len(ctl.requests("/messages", "POST")) == 1


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("handler", [hang_up, garbage, truncated], ids=["hang-up", "garbage", "truncated"])
def test_broken_answer_after_send_is_unknown_outcome_and_not_repeated(handler: Handler, engine: str) -> None:
    # httpx-aiohttp alone maps a hang-up after the request to httpx.ConnectTimeout, which
    # the retry policy would repeat (a duplicate SMS), and lets a malformed answer escape
    # as a bare aiohttp error.
    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with raw_server(handler) as (base, seen), fast_async_client(engine=engine) as client, AsyncGateway(
            config(base, max_retries=3), plugins=plugins(), http_client=client
        ) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(UnknownOutcome):
                await acme.send("08031234567", "maybe sent")
            res = await acme.send_many(["08031234567"], "maybe sent")  # never raises for one message
            assert res[0].status == Status.UNKNOWN and res[0].error_code == "UnknownOutcome"
            assert len(seen) == 2  # one connection per send: nothing repeated

    asyncio.run(go())


async def _error_of(client: httpx.AsyncClient, url: str, **kw: Any) -> BaseException:
    try:
        await client.post(url, json={"to": "+2348031234567"}, **kw)
    except Exception as exc:
        return exc
    raise AssertionError("no error raised")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("handler", "aiohttp_class"),
    [
        (hang_up, httpx.RemoteProtocolError),
        (garbage, httpx.RemoteProtocolError),
        (truncated, httpx.ReadError),
        (slow, httpx.ReadTimeout),
        (None, httpx.ConnectError),
    ],
    ids=["hang-up", "garbage", "truncated", "read-timeout", "refused"],
)
def test_errors_map_to_httpx_like_httpx_itself(
    handler: Handler | None, aiohttp_class: type[Exception], engine: str
) -> None:
    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with raw_server(handler or hang_up) as (base, _):
            url = base if handler else f"http://127.0.0.1:{closed_port()}"
            async with fast_async_client(engine=engine) as fast, httpx.AsyncClient() as plain:
                got = await _error_of(fast, url, timeout=0.3)
                ref = await _error_of(plain, url, timeout=0.3)
        # the lean engine raises exactly httpx's class; the aiohttp engine the nearest one
        assert type(got) is (type(ref) if engine == "lean" else aiohttp_class), (repr(got), repr(ref))
        assert got.request.url == url + "/" or str(got.request.url).rstrip("/") == url  # type: ignore[attr-defined]
        # the retry policy's split: "never sent" (retry) or "maybe sent" (never repeat a POST)
        assert isinstance(got, httpx.TransportError) and isinstance(ref, httpx.TransportError)
        assert isinstance(got, _NEVER_SENT) == isinstance(ref, _NEVER_SENT)
        if engine == "aiohttp":
            assert got.__cause__ is not None and type(got.__cause__).__module__.startswith("aiohttp")

    asyncio.run(go())


@pytest.mark.parametrize("engine", ENGINES)
def test_waiting_for_a_free_connection_times_out_as_never_sent(engine: str) -> None:
    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with raw_server(slow) as (base, _), fast_async_client(limit=1, engine=engine) as client:
            first = asyncio.create_task(client.post(base, json={}, timeout=2))
            await asyncio.sleep(0.1)
            err = await _error_of(client, base, timeout=httpx.Timeout(2, pool=0.2))
            assert isinstance(err, _NEVER_SENT), repr(err)
            first.cancel()
            with pytest.raises(BaseException):
                await first

    asyncio.run(go())


# ------------------------------------------------------- lean engine: HTTP/1.1
async def read_body(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request from the wire: (head, body), the body de-chunked when it was chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    low = head.lower()
    if b"transfer-encoding: chunked" in low:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                return head, b"".join(p[:-2] for p in parts)
    for line in low.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return head, await reader.readexactly(int(line.split(b":")[1]))
    return head, b""


def answering(*answers: bytes, close: bool = False) -> Handler:
    """A server that answers successive requests on a connection with ``answers`` (cycling)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        i = 0
        while True:
            try:
                await read_body(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(answers[i % len(answers)])
            await writer.drain()
            i += 1
            if close:
                return

    return handler


async def _both(url: str, method: str = "GET", **kw: Any) -> tuple[httpx.Response, httpx.Response]:
    """The same request through the lean engine and through httpx's own transport."""
    from smsgate.fast import fast_async_client

    async with fast_async_client() as fast, httpx.AsyncClient() as plain:
        return await fast.request(method, url, **kw), await plain.request(method, url, **kw)


GZIPPED = __import__("gzip").compress(b'{"zipped":true}')


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the server hangs up"),
        ("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("DELETE", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        ("POST", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Multi: a\r\n"
                 b"X-Multi: b\r\n\r\n{}"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                % (len(GZIPPED), GZIPPED)),
        ("GET", b"HTTP/1.1 404 Not Found\r\nContent-Length: 8\r\nContent-Type: text/plain; charset=latin-1\r\n"
                b"\r\nnot h\xe9re"),
        ("GET", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                b"X-Padded:  v \t\r\n\r\nok"),
    ],
    ids=["chunked+trailers", "until-close", "http/1.0", "204", "head", "interim-100", "gzip", "latin-1",
         "interim-103+whitespace"],
)
def test_lean_reads_every_body_framing_like_httpx(method: str, answer: bytes) -> None:
    async def go() -> None:
        close = b"Content-Length" not in answer and b"chunked" not in answer and b"204" not in answer
        async with raw_server(answering(answer, close=close)) as (base, _):
            fast, plain = await _both(base + "/x", method, content=b"{}" if method == "POST" else None)
        assert (fast.status_code, fast.reason_phrase, fast.http_version) == (
            plain.status_code, plain.reason_phrase, plain.http_version)
        assert fast.content == plain.content and fast.text == plain.text
        assert fast.headers.multi_items() == plain.headers.multi_items()
        assert fast.is_closed and fast.elapsed.total_seconds() >= 0

    asyncio.run(go())


def test_lean_keeps_connections_alive_and_replaces_closed_ones() -> None:
    from smsgate.fast import fast_async_client

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    bye = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye"

    async def go() -> None:
        async with raw_server(answering(ok, ok, ok, bye)) as (base, seen), fast_async_client() as client:
            for _ in range(4):  # three keep-alive answers, then the server says close
                assert (await client.get(base)).status_code == 200
            assert len(seen) == 1
            assert (await client.get(base)).text == "ok"  # a new connection
            assert len(seen) == 2
        async with raw_server(answering(ok, close=True)) as (base, seen), fast_async_client() as client:
            for i in range(3):  # the server hangs up after every answer, without saying so
                assert (await client.get(base)).text == "ok"
                await asyncio.sleep(0.05)  # let the hang-up reach the client before the next request
                assert len(seen) == i + 1

    asyncio.run(go())


def test_lean_reuses_connections_after_head_and_drops_them_after_extra_bytes() -> None:
    from smsgate.fast import fast_async_client

    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"  # the length a GET would have
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def go() -> None:
        async with raw_server(answering(head, ok)) as (base, seen), fast_async_client() as client:
            for _ in range(2):  # the parser must not wait for 1234 body bytes after a HEAD answer
                got = await client.head(base)
                assert (got.status_code, got.content, got.headers["content-length"]) == (200, b"", "1234")
                assert (await client.get(base, timeout=2)).text == "ok"
            assert len(seen) == 1
        async with raw_server(answering(ok + ok)) as (base, seen), fast_async_client() as client:
            for i in range(3):  # two answers to one request: the first is taken, the connection dropped
                assert (await client.get(base)).text == "ok"
                assert len(seen) == i + 1

    asyncio.run(go())


def test_lean_sends_large_streamed_and_multipart_bodies() -> None:
    import hashlib

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                _, body = await read_body(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            digest = hashlib.sha256(body).hexdigest().encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(digest), digest))
            await writer.drain()

    big = bytes(range(256)) * 4000  # 1 MB: more than the socket buffers take at once

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 100_000):
            yield big[i : i + 100_000]

    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with raw_server(echo) as (base, seen), fast_async_client() as client:
            sha = hashlib.sha256(big).hexdigest()
            assert (await client.post(base, content=big)).text == sha
            assert (await client.post(base, content=pieces())).text == sha  # chunked
            files = {"upload": ("list.csv", b"phone\n+2348031234567\n", "text/csv")}
            multipart = httpx.Request("POST", base, files=files)
            multipart.read()
            assert (await client.post(base, files=files, headers={
                "Content-Type": multipart.headers["content-type"]})).status_code == 200
            assert len(seen) == 1  # all on one kept-alive connection

    asyncio.run(go())


def test_lean_refuses_header_injection_and_oversized_heads() -> None:
    from smsgate.fast import fast_async_client

    huge = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n"

    async def go() -> None:
        async with raw_server(answering(huge)) as (base, seen), fast_async_client() as client:
            with pytest.raises(httpx.LocalProtocolError):
                await client.get(base, headers={"X-A": "a\r\nInjected: 1"})
            assert seen == []  # refused before connecting
            with pytest.raises(httpx.RemoteProtocolError, match="longer than"):
                await client.get(base)

    async def in_pieces(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_body(reader)
        for i in range(0, len(huge), 8192):  # the head arrives over many reads
            writer.write(huge[i : i + 8192])
            await writer.drain()
            await asyncio.sleep(0.001)

    async def slowly() -> None:
        async with raw_server(in_pieces) as (base, _), fast_async_client() as client:
            with pytest.raises(httpx.RemoteProtocolError, match="longer than"):
                await client.get(base)

    asyncio.run(go())
    asyncio.run(slowly())


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\n folded: header\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/2 200\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ],
    ids=["transfer-coding", "two-lengths", "folded", "bad-chunk", "version", "switch-101"],
)
def test_lean_refuses_malformed_answers_like_httpx(answer: bytes) -> None:
    async def go() -> None:
        async with raw_server(answering(answer, close=True)) as (base, _):
            from smsgate.fast import fast_async_client

            async with fast_async_client() as fast, httpx.AsyncClient() as plain:
                got = await _error_of(fast, base, timeout=2)
                ref = await _error_of(plain, base, timeout=2)
        assert type(got) is type(ref) is httpx.RemoteProtocolError, (repr(got), repr(ref))

    asyncio.run(go())


def test_lean_cancelled_request_gives_its_connection_back() -> None:
    from smsgate.fast import fast_async_client

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def go() -> None:
        async with raw_server(slow) as (slow_base, _), raw_server(answering(ok)) as (base, _):
            async with fast_async_client(limit=1) as client:
                first = asyncio.create_task(client.get(slow_base))
                await asyncio.sleep(0.1)
                first.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await first
                # the only slot is free again (a leak would be a PoolTimeout here)
                got = await client.get(base, timeout=httpx.Timeout(5, pool=1))
                assert got.text == "ok"

    asyncio.run(go())


def test_lean_direct_path_keeps_client_features(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from smsgate.fast import fast_async_client

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, _ = await read_body(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            path = head.split(b" ")[1]
            auth = [line for line in head.split(b"\r\n") if line.lower().startswith(b"authorization:")]
            if path == b"/old":
                writer.write(b"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n")
            else:
                body = auth[0] if auth else b"anonymous"
                writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=42; Path=/\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
            await writer.drain()

    seen: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        seen.append(f"request {request.url.path}")

    async def on_response(response: httpx.Response) -> None:
        seen.append(f"response {response.status_code}")

    async def go() -> None:
        async with raw_server(server) as (base, _):
            async with fast_async_client() as client:
                with caplog.at_level(logging.INFO, logger="httpx"):
                    r = await client.get(base + "/old")  # the direct path
                assert r.status_code == 302 and r.next_request is not None
                assert str(r.next_request.url) == base + "/new"
                assert r.request.url == base + "/old" and r.elapsed.total_seconds() >= 0
                assert f'HTTP Request: GET {base}/old "HTTP/1.1 302 Found"' in caplog.text
                r = await client.get(base + "/new")
                assert r.text == "anonymous" and client.cookies["sid"] == "42"
                async with client.stream("GET", base + "/new") as streamed:
                    assert b"".join([c async for c in streamed.aiter_bytes()]) == b"anonymous"
                r = await client.get(base + "/old", follow_redirects=True)
                assert r.status_code == 200 and [h.status_code for h in r.history] == [302]
                r = await client.get(base + "/new", auth=("ada", "pw"))
                assert r.text.startswith("Authorization: Basic ")
            async with fast_async_client(auth=("ada", "pw"),
                                         event_hooks={"request": [on_request], "response": [on_response]}) as client:
                r = await client.get(base + "/new")
                assert r.text.startswith("Authorization: Basic ")
            assert seen == ["request /new", "response 200"]

    asyncio.run(go())


def _self_signed(tmp: Any) -> tuple[str, str]:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make a test certificate")
    cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    return cert, key


def test_lean_speaks_tls_and_verifies_certificates(tmp_path: Any) -> None:
    import ssl

    from smsgate.fast import fast_async_client

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"

    async def go() -> None:
        server = await asyncio.start_server(answering(ok), "127.0.0.1", 0, ssl=server_ctx)
        base = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            trusting = ssl.create_default_context(cafile=cert)
            async with fast_async_client(verify=trusting) as client:
                assert (await client.get(base)).text == "secret"
                assert (await client.get(base)).text == "secret"
            async with fast_async_client() as client:  # the system's CAs do not know this certificate
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get(base)
        finally:
            server.close()

    asyncio.run(go())


