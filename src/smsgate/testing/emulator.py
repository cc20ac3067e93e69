"""The emulator kit, for tests: see :mod:`smsgate.emulation` (where it lives, as runtime code:
``smsgate sandbox`` and the demo serve the provider emulators built on it)."""

from __future__ import annotations

from smsgate.emulation import (
    ASGIApp,
    EmulatorControl,
    EmulatorState,
    FaultRule,
    RecordedRequest,
    emulator_app,
)

__all__ = ["ASGIApp", "EmulatorControl", "EmulatorState", "FaultRule", "RecordedRequest", "emulator_app"]
