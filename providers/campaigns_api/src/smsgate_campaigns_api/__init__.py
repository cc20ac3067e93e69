"""smsgate provider plugin for the Dynamic Messaging (UK) "Campaigns REST API".

Registers :class:`CampaignsApiProvider` under the plugin name ``campaigns_api``
(entry point group ``smsgate.providers``); the emulator is
:func:`smsgate_campaigns_api.emulator.create_app` (group ``smsgate.emulators``).
"""

from __future__ import annotations

from typing import Any

from smsgate.hookspecs import hookimpl
from smsgate_campaigns_api.errors import CampaignRejected, ContactError, WebhookRejected, WebhookTokenRejected
from smsgate_campaigns_api.models import CampaignsApiOptions, SmsMessage
from smsgate_campaigns_api.provider import CampaignsApiProvider
from smsgate_campaigns_api.sieve import Filter, SieveSyntaxError, Sort, build_filters, build_sorts
from smsgate_campaigns_api.vendor import DMCampaignStatus, DMSmsStatus

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
]


@hookimpl
def register_providers(register: Any) -> None:
    """Register the ``campaigns_api`` provider."""
    register(CampaignsApiProvider)
