"""Test support for smsgate and provider plugins.

* :class:`ProviderConformance` — the conformance kit (a mixin test class);
* :func:`serve` / :class:`LiveServer` — run an ASGI app on a loopback port;
* :func:`emulator_app`, :class:`EmulatorControl`, :class:`FaultRule` — request
  recording and fault injection shared by all emulators.

Importing this package needs the ``server`` extra (starlette, uvicorn) and pytest.
"""

from __future__ import annotations

from smsgate.emulation import (
    EmulatorControl,
    EmulatorState,
    FaultRule,
    RecordedRequest,
    emulator_app,
)
from smsgate.testing.server import LiveServer, serve

__all__ = [
    "EmulatorControl",
    "EmulatorState",
    "FaultRule",
    "LiveServer",
    "ProviderConformance",
    "RecordedRequest",
    "emulator_app",
    "serve",
]


def __getattr__(name: str) -> object:
    if name == "ProviderConformance":  # imported lazily: it needs pytest
        from smsgate.testing.conformance import ProviderConformance

        return ProviderConformance
    raise AttributeError(name)
