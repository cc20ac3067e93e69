"""smsgate provider plugin for simple HTTP SMS APIs, described entirely in TOML (no code).

Installed through the ``smsgate.providers`` entry point ``generic_http``; the
emulator (driven by the same options) is the ``smsgate.emulators`` entry point of
the same name. See docs/generic-http.md.
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import hookimpl
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
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`GenericHttpProvider` with smsgate."""
    register(GenericHttpProvider)
