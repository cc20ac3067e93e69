"""smsgate provider plugin for Colony (Tritech Media, South Africa).

Installed through the ``smsgate.providers`` entry point ``colony``; configure a
provider instance with ``plugin = "colony"`` (see ``docs/providers/colony.md``).

Layout: :mod:`~smsgate_colony.options` (the options model and the endpoint path table),
:mod:`~smsgate_colony.wire` (vendor models, status maps, pure parsers and CSV builders),
:mod:`~smsgate_colony.api` (the vendor's endpoints, one method each, with the envelope
checks and page walking), :mod:`~smsgate_colony.provider` (the neutral operations),
:mod:`~smsgate_colony.inbound` (the inbound relay webhook parser) and
:mod:`~smsgate_colony.emulator`.
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import SandboxAccount, hookimpl
from smsgate_colony.options import DEFAULT_PATHS, ColonyOptions
from smsgate_colony.provider import ColonyProvider
from smsgate_colony.wire import (
    ColonyCollateCampaign,
    ColonyContact,
    ColonyContactList,
    ColonyDeployment,
    ColonyInboundMessage,
    ColonyOptOut,
    ColonyStat,
    contacts_csv,
    credits_for,
    deployment_csv,
    deployment_state,
    drf_error_text,
    parse_inbound_message,
    parse_inbound_messages,
)

__all__ = [
    "DEFAULT_PATHS",
    "ColonyCollateCampaign",
    "ColonyContact",
    "ColonyContactList",
    "ColonyDeployment",
    "ColonyInboundMessage",
    "ColonyOptOut",
    "ColonyOptions",
    "ColonyProvider",
    "ColonyStat",
    "contacts_csv",
    "credits_for",
    "deployment_csv",
    "deployment_state",
    "drf_error_text",
    "parse_inbound_message",
    "parse_inbound_messages",
    "register_providers",
    "smsgate_sandbox_account",
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`ColonyProvider` with smsgate."""
    register(ColonyProvider)


@hookimpl
def smsgate_sandbox_account(plugin: str) -> SandboxAccount | None:
    """The account the ``colony`` emulator accepts by default (``smsgate sandbox``, ``smsgate demo``)."""
    if plugin != "colony":
        return None
    from smsgate_colony.emulator.state import SANDBOX_CREDENTIALS, SANDBOX_SETTINGS, SANDBOX_WEBHOOK_TOKEN

    # webhook_token: the shared secret an inbound relay puts in the callback URL (?token=...), so
    # the printed block lets the webhook app accept replies (docs/inbound.md); the emulator
    # itself never reads it.
    credentials = {**SANDBOX_CREDENTIALS, "webhook_token": SANDBOX_WEBHOOK_TOKEN}
    # port: where `smsgate sandbox` serves it, whatever else is installed (docs/getting-started.md)
    return SandboxAccount(credentials=credentials, settings=dict(SANDBOX_SETTINGS), port=8802)
