"""The provider-neutral campaign engine.

::

    from smsgate import Gateway
    from smsgate.campaigns import CsvAudience

    with Gateway("smsgate.toml") as gw:
        acme = gw.tenant("acme")
        camp = acme.campaigns.create(
            "Spring sale", text="Hi {name}, 20% off today. Reply STOP to opt out.",
            audience=CsvAudience("customers.csv", phone="msisdn"),
        )
        print(camp.preview())          # counts, skipped by reason, segments, cost, samples
        camp.run(progress=print)       # crash-safe, resumable, rate limited

* :mod:`~smsgate.campaigns.audiences`: where recipients come from (CSV files of
  any size, any iterable, stored contact lists, provider-side lists);
* :mod:`~smsgate.campaigns.preparation`: the audience streamed into the store,
  each row classified (invalid, duplicate, opted out, missing variable...);
  nothing is sent, and a failed creation leaves nothing behind;
* :mod:`~smsgate.campaigns.handles`: ``tenant.campaigns`` and a campaign's
  handle (preview, run, pause, resume, cancel, progress, statistics), sync and
  async;
* the run itself is the kernel's plan (:mod:`smsgate.core.campaign`): claims
  with an owner and a lease, each message logged just before its request
  leaves, recovery of dead runners' claims only. Several runners (processes,
  hosts) can run one campaign at once; after a crash, Ctrl-C or an error a
  re-run sends every recipient once, and only messages whose request may have
  left are ``unknown`` (looked up by client reference where the provider can).
"""

from __future__ import annotations

from smsgate.campaigns.audiences import (
    Audience,
    AudienceRow,
    ContactsAudience,
    CsvAudience,
    ProviderListAudience,
)
from smsgate.campaigns.handles import (
    AsyncCampaignHandle,
    AsyncCampaignManager,
    CampaignHandle,
    CampaignManager,
)
from smsgate.campaigns.model import (
    CampaignPreview,
    CampaignSettings,
    Mode,
    Progress,
    RowError,
    in_quiet_hours,
)

__all__ = [
    "AsyncCampaignHandle",
    "AsyncCampaignManager",
    "Audience",
    "AudienceRow",
    "CampaignHandle",
    "CampaignManager",
    "CampaignPreview",
    "CampaignSettings",
    "ContactsAudience",
    "CsvAudience",
    "Mode",
    "Progress",
    "ProviderListAudience",
    "RowError",
    "in_quiet_hours",
    "preview_text",
]


def preview_text(settings: CampaignSettings | dict[str, object]) -> str:
    """The campaign's body text or template body (for display)."""
    if isinstance(settings, dict):
        settings = CampaignSettings.model_validate(settings)
    return settings.body
