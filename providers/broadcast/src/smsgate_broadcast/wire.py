"""WAABOT's payloads: records, status maps, request bodies and pure parsers.

Nothing here does I/O or holds provider state. Each ``parse_*`` function takes one decoded
JSON value (the ``data`` of an answer, or an item of a list) and returns a record, or raises
:class:`~smsgate.errors.MalformedResponse` naming what is wrong and where (the caller,
:mod:`smsgate_broadcast.api`, adds its instance name); the body builders return the JSON the
documented endpoints take.

Field sources: seed 004 / FACTS.md section 4 (vendor docs): the broadcast record ``{_id,
client_id, send_type, to, message: {text, attachments, location, contactId}, status, sent,
pending, failed, createdAt, updatedAt}``; the attachment record ``{_id, type, mimetype, name,
path, client_id}``; contact ``{_id, name, number, client_id, group_id, channel,
transaction:{survey_id, survey_sort_id}}``; group ``{_id, title, is_default, survey_id,
survey_sort_id}``. The message-log record is not documented ([INF]): only its ``_id`` is
required, every other field is kept as sent.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgate import phone as phonelib
from smsgate.errors import MalformedResponse, ValidationError
from smsgate.models import DeliveryReport, Location, OutboundMessage, SendResult, Status, utcnow
from smsgate.provider import parse_model

__all__ = [
    "BROADCAST_STATUS",
    "NOT_LISTED",
    "AttachmentRecord",
    "BroadcastRecord",
    "SessionTokens",
    "UploadedAttachment",
    "WaabotContact",
    "WaabotContactGroup",
    "WaabotMessageLog",
    "WaabotRecord",
    "broadcast_changes",
    "contact_changes",
    "contact_id_of",
    "content_key",
    "decode_data_uri",
    "entry_number",
    "error_text",
    "message_body",
    "names_bot_credentials",
    "neutral_status",
    "newest_contact",
    "parse_attachment",
    "parse_broadcast",
    "parse_contact",
    "parse_contact_group",
    "parse_message_log",
    "parse_session_tokens",
    "speaks_of_auth",
    "split_message_id",
    "to_field",
]

# ------------------------------------------------------------------ statuses

#: The raw status of a number a broadcast that names its recipients does not name
#: (:meth:`BroadcastRecord.outcome`): ``unknown``, never the broadcast's own status.
NOT_LISTED = "not_listed"

#: Broadcast-level ``status`` strings -> neutral status of a number that is in none of
#: the ``sent``/``pending``/``failed`` lists. Only ``"sending"`` is documented; the
#: rest are [INF] spellings tolerated so an unexpected value never breaks a lookup.
BROADCAST_STATUS: dict[str, Status] = {
    "sending": Status.SUBMITTED,
    "pending": Status.SUBMITTED,
    "queued": Status.SUBMITTED,
    "processing": Status.SUBMITTED,
    "scheduled": Status.SUBMITTED,
    "created": Status.SUBMITTED,
    "started": Status.SUBMITTED,
    "running": Status.SUBMITTED,
    "in_progress": Status.SUBMITTED,
    "sent": Status.SENT,
    "completed": Status.SENT,
    "complete": Status.SENT,
    "done": Status.SENT,
    "finished": Status.SENT,
    "success": Status.SENT,
    "successful": Status.SENT,
    "failed": Status.FAILED,
    "error": Status.FAILED,
    "cancelled": Status.FAILED,
    "canceled": Status.FAILED,
    "stopped": Status.FAILED,
}

#: Per-number lists of a broadcast and what membership means, strongest first.
_LISTS: tuple[tuple[str, Status], ...] = (
    ("failed", Status.FAILED),
    ("sent", Status.SENT),
    ("pending", Status.SUBMITTED),
)

_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
_NUMBER_NOISE = re.compile(r"[\s\-().]")
_AUTH_WORDS = re.compile(r"(?i)unauthori[sz]ed|forbidden|invalid (?:session|access|token|credential)")
#: An auth error naming the bot pair (its field names; the account JWT is ``accessToken``).
_BOT_CREDENTIALS = re.compile(r"(?i)\b(?:session_id|access_token)\b")


def neutral_status(broadcast_status: object, list_name: str | None = None) -> Status:
    """The neutral status of one number of a broadcast.

    ``list_name`` is the per-number list the number was found in (``"sent"``,
    ``"pending"``, ``"failed"``) or ``None``; then the broadcast-level status
    decides (:data:`BROADCAST_STATUS`, anything unknown -> ``unknown``). Total:
    never raises.
    """
    for name, status in _LISTS:
        if list_name == name:
            return status
    if isinstance(broadcast_status, str):
        return BROADCAST_STATUS.get(broadcast_status.strip().lower(), Status.UNKNOWN)
    return Status.UNKNOWN


def entry_number(value: object) -> str | None:
    """International digits of one entry of a ``sent``/``pending``/``failed`` list.

    The documents do not show the lists' contents ([INF]): accepted are plain
    digit strings or integers, ``+``-prefixed numbers, WhatsApp JIDs
    (``2348012345678@s.whatsapp.net``, ``2348012345678:8@s.whatsapp.net``) and
    objects with a ``number``/``phone``/``to``/``chatId`` field. Anything else
    (e.g. a contact ``_id``) gives ``None``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        for key in ("number", "phone", "to", "chatId", "chat_id", "jid"):
            if key in value:
                found = entry_number(value[key])
                if found is not None:
                    return found
        return None
    else:
        return None
    text = text.strip().split("@", 1)[0].split(":", 1)[0]
    text = _NUMBER_NOISE.sub("", text).lstrip("+")
    return text if _DIGITS.fullmatch(text) else None


# ------------------------------------------------------------------ errors


def error_text(body: Mapping[str, Any]) -> str:
    """The vendor's error text in a JSON object: ``message``, else ``error`` (as the SDK reads it)."""
    for key in ("message", "error"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return "no message"


def speaks_of_auth(message: str) -> bool:
    """Whether an error text inside a ``status: false`` answer is about credentials."""
    return bool(_AUTH_WORDS.search(message))


def names_bot_credentials(message: str) -> bool:
    """Whether an auth error names the bot pair (``session_id``/``access_token``), not the account.

    The vendor documents no error bodies ([INF]); the emulator answers
    ``403 {"status": false, "message": "Invalid session_id or access_token"}``.
    Only the field names count: an expired account token is the ``accessToken``.
    """
    return bool(_BOT_CREDENTIALS.search(message))


# ------------------------------------------------------------------ broadcasts and attachments


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _str_or_none(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _float(value: object, where: str, name: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MalformedResponse(f"{where}: location.{name} is not a number: {value!r}") from None


@dataclass(frozen=True)
class BroadcastRecord:
    """A broadcast as WAABOT reports it (``data`` of ``/broadcast`` answers)."""

    id: str
    status: str | None
    send_type: str | None = None
    to: tuple[str, ...] = ()
    text: str | None = None
    attachments: tuple[str, ...] = ()
    location: Location | None = None
    contact_id: str | None = None
    sent: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    client_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def numbers(self) -> list[str]:
        """Recipients in ``to`` that read as phone numbers (international digits)."""
        out = []
        for item in self.to:
            number = entry_number(item)
            if number is not None:
                out.append(number)
        return out

    def outcome(self, number: str) -> tuple[Status, str]:
        """Neutral status and raw status of ``number`` (international digits).

        A number in none of the lists takes the broadcast's status, unless the broadcast names
        the numbers it goes to (``to``, sent individually) and not this one: then ``unknown``,
        raw status :data:`NOT_LISTED` (the vendor dropped it, or its answer is wrong; the
        broadcast's ``sent`` or ``completed`` says nothing of a number it does not have)."""
        for name, _status in _LISTS:
            entries: tuple[str, ...] = getattr(self, name)
            if number in entries:
                return neutral_status(self.status, name), name
        if self.send_type != "group":
            named = self.numbers()
            if named and number not in named:
                return Status.UNKNOWN, NOT_LISTED
        return neutral_status(self.status), self.status or ""

    def report(self, number: str, provider: str = "") -> DeliveryReport:
        """A delivery report for one number of this broadcast."""
        status, raw = self.outcome(number)
        return DeliveryReport(
            provider=provider,
            provider_message_id=f"{self.id}:{number}",
            batch_id=self.id,
            to=f"+{number}",
            status=status,
            raw_status=raw,
            occurred_at=self.updated_at or utcnow(),
            raw={"broadcast_id": self.id, "broadcast_status": self.status, "list": raw},
        )

    def reports(self, provider: str = "") -> list[DeliveryReport]:
        """One report per number of the broadcast (``to`` plus any listed number)."""
        seen: dict[str, None] = dict.fromkeys(self.numbers())
        for name, _status in _LISTS:
            seen.update(dict.fromkeys(getattr(self, name)))
        return [self.report(n, provider) for n in seen]

    def send_result(self, msg: OutboundMessage, provider: str = "") -> SendResult:
        """The send result of ``msg`` (one number of this freshly created broadcast)."""
        number = phonelib.to_international_digits(msg.to)
        status, raw = self.outcome(number)
        if raw == NOT_LISTED:  # the broadcast created does not name it: it may or may not go out
            return SendResult(
                message_id=msg.message_id, to=msg.to, status=Status.UNKNOWN, raw_status=raw, provider=provider,
                provider_message_id=f"{self.id}:{number}", batch_id=self.id, error_code="not_reported",
                error="WAABOT's answer did not list this number among the broadcast's recipients",
            )
        if status == Status.UNKNOWN:
            # the broadcast was accepted ("status": true); its state word is just unfamiliar
            status = Status.SUBMITTED
        return SendResult(
            message_id=msg.message_id,
            to=msg.to,
            status=status,
            raw_status=raw,
            provider=provider,
            provider_message_id=f"{self.id}:{number}",
            batch_id=self.id,
            segments=1,
            error="WAABOT listed the number as failed" if status == Status.FAILED else None,
        )


@dataclass(frozen=True)
class AttachmentRecord:
    """An uploaded attachment (``data`` of ``/attachment`` answers)."""

    id: str
    type: str | None = None
    mimetype: str | None = None
    name: str | None = None
    path: str | None = None
    client_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class UploadedAttachment:
    """The answer to an upload: the documented data URI, and the stored record.

    WAABOT answers an upload with a base64 ``data:`` URI only; the record (and so
    the ``_id`` a broadcast needs) is found by listing attachments ([INF]).
    ``attachment`` is ``None`` when the upload was made with ``resolve_id=False``.
    """

    data_uri: str
    attachment: AttachmentRecord | None = None

    @property
    def id(self) -> str | None:
        """The attachment ``_id`` (if resolved)."""
        return self.attachment.id if self.attachment else None


@dataclass(frozen=True)
class SessionTokens:
    """Account tokens from ``POST /sessions``."""

    access_token: str
    refresh_token: str | None = None

    def __repr__(self) -> str:
        return "SessionTokens(access_token='***', refresh_token='***')"


def _tuple_of_numbers(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for item in value:
        number = entry_number(item)
        if number is not None:
            out.append(number)
    return tuple(out)


def _record_id(data: object, where: str, article: str, noun: str) -> tuple[Mapping[str, Any], str]:
    """``(data, its _id)`` of a record object (``_id``, or ``id``, a non-empty string or number)."""
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"{where}: expected {article} {noun} object, got {type(data).__name__}")
    rid = data.get("_id", data.get("id"))
    if not isinstance(rid, (str, int)) or isinstance(rid, bool) or not str(rid):
        raise MalformedResponse(f"{where}: {noun} has no _id")
    return data, str(rid)


def parse_broadcast(data: object, where: str = "broadcast") -> BroadcastRecord:
    """Read one broadcast object; :class:`MalformedResponse` says what is wrong where."""
    data, bid = _record_id(data, where, "a", "broadcast")
    to_raw = data.get("to")
    if isinstance(to_raw, str):
        to = tuple(p.strip() for p in to_raw.split(",") if p.strip())
    elif isinstance(to_raw, list):
        to = tuple(str(p).strip() for p in to_raw if str(p).strip())
    else:
        to = ()
    message = data.get("message")
    text = None
    attachments: tuple[str, ...] = ()
    location = None
    contact_id = None
    if isinstance(message, Mapping):
        text = _str_or_none(message.get("text"))
        raw_att = message.get("attachments")
        if isinstance(raw_att, list):
            ids = []
            for item in raw_att:
                if isinstance(item, Mapping):
                    item = item.get("_id", item.get("id"))
                if item is not None:
                    ids.append(str(item))
            attachments = tuple(ids)
        loc = message.get("location")
        if isinstance(loc, Mapping) and loc.get("lat") not in (None, "") and loc.get("lng") not in (None, ""):
            location = Location(
                name=str(loc.get("name") or ""),
                lat=_float(loc.get("lat"), where, "lat"),
                lng=_float(loc.get("lng"), where, "lng"),
            )
        contact_id = _str_or_none(message.get("contactId"))
    elif isinstance(message, str):
        text = message
    status = data.get("status")
    return BroadcastRecord(
        id=bid,
        status=status if isinstance(status, str) else (None if status is None else str(status)),
        send_type=_str_or_none(data.get("send_type")),
        to=to,
        text=text,
        attachments=attachments,
        location=location,
        contact_id=contact_id,
        sent=_tuple_of_numbers(data.get("sent")),
        pending=_tuple_of_numbers(data.get("pending")),
        failed=_tuple_of_numbers(data.get("failed")),
        client_id=_str_or_none(data.get("client_id")),
        created_at=_timestamp(data.get("createdAt")),
        updated_at=_timestamp(data.get("updatedAt")),
        raw=dict(data),
    )


def parse_attachment(data: object, where: str = "attachment") -> AttachmentRecord:
    """Read one attachment object; :class:`MalformedResponse` says what is wrong where."""
    data, aid = _record_id(data, where, "an", "attachment")
    return AttachmentRecord(
        id=aid,
        type=_str_or_none(data.get("type")),
        mimetype=_str_or_none(data.get("mimetype")),
        name=_str_or_none(data.get("name")),
        path=_str_or_none(data.get("path")),
        client_id=_str_or_none(data.get("client_id")),
        created_at=_timestamp(data.get("createdAt")),
        updated_at=_timestamp(data.get("updatedAt")),
        raw=dict(data),
    )


def parse_session_tokens(body: object, where: str = "POST /sessions") -> SessionTokens:
    """The tokens of a login answer: ``{accessToken, refreshToken}`` at top level or in ``data``."""
    tokens = body.get("data") if isinstance(body, Mapping) and isinstance(body.get("data"), Mapping) else body
    access = tokens.get("accessToken") if isinstance(tokens, Mapping) else None
    if not isinstance(access, str) or not access:
        raise MalformedResponse(f"{where}: the answer carries no accessToken")
    refresh = tokens.get("refreshToken") if isinstance(tokens, Mapping) else None
    return SessionTokens(access, refresh if isinstance(refresh, str) and refresh else None)


def decode_data_uri(uri: str) -> tuple[bytes, str | None] | None:
    """``(content, content_type)`` of a ``data:`` URI, or ``None`` if it is not one."""
    if not uri.startswith("data:") or "," not in uri:
        return None
    head, payload = uri[5:].split(",", 1)
    parts = head.split(";")
    ctype = parts[0] or None
    try:
        if "base64" in parts[1:]:
            return base64.b64decode(payload, validate=False), ctype
        return urllib.parse.unquote_to_bytes(payload), ctype
    except (binascii.Error, ValueError):
        return None


# ------------------------------------------------------------------ request bodies


def message_body(
    text: str | None, attachments: Sequence[str], location: Location | None, contact_id: str | None,
) -> dict[str, Any]:
    """The ``message`` object of a broadcast (``lat``/``lng`` as strings, as the docs' sample)."""
    message: dict[str, Any] = {"text": text or "", "attachments": list(attachments)}
    if location is not None:
        message["location"] = {"name": location.name, "lat": repr(float(location.lat)),
                               "lng": repr(float(location.lng))}
    if contact_id:
        message["contactId"] = contact_id
    return message


def to_field(to: Sequence[str], send_type: str) -> str:
    """The comma-separated ``to`` of a broadcast: international digits, or contact-group ids as given."""
    if isinstance(to, str):
        to = [to]
    if not to:
        raise ValidationError("at least one recipient is required", field="to")
    if send_type == "individual":
        return ",".join(phonelib.to_international_digits(n) for n in to)
    return ",".join(to)


def broadcast_changes(
    *,
    to: Sequence[str] | None,
    text: str | None,
    attachments: Sequence[str] | None,
    location: Location | None,
    contact_id: str | None,
    send_type: str | None,
) -> dict[str, Any]:
    """The ``PUT /broadcast/{id}`` body: only the fields given (a ``message`` when any of its fields is)."""
    body: dict[str, Any] = {}
    if send_type is not None:
        body["send_type"] = send_type
    if to is not None:
        body["to"] = to_field(to, send_type or "individual")
    if text is not None or attachments is not None or location is not None or contact_id is not None:
        message: dict[str, Any] = {}
        if text is not None:
            message["text"] = text
        if attachments is not None:
            message["attachments"] = list(attachments)
        if location is not None or contact_id is not None:
            message.update({k: v for k, v in message_body(None, (), location, contact_id).items()
                            if k in ("location", "contactId")})
        body["message"] = message
    if not body:
        raise ValidationError("nothing to update", field="broadcast")
    return body


def contact_changes(
    *, name: str | None = None, number: str | None = None, group_id: str | None = None
) -> dict[str, Any]:
    """A contact body with only the fields given (``number`` as international digits)."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if number is not None:
        body["number"] = phonelib.to_international_digits(number)
    if group_id is not None:
        body["group_id"] = group_id
    return body


# ------------------------------------------------------------------ neutral messages


def contact_id_of(msg: OutboundMessage) -> str | None:
    """The contact card a message carries: ``provider_options["contact_id"]`` (or ``"contactId"``)."""
    value = msg.provider_options.get("contact_id", msg.provider_options.get("contactId"))
    return str(value) if value else None


def content_key(msg: OutboundMessage) -> tuple[Any, ...]:
    """What one broadcast carries: text, attachments, location and contact card."""
    atts = tuple((a.provider_id, a.url, a.filename, a.content_type) for a in msg.attachments)
    loc = (msg.location.name, msg.location.lat, msg.location.lng) if msg.location else None
    return (msg.text, atts, loc, contact_id_of(msg))


def split_message_id(result: SendResult) -> tuple[str, str]:
    """``(broadcast _id, number digits)`` of a send result."""
    pmid = result.provider_message_id or ""
    if ":" in pmid:
        bid, number = pmid.rsplit(":", 1)
        if bid and number:
            return bid, number
    if result.batch_id:
        return result.batch_id, phonelib.to_international_digits(result.to)
    raise ValidationError(
        "cannot look up a broadcast status without '<broadcast _id>:<number>' or a batch_id",
        field="provider_message_id", value=pmid or None,
    )


# ------------------------------------------------------------------ contacts, groups, message log


class WaabotRecord(BaseModel):
    """Base of WAABOT's Mongo-style documents: ``_id`` (required), ``client_id``, timestamps.

    Extra fields (``__v``, anything new) are kept; :meth:`raw` gives the object back.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    id: str = Field(alias="_id", min_length=1)
    client_id: str | None = None
    created_at: datetime | None = Field(default=None, alias="createdAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")

    @field_validator("created_at", "updated_at", mode="after")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # the docs' timestamps end in Z; a naive one is read as UTC
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value

    def raw(self) -> dict[str, Any]:
        """The record with WAABOT's field names (JSON-friendly)."""
        return self.model_dump(mode="json", by_alias=True)


class WaabotContact(WaabotRecord):
    """A contact of a bot: a WhatsApp ``number`` (international digits), optionally in a group."""

    number: str = Field(min_length=1)
    name: str | None = None
    group_id: str | None = None
    channel: str | None = None
    transaction: dict[str, Any] | None = None


class WaabotContactGroup(WaabotRecord):
    """A contact group: what a ``send_type="group"`` broadcast names in ``to``."""

    title: str
    is_default: bool | None = None
    survey_id: str | None = None
    survey_sort_id: str | None = None


class WaabotMessageLog(WaabotRecord):
    """One entry of ``GET /message-log`` (fields undocumented [INF]; all kept as extras)."""

    def get(self, field: str) -> Any:
        """The value of a field as WAABOT sent it, or ``None``."""
        return self.raw().get(field)


def parse_contact(data: object, where: str = "contact") -> WaabotContact:
    """One contact object."""
    return parse_model(WaabotContact, data, where)


def newest_contact(contacts: Sequence[WaabotContact], *, number: object, group_id: object) -> WaabotContact | None:
    """The newest of ``contacts`` with ``number`` in group ``group_id`` (``None``: in no group),
    or ``None``: the contact a ``POST /contact`` answered with 204 made. Later in the list
    wins a tie of ``createdAt``."""
    best: WaabotContact | None = None
    for contact in contacts:
        if contact.number != number or contact.group_id != group_id:
            continue
        if best is None or best.created_at is None or (
                contact.created_at is not None and contact.created_at >= best.created_at):
            best = contact
    return best


def parse_contact_group(data: object, where: str = "contact group") -> WaabotContactGroup:
    """One contact-group object."""
    return parse_model(WaabotContactGroup, data, where)


def parse_message_log(data: object, where: str = "message log") -> WaabotMessageLog:
    """One message-log entry."""
    return parse_model(WaabotMessageLog, data, where)
