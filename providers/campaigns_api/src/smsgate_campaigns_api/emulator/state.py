"""The state of one emulated Dynamic Messaging account: every vendor operation as a plain method.

No HTTP here: :class:`DMState` is unit-testable on its own (give it a ``clock``); the
Starlette routes of :mod:`smsgate_campaigns_api.emulator.app` decode requests, call it and
turn a :class:`Problem` into an RFC 7807 ProblemDetails answer. What the emulated API does
(lifecycles, validation rules, Sieve listings) is described in
:mod:`smsgate_campaigns_api.emulator` and ``docs/providers/campaigns_api.md`` [INF].

Time moves by the clock alone: each operation first starts the campaigns whose start time
has come (:meth:`DMState.advance`); a message's status follows from its age. The state
schedules nothing itself: it calls :attr:`DMState.on_message` for each message it creates
and :attr:`DMState.on_schedule` for each campaign waiting for its start (the app sends the
callbacks and wakes :meth:`DMState.advance` on time).
"""

from __future__ import annotations

import hmac
import itertools
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final, TypeVar

from smsgate import phone as phonelib
from smsgate.errors import InvalidPhoneNumber
from smsgate.text import segment_info
from smsgate_campaigns_api.sieve import (
    ParsedFilter,
    SieveSyntaxError,
    effective_value,
    parse_filters,
    parse_sorts,
)
from smsgate_campaigns_api.wire import DMCampaignStatus, DMSmsStatus, ci_get, parse_datetime, to_int

__all__ = [
    "CAMPAIGN_FIELDS",
    "CONTACT_FIELDS",
    "SANDBOX_API_KEY",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SETTINGS",
    "SANDBOX_WEBHOOK_TOKEN",
    "SMS_FIELDS",
    "CampaignRec",
    "DMState",
    "Problem",
    "SmsRec",
    "apply_sieve",
    "phone_error",
    "sender_error",
]

#: The API key the emulator accepts by default.
SANDBOX_API_KEY: Final = "dm_sandbox_key_5f2c9e7a41"
#: The shared token the sandbox/demo puts in the callback URL (``?token=...``): the vendor signs
#: no callbacks, so smsgate applies them only with it.
SANDBOX_WEBHOOK_TOKEN: Final = "sandbox-dm-webhook-token"
#: Credentials for a provider instance pointed at the emulator (``smsgate sandbox``, demo).
SANDBOX_CREDENTIALS: dict[str, str] = {"api_key": SANDBOX_API_KEY, "webhook_token": SANDBOX_WEBHOOK_TOKEN}
#: Extra provider settings for the sandbox/demo.
SANDBOX_SETTINGS: dict[str, Any] = {}

T = TypeVar("T")

_SEED_STATUSES: Final = (5, 5, 5, 4, 3, 5, 1, 2, 0, 5)
_MERGE_RE: Final = re.compile(r"\{(Name|Custom1|Custom2)\}", re.IGNORECASE)

# field types of filterable/sortable properties
STR, INT, DEC, DATE, GUID = "str", "int", "decimal", "datetime", "guid"
#: The filterable and sortable properties of each listing, with their types.
CAMPAIGN_FIELDS: Final = {
    "id": STR, "startDateTime": DATE, "sender": STR, "recipientCount": INT, "message": STR,
    "status": INT, "optOutLinkId": INT, "trackLinkUrl": STR,
}
CONTACT_FIELDS: Final = {"phoneNumber": STR, "name": STR, "custom1": STR, "custom2": STR, "id": STR}
SMS_FIELDS: Final = {
    "newId": GUID, "id": INT, "client_Id": INT, "dateCreated": DATE, "dateModified": DATE,
    "phoneNumber": STR, "status": INT, "price": DEC, "smsCount": INT, "dateReceived": DATE,
    "countryCode": STR, "senderNumber": STR, "message": STR, "campaignId": STR,
}


class Problem(Exception):
    """An error answer of the emulated API: ``status`` with ProblemDetails ``errors`` (``{field: [message]}``).

    A 401 is answered with an empty body and ``WWW-Authenticate: Bearer``; ``headers`` are
    added to the answer (``Allow`` for a 405).
    """

    def __init__(self, status: int, errors: Mapping[str, list[str]] | None = None, *,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {dict(errors or {})}")
        self.status = status
        self.errors = dict(errors or {})
        self.headers = dict(headers or {})


def iso(value: datetime | None, *, zulu: bool = True) -> str | None:
    """``2023-06-27T03:04:01.374Z`` (UTC, milliseconds; without the ``Z`` when ``zulu`` is false)."""
    if value is None:
        return None
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    return text + "Z" if zulu else text


@dataclass
class CampaignRec:
    """A stored campaign."""

    id: str
    start: datetime
    sender: str
    message: str
    opt_out_link_id: int
    track_link_url: str | None
    contacts: list[dict[str, Any]]
    seeded_status: int | None = None
    materialised: bool = False


@dataclass
class SmsRec:
    """A stored SMS; its status is derived from its age."""

    id: int
    new_id: str
    phone: str
    sender: str
    message: str
    campaign_id: str | None
    created: datetime
    outcome: int
    price: Decimal
    parts: int
    country: str


def _ignore(*_: Any) -> None:
    """The default of the scheduling hooks: a state used without an app schedules nothing."""


@dataclass
class DMState:
    """All vendor state of one emulated account, and every operation of its API.

    ``delivery_delay``: seconds from Accepted to a message's final status;
    ``campaign_delay``: seconds from a campaign's start to Completed;
    ``webhook_url``: where delivery-report callbacks go (the app posts them);
    ``default_page_size``/``max_page_size``: Sieve paging [INF]; ``price_per_sms``: the
    ``price`` of one part; ``client_id``: the account's ``client_Id``; ``clock``: epoch seconds.
    """

    api_key: str = SANDBOX_API_KEY
    delivery_delay: float = 1.0
    campaign_delay: float = 1.0
    webhook_url: str | None = None
    default_page_size: int = 10
    max_page_size: int = 1000
    price_per_sms: Decimal = Decimal("0.035")
    client_id: int = 8
    clock: Callable[[], float] = time.time
    #: Called with each message created (the app schedules its delivery-report callbacks).
    on_message: Callable[[SmsRec], None] = _ignore
    #: Called with the seconds until a waiting campaign starts (the app calls :meth:`advance` then).
    on_schedule: Callable[[float], None] = _ignore
    campaigns: dict[str, CampaignRec] = field(default_factory=dict)
    messages: dict[int, SmsRec] = field(default_factory=dict)
    by_guid: dict[str, int] = field(default_factory=dict)
    #: Ids of campaigns waiting for their start.
    pending: set[str] = field(default_factory=set)
    #: Delivery-report callbacks delivered (the app appends each one it posted).
    callbacks_sent: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100001))

    # ================================================================ time and auth

    def now(self) -> datetime:
        """Current emulator time (UTC)."""
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def authorised(self, *, authorization: str | None = None, api_key_header: str | None = None,
                   api_key_query: str | None = None) -> bool:
        """Whether the API key came as ``Authorization: Bearer``, an ``api-key`` header or query parameter."""
        def same(given: str | None) -> bool:
            return given is not None and hmac.compare_digest(given.strip().encode(), self.api_key.encode())

        auth = authorization or ""
        return (auth[:7].lower() == "bearer " and same(auth[7:])) or same(api_key_header) or same(api_key_query)

    def advance(self) -> None:
        """Start every campaign whose start time has come (idempotent): one SMS per contact."""
        now = self.now()
        for cid in list(self.pending):
            rec = self.campaigns.get(cid)
            if rec is None:
                self.pending.discard(cid)
            elif rec.start <= now:
                self.pending.discard(cid)
                self._materialise(rec)

    def _materialise(self, rec: CampaignRec) -> None:
        if rec.materialised:
            return
        rec.materialised = True
        for contact in rec.contacts:
            def fill(match: re.Match[str], contact: Mapping[str, Any] = contact) -> str:
                value = contact.get(match.group(1).lower())
                return "" if value is None else str(value)

            self.add_sms(contact["phoneNumber"], rec.sender, _MERGE_RE.sub(fill, rec.message), rec.id)

    def _wait_for_start(self, rec: CampaignRec) -> None:
        self.pending.add(rec.id)
        self.on_schedule(max(0.0, (rec.start - self.now()).total_seconds()))

    # ================================================================ /api/Campaigns

    def list_campaigns(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/Campaigns``: a Sieve page of campaigns."""
        self.advance()
        now = self.now()
        return self.listing(query, list(self.campaigns.values()), lambda c: self.campaign_row(c, now),
                            CAMPAIGN_FIELDS, self.campaign_json)

    def get_campaign(self, ident: str) -> dict[str, Any]:
        """``GET /api/Campaigns/{id}``."""
        self.advance()
        return self.campaign_json(self.campaign_row(self._campaign(ident), self.now()))

    def campaign_contacts(self, ident: str, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/Campaigns/{id}/Contacts``: a Sieve page of the campaign's contacts."""
        self.advance()
        rec = self._campaign(ident)
        return self.listing(query, rec.contacts, lambda c: {k: c.get(k) for k in CONTACT_FIELDS}, CONTACT_FIELDS,
                            dict)

    def create_campaign(self, body: Any, ignore: bool | None = None) -> str:
        """``POST /api/Campaigns`` (``ignore`` None) or ``/api/campaigns/{ignore}``: the new id.

        With ``ignore`` true, contacts with invalid numbers are dropped; otherwise they are
        ``Contacts[i].PhoneNumber`` errors. A campaign left without contacts is a 400.
        """
        self.advance()
        fields, errors = _campaign_fields(body)
        contacts_in = ci_get(body, "contacts") if isinstance(body, dict) else None
        contacts: list[dict[str, Any]] = []
        if not isinstance(contacts_in, list) or not contacts_in:
            errors.setdefault("Contacts", []).append("The Contacts field is required.")
        else:
            for i, item in enumerate(contacts_in):
                contact, bad_phone, contact_errors = _contact(item, i)
                errors.update(contact_errors)
                if bad_phone is not None:
                    if ignore:
                        continue
                    errors[f"Contacts[{i}].PhoneNumber"] = [bad_phone]
                if contact is not None:
                    contacts.append(contact)
            if not contacts and not errors:
                errors["Contacts"] = ["No valid contacts."]
        if errors:
            raise Problem(400, errors)
        rec = CampaignRec(id=uuid.uuid4().hex[:12], contacts=contacts, **fields)
        self.campaigns[rec.id] = rec
        self._wait_for_start(rec)
        return rec.id

    def update_campaign(self, ident: str, body: Any) -> None:
        """``PUT`` (or ``POST`` with a body) ``/api/Campaigns/{id}``: replace the campaign's fields."""
        self.advance()
        rec = self._campaign(ident)
        fields, errors = _campaign_fields(body)
        if errors:
            raise Problem(400, errors)
        for key, value in fields.items():
            setattr(rec, key, value)
        if not rec.materialised and rec.seeded_status is None:
            self._wait_for_start(rec)

    def delete_campaign(self, ident: str) -> None:
        """``DELETE`` (or ``POST`` without a body) ``/api/Campaigns/{id}``."""
        self.advance()
        rec = self._campaign(ident)
        del self.campaigns[rec.id]
        self.pending.discard(rec.id)

    def _campaign(self, ident: str) -> CampaignRec:
        rec = self.campaigns.get(ident.lower())
        if rec is None:
            raise Problem(404)
        return rec

    def campaign_status(self, rec: CampaignRec, now: datetime) -> int:
        """The campaign's status code at ``now``."""
        if rec.seeded_status is not None:
            return rec.seeded_status
        if now < rec.start:
            return int(DMCampaignStatus.PENDING)
        elapsed = (now - rec.start).total_seconds()
        if elapsed >= self.campaign_delay:
            return int(DMCampaignStatus.COMPLETED)
        if elapsed >= self.campaign_delay / 2:
            return int(DMCampaignStatus.SUBMITTED)
        return int(DMCampaignStatus.SENDING)

    def campaign_row(self, rec: CampaignRec, now: datetime) -> dict[str, Any]:
        """Typed values of a campaign, for filtering and sorting."""
        return {
            "id": rec.id, "startDateTime": rec.start, "sender": rec.sender,
            "recipientCount": len(rec.contacts), "message": rec.message,
            "status": self.campaign_status(rec, now), "optOutLinkId": rec.opt_out_link_id,
            "trackLinkUrl": rec.track_link_url,
        }

    @staticmethod
    def campaign_json(row: Mapping[str, Any]) -> dict[str, Any]:
        """A campaign row as the vendor's JSON."""
        out = dict(row)
        out["startDateTime"] = iso(row["startDateTime"])
        return out

    # ================================================================ /api/SMSMessages

    def list_messages(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/SMSMessages``: a Sieve page of messages."""
        self.advance()
        now = self.now()
        return self.listing(query, list(self.messages.values()), lambda m: self.sms_row(m, now), SMS_FIELDS,
                            self.sms_json)

    def get_message(self, ident: str) -> dict[str, Any]:
        """``GET /api/SMSMessages/{id}`` (int ``id`` or GUID ``newId``)."""
        self.advance()
        rec = self.find_sms(ident)
        if rec is None:
            raise Problem(404)
        return self.sms_json(self.sms_row(rec, self.now()))

    def send_message(self, body: Any) -> str:
        """``POST /api/SMSMessages`` ``{message, sender, phoneNumber}``: the new message's GUID."""
        self.advance()
        if not isinstance(body, dict):
            raise Problem(400, {"$": ["A JSON object is required."]})
        errors: dict[str, list[str]] = {}
        message = ci_get(body, "message")
        if not isinstance(message, str) or not message:
            errors["Message"] = ["The Message field is required."]
        sender = ci_get(body, "sender")
        if sender is not None and not isinstance(sender, str):
            errors["Sender"] = ["The Sender field must be a string."]
        elif isinstance(sender, str) and sender_error(sender):
            errors["Sender"] = [sender_error(sender) or ""]
        phone = ci_get(body, "phoneNumber")
        bad = phone_error(phone)
        if bad:
            errors["PhoneNumber"] = [bad]
        if errors:
            raise Problem(400, errors)
        return self.add_sms(str(phone), sender or "DynamicM", str(message), None).new_id

    def add_sms(self, phone: str, sender: str, message: str, campaign_id: str | None) -> SmsRec:
        """Store a new message (status Accepted); numbers ending in 9 end Undeliverable."""
        ident = next(self._ids)
        digits = re.sub(r"\D", "", phone)
        outcome = DMSmsStatus.UNDELIVERABLE if digits.endswith("9") else DMSmsStatus.DELIVERED
        parts = segment_info(message).segments
        try:
            region = phonelib.region_of(phonelib.normalize(phone, "GB"))
        except InvalidPhoneNumber:
            region = None
        rec = SmsRec(
            id=ident, new_id=str(uuid.uuid4()), phone=phone, sender=sender, message=message,
            campaign_id=campaign_id, created=self.now(), outcome=int(outcome),
            price=self.price_per_sms * parts, parts=parts,
            country="UK" if region in (None, "GB") else region,
        )
        self.messages[ident] = rec
        self.by_guid[rec.new_id.lower()] = ident
        self.on_message(rec)
        return rec

    def find_sms(self, key: str) -> SmsRec | None:
        """A message by int ``id`` or GUID ``newId`` (case-insensitive)."""
        number = to_int(key)
        if number is not None:
            return self.messages.get(number)
        try:
            guid = str(uuid.UUID(key))
        except ValueError:
            return None
        ident = self.by_guid.get(guid)
        return self.messages.get(ident) if ident is not None else None

    def sms_status(self, rec: SmsRec, now: datetime) -> tuple[int, datetime, datetime | None]:
        """``(status, dateModified, dateReceived)`` of a message at ``now``: Accepted, Sent, then final."""
        age = (now - rec.created).total_seconds()
        half = timedelta(seconds=self.delivery_delay / 2)
        if age >= self.delivery_delay:
            done = rec.created + timedelta(seconds=self.delivery_delay)
            return rec.outcome, done, done
        if age >= self.delivery_delay / 2:
            return int(DMSmsStatus.SENT), rec.created + half, None
        return int(DMSmsStatus.ACCEPTED), rec.created, None

    def sms_row(self, rec: SmsRec, now: datetime) -> dict[str, Any]:
        """Typed values of a message, for filtering and sorting."""
        status, modified, received = self.sms_status(rec, now)
        return {
            "newId": rec.new_id, "id": rec.id, "client_Id": self.client_id, "dateCreated": rec.created,
            "dateModified": modified, "phoneNumber": rec.phone, "status": status, "price": rec.price,
            "smsCount": rec.parts, "dateReceived": received, "countryCode": rec.country,
            "senderNumber": rec.sender, "message": rec.message, "campaignId": rec.campaign_id,
        }

    @staticmethod
    def sms_json(row: Mapping[str, Any]) -> dict[str, Any]:
        """A message row as the vendor's JSON (the docs' samples carry no offset)."""
        out = dict(row)
        for key in ("dateCreated", "dateModified", "dateReceived"):
            out[key] = iso(row[key], zulu=False)
        out["price"] = float(row["price"])
        return out

    def callback_payload(self, rec: SmsRec) -> dict[str, Any]:
        """The delivery-report callback (``webHookType`` 1) of a message as it stands now [DOC shape]."""
        now = self.now() + timedelta(milliseconds=1)
        status, modified, _ = self.sms_status(rec, now)
        return {
            "webHookType": 1,
            "data": {
                "clientId": self.client_id, "Id": rec.id, "phoneNumberId": rec.new_id,
                "phoneNumber": rec.phone, "parts": rec.parts, "dateCreated": iso(rec.created),
                "lastUpdated": iso(modified), "price": float(rec.price), "statusCode": status,
            },
        }

    # ================================================================ listings

    def listing(self, query: Mapping[str, str], records: Sequence[T], to_row: Callable[[T], dict[str, Any]],
                fields: Mapping[str, str], to_json: Callable[[Mapping[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """One page ``{pageIndex, totalPages, totalRecords, items}`` of ``records`` as Sieve answers
        ``?filters=&sorts=&page=&pageSize=`` (query keys in any case)."""
        page = to_int(ci_get(query, "page", "1"))
        size = to_int(ci_get(query, "pageSize", str(self.default_page_size)))
        errors = {}
        if page is None or page < 1:
            errors["Page"] = ["The field Page must be between 1 and 2147483647."]
        if size is None or size < 1:
            errors["PageSize"] = ["The field PageSize must be between 1 and 2147483647."]
        if errors:
            raise Problem(400, errors)
        assert page is not None and size is not None
        size = min(size, self.max_page_size)
        start = (page - 1) * size
        filters, sorts = ci_get(query, "filters"), ci_get(query, "sorts")
        if filters or sorts:
            rows = apply_sieve([to_row(r) for r in records], filters, sorts, fields)
            total, window = len(rows), rows[start : start + size]
        else:  # no Sieve: only the requested window is materialised
            total, window = len(records), [to_row(r) for r in records[start : start + size]]
        return {
            "pageIndex": page,
            "totalPages": math.ceil(total / size),
            "totalRecords": total,
            "items": [to_json(r) for r in window],
        }

    # ================================================================ seeding

    def seed(self, count: int) -> None:
        """Pre-create ``count`` finished campaigns (statuses cycling, two contacts each), for paging."""
        base = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
        for i in range(count):
            cid = f"seed{i:08x}"
            contacts = [
                {"id": f"{cid}c{j}", "phoneNumber": f"0791234{(i * 2 + j) % 10000:04d}", "name": f"Contact {j}",
                 "custom1": str(i), "custom2": None}
                for j in range(2)
            ]
            self.campaigns[cid] = CampaignRec(
                id=cid, start=base + timedelta(minutes=i), sender="SEED", message=f"Seeded campaign {i}",
                opt_out_link_id=0, track_link_url=None, contacts=contacts,
                seeded_status=_SEED_STATUSES[i % len(_SEED_STATUSES)], materialised=True,
            )


# ==================================================================== validation [INF]


def phone_error(value: Any) -> str | None:
    """Why ``value`` is not a number the vendor can send to (None when it is) [INF]."""
    if not isinstance(value, str) or not value.strip():
        return "The PhoneNumber field is required."
    try:
        phonelib.normalize(value, "GB")
    except InvalidPhoneNumber:
        return f"'{value}' is not a valid phone number."
    return None


def sender_error(value: str) -> str | None:
    """Sender rule [INF]: up to 11 letters/digits, or a number of up to 15 digits."""
    if not value.strip():
        return "The Sender field is required."
    if value.isdigit() and len(value) <= 15:
        return None
    if len(value) > 11:
        return "The field Sender must be a string with a maximum length of 11."
    return None


def _campaign_fields(body: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate the common campaign fields (create and update)."""
    errors: dict[str, list[str]] = {}
    if not isinstance(body, dict):
        return {}, {"$": ["A JSON object is required."]}
    fields: dict[str, Any] = {}
    start_raw = ci_get(body, "startDateTime")
    start = parse_datetime(start_raw)
    if start_raw is None:
        errors["StartDateTime"] = ["The StartDateTime field is required."]
    elif start is None:
        errors["$.startDateTime"] = ["The JSON value could not be converted to System.DateTime."]
    fields["start"] = start
    sender = ci_get(body, "sender")
    if not isinstance(sender, str) or not sender:
        errors["Sender"] = ["The Sender field is required."]
    elif sender_error(sender):
        errors["Sender"] = [sender_error(sender) or ""]
    fields["sender"] = sender
    message = ci_get(body, "message")
    if not isinstance(message, str) or not message:
        errors["Message"] = ["The Message field is required."]
    fields["message"] = message
    opt_out = ci_get(body, "optOutLinkId", 0)
    if opt_out is None:
        opt_out = 0
    if isinstance(opt_out, bool) or not isinstance(opt_out, int):
        errors["$.optOutLinkId"] = ["The JSON value could not be converted to System.Int32."]
    fields["opt_out_link_id"] = opt_out
    track = ci_get(body, "trackLinkUrl")
    if track is not None and not isinstance(track, str):
        errors["$.trackLinkUrl"] = ["The JSON value could not be converted to System.String."]
    fields["track_link_url"] = track
    return fields, errors


def _contact(item: Any, index: int) -> tuple[dict[str, Any] | None, str | None, dict[str, list[str]]]:
    """``(contact, phone error, other errors)`` for one posted contact."""
    where = f"Contacts[{index}]"
    if not isinstance(item, dict):
        return None, None, {where: ["A JSON object is required."]}
    errors: dict[str, list[str]] = {}
    contact: dict[str, Any] = {"id": uuid.uuid4().hex[:16]}
    for key in ("name", "custom1", "custom2"):
        value = ci_get(item, key)
        if value is not None and not isinstance(value, str):
            errors[f"{where}.{key[0].upper()}{key[1:]}"] = ["The JSON value could not be converted to System.String."]
        contact[key] = value
    group = ci_get(item, "contactGroupId")
    if group is not None:
        try:
            contact["contactGroupId"] = str(uuid.UUID(str(group)))
        except ValueError:
            errors[f"{where}.ContactGroupId"] = ["The JSON value could not be converted to System.Guid."]
    phone = ci_get(item, "phoneNumber")
    contact["phoneNumber"] = phone
    return contact, phone_error(phone), errors


# ==================================================================== Sieve evaluation


def _bad_filter(message: str) -> Problem:
    return Problem(400, {"filters": [message]})


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.strip())
    except ArithmeticError:
        return None


def _guid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


#: How a filter value is read for a property of each type (None: not a valid value).
_READERS: Final[Mapping[str, Callable[[str], Any]]] = {INT: to_int, DEC: _decimal, DATE: parse_datetime, GUID: _guid}


def _convert(text: str, kind: str, name: str) -> Any:
    """A filter value as the type of property ``name`` (text as is); a 400 when it is not one."""
    read = _READERS.get(kind)
    if read is None:
        return text
    value = read(text)
    if value is None:
        raise _bad_filter(f"'{text}' is not a valid value for {name}.")
    return value


def _resolve(name: str, fields: Mapping[str, str]) -> str:
    for key in fields:
        if key.lower() == name.lower():
            return key
    raise _bad_filter(f"Property '{name}' is not filterable or sortable.")


def _compare(op: str, prop: Any, value: Any, kind: str, ci: bool) -> bool:
    if ci and isinstance(prop, str) and isinstance(value, str):
        prop, value = prop.upper(), value.upper()
    if op in ("@=", "_=", "_-="):
        if kind != STR:
            raise _bad_filter(f"Operator '{op}' needs a string property.")
        if op == "@=":
            return bool(value in prop)
        if op == "_=":
            return bool(prop.startswith(value))
        return bool(prop.endswith(value))
    if op == "==":
        return bool(prop == value)
    if op == "!=":
        return bool(prop != value)
    if kind in (STR, GUID):
        raise _bad_filter(f"Operator '{op}' is not defined for text properties.")
    if op == ">":
        return bool(prop > value)
    if op == "<":
        return bool(prop < value)
    if op == ">=":
        return bool(prop >= value)
    return bool(prop <= value)


def _term_matches(term: ParsedFilter, row: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    if term.values is None:  # no operator: Sieve skips the term
        return True
    result = False
    for name in term.names:
        key = _resolve(name, fields)
        kind = fields[key]
        for raw in term.values:
            op = term.base_operator
            is_null = raw.lower() == "null" and (kind != STR or op in ("==", "!="))
            prop = row[key]
            if is_null:
                expr = (prop is None) if op == "==" else (prop is not None) if op == "!=" else False
                if term.negated:
                    expr = not expr
            elif prop is None:
                expr = False
            else:
                text = effective_value(raw) if raw.lower() == "\\null" else raw
                expr = _compare(op, prop, _convert(text or "", kind, key), kind, term.case_insensitive)
                if term.negated:
                    expr = not expr
            result = result or expr
    return result


def _sort_key(key: str) -> Callable[[Mapping[str, Any]], tuple[bool, Any]]:
    def sort_key(row: Mapping[str, Any]) -> tuple[bool, Any]:
        value = row[key]
        return (value is not None, value if value is not None else 0)

    return sort_key


def apply_sieve(rows: list[dict[str, Any]], filters: str | None, sorts: str | None,
                fields: Mapping[str, str]) -> list[dict[str, Any]]:
    """Filter and sort typed rows as Sieve would (unknown properties are a 400 :class:`Problem`)."""
    if filters:
        try:
            terms = parse_filters(filters)
        except SieveSyntaxError as exc:
            raise _bad_filter(exc.reason) from None
        for term in terms:  # unknown properties fail even when there is nothing to filter
            if term.values is not None:
                for name in term.names:
                    _resolve(name, fields)
        rows = [r for r in rows if all(_term_matches(t, r, fields) for t in terms)]
    if sorts:
        keys = [(_resolve(name, fields), desc) for name, desc in parse_sorts(sorts)]
        for key, desc in reversed(keys):
            rows.sort(key=_sort_key(key), reverse=desc)
    return rows
