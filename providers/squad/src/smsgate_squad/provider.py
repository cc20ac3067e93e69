"""The Squad (GTBank / HabariPay) SMS adapter: smsgate's neutral operations mapped onto Squad's API.

Two classes, one per API generation, sharing :mod:`~smsgate_squad.wire` and the page walking of
:mod:`~smsgate_squad.api`:

* :class:`SquadV2Provider` (default, ``options.api_version = "v2"``): ``https://api-d.squadco.com``
  (sandbox ``https://sandbox-api-d.squadco.com``), ``Authorization: Bearer <secret key>``,
  ``/sms/send/instant``, ``/sms/campaign``, ``/sms/template``, ``/sms/bucket`` (CSV uploaded to
  the S3 ``signed_url`` the bucket comes back with).
* :class:`SquadV1Provider` (legacy VAS, ``api_version = "v1"``): ``https://squadbygtco.com:8080``,
  a key and a daily AES secret as headers, ``/service/message...`` (or ``/dashboard/message...``,
  the older path, via ``options.v1_message_prefix``), ``/dashboard/bucket``, ``/dashboard/template``.

The plugin registers :class:`SquadProvider` as ``squad``; constructing it gives the class
``options.api_version`` names, so ``plugin = "squad"`` configurations pick their generation
with one option.

Every public operation is a generator (see :mod:`smsgate.provider`); listings return a
:class:`~smsgate.provider.Paged` walked with ``tenant.iterate(instance, paged)``. Operations a
generation lacks raise :class:`~smsgate.errors.Unsupported` naming the one that has them.
See docs/providers/squad.md for the full mapping and the vendor's documentation quirks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Final, Literal

import httpx

from smsgate import phone as phonelib
from smsgate.errors import (
    AuthFailed,
    ConfigError,
    InvalidPhoneNumber,
    MalformedResponse,
    ResourceNotFound,
    SmsgateError,
    ValidationError,
)
from smsgate.models import (
    Campaign,
    CampaignStatus,
    Contact,
    ContactList,
    DeliveryReport,
    OutboundMessage,
    ProviderCheck,
    SendResult,
    Stats,
    Status,
    Template,
)
from smsgate.provider import Capabilities, Operation, Page, Paged, Provider, ProviderSettings
from smsgate.text import template_variables
from smsgate_squad import wire
from smsgate_squad.api import NO_AUTH, V1Api, V2Api
from smsgate_squad.auth import SIGNATURE_HEADER, derive_v1_secret, verify_signature, wat_today
from smsgate_squad.options import SquadOptions
from smsgate_squad.wire import SendReceipt

__all__ = [
    "LIVE_BASE_URL",
    "SANDBOX_BASE_URL",
    "SENT_LOOKUP_SKEW",
    "V1_BASE_URL",
    "V1_CAPABILITIES",
    "V2_CAPABILITIES",
    "SendReceipt",
    "SquadOptions",
    "SquadProvider",
    "SquadV1Provider",
    "SquadV2Provider",
]


log = logging.getLogger("smsgate.squad")

#: v2 live host [DOC for Squad's other APIs; INF for SMS].
LIVE_BASE_URL: Final = "https://api-d.squadco.com"
#: v2 sandbox host (chosen automatically for ``sandbox_sk_`` keys when no base_url is set).
SANDBOX_BASE_URL: Final = "https://sandbox-api-d.squadco.com"
#: v1 (legacy VAS) host [DOC].
V1_BASE_URL: Final = "https://squadbygtco.com:8080"

#: What the v2 API offers. v2 documents no message-status endpoint and no statistics.
V2_CAPABILITIES: Final = Capabilities(
    send=True,
    bulk=True,
    max_batch=100,
    native_campaigns=True,
    templates=True,
    contact_lists=True,
    delivery_reports=True,
    status_lookup=False,
    statistics=False,
)
#: What the legacy v1 API offers: one recipient per send, but status lookup, statistics and the
#: messages sent to a number (``by-phone``), where a message is found after a crash (``find_sent``).
V1_CAPABILITIES: Final = Capabilities(
    send=True,
    bulk=False,
    max_batch=1,
    native_campaigns=True,
    templates=True,
    contact_lists=True,
    delivery_reports=True,
    status_lookup=True,
    sent_lookup=True,
    statistics=True,
)

#: How long before the time a message was logged an SMS the vendor lists may be dated and still be
#: it (:meth:`SquadV1Provider.find_sent`): the vendor's clock may be behind ours.
SENT_LOOKUP_SKEW: Final = timedelta(minutes=10)

_ONLY_V1: Final = "only the legacy v1 API offers it; set options.api_version = 'v1'"
_ONLY_V2: Final = "only the v2 API offers it; set options.api_version = 'v2'"


def _refused(error: SmsgateError) -> Operation[Any]:
    """An operation that fails with ``error`` when run (as the generation's real ones would)."""
    raise error
    yield  # pragma: no cover - makes this an operation


class SquadProvider(Provider):
    """Adapter for Squad's SMS APIs: the plugin ``squad``.

    ``SquadProvider(settings)`` builds a :class:`SquadV2Provider`, or a :class:`SquadV1Provider`
    when ``options.api_version = "v1"``; both are ``SquadProvider`` instances and share what
    does not depend on the generation (webhooks, number formats, buckets from contacts, the
    neutral campaign flow). An operation only one generation has raises
    :class:`~smsgate.errors.Unsupported` in the other, naming the option that selects it.

    Credentials: v2 ``secret_key`` (the merchant secret key, ``sandbox_sk_...`` in the
    sandbox). v1 ``key`` plus either ``secret`` (a pre-computed daily secret) or
    ``encryption_iv`` (and optionally ``encryption_key``, default: ``key``) to derive the
    secret with the ``[v1-secret]`` extra. ``webhook_secret`` overrides the key that verifies
    webhook signatures (default ``secret_key``).

    The instance's :attr:`capabilities` follow the API version (:data:`V2_CAPABILITIES` or
    :data:`V1_CAPABILITIES`); the class attribute describes the default, v2.
    """

    name = "squad"
    capabilities = V2_CAPABILITIES
    default_base_url = LIVE_BASE_URL
    options_model = SquadOptions
    #: v1 ``key`` and ``encryption_iv`` too (``client_id``/``user_id`` are options: not secret).
    secret_names = Provider.secret_names | {"key", "encryption_iv"}
    #: Squad's answer to a bulk send names each recipient by number only (``sent[]``/``errors[]``
    #: entries carry no text or index), so two messages to one number in one request could not be
    #: told apart when one is refused: the gateway puts repeats of a number in separate requests.
    distinct_recipients: ClassVar[bool] = True
    #: The ``options.api_version`` a concrete class speaks.
    api_version: ClassVar[Literal["v1", "v2"]] = "v2"

    def __new__(cls, settings: ProviderSettings | None = None, instance_name: str | None = None) -> SquadProvider:
        # settings may be absent when copy/pickle re-creates an instance (of a concrete class)
        if cls is SquadProvider and settings is not None:
            # an invalid value goes to v2, whose options validation names it
            cls = SquadV1Provider if settings.options.get("api_version") == "v1" else SquadV2Provider
        return super().__new__(cls)

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        if not isinstance(self.options, SquadOptions):  # pragma: no cover - set by the base class
            raise ConfigError("squad: options were not validated")
        self.opts: SquadOptions = self.options
        if self.opts.api_version != self.api_version:
            raise ConfigError(f"{self._where()}: {type(self).__name__} speaks the {self.api_version} API; "
                              "construct SquadProvider to follow options.api_version")
        self._check_credentials()
        try:
            phonelib.PhoneNormalizer(self.opts.region)
        except ConfigError as exc:
            raise ConfigError(f"{self._where()}: options.region: {exc}") from None

    def _where(self) -> str:
        return f"provider {self.instance_name!r} (squad {self.opts.api_version})"

    def _check_credentials(self) -> None:
        raise NotImplementedError

    def error_message(self, response: httpx.Response) -> str:
        """Squad's ``message``; its 401 body has an empty one [DOC]."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return super().error_message(response)
        if isinstance(body, dict):
            message = body.get("message")
            if isinstance(message, str) and message.strip():
                return message.strip()
            if response.status_code == 401:
                return "no credentials accepted (Squad sent an empty message)"
        return super().error_message(response)

    # ------------------------------------------------------------ numbers & helpers

    def _number(self, e164: str) -> str | None:
        return wire.squad_number(e164, allow_international=self.opts.allow_international)

    def reaches(self, to: str) -> bool:
        """Nigerian numbers only, unless ``options.allow_international``: the gateway routes
        other numbers to the next provider of their route."""
        return self.opts.allow_international or to.startswith("+234")  # as wire.squad_number, without its parse

    def _any_number(self, phone: str, where: str) -> str:
        """A phone (E.164, or local as the tenant typed it) in Squad's format, or ValidationError."""
        try:
            e164 = phonelib.normalize(phone, self.opts.region)
        except InvalidPhoneNumber as exc:
            raise InvalidPhoneNumber(exc.reason, field="phone", value=phone, location=where) from None
        number = self._number(e164)
        if number is None:
            raise ValidationError(
                f"{e164} is not a Nigerian number; Squad delivers to +234 only "
                "(options.allow_international to try others)",
                field="phone", value=phone, location=where,
            )
        return number

    def _recipient(self, msg: OutboundMessage) -> str:
        """The number of a message this adapter can send, in Squad's format."""
        self._check_sendable(msg)
        number = self._number(msg.to)
        if number is None:
            raise self.unsupported(
                "recipients outside Nigeria (+234)", "set options.allow_international to try them"
            )
        return number

    def _check_sendable(self, msg: OutboundMessage) -> None:
        if msg.has_media:
            raise self.unsupported("media attachments and locations", "Squad sends text SMS only")

    # ------------------------------------------------------------ webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """Verify ``x-squad-encrypted-body`` and read the delivery report(s).

        The signature is HMAC-SHA512 hex of the raw body keyed with the secret key [DOC],
        compared case-insensitively. Squad documents no SMS callback payload; this reads the
        [INF] shape the emulator sends -- Squad's webhook envelope
        ``{"Event", "TransactionRef", "Body": <v1 message item + batch_id>}`` -- and also a
        bare item or a list of items. Squad's documented payment events (``charge_successful``),
        which it posts to the merchant's one webhook URL, are acknowledged with no report.
        Raises :class:`~smsgate.errors.AuthFailed` for a missing
        or wrong signature, :class:`~smsgate.errors.MalformedResponse` for an unreadable body.
        """
        secret = self.settings.secret("webhook_secret") or self.settings.secret("secret_key")
        if not secret:
            raise ConfigError(
                f"provider {self.instance_name!r}: configure credentials.secret_key (or "
                "webhook_secret) to verify Squad webhook signatures"
            )
        signature = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        if not verify_signature(secret, body, signature):
            state = "missing" if not signature else "invalid"
            raise AuthFailed(f"webhook: {state} {SIGNATURE_HEADER} signature", provider=self.instance_name)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponse("webhook: body is not JSON", provider=self.instance_name) from exc
        if wire.is_payment_event(payload):  # Squad posts its payment events to the same URL
            return []
        ref, items = wire.webhook_items(payload)
        reports = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or "status" not in item:
                raise MalformedResponse(f"webhook: item {i} has no 'status'", provider=self.instance_name)
            tx = item.get("transaction_id") or ref
            batch = item.get("batch_id")
            pmid = self._sent_id(tx, batch)
            reports.append(wire.message_report(
                item, provider=self.instance_name, region=self.opts.region,
                provider_message_id=None if pmid is None else str(pmid),
                batch_id=None if batch is None else str(batch),
            ))
        return reports

    def _sent_id(self, transaction_id: object, batch_id: object) -> object:
        """The id this generation records at send time, from a report's ids."""
        return transaction_id

    # ------------------------------------------------------------ templates & buckets (both)

    def templates(
        self,
        *,
        page_size: int | None = None,
        sort_by: str | None = None,
        direction: Literal["ASC", "DSC"] | None = None,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
    ) -> Paged[Template]:
        """Templates, paged. v2 takes ``sort_by``, ``dir`` (``ASC``/``DSC``) and a date range."""
        raise NotImplementedError

    def list_templates(self) -> Operation[list[Template]]:
        """Every template at Squad (all pages)."""
        return (yield from self.templates().collect())

    def edit_template(
        self, template_id: str, *, name: str | None = None, description: str | None = None,
        body: str | None = None,
    ) -> Operation[Template]:
        """Change a template's name, description or body."""
        raise NotImplementedError

    def delete_template(self, template_id: str) -> Operation[Template | None]:
        """Delete a template (v2 returns it)."""
        raise NotImplementedError

    def create_bucket(
        self, name: str, description: str = "", *, file_name: str | None = None,
        items: Sequence[Mapping[str, str]] | None = None,
    ) -> Operation[ContactList]:
        """Create a bucket (v2: empty, filled by :meth:`upload_bucket_csv`; v1: with ``items``)."""
        raise NotImplementedError

    def buckets(self, *, page_size: int | None = None) -> Paged[ContactList]:
        """Buckets, paged."""
        raise NotImplementedError

    def get_bucket(self, bucket_id: str) -> Operation[ContactList]:
        """One bucket, found in the bucket listing (no single-bucket route is documented)."""
        bucket = yield from self.buckets().find(lambda b: b.id == str(bucket_id))
        if bucket is not None:
            return bucket
        raise ResourceNotFound(f"bucket {bucket_id!r} not found", provider=self.instance_name)

    def delete_bucket(self, bucket_id: str) -> Operation[ContactList | None]:
        """Delete a bucket (v2 returns it)."""
        raise NotImplementedError

    def _rows_for(self, contacts: Iterable[Contact | str], where: str) -> list[dict[str, str]]:
        column = self.opts.csv_phone_column
        rows = []
        for i, contact in enumerate(contacts):
            if isinstance(contact, str):
                rows.append({column: self._any_number(contact, f"{where}[{i}]")})
                continue
            row = {column: self._any_number(contact.phone, f"{where}[{i}]")}
            if contact.name is not None:
                row["name"] = contact.name
            row.update({k: str(v) for k, v in contact.fields.items() if k != column})
            rows.append(row)
        if not rows:
            raise ValidationError("a bucket needs at least one phone number", field=where)
        return rows

    def _bucket_with(self, contact_list: ContactList, rows: list[dict[str, str]]) -> Operation[ContactList]:
        """A new bucket holding ``rows``."""
        raise NotImplementedError

    def create_contact_list(self, contact_list: ContactList, phones: Sequence[str]) -> Operation[ContactList]:
        """A bucket holding ``phones``: v2 creates it and PUTs the CSV to its signed URL; v1
        posts the numbers inline."""
        rows = self._rows_for(phones, "phones")
        return (yield from self._bucket_with(contact_list, rows))

    # ------------------------------------------------------------ campaigns (both)

    def campaigns(
        self,
        *,
        page_size: int | None = None,
        status: Literal["pending", "failed", "success"] | None = None,
        name: str | None = None,
        sort_by: str | None = None,
        direction: Literal["ASC", "DSC"] | None = None,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
    ) -> Paged[Campaign]:
        """Campaigns, paged (v2 takes the documented filters)."""
        raise NotImplementedError

    def create_campaign(self, campaign: Campaign) -> Operation[Campaign]:
        """Run a campaign natively.

        Audience: ``contact_list_id`` (a bucket id) or ``contacts`` (a bucket is created and
        filled first). Message: ``template_id`` (a Squad template id) or ``text`` (v2 always,
        v1 when it has ``{placeholders}``: a template is created first). Then the generation
        launches it (see :meth:`SquadV2Provider.create_campaign`,
        :meth:`SquadV1Provider.create_campaign`).
        """
        sender = campaign.sender or self.settings.sender
        if not campaign.contact_list_id and not campaign.contacts:
            raise ValidationError("needs contact_list_id or contacts", field="campaign")
        if not campaign.template_id and not campaign.text:
            raise ValidationError("needs template_id or text", field="campaign")
        name = campaign.name or "smsgate campaign"
        self._check_campaign(campaign, sender)
        bucket_id = campaign.contact_list_id
        created_bucket: ContactList | None = None
        if not bucket_id:
            rows = self._rows_for(campaign.contacts, "contacts")
            created_bucket = yield from self._bucket_with(ContactList(name=name, description=name), rows)
            bucket_id = created_bucket.id
        template_id = campaign.template_id
        text = campaign.text or ""
        if not template_id and self._needs_template(text):
            made = yield from self.create_template(Template(name=name, body=text, description=name))
            template_id = made.provider_ids[self.instance_name]
        count = len(campaign.contacts) or (created_bucket.size if created_bucket else None)
        return (yield from self._launch(campaign, name, sender, str(bucket_id), template_id, count))

    def _check_campaign(self, campaign: Campaign, sender: str | None) -> None:
        """Refuse, before anything is created, a campaign this generation cannot run."""

    def _needs_template(self, text: str) -> bool:
        """Whether a campaign's text is sent through a template created for it."""
        return True

    def _launch(
        self, campaign: Campaign, name: str, sender: str | None, bucket_id: str, template_id: str | None,
        count: int | None,
    ) -> Operation[Campaign]:
        raise NotImplementedError

    def _listed_campaign(self, campaign_id: str, *, by_name: bool = False) -> Operation[Campaign]:
        """The campaign with ``campaign_id`` in the listing (or that name, ``by_name``)."""
        def pick(page: Page[Campaign]) -> Campaign | None:
            found = next((c for c in page.items if c.id == str(campaign_id)), None)
            if found is None and by_name:
                found = next((c for c in page.items if c.name == str(campaign_id)), None)
            return found

        found = yield from self.campaigns().walk(pick)
        if found is None:
            raise ResourceNotFound(f"campaign {campaign_id!r} not found", provider=self.instance_name)
        return found

    # ------------------------------------------------------------ only in v2 (v1 refuses)

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        """Bulk send (v2 only)."""
        return _refused(self.unsupported("bulk send", "the v1 API takes one recipient per request"))

    def upload_bucket_csv(self, signed_url: str, content: bytes | str) -> Operation[None]:
        """PUT a CSV to a v2 bucket's pre-signed S3 URL (v2 only)."""
        return _refused(self.unsupported("bucket CSV upload", _ONLY_V2))

    def delete_campaign(self, campaign_id: str) -> Operation[Campaign | None]:
        """Delete a campaign (v2 only)."""
        return _refused(self.unsupported("deleting campaigns", _ONLY_V2))

    # ------------------------------------------------------------ only in v1 (v2 refuses)

    def send_message(
        self, *, recipients: str, body: str, use_bucket: bool = False, use_template: bool = False,
        is_campaign: bool = False, reference: str | None = None, sender: str | None = None,
    ) -> Operation[SendReceipt]:
        """The v1 message route with every documented flag (v1 only)."""
        return _refused(self.unsupported("the v1 message route (use send/send_many/create_campaign in v2)",
                                         _ONLY_V1))

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """Status lookup (v1 only)."""
        return _refused(self.unsupported(
            "status lookup",
            "Squad's v2 SMS API documents no message-status endpoint; use delivery webhooks, "
            "or api_version 'v1' (GET /service/message/by-params)",
        ))

    def message_status(
        self, batch_id: str, *, provider_message_id: str | None = None, page_size: int | None = None
    ) -> Paged[DeliveryReport]:
        """Messages of a batch (v1 only)."""
        raise self.unsupported("message status by batch_id", _ONLY_V1)

    def campaign_messages(self, campaign_id: str, *, page_size: int | None = None) -> Paged[DeliveryReport]:
        """Messages of one campaign (v1 only)."""
        raise self.unsupported("campaign messages", _ONLY_V1)

    def messages_by_phone(self, phone: str, *, page_size: int | None = None) -> Paged[DeliveryReport]:
        """Messages sent to a number (v1 only)."""
        raise self.unsupported("messages by phone number", _ONLY_V1)

    def campaign_statistics(self, campaign_id: str | None = None) -> Operation[Stats]:
        """Campaign counts (v1 only)."""
        return _refused(self.unsupported("campaign statistics", _ONLY_V1))

    def hourly_statistics(self, day: date | str) -> Operation[Stats]:
        """Hourly statistics (v1 only)."""
        return _refused(self.unsupported("hourly statistics", _ONLY_V1))

    def statistics(self, **filters: Any) -> Operation[Stats]:
        """Neutral statistics (v1 only)."""
        return _refused(self.unsupported("statistics", "Squad's v2 SMS API documents no statistics; " + _ONLY_V1))

    def rename_bucket(self, bucket_id: str, name: str) -> Operation[ContactList]:
        """Rename a bucket (v1 only)."""
        return _refused(self.unsupported("renaming buckets", _ONLY_V1))

    def sender_ids(self) -> Operation[list[str]]:
        """Registered sender IDs (v1 only: v2 documents no sender-ID API)."""
        return _refused(self.unsupported(
            "listing sender IDs", "v2 sender IDs are registered in the Squad dashboard; no API is documented"
        ))


# ================================================================ v2


class SquadV2Provider(SquadProvider):
    """Squad's v2 SMS API (``options.api_version = "v2"``, the default)."""

    api_version = "v2"
    #: /sms/send/instant needs a sender_id (``smsgate config check`` says so when none is set)
    requires_sender = True

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        if settings.base_url is None and (settings.secret("secret_key") or "").startswith("sandbox_sk_"):
            self.base_url = SANDBOX_BASE_URL
        # the gateway reads capabilities from the instance
        self.capabilities = replace(V2_CAPABILITIES, max_batch=self.opts.max_batch)
        self.api = V2Api(self, self.opts)

    def _check_credentials(self) -> None:
        if not self.settings.secret("secret_key"):
            raise ConfigError(f"{self._where()}: credentials.secret_key is required")

    def authenticate(self, request: httpx.Request) -> None:
        """``Authorization: Bearer <secret_key>`` (not on the pre-signed S3 upload)."""
        if not request.extensions.get(NO_AUTH):
            request.headers["Authorization"] = f"Bearer {self.settings.secret('secret_key')}"

    # ------------------------------------------------------------ sending

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Send one message: ``POST /sms/send/instant``."""
        number = self._recipient(msg)
        results = yield from self._instant([(msg, number)])
        return results[0]

    def batch_key(self, msg: OutboundMessage) -> object:
        """One ``/sms/send/instant`` request has one ``sender_id``."""
        return msg.sender

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        """One ``/sms/send/instant`` request for messages of one sender (the gateway batches
        them to ``max_batch``), one result each.

        Non-Nigerian numbers come back ``rejected`` (``error_code="unsupported"``) without
        being sent: the gateway gives them to the next provider of their route.
        """
        results: list[SendResult | None] = [None] * len(msgs)
        todo: list[tuple[int, OutboundMessage, str]] = []
        for i, msg in enumerate(msgs):
            self._check_sendable(msg)
            number = self._number(msg.to)
            if number is None:
                results[i] = SendResult(
                    to=msg.to, status=Status.REJECTED, error="Squad delivers to Nigerian (+234) numbers only",
                    error_code="unsupported",  # the gateway fails it over to the next provider
                )
            else:
                todo.append((i, msg, number))
        if todo:
            out = yield from self._instant([(m, n) for _, m, n in todo])
            for (i, _, _), res in zip(todo, out, strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    def _instant(self, batch: Sequence[tuple[OutboundMessage, str]]) -> Operation[list[SendResult]]:
        sender = batch[0][0].sender
        if not sender:
            raise ConfigError(
                f"provider {self.instance_name!r} (squad v2): sender_id is required; set the "
                "provider's or tenant's sender to a sender ID registered in the Squad dashboard"
            )
        return (yield from self.api.send_instant(sender, batch))

    def parse_instant(self, response: httpx.Response, msgs: Sequence[OutboundMessage]) -> list[SendResult]:
        """Read a ``/sms/send/instant`` answer (see :meth:`V2Api.read_send_instant`)."""
        return self.api.read_send_instant(response, msgs)

    # ------------------------------------------------------------ templates

    def create_template(self, template: Template) -> Operation[Template]:
        """``POST /sms/template``. ``{name}`` becomes ``#$name$#``."""
        made = yield from self.api.create_template(
            template.name, template.description or template.name, wire.to_squad_placeholders(template.body)
        )
        return template.model_copy(update={
            "provider_ids": {**template.provider_ids, self.instance_name: made.provider_ids[self.instance_name]},
            "raw": made.raw,
        })

    def templates(
        self,
        *,
        page_size: int | None = None,
        sort_by: str | None = None,
        direction: Literal["ASC", "DSC"] | None = None,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
    ) -> Paged[Template]:
        """``GET /sms/template``, paged, with ``sort_by``, ``dir`` (``ASC``/``DSC``) and a date range."""
        return self.api.templates({
            "perPage": page_size, "sort_by": sort_by, "dir": direction,
            "date_from": None if date_from is None else str(date_from),
            "date_to": None if date_to is None else str(date_to),
        })

    def edit_template(
        self, template_id: str, *, name: str | None = None, description: str | None = None,
        body: str | None = None,
    ) -> Operation[Template]:
        """``PATCH /sms/template/{uuid}`` (``body`` is sent as ``message``)."""
        changes = _changes(name, description, "message", body)
        return (yield from self.api.edit_template(template_id, changes))

    def delete_template(self, template_id: str) -> Operation[Template | None]:
        """``DELETE /sms/template/{uuid}`` (returns it)."""
        return (yield from self.api.delete_template(template_id))

    # ------------------------------------------------------------ buckets

    def create_bucket(
        self, name: str, description: str = "", *, file_name: str | None = None,
        items: Sequence[Mapping[str, str]] | None = None,
    ) -> Operation[ContactList]:
        """``POST /sms/bucket``: ``raw["signed_url"]`` takes the CSV next (:meth:`upload_bucket_csv`)."""
        if items is not None:
            raise ValidationError("v2 buckets take their numbers as a CSV upload (upload_bucket_csv)",
                                  field="items")
        file_name = file_name or f"{wire.slug(name)}.csv"
        if not file_name.lower().endswith(".csv"):
            raise ValidationError("must end with .csv", field="file_name", value=file_name)
        return (yield from self.api.create_bucket(name, description or name, file_name))

    def upload_bucket_csv(self, signed_url: str, content: bytes | str) -> Operation[None]:
        """PUT a CSV to a bucket's pre-signed S3 URL (no Squad credentials are sent).

        When the URL signs ``x-amz-acl`` (Squad's does), the matching header is sent.
        """
        if not signed_url.startswith(("https://", "http://")):
            raise ValidationError("expected an absolute signed URL", field="signed_url")
        data = content.encode("utf-8") if isinstance(content, str) else content
        yield from self.api.upload_csv(signed_url, data)

    def buckets(self, *, page_size: int | None = None) -> Paged[ContactList]:
        """``GET /sms/bucket``."""
        return self.api.buckets(page_size)

    def delete_bucket(self, bucket_id: str) -> Operation[ContactList | None]:
        """``DELETE`` (or ``POST``, ``options.bucket_delete_method``) ``/sms/bucket/{uuid}``."""
        return (yield from self.api.delete_bucket(bucket_id))

    def _bucket_with(self, contact_list: ContactList, rows: list[dict[str, str]]) -> Operation[ContactList]:
        bucket = yield from self.create_bucket(contact_list.name, contact_list.description)
        signed = bucket.raw.get("signed_url")
        if not isinstance(signed, str) or not signed:
            raise MalformedResponse(
                "POST /sms/bucket: the created bucket has no signed_url", provider=self.instance_name
            )
        yield from self.upload_bucket_csv(signed, wire.csv_bytes(rows, self.opts.csv_phone_column))
        return bucket.model_copy(update={"size": bucket.size or len(rows)})

    # ------------------------------------------------------------ campaigns

    def campaigns(
        self,
        *,
        page_size: int | None = None,
        status: Literal["pending", "failed", "success"] | None = None,
        name: str | None = None,
        sort_by: str | None = None,
        direction: Literal["ASC", "DSC"] | None = None,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
    ) -> Paged[Campaign]:
        """``GET /sms/campaign``, paged, filters as documented."""
        return self.api.campaigns({
            "perPage": page_size, "status": status, "name": name, "sort_by": sort_by, "dir": direction,
            "date_from": None if date_from is None else str(date_from),
            "date_to": None if date_to is None else str(date_to),
        })

    def _check_campaign(self, campaign: Campaign, sender: str | None) -> None:
        if not sender:
            raise ConfigError(f"provider {self.instance_name!r} (squad v2): a campaign needs a sender_id")

    def _launch(
        self, campaign: Campaign, name: str, sender: str | None, bucket_id: str, template_id: str | None,
        count: int | None,
    ) -> Operation[Campaign]:
        """``POST /sms/campaign`` (``is_scheduled`` from ``start_at``)."""
        payload: dict[str, Any] = {
            "name": name, "bucket_id": bucket_id, "sender_id": sender,
            "is_scheduled": campaign.start_at is not None, "template_id": template_id,
        }
        if campaign.start_at is not None:
            payload["scheduled_for"] = wire.iso_z(campaign.start_at)
        made = yield from self.api.create_campaign(payload)
        return made.model_copy(update={
            "text": campaign.text, "recipient_count": count,
            "start_at": made.start_at or campaign.start_at,
        })

    def get_campaign(self, campaign_id: str) -> Operation[Campaign]:
        """A campaign with its state, from the campaign listing."""
        return (yield from self._listed_campaign(campaign_id))

    def delete_campaign(self, campaign_id: str) -> Operation[Campaign | None]:
        """``DELETE /sms/campaign/{uuid}`` [INF: the docs print the bucket route here]."""
        return (yield from self.api.delete_campaign(campaign_id))

    # ------------------------------------------------------------ online check

    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """``GET /sms/template`` (one row): the secret key is accepted. v2 documents no
        sender-ID API, so the sender cannot be checked."""
        paged = self.templates(page_size=1)
        yield from paged.fetch(paged.first)
        return ProviderCheck(endpoint="GET /sms/template", sender=sender or self.settings.sender,
                             sender_detail="Squad v2 documents no sender-ID API (sender IDs are registered "
                                           "in the dashboard)")


# ================================================================ v1


class SquadV1Provider(SquadProvider):
    """Squad's legacy v1 (VAS) API (``options.api_version = "v1"``): one recipient per send, but
    status lookup and statistics."""

    api_version = "v1"
    capabilities = V1_CAPABILITIES
    default_base_url = V1_BASE_URL

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        self.capabilities = V1_CAPABILITIES
        self.api = V1Api(self, self.opts)
        self._secret_cache: tuple[date, str] | None = None

    def _check_credentials(self) -> None:
        where = self._where()
        if not self.settings.secret("key"):
            raise ConfigError(f"{where}: credentials.key is required")
        if not self.settings.secret("secret"):
            missing = [
                n for n, v in (
                    ("credentials.encryption_iv", self.settings.secret("encryption_iv")),
                    ("options.client_id", self.opts.client_id),
                    ("options.user_id", self.opts.user_id),
                ) if not v
            ]
            if missing:
                raise ConfigError(
                    f"{where}: configure credentials.secret (pre-computed daily secret), or "
                    f"{', '.join(missing)} to derive it"
                )

    # ------------------------------------------------------------ auth

    def _daily_secret(self) -> str:
        static = self.settings.secret("secret")
        if static:
            return static
        today = wat_today()
        if self._secret_cache is None or self._secret_cache[0] != today:
            key = self.settings.secret("encryption_key") or self.settings.secret("key") or ""
            secret = derive_v1_secret(
                key, self.settings.secret("encryption_iv") or "",
                self.opts.client_id or "", self.opts.user_id or "", today,
            )
            self._secret_cache = (today, secret)
        return self._secret_cache[1]

    def secrets(self) -> list[str]:
        """Credential values plus the derived daily secret, so errors can redact them."""
        values = super().secrets()
        if self._secret_cache is not None:
            values.append(self._secret_cache[1])
        return values

    def authenticate(self, request: httpx.Request) -> None:
        """The key and the daily secret as headers (``options.v1_key_header`` / ``v1_secret_header``)."""
        request.headers[self.opts.v1_key_header] = self.settings.secret("key") or ""
        request.headers[self.opts.v1_secret_header] = self._daily_secret()

    # ------------------------------------------------------------ sending

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Send one message: ``POST /service/message``.

        A message whose template has a Squad id and no variables is sent by template id
        (``use_template``); otherwise the rendered text is sent.
        """
        number = self._recipient(msg)
        use_template = bool(msg.template_id) and not msg.variables
        receipt = yield from self.send_message(
            recipients=number,
            body=str(msg.template_id) if use_template else msg.text,
            use_template=use_template,
            reference=msg.reference or msg.message_id or None,  # None: send_message generates one
            sender=msg.sender,
        )
        if receipt.sent < 1:
            return SendResult(
                to=msg.to, status=Status.REJECTED, raw_status="sent=0", batch_id=receipt.batch_id,
                provider_message_id=receipt.batch_id, error="Squad queued no message",
            )
        return SendResult(
            to=msg.to, status=Status.SUBMITTED, raw_status=str(receipt.raw.get("status") or "SUCCESS"),
            provider_message_id=receipt.batch_id, batch_id=receipt.batch_id,
        )

    def send_message(
        self, *, recipients: str, body: str, use_bucket: bool = False, use_template: bool = False,
        is_campaign: bool = False, reference: str | None = None, sender: str | None = None,
    ) -> Operation[SendReceipt]:
        """``POST /service/message`` with every documented flag.

        ``recipients`` is a bucket id when ``use_bucket`` else a phone number (local format);
        ``body`` a template id when ``use_template`` else the text; ``reference`` groups a
        campaign (``is_campaign``). ``reference`` is always sent (seed 000 marks it required;
        seed 001 calls it optional): without one a unique ``ref_...`` is generated (``send``
        passes the message's reference or id). ``sender`` is optional [DOC wording].
        """
        return (yield from self.api.send_message(
            recipients=recipients, body=body, use_bucket=use_bucket, use_template=use_template,
            is_campaign=is_campaign, reference=reference, sender=sender,
        ))

    # ------------------------------------------------------------ status & reports

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """``GET /service/message/by-params?batch_id=`` (walks the cursor pages)."""
        batch = result.batch_id or result.provider_message_id
        if not batch:
            raise ValidationError("the send result has no batch_id to look up", field="batch_id")
        pmid = result.provider_message_id or batch
        seen: list[DeliveryReport] = []

        def pick(page: Page[DeliveryReport]) -> DeliveryReport | None:
            for report in page.items:
                if report.to == result.to:
                    return report
                seen.append(report)
            return None

        found = yield from self.message_status(batch, provider_message_id=pmid).walk(pick)
        if found is not None:
            return found
        if len(seen) == 1:  # a direct send's batch holds one message, whatever its number format
            return seen[0]
        return DeliveryReport(
            provider=self.instance_name, provider_message_id=pmid, batch_id=batch, to=result.to,
            status=Status.UNKNOWN, raw_status=None,
        )

    def message_status(
        self, batch_id: str, *, provider_message_id: str | None = None, page_size: int | None = None
    ) -> Paged[DeliveryReport]:
        """Messages of a batch (``by-params?batch_id=``), cursor-paged via ``pageInfo``.

        ``page_size`` is sent as ``count`` like the other v1 listings [INF: undocumented here].
        """
        return self.api.messages_by_batch(batch_id, provider_message_id=provider_message_id,
                                          page_size=page_size)

    def campaign_messages(self, campaign_id: str, *, page_size: int | None = None) -> Paged[DeliveryReport]:
        """Messages of one campaign (``/message/campaign/messages/by-campaign/{id}``)."""
        return self.api.campaign_messages(campaign_id, page_size)

    def messages_by_phone(self, phone: str, *, page_size: int | None = None) -> Paged[DeliveryReport]:
        """Messages sent to ``phone`` (E.164 or local), ``/message/by-phone/{phone}``."""
        return self.api.messages_by_phone(self._any_number(phone, "messages_by_phone"), page_size)

    def find_sent(self, msg: OutboundMessage, since: datetime) -> Operation[DeliveryReport | None]:
        """Whether Squad received ``msg``: the messages it lists for the number (``by-phone``,
        every page) searched for one with ``msg.text`` created at ``since`` (less
        :data:`SENT_LOOKUP_SKEW`) or later. The ``reference`` a send carries is listed nowhere, so
        two identical texts to one number within that window cannot be told apart. A listed
        message to another number is never it; one without a readable ``created_at`` is taken.
        The listing's items are documented only by example (``by-params``'s): an item without a
        text (``message``) makes the answer "cannot tell" (a :class:`~smsgate.errors.ProviderError`),
        never "not received", which would send the message again."""
        number = self._recipient(msg)
        earliest = (wire.parse_timestamp(since) or since) - SENT_LOOKUP_SKEW

        def pick(page: Page[DeliveryReport]) -> DeliveryReport | None:
            for report in page.items:
                raw = report.raw or {}
                if not isinstance(raw.get("message"), str):
                    raise self.provider_error("message/by-phone: a listed message has no text (message): "
                                              "cannot tell whether this one was received")
                if raw.get("phonenumber") not in (None, number) and report.to != msg.to:
                    continue  # another number's message (a listing that ignored the path)
                created = wire.parse_timestamp(raw.get("created_at"))
                if raw.get("message") == msg.text and (created is None or created >= earliest):
                    return report.model_copy(update={"to": msg.to})
            return None

        return (yield from self.api.messages_by_phone(number, 100).walk(pick))

    def _sent_id(self, transaction_id: object, batch_id: object) -> object:
        # v1 sends record the batch_id
        return batch_id or transaction_id

    # ------------------------------------------------------------ statistics

    def campaign_statistics(self, campaign_id: str | None = None) -> Operation[Stats]:
        """Counts for every campaign (``statistics/by-client``) or one (``by-campaign``)."""
        return (yield from self.api.statistics(campaign_id))

    def hourly_statistics(self, day: date | str) -> Operation[Stats]:
        """Hourly statistics for ``day`` (``message.summary/hourly-statistics/by-client``)."""
        if isinstance(day, str):
            try:
                day = date.fromisoformat(day)
            except ValueError:
                raise ValidationError("expected a date YYYY-MM-DD", field="date", value=day) from None
        return (yield from self.api.hourly_statistics(day))

    def statistics(self, **filters: Any) -> Operation[Stats]:
        """Neutral statistics: ``date=`` hourly, ``campaign_id=`` one campaign, else all."""
        unknown = set(filters) - {"date", "campaign_id"}
        if unknown:
            raise ValidationError(f"unknown filter(s) {sorted(unknown)}; use date= or campaign_id=",
                                  field="filters")
        if filters.get("date") is not None:
            return (yield from self.hourly_statistics(filters["date"]))
        cid = filters.get("campaign_id")
        return (yield from self.campaign_statistics(None if cid is None else str(cid)))

    # ------------------------------------------------------------ templates

    def create_template(self, template: Template) -> Operation[Template]:
        """``POST /dashboard/template``. ``{name}`` becomes ``#$name$#``."""
        made = yield from self.api.create_template(
            template.name, wire.to_squad_placeholders(template.body), template.description or template.name,
            neutral_body=template.body,
        )
        return template.model_copy(update={
            "provider_ids": {**template.provider_ids, self.instance_name: made.provider_ids[self.instance_name]},
            "raw": made.raw,
        })

    def templates(
        self,
        *,
        page_size: int | None = None,
        sort_by: str | None = None,
        direction: Literal["ASC", "DSC"] | None = None,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
    ) -> Paged[Template]:
        """``GET /dashboard/template/by-client/{client_id}``, paged (no sorting or date filters)."""
        if sort_by or direction or date_from or date_to:
            raise self.unsupported("template sorting/date filters", _ONLY_V2)
        return self.api.templates(page_size)

    def edit_template(
        self, template_id: str, *, name: str | None = None, description: str | None = None,
        body: str | None = None,
    ) -> Operation[Template]:
        """``PATCH /dashboard/template/{id}``."""
        changes = _changes(name, description, "body", body)
        return (yield from self.api.edit_template(template_id, changes, neutral_body=body))

    def delete_template(self, template_id: str) -> Operation[Template | None]:
        """``DELETE /dashboard/template/{id}`` [INF path]; the answer does not show the template."""
        yield from self.api.delete_template(template_id)
        return None

    # ------------------------------------------------------------ buckets

    def create_bucket(
        self, name: str, description: str = "", *, file_name: str | None = None,
        items: Sequence[Mapping[str, str]] | None = None,
    ) -> Operation[ContactList]:
        """``POST /dashboard/bucket`` with the ``items`` inline (``file_name`` is v2's)."""
        return (yield from self.api.create_bucket(name, description or name, items or []))

    def buckets(self, *, page_size: int | None = None) -> Paged[ContactList]:
        """``GET /dashboard/bucket/by-client/{client_id}``."""
        return self.api.buckets(page_size)

    def delete_bucket(self, bucket_id: str) -> Operation[ContactList | None]:
        """``DELETE /dashboard/bucket/{id}``; the answer does not show the bucket."""
        yield from self.api.delete_bucket(bucket_id)
        return None

    def rename_bucket(self, bucket_id: str, name: str) -> Operation[ContactList]:
        """``PATCH /dashboard/bucket/{id}`` ``{name}`` (v2 documents no bucket edit)."""
        return (yield from self.api.rename_bucket(bucket_id, name))

    def _bucket_with(self, contact_list: ContactList, rows: list[dict[str, str]]) -> Operation[ContactList]:
        bucket = yield from self.create_bucket(contact_list.name, contact_list.description, items=rows)
        return bucket.model_copy(update={"size": bucket.size or len(rows)})

    # ------------------------------------------------------------ campaigns

    def campaigns(
        self,
        *,
        page_size: int | None = None,
        status: Literal["pending", "failed", "success"] | None = None,
        name: str | None = None,
        sort_by: str | None = None,
        direction: Literal["ASC", "DSC"] | None = None,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
    ) -> Paged[Campaign]:
        """Campaigns, paged, from the documented ``/service/template/by-client/{client_id}`` route
        (no filters)."""
        if status or name or sort_by or direction or date_from or date_to:
            raise self.unsupported("campaign filters", _ONLY_V2)
        return self.api.campaigns(page_size)

    def _check_campaign(self, campaign: Campaign, sender: str | None) -> None:
        if campaign.start_at is not None:
            raise self.unsupported("scheduled campaigns", _ONLY_V2)

    def _needs_template(self, text: str) -> bool:
        # plain text goes straight into the message body
        return bool(template_variables(text))

    def _launch(
        self, campaign: Campaign, name: str, sender: str | None, bucket_id: str, template_id: str | None,
        count: int | None,
    ) -> Operation[Campaign]:
        """Send ``is_campaign`` with ``reference`` = the campaign name to the bucket, then look the
        campaign up by name in the campaign listing (``options.v1_campaign_lookups`` reads;
        campaigns of that name listed before the send are older ones, not taken).

        If it is not listed by then, the campaign comes back with ``id=None`` (never the name:
        the v1 routes take the numeric id), ``raw["note"]`` saying so and a warning logged; it
        is the newest campaign of that name in :meth:`campaigns` once listed.
        """
        text = campaign.text or ""
        # campaigns already listed under this name are not the one about to be sent
        known = {c.id for c in (yield from self.campaigns().collect()) if c.name == name}
        receipt = yield from self.send_message(
            recipients=bucket_id, body=str(template_id) if template_id else wire.to_squad_placeholders(text),
            use_bucket=True, use_template=bool(template_id), is_campaign=True, reference=name,
            sender=sender,
        )
        found = yield from self._find_sent_campaign(name, known)
        raw: dict[str, Any] = {**(found.raw if found else {}), "batch_id": receipt.batch_id}
        if found is None:
            # never invent an id: the v1 routes take the numeric id, a name gets 404 [seed 001]
            raw["note"] = (
                f"campaign {name!r} was sent (batch {receipt.batch_id}) but is not listed yet, so its "
                f"id is unknown; look it up later in campaigns(): the newest campaign named {name!r}"
            )
            log.warning("provider %r (squad v1): campaign %r sent (batch %s) but not listed after %d "
                        "lookups; returned with no id", self.instance_name, name, receipt.batch_id,
                        self.opts.v1_campaign_lookups)
        base = found or Campaign(id=None, name=name)
        return base.model_copy(update={
            "text": campaign.text, "template_id": template_id, "sender": sender,
            "contact_list_id": bucket_id,
            "status": CampaignStatus.RUNNING if receipt.sent else CampaignStatus.FAILED,
            "raw_status": f"sent={receipt.sent}", "recipient_count": receipt.sent or count,
            "provider_options": {**campaign.provider_options, "batch_id": receipt.batch_id},
            "raw": raw,
        })

    def _find_sent_campaign(self, name: str, known: set[str | None]) -> Operation[Campaign | None]:
        """The newest listed campaign named ``name`` (its ``reference``) whose id is not in
        ``known`` (listed before the send), reading the listing up to
        ``options.v1_campaign_lookups`` times; None if it is not listed by then."""
        for _ in range(self.opts.v1_campaign_lookups):
            found: Campaign | None = None
            for item in (yield from self.campaigns().collect()):
                if item.name == name and item.id and item.id not in known and (
                    found is None or (wire.to_int(item.id) or 0) > (wire.to_int(found.id) or 0)
                ):
                    found = item
            if found is not None:
                return found
        return None

    def get_campaign(self, campaign_id: str) -> Operation[Campaign]:
        """A campaign from the listing (by id, or by name), its state from
        ``statistics/by-campaign`` (running while messages are submitted/pending)."""
        found = yield from self._listed_campaign(campaign_id, by_name=True)
        stats = yield from self.campaign_statistics(found.id)
        return found.model_copy(update={
            "status": wire.campaign_state_from_stats(stats),
            "raw_status": ",".join(f"{k}={v}" for k, v in stats.raw.items()),
            "raw": {**found.raw, "statistics": stats.raw},
        })

    # ------------------------------------------------------------ sender IDs

    def sender_ids(self) -> Operation[list[str]]:
        """Sender IDs ("route sender/:client_ID"; prefix and shape undocumented [INF])."""
        return (yield from self.api.sender_ids())

    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """``statistics/by-client`` [DOC] (the key and secret are accepted), then the sender-ID
        listing [INF path, ``options.v1_sender_path``]: the sender must be among them."""
        yield from self.campaign_statistics()
        stats = f"GET {self.api.message_path('/statistics/by-client/...')}"
        try:
            listed = yield from self.sender_ids()
        except ResourceNotFound:
            return ProviderCheck(endpoint=stats, sender=sender or self.settings.sender,
                                 sender_detail="the sender-ID listing was not found at options.v1_sender_path "
                                               f"({self.opts.v1_sender_path!r}, an inferred path)")
        return ProviderCheck.from_listing(f"{stats}, GET {self.opts.v1_sender_path}",
                                          sender or self.settings.sender, listed)


def _changes(name: str | None, description: str | None, body_key: str, body: str | None) -> dict[str, Any]:
    """A template edit's fields (``body`` in Squad's placeholder syntax), or ValidationError."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if description is not None:
        changes["description"] = description
    if body is not None:
        changes[body_key] = wire.to_squad_placeholders(body)
    if not changes:
        raise ValidationError("nothing to change: give name, description or body", field="template")
    return changes
