"""smsgate provider plugin for Squad (GTBank / HabariPay) SMS: v2 ``/sms/...`` and legacy v1.

Installing the ``smsgate-squad`` distribution registers :class:`SquadProvider` as plugin
``squad`` (entry point ``smsgate.providers``; it builds :class:`SquadV2Provider`, or
:class:`SquadV1Provider` when ``options.api_version = "v1"``) and its emulator
(``smsgate.emulators``: :func:`smsgate_squad.emulator.create_app`).

Layout: :mod:`~smsgate_squad.options` (the options model), :mod:`~smsgate_squad.wire`
(payload shapes, status maps, pure converters), :mod:`~smsgate_squad.api` (the vendor's
endpoints, one method each), :mod:`~smsgate_squad.provider` (the neutral operations),
:mod:`~smsgate_squad.emulator` (state class and routes).
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import SandboxAccount, hookimpl
from smsgate_squad.auth import derive_v1_secret, sign_body, verify_signature
from smsgate_squad.options import SquadOptions
from smsgate_squad.provider import (
    LIVE_BASE_URL,
    SANDBOX_BASE_URL,
    V1_BASE_URL,
    V1_CAPABILITIES,
    V2_CAPABILITIES,
    SquadProvider,
    SquadV1Provider,
    SquadV2Provider,
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
    "SquadV1Provider",
    "SquadV2Provider",
    "derive_v1_secret",
    "register_providers",
    "sign_body",
    "smsgate_sandbox_account",
    "verify_signature",
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`SquadProvider` with smsgate's plugin manager."""
    register(SquadProvider)


@hookimpl
def smsgate_sandbox_account(plugin: str) -> SandboxAccount | None:
    """The account the ``squad`` emulator accepts by default (``smsgate sandbox``, ``smsgate demo``)."""
    if plugin != "squad":
        return None
    from smsgate_squad.emulator.state import SANDBOX_CREDENTIALS, SANDBOX_SETTINGS

    # port: where `smsgate sandbox` serves it, whatever else is installed (docs/getting-started.md)
    return SandboxAccount(credentials=dict(SANDBOX_CREDENTIALS), settings=dict(SANDBOX_SETTINGS), port=8801)
