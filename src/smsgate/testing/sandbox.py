"""An installed provider emulator on a loopback port, with a gateway wired to it, for app tests.

:func:`start_emulator` serves the emulator a provider package registers (entry point
``smsgate.emulators``, as ``smsgate sandbox`` does) and returns a
:class:`RunningEmulator`: fault injection (:meth:`~RunningEmulator.add`,
:meth:`~RunningEmulator.faults`, :meth:`~RunningEmulator.clear_faults`), the
emulator's own record of requests (:meth:`~RunningEmulator.requests`,
:meth:`~RunningEmulator.processed`), gateways configured for it
(:meth:`~RunningEmulator.gateway`) and the provider-neutral :attr:`~RunningEmulator.outbox`
those gateways fill. The ``sms_emulator`` pytest fixture wraps it.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from smsgate.config import Settings, TenantConfig
from smsgate.emulation import EmulatorControl, FaultRule, RecordedRequest
from smsgate.errors import ConfigError
from smsgate.gateway import Gateway
from smsgate.plugins import ENTRY_POINT_GROUP as PROVIDER_GROUP
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing.sent import Outbox, SendRecorder, SentMessage, TextMatch
from smsgate.testing.server import LiveServer

__all__ = ["EMULATOR_GROUP", "RunningEmulator", "start_emulator"]

#: The entry-point group provider packages register their emulators in.
EMULATOR_GROUP = "smsgate.emulators"


class RunningEmulator:
    """One provider emulator served on loopback (see the module docstring). Call :meth:`stop`."""

    def __init__(self, name: str, app: Any, plugin: object, credentials: dict[str, str],
                 settings: dict[str, Any]) -> None:
        self.name = name
        self._plugin = plugin
        self._server = LiveServer(app).start()
        #: the emulator's base URL (``http://127.0.0.1:PORT``)
        self.url: str = self._server.url
        #: drives the emulator's ``/_emulator`` endpoints
        self.control = EmulatorControl(self.url)
        #: what the providers of :meth:`gateway` gateways accepted, provider-neutral
        self.outbox = Outbox()
        self._credentials = credentials
        self._settings = settings
        self._gateways: list[Gateway] = []

    # ------------------------------------------------------------ faults and the record
    def add(self, *rules: FaultRule) -> list[FaultRule]:
        """Inject faults (:class:`~smsgate.emulation.FaultRule`), e.g. ``FaultRule.error(503, count=1)``."""
        return self.control.add(*rules)

    def fault(self, **rule: Any) -> FaultRule:
        """Inject one fault given as :class:`~smsgate.emulation.FaultRule` fields."""
        return self.control.fault(**rule)

    def faults(self) -> list[FaultRule]:
        """The faults still active."""
        return self.control.faults()

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.control.clear_faults()

    def requests(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """Every request the emulator received (optionally under ``path``, with ``method``)."""
        return self.control.requests(path, method)

    def processed(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """The requests the emulated vendor acted on (a fault may have replaced the answer)."""
        return self.control.processed(path, method)

    def reset(self) -> None:
        """Clear the emulator's record and faults, and :attr:`outbox`."""
        self.control.reset()
        self.outbox.clear()

    # ------------------------------------------------------------ gateways
    def provider_settings(self, **overrides: Any) -> ProviderSettings:
        """Settings of a provider instance using this emulator (its sandbox credentials)."""
        block: dict[str, Any] = {"plugin": self.name, "base_url": self.url, "sender": "SMSGATE", **self._settings}
        block["credentials"] = {**self._credentials, **block.get("credentials", {})}
        block.update(overrides)
        return ProviderSettings.model_validate(block)

    def gateway(self, tenant: str = "test", *, region: str | None = None, instance: str | None = None,
                **overrides: Any) -> Gateway:
        """A :class:`~smsgate.Gateway` (in-memory store) whose tenant ``tenant`` sends through this
        emulator as instance ``instance`` (default: the plugin name); accepted messages are filed
        in :attr:`outbox`. ``overrides`` are :class:`~smsgate.provider.ProviderSettings` fields.
        Closed by :meth:`stop`."""
        settings = Settings(store="memory://", tenants={tenant: TenantConfig(
            default_region=region, providers={instance or self.name: self.provider_settings(**overrides)})})
        plugins = PluginManager(load_entry_points=False)  # this plugin, whatever SMSGATE_PLUGINS says
        plugins.register(self._plugin, name=self.name)
        plugins.register(SendRecorder(self.outbox))
        gw = Gateway(settings, store=MemoryStore(), plugins=plugins)
        self._gateways.append(gw)
        return gw

    def assert_sent(self, to: str | None = None, text: TextMatch | None = None, count: int | None = None, *,
                    tenant: str | None = None) -> list[SentMessage]:
        """:meth:`Outbox.assert_sent` on :attr:`outbox`."""
        return self.outbox.assert_sent(to, text, count, tenant=tenant)

    def assert_not_sent(self, to: str | None = None, text: TextMatch | None = None, *,
                        tenant: str | None = None) -> None:
        """:meth:`Outbox.assert_not_sent` on :attr:`outbox`."""
        self.outbox.assert_not_sent(to, text, tenant=tenant)

    def stop(self) -> None:
        """Close the gateways made here and stop the server."""
        try:
            for gw in self._gateways:
                gw.close()
        finally:
            self._server.stop()

    def __repr__(self) -> str:
        return f"<RunningEmulator {self.name} {self.url}>"


def start_emulator(name: str) -> RunningEmulator:
    """Serve the installed emulator of provider plugin ``name`` (e.g. ``"squad"``)."""
    eps = {ep.name: ep for ep in entry_points(group=EMULATOR_GROUP)}
    try:
        ep = eps[name]
    except KeyError:
        raise ConfigError(f"no emulator {name!r} installed (installed: {', '.join(sorted(eps)) or 'none'}; "
                          f"install the provider package with its [emulator] extra)") from None
    plugins = [p for p in entry_points(group=PROVIDER_GROUP) if p.name == name]
    if not plugins:
        raise ConfigError(f"the emulator {name!r} is installed but no provider plugin {name!r} is")
    plugin = plugins[0].load()
    own = PluginManager(load_entry_points=False)  # this plugin, whatever SMSGATE_PLUGINS says
    own.register(plugin, name=name)
    account = own.sandbox_account(name)
    return RunningEmulator(name, ep.load()(), plugin, dict(account.credentials), dict(account.settings))
