"""``options`` of a Colony provider instance, and the endpoint path table they may override.

Unknown keys are errors; the names and their validation messages are part of the
configuration users write (``[tenants.x.providers.y.options]``), so they do not change.
Most of Colony's URL paths are not published ([INF], listed in :data:`INFERRED_PATHS`):
each can be replaced with ``paths = { key = "/real/path/{id}/" }``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgate.models import CampaignStatus

__all__ = ["DEFAULT_PATHS", "INFERRED_PATHS", "ColonyOptions", "path_placeholders"]

#: Every endpoint the adapter calls, by key. ``{id}`` / ``{period}`` are filled in per call.
#: Keys in :data:`INFERRED_PATHS` are not published by Colony ([INF]); override them with the
#: provider option ``paths = { key = "/real/path/{id}/" }``.
DEFAULT_PATHS: Final[Mapping[str, str]] = {
    # OAuth2 password grant [DOC]
    "token": "/oauth2/access_token/",
    # contact lists [DOC: list/create, batch contacts, generatecontactlist]
    "contactlists": "/contact/contactlists/",
    "contactlist": "/contact/contactlists/{id}/",
    "contactlist_delete": "/contact/contactlists/{id}/",
    "contactlists_delete": "/contact/contactlists/delete/",
    "contactlist_import": "/contact/contactlists/import/",
    "contactlist_import_into": "/contact/contactlists/{id}/import/",
    "contactlist_refresh": "/contact/contactlists/{id}/refresh/",
    "contactlist_generate": "/contact/contactlists/generatecontactlist/",
    "contacts": "/contact/contactlists/contact/",
    "contact": "/contact/contactlists/contact/{id}/",
    # company details [DOC]
    "company": "/commence/accounts/company/",
    # deployments [INF]
    "deployments": "/contact/deployments/",
    "deployment": "/contact/deployments/{id}/",
    "deployment_import": "/contact/deployments/import/",
    "deployment_import_numbers": "/contact/deployments/import/numbers/",
    "deployment_import_into": "/contact/deployments/{id}/import/",
    "deployment_report": "/contact/deployments/{id}/report/",
    "deployment_stats": "/contact/deployments/stats/{period}/",
    "deployment_stat": "/contact/deployments/stats/{period}/{id}/",
    # messages [INF]
    "message": "/contact/message/send/",
    "message_bulk": "/contact/message/bulk/",
    # collate product: campaigns (what campaign_pk names) and inbound messages
    # [DOC: /collate/campaigns/, /collate/campaigns/message/; the detail paths are INF]
    "collate_campaigns": "/collate/campaigns/",
    "collate_campaign": "/collate/campaigns/{id}/",
    "inbound_messages": "/collate/campaigns/message/",
    "inbound_message": "/collate/campaigns/message/{id}/",
    # opt-outs [INF]
    "optouts": "/contact/optouts/",
    "optout_filter": "/contact/optouts/",
    "optout_create": "/contact/optouts/",
    "optout_overwrite": "/contact/optouts/{id}/overwrite/",
}

#: Keys of :data:`DEFAULT_PATHS` whose path Colony does not publish.
INFERRED_PATHS: Final = frozenset(DEFAULT_PATHS) - {
    "token", "contactlists", "contacts", "contactlist_generate", "company",
    "collate_campaigns", "inbound_messages",
}


_PLACEHOLDER_RE: Final = re.compile(r"\{([a-z_]+)\}")


def path_placeholders(template: str) -> set[str]:
    """The ``{name}`` placeholders of a path template."""
    return set(_PLACEHOLDER_RE.findall(template))


class ColonyOptions(BaseModel):
    """Provider options (``[tenants.x.providers.y.options]``)."""

    model_config = ConfigDict(extra="forbid")

    #: Override any endpoint path by key (see ``DEFAULT_PATHS``); keep its placeholders.
    paths: dict[str, str] = Field(default_factory=dict)
    #: Override the [INF] meaning of deployment ``status`` ints.
    deployment_statuses: dict[int, CampaignStatus] = Field(default_factory=dict)
    #: Contact field holding the number (international digits) [INF].
    contact_phone_field: str = "msisdn"
    #: Contact field (and list filter parameter) naming the contact list [INF].
    contact_list_field: str = "contact_list"
    #: Region for opt-out originators that are not in international form.
    region: str = "ZA"
    #: Contacts per batch-create request.
    contact_batch_size: int = Field(500, ge=1, le=100_000)
    #: Send ``POST`` to the opt-out endpoint from ``add_optout`` (not documented by Colony).
    allow_optout_create: bool = False
    #: Refresh the token this many seconds before it expires (at most 10 % of its life).
    token_refresh_margin: float = Field(60.0, ge=0)
    #: Ask listings for this page size (``?page_size=``); unset = the server's default.
    page_size: int | None = Field(None, ge=1)
    #: Defaults for deployments created by ``create_campaign``.
    marketing: bool = False
    optout: bool = True
    dispatch: int | None = None
    #: Campaign linked to every sent message (``campaign_pk``) unless the message says otherwise.
    campaign_pk: int | None = None
    #: The OAuth2 scope asked for with the password grant (``scope=``, space-separated, e.g.
    #: ``"read write"``); unset asks for none, and Colony's token answer shows the scope it
    #: granted (``"read"`` in its docs). Which scope an endpoint needs is not published [INF].
    scope: str | None = Field(None, min_length=1)

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            if key not in DEFAULT_PATHS:
                raise ValueError(
                    f"unknown path key {key!r}; known keys: {', '.join(sorted(DEFAULT_PATHS))}"
                )
            if not template.startswith(("/", "http://", "https://")):
                raise ValueError(f"path {key!r} must start with '/' or be an absolute URL, got {template!r}")
            want = path_placeholders(DEFAULT_PATHS[key])
            got = path_placeholders(template)
            if got != want:
                need = ", ".join("{" + p + "}" for p in sorted(want)) or "no placeholders"
                raise ValueError(f"path {key!r} = {template!r} must contain {need}")
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        import phonenumbers

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"region {value!r} is not an ISO region code")
        return value.upper()
