"""Test support for smsgate and provider plugins.

* :class:`ProviderConformance` — the conformance kit (a mixin test class);
* :func:`serve` / :class:`LiveServer` — run an ASGI app on a loopback port;
* :func:`emulator_app`, :class:`EmulatorControl`, :class:`FaultRule` — request
  recording and fault injection shared by all emulators;
* :data:`outbox` (an :class:`Outbox`) — what the ``memory`` provider accepted, with
  :meth:`Outbox.assert_sent` / :meth:`Outbox.assert_not_sent`; :class:`SendRecorder`
  fills an outbox from any provider; the ``memory`` and ``console`` providers
  (:mod:`smsgate.testing.memory`, :mod:`smsgate.testing.console`);
* pytest fixtures (:mod:`smsgate.testing.pytest_plugin`, loaded automatically):
  ``sms_outbox``, ``sms_gateway``, ``sms_emulator``, ``serve_app``. See docs/testing.md.

Serving apps needs the ``server`` extra (starlette, uvicorn); the conformance kit needs pytest.
"""

from __future__ import annotations

from smsgate.emulation import (
    EmulatorControl,
    EmulatorState,
    FaultRule,
    RecordedRequest,
    emulator_app,
)
from smsgate.testing.sent import Outbox, SendRecorder, SentMessage, outbox
from smsgate.testing.server import LiveServer, serve

__all__ = [
    "EmulatorControl",
    "EmulatorState",
    "FaultRule",
    "LiveServer",
    "Outbox",
    "ProviderConformance",
    "RecordedRequest",
    "SendRecorder",
    "SentMessage",
    "emulator_app",
    "outbox",
    "serve",
]


def __getattr__(name: str) -> object:
    if name == "ProviderConformance":  # imported lazily: it needs pytest
        from smsgate.testing.conformance import ProviderConformance

        return ProviderConformance
    raise AttributeError(name)
