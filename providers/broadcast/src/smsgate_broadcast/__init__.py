"""smsgate provider plugin for the WAABOT broadcast API (WhatsApp broadcasts, Nigeria).

Installed through the ``smsgate.providers`` entry point ``broadcast``; the
emulator is the ``smsgate.emulators`` entry point of the same name.
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import hookimpl
from smsgate_broadcast.provider import (
    API_PREFIX,
    BROADCAST_STATUS,
    MAX_BATCH,
    AttachmentRecord,
    BroadcastOptions,
    BroadcastProvider,
    BroadcastRecord,
    SessionTokens,
    UploadedAttachment,
    entry_number,
    neutral_status,
    parse_attachment,
    parse_broadcast,
)
from smsgate_broadcast.wire import (
    WaabotContact,
    WaabotContactGroup,
    WaabotMessageLog,
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
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`BroadcastProvider` with smsgate."""
    register(BroadcastProvider)
