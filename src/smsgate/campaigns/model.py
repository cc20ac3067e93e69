"""A campaign's settings, preview and progress, and its quiet hours."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgate.errors import ConfigError, ValidationError
from smsgate.models import CampaignStatus, Template
from smsgate.routing import check_kind

if TYPE_CHECKING:
    from smsgate.config import TenantConfig

__all__ = [
    "MAX_LEASE",
    "CampaignPreview",
    "CampaignSettings",
    "Mode",
    "Progress",
    "RowError",
    "Summary",
    "in_quiet_hours",
    "quiet_end",
]

Mode = Literal["auto", "fanout", "native"]

#: The longest ``lease_seconds`` a campaign may have (a day): how long a killed runner's claims
#: hold its recipients back; a longer one (or an infinite one, which no clock can date) is refused.
MAX_LEASE = 86400.0


def parse_clock(value: str) -> time:
    """``"21:30"`` as a :class:`datetime.time`."""
    try:
        hh, mm = value.split(":")
        return time(int(hh), int(mm))
    except ValueError:
        raise ConfigError(f"quiet hours {value!r}: expected HH:MM") from None


def in_quiet_hours(now: datetime, window: Sequence[str] | None, tz: str) -> datetime | None:
    """If ``now`` falls in the quiet ``window`` (``["21:00", "08:00"]`` in zone ``tz``),
    the UTC time it ends; else ``None``. Windows may span midnight."""
    if not window:
        return None
    start, end = parse_clock(window[0]), parse_clock(window[1])
    local = now.astimezone(ZoneInfo(tz))
    t = local.time().replace(tzinfo=None)
    inside = (start <= t < end) if start <= end else (t >= start or t < end)
    if not inside:
        return None
    end_dt = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if end_dt <= local:
        end_dt += timedelta(days=1)
    return end_dt.astimezone(timezone.utc)


def quiet_end(now: datetime, window: Sequence[str] | None, config: TenantConfig) -> datetime | None:
    """:func:`in_quiet_hours` in the tenant's quiet-hours zone
    (:meth:`~smsgate.config.TenantConfig.quiet_hours_zone`: a :class:`ConfigError` when a
    window is set and the tenant has no time zone)."""
    if not window:
        return None
    return in_quiet_hours(now, window, config.quiet_hours_zone())


class Summary(BaseModel):
    """What preparation found: the figures :meth:`CampaignHandle.preview` shows."""

    model_config = ConfigDict(extra="ignore")

    rows: int = 0
    recipients: int = 0
    segments: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    by_provider: dict[str, int] = Field(default_factory=dict)
    segments_by_provider: dict[str, int] = Field(default_factory=dict)
    encoding: dict[str, int] = Field(default_factory=dict)
    samples: list[dict[str, str]] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)


class CampaignSettings(BaseModel):
    """Everything a campaign was created with (stored with it; read back typed)."""

    model_config = ConfigDict(extra="ignore")

    text: str | None = None
    template: Template | None = None
    sender: str | None = None
    #: the provider instance every message goes through (else the tenant's routes)
    provider: str | None = None
    mode: Mode = "auto"
    #: the quiet hours the campaign keeps, fixed when it is created: its own, else its tenant's
    #: (:func:`smsgate.zones.campaign_quiet_hours`); ``None``: none (created with
    #: ``quiet_hours=False`` or ``--quiet-hours off``, or its tenant had none)
    quiet_hours: tuple[str, str] | None = None
    #: recipients a runner claims at a time (per worker: at most ``batch_size`` x ``concurrency / 4``; its first
    #: claims take less, see :func:`smsgate.core.campaign.claim_size`)
    batch_size: int = Field(default=500, ge=1)
    #: requests in flight at once
    concurrency: int = Field(default=32, ge=1)
    #: seconds a runner's claims stay its own without renewal (renewed every third of it; at most
    #: :data:`MAX_LEASE`)
    lease_seconds: float = Field(default=30.0, gt=0, le=MAX_LEASE, allow_inf_nan=False)
    provider_options: dict[str, Any] = Field(default_factory=dict)
    #: the kind of every message (``marketing``...): routes restricted to kinds use it
    kind: str | None = None
    #: where the audience came from (for display)
    audience: str = ""
    #: a provider-side list the campaign is sent to natively
    provider_list_id: str | None = None
    summary: Summary = Field(default_factory=Summary)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        try:
            return check_kind(value)
        except ValidationError as exc:
            raise ValueError(exc.reason) from None

    @field_validator("quiet_hours")
    @classmethod
    def _clock(cls, value: tuple[str, str] | None) -> tuple[str, str] | None:
        if value is not None:
            for v in value:
                try:
                    parse_clock(v)
                except ConfigError as exc:  # a ValueError: pydantic's error, named quiet_hours
                    raise ValueError(str(exc)) from None
        return value

    @property
    def body(self) -> str:
        """The text or template body (what preparation renders per recipient)."""
        return self.template.body if self.template is not None else str(self.text or "")


class RowError(BaseModel):
    """Why one audience row was skipped."""

    seq: int
    location: str
    phone: str
    reason: str
    detail: str


class CampaignPreview(BaseModel):
    """What a campaign will do, computed without sending."""

    campaign_id: str
    name: str
    status: CampaignStatus
    mode: str
    total_rows: int
    recipients: int
    skipped: dict[str, int]
    segments: int
    encoding: dict[str, int]
    cost: dict[str, Decimal]
    currency: dict[str, str | None]
    by_provider: dict[str, int]
    samples: list[dict[str, str]]
    errors: list[RowError] = Field(default_factory=list)
    #: the scheduled start (UTC), if any: nothing is sent before it
    start_at: datetime | None = None
    #: the quiet hours the campaign keeps (:attr:`CampaignSettings.quiet_hours`), in ``quiet_zone``
    quiet_hours: tuple[str, str] | None = None
    quiet_zone: str | None = None
    #: the kind of every message (``campaign create --kind``): routes restricted to kinds use it
    kind: str | None = None

    def when_lines(self) -> list[str]:
        """What holds the campaign's sends back, one indented line each: its scheduled start and
        its quiet hours (none: sent as soon as it runs). ``smsgate campaign status`` shows them too."""
        lines = []
        if self.start_at is not None:
            lines.append(f"  scheduled for {self.start_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC: "
                         "nothing is sent before")
        if self.quiet_hours is not None:
            lines.append(f"  quiet hours: {self.quiet_hours[0]}-{self.quiet_hours[1]} ({self.quiet_zone}): "
                         "nothing is sent between them")
        return lines

    def __str__(self) -> str:
        lines = [
            f"campaign {self.campaign_id} {self.name!r} ({self.status.value}, mode {self.mode}"
            + (f", kind {self.kind})" if self.kind else ")"),
            f"  rows: {self.total_rows}, to send: {self.recipients}, segments: {self.segments}",
            "  skipped: " + (", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"),
        ]
        lines.extend(self.when_lines())
        ucs2 = self.encoding.get("ucs2", 0)
        if ucs2:  # what makes the segment count (and the cost) high
            lines.append(f"  encoding: {ucs2} of {self.recipients} message{'' if self.recipients == 1 else 's'} "
                         f"{'is' if ucs2 == 1 else 'are'} UCS-2 (70 characters a segment, "
                         "not 160): a character outside GSM-7 (an accent, a curly quote, an emoji); "
                         "smart_encoding = true replaces look-alikes such as curly quotes")
        for prov, n in sorted(self.by_provider.items()):
            cost = self.cost.get(prov)
            cur = self.currency.get(prov) or ""
            lines.append(f"  via {prov}: {n} recipient{'' if n == 1 else 's'}"
                         + (f", est. cost {cost} {cur}".rstrip() if cost is not None else ""))
        for s in self.samples:
            lines.append(f"  sample to {s['to']}: {s['text']}")
        return "\n".join(lines)


@dataclass
class Progress:
    """Dispatch progress of one campaign."""

    campaign_id: str
    status: CampaignStatus
    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    #: failed recipients per failure reason (``AuthFailed``, a vendor's error code...)
    failed_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Recipients with a final dispatch state."""
        return self.sent + self.failed + self.unknown + self.skipped

    @property
    def to_send(self) -> int:
        """Recipients that are or were to be sent (total minus skipped)."""
        return self.total - self.skipped
