"""Provider-neutral domain models (pydantic v2).

Phone numbers in these models are E.164 strings (``+2348012345678``); adapters
convert to and from each vendor's format.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from smsgate._enum import StrEnum
from smsgate.lifecycle import Status

__all__ = [
    "Attachment",
    "Campaign",
    "CampaignStatus",
    "Contact",
    "ContactList",
    "DeliveryReport",
    "Location",
    "MessageRecord",
    "OptOut",
    "OutboundMessage",
    "SendResult",
    "Stats",
    "StatsBucket",
    "Status",
    "StatusEvent",
    "Template",
    "utcnow",
]


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Attachment(_Model):
    """A media attachment: a provider-side id, or a URL / file to upload."""

    provider_id: str | None = None
    url: str | None = None
    filename: str | None = None
    content_type: str | None = None


class Location(_Model):
    """A geographic location to send with a message."""

    name: str = ""
    lat: float
    lng: float


class OutboundMessage(_Model):
    """One message to one recipient, after normalisation (``to`` is E.164)."""

    to: str
    text: str = ""
    sender: str | None = None
    message_id: str = ""
    reference: str | None = None
    idempotency_key: str | None = None
    template_id: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)
    location: Location | None = None
    campaign_id: str | None = None
    provider_options: dict[str, Any] = Field(default_factory=dict)

    @property
    def has_media(self) -> bool:
        """True if the message carries attachments or a location."""
        return bool(self.attachments) or self.location is not None


class SendResult(_Model):
    """What happened to one outbound message."""

    message_id: str = ""
    to: str
    status: Status
    raw_status: str | None = None
    provider: str = ""
    provider_message_id: str | None = None
    batch_id: str | None = None
    segments: int | None = None
    cost: Decimal | None = None
    currency: str | None = None
    error: str | None = None
    error_code: str | None = None
    #: The vendor refused this message without processing it, together with others
    #: (a bulk request rejected as a whole): the gateway may send it again.
    resend: bool = False

    @property
    def ok(self) -> bool:
        """True if the provider accepted the message."""
        return self.status in (Status.SUBMITTED, Status.SENT, Status.DELIVERED, Status.QUEUED)


class DeliveryReport(_Model):
    """A status update for a message, from a webhook or a status lookup."""

    provider: str = ""
    provider_message_id: str | None = None
    batch_id: str | None = None
    to: str | None = None
    status: Status
    raw_status: str | None = None
    occurred_at: datetime = Field(default_factory=utcnow)
    error_code: str | None = None
    cost: Decimal | None = None
    segments: int | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class StatusEvent(_Model):
    """One entry of a message's status history."""

    status: Status
    raw_status: str | None = None
    at: datetime
    source: str = ""
    detail: str | None = None


class MessageRecord(_Model):
    """A message as kept in the store's log."""

    tenant: str
    message_id: str
    to: str
    status: Status
    raw_status: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    batch_id: str | None = None
    sender: str | None = None
    reference: str | None = None
    campaign_id: str | None = None
    segments: int | None = None
    cost: Decimal | None = None
    currency: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    delivered_at: datetime | None = None
    history: list[StatusEvent] = Field(default_factory=list)


class Contact(_Model):
    """A recipient with optional personalisation fields."""

    phone: str
    name: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    id: str | None = None


class ContactList(_Model):
    """A named list of contacts (a Squad bucket, a Colony contact list, ...)."""

    id: str | None = None
    name: str
    description: str = ""
    size: int | None = None
    status: str | None = None
    provider: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class CampaignStatus(StrEnum):
    """Neutral campaign states.

    A campaign is ``preparing`` while ``campaigns.create()`` stores its audience
    (never runnable; a failed preparation deletes it), then ``draft`` (or
    ``scheduled``), ``running``, ``paused``, ``completed`` or ``cancelled``.
    """

    PREPARING = "preparing"
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"


class Campaign(_Model):
    """A campaign: one message (or template) to an audience."""

    id: str | None = None
    name: str = ""
    text: str | None = None
    template_id: str | None = None
    sender: str | None = None
    contact_list_id: str | None = None
    contacts: list[Contact] = Field(default_factory=list)
    start_at: datetime | None = None
    status: CampaignStatus = CampaignStatus.DRAFT
    raw_status: str | None = None
    recipient_count: int | None = None
    cost: Decimal | None = None
    provider: str | None = None
    provider_options: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class Template(_Model):
    """A neutral message template (``Hello {name}``) with per-provider template ids."""

    name: str
    body: str
    description: str = ""
    id: str | None = None
    provider_ids: dict[str, str] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict)

    def render(self, variables: dict[str, str]) -> str:
        """Render ``body`` with ``variables``; a missing variable is an error."""
        from smsgate.text import render_template

        return render_template(self.body, variables)


class OptOut(_Model):
    """A number that must not be messaged by a tenant."""

    phone: str
    reason: str | None = None
    source: str = "api"
    created_at: datetime = Field(default_factory=utcnow)


class StatsBucket(_Model):
    """Counts for one period (an hour, a day, ...)."""

    period_start: datetime | None = None
    label: str = ""
    total: int = 0
    queued: int = 0
    unknown: int = 0
    expired: int = 0
    submitted: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    undelivered: int = 0
    rejected: int = 0
    invalid: int = 0
    absent: int = 0
    opted_out: int = 0


class Stats(StatsBucket):
    """Aggregate statistics, with optional per-period detail."""

    provider: str | None = None
    avg_queue_seconds: float | None = None
    avg_delivery_seconds: float | None = None
    cost: Decimal | None = None
    detail: list[StatsBucket] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def delivery_rate(self) -> float | None:
        """Delivered / (delivered + failed + undelivered), or None with no outcomes."""
        done = self.delivered + self.failed + self.undelivered
        return self.delivered / done if done else None
