"""smsgate provider plugin for the Dynamic Messaging (UK) "Campaigns REST API".

Registers :class:`CampaignsApiProvider` under the plugin name ``campaigns_api``
(entry point group ``smsgate.providers``); the emulator is
:func:`smsgate_campaigns_api.emulator.create_app` (group ``smsgate.emulators``).

Layout: :mod:`~smsgate_campaigns_api.options` (the options model),
:mod:`~smsgate_campaigns_api.wire` (status maps, tolerant readers, the SMS record, the
errors read from ProblemDetails and :class:`~smsgate_campaigns_api.wire.Codec`, the
neutral <-> vendor conversions), :mod:`~smsgate_campaigns_api.sieve` (the Sieve
filter/sort syntax: building and parsing), :mod:`~smsgate_campaigns_api.api` (the
vendor's endpoints, one method each), :mod:`~smsgate_campaigns_api.provider` (the
neutral operations) and :mod:`~smsgate_campaigns_api.emulator`.
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import SandboxAccount, hookimpl
from smsgate_campaigns_api.options import CampaignsApiOptions
from smsgate_campaigns_api.provider import CampaignsApiProvider
from smsgate_campaigns_api.sieve import Filter, SieveSyntaxError, Sort, build_filters, build_sorts
from smsgate_campaigns_api.wire import (
    CampaignRejected,
    ContactError,
    DMCampaignStatus,
    DMSmsStatus,
    SmsMessage,
    WebhookRejected,
    WebhookTokenRejected,
)

__all__ = [
    "CampaignRejected",
    "CampaignsApiOptions",
    "CampaignsApiProvider",
    "ContactError",
    "DMCampaignStatus",
    "DMSmsStatus",
    "Filter",
    "SieveSyntaxError",
    "SmsMessage",
    "Sort",
    "WebhookRejected",
    "WebhookTokenRejected",
    "build_filters",
    "build_sorts",
    "register_providers",
    "smsgate_sandbox_account",
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register the ``campaigns_api`` provider."""
    register(CampaignsApiProvider)


@hookimpl
def smsgate_sandbox_account(plugin: str) -> SandboxAccount | None:
    """The account the ``campaigns_api`` emulator accepts by default (``smsgate sandbox``, ``smsgate demo``)."""
    if plugin != "campaigns_api":
        return None
    from smsgate_campaigns_api.emulator.state import SANDBOX_CREDENTIALS, SANDBOX_SETTINGS

    # port: where `smsgate sandbox` serves it, whatever else is installed (docs/getting-started.md)
    return SandboxAccount(credentials=dict(SANDBOX_CREDENTIALS), settings=dict(SANDBOX_SETTINGS), port=8803)
