"""smsgate.fast: the aiohttp-backed httpx client drives the gateway and keeps its error semantics."""

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
def test_missing_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from smsgate.fast import fast_async_client

    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"smsgate\[fast\]") as info:
        fast_async_client()
    cause = info.value.__cause__
    assert isinstance(cause, ImportError)
    assert repr(cause.name) in str(info.value)  # names the module that is missing
    assert "httpx-aiohttp and aiohttp" in str(info.value)


@needs_fast
def test_is_an_httpx_async_client_on_aiohttp() -> None:
    from httpx_aiohttp import AiohttpTransport

    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with fast_async_client(limit=7, timeout=3.0, headers={"X-Test": "1"}) as client:
            assert isinstance(client, httpx.AsyncClient)
            inner = client._transport.inner  # type: ignore[attr-defined]
            assert isinstance(inner, AiohttpTransport)
            assert inner.limits.max_connections == 7
            assert client.timeout == httpx.Timeout(3.0)
            assert client.headers["x-test"] == "1"

    asyncio.run(go())
    with pytest.raises(ConfigError, match="at least 1"):
        fast_async_client(limit=0)


@needs_fast
def test_drives_a_real_send_through_async_gateway(url: str, ctl: EmulatorControl) -> None:
    from smsgate.fast import fast_async_client

    async def go() -> None:
        client = fast_async_client(limit=8)
        try:
            async with AsyncGateway(config(url), plugins=plugins(), http_client=client) as gw:
                acme = gw.tenant("acme")
                one = await acme.send("0803 123 4567", "fast hello")
                assert one.ok and one.status == Status.SUBMITTED and one.to == "+2348031234567"
                assert (await acme.status(one.message_id)).status == Status.DELIVERED  # a GET as well
                many = await acme.send_many([f"0803123450{i}" for i in range(9)], "fast many", concurrency=4)
                assert [r.status for r in many] == [Status.SUBMITTED] * 9
                assert acme.get(many[0].message_id).provider_message_id == many[0].provider_message_id
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


@needs_fast
def test_connect_error_is_a_transport_error_after_retries() -> None:
    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with fast_async_client() as client, AsyncGateway(
            config(f"http://127.0.0.1:{closed_port()}", max_retries=1), plugins=plugins(), http_client=client
        ) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(TransportError, match="could not connect") as info:
                await acme.send("08031234567", "nobody home")
            assert isinstance(info.value.__cause__, httpx.ConnectError)
            assert acme.messages()[0].status == Status.FAILED

    asyncio.run(go())


@needs_fast
def test_timeout_after_send_is_unknown_outcome_and_not_repeated(url: str, ctl: EmulatorControl) -> None:
    from smsgate.fast import fast_async_client

    ctl.fault(kind="hang", delay=3, path="/messages")

    async def go() -> None:
        async with fast_async_client() as client, AsyncGateway(
            config(url, timeout=0.3), plugins=plugins(), http_client=client
        ) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(UnknownOutcome) as info:
                await acme.send("08031234567", "slow vendor")
            assert isinstance(info.value.__cause__, httpx.ReadTimeout)
            assert acme.messages()[0].status == Status.UNKNOWN

    asyncio.run(go())
    assert len(ctl.requests("/messages", "POST")) == 1


@needs_fast
@pytest.mark.parametrize("handler", [hang_up, garbage, truncated], ids=["hang-up", "garbage", "truncated"])
def test_broken_answer_after_send_is_unknown_outcome_and_not_repeated(handler: Handler) -> None:
    # httpx-aiohttp alone maps a hang-up after the request to httpx.ConnectTimeout, which
    # the retry policy would repeat (a duplicate SMS), and lets a malformed answer escape
    # as a bare aiohttp error.
    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with raw_server(handler) as (base, seen), fast_async_client() as client, AsyncGateway(
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


@needs_fast
@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (hang_up, httpx.RemoteProtocolError),
        (garbage, httpx.RemoteProtocolError),
        (truncated, httpx.ReadError),
        (slow, httpx.ReadTimeout),
        (None, httpx.ConnectError),
    ],
    ids=["hang-up", "garbage", "truncated", "read-timeout", "refused"],
)
def test_errors_map_to_httpx_like_httpx_itself(handler: Handler | None, expected: type[Exception]) -> None:
    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with raw_server(handler or hang_up) as (base, _):
            url = base if handler else f"http://127.0.0.1:{closed_port()}"
            async with fast_async_client() as fast, httpx.AsyncClient() as plain:
                got = await _error_of(fast, url, timeout=0.3)
                ref = await _error_of(plain, url, timeout=0.3)
        assert type(got) is expected, repr(got)
        assert got.request.url == url + "/" or str(got.request.url).rstrip("/") == url  # type: ignore[attr-defined]
        # the retry policy's split: "never sent" (retry) or "maybe sent" (never repeat a POST)
        assert isinstance(got, httpx.TransportError) and isinstance(ref, httpx.TransportError)
        assert isinstance(got, _NEVER_SENT) == isinstance(ref, _NEVER_SENT)
        assert got.__cause__ is not None and type(got.__cause__).__module__.startswith("aiohttp")

    asyncio.run(go())


@needs_fast
def test_waiting_for_a_free_connection_times_out_as_never_sent() -> None:
    from smsgate.fast import fast_async_client

    async def go() -> None:
        async with raw_server(slow) as (base, _), fast_async_client(limit=1) as client:
            first = asyncio.create_task(client.post(base, json={}, timeout=2))
            await asyncio.sleep(0.1)
            err = await _error_of(client, base, timeout=httpx.Timeout(2, pool=0.2))
            assert isinstance(err, _NEVER_SENT), repr(err)
            first.cancel()
            with pytest.raises(BaseException):
                await first

    asyncio.run(go())
