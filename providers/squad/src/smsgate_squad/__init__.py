"""smsgate provider plugin for Squad (GTBank / HabariPay) SMS: v2 ``/sms/...`` and legacy v1.

Installing the ``smsgate-squad`` distribution registers :class:`SquadProvider` as plugin
``squad`` (entry point ``smsgate.providers``) and its emulator
(``smsgate.emulators``: :func:`smsgate_squad.emulator.create_app`).
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import hookimpl
from smsgate_squad.auth import derive_v1_secret, sign_body, verify_signature
from smsgate_squad.options import SquadOptions
from smsgate_squad.provider import (
    LIVE_BASE_URL,
    SANDBOX_BASE_URL,
    V1_BASE_URL,
    V1_CAPABILITIES,
    V2_CAPABILITIES,
    SquadProvider,
)
from smsgate_squad.wire import SendReceipt

__all__ = [
    "LIVE_BASE_URL",
    "SANDBOX_BASE_URL",
    "V1_BASE_URL",
    "V1_CAPABILITIES",
    "V2_CAPABILITIES",
    "SendReceipt",
    "SquadOptions",
    "SquadProvider",
    "derive_v1_secret",
    "register_providers",
    "sign_body",
    "verify_signature",
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`SquadProvider` with smsgate's plugin manager."""
    register(SquadProvider)
