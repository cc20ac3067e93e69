"""Colony's vendor objects, its path table and the vendor <-> neutral mappings.

Field names come from the Colony REST API model dumps (seed 002 / FACTS.md section 2);
every model tolerates extra fields and the usual string-vs-number quirks (``"5"`` for
``5``, ``""`` for ``null``), so an API that grew new fields keeps working.

What the vendor does not publish is marked ``[INF]`` here and in
``docs/providers/colony.md``: the URL paths of most endpoints (overridable through the
``paths`` option), the meaning of the ``status`` / ``dispatch`` integers, and the
contact fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgate.models import CampaignStatus

__all__ = [
    "CHUNK_CHARS",
    "DEFAULT_DEPLOYMENT_STATUSES",
    "DEFAULT_PATHS",
    "INFERRED_PATHS",
    "PERIODS",
    "PERIOD_TYPES",
    "ColonyCollateCampaign",
    "ColonyContact",
    "ColonyContactList",
    "ColonyDeployment",
    "ColonyInboundMessage",
    "ColonyModel",
    "ColonyOptOut",
    "ColonyStat",
    "credits_for",
    "deployment_state",
    "path_placeholders",
]

#: Characters per billed chunk: "split into 160 character chunks with each chunk costing 1 credit".
CHUNK_CHARS: Final = 160

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

#: Statistics periods (path segment) and their ``period_type`` ints ([INF] 1=hour ... 4=year).
PERIODS: Final[Mapping[str, int]] = {"hourly": 1, "daily": 2, "monthly": 3, "yearly": 4}
PERIOD_TYPES: Final[Mapping[int, str]] = {v: k for k, v in PERIODS.items()}

#: Deployment ``status`` ints -> neutral state. Colony does not publish the enum ([INF]);
#: override with the provider option ``deployment_statuses``.
DEFAULT_DEPLOYMENT_STATUSES: Final[Mapping[int, CampaignStatus]] = {
    0: CampaignStatus.DRAFT,       # draft
    1: CampaignStatus.SCHEDULED,   # awaiting approval
    2: CampaignStatus.SCHEDULED,   # approved, waiting for send_date
    3: CampaignStatus.RUNNING,     # sending
    4: CampaignStatus.COMPLETED,   # sent
    5: CampaignStatus.PAUSED,      # paused
    6: CampaignStatus.CANCELLED,   # cancelled
    7: CampaignStatus.FAILED,      # failed (see ``error``)
}

_PLACEHOLDER_RE: Final = re.compile(r"\{([a-z_]+)\}")


def path_placeholders(template: str) -> set[str]:
    """The ``{name}`` placeholders of a path template."""
    return set(_PLACEHOLDER_RE.findall(template))


def credits_for(message: str) -> int:
    """Credits Colony charges for ``message``: one per started 160-character chunk.

    The vendor states the rule in characters without any GSM-7 / UCS-2 nuance, so this
    counts Python characters (code points). An empty message still costs one chunk.
    """
    return max(1, math.ceil(len(message) / CHUNK_CHARS))


def deployment_state(
    status: int | None,
    error: str | None = None,
    table: Mapping[int, CampaignStatus] = DEFAULT_DEPLOYMENT_STATUSES,
) -> CampaignStatus:
    """The neutral campaign state of a deployment (total: every input has an answer).

    A deployment carrying an ``error`` text is ``failed`` unless its status says it
    completed; a status missing from ``table`` is ``unknown``.
    """
    state = table.get(status, CampaignStatus.UNKNOWN) if status is not None else CampaignStatus.UNKNOWN
    if error and error.strip() and state is not CampaignStatus.COMPLETED:
        return CampaignStatus.FAILED
    return state


class ColonyModel(BaseModel):
    """Base of Colony's objects: extra fields are kept, ``""`` reads as ``None``, naive times as UTC."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        # Django answers with offsets when USE_TZ is on; a naive time is read as UTC [INF]
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    def raw(self) -> dict[str, Any]:
        """The object as Colony sent it (known and extra fields), JSON-friendly."""
        return self.model_dump(mode="json")


class ColonyContactList(ColonyModel):
    """A contact list: ``{id, title, saved_query, company, date_created, date_updated}``."""

    id: int
    title: str | None = None
    saved_query: int | None = None
    company: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None


class ColonyContact(ColonyModel):
    """A contact of a list. Colony publishes no fields for it (model ``{}``) [INF].

    The number and list fields are named by the provider options
    ``contact_phone_field`` (default ``msisdn``) and ``contact_list_field``
    (default ``contact_list``); everything else is kept as extra fields.
    """

    id: int | None = None

    def get(self, field: str) -> Any:
        """The value of a (possibly extra) field, or ``None``."""
        if field in type(self).model_fields:
            return getattr(self, field)
        return (self.model_extra or {}).get(field)


class ColonyDeployment(ColonyModel):
    """A deployment: a send to a list, with status, credits and flags."""

    id: int
    title: str | None = None
    status: int | None = None
    marketing: bool | None = None
    optout: bool | None = None
    dispatch: int | None = None
    total_credits: int | None = None
    total_contacts: int | None = None
    send_date: datetime | None = None
    error: str | None = None
    linked_campaign: int | None = None
    company: int | None = None
    created_by: int | None = None
    updated_by: int | None = None
    approved_by: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None


class ColonyStat(ColonyModel):
    """One statistics row of a deployment for one period."""

    id: int | None = None
    deployment: int | None = None
    period_type: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    total: int = 0
    sms_sent_count: int = 0
    sms_unsent_count: int = 0
    sms_optout_count: int = 0
    email_sent_count: int = 0
    email_unsent_count: int = 0
    email_optout_count: int = 0

    @field_validator(
        "total", "sms_sent_count", "sms_unsent_count", "sms_optout_count",
        "email_sent_count", "email_unsent_count", "email_optout_count", mode="before",
    )
    @classmethod
    def _null_count_is_zero(cls, value: Any) -> Any:
        return 0 if value is None or (isinstance(value, str) and not value.strip()) else value


class ColonyOptOut(ColonyModel):
    """An opt-out of one originator; ``date_overwritten`` set means it was lifted."""

    id: int
    originator: str
    date_opted_out: datetime | None = None
    reason: str | None = None
    date_overwritten: datetime | None = None
    overwritten_by: int | None = None
    company: int | None = None

    @field_validator("originator", mode="before")
    @classmethod
    def _originator_text(cls, value: Any) -> Any:
        # a number-typed originator (27815854565) is still a phone number
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def active(self) -> bool:
        """True while the opt-out has not been overwritten."""
        return self.date_overwritten is None


class ColonyCollateCampaign(ColonyModel):
    """A campaign of Colony's *collate* product: what a sent message's ``campaign_pk`` names.

    ``GET /collate/campaigns/`` is published [DOC] but its model is not: only ``id`` is
    required; ``title`` (and everything else) is [INF] and kept as sent.
    """

    id: int
    title: str | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None


class ColonyInboundMessage(ColonyModel):
    """A message received by a collate campaign (a reply from a recipient), as Colony lists it.

    Fields from the collate product's published model [DOC]. ``id``, ``originator``,
    ``text``, ``campaign`` and ``date_created`` must be present (``text`` and
    ``campaign`` may be null); the rest are optional. ``session_data`` and
    ``additional_data`` are typed "unknown" by Colony and kept as sent.
    """

    id: int
    originator: str
    text: str | None
    campaign: int | None
    date_created: datetime | None
    date_updated: datetime | None = None
    company: int | None = None
    network: int | None = None
    provider: int | None = None
    backend: str | None = None
    backend_id: str | None = None
    reason: int | None = None
    slot: int | None = None
    extra_digits: str | None = None
    fav: bool | None = None
    blacklisted: bool | None = None
    fraud_incident: bool | None = None
    fraud_suspect: bool | None = None
    reply_path_message: bool | None = None
    latitude: float | None = Field(default=None, allow_inf_nan=False)
    longitude: float | None = Field(default=None, allow_inf_nan=False)
    session_data: Any = None
    additional_data: Any = None

    @field_validator("originator", "backend_id", "extra_digits", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        # a number-typed originator (27815854565) is still a phone number
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
