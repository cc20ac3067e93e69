"""The Campaigns REST provider: the neutral :class:`~smsgate.provider.Provider` contract mapped
onto :mod:`smsgate_campaigns_api.api`.

Dynamic Messaging (UK) sends single SMS (``/api/SMSMessages``) and native campaigns
(``/api/Campaigns``) with per-contact personalisation. The API key goes as
``Authorization: Bearer <key>`` (default), an ``api-key`` header or an ``api-key`` query
parameter (option ``auth``). Delivery reports arrive as JSON callbacks (``webHookType`` 1)
without a signature, authenticated by a shared token (:meth:`CampaignsApiProvider.parse_webhook`).
Every operation is a generator (sans-I/O); the payloads are :mod:`smsgate_campaigns_api.wire`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from smsgate.errors import ConfigError, ProviderError, ResourceNotFound, ValidationError
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
from smsgate_campaigns_api.api import MESSAGES, CampaignsApi
from smsgate_campaigns_api.options import CampaignsApiOptions
from smsgate_campaigns_api.sieve import Filter, FilterArg, Sort, SortArg
from smsgate_campaigns_api.wire import (
    Codec,
    DMSmsStatus,
    SmsMessage,
    WebhookTokenRejected,
    is_guid,
    problem_text,
    to_aware,
)

__all__ = ["SENT_LOOKUP_SKEW", "CampaignsApiProvider"]

#: How much earlier than smsgate logged a message the vendor's clock may date it (clock skew).
SENT_LOOKUP_SKEW = timedelta(minutes=10)


class CampaignsApiProvider(Provider):
    """Dynamic Messaging "Campaigns REST API" adapter (UK marketing SMS).

    Credentials: ``api_key`` (required), ``webhook_token`` (optional shared secret
    expected in the callback URL). Options: :class:`CampaignsApiOptions`.

    Neutral operations: ``send``, ``status``, ``find_sent``, ``parse_webhook``,
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
    #: both documented bodies (``POST /api/SMSMessages``, ``/api/Campaigns``) carry ``sender``:
    #: ``smsgate config check`` and ``StoredTenants.add`` say so when none is set
    requires_sender = True

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        if not self.settings.secret("api_key"):
            raise ConfigError(
                f"provider {self.instance_name!r} (campaigns_api): credential 'api_key' is required"
            )
        self.opts = cast(CampaignsApiOptions, self.options)
        self.codec = Codec(self.opts, self.instance_name)
        self.api = CampaignsApi(self, self.opts, self.codec)

    # ============================================================ plumbing

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
        return problem_text(body)

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
                f"the {what.removeprefix('a ')} its own sender"
            )
        return sender

    # ============================================================ conversions (see wire.Codec)

    def vendor_phone(self, phone: str) -> str:
        """``phone`` as sent to the vendor (option ``number_format``): :meth:`Codec.vendor_phone`."""
        return self.codec.vendor_phone(phone)

    def neutral_phone(self, raw: Any) -> str | None:
        """The vendor's number as E.164 (national numbers read in ``home_region``), or None."""
        return self.codec.neutral_phone(raw)

    def vendor_text(self, text: str, placeholders: Mapping[str, str] | None = None) -> str:
        """Neutral ``{name}``-style text -> vendor merge tokens: :meth:`Codec.vendor_text`."""
        return self.codec.vendor_text(text, placeholders)

    def neutral_text(self, text: str) -> str:
        """Vendor text -> neutral template (merge tokens become ``{name}``/``{custom1}``/``{custom2}``)."""
        return self.codec.neutral_text(text)

    def campaign_from_vendor(self, data: Mapping[str, Any]) -> Campaign:
        """A vendor Campaign object -> neutral :class:`~smsgate.models.Campaign`."""
        return self.codec.campaign_from_vendor(data)

    def contact_from_vendor(self, data: Mapping[str, Any]) -> Contact:
        """A vendor campaign contact -> neutral :class:`~smsgate.models.Contact`."""
        return self.codec.contact_from_vendor(data)

    def message_from_vendor(self, data: Mapping[str, Any]) -> SmsMessage:
        """A vendor SMSMessage object -> :class:`SmsMessage`."""
        return self.codec.message_from_vendor(data)

    # ============================================================ messages

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """``POST /api/SMSMessages`` ``{message, sender, phoneNumber}`` -> 201 GUID.

        ``sender`` is the message's, else the instance's; with neither, :class:`ConfigError`
        is raised before any request.
        """
        if msg.has_media:
            raise self.unsupported("media attachments")
        sender = self._sender(msg.sender, "a message")
        message_id = yield from self.api.send_message(self.vendor_phone(msg.to), msg.text, sender)
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
        try:
            return (yield from self.api.get_message(message_id))
        except ResourceNotFound as exc:
            if not is_guid(message_id):
                raise
            found = yield from self.list_messages(filters=[Filter("newId", "==", message_id)], page_size=1).find(
                lambda _: True
            )
            if found is None:
                raise exc from None
            return found

    def list_messages(
        self, *, filters: FilterArg = None, sorts: SortArg = None, page_size: int | None = None
    ) -> Paged[SmsMessage]:
        """``GET /api/SMSMessages``: every SMS of the account, lazily, page by page."""
        return self.api.list_messages(filters, sorts, page_size)

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

    def find_sent(self, msg: OutboundMessage, since: datetime) -> Operation[DeliveryReport | None]:
        """Whether the vendor received ``msg``: its SMS listing searched by number, text and time.

        The vendor keeps no client reference, so a message is recognised by what it
        lists: the newest SMS to the number (``filters=phoneNumber==...``,
        ``sorts=-dateCreated``, one page of 100) whose text is ``msg.text`` and that
        was created at ``since`` (less :data:`SENT_LOOKUP_SKEW` for clock skew) or later.
        Two identical texts to one number within that window cannot be told apart. An SMS
        the vendor lists to another number is never it, whatever the filter: Sieve silently
        ignores a filter on a property it was not set up to filter by, and the listing is then
        the account's newest SMS, among them other recipients' copies of a campaign's text.
        """
        listing = self.list_messages(filters=[Filter("phoneNumber", "==", self.vendor_phone(msg.to))],
                                     sorts=[Sort("dateCreated", descending=True)], page_size=100)
        page = yield from listing.fetch(listing.first)  # the newest 100 only
        earliest = to_aware(since) - SENT_LOOKUP_SKEW
        for item in page.items:
            if item.phone is not None and item.phone != msg.to:
                continue  # another recipient's SMS (a filter the vendor ignored)
            created = item.date_created
            if item.message == msg.text and (created is None or to_aware(created) >= earliest):
                return DeliveryReport(provider=self.instance_name, provider_message_id=item.new_id or str(item.id),
                                      to=msg.to, status=item.status, raw_status=item.raw_status,
                                      occurred_at=created or utcnow())
        return None

    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """``GET /api/SMSMessages`` (one row): the API key is accepted. The API lists no
        sender IDs, so the sender cannot be checked."""
        paged = self.list_messages(page_size=1)
        yield from paged.fetch(paged.first)
        return ProviderCheck(endpoint=f"GET {MESSAGES}", sender=sender or self.settings.sender,
                             sender_detail="the Campaigns REST API lists no sender IDs")

    # ============================================================ webhooks

    def callback_token(self) -> tuple[str, str] | None:
        """``(options.webhook_token_param, "credentials.webhook_token")`` when a token is configured."""
        if not self.settings.secret("webhook_token"):
            return None
        return self.opts.webhook_token_param, "credentials.webhook_token"

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
        self.check_webhook_token(headers, param=self.opts.webhook_token_param,
                                 required=self.opts.webhook_token_required, error=WebhookTokenRejected,
                                 hint=" (or set options.webhook_token_required = false)")
        return self.codec.webhook_reports(body)

    def parse_webhook_request(self, url: str, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """:meth:`parse_webhook` for a web layer that has the full callback URL."""
        merged = {k.lower(): v for k, v in headers.items()}
        merged["x-smsgate-query"] = urlsplit(url).query
        return self.parse_webhook(merged, body)

    # ============================================================ campaigns

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
            options = campaign.provider_options
            option = options.get("ignoreInvalidPhoneNumbers", options.get("ignore_invalid_phone_numbers"))
            flag = option if option is not None else self.opts.ignore_invalid_phone_numbers
        if flag is not None and not isinstance(flag, bool):
            raise ValidationError("ignoreInvalidPhoneNumbers must be a boolean", field="ignoreInvalidPhoneNumbers",
                                  value=flag)
        body = self._campaign_body(campaign, with_contacts=True)
        phones = [c.phone for c in campaign.contacts]
        campaign_id = yield from self.api.create_campaign(body, phones, flag)
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
        return (yield from self.api.get_campaign(campaign_id))

    def list_campaigns(
        self, *, filters: FilterArg = None, sorts: SortArg = None, page_size: int | None = None
    ) -> Paged[Campaign]:
        """``GET /api/Campaigns``: every campaign, lazily (``tenant.iterate(instance, ...)``).

        ``filters``/``sorts`` are :class:`Filter`/:class:`Sort` objects (or raw Sieve strings).
        """
        return self.api.list_campaigns(filters, sorts, page_size)

    def list_campaign_contacts(
        self, campaign_id: str, *, filters: FilterArg = None, sorts: SortArg = None, page_size: int | None = None
    ) -> Paged[Contact]:
        """``GET /api/Campaigns/{id}/Contacts``: a campaign's contacts, lazily."""
        return self.api.list_campaign_contacts(campaign_id, filters, sorts, page_size)

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
        yield from self.api.update_campaign(campaign.id, body, [c.phone for c in campaign.contacts])

    def delete_campaign(self, campaign_id: str) -> Operation[None]:
        """``DELETE /api/Campaigns/{id}`` (``POST`` without body with ``write_verbs="documented"``)."""
        yield from self.api.delete_campaign(campaign_id)

    def _campaign_body(self, campaign: Campaign, *, with_contacts: bool) -> dict[str, Any]:
        return self.codec.campaign_body(campaign, sender=lambda given: self._sender(given, "a campaign"),
                                        with_contacts=with_contacts)

    # ============================================================ statistics

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

        def tally(page: Page[SmsMessage]) -> None:
            nonlocal cost, priced
            for message in page.items:
                by_raw[message.raw_status or "?"] = by_raw.get(message.raw_status or "?", 0) + 1
                if message.price is not None:
                    cost += message.price
                    priced = True
                _count(stats, message)

        yield from paged.walk(tally)
        stats.cost = cost if priced else None
        stats.raw = {"messages": stats.total, "by_status_code": by_raw}
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
