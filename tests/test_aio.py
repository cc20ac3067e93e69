"""smsgate.aio.AiohttpClient: httpx requests on aiohttp, with httpx's answers and httpx's error semantics.

Every failure test runs the same request through httpx's own transport and
compares: the retry policy's "never sent / maybe sent" split must not depend on
which client sends. The servers are real loopback sockets that misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import shutil
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import AsyncGateway, Gateway, Status, UnknownOutcome
from smsgate.aio import AiohttpClient
from smsgate.errors import ConfigError, TransportError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.transport import _NEVER_SENT, AsyncDriver, async_client


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
async def raw_server(handler: Handler, **kw: Any) -> AsyncIterator[tuple[str, list[int]]]:
    """A misbehaving HTTP server on loopback; yields its URL and a list counting connections."""
    seen: list[int] = []

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        try:
            await handler(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0, **kw)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if kw.get("ssl") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}", seen
    finally:
        server.close()


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


def reset(writer: asyncio.StreamWriter) -> None:
    """Make closing ``writer`` send a TCP RST instead of a FIN."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_body(reader)  # the request arrived: the vendor may act on it


async def reset_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_body(reader)
    reset(writer)


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_body(reader)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()


async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_body(reader)
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\"")
    await writer.drain()


async def bad_chunk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_body(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    await writer.drain()


async def half_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_body(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
    await writer.drain()


async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_body(reader)
    await asyncio.sleep(5)


async def stalled_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_body(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    await writer.drain()
    await asyncio.sleep(5)


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


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def timeout(seconds: float, **kw: float) -> dict[str, Any]:
    return httpx.Timeout(seconds, **kw).as_dict()


async def _error_of(client: Any, url: str, method: str = "POST", **kw: Any) -> BaseException:
    request = httpx.Request(method, url, json={"to": "+2348031234567"}, extensions={"timeout": timeout(0.3)})
    try:
        await client.send(request, **kw)
    except Exception as exc:
        return exc
    raise AssertionError("no error raised")


# ------------------------------------------------------------------- choosing the client
def test_async_gateway_defaults_to_the_adapter_and_takes_any_client() -> None:
    async def go() -> None:
        async with AsyncGateway({"store": "memory://"}) as gw:
            assert isinstance(gw._client, AiohttpClient)
        session = aiohttp.ClientSession()
        try:
            gw = AsyncGateway({"store": "memory://"}, http_client=session)
            assert isinstance(gw._client, AiohttpClient) and gw._client.session is session
            await gw.aclose()
            assert not session.closed  # the caller's session is the caller's to close
        finally:
            await session.close()
        async with httpx.AsyncClient() as client, AiohttpClient() as adapter:
            for given in (client, adapter):
                gw = AsyncGateway({"store": "memory://"}, http_client=given)
                assert gw._client is given
                await gw.aclose()
            assert not client.is_closed and not adapter.is_closed
        with pytest.raises(TypeError, match="http_client must be"):
            async_client(object())

    asyncio.run(go())


def test_without_aiohttp_the_default_is_httpx_and_the_helper_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smsgate.fast import fast_async_client

    assert isinstance(fast_async_client(limit=3), AiohttpClient)
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # makes the import fail
    monkeypatch.delitem(sys.modules, "smsgate.aio")
    client = async_client(None)
    assert type(client) is httpx.AsyncClient
    asyncio.run(client.aclose())
    with pytest.raises(ConfigError, match=r"pip install 'smsgate\[fast\]'") as info:
        fast_async_client()
    assert isinstance(info.value.__cause__, ImportError) and "'aiohttp'" in str(info.value)
    with pytest.raises(ConfigError, match="at least 1"):
        monkeypatch.undo()
        fast_async_client(limit=0)


def test_sync_gateway_default_is_a_plain_httpx_client() -> None:
    with Gateway({"store": "memory://"}) as gw:
        assert type(gw._client) is httpx.Client
        assert gw._client.timeout == httpx.Timeout(30.0)


# ------------------------------------------------------------------- through the gateway
@pytest.mark.parametrize("given", ["default", "session"])
def test_drives_a_real_send_through_async_gateway(url: str, ctl: EmulatorControl, given: str) -> None:
    async def go() -> None:
        session = aiohttp.ClientSession() if given == "session" else None
        try:
            async with AsyncGateway(config(url), plugins=plugins(), http_client=session) as gw:
                acme = gw.tenant("acme")
                one = await acme.send("0803 123 4567", "fast hello")
                assert one.ok and one.status == Status.SUBMITTED and one.to == "+2348031234567"
                assert (await acme.status(one.message_id)).status == Status.DELIVERED  # a GET as well
                many = await acme.send_many([f"0803123450{i}" for i in range(9)], "fast many", concurrency=4)
                assert [r.status for r in many] == [Status.SUBMITTED] * 9
                assert (await acme.get(many[0].message_id)).provider_message_id == many[0].provider_message_id
        finally:
            if session is not None:
                assert not session.closed
                await session.close()

    asyncio.run(go())
    first = ctl.requests("/messages", "POST")[0]
    body = first.json()
    assert (body["to"], body["text"], body["from"]) == ("+2348031234567", "fast hello", "ACME")
    assert first.headers["x-api-key"] == API_KEY
    sent = [m["to"] for r in ctl.requests("/messages/bulk") for m in r.json()["messages"]]
    assert len(sent) == 9


def test_connect_error_is_a_transport_error_after_retries() -> None:
    async def go() -> None:
        async with AsyncGateway(
            config(f"http://127.0.0.1:{closed_port()}", max_retries=1), plugins=plugins()
        ) as gw:
            assert isinstance(gw._client, AiohttpClient)
            acme = gw.tenant("acme")
            with pytest.raises(TransportError, match="could not connect") as info:
                await acme.send("08031234567", "nobody home")
            assert isinstance(info.value.__cause__, httpx.ConnectError)
            assert (await acme.messages())[0].status == Status.FAILED

    asyncio.run(go())


def test_timeout_after_send_is_unknown_outcome_and_not_repeated(url: str, ctl: EmulatorControl) -> None:
    ctl.fault(kind="hang", delay=3, path="/messages")

    async def go() -> None:
        async with AsyncGateway(config(url, timeout=0.3), plugins=plugins()) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(UnknownOutcome) as info:
                await acme.send("08031234567", "slow vendor")
            assert isinstance(info.value.__cause__, httpx.ReadTimeout)
            assert (await acme.messages())[0].status == Status.UNKNOWN

    asyncio.run(go())
    assert len(ctl.requests("/messages", "POST")) == 1


@pytest.mark.parametrize("handler", [hang_up, reset_after, garbage, truncated],
                         ids=["hang-up", "reset", "garbage", "truncated"])
def test_broken_answer_after_send_is_unknown_outcome_and_not_repeated(handler: Handler) -> None:
    async def go() -> None:
        async with raw_server(handler) as (base, seen), AsyncGateway(
            config(base, max_retries=3), plugins=plugins()
        ) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(UnknownOutcome):
                await acme.send("08031234567", "maybe sent")
            res = await acme.send_many(["08031234567"], "maybe sent")  # never raises for one message
            assert res[0].status == Status.UNKNOWN and res[0].error_code == "UnknownOutcome"
            assert len(seen) == 2  # one connection per send: nothing repeated

    asyncio.run(go())


def test_hang_up_on_a_kept_alive_connection_is_not_repeated_by_aiohttp() -> None:
    # aiohttp repeats an idempotent request once when a reused connection breaks; a POST
    # must reach the server once: the first answer is fine, then the server hangs up
    requests: list[bytes] = []

    async def once_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_body(reader)
        requests.append(head.split(b" ")[0])
        writer.write(OK)
        await writer.drain()
        head, _ = await read_body(reader)
        requests.append(head.split(b" ")[0])

    async def go() -> None:
        async with raw_server(once_then_hang_up) as (base, seen), AiohttpClient() as client:
            assert (await client.send(httpx.Request("POST", base, content=b"1"))).text == "ok"
            err = await _error_of(client, base)
            assert type(err) is httpx.RemoteProtocolError
            assert not isinstance(err, _NEVER_SENT)
            assert requests == [b"POST", b"POST"] and len(seen) == 1

    asyncio.run(go())


# ------------------------------------------------------------------- error mapping
@pytest.mark.parametrize(
    "handler",
    [hang_up, reset_after, garbage, truncated, bad_chunk, half_head, slow, stalled_body, None],
    ids=["hang-up", "reset", "garbage", "truncated", "bad-chunk", "half-head", "read-timeout", "body-stall",
         "refused"],
)
def test_errors_map_to_httpx_like_httpx_itself(handler: Handler | None) -> None:
    async def go() -> None:
        async with raw_server(handler or hang_up) as (base, _):
            url = base if handler else f"http://127.0.0.1:{closed_port()}"
            async with AiohttpClient() as fast, httpx.AsyncClient() as plain:
                got = await _error_of(fast, url)
                ref = await _error_of(plain, url)
        assert type(got) is type(ref), (repr(got), repr(ref))
        assert isinstance(got, httpx.TransportError)
        assert got.request.url == url
        assert isinstance(got, _NEVER_SENT) == (handler is None)  # only a refused connection is "never sent"
        assert type(got.__cause__).__module__.startswith("aiohttp")  # chained to what aiohttp raised

    asyncio.run(go())


def test_reset_in_the_middle_of_a_body_is_maybe_sent() -> None:
    # httpx says ReadError, aiohttp reports it as an incomplete payload: RemoteProtocolError.
    # Both are "maybe sent" (module docstring).
    async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await truncated(reader, writer)
        await asyncio.sleep(0.05)
        reset(writer)

    async def go() -> None:
        async with raw_server(reset_mid_body) as (base, _), AiohttpClient() as client:
            err = await _error_of(client, base)
        assert isinstance(err, (httpx.RemoteProtocolError, httpx.ReadError)) and not isinstance(err, _NEVER_SENT)

    asyncio.run(go())


def test_unsupported_scheme_and_missing_host_are_never_sent() -> None:
    async def go() -> None:
        async with AiohttpClient() as fast, httpx.AsyncClient() as plain:
            got, ref = await _error_of(fast, "ftp://127.0.0.1/x"), await _error_of(plain, "ftp://127.0.0.1/x")
            assert type(got) is type(ref) is httpx.UnsupportedProtocol, (repr(got), repr(ref))
            # httpx tries to resolve an empty host (ConnectError), aiohttp refuses the URL: never sent either way
            got, ref = await _error_of(fast, "http:///x"), await _error_of(plain, "http:///x")
            assert isinstance(got, _NEVER_SENT) and isinstance(ref, _NEVER_SENT), (repr(got), repr(ref))

    asyncio.run(go())


def test_connect_timeout_is_never_sent() -> None:
    # a listening socket whose accept queue is full: the kernel drops further SYNs
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)

        async def go() -> None:
            async with AiohttpClient() as fast, httpx.AsyncClient() as plain:
                got = await _error_of(fast, f"http://127.0.0.1:{port}")
                ref = await _error_of(plain, f"http://127.0.0.1:{port}")
            if type(ref) is not httpx.ConnectTimeout:
                pytest.skip(f"this kernel does not stall connections to a full accept queue ({ref!r})")
            assert type(got) is httpx.ConnectTimeout, repr(got)

        asyncio.run(go())
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_waiting_for_a_free_connection_times_out_as_pool_timeout() -> None:
    async def go() -> None:
        async with raw_server(slow) as (base, seen), AiohttpClient(limit=1) as client:
            first = asyncio.create_task(client.send(httpx.Request("POST", base, extensions={"timeout": timeout(2)})))
            await asyncio.sleep(0.1)
            request = httpx.Request("POST", base, json={}, extensions={"timeout": timeout(2, pool=0.2)})
            with pytest.raises(httpx.PoolTimeout):
                await client.send(request)
            assert len(seen) == 1  # the second request never left
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first

    asyncio.run(go())


def test_cancelled_request_gives_its_connection_back() -> None:
    async def go() -> None:
        async with raw_server(slow) as (slow_base, _), raw_server(answering(OK)) as (base, _):
            async with AiohttpClient(limit=1) as client:
                first = asyncio.create_task(client.send(httpx.Request("GET", slow_base)))
                await asyncio.sleep(0.1)
                first.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await first
                # the only slot is free again (a leak would be a PoolTimeout here)
                got = await client.send(httpx.Request("GET", base, extensions={"timeout": timeout(5, pool=1)}))
                assert got.text == "ok"

    asyncio.run(go())


def test_limit_caps_connections_in_flight() -> None:
    in_flight = [0, 0]  # now, most

    async def counting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_body(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
            await asyncio.sleep(0.05)
            in_flight[0] -= 1
            writer.write(OK)
            await writer.drain()

    async def go() -> None:
        async with raw_server(counting) as (base, seen), AiohttpClient(limit=2) as client:
            answers = await asyncio.gather(*(client.send(httpx.Request("GET", base)) for _ in range(8)))
            assert [a.text for a in answers] == ["ok"] * 8
            assert in_flight[1] == 2 and len(seen) == 2  # two connections, each kept alive

    asyncio.run(go())


def test_a_request_in_flight_keeps_no_header_lists_alive() -> None:
    # thousands of requests wait for their answers at once: what send's frame holds meanwhile
    # is gone through by every garbage collection (httpx's raw header pairs and aiohttp's
    # str pairs were a dozen objects per request)
    arrived = asyncio.Event()

    async def waiting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_body(reader)
        arrived.set()
        await asyncio.sleep(0.2)
        writer.write(OK)
        await writer.drain()

    async def go() -> None:
        async with raw_server(waiting) as (base, _), AiohttpClient() as client:
            request = httpx.Request("POST", base + "/messages", json={"to": "+2348031234567"},
                                    headers={"X-Api-Key": "k"})
            task = asyncio.ensure_future(client.send(request))
            await arrived.wait()
            frame = task.get_coro().cr_frame  # type: ignore[union-attr]
            kept = {name: value for name, value in frame.f_locals.items() if isinstance(value, (list, tuple))}
            assert kept == {}
            assert (await task).text == "ok"

    asyncio.run(go())


def test_requests_to_different_urls_alternating_each_go_to_their_own() -> None:
    paths: list[bytes] = []

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, _ = await read_body(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            paths.append(head.split(b" ")[1])
            writer.write(OK)
            await writer.drain()

    async def go() -> None:
        async with raw_server(recording) as (base, _), AiohttpClient() as client:
            urls = [httpx.URL(base + "/a"), httpx.URL(base + "/b?x=1")]  # each reused, as providers do
            for i in range(6):
                await client.send(httpx.Request("GET", urls[i % 2]))
            await client.send(httpx.Request("GET", httpx.URL(base + "/a")))  # an equal URL, another object

    asyncio.run(go())
    assert paths == [b"/a", b"/b?x=1"] * 3 + [b"/a"]


# ------------------------------------------------------------------- what goes out, what comes back
async def _captured(request: httpx.Request, client: Any) -> tuple[bytes, bytes]:
    got: list[tuple[bytes, bytes]] = []

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await read_body(reader))
        writer.write(OK)
        await writer.drain()

    async with raw_server(capture) as (base, _):
        sent = httpx.Request(request.method, base + request.url.raw_path.decode(), headers=request.headers,
                             stream=request.stream, extensions=request.extensions)
        sent.headers["Host"] = httpx.URL(base).netloc.decode()
        await client.send(sent)
    return got[0]


async def _pieces() -> AsyncIterator[bytes]:
    for part in (b'{"a":', b"1}"):
        yield part


@pytest.mark.parametrize(
    "build",
    [
        lambda: httpx.Request("POST", "http://h/messages", json={"to": "+234", "text": "Grüße"},
                              headers={"X-Api-Key": "k", "Authorization": "Bearer t"}),
        lambda: httpx.Request("GET", "http://h/messages/42?status=a%20b&x=%2F", headers={"Accept": "text/csv"}),
        lambda: httpx.Request("PUT", "http://h/list", content=_pieces()),
        lambda: httpx.Request("POST", "http://h/upload", files={"f": ("list.csv", b"phone\n+234\n", "text/csv")}),
        lambda: httpx.Request("POST", "http://h/form", data={"user": "ada", "msg": "a&b=c"}),
        lambda: httpx.Request("DELETE", "http://h/messages/42"),
        lambda: httpx.Request("POST", "http://h/raw", content=b"\x00\x01 raw bytes"),
        lambda: httpx.Request("POST", "http://h/empty"),
    ],
    ids=["json", "get-query", "streamed", "multipart", "form", "delete", "raw-bytes", "empty-post"],
)
@pytest.mark.parametrize("given", ["own", "session"])
def test_request_goes_out_as_httpx_sends_it(build: Callable[[], httpx.Request], given: str) -> None:
    async def go() -> None:
        # the client's own session skips aiohttp's automatic headers once; a session passed in
        # is told so on every request: both must send exactly what httpx sends
        session = aiohttp.ClientSession() if given == "session" else None
        try:
            async with AiohttpClient(session) as fast, httpx.AsyncClient() as plain:
                (fast_head, fast_body), (plain_head, plain_body) = await _captured(build(), fast), \
                    await _captured(build(), plain)
        finally:
            if session is not None:
                await session.close()
        if b"multipart" in plain_head:  # the boundary is random: compare the shape
            plain_body = plain_body.replace(plain_head.split(b"boundary=")[1].split(b"\r\n")[0], b"B")
            fast_body = fast_body.replace(fast_head.split(b"boundary=")[1].split(b"\r\n")[0], b"B")
            fast_head = plain_head = b""
        assert fast_body == plain_body

        def lines(head: bytes) -> list[bytes]:  # the two servers' ports differ
            return sorted(line for line in head.split(b"\r\n") if not line.startswith(b"Host: 127.0.0.1:"))

        expected = lines(plain_head)
        if plain_head.startswith(b"DELETE"):  # the one header aiohttp adds (module docstring)
            expected = sorted([*expected, b"Content-Length: 0"])
        assert lines(fast_head) == expected  # no User-Agent, Accept... of aiohttp's own

    asyncio.run(go())


GZIPPED = gzip.compress(b'{"zipped":true}')


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the server hangs up"),
        ("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("DELETE", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        ("POST", b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n{}"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                % (len(GZIPPED), GZIPPED)),
        ("GET", b"HTTP/1.1 404 Not Found\r\nContent-Length: 8\r\nContent-Type: text/plain; charset=latin-1\r\n"
                b"\r\nnot h\xe9re"),
        ("GET", b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nSet-Cookie: sid=1\r\nContent-Length: 0\r\n\r\n"),
        ("POST", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Name: caf\xc3\xa9 \xe2\x9c\x93\r\n\r\nok"),
        ("GET", b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 2\r\n\r\nok"),
    ],
    ids=["chunked", "until-close", "http/1.0", "204", "head", "multi-header", "gzip", "latin-1",
         "redirect-not-followed", "interim-100", "utf-8-header", "latin-1-header"],
)
def test_reads_every_answer_like_httpx(method: str, answer: bytes) -> None:
    async def go() -> None:
        close = b"Content-Length" not in answer and b"chunked" not in answer and b"204" not in answer
        async with raw_server(answering(answer, close=close)) as (base, _):
            async with AiohttpClient() as fast, httpx.AsyncClient() as plain:
                request = httpx.Request(method, base + "/x", content=b"{}" if method == "POST" else None)
                got = await fast.send(request)
                ref = await plain.send(httpx.Request(method, base + "/x", content=b"{}" if method == "POST" else None))
        assert (got.status_code, got.reason_phrase, got.http_version) == (
            ref.status_code, ref.reason_phrase, ref.http_version)
        assert got.content == ref.content and got.text == ref.text
        assert got.headers.multi_items() == ref.headers.multi_items()
        assert got.headers.encoding == ref.headers.encoding  # told for ASCII headers, else sniffed as httpx does
        assert got.request is request and got.is_closed and got.elapsed.total_seconds() >= 0

    asyncio.run(go())


def test_keeps_connections_alive_and_replaces_closed_ones() -> None:
    bye = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye"

    async def go() -> None:
        async with raw_server(answering(OK, OK, OK, bye)) as (base, seen), AiohttpClient() as client:
            for _ in range(4):  # three keep-alive answers, then the server says close
                assert (await client.send(httpx.Request("POST", base, json={}))).status_code == 200
            assert len(seen) == 1
            assert (await client.send(httpx.Request("POST", base, json={}))).text == "ok"  # a new connection
            assert len(seen) == 2
        async with raw_server(answering(OK, close=True)) as (base, seen), AiohttpClient() as client:
            for i in range(3):  # the server hangs up after every answer, without saying so
                assert (await client.send(httpx.Request("POST", base, json={}))).text == "ok"
                await asyncio.sleep(0.05)  # let the hang-up reach the client before the next request
                assert len(seen) == i + 1

    asyncio.run(go())


def test_timeouts_come_from_the_request_else_the_client() -> None:
    async def go() -> None:
        async with raw_server(slow) as (base, _):
            async with AiohttpClient(timeout=0.2) as client:
                with pytest.raises(httpx.ReadTimeout):
                    await client.send(httpx.Request("GET", base))  # no timeout extension: the client's
            async with AiohttpClient(timeout=60) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                with pytest.raises(httpx.ReadTimeout):
                    await client.send(httpx.Request("GET", base, extensions={"timeout": timeout(60, read=0.2)}))
                assert loop.time() - start < 2

    asyncio.run(go())


def test_one_client_in_two_event_loops_in_turn() -> None:
    async def get(client: AiohttpClient, base: str) -> str:
        return (await client.send(httpx.Request("GET", base))).text

    async def serve_and_get(client: AiohttpClient) -> str:
        async with raw_server(answering(OK)) as (base, _):
            return await get(client, base)

    client = AiohttpClient()
    try:
        assert asyncio.run(serve_and_get(client)) == "ok"
        assert asyncio.run(serve_and_get(client)) == "ok"  # a new loop: a new session there
    finally:
        asyncio.run(client.aclose())
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(serve_and_get(client))


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_body(reader)
        seen.append(head.split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")
        await writer.drain()

    async def go() -> None:
        async with raw_server(proxy) as (proxy_url, _), raw_server(answering(OK)) as (base, _):
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
            monkeypatch.setenv("NO_PROXY", "localhost")
            target = "http://vendor.invalid/send?x=1"
            async with AiohttpClient() as client:
                assert (await client.send(httpx.Request("GET", target))).text == "proxied"
            async with AiohttpClient(trust_env=False) as client:
                assert (await client.send(httpx.Request("GET", base))).text == "ok"
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            async with AiohttpClient() as client:
                assert (await client.send(httpx.Request("GET", base))).text == "ok"  # excluded by NO_PROXY
        assert seen == [b"GET http://vendor.invalid/send?x=1 HTTP/1.1"]

    asyncio.run(go())


def _self_signed(tmp: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make a test certificate")
    cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_verifies_certificates(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    secret = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"

    async def go() -> None:
        async with raw_server(answering(secret), ssl=server_ctx) as (base, _):
            async with AiohttpClient(verify=ssl.create_default_context(cafile=cert)) as client:
                assert (await client.send(httpx.Request("GET", base))).text == "secret"
            async with AiohttpClient() as fast, httpx.AsyncClient() as plain:  # the system's CAs do not know it
                got, ref = await _error_of(fast, base, "GET"), await _error_of(plain, base, "GET")
            assert type(got) is type(ref) is httpx.ConnectError, (repr(got), repr(ref))
            assert "CERTIFICATE_VERIFY_FAILED" in str(got)

    asyncio.run(go())


def test_async_driver_runs_operations_on_the_adapter() -> None:
    def op() -> Any:
        first = yield httpx.Request("POST", base_url[0] + "/a", content=b"1")
        second = yield httpx.Request("GET", base_url[0] + "/b")
        return first.text + second.text

    base_url: list[str] = []

    async def go() -> None:
        async with raw_server(answering(OK)) as (base, _), AiohttpClient() as client:
            base_url.append(base)
            assert await AsyncDriver(client).run(op()) == "okok"

    asyncio.run(go())


def test_large_bodies_both_ways() -> None:
    big = bytes(range(256)) * 4000  # 1 MB: more than the socket buffers take at once

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_body(reader)
        digest = hashlib.sha256(body).hexdigest().encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Sha: %s\r\n\r\n%s" % (len(body), digest, body))
        await writer.drain()

    async def go() -> None:
        async with raw_server(echo) as (base, _), AiohttpClient() as client:
            got = await client.send(httpx.Request("POST", base, content=big))
            assert got.content == big and got.headers["x-sha"] == hashlib.sha256(big).hexdigest()

    asyncio.run(go())
