"""Squad's wire format: payload models, status maps and pure converters to smsgate's neutral models.

Nothing here does I/O; every function is total over the inputs it documents and tolerant of
the quirks noted in FACTS.md section 1 (numbers sent as strings, ``total`` wrapped in a list,
JavaScript ``Date.toString()`` timestamps, unknown extra fields).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from pydantic import ValidationError as PydanticValidationError

from smsgate import phone as phonelib
from smsgate.errors import InvalidPhoneNumber, MalformedResponse
from smsgate.models import (
    Campaign,
    CampaignStatus,
    ContactList,
    DeliveryReport,
    Stats,
    StatsBucket,
    Status,
    Template,
    utcnow,
)
from smsgate.provider import read_int
from smsgate_squad.auth import WAT

__all__ = [
    "PAYMENT_EVENTS",
    "STATUS_MAP",
    "SendReceipt",
    "campaign_from_v1",
    "campaign_from_v2",
    "campaign_state_from_stats",
    "campaign_status",
    "contact_list_from_v1",
    "contact_list_from_v2",
    "counts_stats",
    "csv_bytes",
    "event_key",
    "from_squad_number",
    "from_squad_placeholders",
    "hourly_stats",
    "int_or_text",
    "is_payment_event",
    "iso_z",
    "map_status",
    "message_report",
    "normalize_raw_status",
    "parse_timestamp",
    "slug",
    "squad_number",
    "template_from_v1",
    "template_from_v2",
    "to_decimal",
    "to_float",
    "to_int",
    "to_squad_placeholders",
    "v1_total",
    "webhook_items",
]

# ------------------------------------------------------------------ statuses

#: Squad's message statuses (v1 items, v1 statistics keys, v2 instant-send ``status``), after
#: :func:`normalize_raw_status`, onto the neutral lifecycle.
STATUS_MAP: Final[Mapping[str, Status]] = {
    # v1 [DOC]: Submitted = request received; Pending = submitted to telco;
    # Delivered = customer received it; Delivery Failed = telco tried and failed.
    "submitted": Status.SUBMITTED,
    "pending": Status.SENT,
    "delivered": Status.DELIVERED,
    "delivery failed": Status.UNDELIVERED,
    "deliveryfailed": Status.UNDELIVERED,
    # v2 instant send [DOC]: the only per-recipient status shown
    "sent": Status.SENT,
    # statistics vocabulary (submitted/invalid/sent/absent/failed/delivered/deliveryFailed,
    # hourly successful_count) read as statuses [INF]
    "successful": Status.DELIVERED,
    "failed": Status.FAILED,
    "invalid": Status.REJECTED,
    "absent": Status.UNDELIVERED,
    # defensive spellings [INF]
    "queued": Status.QUEUED,
    "received": Status.SUBMITTED,
    "undelivered": Status.UNDELIVERED,
    "rejected": Status.REJECTED,
    "expired": Status.EXPIRED,
}

_SEP_RE: Final = re.compile(r"[\s_\-]+")


def normalize_raw_status(raw: object) -> str:
    """``"Delivery Failed"``, ``"delivery_failed"``, ``" DELIVERY-FAILED "`` -> ``"delivery failed"``."""
    if raw is None:
        return ""
    return _SEP_RE.sub(" ", str(raw)).strip().lower()


def map_status(raw: object) -> Status:
    """The neutral status of a Squad message status; anything unrecognised is ``unknown``."""
    return STATUS_MAP.get(normalize_raw_status(raw), Status.UNKNOWN)


_CAMPAIGN_STATUS: Final[Mapping[str, CampaignStatus]] = {
    # v2 campaign list filter [DOC]: pending, failed or success
    "pending": CampaignStatus.RUNNING,
    "success": CampaignStatus.COMPLETED,
    "failed": CampaignStatus.FAILED,
    # defensive [INF]
    "completed": CampaignStatus.COMPLETED,
    "running": CampaignStatus.RUNNING,
    "processing": CampaignStatus.RUNNING,
    "scheduled": CampaignStatus.SCHEDULED,
    "cancelled": CampaignStatus.CANCELLED,
}


def campaign_status(raw: object, start_at: datetime | None = None, now: datetime | None = None) -> CampaignStatus:
    """Neutral state of a v2 campaign; ``pending`` with a future start is ``scheduled``."""
    key = normalize_raw_status(raw)
    status = _CAMPAIGN_STATUS.get(key, CampaignStatus.UNKNOWN)
    if key == "pending" and start_at is not None and start_at > (now or utcnow()):
        return CampaignStatus.SCHEDULED
    return status


# ------------------------------------------------------------------ scalars

to_int = read_int  #: see :func:`smsgate.provider.read_int`


def to_float(value: object) -> float | None:
    """``1.5``, ``"1.5"`` -> ``1.5``; anything else -> ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def to_decimal(value: object) -> Decimal | None:
    """``5.41``, ``"0.00"``, ``"4"`` -> a :class:`~decimal.Decimal`; anything else -> ``None``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, (int, str, Decimal)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return result if result.is_finite() else None
    return None


def v1_total(value: object) -> int | None:
    """A v1 ``total``: ``4``, ``"4"``, or the message lists' ``[{"total": "0"}]`` [DOC quirk]."""
    if isinstance(value, list):
        for entry in value:
            if isinstance(entry, Mapping) and "total" in entry:
                return to_int(entry["total"])
            found = to_int(entry)
            if found is not None:
                return found
        return None
    return to_int(value)


_MONTHS: Final = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
# JavaScript Date.toString(): "Wed Dec 31 2025 10:05:10 GMT+0100 (West Africa Standard Time)"
_JS_DATE_RE: Final = re.compile(
    r"(?:[A-Za-z]{3}\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"
    r"\s*(?:GMT|UTC)?([+-]\d{2}):?(\d{2})?"
)
_FRACTION_RE: Final = re.compile(r"\.(\d+)")


def parse_timestamp(value: object) -> datetime | None:
    """Read a Squad timestamp as an aware datetime, or ``None``.

    Accepts ISO 8601 (``2025-05-22T09:34:58.800Z``; naive means UTC), dates
    (``2025-06-01``), epoch seconds or milliseconds, and the JavaScript
    ``Date.toString()`` form the v2 campaign sample shows for ``scheduled_for``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        seconds = float(value) / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    # Python 3.10's fromisoformat takes exactly 3 or 6 fraction digits
    iso = _FRACTION_RE.sub(lambda m: "." + (m.group(1) + "000000")[:6], iso, count=1)
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed = None
    if parsed is not None:
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    match = _JS_DATE_RE.match(text)
    if match:
        mon, day, year, hh, mm, ss, off_h, off_m = match.groups()
        month = _MONTHS.get(mon.lower())
        if month is None:
            return None
        sign = -1 if off_h.startswith("-") else 1
        offset = timedelta(hours=abs(int(off_h)), minutes=int(off_m or 0)) * sign
        try:
            return datetime(int(year), month, int(day), int(hh), int(mm), int(ss),
                            tzinfo=timezone(offset))
        except ValueError:
            return None
    return None


def iso_z(moment: datetime) -> str:
    """``2025-06-01T10:00:00Z`` (UTC, seconds), the format of Squad's sample requests."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ numbers

def squad_number(e164: str, *, allow_international: bool = False) -> str | None:
    """The number as Squad's samples write it: Nigerian local format ``0806...`` [DOC].

    Numbers outside Nigeria give ``None`` (Squad documents Nigerian numbers only) unless
    ``allow_international``, then international digits without ``+`` [INF].
    """
    if e164.startswith("+234"):
        return phonelib.to_national(e164)
    if allow_international:
        return phonelib.to_international_digits(e164)
    return None


def from_squad_number(raw: object, region: str = "NG") -> str | None:
    """A number from a Squad response in E.164, or ``None`` when it is not a valid number."""
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    if not text:
        return None
    try:
        return phonelib.normalize(text, region)
    except InvalidPhoneNumber:
        return None


# ------------------------------------------------------------------ templates

_NEUTRAL_RE: Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SQUAD_RE: Final = re.compile(r"#\$([A-Za-z_][A-Za-z0-9_]*)\$#|[{}]")


def to_squad_placeholders(body: str) -> str:
    """Neutral ``Hello {name}`` -> Squad's ``Hello #$name$#`` [DOC v1 syntax]; ``{{``/``}}`` -> braces."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return f"#${m.group(1)}$#"
        return m.group(0)[0]

    return _NEUTRAL_RE.sub(repl, body)


def from_squad_placeholders(body: str) -> str:
    """Squad's ``#$name$#`` -> neutral ``{name}``; literal braces are doubled."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return "{" + m.group(1) + "}"
        return m.group(0) * 2

    return _SQUAD_RE.sub(repl, body)


# ------------------------------------------------------------------ records

def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def message_report(
    item: Mapping[str, Any],
    *,
    provider: str,
    provider_message_id: str | None = None,
    batch_id: str | None = None,
    region: str = "NG",
) -> DeliveryReport:
    """A v1 message item (``status, id, transaction_id, phonenumber, charge, pages, ...``) as a report.

    ``provider_message_id`` defaults to the item's ``transaction_id``; pass the id the adapter
    recorded at send time (the v1 ``batch_id``) when the report answers a status lookup.
    """
    raw_status = item.get("status")
    status = map_status(raw_status)
    when = (
        parse_timestamp(item.get("dlr_timestamp"))
        or parse_timestamp(item.get("sent_timestamp"))
        or parse_timestamp(item.get("created_at"))
        or utcnow()
    )
    cost_raw = item.get("charge") if item.get("charge") is not None else item.get("cost")
    failed = status in (Status.UNDELIVERED, Status.FAILED, Status.REJECTED, Status.EXPIRED)
    try:
        return _report(item, provider, provider_message_id, batch_id, region, status, raw_status, when, failed,
                       cost_raw)
    except PydanticValidationError as exc:  # absurd values (a charge of 10**30, pages of 10**30)
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise MalformedResponse(f"message report out of range: {where}", provider=provider) from None


def _report(item: Mapping[str, Any], provider: str, provider_message_id: str | None, batch_id: str | None,
            region: str, status: Status, raw_status: Any, when: datetime, failed: bool,
            cost_raw: Any) -> DeliveryReport:
    return DeliveryReport(
        provider=provider,
        provider_message_id=provider_message_id or _str_or_none(item.get("transaction_id"))
        or _str_or_none(item.get("id")),
        batch_id=batch_id or _str_or_none(item.get("batch_id")),
        to=from_squad_number(item.get("phonenumber", item.get("phone_number")), region),
        status=status,
        raw_status=None if raw_status is None else str(raw_status),
        occurred_at=when,
        error_code=normalize_raw_status(raw_status) if failed else None,
        cost=to_decimal(cost_raw),
        segments=to_int(item.get("pages")),
        raw=dict(item),
    )


#: Squad's documented webhook events, which are payments [DOC, webhook page: ``charge_successful``;
#: older pages ``Charge.Successful``], compared as :func:`event_key`. Squad posts every event to
#: the merchant's one webhook URL, so the SMS webhook receives them too: acknowledged, not read.
PAYMENT_EVENTS: Final = frozenset({"chargesuccessful"})


def event_key(event: object) -> str:
    """``"charge_successful"``, ``"Charge.Successful"`` -> ``"chargesuccessful"``."""
    return re.sub(r"[^a-z0-9]", "", str(event).lower())


def is_payment_event(payload: object) -> bool:
    """Whether a decoded webhook body is one of Squad's documented payment events."""
    return isinstance(payload, Mapping) and event_key(payload.get("Event", "")) in PAYMENT_EVENTS


def webhook_items(payload: object) -> tuple[object, list[object]]:
    """``(TransactionRef, items)`` of a decoded webhook body: Squad's envelope
    ``{"Event", "TransactionRef", "Body": item or [items]}`` [INF for SMS], a list of items, or
    one bare item. The items are not checked: each should be a v1 message item with ``status``."""
    if isinstance(payload, Mapping) and ("Body" in payload or "body" in payload):
        inner = payload.get("Body", payload.get("body"))
        return payload.get("TransactionRef"), inner if isinstance(inner, list) else [inner]
    if isinstance(payload, list):
        return None, payload
    return None, [payload]


def counts_stats(data: Mapping[str, Any], *, provider: str) -> Stats:
    """v1 statistics ``{submitted, invalid, sent, absent, failed, delivered, deliveryFailed}``.

    These count messages by their current state, so ``total`` is their sum.
    """
    def n(key: str) -> int:
        return to_int(data.get(key)) or 0

    keys = ("submitted", "sent", "delivered", "failed", "deliveryFailed", "invalid", "absent")
    return Stats(
        provider=provider,
        total=sum(n(k) for k in keys),
        submitted=n("submitted"),
        sent=n("sent"),
        delivered=n("delivered"),
        failed=n("failed"),
        undelivered=n("deliveryFailed"),
        invalid=n("invalid"),
        absent=n("absent"),
        raw=dict(data),
    )


def _hour_start(day: date, label: object) -> datetime | None:
    match = re.fullmatch(r"\s*(\d{1,2})(?::(\d{2}))?\s*", str(label))
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if hour > 23 or minute > 59:
        return None
    return datetime.combine(day, time(hour, minute), tzinfo=WAT)


def _hourly_bucket(entry: Mapping[str, Any], day: date) -> StatsBucket:
    def n(key: str) -> int:
        return to_int(entry.get(key)) or 0

    label = str(entry.get("hour", ""))
    return StatsBucket(
        period_start=_hour_start(day, label),
        label=label,
        total=n("submitted_count"),
        submitted=n("submitted_count"),
        sent=n("sent_count"),
        delivered=n("successful_count"),
        failed=n("failed_count"),
        invalid=n("invalid_count"),
        absent=n("absent_count"),
    )


def hourly_stats(data: Mapping[str, Any], day: date, *, provider: str) -> Stats:
    """v1 hourly statistics (totals + ``detail`` of 24 ``"HH:00"`` buckets) as neutral stats.

    ``submitted_count`` counts every message received in the hour (``total``),
    ``successful_count`` is read as delivered; hours are taken in West Africa Time and the
    ``avg_*_time`` values as seconds [INF: units undocumented].
    """
    total = _hourly_bucket(data, day)
    detail = data.get("detail")
    buckets = [
        _hourly_bucket(entry, day) for entry in (detail if isinstance(detail, list) else [])
        if isinstance(entry, Mapping)
    ]
    return Stats(
        provider=provider,
        period_start=datetime.combine(day, time(0), tzinfo=WAT),
        label=day.isoformat(),
        total=total.total,
        submitted=total.submitted,
        sent=total.sent,
        delivered=total.delivered,
        failed=total.failed,
        invalid=total.invalid,
        absent=total.absent,
        avg_queue_seconds=to_float(data.get("avg_queue_time")),
        avg_delivery_seconds=to_float(data.get("avg_delivery_time")),
        detail=buckets,
        raw=dict(data),
    )


def template_from_v2(row: Mapping[str, Any], instance: str) -> Template:
    """A v2 template row ``{uuid, name, description, pages, message, ...}``."""
    uuid = str(row.get("uuid", ""))
    return Template(
        name=str(row.get("name") or ""),
        body=from_squad_placeholders(str(row.get("message") or "")),
        description=str(row.get("description") or ""),
        provider_ids={instance: uuid} if uuid else {},
        raw=dict(row),
    )


def template_from_v1(item: Mapping[str, Any], instance: str, body: str | None = None) -> Template:
    """A v1 template item ``{id, name, body?, description, client_id, params?, ...}``."""
    ident = item.get("id")
    text = item.get("body")
    return Template(
        name=str(item.get("name") or ""),
        body=from_squad_placeholders(str(text)) if text is not None else (body or ""),
        description=str(item.get("description") or ""),
        provider_ids={instance: str(ident)} if ident is not None else {},
        raw=dict(item),
    )


def contact_list_from_v2(row: Mapping[str, Any], provider: str) -> ContactList:
    """A v2 bucket ``{uuid, status, name, description, size, signed_url?, ...}``."""
    return ContactList(
        id=_str_or_none(row.get("uuid")),
        name=str(row.get("name") or ""),
        description=str(row.get("description") or ""),
        size=to_int(row.get("size")),
        status=_str_or_none(row.get("status")),
        provider=provider,
        raw=dict(row),
    )


def contact_list_from_v1(item: Mapping[str, Any], provider: str) -> ContactList:
    """A v1 bucket ``{id, name, description, params, client_id, bucket_items?, ...}``."""
    return ContactList(
        id=_str_or_none(item.get("id")),
        name=str(item.get("name") or ""),
        description=str(item.get("description") or ""),
        size=to_int(item.get("bucket_items")),
        status=_str_or_none(item.get("status")),
        provider=provider,
        raw=dict(item),
    )


def campaign_from_v2(row: Mapping[str, Any], provider: str, now: datetime | None = None,
                     currency: str | None = None) -> Campaign:
    """A v2 campaign ``{uuid, name, cost:"0.00", scheduled_for, status, bucket_id, ...}``; its
    ``cost`` comes without a unit: ``currency`` (the instance's configured one) labels it."""
    start = parse_timestamp(row.get("scheduled_for"))
    raw_status = row.get("status")
    cost = to_decimal(row.get("cost"))
    return Campaign(
        id=_str_or_none(row.get("uuid")),
        name=str(row.get("name") or ""),
        template_id=_str_or_none(row.get("template_id")),
        sender=_str_or_none(row.get("sender_id")),
        contact_list_id=_str_or_none(row.get("bucket_id")),
        start_at=start,
        status=campaign_status(raw_status, start, now),
        raw_status=_str_or_none(raw_status),
        cost=cost,
        currency=currency if cost is not None else None,
        provider=provider,
        created_at=parse_timestamp(row.get("createdAt")),
        raw=dict(row),
    )


def campaign_from_v1(item: Mapping[str, Any], provider: str) -> Campaign:
    """A v1 campaign ``{id, name, client_id, template_id, bucket_id, total, created_at, ...}``.

    v1 campaigns carry no state; :meth:`SquadProvider.get_campaign` derives it from statistics.
    """
    return Campaign(
        id=_str_or_none(item.get("id")),
        name=str(item.get("name") or ""),
        template_id=_str_or_none(item.get("template_id")),
        contact_list_id=_str_or_none(item.get("bucket_id")),
        status=CampaignStatus.UNKNOWN,
        recipient_count=to_int(item.get("total")),
        provider=provider,
        created_at=parse_timestamp(item.get("created_at")),
        raw=dict(item),
    )


def campaign_state_from_stats(stats: Stats) -> CampaignStatus:
    """v1 campaign state: running while messages are submitted/pending, completed once all are final."""
    in_flight = stats.submitted + stats.sent
    done = stats.delivered + stats.failed + stats.undelivered + stats.invalid + stats.absent
    if in_flight:
        return CampaignStatus.RUNNING
    if done:
        return CampaignStatus.COMPLETED
    return CampaignStatus.UNKNOWN


# ------------------------------------------------------------------ payloads

@dataclass(frozen=True)
class SendReceipt:
    """The answer to a v1 ``POST .../message``: how many messages were queued, and the batch."""

    sent: int
    batch_id: str
    raw: dict[str, Any] = field(default_factory=dict)


def slug(name: str) -> str:
    """A file-name-safe form of ``name`` (a bucket CSV's default name)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60]
    return slug or "contacts"


def csv_bytes(rows: Sequence[Mapping[str, str]], phone_column: str) -> bytes:
    """A bucket CSV: ``phone_column`` first, then every other column in order of appearance."""
    headers: list[str] = [phone_column]
    for row in rows:
        for key in row:
            if key not in headers:
                headers.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=headers, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in headers})
    return buf.getvalue().encode("utf-8")


def int_or_text(value: str) -> int | str:
    """Squad types ids as Integer; send ASCII digits as a JSON number, anything else verbatim
    (``"²"`` is a digit to :meth:`str.isdigit` but no number)."""
    return int(value) if value.isascii() and value.isdigit() else value
