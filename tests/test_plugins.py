"""Plugin discovery and hook specs."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pluggy
import pytest

from reference_provider import EchoPlugin, EchoProvider
from smsgate import hookspecs
from smsgate.errors import ConfigError, UnknownProvider
from smsgate.plugins import PluginManager

DOCS = Path(__file__).resolve().parent.parent / "docs"


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


def test_non_provider_registration_rejected() -> None:
    class Bad:
        @hookspecs.hookimpl
        def register_providers(self, register: Any) -> None:
            register(dict)

    pm = PluginManager(load_entry_points=False)
    pm.register(Bad())
    with pytest.raises(ConfigError, match="not a smsgate Provider"):
        pm.providers()


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
