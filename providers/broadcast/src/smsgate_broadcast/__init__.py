"""smsgate provider plugin for the WAABOT broadcast API (WhatsApp broadcasts, Nigeria).

Installed through the ``smsgate.providers`` entry point ``broadcast``; the
emulator is the ``smsgate.emulators`` entry point of the same name.

Layout: :mod:`~smsgate_broadcast.options` (the options model),
:mod:`~smsgate_broadcast.wire` (records, status maps, request bodies, pure parsers),
:mod:`~smsgate_broadcast.api` (the vendor's endpoints, one method each, with the envelope
checks and page walking), :mod:`~smsgate_broadcast.provider` (the neutral operations and
the vendor operations by name) and :mod:`~smsgate_broadcast.emulator` (a plain state class
and the routes calling it).
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import SandboxAccount, hookimpl
from smsgate_broadcast.api import WaabotApi
from smsgate_broadcast.options import API_PREFIX, MAX_BATCH, BroadcastOptions
from smsgate_broadcast.provider import BroadcastProvider
from smsgate_broadcast.wire import (
    BROADCAST_STATUS,
    AttachmentRecord,
    BroadcastRecord,
    SessionTokens,
    UploadedAttachment,
    WaabotContact,
    WaabotContactGroup,
    WaabotMessageLog,
    entry_number,
    neutral_status,
    parse_attachment,
    parse_broadcast,
    parse_contact,
    parse_contact_group,
    parse_message_log,
)

__all__ = [
    "API_PREFIX",
    "BROADCAST_STATUS",
    "MAX_BATCH",
    "AttachmentRecord",
    "BroadcastOptions",
    "BroadcastProvider",
    "BroadcastRecord",
    "SessionTokens",
    "UploadedAttachment",
    "WaabotApi",
    "WaabotContact",
    "WaabotContactGroup",
    "WaabotMessageLog",
    "entry_number",
    "neutral_status",
    "parse_attachment",
    "parse_broadcast",
    "parse_contact",
    "parse_contact_group",
    "parse_message_log",
    "register_providers",
    "smsgate_sandbox_account",
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`BroadcastProvider` with smsgate."""
    register(BroadcastProvider)


@hookimpl
def smsgate_sandbox_account(plugin: str) -> SandboxAccount | None:
    """The account the ``broadcast`` emulator accepts by default (``smsgate sandbox``, ``smsgate demo``)."""
    if plugin != "broadcast":
        return None
    from smsgate_broadcast.emulator.state import SANDBOX_CREDENTIALS, SANDBOX_SETTINGS

    # port: where `smsgate sandbox` serves it, whatever else is installed (docs/getting-started.md)
    return SandboxAccount(credentials=dict(SANDBOX_CREDENTIALS), settings=dict(SANDBOX_SETTINGS), port=8804)
