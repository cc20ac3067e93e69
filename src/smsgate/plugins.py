"""Plugin discovery: pluggy + the ``smsgate.providers`` entry-point group.

Built-in and third-party providers load the same way: a distribution declares::

    [project.entry-points."smsgate.providers"]
    squad = "smsgate_squad"

and that module implements ``register_providers(register)``. Entry points load
lazily, once, on first use. ``SMSGATE_PLUGINS`` (a comma-separated list of entry
point names) restricts which installed plugins load; set it to an empty string to
load none (tests register what they need explicitly).

One broken plugin never stops the others: a plugin whose module fails to import, whose
``register_providers`` raises or registers something that is not a provider class is left
out (logged once, and kept in :meth:`PluginManager.broken`), and only a tenant naming it gets
its error; a provider name two plugins register is refused for both (no plugin silently
replaces another's provider), the others load.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from smsgate import hookspecs
from smsgate.errors import ConfigError, UnknownProvider
from smsgate.keyhints import closest
from smsgate.provider import Capabilities, Provider, setting_name, unimplemented_capabilities

if TYPE_CHECKING:
    from smsgate.config import TenantConfig
    from smsgate.provider import ProviderSettings

__all__ = ["ENTRY_POINT_GROUP", "PluginManager", "build_provider", "check_tenant", "default_plugins",
           "sandbox_account"]

ENTRY_POINT_GROUP = "smsgate.providers"

log = logging.getLogger("smsgate.plugins")


class PluginManager:
    """Typed wrapper around :class:`pluggy.PluginManager`.

    ``load_entry_points=False`` gives an empty manager (for tests and embedding);
    register plugins with :meth:`register` or provider classes with
    :meth:`add_provider`.
    """

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._load_entry_points = load_entry_points
        self._loaded = False
        self._lock = threading.RLock()
        self._loading = False  # this manager's plugins are being imported (by the thread holding the lock)
        self._providers: dict[str, type[Provider]] = {}
        self._collected = False
        self._base: PluginManager | None = None
        #: plugins left out, by name: why (an import error, a failing register_providers hook)
        self._broken: dict[str, str] = {}
        #: provider names two plugins register, by name: the error naming both
        self._conflicts: dict[str, str] = {}

    def derive(self) -> PluginManager:
        """A manager that starts with this one's plugins and provider classes (read when it is
        first used) and keeps what is registered on it to itself.

        Each :class:`~smsgate.Gateway` built without ``plugins=`` has one derived from
        :func:`default_plugins`: a hook registered on ``gateway.plugins`` runs for that
        gateway only, while a hook registered on the process-wide manager runs for every
        gateway built after it.
        """
        child = PluginManager(load_entry_points=False)
        child._base = self
        return child

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``hook.smsgate_after_send(...)``), with the manager's plugins
        loaded: a hook may run before any provider is built (a fresh gateway's
        ``recover_queued`` tells ``smsgate_on_status``), and must find every plugin then."""
        if not self._loaded:
            self._ensure_loaded()
        return self.pm.hook

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded or self._loading:  # (a plugin asking for the hooks while it is imported)
                return
            self._loading = True
            try:
                self._load()
            finally:
                self._loading = False

    def _load(self) -> None:
        """Register the plugins this manager starts with (its base's, its entry points'); under the lock."""
        if self._base is not None:
            base = self._base
            base._ensure_loaded()
            for name, plugin in base.pm.list_name_plugin():
                if not self.pm.is_registered(plugin) and (name is None or self.pm.get_plugin(name) is None):
                    self.pm.register(plugin, name=name)
            for name, cls in base.providers().items():
                self._providers.setdefault(name, cls)
            self._broken.update(base._broken)
            self._conflicts.update(base._conflicts)
        if self._load_entry_points:
            allow = os.environ.get("SMSGATE_PLUGINS")
            allowed = (
                None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
            )
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if allowed is not None and ep.name not in allowed:
                    continue
                if self.pm.get_plugin(ep.name) is not None:
                    continue
                try:
                    module = ep.load()
                except Exception as exc:  # a broken third-party install: the others load
                    self._left_out(ep.name, f"provider plugin {ep.name!r} ({ep.value}) failed to import: "
                                            f"{type(exc).__name__}: {exc}")
                    continue
                self.pm.register(module, name=ep.name)
                try:
                    _refuse_async_hooks(self.pm, module)
                except ConfigError as exc:
                    self.pm.unregister(module)
                    self._left_out(ep.name, f"provider plugin {ep.name!r} ({ep.value}): {exc}")
        self.pm.check_pending()
        self._loaded = True

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module implementing smsgate hooks.

        A hook written ``async def`` is a :class:`ConfigError` naming it, and the plugin is not
        registered: hooks are called, never awaited (on an ``AsyncGateway`` too), so its
        coroutine would be dropped unrun.
        """
        if self._base is not None:
            self._ensure_loaded()  # the plugins it starts with are registered before its own
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
            _refuse_async_hooks(self.pm, plugin)
        except BaseException:
            self.pm.unregister(plugin)
            raise
        self._collected = False

    def add_provider(self, cls: type[Provider]) -> None:
        """Register one provider class directly."""
        self._validate(cls)
        self._providers[cls.name] = cls

    @staticmethod
    def _validate(cls: type[Provider]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ConfigError(f"{cls!r} is not a smsgate Provider subclass")
        if not cls.name:
            raise ConfigError(f"provider class {cls.__qualname__} has no 'name'")

    def _left_out(self, plugin: str, why: str) -> None:
        if self._broken.get(plugin) != why:
            log.error("%s; the plugin is left out (the other plugins load)", why)
        self._broken[plugin] = why

    def broken(self) -> dict[str, str]:
        """The plugins left out, by name, with why (an import error, a failing ``register_providers``
        hook), and each provider name two plugins register with the error naming both."""
        self.providers()
        return {**self._broken, **self._conflicts}

    def providers(self) -> dict[str, type[Provider]]:
        """All registered provider classes by plugin name (a broken plugin's left out, see
        :meth:`broken`)."""
        self._ensure_loaded()
        if not self._collected:
            hook = self.pm.hook.register_providers
            plugins: list[object] = []
            for impl in hook.get_hookimpls():
                if not any(impl.plugin is p for p in plugins):
                    plugins.append(impl.plugin)
            owners: dict[str, dict[type[Provider], str]] = {}
            for plugin in plugins:  # one at a time: one raising leaves the others' providers in
                name = self.pm.get_name(plugin) or repr(plugin)
                what = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__qualname__
                found: dict[str, type[Provider]] = {}

                def register(cls: type[Provider], found: dict[str, type[Provider]] = found) -> None:
                    self._validate(cls)
                    found[cls.name] = cls

                try:
                    self.pm.subset_hook_caller("register_providers",
                                               [p for p in plugins if p is not plugin])(register=register)
                except Exception as exc:
                    self._left_out(name, f"provider plugin {what}: register_providers failed: "
                                         f"{type(exc).__name__}: {exc}")
                    continue
                for provider, cls in found.items():
                    owners.setdefault(provider, {}).setdefault(cls, what)
            for provider, by_class in owners.items():
                if len(by_class) > 1 and provider not in self._providers:
                    said = " and ".join(f"{what} ({cls.__module__}.{cls.__qualname__})"
                                        for cls, what in by_class.items())
                    why = (f"provider plugin name {provider!r} is registered by two plugins: {said}; neither is "
                           "used: uninstall one, or list the plugins to load in SMSGATE_PLUGINS")
                    if self._conflicts.get(provider) != why:
                        log.error("%s", why)
                    self._conflicts[provider] = why
                    continue
                self._providers.setdefault(provider, next(iter(by_class)))
            self._collected = True
        return dict(self._providers)

    def get_provider_class(self, name: str) -> type[Provider]:
        """The provider class registered as ``name``; a :class:`ConfigError` with why when the plugin
        of that name is broken or two plugins register the name, else :class:`UnknownProvider`."""
        providers = self.providers()
        try:
            return providers[name]
        except KeyError:
            pass
        why = self._conflicts.get(name) or self._broken.get(name)
        if why is not None:
            raise ConfigError(why)
        raise UnknownProvider(name, providers) from None

    def sandbox_account(self, name: str) -> hookspecs.SandboxAccount:
        """The account provider plugin ``name``'s emulator accepts (hook ``smsgate_sandbox_account``)."""
        self._ensure_loaded()
        account = self.pm.hook.smsgate_sandbox_account(plugin=name)
        if account is None:
            raise ConfigError(f"provider plugin {name!r} declares no sandbox account for its emulator "
                              "(it must implement the smsgate_sandbox_account hook)")
        if not isinstance(account, hookspecs.SandboxAccount):
            raise ConfigError(f"provider plugin {name!r}: smsgate_sandbox_account returned "
                              f"{type(account).__name__}, not a SandboxAccount")
        port = account.port
        if port is not None and (type(port) is not int or not 1 <= port <= 65535):
            raise ConfigError(f"provider plugin {name!r}: its SandboxAccount's port {port!r} is not a port (1..65535)")
        return account

    def names(self) -> Iterable[str]:
        """Names of registered providers."""
        return sorted(self.providers())


def _refuse_async_hooks(pm: pluggy.PluginManager, plugin: object) -> None:
    """A :class:`ConfigError` when one of ``plugin``'s hook implementations is a coroutine function."""
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and inspect.iscoroutinefunction(impl.function):
                what = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__qualname__
                raise ConfigError(f"plugin {what}: hook "
                                  f"{caller.name} is async: smsgate calls hooks and never awaits them (on an "
                                  "AsyncGateway too), so it would never run; make it a plain function (it may "
                                  "schedule a task of its own)")


_default: PluginManager | None = None


def default_plugins() -> PluginManager:
    """The process-wide manager that loads installed entry points."""
    global _default
    if _default is None:
        _default = PluginManager()
    return _default


def sandbox_account(name: str) -> hookspecs.SandboxAccount:
    """The sandbox account of installed provider plugin ``name`` (hook ``smsgate_sandbox_account``).

    The plugin is asked on its own, loaded from its entry point whatever ``SMSGATE_PLUGINS``
    says: its emulator is installed, so its account is wanted.
    """
    own = PluginManager(load_entry_points=False)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            own.register(ep.load(), name=name)
            break
    return own.sandbox_account(name)


def _misspelt_credentials(cls: type[Provider], settings: ProviderSettings) -> str:
    """For a provider that could not be built: each credential given that its plugin does not
    declare (:attr:`~smsgate.provider.Provider.secret_names`) and is close to one it does
    (``secret_kye``), named with that one; ``""`` if none. Names only, never values."""
    declared = sorted({setting_name(n) for n in cls.secret_names})
    hints = []
    for key in settings.credentials:
        if setting_name(key) not in declared:
            close = closest(setting_name(key), declared)
            if close:
                hints.append(f"; credentials.{key} is not a credential of plugin {settings.plugin!r}: "
                             f"did you mean credentials.{close}?")
    return "".join(hints)


def build_provider(plugins: PluginManager, tenant: str, instance: str, settings: ProviderSettings) -> Provider:
    """Provider instance ``instance`` of ``tenant``: its plugin's class built with ``settings``.

    Its plugin must be installed (:class:`~smsgate.errors.UnknownProvider`), and the plugin
    must accept its options, ``base_url`` and credentials (:class:`~smsgate.errors.ConfigError`).
    Either error names the key at fault as a path in smsgate.toml, in its message and its
    ``field`` (``tenants.acme.providers.main.plugin``, ``...main.options``).
    """
    where = f"tenants.{tenant}.providers.{instance}"
    try:
        cls = plugins.get_provider_class(settings.plugin)
    except UnknownProvider as exc:
        raise UnknownProvider(exc.name, exc.installed, field=f"{where}.plugin") from None
    except ConfigError as exc:  # its plugin is broken, or two plugins register its name
        raise ConfigError(f"{where}.plugin: {exc}", field=f"{where}.plugin") from None
    problem: ConfigError | None = None
    try:
        provider = cls(settings, instance_name=instance)
    except UnknownProvider:
        raise
    except ConfigError as exc:
        # raised anew, outside the except block: an options error must carry neither a cause
        # nor a context holding the inputs it hides
        problem = ConfigError(f"{where}: {exc}{_misspelt_credentials(cls, settings)}",
                              field=f"{where}.{exc.field}" if exc.field else where)
    if problem is not None:
        raise problem
    caps = provider.capabilities
    wrong = (f"its capabilities are a {type(caps).__name__}, not a smsgate.provider.Capabilities"
             if not isinstance(caps, Capabilities) else
             f"its max_batch is {caps.max_batch!r}: a bulk provider's is a whole number >= 1 (the most "
             "messages one send_many request carries)"
             if caps.bulk and (type(caps.max_batch) is not int or caps.max_batch < 1) else None)
    if wrong is not None:  # (max_batch "3" or None failed every bulk send with a bare TypeError)
        raise ConfigError(f"{where}: plugin {settings.plugin!r} ({cls.__module__}.{cls.__qualname__}): {wrong} "
                          "(see docs/writing-a-provider.md)", field=f"{where}.plugin")
    missing = unimplemented_capabilities(provider)
    if missing:
        said = ", ".join(f"{capability}=True without {operation}()" for capability, operation in missing)
        raise ConfigError(f"{where}: plugin {settings.plugin!r} ({cls.__module__}.{cls.__qualname__}) declares "
                          f"{said}: implement the operation, or leave the capability out of its Capabilities "
                          "(see docs/writing-a-provider.md)", field=f"{where}.plugin")
    return provider


def check_tenant(plugins: PluginManager, tenant: str, config: TenantConfig,
                 build: Callable[[str], Provider] | None = None) -> list[Provider]:
    """Check that tenant ``tenant`` can send: it has providers, each is built
    (:func:`build_provider`: plugin installed, options, ``base_url`` and credentials
    accepted), and each whose vendor needs a sender (:attr:`Provider.requires_sender`) has one.

    The one check of a tenant: ``smsgate config check`` (:meth:`Gateway.check
    <smsgate.Gateway.check>`) runs it on every tenant, and :meth:`StoredTenants.add
    <smsgate.tenants.StoredTenants.add>` on a tenant before storing it. ``build`` builds
    an instance (a gateway passes its own, which keeps what it built); returns the
    providers. Raises :class:`~smsgate.errors.ConfigError` naming the key at fault.
    """
    where = f"tenants.{tenant}"
    if not config.providers:
        raise ConfigError(f"{where}: no providers; add a [{where}.providers.NAME] table with plugin = \"...\" "
                          "(see docs/configuration.md)", field=f"{where}.providers")
    out = []
    for instance, settings in config.providers.items():
        prov = build(instance) if build is not None else build_provider(plugins, tenant, instance, settings)
        if prov.requires_sender and not (settings.sender or config.sender):
            raise ConfigError(
                f"{where}.providers.{instance}: {prov.name} needs a sender and none is set; add "
                f"sender = \"...\" (a sender ID registered with the vendor) under "
                f"[{where}.providers.{instance}] or [{where}]", field=f"{where}.providers.{instance}.sender")
        out.append(prov)
    return out
