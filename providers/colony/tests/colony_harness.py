"""Test helpers for the Colony tests: one scenario driven by the sync or the async gateway.

``Harness.run(op)`` drives a provider operation through ``Gateway`` (httpx.Client) or
through ``AsyncGateway`` (httpx.AsyncClient on an event loop in a helper thread), so the
same test body proves both drivers run the same sans-I/O code.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from smsgate.config import Settings, TenantConfig
from smsgate.gateway import AsyncGateway, Gateway
from smsgate.models import SendResult
from smsgate.plugins import PluginManager
from smsgate.provider import Operation, Paged, Provider, ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing.server import LiveServer
from smsgate_colony import ColonyProvider
from smsgate_colony.emulator import SANDBOX_CREDENTIALS

T = TypeVar("T")

TENANT = "acme"
NUMBER = "+27815854565"
NUMBER2 = "+27825550123"
NUMBER3 = "+27835550124"
FAILING = "+27815854569"  # ends in 9: the emulator reports it unsent


def colony_settings(base_url: str, **options: Any) -> ProviderSettings:
    """Settings for a colony instance against an emulator at ``base_url``."""
    return ProviderSettings(
        plugin="colony", base_url=base_url, credentials=dict(SANDBOX_CREDENTIALS),
        options=options, max_retries=1,
    )


def settings_for(providers: dict[str, ProviderSettings]) -> Settings:
    """One tenant ``acme`` (region ZA) with the given provider instances."""
    return Settings(store="memory://", tenants={
        TENANT: TenantConfig(default_region="ZA", providers=providers),
    })


def plugins(*classes: type[Provider]) -> PluginManager:
    """A plugin manager knowing only ``classes`` (no entry points)."""
    pm = PluginManager(load_entry_points=False)
    for cls in (ColonyProvider, *classes):
        pm.add_provider(cls)
    return pm


class Harness:
    """A tenant handle whose calls look synchronous whichever gateway drives them."""

    mode = "sync"

    def __init__(self, settings: Settings, pm: PluginManager) -> None:
        self.gw = Gateway(settings, store=MemoryStore(), plugins=pm)
        self.tenant: Any = self.gw.tenant(TENANT)

    def provider(self, instance: str = "colony") -> ColonyProvider:
        prov = self.tenant.provider(instance)
        assert isinstance(prov, ColonyProvider)
        return prov

    def run(self, op: Operation[T], instance: str = "colony") -> T:
        return self.tenant.run(instance, op)  # type: ignore[no-any-return]

    def iterate(self, paged: Paged[T], instance: str = "colony") -> list[T]:
        return list(self.tenant.iterate(instance, paged))

    def send(self, to: str, text: str, **kw: Any) -> SendResult:
        return self.tenant.send(to, text, **kw)  # type: ignore[no-any-return]

    def send_many(self, numbers: list[Any], text: str | None = None, **kw: Any) -> list[SendResult]:
        return self.tenant.send_many(numbers, text, **kw)  # type: ignore[no-any-return]

    def sync_optouts(self, provider: str | None = None) -> int:
        return self.tenant.optouts.sync(provider)  # type: ignore[no-any-return]

    def opted_out(self, phone: str) -> bool:
        return self.tenant.optouts.check(phone)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.gw.close()


class AsyncHarness(Harness):
    """The same API, driven by :class:`AsyncGateway` on a private event loop."""

    mode = "async"

    def __init__(self, settings: Settings, pm: PluginManager) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make() -> AsyncGateway:
            return AsyncGateway(settings, store=MemoryStore(), plugins=pm)

        self.agw = self._wait(make())
        self.tenant = self.agw.tenant(TENANT)

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def run(self, op: Operation[T], instance: str = "colony") -> T:
        return self._wait(self.tenant.run(instance, op))

    def iterate(self, paged: Paged[T], instance: str = "colony") -> list[T]:
        async def collect() -> list[T]:
            return [item async for item in self.tenant.iterate(instance, paged)]

        return self._wait(collect())

    def send(self, to: str, text: str, **kw: Any) -> SendResult:
        return self._wait(self.tenant.send(to, text, **kw))

    def send_many(self, numbers: list[Any], text: str | None = None, **kw: Any) -> list[SendResult]:
        return self._wait(self.tenant.send_many(numbers, text, **kw))

    def sync_optouts(self, provider: str | None = None) -> int:
        return self._wait(self.tenant.optouts.sync(provider))

    def opted_out(self, phone: str) -> bool:
        return self._wait(self.tenant.optouts.check(phone))

    def close(self) -> None:
        self._wait(self.agw.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@contextmanager
def harness(mode: str, settings: Settings, pm: PluginManager) -> Iterator[Harness]:
    """A sync or async harness, closed afterwards."""
    h = Harness(settings, pm) if mode == "sync" else AsyncHarness(settings, pm)
    try:
        yield h
    finally:
        h.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve ``app`` on loopback; yields its base URL.

    Sets TCP_NODELAY on the listening socket (accepted sockets inherit it): without it
    every loopback request waits ~40 ms for a delayed ACK (see the report on LiveServer).
    """
    server = LiveServer(app)
    sock = getattr(server, "_sock", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with server:
        yield server.url
