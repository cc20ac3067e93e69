"""The clients smsgate makes give up an idle kept-alive connection after ``KEEPALIVE_SECONDS``
(4 s), before the 5 s after which common servers (uvicorn, as the emulators run; Node.js,
Apache) close it. With httpx's default (5 s) a send could be written on a connection the server
was closing at that very moment: ``Server disconnected``, a message ``unknown`` (seen in CI, a
test's send 5 s after the one before). Read from the server's side: the port each request came
from (a new connection, a new port). Real loopback HTTP through uvicorn."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from smsgate.answers import KEEPALIVE_SECONDS
from smsgate.server import LiveServer
from smsgate.transport import async_client, default_client


async def _port_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers each request with the client port it came from."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = str(scope["client"][1]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    live = LiveServer(_port_app).start()  # uvicorn: an idle connection closed after 5 s
    yield live.url
    live.stop()


#: past the client's keep-alive, short of the server's 5 s
IDLE = KEEPALIVE_SECONDS + 0.4


def test_keepalive_is_shorter_than_common_servers() -> None:
    assert KEEPALIVE_SECONDS < 5


def test_the_sync_default_client_reuses_a_connection_only_while_it_is_fresh(server: str) -> None:
    with default_client() as client:
        ports = [client.get(server).text]
        ports.append(client.get(server).text)  # at once: the same connection
        time.sleep(IDLE)
        ports.append(client.get(server).text)  # httpx's default (5 s) reused it here
    assert ports[0] == ports[1] != ports[2]


@pytest.mark.parametrize("engine", ["aiohttp", "httpx"])
def test_the_async_default_client_reuses_a_connection_only_while_it_is_fresh(
        server: str, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "httpx":  # what AsyncGateway makes without the ``fast`` extra (no aiohttp)
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "aiohttp" else real(name, *a))

    async def main() -> list[str]:
        client = async_client(None)
        assert isinstance(client, httpx.AsyncClient) == (engine == "httpx")
        try:
            ports = [(await client.send(httpx.Request("GET", server))).text]
            ports.append((await client.send(httpx.Request("GET", server))).text)
            await asyncio.sleep(IDLE)  # aiohttp's default (15 s) reused it here
            ports.append((await client.send(httpx.Request("GET", server))).text)
            return ports
        finally:
            await client.aclose()

    ports = asyncio.run(main())
    assert ports[0] == ports[1] != ports[2]
