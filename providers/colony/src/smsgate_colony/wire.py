"""Colony's wire format: vendor objects, status maps, and pure parsers and builders.

Everything here is a pure function or a pydantic model: JSON (or CSV) in, typed values out,
no I/O and no provider state. Field names come from the Colony REST API model dumps (seed
002 / FACTS.md section 2); every model tolerates extra fields and the usual string-vs-number
quirks (``"5"`` for ``5``, ``""`` for ``null``), so an API that grew new fields keeps working.
The parsers raise :class:`~smsgate.errors.MalformedResponse` saying what is wrong and where;
:mod:`smsgate_colony.api` adds the provider instance and the HTTP answer. Other code (e.g.
inbound-message handling) can call them directly::

    from smsgate_colony.wire import parse_inbound_messages
    messages = parse_inbound_messages(stored_json)          # a listing: array or DRF page

What the vendor does not publish is marked ``[INF]`` here and in ``docs/providers/colony.md``:
the meaning of the ``status`` / ``dispatch`` integers and the contact fields (the URL paths
are in :mod:`smsgate_colony.options`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgate import phone as phonelib
from smsgate import text as textlib
from smsgate.errors import InvalidPhoneNumber, MalformedResponse, ValidationError
from smsgate.models import CampaignStatus, Contact, Stats, StatsBucket
from smsgate.provider import parse_model

__all__ = [
    "CHUNK_CHARS",
    "DEFAULT_DEPLOYMENT_STATUSES",
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
    "Listing",
    "contacts_csv",
    "credits_for",
    "deployment_csv",
    "deployment_state",
    "digits",
    "drf_error_text",
    "flag",
    "opt_bool",
    "opt_int",
    "opt_when",
    "parse_collate_campaign",
    "parse_inbound_message",
    "parse_inbound_messages",
    "parse_listing",
    "personalised_rows",
    "stats_from_rows",
]

#: Characters per billed chunk: "split into 160 character chunks with each chunk costing 1 credit".
CHUNK_CHARS: Final = 160

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


# ============================================================ parsers

M = TypeVar("M", bound=ColonyModel)


@dataclass(frozen=True)
class Listing:
    """One listing answer: its raw items, the DRF ``next`` link (as sent) and ``count``."""

    items: list[Any]
    next: object = None
    total: int | None = None


def parse_listing(body: object, where: str) -> Listing:
    """A listing answer: a plain JSON array, a DRF page ``{count, next, previous, results}``,
    or nothing (``None``: an empty body). Anything else is :class:`MalformedResponse`."""
    if body is None:
        return Listing([])
    if isinstance(body, list):
        return Listing(body, None, len(body))
    if isinstance(body, Mapping) and isinstance(body.get("results"), list):
        count = body.get("count")
        try:
            total = int(count) if count is not None else None
        except (TypeError, ValueError):
            total = None
        return Listing(body["results"], body.get("next"), total)
    raise MalformedResponse(f"{where}: expected a JSON array or a page {{count, next, previous, results}}")


def parse_inbound_message(data: object, where: str = "inbound message") -> ColonyInboundMessage:
    """One inbound (collate) message object."""
    return parse_model(ColonyInboundMessage, data, where)


def parse_inbound_messages(body: object, where: str = "inbound messages") -> list[ColonyInboundMessage]:
    """Every message of one listing answer (array or DRF page; the ``next`` link is not followed)."""
    listing = parse_listing(body, where)
    return [parse_inbound_message(item, f"{where}: item {i}") for i, item in enumerate(listing.items)]


def parse_collate_campaign(data: object, where: str = "collate campaign") -> ColonyCollateCampaign:
    """One collate campaign object."""
    return parse_model(ColonyCollateCampaign, data, where)


# ============================================================ errors and CSV bodies


def drf_error_text(body: Any, limit: int = 300) -> str:
    """Flatten a Django REST framework / OAuth2 error body into one line.

    ``{"destination": ["Invalid."], "detail": "x"}`` -> ``"destination: Invalid.; x"``;
    lists of per-item errors (``many=True``) are numbered ``[2] destination: ...``.
    Never raises, whatever JSON it gets.
    """
    parts: list[str] = []

    def walk(value: Any, prefix: str) -> None:
        if len(parts) > 20:
            return
        if isinstance(value, dict):
            if isinstance(value.get("error"), str):
                desc = value.get("error_description")
                text = value["error"] + (f": {desc}" if isinstance(desc, str) and desc else "")
                parts.append(f"{prefix}{text}")
                return
            for key, item in value.items():
                label = "" if key in ("detail", "non_field_errors") else f"{key}: "
                walk(item, prefix + label)
        elif isinstance(value, list):
            if value and all(isinstance(v, dict) for v in value):
                for i, item in enumerate(value):
                    if item:
                        walk(item, f"{prefix}[{i}] ")
            else:
                for item in value:
                    walk(item, prefix)
        elif value is not None and str(value).strip():
            parts.append(f"{prefix}{value}")

    walk(body, "")
    return "; ".join(parts)[:limit]


def contacts_csv(phones: Iterable[str], phone_field: str = "msisdn") -> bytes:
    """A contact-list CSV (header ``msisdn``) from E.164 numbers, in Colony's digits format."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([phone_field])
    for i, e164 in enumerate(phones):
        writer.writerow([digits(e164, f"row {i + 2}")])
    return out.getvalue().encode("utf-8")


def deployment_csv(rows: Iterable[tuple[str, str] | str]) -> bytes:
    """A deployment CSV: ``destination,message`` rows (or ``destination`` alone).

    ``rows`` holds ``(e164, message)`` pairs, or bare E.164 numbers for the
    "numbers plus one message" import.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header_written = False
    for i, row in enumerate(rows):
        pair = (row, None) if isinstance(row, str) else row
        if not header_written:
            writer.writerow(["destination"] if pair[1] is None else ["destination", "message"])
            header_written = True
        number = digits(pair[0], f"row {i + 2}")
        writer.writerow([number] if pair[1] is None else [number, pair[1]])
    if not header_written:
        raise ValidationError("a deployment needs at least one destination", field="file")
    return out.getvalue().encode("utf-8")


def digits(e164: str, location: str | None = None) -> str:
    """An E.164 number as Colony's international digits (``27815854565``); typed error if invalid."""
    try:
        return phonelib.to_international_digits(e164)
    except InvalidPhoneNumber as exc:
        raise InvalidPhoneNumber(exc.reason, field="destination", value=e164, location=location) from None


def flag(value: bool) -> str:
    """A boolean as a multipart form field (``true`` / ``false``)."""
    return "true" if value else "false"


# ============================================================ neutral inputs and outputs


def opt_bool(values: Mapping[str, Any], key: str) -> bool | None:
    """``values[key]`` as a boolean (``"true"``/``"1"`` accepted), None when absent; typed error otherwise."""
    value = values.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ValidationError("must be true or false", field=key, value=value)


def opt_when(values: Mapping[str, Any], key: str) -> datetime | None:
    """``values[key]`` as an aware datetime (naive read as UTC), None when absent."""
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError("must be a datetime", field=key, value=value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def opt_int(values: Mapping[str, Any], key: str) -> int | None:
    """``values[key]`` as an integer (not a boolean), None when absent."""
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError("must be an integer", field=key, value=value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError("must be an integer", field=key, value=value) from None


def personalised_rows(text: str, contacts: Sequence[Contact]) -> list[tuple[str, str]]:
    """``(phone, text)`` per contact, ``{name}`` / field placeholders rendered (errors name the contact)."""
    needs = textlib.template_variables(text)
    rows = []
    for i, contact in enumerate(contacts):
        rendered = text
        if needs:
            values = dict(contact.fields)
            if contact.name is not None:
                values.setdefault("name", contact.name)
            try:
                rendered = textlib.render_template(text, values)
            except ValidationError as exc:
                raise type(exc)(exc.reason, field=exc.field, value=exc.value, location=f"contact {i}") from None
        rows.append((contact.phone, rendered))
    return rows


def stats_from_rows(rows: Sequence[ColonyStat], *, instance: str, period: str, deployment: int | None) -> Stats:
    """Neutral statistics from deployment-stat rows, one bucket per ``period_start``.

    ``sms_sent_count`` -> sent, ``sms_unsent_count`` -> failed, ``sms_optout_count`` ->
    opted_out, ``total`` -> submitted; the email counts are summed into ``raw``.
    """
    buckets: dict[datetime | None, StatsBucket] = {}
    email = {"email_sent_count": 0, "email_unsent_count": 0, "email_optout_count": 0}
    for r in rows:
        b = buckets.setdefault(r.period_start, StatsBucket(
            period_start=r.period_start,
            label=r.period_start.isoformat() if r.period_start else "",
        ))
        b.submitted += r.total
        b.sent += r.sms_sent_count
        b.failed += r.sms_unsent_count
        b.opted_out += r.sms_optout_count
        for k in email:
            email[k] += getattr(r, k)
    detail = sorted(buckets.values(), key=lambda b: (b.period_start is None, b.period_start or 0))
    return Stats(
        provider=instance,
        submitted=sum(b.submitted for b in detail),
        sent=sum(b.sent for b in detail),
        failed=sum(b.failed for b in detail),
        opted_out=sum(b.opted_out for b in detail),
        detail=detail,
        raw={"period": period, "deployment": deployment, "rows": len(rows), **email},
    )
