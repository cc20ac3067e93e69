"""A new user deploying smsgate web apps (FastAPI under a pre-forking server, tests with a
module- or session-scoped ``AsyncGateway`` across function-scoped event loops), from the docs.

Claims about what reached the vendor are read from the emulator's own record of requests.
"""

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

from smsgate import AsyncGateway, Gateway, WrongEventLoop
from smsgate.config import Settings, TenantConfig


def _config(tmp_path: Path, emulator: Any) -> Settings:
    return Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"bc": emulator.provider_settings()})})


def _sent_to(emulator: Any) -> list[str]:
    """The numbers the vendor (the Broadcast emulator) took a message for, from its own record."""
    return [r.json()["to"] for r in emulator.processed("/api/v1/broadcast", "POST")]


def _look_ups(emulator: Any) -> int:
    return len(emulator.requests("/api/v1/broadcast/", "GET"))


def _collect() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def no_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the ``fast`` extra: the gateway's own client is an ``httpx.AsyncClient``."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a))


# ---------------------------------------------------------------- status look-ups across loops
# A session-scoped gateway, one event loop per test (asyncio.run per test, as pytest-asyncio's
# function-scoped loops): one test looks a status up, the next sends. The hand-over to a new loop
# happened on sends and campaign runs only; a look-up (tenant.status(), sync_statuses(),
# look_up(), run()) used the client's kept-alive connections of a closed loop.

def test_a_send_after_a_status_look_up_in_a_closed_loop_reaches_the_vendor_once_and_is_logged(
        sms_emulator: Callable[..., Any], tmp_path: Path, no_aiohttp: None) -> None:
    vendor = sms_emulator("broadcast")
    with Gateway(_config(tmp_path, vendor)) as earlier:  # a message sent by another process
        mid = earlier.tenant("acme").send("08031234560", "earlier").message_id
    gw = AsyncGateway(_config(tmp_path, vendor))
    assert isinstance(gw._client, httpx.AsyncClient)
    acme = gw.tenant("acme")
    assert asyncio.run(acme.status(mid)).status == "submitted"  # test 1's loop: a look-up only
    assert _look_ups(vendor) == 1
    # test 2's loop: before, written on test 1's connection: the vendor took it, then a bare
    # RuntimeError('Event loop is closed') and the message left queued
    result = asyncio.run(acme.send("08031234561", "your code is 123456"))
    assert result.status == "submitted"
    assert _sent_to(vendor) == ["2348031234560", "2348031234561"]

    async def statuses() -> list[tuple[str, str]]:
        return sorted((m.to, m.status.value) for m in await acme.messages())
    assert asyncio.run(statuses()) == [("+2348031234560", "submitted"), ("+2348031234561", "submitted")]
    asyncio.run(gw.aclose())
    _collect()


def test_a_status_look_up_after_a_send_in_a_closed_loop_is_answered(
        sms_emulator: Callable[..., Any], tmp_path: Path, no_aiohttp: None) -> None:
    vendor = sms_emulator("broadcast")
    gw = AsyncGateway(_config(tmp_path, vendor))
    acme = gw.tenant("acme")
    mid = asyncio.run(acme.send("08031234562", "hi")).message_id
    # before: MalformedResponse "the adapter's status() failed: RuntimeError('Event loop is closed')",
    # blaming the provider, after the request reached the vendor
    assert asyncio.run(acme.status(mid)).status == "submitted"
    summary = asyncio.run(acme.sync_statuses(older_than=0))
    assert summary.errors == 0 and summary.looked_up == 1, summary
    assert _look_ups(vendor) >= 2
    assert _sent_to(vendor) == ["2348031234562"]
    asyncio.run(gw.aclose())
    _collect()


def test_a_given_httpx_client_a_closed_loop_used_is_refused_for_a_look_up_before_any_request(
        sms_emulator: Callable[..., Any], tmp_path: Path) -> None:
    vendor = sms_emulator("broadcast")
    gw = AsyncGateway(_config(tmp_path, vendor), http_client=httpx.AsyncClient())
    acme = gw.tenant("acme")
    mid = asyncio.run(acme.send("08031234563", "hi")).message_id
    for look in (lambda: acme.status(mid), lambda: acme.sync_statuses(older_than=0)):
        with pytest.raises(WrongEventLoop) as caught:
            asyncio.run(look())
        assert caught.value.closed and "pass no http_client" in str(caught.value)
    assert _look_ups(vendor) == 0  # nothing written on the closed loop's connection
    assert _sent_to(vendor) == ["2348031234563"]
    _collect()
