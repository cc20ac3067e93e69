"""The neutral provider contract mapped onto a vendor described in TOML.

A ``generic_http`` instance sends one message per request as
``[options.request]`` describes it, reads the answer as ``[options.response]``
says, looks statuses up (``[options.status_lookup]``) and reads delivery-report
callbacks (``[options.webhook]``) when those sections are given; without them the
operation raises :class:`~smsgate.errors.Unsupported`. With ``[options.bulk]`` it
sends several messages per request (the item template repeated per message).

Secrets: templates name credentials (``{secret.api_key}``); the values are read from
``settings.credentials`` only while a request is built, so no attribute, repr or
error of the provider holds one, and :meth:`secrets` lets every error redact them.
"""

from __future__ import annotations

import base64
import hmac
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from smsgate import phone as phonelib
from smsgate.errors import (
    AuthFailed,
    ConfigError,
    MalformedResponse,
    RecipientSuppressed,
    RequestRejected,
    UnsupportedCallback,
    ValidationError,
    mask_path,
    request_where,
)
from smsgate.models import DeliveryReport, OutboundMessage, ProviderCheck, SendResult, Status, utcnow
from smsgate.provider import Capabilities, Operation, Provider, ProviderSettings, query_token
from smsgate_generic_http.options import GenericHttpOptions
from smsgate_generic_http.wire import (
    MISSING,
    OMIT,
    Path,
    Template,
    lookup_status,
    parse_timestamp,
    render_structure,
    scalar_text,
)

__all__ = ["GenericHttpProvider"]

#: Statuses a send answer may report that mean the vendor took the message.
_ACCEPTED = {Status.QUEUED, Status.SUBMITTED, Status.UNKNOWN}


class GenericHttpProvider(Provider):
    """A simple HTTP SMS API described entirely by options (see docs/generic-http.md)."""

    name = "generic_http"
    capabilities = Capabilities(send=True)
    options_model = GenericHttpOptions

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        assert isinstance(self.options, GenericHttpOptions)
        self.opts: GenericHttpOptions = self.options
        missing = [(key, name) for key, t in self.opts.templates() for name in sorted(t.secrets)
                   if name not in settings.credentials]
        if missing:
            known = ", ".join(sorted(settings.credentials)) or "none"
            raise ConfigError("\n  ".join(
                [f"provider {self.instance_name!r} (generic_http): secrets named but not configured:"]
                + [f"{self._key(key)}: refers to secret {name!r}, which is not under 'credentials' "
                   f"(configured: {known})" for key, name in missing]))
        bulk = self.opts.bulk
        self.capabilities = replace(
            type(self).capabilities,
            status_lookup=self.opts.status_lookup is not None,
            delivery_reports=self.opts.webhook is not None,
            bulk=bulk is not None,
            max_batch=bulk.max_batch if bulk is not None else 1,
        )
        #: placeholders outside the bulk item (equal within one bulk request)
        self._shared = self.opts.shared_fields()

    def _key(self, key: str) -> str:
        return f"providers.{self.instance_name}.options.{key}"

    def _validate_options(self, options: Mapping[str, Any]) -> GenericHttpOptions:
        """The options validated; a :class:`ConfigError` names each bad key in full, never a value.

        The base class masks every value; this only names the keys as they sit in the
        configuration (``providers.<instance>.options.response.id_path``).
        """
        try:
            validated = super()._validate_options(options)
        except ConfigError as exc:
            text = str(exc).replace("\n  options.", f"\n  providers.{self.instance_name}.options.")
            raise ConfigError(text) from None
        assert isinstance(validated, GenericHttpOptions)
        return validated

    # ------------------------------------------------------------ requests

    def _secret(self, name: str) -> str:
        value = self.settings.secret(name)
        if value is None:  # checked in __init__; credentials cannot change afterwards
            raise ConfigError(f"provider {self.instance_name!r}: secret {name!r} is not configured")
        return value

    def _render(self, template: Template, values: Mapping[str, str | None]) -> str | None:
        out = template.render(values, self._secret)
        return None if out is OMIT else str(out)

    def _url(self, template: Template, values: Mapping[str, str | None]) -> str:
        """A URL path template rendered with every value percent-quoted.

        A value stays inside its path segment: ``/`` is quoted, and a segment that
        renders as ``.`` or ``..`` is written ``%2E``/``%2E%2E`` so that no URL
        normalisation can turn it into a step up the path.
        """
        quoted = {k: (None if v is None else urllib.parse.quote(v, safe="")) for k, v in values.items()}
        rendered = self._render(template, quoted) or ""
        head, sep, query = rendered.partition("?")
        segments = ["%2E" * len(seg) if seg in (".", "..") else seg for seg in head.split("/")]
        return "/".join(segments) + sep + query

    def _query(self, query: Mapping[str, Template], values: Mapping[str, str | None]) -> dict[str, str] | None:
        params = {k: v for k, t in query.items() if (v := self._render(t, values)) is not None}
        return params or None

    def authenticate(self, request: httpx.Request) -> None:
        """Add the configured headers and Basic authentication to ``request``."""
        for name, template in self.opts.headers.items():
            value = self._render(template, {})
            if value is not None:
                request.headers[name] = self._header_value(value, f"headers.{name}")
        auth = self.opts.basic_auth
        if auth is not None:
            pair = f"{self._render(auth.username, {}) or ''}:{self._render(auth.password, {}) or ''}"
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")

    def _header_value(self, value: str, key: str) -> str:
        """``value``, or a :class:`ConfigError` that does not show it (HTTP libraries would)."""
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(f"{self._key(key)}: a credential it uses holds a line break or NUL, "
                              "which no header may carry")
        return value

    @staticmethod
    def _values(msg: OutboundMessage) -> dict[str, str | None]:
        return {
            "to": msg.to,
            "to_digits": phonelib.to_international_digits(msg.to),
            "text": msg.text,
            "sender": msg.sender,
            "reference": msg.reference,
            "message_id": msg.message_id or None,
        }

    def bulk_request(self, msgs: Sequence[OutboundMessage]) -> httpx.Request:
        """The request sending ``msgs`` together: the item at ``bulk.items_path`` once per message."""
        bulk, spec = self.opts.bulk, self.opts.request
        assert bulk is not None and spec.json_body is not None
        values = self._values(msgs[0])
        item = bulk.items_path.get(spec.json_body)[0]
        body = render_structure(spec.json_body, values, self._secret)
        body = bulk.items_path.set(body, [render_structure(item, self._values(m), self._secret) for m in msgs])
        return self.request(spec.method, self._url(spec.url, values), params=self._query(spec.query, values),
                            json=body)

    def send_request(self, msg: OutboundMessage) -> httpx.Request:
        """The request sending ``msg`` (before :meth:`authenticate` adds headers)."""
        spec = self.opts.request
        values = self._values(msg)
        json_body = None if spec.json_body is None else render_structure(spec.json_body, values, self._secret)
        form = None
        if spec.form is not None:
            form = {k: v for k, t in spec.form.items() if (v := self._render(t, values)) is not None}
        return self.request(spec.method, self._url(spec.url, values), params=self._query(spec.query, values),
                            json=json_body, data=form)

    # ------------------------------------------------------------ answers

    def _body(self, response: httpx.Response) -> Any:
        return self.json(response)

    def _text_at(self, path: Path | None, body: Any) -> str | None:
        if path is None:
            return None
        return scalar_text(path.get(body))

    @staticmethod
    def _error_at(path: Path | None, body: Any) -> str | None:
        """The error at ``path``: a value that is there and not null, false, 0 or empty."""
        if path is None:
            return None
        found = path.get(body)
        if found is MISSING or not found:
            return None
        return scalar_text(found) or json.dumps(found, ensure_ascii=False)[:300]

    def error_message(self, response: httpx.Response) -> str:
        """The vendor's error text at ``response.error_path`` (or the usual fields)."""
        path = self.opts.response.error_path
        if path is not None:
            try:
                found = path.get(response.json())
            except (ValueError, UnicodeDecodeError):
                found = MISSING
            if found is not MISSING and found is not None:
                return found if isinstance(found, str) else json.dumps(found)[:300]
        return super().error_message(response)

    def _check_status(self, response: httpx.Response, success: list[int] | None = None) -> None:
        """Raise the typed error of an answer whose status is not a success.

        4xx and 5xx map as usual (:meth:`raise_for_status`); another 2xx is not
        understood (:class:`MalformedResponse`: the vendor may have acted) unless
        ``error_path`` holds an error there; a 3xx is a refusal.
        """
        if response.status_code in (success or range(200, 300)):
            return
        self.raise_for_status(response)
        where = f"{request_where(response)}"
        error = None
        if self.opts.response.error_path is not None:
            try:
                error = self._error_at(self.opts.response.error_path, response.json())
            except (ValueError, UnicodeDecodeError):
                error = None
        kw: dict[str, Any] = {"provider": self.instance_name, "status_code": response.status_code,
                              "body": self._safe_body(response)}
        if response.status_code < 300 and not error:
            raise MalformedResponse(f"{where}: answered HTTP {response.status_code}, not one of the success "
                                    f"statuses {success} ({self._key('response.success_status')})", **kw)
        raise RequestRejected(f"{where}: answered HTTP {response.status_code}: "
                              f"{self.safe_text(error or self.error_message(response), response)}", **kw)

    def _opted_out(self, code: str | None) -> bool:
        """Whether the vendor's code or status ``code`` is one of ``response.opted_out_codes``."""
        codes = self.opts.response.opted_out_codes
        if not code or not codes:
            return False
        return code.strip().casefold() in {c.strip().casefold() for c in codes}

    def _check_suppressed(self, response: httpx.Response) -> None:
        """Raise :class:`RecipientSuppressed` for a refusal whose code (at ``response.error_code_path``)
        is one of ``response.opted_out_codes``."""
        res = self.opts.response
        if res.error_code_path is None or not res.opted_out_codes:
            return
        try:
            code = self._text_at(res.error_code_path, response.json())
        except (ValueError, UnicodeDecodeError):
            return
        if code is not None and self._opted_out(code):
            where = f"{request_where(response)}"
            raise RecipientSuppressed(
                f"{where}: the vendor refused the recipient as opted out (code {code!r}): "
                f"{self.safe_error_message(response)}", provider=self.instance_name,
                status_code=response.status_code, vendor_code=code, body=self._safe_body(response))

    def _suppressed(self, msg: OutboundMessage, vendor_id: str | None, raw: str) -> SendResult:
        """The result of a message the vendor refused with an opted-out status ``raw``."""
        return SendResult(message_id=msg.message_id, to=msg.to, status=Status.REJECTED, raw_status=raw,
                          provider=self.instance_name, provider_message_id=vendor_id, error_code=raw, suppressed=True,
                          error=f"the vendor refused the recipient as opted out (status {raw!r})")

    def parse_send(self, msg: OutboundMessage, response: httpx.Response) -> SendResult:
        """The result of a send from the vendor's answer (pure)."""
        res = self.opts.response
        if response.status_code not in res.success_status:
            self._check_suppressed(response)
        self._check_status(response, res.success_status)
        where = f"{request_where(response)}"
        needs_body = res.id_path is not None or res.status_path is not None or res.error_path is not None
        body = self._body(response) if needs_body else None
        error = self._error_at(res.error_path, body)
        if error:
            self._check_suppressed(response)
            raise self.provider_error(f"{where}: refused: {self.safe_text(error, response)}", response)
        raw = self._text_at(res.status_path, body)
        if raw is not None and self._opted_out(raw):
            return self._suppressed(msg, self._text_at(res.id_path, body), raw)
        vendor_id: str | None = None
        if res.id_path is not None:
            vendor_id = self._text_at(res.id_path, body)
            if not vendor_id:
                raise MalformedResponse(
                    f"{where}: the answer has no message id at {self._key('response.id_path')} = "
                    f"{res.id_path.source!r}", provider=self.instance_name,
                    status_code=response.status_code, body=self._safe_body(response))
        return self._accepted(msg, vendor_id, raw)

    def _accepted(self, msg: OutboundMessage, vendor_id: str | None, raw: str | None) -> SendResult:
        """The result of a message the vendor took, with its status word ``raw`` (unmapped: submitted)."""
        status = lookup_status(raw, self.opts.status_map) if raw is not None else None
        if status is None or status in _ACCEPTED:
            status = Status.SUBMITTED
        return SendResult(
            message_id=msg.message_id,
            to=msg.to,
            status=status,
            raw_status=raw,
            provider=self.instance_name,
            provider_message_id=vendor_id,
            error=None if not status.is_final or status == Status.DELIVERED else f"the vendor reported {raw!r}",
        )

    def parse_send_many(self, msgs: Sequence[OutboundMessage], response: httpx.Response) -> list[SendResult]:
        """One result per message from a bulk answer (pure); never raises once the vendor took the request.

        A refusal (an error status, or an error at ``response.error_path``) raises as for
        one message. After that, a message without a readable result at
        ``bulk.results_path`` is ``unknown`` (the vendor may have sent it).
        """
        bulk = self.opts.bulk
        assert bulk is not None
        res = self.opts.response
        if response.status_code not in res.success_status:
            self._check_suppressed(response)
        self._check_status(response, res.success_status)
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return [self._unknown(m, "the answer is not JSON") for m in msgs]
        error = self._error_at(res.error_path, body)
        if error:
            self._check_suppressed(response)
            raise self.provider_error(f"{request_where(response)}: refused: "
                                      f"{self.safe_text(error, response)}", response)
        results = bulk.results_path.get(body)
        if not isinstance(results, list):
            return [self._unknown(m, f"no result list at {self._key('bulk.results_path')}") for m in msgs]
        out = []
        for i, msg in enumerate(msgs):
            item = results[i] if i < len(results) else MISSING
            vendor_id = scalar_text(bulk.id_path.get(item))
            raw = scalar_text(bulk.status_path.get(item)) if bulk.status_path is not None else None
            if raw is not None and self._opted_out(raw):
                out.append(self._suppressed(msg, vendor_id, raw))
                continue
            if not vendor_id:
                out.append(self._unknown(msg, f"result {i} has no message id at {self._key('bulk.id_path')}"))
                continue
            out.append(self._accepted(msg, vendor_id, raw))
        return out

    def _unknown(self, msg: OutboundMessage, why: str) -> SendResult:
        return SendResult(message_id=msg.message_id, to=msg.to, status=Status.UNKNOWN, provider=self.instance_name,
                          error=f"the vendor took the request but its answer cannot be read: {why}")

    # ------------------------------------------------------------ operations

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Send one message as ``[options.request]`` describes."""
        if msg.attachments or msg.location is not None:
            raise self.unsupported("media attachments" if msg.attachments else "locations",
                                   "a generic_http instance sends text only")
        response = yield from self.call(self.send_request(msg))
        return self.parse_send(msg, response)

    def batch_key(self, msg: OutboundMessage) -> object:
        """The values of the placeholders outside the bulk item: one bulk request shares them."""
        values = self._values(msg)
        return tuple((name, values.get(name)) for name in sorted(self._shared))

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        """Send messages sharing a :meth:`batch_key` in one request (``[options.bulk]``)."""
        if self.opts.bulk is None:
            raise self.unsupported("bulk send", "configure [options.bulk]; the gateway sends one by one instead")
        if not msgs:
            return []
        for msg in msgs:
            if msg.attachments or msg.location is not None:
                raise self.unsupported("media attachments" if msg.attachments else "locations",
                                       "a generic_http instance sends text only")
        keys = {self.batch_key(m) for m in msgs}
        if len(keys) != 1 or len(msgs) > self.capabilities.max_batch:
            raise ValueError("send_many takes at most max_batch messages of one batch_key (the gateway batches)")
        response = yield from self.call(self.bulk_request(msgs))
        return self.parse_send_many(msgs, response)

    def status_request(self, result: SendResult) -> httpx.Request:
        """The status-lookup request of a message sent earlier."""
        spec = self.opts.status_lookup
        if spec is None:
            raise self.unsupported("status lookup", "configure [options.status_lookup]")
        if not result.provider_message_id:
            raise ValidationError("a status lookup needs the vendor's message id", field="provider_message_id")
        values = {"id": result.provider_message_id, "to": result.to,
                  "to_digits": phonelib.to_international_digits(result.to)}
        return self.request(spec.method, self._url(spec.url, values), params=self._query(spec.query, values))

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """Look the status up as ``[options.status_lookup]`` describes."""
        request = self.status_request(result)
        spec = self.opts.status_lookup
        assert spec is not None
        response = yield from self.call(request)
        self._check_status(response)
        body = self._body(response)
        error = self._error_at(spec.error_path, body)
        if error:
            raise self.provider_error(f"status lookup refused: {self.safe_text(error, response)}", response)
        raw = self._text_at(spec.status_path, body)
        return DeliveryReport(
            provider=self.instance_name,
            provider_message_id=result.provider_message_id,
            to=result.to,
            status=lookup_status(raw, self.opts.status_map) or Status.UNKNOWN,
            raw_status=raw,
            raw=body if isinstance(body, dict) else {"body": body},
        )

    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """The harmless call ``[options.check]`` describes; the sender must be in the list at
        ``check.senders_path`` when that is given."""
        spec = self.opts.check
        if spec is None:
            raise self.unsupported("online check", "configure [options.check] with an account, balance or "
                                                   "sender-ID endpoint")
        response = yield from self.call(self.request(spec.method, self._url(spec.url, {}),
                                                     params=self._query(spec.query, {})))
        self._check_status(response, spec.success_status)
        endpoint = f"{spec.method} {mask_path(response.request.url.path)}"
        sender = sender or self.settings.sender
        if spec.senders_path is None:
            return ProviderCheck(endpoint=endpoint, sender=sender,
                                 sender_detail="no sender listing configured (check.senders_path)")
        listed = spec.senders_path.get(self._body(response))
        if not isinstance(listed, list):
            raise MalformedResponse(f"{endpoint}: no list at {self._key('check.senders_path')} = "
                                    f"{spec.senders_path.source!r}", provider=self.instance_name,
                                    status_code=response.status_code, body=self._safe_body(response))
        field = spec.sender_field
        names = [scalar_text(item.get(field) if field and isinstance(item, dict) else item) for item in listed]
        return ProviderCheck.from_listing(endpoint, sender, [n for n in names if n])

    def callback_token(self) -> tuple[str, str] | None:
        """``(options.webhook.token_query, "options.webhook.token")`` for a token in the URL."""
        hook = self.opts.webhook
        if hook is None or hook.token is None or not hook.token_query:
            return None
        return hook.token_query, "options.webhook.token"

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport]:
        """Check the shared token (if configured) and read the reports of a callback."""
        hook = self.opts.webhook
        if hook is None:
            raise self.unsupported("delivery-report webhooks", "configure [options.webhook]")
        if hook.token is not None:
            lowered = {k.lower(): v for k, v in headers.items()}
            if hook.token_header is not None:
                header = lowered.get(hook.token_header.lower())
                given: tuple[str, ...] = () if header is None else (header,)
            else:  # as written in the URL or URL-encoded: a base64 token's "+" is no space
                given = query_token(lowered.get("x-smsgate-query", ""), hook.token_query or "")
            expected = self._render(hook.token, {}) or ""
            if not expected:  # an empty credential (a ${VAR} set to "") is none: "" would take ?token=
                raise ConfigError(f"provider {self.instance_name!r}: {self._key('webhook.token')} is empty (its "
                                  "credential is set to nothing): no callback is applied until it is set")
            if not any(hmac.compare_digest(g.encode("utf-8"), expected.encode("utf-8")) for g in given):
                raise AuthFailed("delivery-report callback without the shared token", provider=self.instance_name)
        data: Any
        if hook.format == "form":
            data = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        else:
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise ValidationError("the delivery-report callback is not JSON", field="body") from None
        items = hook.items_path.get(data) if hook.items_path is not None else data
        if not isinstance(items, list):
            items = [items]
        reports = []
        for i, item in enumerate(items):
            vendor_id = scalar_text(hook.id_path.get(item))
            if not vendor_id:
                raise ValidationError(f"report {i} has no message id at {self._key('webhook.id_path')}",
                                      field="webhook.id_path")
            raw = scalar_text(hook.status_path.get(item))
            if not raw:  # no delivery report: a vendor posting its inbound messages (replies) here too
                # (after the token check: an authenticated caller is told why, 501)
                raise UnsupportedCallback(
                    self.instance_name,
                    "inbound messages at its webhook",
                    f"item {i} has no status at {self._key('webhook.status_path')} "
                    f"({hook.status_path}), so it is no delivery report: [options.webhook] maps delivery "
                    "reports only (an inbound message, a reply, is not mapped; nothing of this callback was "
                    "applied). Give the vendor's inbound messages your own route calling "
                    "tenant.ingest_inbound(...) (docs/inbound.md)")
            when = parse_timestamp(hook.timestamp_path.get(item)) if hook.timestamp_path is not None else None
            to = self._text_at(hook.to_path, item)
            reports.append(DeliveryReport(
                provider=self.instance_name,
                provider_message_id=vendor_id,
                to=f"+{to.lstrip('+')}" if to else None,
                status=lookup_status(raw, self.opts.status_map) or Status.UNKNOWN,
                raw_status=raw,
                occurred_at=when or utcnow(),
                error_code=self._text_at(hook.error_code_path, item),
                raw=item if isinstance(item, dict) else {"item": item},
            ))
        return reports
