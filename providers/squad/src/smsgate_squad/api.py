"""Squad's SMS endpoints, one method each: the request as the vendor documents it, the answer read.

:class:`V2Api` is the current API (``/sms/...``, JSON envelope ``{status, success, message,
data}``, numbered ``page``/``perPage`` paging); :class:`V1Api` the legacy VAS API
(``/service/message...``, ``/dashboard/...``, envelope ``{status: "SUCCESS"|"CREATED",
message, data}``, ``page``/``count`` paging and cursor paging of message lookups). Both share
:class:`SquadApi`: envelope checks, malformed-answer errors and page walking.

Each endpoint method is an operation (a generator yielding requests, see
:mod:`smsgate.provider`) or a :class:`~smsgate.provider.Paged` listing, and returns neutral
models built by :mod:`smsgate_squad.wire`. Nothing here chooses between endpoints or checks
the caller's input beyond what the endpoint needs: that is :mod:`smsgate_squad.provider`'s job.
Requests go through the provider (``call_ok``: credentials, typed errors for non-2xx).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, Final, TypeVar

import httpx

from smsgate import downloads
from smsgate.errors import ConfigError, MalformedResponse, mask_path, request_where
from smsgate.ids import new_id
from smsgate.models import (
    Campaign,
    ContactList,
    DeliveryReport,
    OutboundMessage,
    SendResult,
    Stats,
    Status,
    Template,
)
from smsgate.provider import Operation, Page, Paged, Provider
from smsgate_squad import wire
from smsgate_squad.options import SquadOptions
from smsgate_squad.wire import SendReceipt

__all__ = ["NO_AUTH", "SquadApi", "V1Api", "V2Api"]

T = TypeVar("T")
Row = Mapping[str, Any]

#: Request extension: send without Squad credentials (the pre-signed S3 upload).
NO_AUTH: Final = "smsgate.squad.no_auth"


class SquadApi:
    """What both API generations share: envelopes, malformed-answer errors, numbered paging."""

    def __init__(self, provider: Provider, options: SquadOptions) -> None:
        self.provider = provider
        self.opts = options

    @property
    def instance(self) -> str:
        """The provider instance's name (recorded on every model read)."""
        return self.provider.instance_name

    @property
    def currency(self) -> str | None:
        """The instance's configured ``currency``: the unit of the costs Squad gives without one."""
        return self.provider.settings.currency

    def call(self, method: str, path: str, **kwargs: Any) -> Operation[httpx.Response]:
        """Send one request through the provider; a non-2xx answer raises a typed error."""
        return (yield from self.provider.call_ok(self.provider.request(method, path, **kwargs)))

    # ------------------------------------------------------------ reading answers

    @staticmethod
    def where(response: httpx.Response) -> str:
        """``METHOD /path`` of the request ``response`` answers, for error messages."""
        return f"{request_where(response)}"

    def malformed(self, response: httpx.Response, what: str) -> MalformedResponse:
        """A :class:`MalformedResponse` naming the route and what was wrong."""
        return self.provider.malformed(what, response)

    def body(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON object of an answer, or :class:`MalformedResponse`."""
        body = self.provider.json(response)
        if not isinstance(body, dict):
            raise self.malformed(response, f"expected a JSON object, got {type(body).__name__}")
        return body

    def data(self, response: httpx.Response) -> Any:
        """``data`` of this generation's envelope (an error in a 2xx body raises)."""
        raise NotImplementedError

    def mapping(self, response: httpx.Response, value: Any, what: str) -> Row:
        """``value`` if it is an object, else :class:`MalformedResponse` naming ``what``."""
        if not isinstance(value, Mapping):
            raise self.malformed(response, f"{what} is {type(value).__name__}, expected an object")
        return value

    def data_object(self, response: httpx.Response) -> Row:
        """``data`` of the envelope, which must be an object."""
        return self.mapping(response, self.data(response), "data")

    def rows(self, response: httpx.Response, value: Any, what: str) -> list[Row]:
        """``value`` as a list of objects (``None`` is empty), else :class:`MalformedResponse`."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.malformed(response, f"{what} is {type(value).__name__}, expected a list")
        for i, row in enumerate(value):
            if not isinstance(row, Mapping):
                raise self.malformed(response, f"{what}[{i}] is {type(row).__name__}, expected an object")
        return value

    # ------------------------------------------------------------ paging

    def with_params(self, request: httpx.Request, **params: Any) -> httpx.Request:
        """``request`` again with ``params`` set in its query."""
        url = request.url
        for key, value in params.items():
            url = url.copy_set_param(key, str(value))
        return self.provider.request(request.method, str(url))

    def next_page(
        self, request: httpx.Request, n_rows: int, total: int | None, size_param: str, default_size: int
    ) -> httpx.Request | None:
        """The request for the page after ``request`` (numbered ``page`` paging), or None on the last page.

        A page is the last when it is empty or larger than asked, when ``total`` says so, or (no
        total) when it is short. A ``total`` below the rows already listed is not believed (v1's
        message lists answer ``[{"total": "0"}]`` [DOC quirk]): the page's size decides then.
        """
        page = wire.to_int(request.url.params.get("page")) or 1
        size = wire.to_int(request.url.params.get(size_param)) or default_size
        if total is not None and total < (page - 1) * size + n_rows:
            total = None
        more = bool(n_rows) and n_rows <= size and (
            page * size < total if total is not None else n_rows == size
        )
        return self.with_params(request, page=page + 1) if more else None


class V2Api(SquadApi):
    """Squad's v2 SMS API: ``/sms/send/instant``, ``/sms/template``, ``/sms/bucket``, ``/sms/campaign``."""

    def data(self, response: httpx.Response) -> Any:
        """``data`` of a v2 envelope ``{status, success, message, data}``; errors in 200s raise."""
        body = self.body(response)
        if body.get("success") is False:
            raise self.provider.provider_error(
                f"{self.where(response)}: rejected: {body.get('message') or 'success=false'}", response
            )
        if "data" not in body:
            raise self.malformed(response, "no 'data' in the response envelope")
        return body["data"]

    def pages(self, path: str, params: Mapping[str, Any], mapper: Callable[[Row], T]) -> Paged[T]:
        """A v2 listing ``{data: {count, rows}}``, ``page``/``perPage`` numbered."""
        per_page = int(params.get("perPage") or self.opts.page_size)
        first = self.provider.request("GET", path, params={**params, "perPage": per_page, "page": 1})

        def parse(request: httpx.Request, response: httpx.Response) -> Page[T]:
            data = self.data_object(response)
            rows = self.rows(response, data.get("rows"), "data.rows")
            total = wire.to_int(data.get("count"))
            nxt = self.next_page(request, len(rows), total, "perPage", per_page)
            return Page([mapper(r) for r in rows], nxt, total)

        return Paged(self.provider, first, parse)

    # ------------------------------------------------------------ sending

    def send_instant(self, sender: str, batch: Sequence[tuple[OutboundMessage, str]]) -> Operation[list[SendResult]]:
        """``POST /sms/send/instant`` ``{sender_id, messages: [{phone_number, message}]}``: one
        result per message (``batch`` pairs each message with its number in Squad's format)."""
        body = {
            "sender_id": sender,
            "messages": [{"phone_number": number, "message": msg.text} for msg, number in batch],
        }
        response = yield from self.call("POST", "/sms/send/instant", json=body)
        return self.read_send_instant(response, [msg for msg, _ in batch])

    def read_send_instant(self, response: httpx.Response, msgs: Sequence[OutboundMessage]) -> list[SendResult]:
        """Read a ``/sms/send/instant`` answer (``data.data.{batch_id, sent[], errors[]}``).

        Results are matched to messages by phone number, in order for repeated numbers; a
        recipient the vendor did not mention is ``unknown``. ``success: false`` (in the envelope
        or inside ``data``) is a refusal only when the answer lists no ``sent`` or ``errors``
        entry: an answer listing what it sent took those messages, whatever its flags say, and a
        provider never raises once the vendor accepted something (the gateway would send them
        again through the next provider).
        """
        envelope = self.body(response)
        refused = envelope.get("success") is False
        outer = envelope.get("data")
        if not isinstance(outer, Mapping):
            if refused:
                raise self.provider.provider_error(
                    f"{self.where(response)}: rejected: {envelope.get('message') or 'success=false'}", response)
            outer = self.mapping(response, outer, "data")
        payload: Row = outer
        if isinstance(outer.get("data"), Mapping):  # the documented double nesting
            payload = outer["data"]
        if (refused or outer.get("success") is False) and not payload.get("sent") and not payload.get("errors"):
            message = outer.get("message") or envelope.get("message") or "success=false"
            raise self.provider.provider_error(f"{self.where(response)}: rejected: {message}", response)
        batch_id = payload.get("batch_id")
        batch = None if batch_id is None else str(batch_id)
        currency = payload.get("currency")
        sent = self.rows(response, payload.get("sent"), "data.data.sent")
        errors = self.rows(response, payload.get("errors"), "data.data.errors")
        if not sent and not errors:
            raise self.malformed(response, "data.data has neither 'sent' nor 'errors' entries")

        def key(item: Row) -> str:
            raw = item.get("phone_number", item.get("phonenumber"))
            return wire.from_squad_number(raw, self.opts.region) or str(raw)

        sent_q: dict[str, deque[Row]] = {}
        for item in sent:
            sent_q.setdefault(key(item), deque()).append(item)
        err_q: dict[str, deque[Row]] = {}
        for item in errors:
            err_q.setdefault(key(item), deque()).append(item)
        results = []
        for msg in msgs:
            if sent_q.get(msg.to):
                item = sent_q[msg.to].popleft()
                raw_status = item.get("status")
                status = wire.map_status(raw_status)
                if status is Status.UNKNOWN or not status.rank:
                    status = Status.SUBMITTED  # listed under "sent": accepted
                tx = item.get("transaction_id")
                results.append(SendResult(
                    to=msg.to, status=status, raw_status=None if raw_status is None else str(raw_status),
                    provider_message_id=str(tx) if tx is not None else batch, batch_id=batch,
                    cost=wire.to_decimal(item.get("cost")),
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

    # ------------------------------------------------------------ templates

    def _template(self, response: httpx.Response) -> Template:
        return wire.template_from_v2(self.data_object(response), self.instance)

    def create_template(self, name: str, description: str, message: str) -> Operation[Template]:
        """``POST /sms/template`` ``{name, description, message}`` (``message`` in Squad's syntax)."""
        response = yield from self.call("POST", "/sms/template",
                                        json={"name": name, "description": description, "message": message})
        made = self._template(response)
        if not made.provider_ids.get(self.instance):
            raise self.malformed(response, "the created template has no id")
        return made

    def templates(self, params: Mapping[str, Any]) -> Paged[Template]:
        """``GET /sms/template`` (``perPage``, ``sort_by``, ``dir``, ``date_from``, ``date_to``)."""
        return self.pages("/sms/template", params, lambda row: wire.template_from_v2(row, self.instance))

    def edit_template(self, template_id: str, changes: Mapping[str, Any]) -> Operation[Template]:
        """``PATCH /sms/template/{uuid}`` with any of ``name``, ``description``, ``message``."""
        response = yield from self.call("PATCH", f"/sms/template/{template_id}", json=dict(changes))
        return self._template(response)

    def delete_template(self, template_id: str) -> Operation[Template | None]:
        """``DELETE /sms/template/{uuid}``: the deleted template, when the answer shows it."""
        response = yield from self.call("DELETE", f"/sms/template/{template_id}")
        data = self.data(response)
        return wire.template_from_v2(data, self.instance) if isinstance(data, Mapping) else None

    # ------------------------------------------------------------ buckets

    def create_bucket(self, name: str, description: str, file_name: str) -> Operation[ContactList]:
        """``POST /sms/bucket`` ``{name, description, file_name}``: the bucket, with
        ``raw["signed_url"]`` to PUT its CSV to."""
        response = yield from self.call("POST", "/sms/bucket",
                                        json={"name": name, "description": description, "file_name": file_name})
        bucket = wire.contact_list_from_v2(self.data_object(response), self.instance)
        if not bucket.id:
            raise self.malformed(response, "the created bucket has no uuid")
        return bucket

    def upload_csv(self, signed_url: str, data: bytes) -> Operation[None]:
        """``PUT`` a CSV to a bucket's pre-signed S3 URL, without Squad credentials, under the
        download policy (:func:`smsgate.downloads.vendor_named`: a host with a non-public address
        is refused, :class:`~smsgate.errors.DownloadRefused`, unless it is the ``base_url``'s).

        When the URL signs ``x-amz-acl`` (Squad's does), the matching header is sent.
        """
        url = httpx.URL(signed_url)
        headers = {"Content-Type": "text/csv"}
        signed = url.params.get("X-Amz-SignedHeaders", "").lower().split(";")
        if "x-amz-acl" in signed:
            headers["x-amz-acl"] = url.params.get("x-amz-acl") or "public-read"
        request = self.provider.request("PUT", signed_url, content=data, headers=headers)
        request.extensions[NO_AUTH] = True
        # a URL the vendor's answer names: public hosts only, unless on the configured origin (SSRF)
        downloads.vendor_named(request, self.provider.base_url)
        response = yield request
        if response.status_code >= 300:
            if response.status_code < 400:
                raise self.provider.provider_error(
                    f"PUT {mask_path(url.path)}: bucket upload answered HTTP {response.status_code}", response
                )
            self.provider.raise_for_status(response)

    def buckets(self, page_size: int | None) -> Paged[ContactList]:
        """``GET /sms/bucket``."""
        return self.pages("/sms/bucket", {"perPage": page_size},
                          lambda row: wire.contact_list_from_v2(row, self.instance))

    def delete_bucket(self, bucket_id: str) -> Operation[ContactList | None]:
        """``DELETE`` (or ``POST``: ``options.bucket_delete_method``) ``/sms/bucket/{uuid}``."""
        response = yield from self.call(self.opts.bucket_delete_method, f"/sms/bucket/{bucket_id}")
        data = self.data(response)
        return wire.contact_list_from_v2(data, self.instance) if isinstance(data, Mapping) else None

    # ------------------------------------------------------------ campaigns

    def create_campaign(self, payload: Mapping[str, Any]) -> Operation[Campaign]:
        """``POST /sms/campaign`` ``{name, bucket_id, sender_id, is_scheduled, template_id,
        scheduled_for?}``."""
        response = yield from self.call("POST", "/sms/campaign", json=dict(payload))
        made = wire.campaign_from_v2(self.data_object(response), self.instance, currency=self.currency)
        if not made.id:
            raise self.malformed(response, "the created campaign has no uuid")
        return made

    def campaigns(self, params: Mapping[str, Any]) -> Paged[Campaign]:
        """``GET /sms/campaign`` (``perPage``, ``status``, ``name``, ``sort_by``, ``dir``, dates)."""
        return self.pages("/sms/campaign", params, lambda row: wire.campaign_from_v2(row, self.instance, currency=self.currency))

    def delete_campaign(self, campaign_id: str) -> Operation[Campaign | None]:
        """``DELETE /sms/campaign/{uuid}`` [INF: the docs print the bucket route here]."""
        response = yield from self.call("DELETE", f"/sms/campaign/{campaign_id}")
        data = self.data(response)
        return wire.campaign_from_v2(data, self.instance, currency=self.currency) if isinstance(data, Mapping) \
            else None


class V1Api(SquadApi):
    """Squad's legacy v1 (VAS) API: ``{prefix}/message...``, ``/dashboard/bucket``, ``/dashboard/template``."""

    def data(self, response: httpx.Response) -> Any:
        """``data`` of a v1 envelope ``{status: "SUCCESS"|"CREATED", message, data}``.

        The bucket routes omit ``status`` [DOC]; any other status is an error in a 2xx body.
        """
        body = self.body(response)
        status = body.get("status")
        ok = status is None or (
            str(status).upper() in ("SUCCESS", "CREATED", "OK")
            or (isinstance(status, int) and 200 <= status < 300)
        )
        if not ok or body.get("success") is False:
            raise self.provider.provider_error(
                f"{self.where(response)}: rejected: {body.get('message') or status}", response
            )
        return body.get("data")

    def client_id(self) -> str:
        """``options.client_id``, which the ``by-client`` routes and created records need."""
        if not self.opts.client_id:
            raise ConfigError(
                f"provider {self.instance!r} (squad v1): options.client_id is required for this route"
            )
        return self.opts.client_id

    def message_path(self, suffix: str = "") -> str:
        """A message route under ``options.v1_message_prefix`` (``/service`` or ``/dashboard``)."""
        return f"{self.opts.v1_message_prefix}/message{suffix}"

    def pages(self, path: str, mapper: Callable[[Row], T], page_size: int | None = None) -> Paged[T]:
        """A v1 listing ``{data: {items, total}}``, ``page``/``count`` numbered."""
        count = page_size or self.opts.page_size
        first = self.provider.request("GET", path, params={"page": 1, "count": count})

        def parse(request: httpx.Request, response: httpx.Response) -> Page[T]:
            data = self.data_object(response)
            items = self.rows(response, data.get("items"), "data.items")
            total = wire.v1_total(data.get("total"))
            nxt = self.next_page(request, len(items), total, "count", count)
            return Page([mapper(i) for i in items], nxt, total)

        return Paged(self.provider, first, parse)

    def cursor_pages(self, path: str, params: Mapping[str, Any], mapper: Callable[[Row], T]) -> Paged[T]:
        """A v1 listing ``{data: {items, pageInfo: {hasNextPage, nextCursor}}}``, cursor paged
        (query parameter ``options.v1_cursor_param``)."""
        first = self.provider.request("GET", path, params=params)
        cursor_param = self.opts.v1_cursor_param

        def parse(request: httpx.Request, response: httpx.Response) -> Page[T]:
            data = self.data_object(response)
            items = self.rows(response, data.get("items"), "data.items")
            info = data.get("pageInfo")
            nxt = None
            if isinstance(info, Mapping) and info.get("hasNextPage") and info.get("nextCursor"):
                cursor = str(info["nextCursor"])
                if request.url.params.get(cursor_param) != cursor:  # no loops
                    nxt = self.with_params(request, **{cursor_param: cursor})
            return Page([mapper(i) for i in items], nxt, None)

        return Paged(self.provider, first, parse)

    def _report(self, item: Row) -> DeliveryReport:
        return wire.message_report(item, provider=self.instance, region=self.opts.region)

    # ------------------------------------------------------------ messages

    def send_message(
        self, *, recipients: str, body: str, use_bucket: bool, use_template: bool, is_campaign: bool,
        reference: str | None, sender: str | None,
    ) -> Operation[SendReceipt]:
        """``POST {prefix}/message`` ``{is_campaign, reference, use_bucket, recipients,
        use_template, body, sender?}``.

        ``reference`` is always sent (seed 000 marks it required; seed 001 calls it optional):
        without one a unique ``ref_...`` is generated.
        """
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
        response = yield from self.call("POST", self.message_path(), json=payload)
        envelope = self.body(response)
        inner = envelope.get("data")
        # an answer saying it sent the message took it, whatever its envelope's status says:
        # never a refusal (the gateway would send it again through the next provider)
        took = isinstance(inner, Mapping) and (wire.to_int(inner.get("sent")) or 0) >= 1
        data: Row = inner if took and isinstance(inner, Mapping) else self.data_object(response)
        batch_id = data.get("batch_id")
        if batch_id in (None, ""):
            raise self.malformed(response, "data.batch_id is missing")
        return SendReceipt(
            sent=wire.to_int(data.get("sent")) or 0, batch_id=str(batch_id),
            raw={"status": envelope.get("status"), "message": envelope.get("message"), **dict(data)},
        )

    def messages_by_batch(
        self, batch_id: str, *, provider_message_id: str | None, page_size: int | None
    ) -> Paged[DeliveryReport]:
        """``GET {prefix}/message/by-params?batch_id=`` (cursor paged; ``count`` [INF])."""

        def mapper(item: Row) -> DeliveryReport:
            return wire.message_report(item, provider=self.instance, batch_id=batch_id,
                                       provider_message_id=provider_message_id, region=self.opts.region)

        return self.cursor_pages(self.message_path("/by-params"), {"batch_id": batch_id, "count": page_size},
                                 mapper)

    def campaign_messages(self, campaign_id: str, page_size: int | None) -> Paged[DeliveryReport]:
        """``GET {prefix}/message/campaign/messages/by-campaign/{id}``."""
        return self.pages(self.message_path(f"/campaign/messages/by-campaign/{campaign_id}"),
                          self._report, page_size)

    def messages_by_phone(self, number: str, page_size: int | None) -> Paged[DeliveryReport]:
        """``GET {prefix}/message/by-phone/{phone}`` (``number`` in Squad's local format)."""
        return self.pages(self.message_path(f"/by-phone/{number}"), self._report, page_size)

    # ------------------------------------------------------------ statistics

    def statistics(self, campaign_id: str | None) -> Operation[Stats]:
        """``GET {prefix}/message/statistics/by-campaign/{id}``, or ``by-client/{client_id}``
        without a campaign."""
        path = (self.message_path(f"/statistics/by-campaign/{campaign_id}") if campaign_id is not None
                else self.message_path(f"/statistics/by-client/{self.client_id()}"))
        response = yield from self.call("GET", path, params={"page": 1, "count": 10})
        return wire.counts_stats(self.data_object(response), provider=self.instance)

    def hourly_statistics(self, day: date) -> Operation[Stats]:
        """``GET {prefix}/message.summary/hourly-statistics/by-client/{client_id}?date=``."""
        path = f"{self.opts.v1_message_prefix}/message.summary/hourly-statistics/by-client/{self.client_id()}"
        response = yield from self.call("GET", path, params={"date": day.isoformat()})
        return wire.hourly_stats(self.data_object(response), day, provider=self.instance)

    # ------------------------------------------------------------ templates

    def create_template(self, name: str, body: str, description: str, *, neutral_body: str) -> Operation[Template]:
        """``POST /dashboard/template`` ``{name, body, client_id, description}`` (``body`` in
        Squad's syntax; the answer omits it, so the template reads ``neutral_body``)."""
        payload = {"name": name, "body": body, "client_id": wire.int_or_text(self.client_id()),
                   "description": description}
        response = yield from self.call("POST", "/dashboard/template", json=payload)
        made = wire.template_from_v1(self.data_object(response), self.instance, body=neutral_body)
        if not made.provider_ids.get(self.instance):
            raise self.malformed(response, "the created template has no id")
        return made

    def templates(self, page_size: int | None) -> Paged[Template]:
        """``GET /dashboard/template/by-client/{client_id}``."""
        return self.pages(f"/dashboard/template/by-client/{self.client_id()}",
                          lambda item: wire.template_from_v1(item, self.instance), page_size)

    def edit_template(
        self, template_id: str, changes: Mapping[str, Any], *, neutral_body: str | None
    ) -> Operation[Template]:
        """``PATCH /dashboard/template/{id}`` with any of ``name``, ``description``, ``body``."""
        response = yield from self.call("PATCH", f"/dashboard/template/{template_id}", json=dict(changes))
        return wire.template_from_v1(self.data_object(response), self.instance, body=neutral_body)

    def delete_template(self, template_id: str) -> Operation[None]:
        """``DELETE /dashboard/template/{id}`` [INF path]."""
        response = yield from self.call("DELETE", f"/dashboard/template/{template_id}")
        self.data(response)

    # ------------------------------------------------------------ buckets

    def create_bucket(self, name: str, description: str, items: Sequence[Mapping[str, str]]) -> Operation[ContactList]:
        """``POST /dashboard/bucket`` ``{name, description, client_id, items}`` (numbers inline)."""
        payload = {"name": name, "description": description,
                   "client_id": wire.int_or_text(self.client_id()), "items": [dict(i) for i in items]}
        response = yield from self.call("POST", "/dashboard/bucket", json=payload)
        return wire.contact_list_from_v1(self.data_object(response), self.instance)

    def buckets(self, page_size: int | None) -> Paged[ContactList]:
        """``GET /dashboard/bucket/by-client/{client_id}``."""
        return self.pages(f"/dashboard/bucket/by-client/{self.client_id()}",
                          lambda item: wire.contact_list_from_v1(item, self.instance), page_size)

    def delete_bucket(self, bucket_id: str) -> Operation[None]:
        """``DELETE /dashboard/bucket/{id}``."""
        response = yield from self.call("DELETE", f"/dashboard/bucket/{bucket_id}")
        self.data(response)

    def rename_bucket(self, bucket_id: str, name: str) -> Operation[ContactList]:
        """``PATCH /dashboard/bucket/{id}`` ``{name}``."""
        response = yield from self.call("PATCH", f"/dashboard/bucket/{bucket_id}", json={"name": name})
        return wire.contact_list_from_v1(self.data_object(response), self.instance)

    # ------------------------------------------------------------ campaigns & senders

    def campaigns(self, page_size: int | None) -> Paged[Campaign]:
        """The documented "get all campaigns" route, ``options.v1_campaigns_path``
        (``/service/template/by-client/{client_id}``)."""
        path = self.opts.v1_campaigns_path.format(client_id=self.client_id())
        return self.pages(path, lambda item: wire.campaign_from_v1(item, self.instance), page_size)

    def sender_ids(self) -> Operation[list[str]]:
        """``GET options.v1_sender_path`` ("route sender/:client_ID"; prefix and shape [INF])."""
        path = self.opts.v1_sender_path.format(client_id=self.client_id())
        response = yield from self.call("GET", path)
        data = self.data(response)
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

