"""Dynamic Messaging's payloads: pure functions shared by the adapter and the emulator.

No I/O, no Starlette. In reading order:

* the vendor's status codes and their neutral meaning (:data:`SMS_STATUS_MAP`,
  :data:`CAMPAIGN_STATUS_MAP`);
* tolerant readers of the vendor's values (:func:`to_int`, :func:`ci_get`,
  :func:`parse_datetime` ...): its JSON mixes key cases and number types;
* :class:`SmsMessage`, one row of ``GET /api/SMSMessages``;
* the errors read from its RFC 7807 ProblemDetails bodies (:class:`CampaignRejected`
  with one :class:`ContactError` per refused contact) and from callbacks
  (:class:`WebhookRejected`, :class:`WebhookTokenRejected`);
* :class:`Codec`: the conversions between neutral models and vendor JSON that depend on
  an instance's options (number format, merge tokens, which callback field is the id).
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

from smsgate import phone as phonelib
from smsgate.errors import AuthFailed, InvalidPhoneNumber, RequestRejected, TemplateError, ValidationError
from smsgate.models import Campaign, CampaignStatus, Contact, DeliveryReport, Status, utcnow
from smsgate.provider import read_int
from smsgate_campaigns_api.options import CampaignsApiOptions

__all__ = [
    "CAMPAIGN_STATUS_MAP",
    "SMS_STATUS_MAP",
    "CampaignRejected",
    "Codec",
    "ContactError",
    "DMCampaignStatus",
    "DMSmsStatus",
    "SmsMessage",
    "WebhookRejected",
    "WebhookTokenRejected",
    "ci_get",
    "contact_errors",
    "format_datetime",
    "is_guid",
    "neutral_campaign_status",
    "neutral_sms_status",
    "parse_datetime",
    "problem_text",
    "rejection_text",
    "to_aware",
    "to_decimal",
    "to_int",
]

# ================================================================== status codes


class DMSmsStatus(enum.IntEnum):
    """SMS / delivery-report status codes (``status``, webhook ``statusCode``) [DOC]."""

    SENT = 0
    DELIVERED = 1
    ACCEPTED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    UNKNOWN = 6
    REJECTED = 7
    FAILED = 8  # "Other" on the current page; "Failed" on an older one
    FAILED_ROUTE_INVALID = 9  # "Other" on the current page; "Failed Route Invalid" on an older one
    OTHER = 10
    REJECTED_INVALID_RECIPIENT = 34
    FAILED_INSUFFICIENT_CREDIT = 1000


class DMCampaignStatus(enum.IntEnum):
    """Campaign status codes (published on the Voice "Value Types" page) [DOC, INF for SMS]."""

    PENDING = 0
    SENDING = 1
    SUBMITTED = 2
    PAUSED = 3
    CANCELLED = 4
    COMPLETED = 5


#: Vendor SMS status code -> neutral status. Unlisted codes map to ``unknown``.
SMS_STATUS_MAP: Final[Mapping[int, Status]] = {
    DMSmsStatus.SENT: Status.SENT,
    DMSmsStatus.DELIVERED: Status.DELIVERED,
    DMSmsStatus.ACCEPTED: Status.SUBMITTED,
    DMSmsStatus.EXPIRED: Status.EXPIRED,
    DMSmsStatus.DELETED: Status.FAILED,
    DMSmsStatus.UNDELIVERABLE: Status.UNDELIVERED,
    DMSmsStatus.UNKNOWN: Status.UNKNOWN,
    DMSmsStatus.REJECTED: Status.REJECTED,
    DMSmsStatus.FAILED: Status.FAILED,
    DMSmsStatus.FAILED_ROUTE_INVALID: Status.FAILED,
    DMSmsStatus.OTHER: Status.UNKNOWN,
    DMSmsStatus.REJECTED_INVALID_RECIPIENT: Status.REJECTED,
    DMSmsStatus.FAILED_INSUFFICIENT_CREDIT: Status.FAILED,
}

#: Vendor campaign status code -> neutral campaign state. Unlisted codes map to ``unknown``.
CAMPAIGN_STATUS_MAP: Final[Mapping[int, CampaignStatus]] = {
    DMCampaignStatus.PENDING: CampaignStatus.SCHEDULED,
    DMCampaignStatus.SENDING: CampaignStatus.RUNNING,
    DMCampaignStatus.SUBMITTED: CampaignStatus.RUNNING,
    DMCampaignStatus.PAUSED: CampaignStatus.PAUSED,
    DMCampaignStatus.CANCELLED: CampaignStatus.CANCELLED,
    DMCampaignStatus.COMPLETED: CampaignStatus.COMPLETED,
}


def neutral_sms_status(code: Any) -> tuple[Status, str | None]:
    """Map a vendor SMS status (int or numeric string) to ``(neutral, raw)``; total."""
    number = to_int(code)
    if number is None:
        return Status.UNKNOWN, None if code is None else str(code)
    return SMS_STATUS_MAP.get(number, Status.UNKNOWN), str(number)


def neutral_campaign_status(code: Any) -> tuple[CampaignStatus, str | None]:
    """Map a vendor campaign status to ``(neutral, raw)``; total."""
    number = to_int(code)
    if number is None:
        return CampaignStatus.UNKNOWN, None if code is None else str(code)
    return CAMPAIGN_STATUS_MAP.get(number, CampaignStatus.UNKNOWN), str(number)


# ================================================================== tolerant readers


to_int = read_int  #: see :func:`smsgate.provider.read_int`


def to_decimal(value: Any) -> Decimal | None:
    """A Decimal from a number or numeric string; None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def ci_get(data: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``data[key]`` with the key matched case-insensitively (exact match first)."""
    if key in data:
        return data[key]
    lowered = key.lower()
    for k, v in data.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return default


_DT_RE: Final = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*",
    re.IGNORECASE,
)


def parse_datetime(value: Any) -> datetime | None:
    """Parse the vendor's ISO-8601 timestamps (``Z``, offsets, 0-9 fraction digits).

    A timestamp without offset is taken as UTC [INF]. Returns None for anything
    that is not a valid date-time (the docs' own sample ``2023-01-91`` included).
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str):
        return None
    match = _DT_RE.fullmatch(value)
    if not match:
        return None
    year, month, day, hour, minute, second, frac, offset = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        tz = timezone.utc
        if offset and offset.upper() != "Z":
            sign = 1 if offset[0] == "+" else -1
            digits = offset[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        return datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tz
        ).astimezone(timezone.utc)
    except ValueError:
        return None


def format_datetime(value: datetime) -> str:
    """``2023-06-27T03:04:01.374Z`` (UTC, milliseconds); a naive value is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def to_aware(value: datetime) -> datetime:
    """``value`` with a time zone (the vendor's naive times are UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


_GUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def is_guid(text: str) -> bool:
    """Whether ``text`` is a GUID (the ``newId`` of a message), hyphens optional."""
    return _GUID_RE.fullmatch(text) is not None


# ================================================================== the SMS record


class SmsMessage(BaseModel):
    """One SMS as ``GET /api/SMSMessages`` reports it, with the neutral status beside the raw one.

    ``phone`` is E.164 when the vendor's ``phoneNumber`` could be read (national
    numbers are read in the ``home_region``), else None; ``phone_number`` is the
    vendor's string.
    """

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    new_id: str | None = None
    client_id: int | None = None
    phone: str | None = None
    phone_number: str | None = None
    status: Status = Status.UNKNOWN
    raw_status: str | None = None
    price: Decimal | None = None
    sms_count: int | None = None
    country_code: str | None = None
    sender: str | None = None
    message: str | None = None
    campaign_id: str | None = None
    date_created: datetime | None = None
    date_modified: datetime | None = None
    date_received: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def provider_message_id(self) -> str | None:
        """The id ``POST /api/SMSMessages`` returns (the GUID ``newId``), else the int ``id``."""
        if self.new_id:
            return self.new_id
        return str(self.id) if self.id is not None else None


# ================================================================== errors
#
#   smsgate.errors.RequestRejected
#   └── CampaignRejected            the vendor refused a campaign (400 ProblemDetails);
#                                   .contacts lists each bad contact (ContactError),
#                                   .field_errors the other field messages
#   smsgate.errors.ValidationError
#   └── WebhookRejected             a delivery-report callback is not a Dynamic
#                                   Messaging webhook body
#   smsgate.errors.AuthFailed
#   └── WebhookTokenRejected        a delivery-report callback failed the token check


@dataclass(frozen=True)
class ContactError:
    """Why the vendor refused one contact of a campaign.

    ``index`` is the contact's position in the campaign (0-based, as sent),
    ``phone`` the number as the campaign held it (E.164 when it was one),
    ``sent_as`` the string sent to the vendor, ``field`` the vendor's field name
    (``phoneNumber``, ``contactGroupId`` ...) and ``reason`` the vendor's message(s).
    """

    index: int
    phone: str | None
    reason: str
    field: str | None = None
    sent_as: str | None = None

    def __str__(self) -> str:
        what = f"contact {self.index}"
        if self.phone:
            what += f" ({self.phone})"
        if self.field:
            what += f" {self.field}"
        return f"{what}: {self.reason}"


class CampaignRejected(RequestRejected):
    """The vendor refused a campaign; ``contacts`` says which contacts and why.

    Raised by ``create_campaign`` / ``update_campaign`` when the vendor answers
    400 with validation errors (RFC 7807 ProblemDetails ``errors``).
    """

    def __init__(
        self,
        message: str,
        *,
        contacts: list[ContactError] | None = None,
        field_errors: dict[str, list[str]] | None = None,
        **kw: Any,
    ) -> None:
        self.contacts: list[ContactError] = list(contacts or [])
        self.field_errors: dict[str, list[str]] = dict(field_errors or {})
        super().__init__(message, **kw)


class WebhookRejected(ValidationError):
    """A webhook request was refused: a body that is not a DLR."""


class WebhookTokenRejected(AuthFailed):
    """A webhook request without the configured ``webhook_token`` (or with a wrong one)."""


def problem_text(body: Any) -> str:
    """The text of an ASP.NET ProblemDetails body (``title``, ``detail``, ``errors``), or of any JSON."""
    if isinstance(body, str):
        return body[:200]
    if not isinstance(body, dict):
        return json.dumps(body)[:300]
    parts = []
    for key in ("title", "detail", "message", "error"):
        value = ci_get(body, key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
    errors = ci_get(body, "errors")
    if isinstance(errors, dict) and errors:
        listed = []
        for field, messages in list(errors.items())[:5]:
            text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
            listed.append(f"{field}: {text}")
        parts.append(" | ".join(listed) + (" ..." if len(errors) > 5 else ""))
    return " - ".join(parts) if parts else json.dumps(body)[:300]


_CONTACT_KEY_RE: Final = re.compile(r"\$?\.?contacts\[(\d+)\](?:\.([A-Za-z0-9_]+))?", re.IGNORECASE)
_MAX_LISTED_CONTACTS: Final = 10


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


def contact_errors(
    errors: Mapping[str, Any], phones: Sequence[str], sent: Sequence[Mapping[str, Any]]
) -> tuple[list[ContactError], dict[str, list[str]]]:
    """Split ProblemDetails ``errors`` into one :class:`ContactError` per refused contact and the rest.

    Keys such as ``Contacts[1].PhoneNumber`` or ``$.contacts[1].phoneNumber`` (any case) name
    a contact; ``phones`` are the campaign's numbers and ``sent`` the contacts as sent, by index.
    """
    per_contact: dict[tuple[int, str | None], list[str]] = {}
    field_errors: dict[str, list[str]] = {}
    for key, messages in errors.items():
        texts = [str(m) for m in messages] if isinstance(messages, list) else [str(messages)]
        match = _CONTACT_KEY_RE.fullmatch(str(key))
        if match:
            field = _camel(match.group(2)) if match.group(2) else None
            per_contact.setdefault((int(match.group(1)), field), []).extend(texts)
        else:
            field_errors[str(key)] = texts
    contacts = []
    for (index, field), texts in sorted(per_contact.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        phone = phones[index] if index < len(phones) else None
        sent_as = sent[index].get("phoneNumber") if index < len(sent) else None
        contacts.append(ContactError(index=index, phone=phone, reason="; ".join(texts), field=field,
                                     sent_as=sent_as))
    return contacts, field_errors


def rejection_text(title: Any, contacts: Sequence[ContactError], field_errors: Mapping[str, list[str]]) -> str:
    """``title - N invalid contact(s): ... - Field: message``, at most ten contacts listed."""
    parts = [str(title) if title else "validation failed"]
    if contacts:
        listed = "; ".join(str(c) for c in contacts[:_MAX_LISTED_CONTACTS])
        more = len(contacts) - _MAX_LISTED_CONTACTS
        parts.append(f"{len(contacts)} invalid contact(s): {listed}" + (f"; and {more} more" if more > 0 else ""))
    if field_errors:
        parts.append("; ".join(f"{k}: {' '.join(v)}" for k, v in field_errors.items()))
    return " - ".join(parts)


# ================================================================== neutral <-> vendor

_TEMPLATE_TOKEN_RE: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_IDENTITY_FIELDS: Final = {"name": "name", "custom1": "custom1", "custom2": "custom2"}


def _option(campaign: Campaign, *keys: str) -> Any:
    """The first of ``keys`` set in ``campaign.provider_options``, else None."""
    for key in keys:
        if key in campaign.provider_options:
            return campaign.provider_options[key]
    return None


def _used_placeholders(text: str) -> set[str]:
    return {m.group(1) for m in _TEMPLATE_TOKEN_RE.finditer(text) if m.group(1)}


class Codec:
    """Neutral models <-> vendor JSON for one provider instance (pure: no I/O).

    What depends on the instance's options lives here: how numbers are written
    (``number_format``, ``home_region``), the merge tokens personalised text uses
    (``merge_tokens``) and which callback field identifies a message
    (``webhook_message_id``). ``instance`` is recorded on the models read.
    """

    def __init__(self, options: CampaignsApiOptions, instance: str) -> None:
        self.opts = options
        self.instance = instance
        # +44 also covers GG, JE and IM, which are dialled nationally like GB numbers
        self._home_prefix = f"+{phonenumbers.country_code_for_region(options.home_region)}"
        self._token_pattern: re.Pattern[str] | None = None

    # ------------------------------------------------------------ numbers

    def vendor_phone(self, phone: str) -> str:
        """``phone`` as sent to the vendor (option ``number_format``).

        E.164 input becomes national digits (``07912345678``) or international
        digits (``447912345678``); ``auto`` uses national digits for numbers with
        the home region's country code (+44: GB, GG, JE, IM). Anything else is
        passed through unchanged, so the vendor's own validation (and its
        per-contact errors) apply.
        """
        if not phonelib.is_e164(phone):
            return phone
        fmt = self.opts.number_format
        if fmt == "auto":
            fmt = "national" if phone.startswith(self._home_prefix) else "international"
        try:
            return phonelib.to_national(phone) if fmt == "national" else phonelib.to_international_digits(phone)
        except InvalidPhoneNumber:
            return phone[1:]

    def neutral_phone(self, raw: Any) -> str | None:
        """The vendor's number as E.164 (national numbers read in ``home_region``), or None."""
        if not isinstance(raw, str) or not raw.strip():
            return None
        try:
            return phonelib.normalize(raw, self.opts.home_region)
        except InvalidPhoneNumber:
            return None

    # ------------------------------------------------------------ personalised text

    def vendor_text(self, text: str, placeholders: Mapping[str, str] | None = None) -> str:
        """Neutral ``{name}``-style text -> vendor text with merge tokens (``{Name}``).

        ``placeholders`` maps neutral names to ``name``/``custom1``/``custom2``
        (default: the names themselves). ``{{``/``}}`` become literal braces.
        Raises :class:`~smsgate.errors.TemplateError` for any other placeholder.
        """
        mapping = dict(placeholders or _IDENTITY_FIELDS)
        out: list[str] = []
        unknown: list[str] = []
        pos = 0
        for match in _TEMPLATE_TOKEN_RE.finditer(text):
            out.append(text[pos : match.start()])
            pos = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                out.append(token[0])
                continue
            name = match.group(1)
            if name is None:
                raise TemplateError(
                    f"unmatched {token!r} at position {match.start()}; write {token * 2!r} for a literal brace",
                    field="text",
                    value=text,
                )
            if name not in mapping:
                unknown.append(name)
                continue
            out.append(self.opts.merge_tokens[mapping[name]])
        out.append(text[pos:])
        if unknown:
            allowed = ", ".join("{" + k + "}" for k in mapping)
            raise TemplateError(
                f"placeholder(s) {', '.join(repr(u) for u in unknown)} have no vendor merge field; "
                f"this API personalises only {allowed} (map fields with provider_options['custom_fields'])",
                field="text",
                value=text,
            )
        return "".join(out)

    def neutral_text(self, text: str) -> str:
        """Vendor text -> neutral template: merge tokens become ``{name}``/``{custom1}``/``{custom2}``."""
        if "{" not in text and "}" not in text:
            return text
        tokens = {token: field for field, token in self.opts.merge_tokens.items()}
        pattern = self._token_pattern
        if pattern is None:
            alternatives = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
            pattern = self._token_pattern = re.compile(alternatives + r"|[{}]")

        def sub(match: re.Match[str]) -> str:
            token = match.group(0)
            if token in tokens:
                return "{" + tokens[token] + "}"
            return token * 2

        return pattern.sub(sub, text)

    @staticmethod
    def placeholder_map(campaign: Campaign) -> dict[str, str]:
        """Neutral placeholder / contact field -> vendor field (name, custom1, custom2).

        ``provider_options['custom_fields']`` names the (at most two) contact fields the
        vendor's ``custom1``/``custom2`` carry; default: ``custom1`` and ``custom2``.
        """
        custom = _option(campaign, "custom_fields", "customFields")
        if custom is None:
            custom = ["custom1", "custom2"]
        if isinstance(custom, str) or not isinstance(custom, Sequence) or len(custom) > 2:
            raise ValidationError(
                "provider_options['custom_fields'] must list at most two field names (custom1, custom2)",
                field="custom_fields",
                value=custom,
            )
        mapping = {"name": "name"}
        for field, target in zip(custom, ("custom1", "custom2"), strict=False):
            if not isinstance(field, str) or not field or field == "name" or field in mapping:
                raise ValidationError(
                    "custom field names must be distinct non-empty strings other than 'name'",
                    field="custom_fields",
                    value=field,
                )
            mapping[field] = target
        return mapping

    # ------------------------------------------------------------ campaigns (writing)

    def campaign_body(
        self, campaign: Campaign, *, sender: Callable[[str | None], str], with_contacts: bool
    ) -> dict[str, Any]:
        """The ``POST``/``PUT /api/Campaigns`` body ``{startDateTime, sender, message, optOutLinkId?,
        trackLinkUrl?, contacts?}`` [DOC].

        ``sender(campaign.sender)`` gives the sender to send (it raises when there is none);
        it is asked once the text is known to be sendable, so a text error is reported first.
        Raises :class:`~smsgate.errors.ValidationError` / ``TemplateError`` for what the
        vendor cannot take.
        """
        if campaign.text is None:
            raise ValidationError(
                "a campaign needs text (this API has no templates)", field="text", location="campaign"
            )
        placeholders = self.placeholder_map(campaign)
        message = self.vendor_text(campaign.text, placeholders)
        start = campaign.start_at or utcnow()
        body: dict[str, Any] = {"startDateTime": format_datetime(start)}
        body["sender"] = sender(campaign.sender)
        body["message"] = message
        opt_out = _option(campaign, "optOutLinkId", "opt_out_link_id")
        if opt_out is not None:
            number = to_int(opt_out)
            if number is None:
                raise ValidationError("optOutLinkId must be an integer", field="optOutLinkId", value=opt_out)
            body["optOutLinkId"] = number
        track = _option(campaign, "trackLinkUrl", "track_link_url")
        if track is not None:
            if not isinstance(track, str):
                raise ValidationError("trackLinkUrl must be a string", field="trackLinkUrl", value=track)
            body["trackLinkUrl"] = track
        if with_contacts:
            body["contacts"] = self.contacts_body(campaign, placeholders)
        return body

    def contacts_body(self, campaign: Campaign, placeholders: Mapping[str, str]) -> list[dict[str, Any]]:
        """The campaign's ``contacts`` ``[{phoneNumber, name?, custom1?, custom2?, contactGroupId?}]``."""
        if not campaign.contacts:
            raise ValidationError(
                "a campaign needs contacts: this API takes the recipients inline",
                field="contacts",
                location="campaign",
            )
        used = _used_placeholders(campaign.text or "")
        by_target = {target: field for field, target in placeholders.items()}
        contacts = []
        for i, contact in enumerate(campaign.contacts):
            values: dict[str, str | None] = {}
            for target in ("name", "custom1", "custom2"):
                field = by_target.get(target)
                value: str | None = None
                if field == "name":
                    value = contact.name if contact.name is not None else contact.fields.get("name")
                elif field is not None:
                    value = contact.fields.get(field)
                if value is None and field is not None and field in used:
                    raise ValidationError(
                        f"the text uses {{{field}}} but this contact has no {field!r}",
                        field=field,
                        location=f"contact {i}",
                    )
                values[target] = value
            item: dict[str, Any] = {"phoneNumber": self.vendor_phone(contact.phone)}
            item.update({k: v for k, v in values.items() if v is not None})
            group = contact.fields.get("contactGroupId") or contact.fields.get("contact_group_id") or campaign.contact_list_id
            if group is not None:
                try:
                    item["contactGroupId"] = str(uuid.UUID(str(group)))
                except ValueError:
                    raise ValidationError(
                        f"contactGroupId {group!r} is not a UUID", field="contactGroupId", location=f"contact {i}"
                    ) from None
            contacts.append(item)
        return contacts

    # ------------------------------------------------------------ reading

    def campaign_from_vendor(self, data: Mapping[str, Any]) -> Campaign:
        """A vendor Campaign object -> neutral :class:`~smsgate.models.Campaign`."""
        status, raw_status = neutral_campaign_status(ci_get(data, "status"))
        options: dict[str, Any] = {}
        opt_out = to_int(ci_get(data, "optOutLinkId"))
        if opt_out:
            options["optOutLinkId"] = opt_out
        track = ci_get(data, "trackLinkUrl")
        if isinstance(track, str) and track:
            options["trackLinkUrl"] = track
        ident = ci_get(data, "id")
        message = ci_get(data, "message")
        sender = ci_get(data, "sender")
        return Campaign(
            id=None if ident is None else str(ident),
            text=self.neutral_text(message) if isinstance(message, str) else None,
            sender=sender if isinstance(sender, str) else None,
            start_at=parse_datetime(ci_get(data, "startDateTime")),
            status=status,
            raw_status=raw_status,
            recipient_count=to_int(ci_get(data, "recipientCount")),
            provider=self.instance,
            provider_options=options,
            raw=dict(data),
        )

    def contact_from_vendor(self, data: Mapping[str, Any]) -> Contact:
        """A vendor campaign contact -> neutral :class:`~smsgate.models.Contact`.

        ``phone`` is E.164 when the vendor's number can be read, else the vendor's string.
        """
        raw_phone = ci_get(data, "phoneNumber")
        fields = {}
        for key in ("custom1", "custom2"):
            value = ci_get(data, key)
            if value is not None:
                fields[key] = str(value)
        name = ci_get(data, "name")
        ident = ci_get(data, "id")
        return Contact(
            phone=self.neutral_phone(raw_phone) or (str(raw_phone) if raw_phone is not None else ""),
            name=None if name is None else str(name),
            fields=fields,
            id=None if ident is None else str(ident),
        )

    def message_from_vendor(self, data: Mapping[str, Any]) -> SmsMessage:
        """A vendor SMSMessage object -> :class:`SmsMessage`."""
        status, raw_status = neutral_sms_status(ci_get(data, "status"))
        raw_phone = ci_get(data, "phoneNumber")
        new_id = ci_get(data, "newId")
        campaign = ci_get(data, "campaignId")

        def text(key: str) -> str | None:
            value = ci_get(data, key)
            return None if value is None else str(value)

        return SmsMessage(
            id=to_int(ci_get(data, "id")),
            new_id=None if new_id in (None, "") else str(new_id),
            client_id=to_int(ci_get(data, "client_Id")),
            phone=self.neutral_phone(raw_phone),
            phone_number=None if raw_phone is None else str(raw_phone),
            status=status,
            raw_status=raw_status,
            price=to_decimal(ci_get(data, "price")),
            sms_count=to_int(ci_get(data, "smsCount")),
            country_code=text("countryCode"),
            sender=text("senderNumber"),
            message=text("message"),
            campaign_id=None if campaign in (None, "") else str(campaign),
            date_created=parse_datetime(ci_get(data, "dateCreated")),
            date_modified=parse_datetime(ci_get(data, "dateModified")),
            date_received=parse_datetime(ci_get(data, "dateReceived")),
            raw=dict(data),
        )

    # ------------------------------------------------------------ callbacks

    def webhook_reports(self, body: bytes) -> list[DeliveryReport]:
        """The delivery reports of a callback body (one callback or a list of them).

        ``webHookType`` 1 is an SMS delivery report; 0 (a voice call result) is skipped.
        Keys are read case-insensitively. Anything else raises :class:`WebhookRejected`.
        """
        where = f"{self.instance} webhook"
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected("body is not JSON", field="body", location=where) from None
        items = data if isinstance(data, list) else [data]
        reports = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise WebhookRejected(f"item {i} is not an object", field="body", location=where)
            kind = to_int(ci_get(item, "webHookType"))
            if kind is None:
                raise WebhookRejected(f"item {i} has no webHookType", field="webHookType", location=where)
            if kind != 1:  # 0 = voice call result; not an SMS delivery report
                continue
            payload = ci_get(item, "data")
            if not isinstance(payload, dict):
                raise WebhookRejected(f"item {i} has no 'data' object", field="data", location=where)
            reports.append(self.report_from_webhook(payload, f"{where} item {i}"))
        return reports

    def report_from_webhook(self, data: Mapping[str, Any], where: str) -> DeliveryReport:
        """One callback's ``data`` -> :class:`~smsgate.models.DeliveryReport` (option ``webhook_message_id``)."""
        if ci_get(data, "statusCode") is None:
            raise WebhookRejected("no statusCode", field="statusCode", location=where)
        status, raw_status = neutral_sms_status(ci_get(data, "statusCode"))
        by_guid = ci_get(data, "phoneNumberId")
        by_int = ci_get(data, "Id")
        choice = self.opts.webhook_message_id
        ident: Any
        if choice == "phoneNumberId":
            ident = by_guid
        elif choice == "Id":
            ident = by_int
        else:
            ident = by_guid if isinstance(by_guid, str) and by_guid.strip() else by_int
        if ident is None or isinstance(ident, bool) or str(ident).strip() == "":
            raise WebhookRejected("no message id (phoneNumberId / Id)", field="Id", location=where)
        occurred = parse_datetime(ci_get(data, "lastUpdated")) or parse_datetime(ci_get(data, "dateCreated"))
        return DeliveryReport(
            provider=self.instance,
            provider_message_id=str(ident).strip(),
            to=self.neutral_phone(ci_get(data, "phoneNumber")),
            status=status,
            raw_status=raw_status,
            occurred_at=occurred or utcnow(),
            cost=to_decimal(ci_get(data, "price")),
            segments=to_int(ci_get(data, "parts")),
            raw=dict(data),
        )
