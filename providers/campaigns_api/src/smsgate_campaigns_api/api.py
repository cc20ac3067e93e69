"""The Campaigns REST API's endpoints, one method each: the request as documented, the answer read.

Endpoints (docs.dynamicmessaging.co.uk, SMS_Platform pages; paths are case-insensitive
ASP.NET routes)::

    GET    /api/Campaigns                      paged, Sieve filters/sorts   list_campaigns
    GET    /api/Campaigns/{id}                                              get_campaign
    GET    /api/Campaigns/{id}/Contacts        paged                        list_campaign_contacts
    POST   /api/Campaigns                      -> 201 "id"                  create_campaign
    POST   /api/campaigns/{true|false}         ignoreInvalidPhoneNumbers    create_campaign(ignore_invalid=)
    PUT    /api/Campaigns/{id}  (doc: POST)    -> 204 / 404                 update_campaign
    DELETE /api/Campaigns/{id}  (doc: POST)    -> 204                       delete_campaign
    POST   /api/SMSMessages                    -> 201 GUID                  send_message
    GET    /api/SMSMessages                    paged                        list_messages
    GET    /api/SMSMessages/{id}                                            get_message

Each endpoint method is an operation (a generator yielding requests, see
:mod:`smsgate.provider`) or a :class:`~smsgate.provider.Paged` listing, and returns the
models :class:`~smsgate_campaigns_api.wire.Codec` reads. Requests go through the provider
(``call_ok``: credentials, typed errors for non-2xx); malformed answers are the provider's
``malformed`` / ``json_object`` / ``expect_rows`` errors. Nothing here chooses between
endpoints or resolves defaults: that is :mod:`smsgate_campaigns_api.provider`'s job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx

from smsgate.errors import ProviderError, ValidationError, request_where
from smsgate.models import Campaign, Contact
from smsgate.provider import Operation, Page, Paged, Provider
from smsgate_campaigns_api import wire
from smsgate_campaigns_api.options import CampaignsApiOptions
from smsgate_campaigns_api.sieve import FilterArg, SortArg, build_filters, build_sorts
from smsgate_campaigns_api.wire import CampaignRejected, Codec, SmsMessage, ci_get, to_int

__all__ = ["CAMPAIGNS", "MESSAGES", "CampaignsApi"]

T = TypeVar("T")

CAMPAIGNS: Final = "/api/Campaigns"
MESSAGES: Final = "/api/SMSMessages"

_ID_TEXT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")


def _segment(value: str) -> str:
    """``value`` as one path segment (URL-quoted, ``/`` included)."""
    return quote(value, safe="")


class CampaignsApi:
    """The Campaigns REST API as seen from one provider instance."""

    def __init__(self, provider: Provider, options: CampaignsApiOptions, codec: Codec) -> None:
        self.provider = provider
        self.opts = options
        self.codec = codec

    # ============================================================ listings

    def listing(
        self,
        path: str,
        convert: Callable[[dict[str, Any]], T],
        filters: FilterArg,
        sorts: SortArg,
        page_size: int | None,
    ) -> Paged[T]:
        """A Sieve listing ``?filters=&sorts=&page=&pageSize=``, walked page by page.

        The next page is ``page + 1`` while ``page < totalPages`` (else ``totalRecords``
        says whether there is more, else whether a full page came back); the page index is
        1-based [DOC].
        """
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
            rows, total_pages, total = self.read_page(response, requested)
            items = [convert(row) for row in rows]
            if total_pages is not None:
                more = requested < total_pages
            elif total is not None:
                more = requested * size < total
            else:
                more = len(items) >= size
            next_request = None
            if items and more:
                next_request = self.provider.request("GET", path, params={**params, "page": requested + 1})
            return Page(items=items, next_request=next_request, total=total)

        return Paged(self.provider, self.provider.request("GET", path, params=params), parse)

    def read_page(
        self, response: httpx.Response, page: int
    ) -> tuple[list[dict[str, Any]], int | None, int | None]:
        """``(items, totalPages, totalRecords)`` of a listing answer.

        The documented page object ``{pageIndex, totalPages, totalRecords, items}``, the
        docs' example wrapped in ``[...]``, or a bare array of items (one page).
        """
        data = self.provider.json(response)
        if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) and ci_get(data[0], "items") is not None:
            data = data[0]
        if isinstance(data, list):
            return self.provider.expect_rows(data, response, f"page {page}"), None, None
        if not isinstance(data, dict):
            raise self.provider.malformed(f"expected a paged object, got {type(data).__name__}", response)
        items = ci_get(data, "items")
        if not isinstance(items, list):
            raise self.provider.malformed("paged body has no 'items' list", response)
        rows = self.provider.expect_rows(items, response, f"page {page} items")
        return rows, to_int(ci_get(data, "totalPages")), to_int(ci_get(data, "totalRecords"))

    # ============================================================ /api/Campaigns

    def list_campaigns(self, filters: FilterArg, sorts: SortArg, page_size: int | None) -> Paged[Campaign]:
        """``GET /api/Campaigns``: every campaign, lazily."""
        return self.listing(CAMPAIGNS, self.codec.campaign_from_vendor, filters, sorts, page_size)

    def get_campaign(self, campaign_id: str) -> Operation[Campaign]:
        """``GET /api/Campaigns/{id}``: one campaign's state."""
        request = self.provider.request("GET", f"{CAMPAIGNS}/{_segment(campaign_id)}")
        response = yield from self.provider.call_ok(request)
        return self.codec.campaign_from_vendor(self.provider.json_object(response, "a campaign"))

    def list_campaign_contacts(
        self, campaign_id: str, filters: FilterArg, sorts: SortArg, page_size: int | None
    ) -> Paged[Contact]:
        """``GET /api/Campaigns/{id}/Contacts``: a campaign's contacts, lazily."""
        path = f"{CAMPAIGNS}/{_segment(campaign_id)}/Contacts"
        return self.listing(path, self.codec.contact_from_vendor, filters, sorts, page_size)

    def create_campaign(
        self, body: Mapping[str, Any], phones: Sequence[str], ignore_invalid: bool | None
    ) -> Operation[str]:
        """``POST /api/Campaigns`` (``ignore_invalid`` None) or ``POST /api/campaigns/{true|false}``
        -> 201 with the new id as a JSON string.

        A 400 with ProblemDetails ``errors`` raises :class:`CampaignRejected` naming each
        refused contact (``phones``: the campaign's numbers, by index).
        """
        path = CAMPAIGNS if ignore_invalid is None else f"/api/campaigns/{'true' if ignore_invalid else 'false'}"
        response = yield from self.provider.call(self.provider.request("POST", path, json=dict(body)))
        if response.status_code == 400:
            raise self.campaign_rejected(response, phones, body)
        self.provider.raise_for_status(response)
        return self.read_id(response, "campaign")

    def update_campaign(
        self, campaign_id: str, body: Mapping[str, Any], phones: Sequence[str]
    ) -> Operation[None]:
        """``PUT /api/Campaigns/{id}`` (``POST`` with ``write_verbs="documented"``) -> 204 / 404."""
        method = "PUT" if self.opts.write_verbs == "rest" else "POST"
        request = self.provider.request(method, f"{CAMPAIGNS}/{_segment(campaign_id)}", json=dict(body))
        response = yield from self.provider.call(request)
        if response.status_code == 400:
            raise self.campaign_rejected(response, phones, body)
        self.provider.raise_for_status(response)

    def delete_campaign(self, campaign_id: str) -> Operation[None]:
        """``DELETE /api/Campaigns/{id}`` (``POST`` without a body with ``write_verbs="documented"``)."""
        method = "DELETE" if self.opts.write_verbs == "rest" else "POST"
        yield from self.provider.call_ok(self.provider.request(method, f"{CAMPAIGNS}/{_segment(campaign_id)}"))

    # ============================================================ /api/SMSMessages

    def send_message(self, phone_number: str, message: str, sender: str) -> Operation[str]:
        """``POST /api/SMSMessages`` ``{message, sender, phoneNumber}`` -> 201 with the message GUID."""
        body = {"message": message, "sender": sender, "phoneNumber": phone_number}
        response = yield from self.provider.call_ok(self.provider.request("POST", MESSAGES, json=body))
        return self.read_id(response, "message")

    def get_message(self, message_id: str) -> Operation[SmsMessage]:
        """``GET /api/SMSMessages/{id}``: one message (by GUID ``newId`` or int ``id``)."""
        request = self.provider.request("GET", f"{MESSAGES}/{_segment(message_id)}")
        response = yield from self.provider.call_ok(request)
        return self.codec.message_from_vendor(self.provider.json_object(response, "an SMS message"))

    def list_messages(self, filters: FilterArg, sorts: SortArg, page_size: int | None) -> Paged[SmsMessage]:
        """``GET /api/SMSMessages``: every SMS of the account, lazily."""
        return self.listing(MESSAGES, self.codec.message_from_vendor, filters, sorts, page_size)

    # ============================================================ reading answers

    def read_id(self, response: httpx.Response, what: str) -> str:
        """The id in a 201 body: a JSON string (``"abc123"``), a bare id/GUID, or an object with an id."""
        text = response.text.strip()
        data: Any
        try:
            data = json.loads(text) if text else None
        except ValueError:
            if _ID_TEXT_RE.fullmatch(text):
                return text
            raise self.provider.malformed(f"expected the new {what} id, got an unreadable body", response) from None
        if isinstance(data, bool):
            data = None
        if isinstance(data, (str, int)) and str(data).strip():
            return str(data).strip()
        if isinstance(data, dict):
            # the new id first: an answer naming it created the record, whatever else it
            # carries (an ``errors`` warning); a refusal would have it sent again elsewhere
            for key in ("id", "newId"):
                value = ci_get(data, key)
                if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                    return str(value).strip()
            if ci_get(data, "errors"):
                raise self.provider.provider_error(
                    f"{what} rejected: {self.provider.error_message(response)}", response
                )
        raise self.provider.malformed(f"expected the new {what} id, got {text[:60]!r}", response)

    def campaign_rejected(
        self, response: httpx.Response, phones: Sequence[str], body: Mapping[str, Any]
    ) -> ProviderError:
        """A 400 answer to a campaign write: :class:`CampaignRejected` listing each refused contact
        when the ProblemDetails body has ``errors``, else the plain typed error."""
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        errors = ci_get(data, "errors") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(errors, dict):
            try:
                self.provider.raise_for_status(response)
            except ProviderError as exc:
                return exc
            return self.provider.provider_error("campaign rejected", response)  # pragma: no cover - 400 raises
        contacts, field_errors = wire.contact_errors(errors, phones, body.get("contacts") or [])
        where = f"{request_where(response)}"
        message = f"{where}: campaign rejected: {wire.rejection_text(ci_get(data, 'title'), contacts, field_errors)}"
        plain = self.provider.provider_error(message, response)  # carries the status and redacted body
        return CampaignRejected(message, contacts=contacts, field_errors=field_errors, provider=plain.provider,
                                status_code=plain.status_code, body=plain.body)
