"""Plugin discovery and hook specs."""

from __future__ import annotations

import importlib
import inspect
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy
import pytest
from pydantic import SecretStr

from reference_provider import EchoPlugin, EchoProvider
from smsgate import hookspecs
from smsgate.errors import ConfigError, UnknownProvider
from smsgate.plugins import PluginManager
from smsgate.provider import Provider, ProviderSettings, secret_options

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: The provider distributions this repository ships (providers/<name>/, plugin name = directory name).
SHIPPED = sorted(p.name for p in (ROOT / "providers").iterdir() if (p / "pyproject.toml").is_file())


def test_register_and_lookup() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    assert pm.get_provider_class("echo") is EchoProvider
    assert list(pm.names()) == ["echo"]
    with pytest.raises(UnknownProvider, match="installed providers: echo"):
        pm.get_provider_class("squadd")


def test_misspelt_hook_fails_loudly() -> None:
    class Typo:
        @hookspecs.hookimpl
        def register_provider(self, register: Any) -> None:  # missing "s"
            pass

    pm = PluginManager(load_entry_points=False)
    with pytest.raises(pluggy.PluginValidationError):
        pm.register(Typo())


def test_an_async_hook_is_refused_at_registration() -> None:
    """Hooks are called, never awaited: an ``async def smsgate_after_send`` registered on an
    AsyncGateway's plugins never ran (its coroutine dropped, a RuntimeWarning hidden by default).
    Registering it is a ConfigError naming the hook, and the plugin is left unregistered."""

    class Audit:
        @hookspecs.hookimpl
        def smsgate_before_send(self, tenant: str, message: Any) -> None:
            pass

        @hookspecs.hookimpl
        async def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
            pass

    pm = PluginManager(load_entry_points=False)
    audit = Audit()
    with pytest.raises(ConfigError, match=r"smsgate_after_send.*async") as info:
        pm.register(audit)
    assert "Audit" in str(info.value)
    assert not pm.pm.is_registered(audit)
    assert pm.hook.smsgate_before_send.get_hookimpls() == []  # none of its hooks is left behind


def test_non_provider_registration_rejected() -> None:
    class Bad:
        @hookspecs.hookimpl
        def register_providers(self, register: Any) -> None:
            register(dict)

    pm = PluginManager(load_entry_points=False)
    pm.register(Bad(), name="bad")
    assert pm.providers() == {}  # left out: the other plugins load (tests/test_plug.py)
    with pytest.raises(ConfigError, match=r"plugin .*Bad: register_providers failed: .*not a smsgate Provider"):
        pm.get_provider_class("bad")


def test_entry_points_load_and_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import entry_points

    installed = {ep.name for ep in entry_points(group="smsgate.providers")}
    if not installed:
        pytest.skip("no provider distributions installed")
    monkeypatch.delenv("SMSGATE_PLUGINS", raising=False)
    assert set(PluginManager().names()) >= installed
    name = sorted(installed)[0]
    monkeypatch.setenv("SMSGATE_PLUGINS", name)
    assert list(PluginManager().names()) == [name]
    monkeypatch.setenv("SMSGATE_PLUGINS", "")
    assert list(PluginManager().names()) == []


def test_every_hook_is_documented_and_tested() -> None:
    docs = "\n".join(p.read_text() for p in DOCS.rglob("*.md"))
    tests = "\n".join(
        p.read_text() for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_plugins.py"
    )
    hooks = [
        name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "smsgate_spec")
    ]
    assert hooks, "no hookspecs found"
    for name in hooks:
        assert name in docs, f"hook {name} is not documented in docs/"
        assert name in tests or name == "register_providers", f"hook {name} has no test"


def _sandbox_settings(plugin: str) -> list[ProviderSettings]:
    """Settings for ``plugin`` from its emulator module: one per ``SANDBOX[_X]_CREDENTIALS``."""
    emulators = {ep.name: ep for ep in entry_points(group="smsgate.emulators")}
    if plugin not in emulators:
        pytest.skip(f"{plugin} is not installed with its emulator")
    module = importlib.import_module(emulators[plugin].module)
    extra = {k: v for k, v in getattr(module, "SANDBOX_SETTINGS", {}).items() if k not in ("plugin", "credentials")}
    out = []
    for attr in sorted(vars(module)):
        match = re.fullmatch(r"SANDBOX_(\w+_)?CREDENTIALS", attr)
        if match:
            options = getattr(module, f"SANDBOX_{match.group(1) or ''}OPTIONS", extra.get("options", {}))
            out.append(ProviderSettings(**{**extra, "options": options}, plugin=plugin,
                                        base_url="http://127.0.0.1:9", credentials=getattr(module, attr)))
    assert out, f"{module.__name__} has no SANDBOX_CREDENTIALS"
    return out


def plain_secrets(obj: object, secrets: list[str], depth: int = 0, seen: set[int] | None = None) -> list[str]:
    """Where in ``obj`` (its attributes, containers, nested objects) a secret sits as plain text."""
    seen = set() if seen is None else seen
    if depth > 8 or id(obj) in seen or isinstance(obj, (SecretStr, type, int, float, bool)) or obj is None:
        return []
    seen.add(id(obj))
    if isinstance(obj, (str, bytes)):
        text = obj if isinstance(obj, str) else obj.decode("latin-1")
        return [f" = {s!r}" for s in secrets if s in text]
    found: list[str] = []
    items: list[tuple[str, object]]
    if isinstance(obj, dict):
        items = [(f"[{k!r}]", v) for k, v in obj.items()] + [("<key>", k) for k in obj]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = [(f"[{i}]", v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__") and not inspect.isroutine(obj) and not inspect.ismodule(obj):
        items = [(f".{k}", v) for k, v in vars(obj).items()]
    else:
        return []
    for where, value in items:
        found.extend(f"{where}{inner}" for inner in plain_secrets(value, secrets, depth + 1, seen))
    return found


@pytest.mark.parametrize("plugin", SHIPPED)
def test_provider_objects_keep_no_plain_secret(plugin: str) -> None:
    """``vars()``, ``repr()`` (and any attribute below them) of a provider show no credential value."""
    cls: type[Provider] = PluginManager().get_provider_class(plugin)
    for settings in _sandbox_settings(plugin):
        provider = cls(settings, instance_name="p")
        secrets = [v.get_secret_value() for v in settings.credentials.values() if len(v.get_secret_value()) >= 4]
        assert secrets
        assert not [s for s in secrets if s in repr(provider) or s in repr(vars(provider))], plugin
        assert plain_secrets(vars(provider), secrets) == [], plugin


def test_the_secret_walk_finds_nested_plain_values() -> None:
    class Holder:
        def __init__(self) -> None:
            self.ok = {"key": SecretStr("hidden-1")}
            self.bad = [("x", {"token": "hidden-2"})]

    assert plain_secrets(vars(Holder()), ["hidden-1", "hidden-2"]) == ["['bad'][0][1]['token'] = 'hidden-2'"]



@pytest.mark.parametrize("plugin", SHIPPED)
def test_every_credential_is_a_declared_secret_and_no_option_is(plugin: str) -> None:
    """``Provider.secret_names``: the sandbox credentials of every shipped plugin are declared
    secret (so one passed under ``options`` is refused, see tests/test_tenants_runtime.py),
    and none of the plugin's own options is (they stay usable)."""
    cls: type[Provider] = PluginManager().get_provider_class(plugin)
    for settings in _sandbox_settings(plugin):
        if plugin != "generic_http":  # its credentials are named by the user's templates
            assert secret_options(cls, settings.credentials) == sorted(settings.credentials), plugin
        with pytest.raises(ConfigError, match=r"options\.api_key: a secret of this plugin"):
            cls(settings.model_copy(update={"options": {**settings.options, "api_key": "x"}}), "p")
    if cls.options_model is not None:
        assert secret_options(cls, dict.fromkeys(cls.options_model.model_fields)) == [], plugin
