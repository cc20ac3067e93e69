"""A hook registered on a gateway is that gateway's (docs/observability.md, docs/inbound.md).

Gateways built without ``plugins=`` shared the process-wide plugin manager, so a hook
registered on one (``gw.plugins.register(OpenTelemetry())``) ran for every gateway of the
process, and registering it on each of two gateways, as the docs show, counted every send
twice in both. Each gateway now starts from the process-wide manager's plugins (the installed
providers and anything registered on :func:`smsgate.plugins.default_plugins`) and keeps what is
registered on it to itself. Sends are counted from a hook of the test's own, through the echo
vendor's emulator on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import smsgate.plugins
from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import AsyncGateway, Gateway, hookimpl
from smsgate.models import OutboundMessage, SendResult
from smsgate.plugins import PluginManager, default_plugins
from smsgate.testing import LiveServer


class Counter:
    def __init__(self) -> None:
        self.sent: list[str] = []

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: OutboundMessage, result: SendResult) -> None:
        self.sent.append(message.to)


@pytest.fixture
def cfg(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    monkeypatch.setattr(smsgate.plugins, "_default", pm)
    with LiveServer(create_emulator()) as server:
        yield {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": {
            "plugin": "echo", "base_url": server.url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}}}}}


def test_a_hook_registered_on_one_gateway_does_not_run_for_another(cfg: dict[str, Any]) -> None:
    first, second = Counter(), Counter()
    with Gateway(cfg) as a, Gateway(cfg) as b:
        a.plugins.register(first)
        b.plugins.register(second)
        a.tenant("acme").send("08031234567", "hi")
        b.tenant("acme").send_many(["08031234568", "08031234569"], "hi")
    assert first.sent == ["+2348031234567"]
    assert sorted(second.sent) == ["+2348031234568", "+2348031234569"]


def test_an_async_gateway_keeps_its_hooks_and_sharing_shares_them(cfg: dict[str, Any]) -> None:
    mine, other = Counter(), Counter()

    async def main() -> None:
        with Gateway(cfg) as sync:
            sync.plugins.register(other)
            async with AsyncGateway(cfg) as gw:
                gw.plugins.register(mine)
                await gw.tenant("acme").send("08031234567", "hi")
            async with AsyncGateway.sharing(sync) as shared:  # shares the sync gateway's plugins
                await shared.tenant("acme").send("08031234568", "hi")

    asyncio.run(main())
    assert mine.sent == ["+2348031234567"]
    assert other.sent == ["+2348031234568"]


def test_a_hook_registered_on_the_process_wide_manager_runs_for_every_later_gateway(cfg: dict[str, Any]) -> None:
    everywhere = Counter()
    default_plugins().register(everywhere)
    with Gateway(cfg) as a, Gateway(cfg) as b:
        a.tenant("acme").send("08031234567", "hi")
        b.tenant("acme").send("08031234568", "hi")
    assert sorted(everywhere.sent) == ["+2348031234567", "+2348031234568"]


def test_a_plugin_asking_for_the_hooks_while_it_is_imported_does_not_deadlock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading ``hook`` loads the manager's plugins (a fresh gateway's first hook must find them):
    a plugin module that reads ``default_plugins().hook`` as it is imported asked for the loading
    it was part of, on the lock its own import held, and the process hung."""
    import threading

    pm = PluginManager()
    asked: list[object] = []

    class EntryPoint:
        name, value = "selfish", "selfish_plugin"

        def load(self) -> object:
            asked.append(pm.hook)  # what a plugin's import-time code might do
            return EchoPlugin()

    monkeypatch.setattr(smsgate.plugins, "entry_points", lambda group: [EntryPoint()])
    monkeypatch.delenv("SMSGATE_PLUGINS", raising=False)
    done = threading.Thread(target=lambda: pm.hook, daemon=True)
    done.start()
    done.join(10)
    assert not done.is_alive(), "loading the plugins deadlocked"
    assert asked and "echo" in pm.providers()
