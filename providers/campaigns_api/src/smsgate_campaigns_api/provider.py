"""Adapter for the Dynamic Messaging (UK) "Campaigns REST API" (sans-I/O).

Endpoints (docs.dynamicmessaging.co.uk, SMS_Platform pages; paths are
case-insensitive ASP.NET routes)::

    GET    /api/Campaigns                      paged, Sieve filters/sorts   list_campaigns
    GET    /api/Campaigns/{id}                                              get_campaign
    GET    /api/Campaigns/{id}/Contacts        paged                        list_campaign_contacts
    POST   /api/Campaigns                      -> 201 "id"                  create_campaign
    POST   /api/campaigns/{true|false}         ignoreInvalidPhoneNumbers    create_campaign(ignore_...)
    PUT    /api/Campaigns/{id}  (doc: POST)    -> 204 / 404                 update_campaign
    DELETE /api/Campaigns/{id}  (doc: POST)    -> 204                       delete_campaign
    POST   /api/SMSMessages                    -> 201 GUID                  send
    GET    /api/SMSMessages                    paged                        list_messages, statistics
    GET    /api/SMSMessages/{id}                                            get_message, status

Authentication is the API key as ``Authorization: Bearer <key>`` (default), an
``api-key`` header or an ``api-key`` query parameter (option ``auth``).
Delivery reports arrive as JSON callbacks (``webHookType`` 1) without a signature;
see :meth:`CampaignsApiProvider.parse_webhook`.
"""

from __future__ import annotations

import json as _json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final, TypeVar, cast
from urllib.parse import quote, urlsplit

import httpx
import phonenumbers

from smsgate import phone as phonelib
from smsgate.errors import (
    ConfigError,
    InvalidPhoneNumber,
    MalformedResponse,
    ProviderError,
    ResourceNotFound,
    TemplateError,
    ValidationError,
)
from smsgate.models import (
    Campaign,
    CampaignStatus,
    Contact,
    DeliveryReport,
    OutboundMessage,
    ProviderCheck,
    SendResult,
    Stats,
    Status,
    utcnow,
)
from smsgate.provider import Capabilities, Operation, Page, Paged, Provider, ProviderSettings
from smsgate_campaigns_api.errors import CampaignRejected, ContactError, WebhookRejected, WebhookTokenRejected
from smsgate_campaigns_api.models import CampaignsApiOptions, SmsMessage
from smsgate_campaigns_api.sieve import Filter, Sort, build_filters, build_sorts
from smsgate_campaigns_api.vendor import (
    DMSmsStatus,
    ci_get,
    format_datetime,
    neutral_campaign_status,
    neutral_sms_status,
    parse_datetime,
    to_decimal,
    to_int,
)

__all__ = ["CampaignsApiProvider"]

T = TypeVar("T")

FilterArg = Iterable[Filter | str] | Filter | str | None
SortArg = Iterable[Sort | str] | Sort | str | None

_ID_TEXT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")
_GUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_CONTACT_KEY_RE: Final = re.compile(r"\$?\.?contacts\[(\d+)\](?:\.([A-Za-z0-9_]+))?", re.IGNORECASE)
_TEMPLATE_TOKEN_RE: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_MAX_LISTED_CONTACTS: Final = 10

CAMPAIGNS: Final = "/api/Campaigns"
MESSAGES: Final = "/api/SMSMessages"


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


#: How much earlier than smsgate logged a message the vendor's clock may date it (clock skew).
SENT_LOOKUP_SKEW = timedelta(minutes=10)


def to_aware(value: datetime) -> datetime:
    """``value`` with a time zone (the vendor's naive times are UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class CampaignsApiProvider(Provider):
    """Dynamic Messaging "Campaigns REST API" adapter (UK marketing SMS).

    Credentials: ``api_key`` (required), ``webhook_token`` (optional shared secret
    expected in the callback URL). Options: :class:`CampaignsApiOptions`.

    Neutral operations: ``send``, ``status``, ``parse_webhook``,
    ``create_campaign``, ``get_campaign``, ``statistics`` (computed from
    ``/api/SMSMessages``). Vendor operations: ``list_campaigns``,
    ``list_campaign_contacts``, ``update_campaign``, ``delete_campaign``,
    ``list_messages``, ``get_message``. Templates, contact lists, bulk sends,
    opt-out sync and scheduled single messages raise ``Unsupported``.
    """

    name = "campaigns_api"
    default_base_url = "https://api.sms.dynamicmessaging.co.uk"
    capabilities = Capabilities(
        send=True,
        bulk=False,
        max_batch=1,
        native_campaigns=True,
        templates=False,
        contact_lists=False,
        media=False,
        delivery_reports=True,
        status_lookup=True,
        client_reference=False,
        sent_lookup=True,
        optout_sync=False,
        statistics=True,
    )
    options_model = CampaignsApiOptions

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        if not self.settings.secret("api_key"):
            raise ConfigError(
                f"provider {self.instance_name!r} (campaigns_api): credential 'api_key' is required"
            )
        self.opts = cast(CampaignsApiOptions, self.options)
        self._token_pattern: re.Pattern[str] | None = None
        # +44 also covers GG, JE and IM, which are dialled nationally like GB numbers
        self._home_prefix = f"+{phonenumbers.country_code_for_region(self.opts.home_region)}"

    # ------------------------------------------------------------- plumbing

    def authenticate(self, request: httpx.Request) -> None:
        """Add the API key as a Bearer token, an ``api-key`` header or query parameter."""
        key = self.settings.secret("api_key") or ""
        if self.opts.auth == "bearer":
            request.headers["Authorization"] = f"Bearer {key}"
        elif self.opts.auth == "header":
            request.headers["api-key"] = key
        else:
            request.url = request.url.copy_merge_params({"api-key": key})

    def error_message(self, response: httpx.Response) -> str:
        """Read ASP.NET ProblemDetails (``title``, ``detail``, ``errors``) or a text body."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            text = response.text.strip()
            return text[:200] if text else response.reason_phrase
        if isinstance(body, str):
            return body[:200]
        if not isinstance(body, dict):
            return _json.dumps(body)[:300]
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
        return " - ".join(parts) if parts else _json.dumps(body)[:300]

    def _sender(self, given: str | None, what: str) -> str:
        """``given``, else the instance's sender; :class:`ConfigError` before any request if neither.

        Both documented bodies (``POST /api/SMSMessages``, ``/api/Campaigns``) carry ``sender``.
        """
        sender = given or self.settings.sender
        if not sender:
            raise ConfigError(
                f"provider {self.instance_name!r} (campaigns_api): {what} needs a sender (the documented "
                f"request body has 'sender') and none is set; set sender = \"...\" on the provider "
                f"instance ([tenants.<tenant>.providers.{self.instance_name}]) or the tenant, or give "
                f"the {what} its own sender"
            )
        return sender

    def _malformed(self, what: str, response: httpx.Response) -> MalformedResponse:
        return self.malformed(what, response)

    def _object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        data = self.json(response)
        if not isinstance(data, dict):
            raise self._malformed(f"expected a JSON object ({what}), got {type(data).__name__}", response)
        return data

    def _read_id(self, response: httpx.Response, what: str) -> str:
        """The id in a 201 body: a JSON string (``"abc123"``), a bare id/GUID, or an object with id."""
        text = response.text.strip()
        data: Any
        try:
            data = _json.loads(text) if text else None
        except ValueError:
            if _ID_TEXT_RE.fullmatch(text):
                return text
            raise self._malformed(f"expected the new {what} id, got an unreadable body", response) from None
        if isinstance(data, bool):
            data = None
        if isinstance(data, (str, int)) and str(data).strip():
            return str(data).strip()
        if isinstance(data, dict):
            errors = ci_get(data, "errors")
            if errors:
                raise self.provider_error(f"{what} rejected: {self.error_message(response)}", response)
            for key in ("id", "newId"):
                value = ci_get(data, key)
                if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                    return str(value).strip()
        raise self._malformed(f"expected the new {what} id, got {text[:60]!r}", response)

    # ---------------------------------------------------------------- numbers

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

    # ------------------------------------------------------------------ pages

    def _paged(
        self,
        path: str,
        convert: Callable[[dict[str, Any]], T],
        filters: FilterArg,
        sorts: SortArg,
        page_size: int | None,
    ) -> Paged[T]:
        size = page_size or self.opts.page_size
        if size < 1:
            raise ValidationError("page_size must be at least 1", field="page_size", value=page_size)
        params: dict[str, Any] = {
            "filters": build_filters(filters),
            "sorts": build_sorts(sorts),
            "page": 1,
            "pageSize": size,
        }

        def parse(request: httpx.Request, response: httpx.Response) -> Page[T]:
            requested = to_int(request.url.params.get("page")) or 1
            items_raw, total_pages, total = self._envelope(self.json(response), response)
            items = []
            for i, item in enumerate(items_raw):
                if not isinstance(item, dict):
                    raise self._malformed(f"item {i} of page {requested} is not an object", response)
                items.append(convert(item))
            if total_pages is not None:
                more = requested < total_pages
            elif total is not None:
                more = requested * size < total
            else:
                more = len(items) >= size
            next_request = None
            if items and more:
                next_request = self.request("GET", path, params={**params, "page": requested + 1})
            return Page(items=items, next_request=next_request, total=total)

        return Paged(self, self.request("GET", path, params=params), parse)

    def _envelope(self, data: Any, response: httpx.Response) -> tuple[list[Any], int | None, int | None]:
        """``(items, totalPages, totalRecords)`` of a paged body, tolerating the docs' ``[...]`` wrapper."""
        if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) and ci_get(data[0], "items") is not None:
            data = data[0]
        if isinstance(data, list):
            return data, None, None
        if not isinstance(data, dict):
            raise self._malformed(f"expected a paged object, got {type(data).__name__}", response)
        items = ci_get(data, "items")
        if not isinstance(items, list):
            raise self._malformed("paged body has no 'items' list", response)
        return items, to_int(ci_get(data, "totalPages")), to_int(ci_get(data, "totalRecords"))

    # ----------------------------------------------------------- conversions

    def _placeholder_map(self, campaign: Campaign) -> dict[str, str]:
        """Neutral placeholder / contact field -> vendor field (name, custom1, custom2)."""
        custom = self._option(campaign, "custom_fields", "customFields")
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

    def vendor_text(self, text: str, placeholders: Mapping[str, str] | None = None) -> str:
        """Neutral ``{name}``-style text -> vendor text with merge tokens (``{Name}``).

        ``placeholders`` maps neutral names to ``name``/``custom1``/``custom2``
        (default: the names themselves). ``{{``/``}}`` become literal braces.
        Raises :class:`~smsgate.errors.TemplateError` for any other placeholder.
        """
        mapping = dict(placeholders or {"name": "name", "custom1": "custom1", "custom2": "custom2"})
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
    def _option(campaign: Campaign, *keys: str) -> Any:
        for key in keys:
            if key in campaign.provider_options:
                return campaign.provider_options[key]
        return None

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
            provider=self.instance_name,
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

    def _campaign_body(self, campaign: Campaign, *, with_contacts: bool) -> dict[str, Any]:
        if campaign.text is None:
            raise ValidationError(
                "a campaign needs text (this API has no templates)", field="text", location="campaign"
            )
        placeholders = self._placeholder_map(campaign)
        message = self.vendor_text(campaign.text, placeholders)
        start = campaign.start_at or utcnow()
        body: dict[str, Any] = {"startDateTime": format_datetime(start)}
        body["sender"] = self._sender(campaign.sender, "a campaign")
        body["message"] = message
        opt_out = self._option(campaign, "optOutLinkId", "opt_out_link_id")
        if opt_out is not None:
            number = to_int(opt_out)
            if number is None:
                raise ValidationError("optOutLinkId must be an integer", field="optOutLinkId", value=opt_out)
            body["optOutLinkId"] = number
        track = self._option(campaign, "trackLinkUrl", "track_link_url")
        if track is not None:
            if not isinstance(track, str):
                raise ValidationError("trackLinkUrl must be a string", field="trackLinkUrl", value=track)
            body["trackLinkUrl"] = track
        if with_contacts:
            body["contacts"] = self._contacts_body(campaign, placeholders)
        return body

    def _contacts_body(self, campaign: Campaign, placeholders: Mapping[str, str]) -> list[dict[str, Any]]:
        if not campaign.contacts:
            raise ValidationError(
                "a campaign needs contacts: this API takes the recipients inline",
                field="contacts",
                location="campaign",
            )
        used = self._used_placeholders(campaign.text or "")
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

    @staticmethod
    def _used_placeholders(text: str) -> set[str]:
        return {m.group(1) for m in _TEMPLATE_TOKEN_RE.finditer(text) if m.group(1)}

    def _campaign_rejected(
        self, response: httpx.Response, campaign: Campaign, body: Mapping[str, Any]
    ) -> ProviderError:
        """A 400 ProblemDetails -> :class:`CampaignRejected` listing each bad contact."""
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        errors = ci_get(data, "errors") if isinstance(data, dict) else None
        if not isinstance(errors, dict):
            try:
                self.raise_for_status(response)
            except ProviderError as exc:
                return exc
            return self.provider_error("campaign rejected", response)  # pragma: no cover - 400 always raises
        sent = body.get("contacts") or []
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
            phone = campaign.contacts[index].phone if index < len(campaign.contacts) else None
            sent_as = sent[index].get("phoneNumber") if index < len(sent) else None
            contacts.append(ContactError(index=index, phone=phone, reason="; ".join(texts), field=field,
                                         sent_as=sent_as))
        title = ci_get(data, "title") if isinstance(data, dict) else None
        parts = [str(title) if title else "validation failed"]
        if contacts:
            listed = "; ".join(str(c) for c in contacts[:_MAX_LISTED_CONTACTS])
            more = len(contacts) - _MAX_LISTED_CONTACTS
            parts.append(f"{len(contacts)} invalid contact(s): {listed}" + (f"; and {more} more" if more > 0 else ""))
        if field_errors:
            parts.append("; ".join(f"{k}: {' '.join(v)}" for k, v in field_errors.items()))
        where = f"{response.request.method} {response.request.url.path}"
        return CampaignRejected(
            f"{where}: campaign rejected: {' - '.join(parts)}",
            contacts=contacts,
            field_errors=field_errors,
            provider=self.instance_name,
            status_code=response.status_code,
            body=self._safe_body(response),
        )

    # ------------------------------------------------------------- sending

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """``POST /api/SMSMessages`` ``{message, sender, phoneNumber}`` -> 201 GUID.

        ``sender`` is the message's, else the instance's; with neither, :class:`ConfigError`
        is raised before any request.
        """
        if msg.has_media:
            raise self.unsupported("media attachments")
        body: dict[str, Any] = {"message": msg.text, "sender": self._sender(msg.sender, "a message")}
        body["phoneNumber"] = self.vendor_phone(msg.to)
        response = yield from self.call_ok(self.request("POST", MESSAGES, json=body))
        message_id = self._read_id(response, "message")
        return SendResult(
            message_id=msg.message_id,
            to=msg.to,
            status=Status.SUBMITTED,
            provider=self.instance_name,
            provider_message_id=message_id,
        )

    def get_message(self, message_id: str) -> Operation[SmsMessage]:
        """``GET /api/SMSMessages/{id}`` (the GUID from ``send`` or the int ``id``).

        If the by-id route does not know a GUID, the listing is asked with the
        Sieve filter ``newId==<guid>`` before giving up with ``ResourceNotFound``.
        """
        path = f"{MESSAGES}/{quote(message_id, safe='')}"
        try:
            response = yield from self.call_ok(self.request("GET", path))
        except ResourceNotFound as exc:
            if not _GUID_RE.fullmatch(message_id):
                raise
            paged = self.list_messages(filters=[Filter("newId", "==", message_id)], page_size=1)
            page = yield from paged.fetch(paged.first)
            if not page.items:
                raise exc from None
            return page.items[0]
        return self.message_from_vendor(self._object(response, "an SMS message"))

    def find_sent(self, msg: OutboundMessage, since: datetime) -> Operation[DeliveryReport | None]:
        """Whether the vendor received ``msg``: its SMS listing searched by number, text and time.

        The vendor keeps no client reference, so a message is recognised by what it
        lists: the newest SMS to the number (``filters=phoneNumber==...``,
        ``sorts=-dateCreated``, one page of 100) whose text is ``msg.text`` and that
        was created at ``since`` (less :data:`SENT_LOOKUP_SKEW` for clock skew) or later.
        Two identical texts to one number within that window cannot be told apart.
        """
        listing = self.list_messages(filters=[Filter("phoneNumber", "==", self.vendor_phone(msg.to))],
                                     sorts=[Sort("dateCreated", descending=True)], page_size=100)
        page = yield from listing.fetch(listing.first)
        earliest = to_aware(since) - SENT_LOOKUP_SKEW
        for item in page.items:
            created = item.date_created
            if item.message == msg.text and (created is None or to_aware(created) >= earliest):
                return DeliveryReport(provider=self.instance_name, provider_message_id=item.new_id or str(item.id),
                                      to=msg.to, status=item.status, raw_status=item.raw_status,
                                      occurred_at=created or utcnow())
        return None

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """Look up a sent message: its vendor status, cost (``price``) and parts (``smsCount``)."""
        if not result.provider_message_id:
            raise ValidationError("the result has no provider message id to look up", field="provider_message_id")
        message = yield from self.get_message(result.provider_message_id)
        occurred = message.date_received or message.date_modified or message.date_created or utcnow()
        return DeliveryReport(
            provider=self.instance_name,
            provider_message_id=result.provider_message_id,
            to=message.phone or result.to,
            status=message.status,
            raw_status=message.raw_status,
            occurred_at=occurred,
            cost=message.price,
            segments=message.sms_count,
            raw=message.raw,
        )

    def list_messages(
        self, *, filters: FilterArg = None, sorts: SortArg = None, page_size: int | None = None
    ) -> Paged[SmsMessage]:
        """``GET /api/SMSMessages``: every SMS of the account, lazily, page by page."""
        return self._paged(MESSAGES, self.message_from_vendor, filters, sorts, page_size)

    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """``GET /api/SMSMessages`` (one row): the API key is accepted. The API lists no
        sender IDs, so the sender cannot be checked."""
        paged = self.list_messages(page_size=1)
        yield from paged.fetch(paged.first)
        return ProviderCheck(endpoint=f"GET {MESSAGES}", sender=sender or self.settings.sender,
                             sender_detail="the Campaigns REST API lists no sender IDs")

    # ------------------------------------------------------------ webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """Parse a delivery-report callback (``webHookType`` 1; voice callbacks are ignored).

        Keys are read case-insensitively (the vendor mixes ``Id`` and ``clientId``).
        The vendor signs nothing, so the ``webhook_token`` credential is required
        (option ``webhook_token_required``, default true): the token must arrive in
        the callback URL's query (``?token=...``) or the ``X-Webhook-Token`` header,
        else :class:`~smsgate_campaigns_api.WebhookTokenRejected` (an
        :class:`~smsgate.errors.AuthFailed`); without a configured token a
        :class:`~smsgate.errors.ConfigError` is raised and nothing is applied. This
        hook only sees headers, so the web layer must pass the query string in the
        ``X-Smsgate-Query`` header; :meth:`parse_webhook_request` takes the full URL
        instead.
        """
        self._verify_token(headers)
        return self._parse_webhook_body(body)

    def parse_webhook_request(self, url: str, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """:meth:`parse_webhook` for a web layer that has the full callback URL."""
        query = urlsplit(url).query
        merged = {k.lower(): v for k, v in headers.items()}
        merged["x-smsgate-query"] = query
        return self.parse_webhook(merged, body)

    def _verify_token(self, headers: Mapping[str, str]) -> None:
        self.check_webhook_token(headers, param=self.opts.webhook_token_param,
                                 required=self.opts.webhook_token_required, error=WebhookTokenRejected,
                                 hint=" (or set options.webhook_token_required = false)")

    def _parse_webhook_body(self, body: bytes) -> list[DeliveryReport]:
        where = f"{self.instance_name} webhook"
        try:
            data = _json.loads(body)
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
            reports.append(self._report_from_webhook(payload, f"{where} item {i}"))
        return reports

    def _report_from_webhook(self, data: Mapping[str, Any], where: str) -> DeliveryReport:
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
            provider=self.instance_name,
            provider_message_id=str(ident).strip(),
            to=self.neutral_phone(ci_get(data, "phoneNumber")),
            status=status,
            raw_status=raw_status,
            occurred_at=occurred or utcnow(),
            cost=to_decimal(ci_get(data, "price")),
            segments=to_int(ci_get(data, "parts")),
            raw=dict(data),
        )

    # ----------------------------------------------------------- campaigns

    def create_campaign(
        self, campaign: Campaign, *, ignore_invalid_phone_numbers: bool | None = None
    ) -> Operation[Campaign]:
        """Create a campaign: ``POST /api/Campaigns`` (or ``/api/campaigns/{true|false}``).

        ``ignore_invalid_phone_numbers`` (else ``provider_options
        ['ignoreInvalidPhoneNumbers']``, else the instance option): ``True`` lets
        the vendor drop invalid numbers, ``False`` makes it validate them; its
        per-contact errors raise :class:`CampaignRejected`. Returns the campaign
        with its vendor id (read back from the vendor unless
        ``fetch_after_create`` is off).
        """
        flag = ignore_invalid_phone_numbers
        if flag is None:
            option = self._option(campaign, "ignoreInvalidPhoneNumbers", "ignore_invalid_phone_numbers")
            flag = option if option is not None else self.opts.ignore_invalid_phone_numbers
        if flag is not None and not isinstance(flag, bool):
            raise ValidationError("ignoreInvalidPhoneNumbers must be a boolean", field="ignoreInvalidPhoneNumbers",
                                  value=flag)
        body = self._campaign_body(campaign, with_contacts=True)
        path = CAMPAIGNS if flag is None else f"/api/campaigns/{'true' if flag else 'false'}"
        response = yield from self.call(self.request("POST", path, json=body))
        if response.status_code == 400:
            raise self._campaign_rejected(response, campaign, body)
        self.raise_for_status(response)
        campaign_id = self._read_id(response, "campaign")
        created = campaign.model_copy(update={
            "id": campaign_id,
            "status": CampaignStatus.SCHEDULED,
            "raw_status": None,
            "provider": self.instance_name,
        })
        if not self.opts.fetch_after_create:
            return created
        try:
            fetched = yield from self.get_campaign(campaign_id)
        except ProviderError:
            return created  # created for sure; never lose its id over a failed read-back
        return fetched.model_copy(update={"contacts": list(campaign.contacts),
                                          "contact_list_id": campaign.contact_list_id,
                                          "name": campaign.name})

    def get_campaign(self, campaign_id: str) -> Operation[Campaign]:
        """``GET /api/Campaigns/{id}`` -> the campaign's state (contacts: :meth:`list_campaign_contacts`)."""
        response = yield from self.call_ok(self.request("GET", f"{CAMPAIGNS}/{quote(campaign_id, safe='')}"))
        return self.campaign_from_vendor(self._object(response, "a campaign"))

    def list_campaigns(
        self, *, filters: FilterArg = None, sorts: SortArg = None, page_size: int | None = None
    ) -> Paged[Campaign]:
        """``GET /api/Campaigns``: every campaign, lazily (``tenant.iterate(instance, ...)``).

        ``filters``/``sorts`` are :class:`Filter`/:class:`Sort` objects (or raw Sieve strings).
        """
        return self._paged(CAMPAIGNS, self.campaign_from_vendor, filters, sorts, page_size)

    def list_campaign_contacts(
        self, campaign_id: str, *, filters: FilterArg = None, sorts: SortArg = None, page_size: int | None = None
    ) -> Paged[Contact]:
        """``GET /api/Campaigns/{id}/Contacts``: a campaign's contacts, lazily."""
        path = f"{CAMPAIGNS}/{quote(campaign_id, safe='')}/Contacts"
        return self._paged(path, self.contact_from_vendor, filters, sorts, page_size)

    def update_campaign(self, campaign: Campaign) -> Operation[None]:
        """Replace a campaign's start time, sender, text, opt-out link and tracked link.

        ``PUT /api/Campaigns/{id}`` (``POST`` with ``write_verbs="documented"``);
        204 on success, :class:`~smsgate.errors.ResourceNotFound` on 404. Contacts
        cannot be changed through this endpoint.
        """
        if not campaign.id:
            raise ValidationError("update needs the campaign's id", field="id", location="campaign")
        if campaign.start_at is None:
            raise ValidationError("update needs start_at (the vendor replaces startDateTime)", field="start_at",
                                  location="campaign")
        body = self._campaign_body(campaign, with_contacts=False)
        method = "PUT" if self.opts.write_verbs == "rest" else "POST"
        request = self.request(method, f"{CAMPAIGNS}/{quote(campaign.id, safe='')}", json=body)
        response = yield from self.call(request)
        if response.status_code == 400:
            raise self._campaign_rejected(response, campaign, body)
        self.raise_for_status(response)

    def delete_campaign(self, campaign_id: str) -> Operation[None]:
        """``DELETE /api/Campaigns/{id}`` (``POST`` without body with ``write_verbs="documented"``)."""
        method = "DELETE" if self.opts.write_verbs == "rest" else "POST"
        yield from self.call_ok(self.request(method, f"{CAMPAIGNS}/{quote(campaign_id, safe='')}"))

    # ---------------------------------------------------------- statistics

    def statistics(self, **filters: Any) -> Operation[Stats]:
        """Count messages by status from ``GET /api/SMSMessages`` (walked page by page).

        Keyword filters: ``campaign_id`` (Sieve ``campaignId==``), ``since`` /
        ``until`` (``dateCreated>=`` / ``<``), ``filters`` (more :class:`Filter`
        terms), ``page_size``. ``cost`` is the sum of ``price``; each message is
        counted once, by its current status (``34 RejectedInvalidRecipient`` under
        ``invalid``), so the counters add up to ``total``.
        """
        allowed = {"campaign_id", "since", "until", "filters", "page_size"}
        unknown = set(filters) - allowed
        if unknown:
            raise ValidationError(
                f"unknown statistics filter(s) {sorted(unknown)}; accepted: {sorted(allowed)}", field="filters"
            )
        terms: list[Filter | str] = []
        if filters.get("campaign_id") is not None:
            terms.append(Filter("campaignId", "==", str(filters["campaign_id"])))
        if filters.get("since") is not None:
            terms.append(Filter("dateCreated", ">=", filters["since"]))
        if filters.get("until") is not None:
            terms.append(Filter("dateCreated", "<", filters["until"]))
        extra = filters.get("filters")
        if extra is not None:
            terms.extend([extra] if isinstance(extra, (Filter, str)) else list(extra))
        paged = self.list_messages(filters=terms or None, page_size=filters.get("page_size"))
        stats = Stats(provider=self.instance_name)
        cost = Decimal(0)
        priced = False
        by_raw: dict[str, int] = {}
        count = 0

        def tally(page: Page[SmsMessage]) -> None:
            nonlocal count, cost, priced
            for message in page.items:
                count += 1
                by_raw[message.raw_status or "?"] = by_raw.get(message.raw_status or "?", 0) + 1
                if message.price is not None:
                    cost += message.price
                    priced = True
                _count(stats, message)

        yield from paged.walk(tally)
        stats.cost = cost if priced else None
        stats.raw = {"messages": count, "by_status_code": by_raw}
        return stats


def _count(stats: Stats, message: SmsMessage) -> None:
    """Count one message under exactly one counter (they add up to ``total``)."""
    stats.total += 1
    if message.raw_status == str(int(DMSmsStatus.REJECTED_INVALID_RECIPIENT)):
        stats.invalid += 1
        return
    counter = {
        Status.QUEUED: "queued",
        Status.SUBMITTED: "submitted",
        Status.SENT: "sent",
        Status.DELIVERED: "delivered",
        Status.UNDELIVERED: "undelivered",
        Status.EXPIRED: "expired",
        Status.FAILED: "failed",
        Status.REJECTED: "rejected",
    }.get(message.status, "unknown")
    setattr(stats, counter, getattr(stats, counter) + 1)
