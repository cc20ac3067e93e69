"""Provider-neutral domain models (pydantic v2).

Phone numbers in these models are E.164 strings (``+2348012345678``); adapters
convert to and from each vendor's format.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smsgate._enum import StrEnum
from smsgate.errors import AnswerNotLogged, shown_value
from smsgate.lifecycle import Status

__all__ = [
    "CONTACT_COLUMNS",
    "EVERY_SENDER",
    "FINISHED_CAMPAIGNS",
    "MAX_INBOUND_TEXT",
    "NOT_SENT",
    "OPTED_OUT",
    "SENDER_RULE",
    "UNSTORABLE",
    "Attachment",
    "Campaign",
    "CampaignStatus",
    "Contact",
    "ContactList",
    "DeliveryReport",
    "InboundMessage",
    "Location",
    "MessageRecord",
    "OptOut",
    "OutboundMessage",
    "ProviderCheck",
    "SendResult",
    "Stats",
    "StatsBucket",
    "Status",
    "StatusEvent",
    "SyncSummary",
    "Template",
    "WebhookEvents",
    "WebhookOutcome",
    "builtin_field",
    "builtin_field_error",
    "is_numeric_sender",
    "optout_applies",
    "optout_scope",
    "refusing_alone",
    "sender_problem",
    "sender_text",
    "utcnow",
]


#: The largest segment count a report may carry (a PostgreSQL ``integer``).
MAX_SEGMENTS = 2**31 - 1
#: The most parts a multipart message can have (an 8-bit concatenation header).
MAX_PARTS = 255
#: The largest absolute cost a report may carry.
MAX_REPORT_COST = Decimal(10) ** 9


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


#: The latest moment a report's or reply's time was checked against (:meth:`DeliveryReport.
#: _utc_representable`): a time not after it is not in the future, with no clock read (reports
#: are ingested tens of thousands a second; a race between threads only costs a clock read).
_PAST = [datetime.min.replace(tzinfo=timezone.utc)]


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
    #: what the message is for (``otp``, ``marketing``...): routes may be restricted to kinds
    #: (see docs/routing.md); not kept in the log
    kind: str | None = None

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
    #: The vendor refused this message because the recipient opted out or is on its
    #: suppression / do-not-disturb list (see :class:`~smsgate.errors.RecipientSuppressed`):
    #: the gateway records an opt-out (source ``vendor``) so later sends are refused locally.
    suppressed: bool = False

    @property
    def ok(self) -> bool:
        """True if the provider accepted the message."""
        return self.status in (Status.SUBMITTED, Status.SENT, Status.DELIVERED, Status.QUEUED)


# an AnswerNotLogged rebuilt of its arguments (by Celery, from JSON) has its SendResult again
AnswerNotLogged.result_from_json = SendResult.model_validate


#: Set while a provider parses a webhook callback (:func:`refusing_alone`).
_IN_CALLBACK: ContextVar[bool] = ContextVar("smsgate_in_callback", default=False)


@contextmanager
def refusing_alone() -> Iterator[None]:
    """While a provider parses one webhook callback: a report or inbound message with a field
    out of its bounds (other than its text) is built ``rejected`` instead of raising, so that
    one item never fails the rest of its callback (:func:`smsgate.core.reports.ingest` skips
    it, logs and counts it). Elsewhere (status lookups, code building a model) such a value
    raises as before."""
    token = _IN_CALLBACK.set(True)
    try:
        yield
    finally:
        _IN_CALLBACK.reset(token)


def _refused_alone(data: Any, handler: Any, own: Collection[str], blank: Mapping[str, str] | None = None) -> Any:
    """Validate ``data`` with ``handler``; within :func:`refusing_alone`, if only fields in
    ``own`` (bounded fields of one callback item that are not its text: an id, a number, a
    count) fail, the item is built ``rejected`` instead (a text field cut to its first 40
    characters, an empty or missing one given its ``blank`` stand-in when it has one (a
    required field: the item's vendor id), any other field left to its default). Anything
    else raises as before."""
    try:
        return handler(data)
    except pydantic.ValidationError as exc:
        if not _IN_CALLBACK.get() or not isinstance(data, dict) or data.get("rejected"):
            raise
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        if not bad or not bad <= set(own) or any(not e["loc"] for e in exc.errors()):
            raise
        kept = {k: v for k, v in data.items() if k not in bad}
        for name in bad:
            value = data.get(name)
            if isinstance(value, str) and value:
                kept[name] = value[:40]
            elif blank and name in blank:
                kept[name] = blank[name]
        kept["rejected"] = f"{', '.join(sorted(bad))} out of bounds"
        try:
            return handler(kept)
        except pydantic.ValidationError:
            raise exc from None


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
    #: Bounded (finite, at most a billion either way): a report is outside input.
    cost: Decimal | None = Field(default=None, allow_inf_nan=False, ge=-MAX_REPORT_COST, le=MAX_REPORT_COST)
    #: Bounded to what a store column holds (a report is outside input).
    segments: int | None = Field(default=None, ge=0, le=MAX_SEGMENTS)
    raw: dict[str, Any] = Field(default_factory=dict)
    #: For a vendor reporting each part of a multipart message on its own: this
    #: report's part (1-based) and the message's number of parts. The message is
    #: ``delivered`` only once every part is (see :mod:`smsgate.core.reports`).
    part: int | None = Field(default=None, ge=1, le=MAX_PARTS)
    parts: int | None = Field(default=None, ge=1, le=MAX_PARTS)
    #: Why this report is refused on its own (a field out of its bounds: ``cost``,
    #: ``segments``, ``part``, ``parts``, ``occurred_at``): the rest of its callback is
    #: applied, this one is logged and counted, never applied. ``None``: a valid report.
    rejected: str | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_alone(cls, data: Any, handler: Any) -> Any:
        return _refused_alone(data, handler, ("cost", "segments", "part", "parts", "occurred_at"))

    @field_validator("occurred_at")
    @classmethod
    def _utc_representable(cls, value: datetime) -> datetime:
        """Refuse a time that has no UTC equivalent (e.g. year 1 at +05:00); a time later than
        now is now.

        A report cannot have happened after it is read: a vendor's clock ahead of ours (or
        local time given without its offset, or year 9999) would otherwise become the
        message's ``delivered_at`` and ``updated_at``, and one such report skews a tenant's
        average delivery time by years (:mod:`smsgate.stats`).
        """
        if value.tzinfo is not None:
            try:
                utc = value.astimezone(timezone.utc)
            except OverflowError:
                raise ValueError("time out of range") from None
        else:
            utc = value.replace(tzinfo=timezone.utc)  # a naive time is UTC (as stores read it)
        if utc <= _PAST[0]:  # earlier than a moment already read: no clock read a report
            return value
        now = _PAST[0] = utcnow()
        return now if utc > now else value


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


#: A contact's built-in columns: its ``phone`` and ``name`` (the first two columns of a CSV
#: export, the columns an import reads them from). No field may be named like one of them.
CONTACT_COLUMNS = ("phone", "name")


def builtin_field(fields: Iterable[str], *, named: bool = True) -> str | None:
    """The first of ``fields`` named like a built-in column of a contact (:data:`CONTACT_COLUMNS`),
    or ``None``. A flat row (a CSV line, an export) has one ``name`` and one ``phone`` column, so
    such a field would shadow the contact's own name or number, or be lost on export: the import
    paths (``contact_lists.create/add``, the CLI) report the contact as an invalid row and
    :meth:`Store.add_contacts <smsgate.store.base.Store.add_contacts>` refuses it. The match is
    exact (``"Name"`` is a field like any other: it is a column of its own in an export).

    ``named=False``: the contact is read as a flat row and has no name of its own
    (``Contact(phone=..., fields={"name": "Bo"})``): its field ``name`` is its name, as a CSV's
    ``name`` column is, not a clash."""
    return next((key for key in fields if key in CONTACT_COLUMNS and (named or key != "name")), None)


def builtin_field_error(key: str) -> str:
    """Why a contact's field ``key`` (one :func:`builtin_field` names) is refused."""
    where = "Contact.name" if key == "name" else "Contact.phone (its number)"
    return (f"field {key!r} is named like the contact's built-in {key!r} column, which it would shadow "
            f"or be lost beside in an export: give it as {where}, or rename the field")


class Contact(_Model):
    """A recipient with optional personalisation fields.

    ``fields`` keep the order given (an export's columns follow it) and may not be named
    ``phone`` or ``name`` (:func:`builtin_field`): the contact's number and name are its own
    attributes.
    """

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
    ``interrupted``: its last run stopped before it was done (Ctrl-C, an error, a
    cancelled task) and no other runner holds it; running it again resumes.

    :attr:`is_finished`: ``completed``, ``cancelled`` or ``failed``.
    """

    PREPARING = "preparing"
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_finished(self) -> bool:
        """True for ``completed``, ``cancelled`` and ``failed`` (:data:`FINISHED_CAMPAIGNS`): no
        run sends for the campaign by itself any more, so retention may purge it. Not for
        ``interrupted`` (running it again resumes) nor ``paused``."""
        return self in FINISHED_CAMPAIGNS


#: The campaign statuses in which a campaign is finished (:attr:`CampaignStatus.is_finished`).
FINISHED_CAMPAIGNS = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED})


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
    #: The unit of ``cost`` where the provider knows it, as a send's ``SendResult.currency`` gives
    #: it (Colony: ``"credits"``, or the configured ``currency`` with ``price_per_segment``);
    #: ``None`` when the provider gives none.
    currency: str | None = None
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


#: The longest inbound text kept: a longer one is cut to this many characters and flagged
#: ``InboundMessage.truncated`` (one oversized reply never fails the rest of its callback).
MAX_INBOUND_TEXT = 10_000


#: What no store keeps in a text: a NUL (PostgreSQL keeps none; SQLite would, so both refuse it
#: alike) or a surrogate (only a lone one can be in a decoded ``str``: no UTF-8 encoding). The one
#: rule for both uses: what smsgate sends is refused (``core.policy.check_stored_text``), what a
#: vendor sends in is repaired (:class:`InboundMessage`).
UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def storable(text: str) -> str:
    """``text`` with each lone surrogate and NUL replaced by U+FFFD (a surrogate pair left as
    two code points is joined into its character): a text any store keeps."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").replace("\x00", "\ufffd")


def _storable_value(value: Any) -> Any:
    """``value`` (JSON-like) with :func:`storable` applied to every string, keys included;
    ``value`` itself when it holds nothing to replace."""
    if isinstance(value, str):
        return storable(value) if UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        items = [(_storable_value(k), _storable_value(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list):
        out = [_storable_value(v) for v in value]
        return value if all(a is b for a, b in zip(out, value, strict=True)) else out
    return value


class InboundMessage(_Model):
    """A message a recipient sent back (a reply, a keyword), as a neutral event.

    ``vendor_id`` identifies the event at the vendor: the same event received twice
    is stored once (per tenant and provider instance). ``id`` and ``action`` are
    the store's: its row id, and the keyword action taken for it (``optout``,
    ``optin``, ``help``, ``none``; ``None`` until handled). A text longer than
    :data:`MAX_INBOUND_TEXT` characters is kept cut to that length, with
    ``truncated`` set (``raw`` keeps what the vendor sent). A lone surrogate (a text a
    vendor cut mid-emoji, in UTF-16 units) or a NUL character in ``text`` or ``raw``, which
    no store keeps, is kept as U+FFFD (the replacement character), so that the message
    and its keyword (a ``STOP``) are never refused for it.
    """

    tenant: str = ""
    provider: str = ""
    vendor_id: str = Field(min_length=1, max_length=200)
    from_number: str = Field(max_length=64)
    #: The number or sender ID the message was sent to.
    to: str | None = Field(default=None, max_length=64)
    text: str = Field(default="", max_length=MAX_INBOUND_TEXT)
    #: ``text`` was longer than :data:`MAX_INBOUND_TEXT` characters and is cut to it
    truncated: bool = False
    received_at: datetime = Field(default_factory=utcnow)
    raw: dict[str, Any] = Field(default_factory=dict)
    id: int | None = None
    action: str | None = None
    #: Why this message is refused on its own (a field other than its text out of its
    #: bounds: ``vendor_id`` empty (then ``"(empty)"`` here) or over 200 characters,
    #: ``from_number`` / ``to`` over 64, an
    #: unrepresentable ``received_at``): the rest of its callback is applied, this one is
    #: logged (its number masked) and counted, never stored. ``None``: a valid message.
    rejected: str | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_alone(cls, data: Any, handler: Any) -> Any:
        return _refused_alone(data, handler, ("vendor_id", "from_number", "to", "received_at"),
                              {"vendor_id": "(empty)"})

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        """Cut a text over :data:`MAX_INBOUND_TEXT` characters to it, flagged ``truncated``,
        and replace what no store keeps (a lone surrogate, NUL) in ``text`` and ``raw`` with
        U+FFFD: the one rule for every provider's parser and every store."""
        if isinstance(data, dict):
            text = data.get("text")
            raw = data.get("raw")
            if isinstance(text, str) and UNSTORABLE.search(text):
                data = {**data, "text": storable(text)}
            if isinstance(raw, dict):
                kept = _storable_value(raw)
                if kept is not raw:
                    data = {**data, "raw": kept}
            text = data.get("text")
            if isinstance(text, str) and len(text) > MAX_INBOUND_TEXT:
                return {**data, "text": text[:MAX_INBOUND_TEXT], "truncated": True}
        return data

    @field_validator("received_at")
    @classmethod
    def _utc_representable(cls, value: datetime) -> datetime:
        """Refuse a time that has no UTC equivalent (e.g. year 1 at +05:00); a time later than
        now is now (``purge`` deletes replies by ``received_at``: one dated in year 9999 would be
        kept for ever)."""
        return DeliveryReport._utc_representable(value)


class WebhookEvents(_Model):
    """What one webhook request carried: delivery reports and/or inbound messages."""

    reports: list[DeliveryReport] = Field(default_factory=list)
    inbound: list[InboundMessage] = Field(default_factory=list)


class WebhookOutcome(_Model):
    """What applying one webhook request did (see :meth:`smsgate.Gateway.receive`)."""

    reports: list[DeliveryReport] = Field(default_factory=list)
    #: reports that matched a logged message
    matched: int = 0
    #: reports kept as orphans (no logged message yet; applied once it is logged)
    orphaned: int = 0
    #: the inbound messages, as stored (with ``id`` and ``action``)
    inbound: list[InboundMessage] = Field(default_factory=list)
    #: inbound messages already stored by an earlier delivery of the same event
    duplicates: int = 0
    #: items refused on their own (a field out of its bounds, e.g. a vendor id over 200
    #: characters): logged at INFO and counted, never applied; the rest of the callback is
    rejected: int = 0


class SyncSummary(_Model):
    """What one tick of the status poller did (see :meth:`smsgate.Tenant.sync_statuses`)."""

    #: messages a crashed process left ``queued``, marked ``unknown`` first (resolved by this
    #: tick where a provider can say; see :meth:`smsgate.Tenant.recover_queued`)
    recovered: int = 0
    #: messages asked about at a provider (status or reference lookups)
    looked_up: int = 0
    #: looked-up messages whose status moved (found ``unknown`` messages included)
    changed: int = 0
    #: looked-up messages the provider still reports as the log already says
    unchanged: int = 0
    #: ``unknown`` messages a provider has: their status is now the provider's
    found: int = 0
    #: ``unknown`` messages every candidate provider says it never received: now ``failed``
    #: (raw status ``not_received``; the poller never sends them again)
    not_received: int = 0
    #: candidates left alone: looked up recently (their next lookup is not due yet)
    not_due: int = 0
    #: candidates no configured provider can look up: in flight without a provider id, or
    #: ``unknown`` where no provider has a reference lookup (messages in flight at an instance
    #: without a status lookup are not read, so not counted)
    unsupported: int = 0
    #: lookups that failed (a provider error); tried again at their next due time
    errors: int = 0
    #: provider instances skipped: their circuit breaker is open, or they are no longer
    #: configured for the tenant while messages of theirs are in flight (see ``unconfigured``)
    skipped_instances: list[str] = Field(default_factory=list)
    #: messages in flight (or ``unknown``) at provider instances no longer configured, per
    #: instance: no lookup can reach them; they stay as they are until the instance is back
    unconfigured: dict[str, int] = Field(default_factory=dict)
    #: the tick stopped at its ``limit``: due messages may be left for the next tick
    more: bool = False
    #: the tenant could not be polled (:meth:`smsgate.Gateway.sync_statuses` went on with the
    #: others): the error's type and message, never a secret (the counts above are then 0;
    #: statuses saved before it failed stay saved). ``None``: polled.
    error: str | None = None


class ProviderCheck(_Model):
    """What a provider's harmless authenticated call found (:meth:`smsgate.provider.Provider.check`).

    An operation returning it reached the vendor and had its credentials accepted (an
    unreachable vendor or refused credentials are raised as
    :class:`~smsgate.errors.TransportError` / :class:`~smsgate.errors.AuthFailed`).
    """

    #: the call(s) made, e.g. ``"GET /sms/template"``
    endpoint: str
    #: the sender ID checked (``None``: none configured, or the vendor takes none)
    sender: str | None = None
    #: ``True``: the vendor lists the sender as registered; ``False``: it does not; ``None``: it cannot tell
    sender_valid: bool | None = None
    #: why the sender is (not) valid, or why the vendor cannot tell
    sender_detail: str | None = None

    @classmethod
    def from_listing(cls, endpoint: str, sender: str | None, listed: list[str]) -> ProviderCheck:
        """The check of a vendor that listed its registered sender IDs ``listed`` (case-insensitive match)."""
        if not sender:
            return cls(endpoint=endpoint, sender_detail="no sender configured to check")
        shown = ", ".join(listed[:10]) + (" ..." if len(listed) > 10 else "") if listed else "none"
        valid = sender.casefold() in {item.casefold() for item in listed}
        return cls(endpoint=endpoint, sender=sender, sender_valid=valid,
                   sender_detail=("registered" if valid else f"not among the registered sender IDs ({shown})"))


#: What an outbound sender ID may be: the one rule every sender is checked against (the
#: tenant's and each provider instance's ``sender``, ``inbound.reply_sender``, ``send(sender=)``,
#: ``send_many``'s, a campaign's). Alphanumeric sender IDs are the GSM limit of 11 characters
#: (the Campaigns REST API documents ``sender`` <= 11), numbers the E.164 limit of 15 digits.
SENDER_RULE = ("a sender ID is 1-11 letters, digits, spaces and - . _ & (with a letter, no space at either end), "
               "or a number of 1-15 digits with an optional leading +")
_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 ._&-]{1,11}")
_NUMBER_SENDER = re.compile(r"\+?[0-9]{1,15}")


def sender_problem(sender: str) -> str | None:
    """What is wrong with ``sender`` as an outbound sender ID (``None``: nothing), per :data:`SENDER_RULE`."""
    if _NUMBER_SENDER.fullmatch(sender):
        return None
    if _ALPHANUMERIC_SENDER.fullmatch(sender) and sender.strip() == sender \
            and any(ch.isalpha() for ch in sender):
        return None
    shown = shown_value(sender, 40)  # a key given as the sender by mistake is not repeated
    digits = sender.removeprefix("+")
    if not sender.strip():
        what = "is empty" if not sender else "is blank"
    elif digits.isascii() and digits.isdigit():
        what = f"is a number of {len(digits)} digits"
    elif bad := [ch for ch in sender if not _ALPHANUMERIC_SENDER.fullmatch(ch)]:
        what = f"contains {bad[0]!r}"
    elif len(sender) > 11:
        what = f"is {len(sender)} characters long"
    elif sender.strip() != sender:
        what = "starts or ends with a space"
    else:
        what = "has no letter"
    return f"{shown} {what}: {SENDER_RULE}"


#: The scope of an opt-out from every sender of a tenant (the default).
EVERY_SENDER = "*"
#: The raw status (and error code) of a message refused because its number opted out.
OPTED_OUT = "opted_out"
#: The raw status (and error code) of a message logged ``failed`` that never left: refused by
#: ``max_limit_wait``, stopped while it waited for a rate limit, or the gateway closing.
NOT_SENT = "not_sent"
#: Longest opt-out scope (a sender ID, short code or number).
_MAX_SCOPE = 64
#: a bracket may open it, before or after the ``+``: ``(0802) 000 0000``, ``(+234) 802 000 0000``
_NUMERIC_SENDER = re.compile(r"\(?\+?\(?[0-9][0-9 ().-]*")


def sender_text(sender: str) -> str:
    """``sender`` as opt-out scopes read it: stripped, in NFKC form (a sender written in
    fullwidth forms, U+FF11 for 1, U+FF21 for A, as a phone in a CJK input mode types a reply's
    short code, is the same sender as its ASCII spelling)."""
    return (sender if sender.isascii() else unicodedata.normalize("NFKC", sender)).strip()


def is_numeric_sender(sender: str) -> bool:
    """Whether ``sender`` is a number or a short code (digits, an optional ``+``, spaces, dots,
    dashes, brackets, one of which may come first: ``(0802) 000 0000``; read as
    :func:`sender_text`), as :func:`optout_scope` tells them from an alphanumeric sender ID."""
    return _NUMERIC_SENDER.fullmatch(sender_text(sender)) is not None


def optout_scope(sender: str | None) -> str:
    """The opt-out scope of messages from ``sender``: the key opt-outs are stored under.

    ``None``, ``""`` and ``"*"`` are :data:`EVERY_SENDER`. A numeric sender (a
    short code or a number, e.g. ``"+44 7700 900123"``) keeps its digits only, so
    the number a reply was sent to matches the number the message came from with
    or without ``+`` and spacing; an alphanumeric sender ID is case-folded
    (``"Acme"`` and ``"ACME"`` are one brand). Compared in NFKC form: ``12345`` in
    fullwidth digits (U+FF11...) is the short code ``12345``. :class:`ValueError` for control
    characters or more than 64 characters.
    """
    if sender is None:
        return EVERY_SENDER
    text = sender_text(sender)
    if not text or text == EVERY_SENDER:
        return EVERY_SENDER
    if len(text) > _MAX_SCOPE or not text.isprintable():
        raise ValueError(f"opt-out scope {sender[:80]!r}: a sender ID of at most {_MAX_SCOPE} printable characters")
    if is_numeric_sender(text):
        return "".join(ch for ch in text if ch.isdigit())
    return text.casefold()


def optout_applies(scopes: Collection[str], sender: str | None) -> bool:
    """Whether a number opted out of ``scopes`` must not get a message from ``sender``.

    An opt-out from every sender (:data:`EVERY_SENDER`) applies to all messages;
    one from a sender ID only to messages from that sender (compared as
    :func:`optout_scope` keys). The one rule every opt-out check applies.
    """
    if not scopes:
        return False
    if EVERY_SENDER in scopes:
        return True
    if sender is None:
        return False
    try:
        return optout_scope(sender) in scopes
    except ValueError:  # no opt-out can name such a sender
        return False


class OptOut(_Model):
    """A number that must not be messaged by a tenant, from any sender or from one.

    ``scope`` is :data:`EVERY_SENDER` (``"*"``, the default; ``None`` is taken
    as it) or the sender ID / short code / brand the opt-out is limited to,
    stored as :func:`optout_scope` gives it.
    """

    phone: str
    reason: str | None = None
    source: str = "api"
    created_at: datetime = Field(default_factory=utcnow)
    scope: str = EVERY_SENDER

    @field_validator("scope", mode="before")
    @classmethod
    def _scope_key(cls, value: Any) -> str:
        """The stored form of the scope (see :func:`optout_scope`)."""
        if value is not None and not isinstance(value, str):
            raise ValueError("an opt-out scope is a sender ID or '*'")
        return optout_scope(value)


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
    #: the provider's own figures (Squad's statistics, ``include_provider=True``): 0 in the local log's
    invalid: int = 0
    absent: int = 0
    #: of ``rejected``: refused because the number had opted out (the local log's raw status
    #: :data:`OPTED_OUT`; a provider's statistics: its own count)
    opted_out: int = 0
    #: of ``failed``: never sent (raw status :data:`NOT_SENT`: refused by ``max_limit_wait``,
    #: stopped while it waited for a rate limit, the gateway closing); not in ``delivery_rate``
    not_sent: int = 0


class Stats(StatsBucket):
    """Aggregate statistics, with optional per-period detail.

    Costs are as the providers reported them: ``costs`` totals them per currency (``""`` for
    a cost given without one). ``cost`` and ``currency`` are the total and its currency when
    every cost is in one currency; with several (NGN from one provider, credits from
    another) ``cost`` and ``currency`` are ``None``, since their sum would mean nothing.
    """

    provider: str | None = None
    avg_queue_seconds: float | None = None
    avg_delivery_seconds: float | None = None
    cost: Decimal | None = None
    currency: str | None = None
    costs: dict[str, Decimal] = Field(default_factory=dict)
    detail: list[StatsBucket] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def delivery_rate(self) -> float | None:
        """Delivered / (delivered + undelivered + failed + expired), or None with no outcome yet.

        The denominator is every message that reached a final outcome other than ``rejected``:
        a rejected message was refused before it was sent (opted out, no route, bad input, a
        recipient the vendor suppresses), so it says nothing about delivery; it is counted in
        ``rejected``. So is a ``failed`` one that never left (``not_sent``: refused by
        ``max_limit_wait``, stopped while it waited for a limit), which is left out of
        ``failed`` here. Messages still queued, submitted, sent or ``unknown`` are left out too.
        """
        done = self.delivered + self.undelivered + self.failed - self.not_sent + self.expired
        return self.delivered / done if done else None
