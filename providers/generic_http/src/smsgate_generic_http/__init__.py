"""smsgate provider plugin for simple HTTP SMS APIs, described entirely in TOML (no code).

Installed through the ``smsgate.providers`` entry point ``generic_http``; the
emulator (driven by the same options) is the ``smsgate.emulators`` entry point of
the same name. See docs/generic-http.md.
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import SandboxAccount, hookimpl
from smsgate_generic_http.options import (
    BasicAuth,
    GenericHttpOptions,
    RequestOptions,
    ResponseOptions,
    StatusLookupOptions,
    WebhookOptions,
)
from smsgate_generic_http.provider import GenericHttpProvider
from smsgate_generic_http.wire import Path, Template

__all__ = [
    "BasicAuth",
    "GenericHttpOptions",
    "GenericHttpProvider",
    "Path",
    "RequestOptions",
    "ResponseOptions",
    "StatusLookupOptions",
    "Template",
    "WebhookOptions",
    "register_providers",
    "smsgate_sandbox_account",
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`GenericHttpProvider` with smsgate."""
    register(GenericHttpProvider)


@hookimpl
def smsgate_sandbox_account(plugin: str) -> SandboxAccount | None:
    """The account the ``generic_http`` emulator accepts by default (``smsgate sandbox``, ``smsgate demo``)."""
    if plugin != "generic_http":
        return None
    from smsgate_generic_http.emulator import SANDBOX_CREDENTIALS, SANDBOX_SETTINGS

    # port: where `smsgate sandbox` serves it, whatever else is installed (docs/getting-started.md)
    return SandboxAccount(credentials=dict(SANDBOX_CREDENTIALS), settings=dict(SANDBOX_SETTINGS), port=8805)
