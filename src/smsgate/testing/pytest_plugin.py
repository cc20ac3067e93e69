"""pytest plugin (entry point ``pytest11``, loaded automatically): fixtures for testing apps.

* ``sms_outbox`` — the :data:`smsgate.testing.outbox` the ``memory`` provider fills,
  cleared before and after each test; ``sms_outbox.assert_sent(to=..., text=...)``;
* ``sms_gateway`` — a :class:`~smsgate.Gateway` whose tenant ``"test"`` sends through
  the ``memory`` provider (instance ``"memory"``) into ``sms_outbox``; ``sms_region``
  (``None`` unless overridden) is the tenant's region;
* ``sms_emulator`` — ``sms_emulator("squad")`` serves that provider's emulator on a
  loopback port: a :class:`~smsgate.testing.sandbox.RunningEmulator` with fault
  injection, the emulator's request record, ``.gateway()`` and ``.assert_sent(...)``;
* ``serve_app`` — ``serve_app(asgi_app)`` serves any ASGI app on a loopback port and
  returns its base URL.

See docs/testing.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from smsgate.testing.sent import Outbox, outbox
from smsgate.testing.server import LiveServer

if TYPE_CHECKING:  # the gateway is imported when a fixture needs it, not at plugin load
    from smsgate.gateway import Gateway
    from smsgate.testing.sandbox import RunningEmulator


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    """Start ASGI apps on loopback ports; returns a function ``serve_app(app) -> base_url``.

    Each app runs under uvicorn in a thread until the end of the test.
    """
    servers: list[LiveServer] = []

    def start(app: Any) -> str:
        server = LiveServer(app).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sms_outbox() -> Iterator[Outbox]:
    """The outbox of the ``memory`` provider, empty at the start of the test (and cleared after)."""
    outbox.clear()
    yield outbox
    outbox.clear()


@pytest.fixture
def sms_region() -> str | None:
    """The region ``sms_gateway``'s tenant reads national numbers with (``None``: E.164 only);
    override it in a ``conftest.py`` (``return "NG"``)."""
    return None


@pytest.fixture
def sms_gateway(sms_outbox: Outbox, sms_region: str | None) -> Iterator[Gateway]:
    """A gateway (in-memory store) with tenant ``"test"`` sending through the ``memory`` provider
    (instance ``"memory"``) into ``sms_outbox``; its region is the ``sms_region`` fixture."""
    from smsgate.config import Settings, TenantConfig
    from smsgate.gateway import Gateway
    from smsgate.plugins import PluginManager
    from smsgate.provider import ProviderSettings
    from smsgate.store.memory import MemoryStore
    from smsgate.testing.memory import MemoryProvider

    plugins = PluginManager(load_entry_points=False)
    plugins.add_provider(MemoryProvider)
    settings = Settings(store="memory://", tenants={
        "test": TenantConfig(default_region=sms_region, providers={"memory": ProviderSettings(plugin="memory")})})
    with Gateway(settings, store=MemoryStore(), plugins=plugins) as gw:
        yield gw


@pytest.fixture
def sms_emulator() -> Iterator[Callable[[str], RunningEmulator]]:
    """Serve installed provider emulators: ``sms_emulator("squad")`` -> a running emulator with
    fault injection (``add``, ``faults``, ``clear_faults``), its request record (``requests``,
    ``processed``), ``gateway()`` and ``assert_sent``; stopped at the end of the test."""
    from smsgate.testing.sandbox import start_emulator

    running: list[RunningEmulator] = []

    def start(name: str) -> RunningEmulator:
        emulator = start_emulator(name)
        running.append(emulator)
        return emulator

    yield start
    for emulator in running:
        emulator.stop()
