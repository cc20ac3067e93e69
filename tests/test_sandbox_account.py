"""The ``smsgate_sandbox_account`` hook and the emulators' one state attribute (``app.vendor``)."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from smsgate.checks import check_online
from smsgate.errors import ConfigError
from smsgate.hookspecs import SandboxAccount, hookimpl
from smsgate.plugins import PluginManager, sandbox_account
from smsgate.testing.sandbox import start_emulator


def test_every_installed_emulator_declares_its_sandbox_account_through_the_hook() -> None:
    """``smsgate sandbox``/``demo`` configure tenants from the hook, not from module attributes."""

    names = sorted(ep.name for ep in entry_points(group="smsgate.emulators"))
    assert {"squad", "colony", "campaigns_api", "broadcast", "generic_http"} <= set(names)
    for name in names:
        account = sandbox_account(name)
        assert isinstance(account, SandboxAccount) and account.credentials, name
        # The account is what the emulator accepts: the vendor takes its credentials.
        emulator = start_emulator(name)
        try:
            checks = check_online(emulator.gateway())
            assert [c.credentials_accepted for c in checks] in ([True], [None]), (name, checks)
            assert not any(c.failed for c in checks), (name, checks)
        finally:
            emulator.stop()


def test_a_plugin_without_a_sandbox_account_is_a_config_error() -> None:
    pm = PluginManager(load_entry_points=False)
    with pytest.raises(ConfigError, match="'nope' declares no sandbox account"):
        pm.sandbox_account("nope")


def test_every_emulator_exposes_its_vendor_state_as_app_vendor() -> None:
    for ep in sorted(entry_points(group="smsgate.emulators"), key=lambda e: e.name):
        app = ep.load()()
        assert getattr(app, "vendor", None) is not None, f"{ep.name}: no app.vendor"
        assert type(app.vendor).__module__.startswith(f"smsgate_{ep.name}"), (ep.name, type(app.vendor))


def test_smsgate_sandbox_account_answers_for_its_own_plugin_only() -> None:

    class Echo:
        @hookimpl
        def smsgate_sandbox_account(self, plugin: str) -> SandboxAccount | None:
            return SandboxAccount(credentials={"api_key": "k"}) if plugin == "echo" else None

    class Broken:
        @hookimpl
        def smsgate_sandbox_account(self, plugin: str) -> object:
            return {"api_key": "k"} if plugin == "broken" else None

    pm = PluginManager(load_entry_points=False)
    pm.register(Echo())
    pm.register(Broken())
    assert pm.sandbox_account("echo") == SandboxAccount(credentials={"api_key": "k"})
    with pytest.raises(ConfigError, match="'other' declares no sandbox account"):
        pm.sandbox_account("other")
    with pytest.raises(ConfigError, match="returned dict, not a SandboxAccount"):
        pm.sandbox_account("broken")


def test_the_sandbox_account_is_found_whatever_smsgate_plugins_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed emulator's account is wanted even when its plugin is not loaded for sending."""
    monkeypatch.setenv("SMSGATE_PLUGINS", "")
    assert sandbox_account("squad").credentials
    with pytest.raises(ConfigError, match="'nope' declares no sandbox account"):
        sandbox_account("nope")
