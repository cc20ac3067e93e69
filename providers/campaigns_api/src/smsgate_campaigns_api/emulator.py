"""An emulator of the Dynamic Messaging "Campaigns REST API" (a Starlette app).

Speaks the documented API (see ``docs/providers/campaigns_api.md``):

* ``GET/POST /api/Campaigns``, ``GET /api/Campaigns/{id}``,
  ``GET /api/Campaigns/{id}/Contacts``, ``POST /api/campaigns/{true|false}``,
  update as ``PUT`` or ``POST /api/Campaigns/{id}`` (with a body), delete as
  ``DELETE`` or ``POST /api/Campaigns/{id}`` (without a body);
* ``GET/POST /api/SMSMessages``, ``GET /api/SMSMessages/{id}`` (int ``id`` or GUID ``newId``);
* paths are case-insensitive (ASP.NET routing); listings take Sieve
  ``filters``/``sorts``/``page``/``pageSize`` and answer
  ``{pageIndex, totalPages, totalRecords, items}``;
* the API key is accepted as ``Authorization: Bearer``, ``api-key`` header or
  ``api-key`` query parameter; a missing/wrong key gets 401 with an empty body
  and ``WWW-Authenticate: Bearer`` (ASP.NET JwtBearer default) [INF];
* errors are RFC 7807 ProblemDetails (``type, title, status, traceId, errors``)
  [INF: the vendor's error bodies are undocumented]; an invalid contact number in a
  validated campaign gives ``errors["Contacts[i].PhoneNumber"]``.

State is per app. Single messages move ``2 Accepted -> 0 Sent -> 1 Delivered``
(``5 Undeliverable`` for numbers ending in 9) over ``delivery_delay`` seconds;
campaigns are ``0 Pending`` until ``startDateTime``, then ``1 Sending``,
``2 Submitted`` and ``5 Completed`` over ``campaign_delay`` seconds, creating one
SMS (merge tokens filled in) per contact when they start. With ``webhook_url`` set,
each message's ``Sent`` and final status are POSTed as ``webHookType`` 1 callbacks
(skipped while a ``drop_callbacks`` fault is active). ``seed_campaigns=N``
pre-creates N campaigns for paging tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate import phone as phonelib
from smsgate.emulation import EmulatorState, emulator_app
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

__all__ = ["SANDBOX_API_KEY", "SANDBOX_CREDENTIALS", "SANDBOX_SETTINGS", "SANDBOX_WEBHOOK_TOKEN", "DMState", "create_app"]

#: The API key the emulator accepts by default.
SANDBOX_API_KEY: Final = "dm_sandbox_key_5f2c9e7a41"
#: The shared token the sandbox/demo puts in the callback URL (``?token=...``): the vendor signs
#: no callbacks, so smsgate applies them only with it.
SANDBOX_WEBHOOK_TOKEN: Final = "sandbox-dm-webhook-token"
#: Credentials for a provider instance pointed at the emulator (``smsgate sandbox``, demo).
SANDBOX_CREDENTIALS: dict[str, str] = {"api_key": SANDBOX_API_KEY, "webhook_token": SANDBOX_WEBHOOK_TOKEN}
#: Extra provider settings for the sandbox/demo.
SANDBOX_SETTINGS: dict[str, Any] = {}

_PROBLEM_TYPES: Final = {
    400: "https://tools.ietf.org/html/rfc7231#section-6.5.1",
    401: "https://tools.ietf.org/html/rfc7235#section-3.1",
    404: "https://tools.ietf.org/html/rfc7231#section-6.5.4",
    405: "https://tools.ietf.org/html/rfc7231#section-6.5.5",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc7231#section-6.6.1",
    503: "https://tools.ietf.org/html/rfc7231#section-6.6.4",
}
_TITLES: Final = {
    400: "One or more validation errors occurred.",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "An error occurred while processing your request.",
    503: "Service Unavailable",
}
T = TypeVar("T")

_SEED_STATUSES: Final = (5, 5, 5, 4, 3, 5, 1, 2, 0, 5)
_MERGE_RE: Final = re.compile(r"\{(Name|Custom1|Custom2)\}", re.IGNORECASE)

# field types of filterable/sortable properties
STR, INT, DEC, DATE, GUID = "str", "int", "decimal", "datetime", "guid"
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


def problem(status: int, title: str | None = None, errors: Mapping[str, list[str]] | None = None,
            detail: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An ASP.NET-style RFC 7807 ProblemDetails response."""
    body: dict[str, Any] = {
        "type": _PROBLEM_TYPES.get(status, "about:blank"),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body["traceId"] = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"
    if errors:
        body["errors"] = dict(errors)
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers=dict(headers or {}))


def _iso(value: datetime | None, *, zulu: bool = True) -> str | None:
    if value is None:
        return None
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    return text + "Z" if zulu else text


class _BadQuery(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


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


@dataclass
class DMState:
    """All vendor state of one emulator app."""

    api_key: str
    delivery_delay: float
    campaign_delay: float
    webhook_url: str | None
    default_page_size: int
    max_page_size: int
    price_per_sms: Decimal
    client_id: int
    clock: Callable[[], float]
    campaigns: dict[str, CampaignRec] = field(default_factory=dict)
    messages: dict[int, SmsRec] = field(default_factory=dict)
    by_guid: dict[str, int] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    callbacks_sent: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    emulator: EmulatorState | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100001))
    _client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------ time
    def now(self) -> datetime:
        """Current emulator time (UTC)."""
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    # -------------------------------------------------------- messages
    def sms_status(self, rec: SmsRec, now: datetime) -> tuple[int, datetime, datetime | None]:
        """``(status, dateModified, dateReceived)`` of a message at ``now``."""
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
            out[key] = _iso(row[key], zulu=False)
        out["price"] = float(row["price"])
        return out

    def add_sms(self, phone: str, sender: str, message: str, campaign_id: str | None) -> SmsRec:
        """Store a new message (status Accepted) and schedule its callbacks."""
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
        self._spawn(self._callbacks(rec))
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

    # ------------------------------------------------------- campaigns
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
        """Typed values of a campaign."""
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
        out["startDateTime"] = _iso(row["startDateTime"])
        return out

    def add_campaign(self, rec: CampaignRec) -> None:
        """Store a campaign; its messages are created when it starts."""
        self.campaigns[rec.id] = rec
        if rec.seeded_status is None:
            self.pending.add(rec.id)
            delay = max(0.0, (rec.start - self.now()).total_seconds())
            self._spawn(self._start_later(rec.id, delay))

    def advance(self) -> None:
        """Start every campaign whose start time has come (idempotent)."""
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

    async def _start_later(self, cid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.advance()

    # -------------------------------------------------------- callbacks
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving (e.g. seeding at import): nothing to schedule
            coro.close()
            return
        task = loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _callbacks(self, rec: SmsRec) -> None:
        if not self.webhook_url:
            return
        await asyncio.sleep(self.delivery_delay / 2)
        await self._post_callback(rec)
        await asyncio.sleep(self.delivery_delay / 2)
        await self._post_callback(rec)

    async def _post_callback(self, rec: SmsRec) -> None:
        if not self.webhook_url or (self.emulator is not None and self.emulator.callbacks_dropped()):
            return
        now = self.now() + timedelta(milliseconds=1)
        status, modified, _ = self.sms_status(rec, now)
        payload = {
            "webHookType": 1,
            "data": {
                "clientId": self.client_id, "Id": rec.id, "phoneNumberId": rec.new_id,
                "phoneNumber": rec.phone, "parts": rec.parts, "dateCreated": _iso(rec.created),
                "lastUpdated": _iso(modified), "price": float(rec.price), "statusCode": status,
            },
        }
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        try:
            await self._client.post(self.webhook_url, json=payload)
        except httpx.HTTPError:
            return
        self.callbacks_sent.append(payload)

    async def aclose(self) -> None:
        """Cancel pending timers/callbacks and close the callback client."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# ------------------------------------------------------------------ Sieve


def _convert(text: str, kind: str, name: str) -> Any:
    if kind == INT:
        number = to_int(text)
        if number is None:
            raise _BadQuery("filters", f"'{text}' is not a valid value for {name}.")
        return number
    if kind == DEC:
        try:
            return Decimal(text.strip())
        except ArithmeticError:
            raise _BadQuery("filters", f"'{text}' is not a valid value for {name}.") from None
    if kind == DATE:
        value = parse_datetime(text)
        if value is None:
            raise _BadQuery("filters", f"'{text}' is not a valid value for {name}.")
        return value
    if kind == GUID:
        try:
            return str(uuid.UUID(text.strip()))
        except ValueError:
            raise _BadQuery("filters", f"'{text}' is not a valid value for {name}.") from None
    return text


def _resolve(name: str, fields: Mapping[str, str]) -> str:
    for key in fields:
        if key.lower() == name.lower():
            return key
    raise _BadQuery("filters", f"Property '{name}' is not filterable or sortable.")


def _compare(op: str, prop: Any, value: Any, kind: str, ci: bool) -> bool:
    if ci and isinstance(prop, str) and isinstance(value, str):
        prop, value = prop.upper(), value.upper()
    if op in ("@=", "_=", "_-="):
        if kind != STR:
            raise _BadQuery("filters", f"Operator '{op}' needs a string property.")
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
        raise _BadQuery("filters", f"Operator '{op}' is not defined for text properties.")
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
    """Filter and sort typed rows as Sieve would (unknown properties are a 400)."""
    if filters:
        try:
            terms = parse_filters(filters)
        except SieveSyntaxError as exc:
            raise _BadQuery("filters", exc.reason) from None
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


# ------------------------------------------------------------------ app


def create_app(
    *,
    api_key: str = SANDBOX_API_KEY,
    delivery_delay: float = 1.0,
    campaign_delay: float = 1.0,
    seed_campaigns: int = 0,
    webhook_url: str | None = None,
    default_page_size: int = 10,
    max_page_size: int = 1000,
    price_per_sms: str = "0.035",
    client_id: int = 8,
    clock: Callable[[], float] = time.time,
) -> Any:
    """Build the emulator app (wrapped with request recording and fault injection).

    ``delivery_delay``: seconds from Accepted to the final SMS status;
    ``campaign_delay``: seconds from a campaign's start to Completed;
    ``seed_campaigns``: campaigns to pre-create (statuses cycle, two contacts each);
    ``webhook_url``: where delivery-report callbacks go (set by DM staff in real life);
    ``default_page_size``/``max_page_size``: Sieve paging defaults [INF].
    The vendor state is available as ``app.vendor`` (:class:`DMState`).
    """
    state = DMState(
        api_key=api_key, delivery_delay=delivery_delay, campaign_delay=campaign_delay,
        webhook_url=webhook_url, default_page_size=default_page_size, max_page_size=max_page_size,
        price_per_sms=Decimal(price_per_sms), client_id=client_id, clock=clock,
    )
    _seed(state, seed_campaigns)

    def authorised(request: Request) -> bool:
        def same(given: str | None) -> bool:
            return given is not None and hmac.compare_digest(given.strip().encode(), api_key.encode())

        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and same(auth[7:]):
            return True
        if same(request.headers.get("api-key")):
            return True
        return same(ci_get(dict(request.query_params), "api-key"))

    async def read_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            raise _BadQuery("$", "The JSON value could not be converted.") from None

    def paged(request: Request, records: Sequence[T], to_row: Callable[[T], dict[str, Any]],
              fields: Mapping[str, str], to_json: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Response:
        query = dict(request.query_params)
        page = to_int(ci_get(query, "page", "1"))
        size = to_int(ci_get(query, "pageSize", str(state.default_page_size)))
        errors = {}
        if page is None or page < 1:
            errors["Page"] = ["The field Page must be between 1 and 2147483647."]
        if size is None or size < 1:
            errors["PageSize"] = ["The field PageSize must be between 1 and 2147483647."]
        if errors:
            return problem(400, errors=errors)
        assert page is not None and size is not None
        size = min(size, state.max_page_size)
        start = (page - 1) * size
        filters, sorts = ci_get(query, "filters"), ci_get(query, "sorts")
        if filters or sorts:
            rows = apply_sieve([to_row(r) for r in records], filters, sorts, fields)
            total, window = len(rows), rows[start : start + size]
        else:  # no Sieve: only the requested window is materialised
            total, window = len(records), [to_row(r) for r in records[start : start + size]]
        return JSONResponse({
            "pageIndex": page,
            "totalPages": math.ceil(total / size),
            "totalRecords": total,
            "items": [to_json(r) for r in window],
        })

    def campaign_or_404(cid: str) -> CampaignRec | Response:
        rec = state.campaigns.get(cid.lower())
        return rec if rec is not None else problem(404)

    # ----------------------------------------------------------- handlers
    async def list_campaigns(request: Request) -> Response:
        now = state.now()
        return paged(request, list(state.campaigns.values()), lambda c: state.campaign_row(c, now),
                     CAMPAIGN_FIELDS, state.campaign_json)

    async def get_campaign(request: Request, ident: str) -> Response:
        rec = campaign_or_404(ident)
        if isinstance(rec, Response):
            return rec
        return JSONResponse(state.campaign_json(state.campaign_row(rec, state.now())))

    async def list_contacts(request: Request, ident: str) -> Response:
        rec = campaign_or_404(ident)
        if isinstance(rec, Response):
            return rec
        return paged(request, rec.contacts, lambda c: {k: c.get(k) for k in CONTACT_FIELDS}, CONTACT_FIELDS, dict)

    async def create_campaign(request: Request, ignore: bool | None = None) -> Response:
        body = await read_json(request)
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
            return problem(400, errors=errors)
        rec = CampaignRec(id=uuid.uuid4().hex[:12], contacts=contacts, **fields)
        state.add_campaign(rec)
        return JSONResponse(rec.id, status_code=201)

    async def update_campaign(request: Request, ident: str) -> Response:
        rec = campaign_or_404(ident)
        if isinstance(rec, Response):
            return rec
        fields, errors = _campaign_fields(await read_json(request))
        if errors:
            return problem(400, errors=errors)
        for key, value in fields.items():
            setattr(rec, key, value)
        if not rec.materialised and rec.seeded_status is None:
            state.pending.add(rec.id)
            state._spawn(state._start_later(rec.id, max(0.0, (rec.start - state.now()).total_seconds())))
        return Response(status_code=204)

    async def delete_campaign(request: Request, ident: str) -> Response:
        rec = campaign_or_404(ident)
        if isinstance(rec, Response):
            return rec
        del state.campaigns[rec.id]
        state.pending.discard(rec.id)
        return Response(status_code=204)

    async def post_campaign_segment(request: Request, ident: str) -> Response:
        if ident.lower() in ("true", "false"):  # POST /api/campaigns/{ignoreInvalidPhoneNumbers}
            return await create_campaign(request, ignore=ident.lower() == "true")
        if (await request.body()).strip():  # documented update form
            return await update_campaign(request, ident)
        return await delete_campaign(request, ident)  # documented delete form

    async def list_messages(request: Request) -> Response:
        now = state.now()
        return paged(request, list(state.messages.values()), lambda m: state.sms_row(m, now), SMS_FIELDS,
                     state.sms_json)

    async def get_message(request: Request, ident: str) -> Response:
        rec = state.find_sms(ident)
        if rec is None:
            return problem(404)
        return JSONResponse(state.sms_json(state.sms_row(rec, state.now())))

    async def send_message(request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return problem(400, errors={"$": ["A JSON object is required."]})
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
            return problem(400, errors=errors)
        rec = state.add_sms(str(phone), sender or "DynamicM", str(message), None)
        return JSONResponse(rec.new_id, status_code=201)

    segment = r"/(?P<id>[^/]+)"
    table: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Response]]]] = [
        ("GET", re.compile(r"/api/campaigns", re.I), list_campaigns),
        ("POST", re.compile(r"/api/campaigns", re.I), create_campaign),
        ("GET", re.compile(r"/api/campaigns" + segment, re.I), get_campaign),
        ("PUT", re.compile(r"/api/campaigns" + segment, re.I), update_campaign),
        ("DELETE", re.compile(r"/api/campaigns" + segment, re.I), delete_campaign),
        ("POST", re.compile(r"/api/campaigns" + segment, re.I), post_campaign_segment),
        ("GET", re.compile(r"/api/campaigns" + segment + r"/contacts", re.I), list_contacts),
        ("GET", re.compile(r"/api/smsmessages", re.I), list_messages),
        ("POST", re.compile(r"/api/smsmessages", re.I), send_message),
        ("GET", re.compile(r"/api/smsmessages" + segment, re.I), get_message),
    ]

    async def dispatch(request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        allowed = []
        for method, pattern, handler in table:
            match = pattern.fullmatch(path)
            if not match:
                continue
            if method != request.method and not (method == "GET" and request.method == "HEAD"):
                allowed.append(method)
                continue
            if not authorised(request):
                return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
            state.advance()
            args = [match.group("id")] if "id" in match.groupdict() else []
            try:
                return await handler(request, *args)
            except _BadQuery as exc:
                return problem(400, errors={exc.key: [exc.message]})
        if allowed:
            return problem(405, headers={"Allow": ", ".join(sorted(set(allowed)))})
        return problem(404)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.emulator = getattr(app.state, "emulator", None)
        yield
        await state.aclose()

    inner = Starlette(
        routes=[Route("/{path:path}", dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])],
        lifespan=lifespan,
    )
    app = emulator_app(inner, error_body=lambda status, message: {
        "type": _PROBLEM_TYPES.get(status, "about:blank"), "title": message, "status": status,
        "traceId": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00",
    }, vendor=state)
    state.emulator = inner.state.emulator
    return app


# ------------------------------------------------------------- validation


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


def _seed(state: DMState, count: int) -> None:
    base = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
    for i in range(count):
        cid = f"seed{i:08x}"
        contacts = [
            {"id": f"{cid}c{j}", "phoneNumber": f"0791234{(i * 2 + j) % 10000:04d}", "name": f"Contact {j}",
             "custom1": str(i), "custom2": None}
            for j in range(2)
        ]
        state.campaigns[cid] = CampaignRec(
            id=cid, start=base + timedelta(minutes=i), sender="SEED", message=f"Seeded campaign {i}",
            opt_out_link_id=0, track_link_url=None, contacts=contacts,
            seeded_status=_SEED_STATUSES[i % len(_SEED_STATUSES)], materialised=True,
        )
