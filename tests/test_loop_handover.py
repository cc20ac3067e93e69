"""An ``AsyncGateway`` used by one event loop, then by the next once the first is closed
(``asyncio.run()`` twice, a test's loop after another's, a script's steps): the HTTP client's
kept-alive connections are the closed loop's. With an ``httpx.AsyncClient`` (the gateway's own
without the ``fast`` extra, or one given) or an ``aiohttp.ClientSession`` given, the second send
was written on such a connection, reached the vendor, and its answer could not be read: a bare
``RuntimeError`` ("Event loop is closed", "attached to a different loop") and the message left
``queued``. Now the gateway's own client is made again for the new loop, and a client given is
refused (``WrongEventLoop``, ``closed``) before anything is logged or sent. Read from the Squad
emulator's own record of requests."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from smsgate import AsyncGateway, WrongEventLoop
from smsgate.config import Settings, TenantConfig


def _config(tmp_path: Path, squad: Any) -> Settings:
    return Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings()})})


def _messages(gw: AsyncGateway) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        return sorted((m.to, m.status.value) for m in await gw.tenant("acme").messages())
    return asyncio.run(read())


def _numbers(squad: Any) -> list[str]:
    """The numbers the vendor took, from its own record."""
    return [m["phone_number"] for r in squad.processed("/sms/send/instant") for m in r.json()["messages"]]


def _collect() -> None:
    """The closed loop's sockets, closed by the collector (nothing can close them on a dead loop)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_the_gateways_own_httpx_client_is_made_again_for_a_new_loop(
        sms_emulator: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec  # without aiohttp: the gateway's own client is an httpx.AsyncClient
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a))
    squad = sms_emulator("squad")
    gw = AsyncGateway(_config(tmp_path, squad))
    assert isinstance(gw._client, httpx.AsyncClient)
    for n in (1, 2, 3):
        assert asyncio.run(gw.tenant("acme").send(f"0803123456{n}", "hi")).status == "sent"
    asyncio.run(gw.aclose())  # (in a loop of its own too: it raised "Event loop is closed")
    _collect()
    assert sorted(_numbers(squad)) == ["08031234561", "08031234562", "08031234563"]


def _given_httpx() -> Any:
    return httpx.AsyncClient()


def _given_session() -> Any:
    aiohttp = pytest.importorskip("aiohttp")
    return aiohttp.ClientSession()


@pytest.mark.parametrize("make", [_given_httpx, _given_session], ids=["httpx.AsyncClient", "aiohttp.ClientSession"])
def test_a_client_given_that_a_closed_loop_used_is_refused_before_anything_is_sent(
        sms_emulator: Callable[..., Any], tmp_path: Path, make: Callable[[], Any]) -> None:
    squad = sms_emulator("squad")
    made: dict[str, Any] = {}

    async def first() -> str:  # the client is made in the loop (an aiohttp session must be)
        made["gw"] = AsyncGateway(_config(tmp_path, squad), http_client=make())
        return (await made["gw"].tenant("acme").send("08031234561", "one")).status

    assert asyncio.run(first()) == "sent"
    gw = made["gw"]
    with pytest.raises(WrongEventLoop, match="used by an event loop that is now closed") as caught:
        asyncio.run(gw.tenant("acme").send("08031234562", "two"))
    assert caught.value.closed
    assert isinstance(caught.value, RuntimeError)
    _collect()
    assert _messages(gw) == [("+2348031234561", "sent")]  # nothing logged, nothing left queued
    assert _numbers(squad) == ["08031234561"]


def test_an_aiohttp_client_of_its_own_session_is_handed_over(
        sms_emulator: Callable[..., Any], tmp_path: Path) -> None:
    """Held before: ``AiohttpClient`` opens a session for each new loop itself."""
    pytest.importorskip("aiohttp")
    from smsgate.aio import AiohttpClient

    squad = sms_emulator("squad")
    gw = AsyncGateway(_config(tmp_path, squad), http_client=AiohttpClient())
    for n in (1, 2):
        assert asyncio.run(gw.tenant("acme").send(f"0803123456{n}", "hi")).status == "sent"
    _collect()
    assert len(squad.processed("/sms/send/instant")) == 2
