"""The Squad (GTBank / HabariPay) SMS adapter: sans-I/O operations for both API generations.

* **v2** (default, ``options.api_version = "v2"``): ``https://api-d.squadco.com`` (sandbox
  ``https://sandbox-api-d.squadco.com``), ``Authorization: Bearer <secret key>``,
  ``/sms/send/instant``, ``/sms/campaign``, ``/sms/template``, ``/sms/bucket`` (CSV uploaded to
  the S3 ``signed_url`` the bucket comes back with).
* **v1** (legacy VAS, ``api_version = "v1"``): ``https://squadbygtco.com:8080``, a key and a
  daily AES secret as headers, ``/service/message...`` (or ``/dashboard/message...``, the older
  path, via ``options.v1_message_prefix``), ``/dashboard/bucket``, ``/dashboard/template``.

Every public operation is a generator (see :mod:`smsgate.provider`); listings return a
:class:`~smsgate.provider.Paged` walked with ``tenant.iterate(instance, paged)``. Operations a
generation lacks raise :class:`~smsgate.errors.Unsupported` naming the one that has them.
See docs/providers/squad.md for the full mapping and the vendor's documentation quirks.
"""

from __future__ import annotations

import csv
import io
import json as _json
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Final, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgate import phone as phonelib
from smsgate.errors import (
    AuthFailed,
    ConfigError,
    InvalidPhoneNumber,
    MalformedResponse,
    ResourceNotFound,
    ValidationError,
)
from smsgate.ids import new_id
from smsgate.models import (
    Campaign,
    CampaignStatus,
    Contact,
    ContactList,
    DeliveryReport,
    OutboundMessage,
    SendResult,
    Stats,
    Status,
    Template,
)
from smsgate.provider import Capabilities, Operation, Page, Paged, Provider, ProviderSettings
from smsgate.text import template_variables
from smsgate_squad import _parse as P
from smsgate_squad.auth import SIGNATURE_HEADER, derive_v1_secret, verify_signature, wat_today

__all__ = [
    "LIVE_BASE_URL",
    "SANDBOX_BASE_URL",
    "V1_BASE_URL",
    "V1_CAPABILITIES",
    "V2_CAPABILITIES",
    "SendReceipt",
    "SquadOptions",
    "SquadProvider",
]

T = TypeVar("T")

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
#: What the legacy v1 API offers: one recipient per send, but status lookup and statistics.
V1_CAPABILITIES: Final = Capabilities(
    send=True,
    bulk=False,
    max_batch=1,
    native_campaigns=True,
    templates=True,
    contact_lists=True,
    delivery_reports=True,
    status_lookup=True,
    statistics=True,
)

_NO_AUTH: Final = "smsgate.squad.no_auth"
_V2_FAIL_HINT: Final = "only the legacy v1 API offers it; set options.api_version = 'v1'"
_V1_FAIL_HINT: Final = "only the v2 API offers it; set options.api_version = 'v2'"


class SquadOptions(BaseModel):
    """``options`` of a Squad provider instance (validated; unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    #: ``"v2"`` (``/sms/...``, Bearer secret key) or ``"v1"`` (legacy VAS on port 8080).
    api_version: Literal["v2", "v1"] = "v2"
    #: Region used to read the local-format numbers Squad returns (``0806...``).
    region: str = "NG"
    #: Send non-Nigerian numbers as international digits instead of refusing them [INF].
    allow_international: bool = False
    #: Recipients per ``/sms/send/instant`` request [INF: no limit documented].
    max_batch: int = Field(default=100, ge=1, le=10_000)
    #: Page size for listings (``perPage`` in v2, ``count`` in v1).
    page_size: int = Field(default=50, ge=1, le=1_000)
    #: v2 bucket delete verb: GitBook says DELETE, docs.squadco.com says POST.
    bucket_delete_method: Literal["DELETE", "POST"] = "DELETE"
    #: Column header of the phone numbers in uploaded bucket CSVs [INF].
    csv_phone_column: str = "phone_number"
    # ---------------------------------------------------------------- v1 only
    #: v1 client id (path parameter of the ``by-client`` routes; part of the daily secret).
    client_id: str | None = None
    #: v1 user id (part of the daily secret).
    user_id: str | None = None
    #: v1 message routes: ``/service`` (GitBook, May 2025) or ``/dashboard`` (docs.squadco.com).
    v1_message_prefix: Literal["/service", "/dashboard"] = "/service"
    #: v1 "get all campaigns" route, as documented (it looks like a template route).
    v1_campaigns_path: str = "/service/template/by-client/{client_id}"
    #: v1 sender-ID route ("route sender/:client_ID", prefix undocumented) [INF].
    v1_sender_path: str = "/dashboard/sender/{client_id}"
    #: v1 header carrying the key [INF: header names undocumented].
    v1_key_header: str = "key"
    #: v1 header carrying the daily secret [INF].
    v1_secret_header: str = "secret"
    #: v1 query parameter that takes ``pageInfo.nextCursor`` [INF].
    v1_cursor_param: str = "cursor"
    #: v1 ``create_campaign``: how many times the campaign listing is read for the campaign just
    #: sent (one after another: an operation cannot wait). Still not listed: ``id=None``.
    v1_campaign_lookups: int = Field(default=3, ge=1, le=10)

    @field_validator("client_id", "user_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("csv_phone_column", "v1_key_header", "v1_secret_header", "v1_cursor_param")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


@dataclass(frozen=True)
class SendReceipt:
    """The answer to a v1 ``POST .../message``: how many messages were queued, and the batch."""

    sent: int
    batch_id: str
    raw: dict[str, Any] = field(default_factory=dict)


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60]
    return slug or "contacts"


def _csv_bytes(rows: Sequence[Mapping[str, str]], phone_column: str) -> bytes:
    headers: list[str] = [phone_column]
    for row in rows:
        for key in row:
            if key not in headers:
                headers.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=headers, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in headers})
    return buf.getvalue().encode("utf-8")


def _int_or_text(value: str) -> int | str:
    """Squad types ids as Integer; send digits as a JSON number, anything else verbatim."""
    return int(value) if value.isdigit() else value


class SquadProvider(Provider):
    """Adapter for Squad's SMS APIs (v2 by default, legacy v1 with ``api_version = "v1"``).

    Credentials: v2 ``secret_key`` (the merchant secret key, ``sandbox_sk_...`` in the
    sandbox). v1 ``key`` plus either ``secret`` (a pre-computed daily secret) or
    ``encryption_iv`` (and optionally ``encryption_key``, default: ``key``) to derive the
    secret with the ``[v1]`` extra. ``webhook_secret`` overrides the key that verifies
    webhook signatures (default ``secret_key``).

    The instance's :attr:`capabilities` follow the configured API version
    (:data:`V2_CAPABILITIES` or :data:`V1_CAPABILITIES`); the class attribute describes the
    default, v2.
    """

    name = "squad"
    capabilities = V2_CAPABILITIES
    default_base_url = LIVE_BASE_URL
    options_model = SquadOptions

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        if not isinstance(self.options, SquadOptions):  # pragma: no cover - set by the base class
            raise ConfigError("squad: options were not validated")
        self.opts: SquadOptions = self.options
        self.v1 = self.opts.api_version == "v1"
        self.requires_sender = not self.v1  # v2's /sms/send/instant needs a sender_id
        where = f"provider {self.instance_name!r} (squad {self.opts.api_version})"
        if self.v1:
            if not settings.secret("key"):
                raise ConfigError(f"{where}: credentials.key is required")
            if not settings.secret("secret"):
                missing = [
                    n for n, v in (
                        ("credentials.encryption_iv", settings.secret("encryption_iv")),
                        ("options.client_id", self.opts.client_id),
                        ("options.user_id", self.opts.user_id),
                    ) if not v
                ]
                if missing:
                    raise ConfigError(
                        f"{where}: configure credentials.secret (pre-computed daily secret), or "
                        f"{', '.join(missing)} to derive it"
                    )
        elif not settings.secret("secret_key"):
            raise ConfigError(f"{where}: credentials.secret_key is required")
        try:
            phonelib.PhoneNormalizer(self.opts.region)
        except ConfigError as exc:
            raise ConfigError(f"{where}: options.region: {exc}") from None
        if settings.base_url is None:
            if self.v1:
                self.base_url = V1_BASE_URL
            elif (settings.secret("secret_key") or "").startswith("sandbox_sk_"):
                self.base_url = SANDBOX_BASE_URL
        caps = V1_CAPABILITIES if self.v1 else replace(V2_CAPABILITIES, max_batch=self.opts.max_batch)
        # the gateway reads capabilities from the instance: expose the configured version's
        self.capabilities = caps
        self._secret_cache: tuple[date, str] | None = None

    # ------------------------------------------------------------ auth & errors

    def _v1_secret(self) -> str:
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
        """Credential values plus the derived v1 secret, so errors can redact them."""
        values = super().secrets()
        if self._secret_cache is not None:
            values.append(self._secret_cache[1])
        return values

    def authenticate(self, request: httpx.Request) -> Operation[None]:
        """v2: ``Authorization: Bearer <secret_key>``; v1: key and daily secret headers."""
        if not request.extensions.get(_NO_AUTH):
            if self.v1:
                request.headers[self.opts.v1_key_header] = self.settings.secret("key") or ""
                request.headers[self.opts.v1_secret_header] = self._v1_secret()
            else:
                request.headers["Authorization"] = f"Bearer {self.settings.secret('secret_key')}"
        return
        yield  # pragma: no cover - generator

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

    @staticmethod
    def _where(response: httpx.Response) -> str:
        return f"{response.request.method} {response.request.url.path}"

    def _malformed(self, response: httpx.Response, what: str) -> MalformedResponse:
        return MalformedResponse(
            f"{self._where(response)}: {what}",
            provider=self.instance_name,
            status_code=response.status_code,
            body=self._safe_body(response),
        )

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        body = self.json(response)
        if not isinstance(body, dict):
            raise self._malformed(response, f"expected a JSON object, got {type(body).__name__}")
        return body

    def _v2_data(self, response: httpx.Response) -> Any:
        """``data`` of a v2 envelope ``{status, success, message, data}``; errors in 200s raise."""
        body = self._body(response)
        if body.get("success") is False:
            raise self.provider_error(
                f"{self._where(response)}: rejected: {body.get('message') or 'success=false'}", response
            )
        if "data" not in body:
            raise self._malformed(response, "no 'data' in the response envelope")
        return body["data"]

    def _v1_data(self, response: httpx.Response) -> Any:
        """``data`` of a v1 envelope ``{status: "SUCCESS"|"CREATED", message, data}``.

        The bucket routes omit ``status`` [DOC]; any other status is an error in a 2xx body.
        """
        body = self._body(response)
        status = body.get("status")
        ok = status is None or (
            str(status).upper() in ("SUCCESS", "CREATED", "OK")
            or (isinstance(status, int) and 200 <= status < 300)
        )
        if not ok or body.get("success") is False:
            raise self.provider_error(
                f"{self._where(response)}: rejected: {body.get('message') or status}", response
            )
        return body.get("data")

    def _mapping(self, response: httpx.Response, value: Any, what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self._malformed(response, f"{what} is {type(value).__name__}, expected an object")
        return value

    def _rows(self, response: httpx.Response, value: Any, what: str) -> list[Mapping[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._malformed(response, f"{what} is {type(value).__name__}, expected a list")
        for i, row in enumerate(value):
            if not isinstance(row, Mapping):
                raise self._malformed(response, f"{what}[{i}] is {type(row).__name__}, expected an object")
        return value

    def _only_v1(self, feature: str) -> None:
        if not self.v1:
            raise self.unsupported(feature, _V2_FAIL_HINT)

    def _only_v2(self, feature: str) -> None:
        if self.v1:
            raise self.unsupported(feature, _V1_FAIL_HINT)

    def _client_id(self) -> str:
        if not self.opts.client_id:
            raise ConfigError(
                f"provider {self.instance_name!r} (squad v1): options.client_id is required for this route"
            )
        return self.opts.client_id

    def _mp(self, suffix: str = "") -> str:
        """A v1 message route under the configured prefix."""
        return f"{self.opts.v1_message_prefix}/message{suffix}"

    def _number(self, e164: str) -> str | None:
        return P.squad_number(e164, allow_international=self.opts.allow_international)

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

    def _with_params(self, request: httpx.Request, **params: Any) -> httpx.Request:
        url = request.url
        for key, value in params.items():
            url = url.copy_set_param(key, str(value))
        return self.request(request.method, str(url))

    def _collect(self, paged: Paged[T]) -> Operation[list[T]]:
        out: list[T] = []
        request: httpx.Request | None = paged.first
        while request is not None:
            page = yield from paged.fetch(request)
            out.extend(page.items)
            request = page.next_request
        return out

    # ------------------------------------------------------------ paging

    def _v2_pages(
        self, path: str, params: Mapping[str, Any], mapper: Callable[[Mapping[str, Any]], T]
    ) -> Paged[T]:
        per_page = int(params.get("perPage") or self.opts.page_size)
        first = self.request("GET", path, params={**params, "perPage": per_page, "page": 1})

        def parse(request: httpx.Request, response: httpx.Response) -> Page[T]:
            data = self._mapping(response, self._v2_data(response), "data")
            rows = self._rows(response, data.get("rows"), "data.rows")
            total = P.to_int(data.get("count"))
            nxt = self._next_page(request, len(rows), total, "perPage", per_page)
            return Page([mapper(r) for r in rows], nxt, total)

        return Paged(self, first, parse)

    def _v1_pages(
        self, path: str, mapper: Callable[[Mapping[str, Any]], T], page_size: int | None = None
    ) -> Paged[T]:
        count = page_size or self.opts.page_size
        first = self.request("GET", path, params={"page": 1, "count": count})

        def parse(request: httpx.Request, response: httpx.Response) -> Page[T]:
            data = self._mapping(response, self._v1_data(response), "data")
            items = self._rows(response, data.get("items"), "data.items")
            total = P.v1_total(data.get("total"))
            nxt = self._next_page(request, len(items), total, "count", count)
            return Page([mapper(i) for i in items], nxt, total)

        return Paged(self, first, parse)

    def _next_page(
        self, request: httpx.Request, n_rows: int, total: int | None, size_param: str, default_size: int
    ) -> httpx.Request | None:
        """The request for the page after ``request`` (numbered ``page`` paging), or None on the last page.

        A page is the last when it is empty or larger than asked, when ``total`` says so, or (no
        total) when it is short.
        """
        page = P.to_int(request.url.params.get("page")) or 1
        size = P.to_int(request.url.params.get(size_param)) or default_size
        more = bool(n_rows) and n_rows <= size and (
            page * size < total if total is not None else n_rows == size
        )
        return self._with_params(request, page=page + 1) if more else None

    def _cursor_pages(
        self, path: str, params: Mapping[str, Any], mapper: Callable[[Mapping[str, Any]], T]
    ) -> Paged[T]:
        first = self.request("GET", path, params=params)

        def parse(request: httpx.Request, response: httpx.Response) -> Page[T]:
            data = self._mapping(response, self._v1_data(response), "data")
            items = self._rows(response, data.get("items"), "data.items")
            info = data.get("pageInfo")
            nxt = None
            if isinstance(info, Mapping) and info.get("hasNextPage") and info.get("nextCursor"):
                cursor = str(info["nextCursor"])
                if request.url.params.get(self.opts.v1_cursor_param) != cursor:  # no loops
                    nxt = self._with_params(request, **{self.opts.v1_cursor_param: cursor})
            return Page([mapper(i) for i in items], nxt, None)

        return Paged(self, first, parse)

    # ------------------------------------------------------------ sending

    def _check_sendable(self, msg: OutboundMessage) -> None:
        if msg.has_media:
            raise self.unsupported("media attachments and locations", "Squad sends text SMS only")

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Send one message: v2 ``POST /sms/send/instant``; v1 ``POST /service/message``.

        In v1 a message whose template has a Squad id and no variables is sent by template
        id (``use_template``); otherwise the rendered text is sent.
        """
        self._check_sendable(msg)
        number = self._number(msg.to)
        if number is None:
            raise self.unsupported(
                "recipients outside Nigeria (+234)", "set options.allow_international to try them"
            )
        if not self.v1:
            results = yield from self._instant([(msg, number)])
            return results[0]
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

    def batch_key(self, msg: OutboundMessage) -> object:
        """One ``/sms/send/instant`` request has one ``sender_id``."""
        return msg.sender

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        """v2: one ``/sms/send/instant`` request for messages of one sender (the gateway batches
        them to ``max_batch``), one result each.

        Non-Nigerian numbers come back ``rejected`` without being sent. v1 has no bulk send.
        """
        if self.v1:
            raise self.unsupported("bulk send", "the v1 API takes one recipient per request")
        results: list[SendResult | None] = [None] * len(msgs)
        todo: list[tuple[int, OutboundMessage, str]] = []
        for i, msg in enumerate(msgs):
            self._check_sendable(msg)
            number = self._number(msg.to)
            if number is None:
                results[i] = SendResult(
                    to=msg.to, status=Status.REJECTED, error="Squad delivers to Nigerian (+234) numbers only",
                    error_code="unsupported_destination",
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
        body = {
            "sender_id": sender,
            "messages": [{"phone_number": number, "message": msg.text} for msg, number in batch],
        }
        response = yield from self.call_ok(self.request("POST", "/sms/send/instant", json=body))
        return self.parse_instant(response, [msg for msg, _ in batch])

    def parse_instant(self, response: httpx.Response, msgs: Sequence[OutboundMessage]) -> list[SendResult]:
        """Read a ``/sms/send/instant`` answer (``data.data.{batch_id, sent[], errors[]}``).

        Results are matched to messages by phone number, in order for repeated numbers; a
        recipient the vendor did not mention is ``unknown``.
        """
        outer = self._mapping(response, self._v2_data(response), "data")
        payload: Mapping[str, Any] = outer
        if isinstance(outer.get("data"), Mapping):  # the documented double nesting
            payload = outer["data"]
        if outer.get("success") is False and not payload.get("sent") and not payload.get("errors"):
            raise self.provider_error(
                f"{self._where(response)}: rejected: {outer.get('message') or 'success=false'}", response
            )
        batch_id = payload.get("batch_id")
        batch = None if batch_id is None else str(batch_id)
        currency = payload.get("currency")
        sent = self._rows(response, payload.get("sent"), "data.data.sent")
        errors = self._rows(response, payload.get("errors"), "data.data.errors")
        if not sent and not errors:
            raise self._malformed(response, "data.data has neither 'sent' nor 'errors' entries")

        def key(item: Mapping[str, Any]) -> str:
            raw = item.get("phone_number", item.get("phonenumber"))
            return P.from_squad_number(raw, self.opts.region) or str(raw)

        sent_q: dict[str, deque[Mapping[str, Any]]] = {}
        for item in sent:
            sent_q.setdefault(key(item), deque()).append(item)
        err_q: dict[str, deque[Mapping[str, Any]]] = {}
        for item in errors:
            err_q.setdefault(key(item), deque()).append(item)
        results = []
        for msg in msgs:
            if sent_q.get(msg.to):
                item = sent_q[msg.to].popleft()
                raw_status = item.get("status")
                status = P.map_status(raw_status)
                if status is Status.UNKNOWN or not status.rank:
                    status = Status.SUBMITTED  # listed under "sent": accepted
                tx = item.get("transaction_id")
                results.append(SendResult(
                    to=msg.to, status=status, raw_status=None if raw_status is None else str(raw_status),
                    provider_message_id=str(tx) if tx is not None else batch, batch_id=batch,
                    cost=P.to_decimal(item.get("cost")),
                    currency=None if currency is None else str(currency),
                ))
            elif err_q.get(msg.to):
                item = err_q[msg.to].popleft()
                text = next(
                    (str(item[k]) for k in ("message", "error", "reason", "description") if item.get(k)),
                    "rejected by Squad",
                )
                code = item.get("code", item.get("status"))
                results.append(SendResult(
                    to=msg.to, status=Status.REJECTED,
                    raw_status=str(item.get("status") or "error"), batch_id=batch,
                    error=text, error_code=None if code is None else str(code),
                ))
            else:
                results.append(SendResult(
                    to=msg.to, status=Status.UNKNOWN, batch_id=batch, raw_status=None,
                    error="Squad's answer did not mention this recipient", error_code="not_reported",
                ))
        return results

    def send_message(
        self,
        *,
        recipients: str,
        body: str,
        use_bucket: bool = False,
        use_template: bool = False,
        is_campaign: bool = False,
        reference: str | None = None,
        sender: str | None = None,
    ) -> Operation[SendReceipt]:
        """v1 ``POST /service/message`` with every documented flag.

        ``recipients`` is a bucket id when ``use_bucket`` else a phone number (local format);
        ``body`` a template id when ``use_template`` else the text; ``reference`` groups a
        campaign (``is_campaign``). ``reference`` is always sent (seed 000 marks it required;
        seed 001 calls it optional): without one a unique ``ref_...`` is generated (``send``
        passes the message's reference or id). ``sender`` is optional [DOC wording].
        """
        self._only_v1("the v1 message route (use send/send_many/create_campaign in v2)")
        payload: dict[str, Any] = {
            "is_campaign": is_campaign,
            "reference": reference or new_id("ref"),
            "use_bucket": use_bucket,
            "recipients": recipients,
            "use_template": use_template,
            "body": body,
        }
        if sender:
            payload["sender"] = sender
        response = yield from self.call_ok(self.request("POST", self._mp(), json=payload))
        envelope = self._body(response)
        data = self._mapping(response, self._v1_data(response), "data")
        batch_id = data.get("batch_id")
        if batch_id in (None, ""):
            raise self._malformed(response, "data.batch_id is missing")
        return SendReceipt(
            sent=P.to_int(data.get("sent")) or 0, batch_id=str(batch_id),
            raw={"status": envelope.get("status"), "message": envelope.get("message"), **dict(data)},
        )

    # ------------------------------------------------------------ status & reports

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """v1: ``GET /service/message/by-params?batch_id=`` (walks the cursor pages).

        v2 documents no status endpoint: raises :class:`~smsgate.errors.Unsupported`.
        """
        if not self.v1:
            raise self.unsupported(
                "status lookup",
                "Squad's v2 SMS API documents no message-status endpoint; use delivery webhooks, "
                "or api_version 'v1' (GET /service/message/by-params)",
            )
        batch = result.batch_id or result.provider_message_id
        if not batch:
            raise ValidationError("the send result has no batch_id to look up", field="batch_id")
        pmid = result.provider_message_id or batch
        paged = self.message_status(batch, provider_message_id=pmid)
        request: httpx.Request | None = paged.first
        seen: list[DeliveryReport] = []
        while request is not None:
            page = yield from paged.fetch(request)
            for report in page.items:
                if report.to == result.to:
                    return report
                seen.append(report)
            request = page.next_request
        if len(seen) == 1:  # a direct send's batch holds one message, whatever its number format
            return seen[0]
        return DeliveryReport(
            provider=self.instance_name, provider_message_id=pmid, batch_id=batch, to=result.to,
            status=Status.UNKNOWN, raw_status=None,
        )

    def message_status(
        self, batch_id: str, *, provider_message_id: str | None = None, page_size: int | None = None
    ) -> Paged[DeliveryReport]:
        """v1 messages of a batch (``by-params?batch_id=``), cursor-paged via ``pageInfo``.

        ``page_size`` is sent as ``count`` like the other v1 listings [INF: undocumented here].
        """
        self._only_v1("message status by batch_id")

        def mapper(item: Mapping[str, Any]) -> DeliveryReport:
            return P.message_report(item, provider=self.instance_name, batch_id=batch_id,
                                    provider_message_id=provider_message_id, region=self.opts.region)

        return self._cursor_pages(self._mp("/by-params"), {"batch_id": batch_id, "count": page_size}, mapper)

    def _item_report(self, item: Mapping[str, Any]) -> DeliveryReport:
        return P.message_report(item, provider=self.instance_name, region=self.opts.region)

    def campaign_messages(self, campaign_id: str, *, page_size: int | None = None) -> Paged[DeliveryReport]:
        """v1 messages of one campaign (``/message/campaign/messages/by-campaign/{id}``)."""
        self._only_v1("campaign messages")
        return self._v1_pages(self._mp(f"/campaign/messages/by-campaign/{campaign_id}"),
                              self._item_report, page_size)

    def messages_by_phone(self, phone: str, *, page_size: int | None = None) -> Paged[DeliveryReport]:
        """v1 messages sent to ``phone`` (E.164 or local), ``/message/by-phone/{phone}``."""
        self._only_v1("messages by phone number")
        number = self._any_number(phone, "messages_by_phone")
        return self._v1_pages(self._mp(f"/by-phone/{number}"), self._item_report, page_size)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """Verify ``x-squad-encrypted-body`` and read the delivery report(s).

        The signature is HMAC-SHA512 hex of the raw body keyed with the secret key [DOC],
        compared case-insensitively. Squad documents no SMS callback payload; this reads the
        [INF] shape the emulator sends -- Squad's webhook envelope
        ``{"Event", "TransactionRef", "Body": <v1 message item + batch_id>}`` -- and also a
        bare item or a list of items. Raises :class:`~smsgate.errors.AuthFailed` for a missing
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
            payload = _json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponse("webhook: body is not JSON", provider=self.instance_name) from exc
        ref = None
        if isinstance(payload, Mapping) and ("Body" in payload or "body" in payload):
            ref = payload.get("TransactionRef")
            inner = payload.get("Body", payload.get("body"))
            items = inner if isinstance(inner, list) else [inner]
        elif isinstance(payload, list):
            items = payload
        else:
            items = [payload]
        reports = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or "status" not in item:
                raise MalformedResponse(f"webhook: item {i} has no 'status'", provider=self.instance_name)
            tx = item.get("transaction_id") or ref
            batch = item.get("batch_id")
            # the id the adapter recorded at send time: the v1 batch_id, the v2 transaction_id
            pmid = batch if (self.v1 and batch) else tx
            reports.append(P.message_report(
                item, provider=self.instance_name, region=self.opts.region,
                provider_message_id=None if pmid is None else str(pmid),
                batch_id=None if batch is None else str(batch),
            ))
        return reports

    # ------------------------------------------------------------ statistics

    def campaign_statistics(self, campaign_id: str | None = None) -> Operation[Stats]:
        """v1 counts for every campaign (``statistics/by-client``) or one (``by-campaign``)."""
        self._only_v1("campaign statistics")
        path = (self._mp(f"/statistics/by-campaign/{campaign_id}") if campaign_id is not None
                else self._mp(f"/statistics/by-client/{self._client_id()}"))
        response = yield from self.call_ok(self.request("GET", path, params={"page": 1, "count": 10}))
        data = self._mapping(response, self._v1_data(response), "data")
        return P.counts_stats(data, provider=self.instance_name)

    def hourly_statistics(self, day: date | str) -> Operation[Stats]:
        """v1 hourly statistics for ``day`` (``message.summary/hourly-statistics/by-client``)."""
        self._only_v1("hourly statistics")
        if isinstance(day, str):
            try:
                day = date.fromisoformat(day)
            except ValueError:
                raise ValidationError("expected a date YYYY-MM-DD", field="date", value=day) from None
        path = f"{self.opts.v1_message_prefix}/message.summary/hourly-statistics/by-client/{self._client_id()}"
        response = yield from self.call_ok(self.request("GET", path, params={"date": day.isoformat()}))
        data = self._mapping(response, self._v1_data(response), "data")
        return P.hourly_stats(data, day, provider=self.instance_name)

    def statistics(self, **filters: Any) -> Operation[Stats]:
        """Neutral statistics (v1): ``date=`` hourly, ``campaign_id=`` one campaign, else all."""
        if not self.v1:
            raise self.unsupported("statistics", "Squad's v2 SMS API documents no statistics; " + _V2_FAIL_HINT)
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
        """v2 ``POST /sms/template``; v1 ``POST /dashboard/template``. ``{name}`` becomes ``#$name$#``."""
        body = P.to_squad_placeholders(template.body)
        description = template.description or template.name
        if self.v1:
            payload: dict[str, Any] = {"name": template.name, "body": body,
                                       "client_id": _int_or_text(self._client_id()), "description": description}
            response = yield from self.call_ok(self.request("POST", "/dashboard/template", json=payload))
            made = P.template_from_v1(self._mapping(response, self._v1_data(response), "data"),
                                      self.instance_name, body=template.body)
        else:
            payload = {"name": template.name, "description": description, "message": body}
            response = yield from self.call_ok(self.request("POST", "/sms/template", json=payload))
            made = P.template_from_v2(self._mapping(response, self._v2_data(response), "data"),
                                      self.instance_name)
        ident = made.provider_ids.get(self.instance_name)
        if not ident:
            raise self._malformed(response, "the created template has no id")
        return template.model_copy(update={
            "provider_ids": {**template.provider_ids, self.instance_name: ident}, "raw": made.raw,
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
        """Templates, paged. v2 takes ``sort_by``, ``dir`` (``ASC``/``DSC``) and a date range."""
        def mapper_v2(row: Mapping[str, Any]) -> Template:
            return P.template_from_v2(row, self.instance_name)

        def mapper_v1(item: Mapping[str, Any]) -> Template:
            return P.template_from_v1(item, self.instance_name)

        if self.v1:
            if sort_by or direction or date_from or date_to:
                raise self.unsupported("template sorting/date filters", _V1_FAIL_HINT)
            return self._v1_pages(f"/dashboard/template/by-client/{self._client_id()}", mapper_v1, page_size)
        params = {"perPage": page_size, "sort_by": sort_by, "dir": direction,
                  "date_from": None if date_from is None else str(date_from),
                  "date_to": None if date_to is None else str(date_to)}
        return self._v2_pages("/sms/template", params, mapper_v2)

    def list_templates(self) -> Operation[list[Template]]:
        """Every template at Squad (all pages)."""
        return (yield from self._collect(self.templates()))

    def edit_template(
        self, template_id: str, *, name: str | None = None, description: str | None = None,
        body: str | None = None,
    ) -> Operation[Template]:
        """v2 ``PATCH /sms/template/{uuid}``; v1 ``PATCH /dashboard/template/{id}`` (``body``)."""
        payload: dict[str, Any] = {}
        if name is not None:
            payload["name"] = name
        if description is not None:
            payload["description"] = description
        if body is not None:
            payload["body" if self.v1 else "message"] = P.to_squad_placeholders(body)
        if not payload:
            raise ValidationError("nothing to change: give name, description or body", field="template")
        if self.v1:
            response = yield from self.call_ok(self.request("PATCH", f"/dashboard/template/{template_id}",
                                                            json=payload))
            return P.template_from_v1(self._mapping(response, self._v1_data(response), "data"),
                                      self.instance_name, body=body)
        response = yield from self.call_ok(self.request("PATCH", f"/sms/template/{template_id}", json=payload))
        return P.template_from_v2(self._mapping(response, self._v2_data(response), "data"), self.instance_name)

    def delete_template(self, template_id: str) -> Operation[Template | None]:
        """v2 ``DELETE /sms/template/{uuid}`` (returns it); v1 ``DELETE /dashboard/template/{id}`` [INF path]."""
        if self.v1:
            response = yield from self.call_ok(self.request("DELETE", f"/dashboard/template/{template_id}"))
            self._v1_data(response)
            return None
        response = yield from self.call_ok(self.request("DELETE", f"/sms/template/{template_id}"))
        data = self._v2_data(response)
        return P.template_from_v2(data, self.instance_name) if isinstance(data, Mapping) else None

    # ------------------------------------------------------------ buckets

    def create_bucket(
        self, name: str, description: str = "", *, file_name: str | None = None,
        items: Sequence[Mapping[str, str]] | None = None,
    ) -> Operation[ContactList]:
        """Create a bucket. v2 ``POST /sms/bucket`` (``raw["signed_url"]`` takes the CSV next);
        v1 ``POST /dashboard/bucket`` with the ``items`` inline."""
        if self.v1:
            payload: dict[str, Any] = {
                "name": name, "description": description or name,
                "client_id": _int_or_text(self._client_id()), "items": [dict(i) for i in items or []],
            }
            response = yield from self.call_ok(self.request("POST", "/dashboard/bucket", json=payload))
            return P.contact_list_from_v1(self._mapping(response, self._v1_data(response), "data"),
                                          self.instance_name)
        if items is not None:
            raise ValidationError("v2 buckets take their numbers as a CSV upload (upload_bucket_csv)",
                                  field="items")
        file_name = file_name or f"{_slug(name)}.csv"
        if not file_name.lower().endswith(".csv"):
            raise ValidationError("must end with .csv", field="file_name", value=file_name)
        payload = {"name": name, "description": description or name, "file_name": file_name}
        response = yield from self.call_ok(self.request("POST", "/sms/bucket", json=payload))
        bucket = P.contact_list_from_v2(self._mapping(response, self._v2_data(response), "data"),
                                        self.instance_name)
        if not bucket.id:
            raise self._malformed(response, "the created bucket has no uuid")
        return bucket

    def upload_bucket_csv(self, signed_url: str, content: bytes | str) -> Operation[None]:
        """PUT a CSV to a v2 bucket's pre-signed S3 URL (no Squad credentials are sent).

        When the URL signs ``x-amz-acl`` (Squad's does), the matching header is sent.
        """
        self._only_v2("bucket CSV upload")
        if not signed_url.startswith(("https://", "http://")):
            raise ValidationError("expected an absolute signed URL", field="signed_url")
        url = httpx.URL(signed_url)
        headers = {"Content-Type": "text/csv"}
        signed = url.params.get("X-Amz-SignedHeaders", "").lower().split(";")
        if "x-amz-acl" in signed:
            headers["x-amz-acl"] = url.params.get("x-amz-acl") or "public-read"
        data = content.encode("utf-8") if isinstance(content, str) else content
        request = self.request("PUT", signed_url, content=data, headers=headers)
        request.extensions[_NO_AUTH] = True
        response = yield request
        if response.status_code >= 300:
            if response.status_code < 400:
                raise self.provider_error(
                    f"PUT {url.path}: bucket upload answered HTTP {response.status_code}", response
                )
            self.raise_for_status(response)

    def buckets(self, *, page_size: int | None = None) -> Paged[ContactList]:
        """Buckets: v2 ``GET /sms/bucket``; v1 ``GET /dashboard/bucket/by-client/{client_id}``."""
        if self.v1:
            return self._v1_pages(
                f"/dashboard/bucket/by-client/{self._client_id()}",
                lambda i: P.contact_list_from_v1(i, self.instance_name), page_size,
            )
        return self._v2_pages("/sms/bucket", {"perPage": page_size},
                              lambda r: P.contact_list_from_v2(r, self.instance_name))

    def get_bucket(self, bucket_id: str) -> Operation[ContactList]:
        """One bucket, found in the bucket listing (no single-bucket route is documented)."""
        paged = self.buckets()
        request: httpx.Request | None = paged.first
        while request is not None:
            page = yield from paged.fetch(request)
            for bucket in page.items:
                if bucket.id == str(bucket_id):
                    return bucket
            request = page.next_request
        raise ResourceNotFound(f"bucket {bucket_id!r} not found", provider=self.instance_name)

    def delete_bucket(self, bucket_id: str) -> Operation[ContactList | None]:
        """v2 ``DELETE`` (or ``POST``, ``options.bucket_delete_method``) ``/sms/bucket/{uuid}``;
        v1 ``DELETE /dashboard/bucket/{id}``."""
        if self.v1:
            response = yield from self.call_ok(self.request("DELETE", f"/dashboard/bucket/{bucket_id}"))
            self._v1_data(response)
            return None
        response = yield from self.call_ok(
            self.request(self.opts.bucket_delete_method, f"/sms/bucket/{bucket_id}")
        )
        data = self._v2_data(response)
        return P.contact_list_from_v2(data, self.instance_name) if isinstance(data, Mapping) else None

    def rename_bucket(self, bucket_id: str, name: str) -> Operation[ContactList]:
        """v1 ``PATCH /dashboard/bucket/{id}`` ``{name}`` (v2 documents no bucket edit)."""
        self._only_v1("renaming buckets")
        response = yield from self.call_ok(self.request("PATCH", f"/dashboard/bucket/{bucket_id}",
                                                        json={"name": name}))
        return P.contact_list_from_v1(self._mapping(response, self._v1_data(response), "data"),
                                      self.instance_name)

    def _rows_for(self, contacts: Iterable[Contact | str], where: str) -> list[dict[str, str]]:
        rows = []
        for i, contact in enumerate(contacts):
            if isinstance(contact, str):
                rows.append({self.opts.csv_phone_column: self._any_number(contact, f"{where}[{i}]")})
                continue
            row = {self.opts.csv_phone_column: self._any_number(contact.phone, f"{where}[{i}]")}
            if contact.name is not None:
                row["name"] = contact.name
            row.update({k: str(v) for k, v in contact.fields.items() if k != self.opts.csv_phone_column})
            rows.append(row)
        if not rows:
            raise ValidationError("a bucket needs at least one phone number", field=where)
        return rows

    def _bucket_with(self, contact_list: ContactList, rows: list[dict[str, str]]) -> Operation[ContactList]:
        if self.v1:
            bucket = yield from self.create_bucket(contact_list.name, contact_list.description, items=rows)
        else:
            bucket = yield from self.create_bucket(contact_list.name, contact_list.description)
            signed = bucket.raw.get("signed_url")
            if not isinstance(signed, str) or not signed:
                raise MalformedResponse(
                    "POST /sms/bucket: the created bucket has no signed_url", provider=self.instance_name
                )
            yield from self.upload_bucket_csv(signed, _csv_bytes(rows, self.opts.csv_phone_column))
        return bucket.model_copy(update={"size": bucket.size or len(rows)})

    def create_contact_list(self, contact_list: ContactList, phones: Sequence[str]) -> Operation[ContactList]:
        """A bucket holding ``phones``: v2 creates it and PUTs the CSV to its signed URL; v1
        posts the numbers inline."""
        rows = self._rows_for(phones, "phones")
        return (yield from self._bucket_with(contact_list, rows))

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
        """Campaigns, paged: v2 ``GET /sms/campaign`` (filters as documented); v1 the documented
        ``/service/template/by-client/{client_id}`` route."""
        if self.v1:
            if status or name or sort_by or direction or date_from or date_to:
                raise self.unsupported("campaign filters", _V1_FAIL_HINT)
            path = self.opts.v1_campaigns_path.format(client_id=self._client_id())
            return self._v1_pages(path, lambda i: P.campaign_from_v1(i, self.instance_name), page_size)
        params = {"perPage": page_size, "status": status, "name": name, "sort_by": sort_by, "dir": direction,
                  "date_from": None if date_from is None else str(date_from),
                  "date_to": None if date_to is None else str(date_to)}
        return self._v2_pages("/sms/campaign", params, lambda r: P.campaign_from_v2(r, self.instance_name))

    def create_campaign(self, campaign: Campaign) -> Operation[Campaign]:
        """Run a campaign natively.

        Audience: ``contact_list_id`` (a bucket id) or ``contacts`` (a bucket is created and
        filled first). Message: ``template_id`` (a Squad template id) or ``text`` (v2 always,
        v1 when it has ``{placeholders}``: a template is created first). v2 then posts
        ``/sms/campaign`` (``is_scheduled`` from ``start_at``); v1 sends ``is_campaign`` with
        ``reference`` = the campaign name to the bucket and looks the campaign up by name in
        the campaign listing (``options.v1_campaign_lookups`` reads; campaigns of that name
        listed before the send are older ones, not taken). If it is not listed by
        then, the campaign comes back with ``id=None`` (never the name: the v1 routes take the
        numeric id), ``raw["note"]`` saying so and a warning logged; it is the newest campaign
        of that name in :meth:`campaigns` once listed.
        """
        sender = campaign.sender or self.settings.sender
        if not campaign.contact_list_id and not campaign.contacts:
            raise ValidationError("needs contact_list_id or contacts", field="campaign")
        if not campaign.template_id and not campaign.text:
            raise ValidationError("needs template_id or text", field="campaign")
        name = campaign.name or "smsgate campaign"
        if self.v1 and campaign.start_at is not None:
            raise self.unsupported("scheduled campaigns", _V1_FAIL_HINT)
        if not self.v1 and not sender:
            raise ConfigError(f"provider {self.instance_name!r} (squad v2): a campaign needs a sender_id")
        bucket_id = campaign.contact_list_id
        created_bucket: ContactList | None = None
        if not bucket_id:
            rows = self._rows_for(campaign.contacts, "contacts")
            created_bucket = yield from self._bucket_with(ContactList(name=name, description=name), rows)
            bucket_id = created_bucket.id
        template_id = campaign.template_id
        text = campaign.text or ""
        if not template_id and (not self.v1 or template_variables(text)):
            made = yield from self.create_template(Template(name=name, body=text, description=name))
            template_id = made.provider_ids[self.instance_name]
        count = len(campaign.contacts) or (created_bucket.size if created_bucket else None)
        if self.v1:
            # campaigns already listed under this name are not the one about to be sent
            known = {c.id for c in (yield from self._collect(self.campaigns())) if c.name == name}
            receipt = yield from self.send_message(
                recipients=str(bucket_id), body=str(template_id) if template_id else P.to_squad_placeholders(text),
                use_bucket=True, use_template=bool(template_id), is_campaign=True, reference=name,
                sender=sender,
            )
            found = yield from self._v1_find_campaign(name, known)
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
                "contact_list_id": str(bucket_id),
                "status": CampaignStatus.RUNNING if receipt.sent else CampaignStatus.FAILED,
                "raw_status": f"sent={receipt.sent}", "recipient_count": receipt.sent or count,
                "provider_options": {**campaign.provider_options, "batch_id": receipt.batch_id},
                "raw": raw,
            })
        payload: dict[str, Any] = {
            "name": name, "bucket_id": bucket_id, "sender_id": sender,
            "is_scheduled": campaign.start_at is not None, "template_id": template_id,
        }
        if campaign.start_at is not None:
            payload["scheduled_for"] = P.iso_z(campaign.start_at)
        response = yield from self.call_ok(self.request("POST", "/sms/campaign", json=payload))
        made_campaign = P.campaign_from_v2(self._mapping(response, self._v2_data(response), "data"),
                                           self.instance_name)
        if not made_campaign.id:
            raise self._malformed(response, "the created campaign has no uuid")
        return made_campaign.model_copy(update={
            "text": campaign.text, "recipient_count": count,
            "start_at": made_campaign.start_at or campaign.start_at,
        })

    def _v1_find_campaign(self, name: str, known: set[str | None]) -> Operation[Campaign | None]:
        """The newest listed v1 campaign named ``name`` (its ``reference``) whose id is not in
        ``known`` (listed before the send), reading the listing up to
        ``options.v1_campaign_lookups`` times; None if it is not listed by then."""
        for _ in range(self.opts.v1_campaign_lookups):
            found: Campaign | None = None
            for item in (yield from self._collect(self.campaigns())):
                if item.name == name and item.id and item.id not in known and (
                    found is None or (P.to_int(item.id) or 0) > (P.to_int(found.id) or 0)
                ):
                    found = item
            if found is not None:
                return found
        return None

    def get_campaign(self, campaign_id: str) -> Operation[Campaign]:
        """A campaign with its state: v2 from the campaign listing; v1 from the listing plus
        ``statistics/by-campaign`` (running while messages are submitted/pending)."""
        found: Campaign | None = None
        paged = self.campaigns()
        request: httpx.Request | None = paged.first
        while request is not None and found is None:
            page = yield from paged.fetch(request)
            found = next((c for c in page.items if c.id == str(campaign_id)), None)
            if found is None and self.v1:
                found = next((c for c in page.items if c.name == str(campaign_id)), None)
            request = page.next_request
        if found is None:
            raise ResourceNotFound(f"campaign {campaign_id!r} not found", provider=self.instance_name)
        if not self.v1:
            return found
        stats = yield from self.campaign_statistics(found.id)
        return found.model_copy(update={
            "status": P.campaign_state_from_stats(stats),
            "raw_status": ",".join(f"{k}={v}" for k, v in stats.raw.items()),
            "raw": {**found.raw, "statistics": stats.raw},
        })

    def delete_campaign(self, campaign_id: str) -> Operation[Campaign | None]:
        """v2 ``DELETE /sms/campaign/{uuid}`` [INF: the docs print the bucket route here]."""
        self._only_v2("deleting campaigns")
        response = yield from self.call_ok(self.request("DELETE", f"/sms/campaign/{campaign_id}"))
        data = self._v2_data(response)
        return P.campaign_from_v2(data, self.instance_name) if isinstance(data, Mapping) else None

    # ------------------------------------------------------------ sender IDs

    def sender_ids(self) -> Operation[list[str]]:
        """v1 sender IDs ("route sender/:client_ID"; prefix and shape undocumented [INF]).

        v2 documents no sender-ID API (they are registered in the dashboard).
        """
        if not self.v1:
            raise self.unsupported("listing sender IDs",
                                   "v2 sender IDs are registered in the Squad dashboard; no API is documented")
        path = self.opts.v1_sender_path.format(client_id=self._client_id())
        response = yield from self.call_ok(self.request("GET", path))
        data = self._v1_data(response)
        items = data.get("items") if isinstance(data, Mapping) else data
        out: list[str] = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, Mapping):
                value = next((item[k] for k in ("sender_id", "sender", "name") if item.get(k)), None)
                if value is not None:
                    out.append(str(value))
        return out
