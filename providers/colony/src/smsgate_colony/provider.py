"""The Colony (Tritech Media) adapter: sans-I/O operations over Colony's REST API.

Auth is an OAuth2 *password grant* at ``/oauth2/access_token/``; the bearer token is
cached on the provider instance, refreshed with the ``refresh_token`` grant shortly
before it expires, and obtained afresh (then the call retried once) after a 401.
Token fetches are ordinary ``yield`` s inside whichever operation needs them.

Colony is a Django REST framework API: listings may come as a plain JSON array or as
a page ``{count, next, previous, results}``; validation errors are
``{"field": ["message"]}``, other errors ``{"detail": "..."}``. Most paths are not
published and are configurable (``options.paths``); see ``docs/providers/colony.md``.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from smsgate import phone as phonelib
from smsgate import text as textlib
from smsgate.errors import (
    AuthFailed,
    ConfigError,
    InvalidPhoneNumber,
    MalformedResponse,
    ValidationError,
)
from smsgate.models import (
    Campaign,
    CampaignStatus,
    Contact,
    ContactList,
    OptOut,
    OutboundMessage,
    ProviderCheck,
    SendResult,
    Stats,
    StatsBucket,
    Status,
    WebhookEvents,
)
from smsgate.provider import Capabilities, Operation, Page, Paged, Provider, ProviderSettings
from smsgate_colony import wire
from smsgate_colony.inbound import parse_inbound_webhook
from smsgate_colony.models import (
    DEFAULT_DEPLOYMENT_STATUSES,
    DEFAULT_PATHS,
    PERIODS,
    ColonyCollateCampaign,
    ColonyContact,
    ColonyContactList,
    ColonyDeployment,
    ColonyInboundMessage,
    ColonyModel,
    ColonyOptOut,
    ColonyStat,
    credits_for,
    deployment_state,
    path_placeholders,
)

__all__ = [
    "CREDENTIAL_KEYS",
    "ColonyOptions",
    "ColonyProvider",
    "contacts_csv",
    "deployment_csv",
    "drf_error_text",
]

log = logging.getLogger("smsgate.colony")

M = TypeVar("M", bound=ColonyModel)

#: Credentials the OAuth2 password grant needs.
CREDENTIAL_KEYS = ("client_id", "client_secret", "username", "password")

#: Credit "currency" used when no ``price_per_segment`` is configured.
CREDITS = "credits"


class ColonyOptions(BaseModel):
    """Provider options (``[tenants.x.providers.y.options]``)."""

    model_config = ConfigDict(extra="forbid")

    #: Override any endpoint path by key (see ``DEFAULT_PATHS``); keep its placeholders.
    paths: dict[str, str] = Field(default_factory=dict)
    #: Override the [INF] meaning of deployment ``status`` ints.
    deployment_statuses: dict[int, CampaignStatus] = Field(default_factory=dict)
    #: Contact field holding the number (international digits) [INF].
    contact_phone_field: str = "msisdn"
    #: Contact field (and list filter parameter) naming the contact list [INF].
    contact_list_field: str = "contact_list"
    #: Region for opt-out originators that are not in international form.
    region: str = "ZA"
    #: Contacts per batch-create request.
    contact_batch_size: int = Field(500, ge=1, le=100_000)
    #: Send ``POST`` to the opt-out endpoint from ``add_optout`` (not documented by Colony).
    allow_optout_create: bool = False
    #: Refresh the token this many seconds before it expires (at most 10 % of its life).
    token_refresh_margin: float = Field(60.0, ge=0)
    #: Ask listings for this page size (``?page_size=``); unset = the server's default.
    page_size: int | None = Field(None, ge=1)
    #: Defaults for deployments created by ``create_campaign``.
    marketing: bool = False
    optout: bool = True
    dispatch: int | None = None
    #: Campaign linked to every sent message (``campaign_pk``) unless the message says otherwise.
    campaign_pk: int | None = None

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            if key not in DEFAULT_PATHS:
                raise ValueError(
                    f"unknown path key {key!r}; known keys: {', '.join(sorted(DEFAULT_PATHS))}"
                )
            if not template.startswith(("/", "http://", "https://")):
                raise ValueError(f"path {key!r} must start with '/' or be an absolute URL, got {template!r}")
            want = path_placeholders(DEFAULT_PATHS[key])
            got = path_placeholders(template)
            if got != want:
                need = ", ".join("{" + p + "}" for p in sorted(want)) or "no placeholders"
                raise ValueError(f"path {key!r} = {template!r} must contain {need}")
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        import phonenumbers

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"region {value!r} is not an ISO region code")
        return value.upper()


def drf_error_text(body: Any, limit: int = 300) -> str:
    """Flatten a Django REST framework / OAuth2 error body into one line.

    ``{"destination": ["Invalid."], "detail": "x"}`` -> ``"destination: Invalid.; x"``;
    lists of per-item errors (``many=True``) are numbered ``[2] destination: ...``.
    Never raises, whatever JSON it gets.
    """
    parts: list[str] = []

    def walk(value: Any, prefix: str) -> None:
        if len(parts) > 20:
            return
        if isinstance(value, dict):
            if isinstance(value.get("error"), str):
                desc = value.get("error_description")
                text = value["error"] + (f": {desc}" if isinstance(desc, str) and desc else "")
                parts.append(f"{prefix}{text}")
                return
            for key, item in value.items():
                label = "" if key in ("detail", "non_field_errors") else f"{key}: "
                walk(item, prefix + label)
        elif isinstance(value, list):
            if value and all(isinstance(v, dict) for v in value):
                for i, item in enumerate(value):
                    if item:
                        walk(item, f"{prefix}[{i}] ")
            else:
                for item in value:
                    walk(item, prefix)
        elif value is not None and str(value).strip():
            parts.append(f"{prefix}{value}")

    walk(body, "")
    return "; ".join(parts)[:limit]


def contacts_csv(phones: Iterable[str], phone_field: str = "msisdn") -> bytes:
    """A contact-list CSV (header ``msisdn``) from E.164 numbers, in Colony's digits format."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([phone_field])
    for i, e164 in enumerate(phones):
        writer.writerow([_digits(e164, f"row {i + 2}")])
    return out.getvalue().encode("utf-8")


def deployment_csv(rows: Iterable[tuple[str, str] | str]) -> bytes:
    """A deployment CSV: ``destination,message`` rows (or ``destination`` alone).

    ``rows`` holds ``(e164, message)`` pairs, or bare E.164 numbers for the
    "numbers plus one message" import.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header_written = False
    for i, row in enumerate(rows):
        pair = (row, None) if isinstance(row, str) else row
        if not header_written:
            writer.writerow(["destination"] if pair[1] is None else ["destination", "message"])
            header_written = True
        digits = _digits(pair[0], f"row {i + 2}")
        writer.writerow([digits] if pair[1] is None else [digits, pair[1]])
    if not header_written:
        raise ValidationError("a deployment needs at least one destination", field="file")
    return out.getvalue().encode("utf-8")


def _digits(e164: str, location: str | None = None) -> str:
    try:
        return phonelib.to_international_digits(e164)
    except InvalidPhoneNumber as exc:
        raise InvalidPhoneNumber(exc.reason, field="destination", value=e164, location=location) from None


def _flag(value: bool) -> str:
    return "true" if value else "false"


class ColonyProvider(Provider):
    """Adapter for Colony's REST API (contact lists, deployments, messages, opt-outs)."""

    name = "colony"
    default_base_url = "https://api.colonyhq.com"
    capabilities = Capabilities(
        send=True,
        bulk=True,
        max_batch=100,
        native_campaigns=True,
        contact_lists=True,
        optout_sync=True,
        statistics=True,
    )
    options_model: ClassVar[type[BaseModel] | None] = ColonyOptions
    uses_tokens = True

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        try:
            super().__init__(settings, instance_name)
        except PydanticValidationError as exc:
            lines = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise ConfigError(f"provider {instance_name or self.name!r}: invalid options: {lines}") from None
        missing = [k for k in CREDENTIAL_KEYS if not settings.secret(k)]
        if missing:
            raise ConfigError(
                f"provider {self.instance_name!r} (colony): missing credentials {', '.join(missing)}; "
                f"the OAuth2 password grant needs {', '.join(CREDENTIAL_KEYS)}"
            )
        self.opts = cast(ColonyOptions, self.options)
        self.paths: dict[str, str] = {**DEFAULT_PATHS, **self.opts.paths}
        self.statuses = {**DEFAULT_DEPLOYMENT_STATUSES, **self.opts.deployment_statuses}
        #: Monotonic clock used for token expiry (replaceable in tests).
        self.clock: Callable[[], float] = time.monotonic
        self._token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at: float | None = None

    # ================================================================= helpers
    def path(self, key: str, **values: object) -> str:
        """The path of endpoint ``key`` with its placeholders filled in (URL-quoted)."""
        template = self.paths[key]
        for name, value in values.items():
            template = template.replace("{" + name + "}", quote(str(value), safe=""))
        return template

    def error_message(self, response: httpx.Response) -> str:
        """Colony's error text: DRF ``detail`` / field errors, or OAuth2 ``error``."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return response.text[:200] or response.reason_phrase
        return drf_error_text(body) or response.reason_phrase

    def _where(self, response: httpx.Response) -> str:
        return f"{response.request.method} {response.request.url.path}"

    def _body(self, response: httpx.Response) -> Any:
        """The JSON body, ``None`` when empty; MalformedResponse when not JSON."""
        if not response.content.strip():
            return None
        return self.json(response)

    def _malformed(self, message: str, response: httpx.Response | None = None) -> MalformedResponse:
        return MalformedResponse(
            message,
            provider=self.instance_name,
            status_code=response.status_code if response is not None else None,
            body=self._safe_body(response) if response is not None else None,
        )

    def _parse(self, cls: type[M], data: Any, where: str, response: httpx.Response | None = None) -> M:
        try:
            return wire.parse_object(cls, data, where)
        except MalformedResponse as exc:
            raise self._malformed(str(exc), response) from None

    def _object(self, cls: type[M], response: httpx.Response) -> M:
        return self._parse(cls, self._body(response), self._where(response), response)

    def _dict(self, response: httpx.Response) -> dict[str, Any]:
        data = self._body(response)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self._malformed(f"{self._where(response)}: expected a JSON object", response)
        return data

    def _raise_body_error(self, data: Any, response: httpx.Response) -> None:
        """Errors reported inside a 2xx body (``{"error": ...}`` / ``{"errors": ...}``)."""
        if isinstance(data, dict):
            err = data.get("error") or data.get("errors")
            if err:
                raise self.provider_error(
                    f"{self._where(response)}: rejected: {drf_error_text(err)}", response
                )

    def _paged(self, cls: type[M], path: str, params: Mapping[str, Any] | None = None) -> Paged[M]:
        query: dict[str, Any] = dict(params or {})
        if self.opts.page_size is not None:
            query.setdefault("page_size", self.opts.page_size)
        first = self.request("GET", path, params=query)

        def parse(request: httpx.Request, response: httpx.Response) -> Page[M]:
            return self._page(cls, request, response)

        return Paged(self, first, parse)

    def _page(self, cls: type[M], request: httpx.Request, response: httpx.Response) -> Page[M]:
        """Read one listing page: a plain array or DRF ``{count, next, previous, results}``."""
        where = f"{request.method} {request.url.path}"
        try:
            listing = wire.parse_listing(self._body(response), where)
        except MalformedResponse as exc:
            raise self._malformed(str(exc), response) from None
        raw_items, next_url, total = listing.items, listing.next, listing.total
        items = [self._parse(cls, item, f"{where}: item {i}", response) for i, item in enumerate(raw_items)]
        next_request = None
        if next_url:
            if not isinstance(next_url, str):
                raise self._malformed(f"{where}: 'next' is not a URL: {next_url!r}", response)
            # DRF builds 'next' from the Host header it saw: behind a proxy that can be an
            # internal host or plain http. Keep its path and query, on our base URL's origin.
            base = httpx.URL(self.base_url)
            try:
                url = request.url.join(next_url).copy_with(scheme=base.scheme, host=base.host, port=base.port)
            except (httpx.InvalidURL, ValueError) as exc:  # control characters, a bad host or port...
                raise self._malformed(f"{where}: 'next' is not a valid URL ({exc}): {next_url!r}", response) from None
            if url == request.url:
                raise self._malformed(f"{where}: 'next' points at the same page", response)
            try:
                next_request = self.request("GET", str(url))
            except (httpx.InvalidURL, ValueError) as exc:
                raise self._malformed(f"{where}: 'next' is not a valid URL ({exc}): {next_url!r}", response) from None
        return Page(items, next_request, total)

    def collect(self, paged: Paged[M]) -> Operation[list[M]]:
        """Operation returning every item of ``paged`` (walks all pages)."""
        out: list[M] = []
        request: httpx.Request | None = paged.first
        while request is not None:
            page = yield from paged.fetch(request)
            out.extend(page.items)
            request = page.next_request
        return out

    # =================================================================== auth
    def _token_request(self, grant: Mapping[str, str]) -> httpx.Request:
        data = {
            "client_id": self.settings.secret("client_id") or "",
            "client_secret": self.settings.secret("client_secret") or "",
            **grant,
        }
        return self.request("POST", self.path("token"), data=data, idempotent=True)

    def _token_expired(self) -> bool:
        return self._expires_at is not None and self.clock() >= self._expires_at

    def authenticate(self, request: httpx.Request) -> Operation[None]:
        """Add ``Authorization: Bearer``; obtains or refreshes the token when needed."""
        if self._token is None or self._token_expired():
            yield from self.obtain_token()
        request.headers["Authorization"] = f"Bearer {self._token}"

    def invalidate_auth(self) -> None:
        """Forget the cached tokens (after a 401): the next call runs the password grant."""
        self._token = None
        self._refresh_token = None
        self._expires_at = None

    def obtain_token(self) -> Operation[str]:
        """Refresh the access token (``refresh_token`` grant) or obtain one (password grant)."""
        if self._refresh_token:
            response = yield self._token_request(
                {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
            )
            if response.is_success and self._store_token(response, fallback=True):
                return cast(str, self._token)
            if response.status_code not in (200, 201, 400, 401, 403):
                self.raise_for_status(response)
            log.debug("colony %s: refresh grant refused; using the password grant", self.instance_name)
            self.invalidate_auth()
        response = yield self._token_request({
            "grant_type": "password",
            "username": self.settings.secret("username") or "",
            "password": self.settings.secret("password") or "",
        })
        if not response.is_success:
            if response.status_code in (400, 401, 403):
                raise self._auth_failed(response)
            self.raise_for_status(response)
        self._store_token(response, fallback=False)
        return cast(str, self._token)

    def _auth_failed(self, response: httpx.Response) -> AuthFailed:
        from smsgate.errors import redact

        msg = redact(self.error_message(response), self.secrets())
        return AuthFailed(
            f"{self._where(response)}: the token endpoint refused the credentials: {msg}",
            provider=self.instance_name,
            status_code=response.status_code,
            body=self._safe_body(response),
        )

    def _store_token(self, response: httpx.Response, *, fallback: bool) -> bool:
        """Cache the token from a token response; False (with ``fallback``) if it has none."""
        data = self._body(response)
        if isinstance(data, dict) and data.get("error") and not data.get("access_token"):
            if fallback:
                return False
            raise self._auth_failed(response)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            if fallback:
                return False
            raise self._malformed(f"{self._where(response)}: token response has no access_token", response)
        assert isinstance(data, dict)
        kind = data.get("token_type")
        if isinstance(kind, str) and kind and kind.lower() != "bearer":
            raise self._malformed(f"{self._where(response)}: unsupported token_type {kind!r}", response)
        self._token = token
        refresh = data.get("refresh_token")
        self._refresh_token = refresh if isinstance(refresh, str) and refresh else None
        try:
            life = float(data.get("expires_in"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            life = None
        if life is None or life != life or life <= 0:  # missing / NaN: rely on 401
            self._expires_at = None
        else:
            lead = min(self.opts.token_refresh_margin, life * 0.1)
            self._expires_at = self.clock() + life - lead
        return True

    # =============================================================== messages
    def _campaign_pk(self, msg: OutboundMessage) -> int | None:
        raw = msg.provider_options.get("campaign_pk", self.opts.campaign_pk)
        if raw is None:
            return None
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValidationError(
                "must be the integer primary key of a Colony campaign", field="campaign_pk", value=raw
            ) from None

    def _entry(self, msg: OutboundMessage) -> dict[str, Any]:
        if msg.has_media:
            raise self.unsupported("media attachments", "Colony sends text only")
        # a blank text is left for Colony to reject (400 "This field may not be blank.")
        entry: dict[str, Any] = {"destination": _digits(msg.to), "message": msg.text}
        pk = self._campaign_pk(msg)
        if pk is not None:
            entry["campaign_pk"] = pk
        return entry

    def _accepted(self, msg: OutboundMessage, response: httpx.Response) -> SendResult:
        credits = credits_for(msg.text)
        cost, currency = self._cost(credits)
        return SendResult(
            message_id=msg.message_id, to=msg.to, status=Status.SUBMITTED,
            raw_status=f"HTTP {response.status_code}", provider=self.instance_name,
            segments=credits, cost=cost, currency=currency,
        )

    def _confirmed(self, response: httpx.Response) -> dict[str, Any]:
        """The body of a send's success answer; anything but the documented one is an error.

        Seed 002 documents the (empty) model ``{}`` for the single and the bulk send; as a
        Django REST framework create, the status is 201 [INF]. Errors reported in a 2xx
        body are ``RequestRejected``; any other answer below 400 (a redirect, 204, 200,
        an empty, non-JSON or non-object body) does not confirm that Colony took the
        messages: ``MalformedResponse``, which the gateway records as ``unknown`` and
        never re-sends blindly.
        """
        try:
            data = self._body(response)
        except MalformedResponse:
            data = _NOT_JSON
        if response.is_success:
            self._raise_body_error(data, response)
        if response.status_code != 201 or not isinstance(data, dict):
            got = ("an empty body" if data is None else "a body that is not JSON" if data is _NOT_JSON
                   else f"a JSON {type(data).__name__}")
            raise self._malformed(
                f"{self._where(response)}: expected HTTP 201 with a JSON object (seed 002), got HTTP "
                f"{response.status_code} with {got}: Colony did not confirm the send", response,
            )
        return data

    def _cost(self, credits: int | None) -> tuple[Decimal | None, str | None]:
        """Credits as cost: money when ``price_per_segment`` is set, else plain credits."""
        if credits is None:
            return None, None
        price = self.settings.price_per_segment
        if price is not None:
            return Decimal(str(price)) * credits, self.settings.currency
        return Decimal(credits), CREDITS

    def send_message(
        self, destination: str, message: str, campaign_pk: int | None = None
    ) -> Operation[dict[str, Any]]:
        """Vendor call: send one message (``destination`` E.164); returns Colony's body (``{}`` in seed 002)."""
        entry: dict[str, Any] = {"destination": _digits(destination), "message": message}
        if campaign_pk is not None:
            entry["campaign_pk"] = campaign_pk
        response = yield from self.call_ok(self.request("POST", self.path("message"), json=entry))
        return self._confirmed(response)

    def send_bulk(self, entries: Sequence[Mapping[str, Any]]) -> Operation[dict[str, Any]]:
        """Vendor call: bulk send ``[{"destination", "message", "campaign_pk"?}]`` (E.164 destinations).

        Returns Colony's body (``{}`` in seed 002); an answer other than 201 with a JSON
        object is ``MalformedResponse``.
        """
        body = []
        for i, e in enumerate(entries):
            item = dict(e)
            item["destination"] = _digits(str(item.get("destination", "")), f"entry {i}")
            body.append(item)
        response = yield from self.call_ok(self.request("POST", self.path("message_bulk"), json=body))
        return self._confirmed(response)

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Send one message (``POST`` ``message``, ``destination``, ``campaign_pk``)."""
        entry = self._entry(msg)
        response = yield from self.call_ok(self.request("POST", self.path("message"), json=entry))
        self._confirmed(response)
        return self._accepted(msg, response)

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        """Bulk send: one request (a JSON array); one result per message, in order.

        Colony validates the array as a whole (DRF ``many=True``): a 400 answered with a
        list of per-item errors means nothing was sent, so the items with errors come back
        ``rejected`` and the others ``resend=True`` (the gateway sends them again).
        """
        results: list[SendResult | None] = [None] * len(msgs)
        entries: list[tuple[int, dict[str, Any]]] = []
        for i, m in enumerate(msgs):
            try:
                entries.append((i, self._entry(m)))
            except ValidationError as exc:  # e.g. a bad campaign_pk: this message only
                results[i] = SendResult(
                    message_id=m.message_id, to=m.to, status=Status.REJECTED, provider=self.instance_name,
                    error=str(exc), error_code=type(exc).__name__,
                )
        if entries:
            body = [entry for _, entry in entries]
            response = yield from self.call(self.request("POST", self.path("message_bulk"), json=body))
            errors = self._item_errors(response, len(entries)) if response.status_code == 400 else None
            if errors is not None:
                for (i, _), err in zip(entries, errors, strict=True):
                    results[i] = self._rejected(msgs[i], err, response) if err else SendResult(
                        message_id=msgs[i].message_id, to=msgs[i].to, status=Status.FAILED,
                        provider=self.instance_name, resend=True, error_code="refused_with_others",
                        error="not processed: Colony refused the whole request because of other items")
            else:
                self.raise_for_status(response)
                self._confirmed(response)
                for i, _ in entries:
                    results[i] = self._accepted(msgs[i], response)
        return [r for r in results if r is not None]

    def _item_errors(self, response: httpx.Response, n: int) -> list[Any] | None:
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            return None
        if (isinstance(data, list) and len(data) == n and any(data)
                and all(isinstance(item, dict) for item in data)):
            return data
        return None

    def _rejected(self, msg: OutboundMessage, err: Any, response: httpx.Response) -> SendResult:
        return SendResult(
            message_id=msg.message_id, to=msg.to, status=Status.REJECTED,
            raw_status=f"HTTP {response.status_code}", provider=self.instance_name,
            error=drf_error_text(err) or "rejected", error_code="invalid",
        )

    # ============================================================== opt-outs
    def optouts(self, originator: str | None = None) -> Paged[ColonyOptOut]:
        """Opt-outs recorded at Colony (overwritten ones included), optionally for one E.164 number."""
        params = {"originator": _digits(originator)} if originator else None
        return self._paged(ColonyOptOut, self.path("optouts"), params)

    def optouts_for(self, phone: str) -> Paged[ColonyOptOut]:
        """Opt-outs filtered by originator (``?originator=27...``) on the filter endpoint."""
        return self._paged(ColonyOptOut, self.path("optout_filter"), {"originator": _digits(phone)})

    def overwrite_optout(self, optout_id: int) -> Operation[ColonyOptOut | None]:
        """Overwrite (lift) one opt-out; returns it when Colony answers with it."""
        response = yield from self.call_ok(
            self.request("POST", self.path("optout_overwrite", id=optout_id), json={})
        )
        data = self._body(response)
        if isinstance(data, dict) and "id" in data and "originator" in data:
            return self._parse(ColonyOptOut, data, self._where(response), response)
        return None

    def to_optout(self, record: ColonyOptOut) -> OptOut:
        """The neutral opt-out of a Colony record (E.164 when the originator is a valid number)."""
        try:
            phone = phonelib.normalize(record.originator, self.opts.region)
        except InvalidPhoneNumber:
            phone = record.originator  # the gateway reports and skips it
        kw: dict[str, Any] = {}
        if record.date_opted_out is not None:
            kw["created_at"] = record.date_opted_out
        return OptOut(phone=phone, reason=record.reason, source=f"provider:{self.instance_name}", **kw)

    def parse_events(self, headers: Mapping[str, str], body: bytes) -> WebhookEvents:
        """Collate inbound messages posted to the webhook app (Colony documents no
        webhook and no delivery reports; see :mod:`smsgate_colony.inbound`).
        The ``webhook_token`` credential is required."""
        self.check_webhook_token(headers)
        return parse_inbound_webhook(body, instance=self.instance_name, region=self.opts.region)

    def list_optouts(self) -> Operation[list[OptOut]]:
        """Every active (not overwritten) opt-out at Colony, all pages."""
        records = yield from self.collect(self.optouts())
        return [self.to_optout(r) for r in records if r.active]

    def add_optout(self, phone: str, reason: str | None = None) -> Operation[None]:
        """Record an opt-out at Colony (only with ``allow_optout_create``: not documented)."""
        if not self.opts.allow_optout_create:
            raise self.unsupported(
                "opt-out push",
                "Colony's API documents listing and overwriting opt-outs, not creating them "
                "(they come from recipients); set option allow_optout_create = true if your "
                "account accepts POST on the opt-out endpoint",
            )
        body = {"originator": _digits(phone), "reason": reason or ""}
        yield from self.call_ok(self.request("POST", self.path("optout_create"), json=body))

    def remove_optout(self, phone: str) -> Operation[None]:
        """Overwrite every active opt-out of ``phone`` at Colony (none: nothing to do)."""
        records = yield from self.collect(self.optouts_for(phone))
        for record in records:
            if record.active and self.to_optout(record).phone == phone:
                yield from self.overwrite_optout(record.id)

    # ========================================================== contact lists
    def contact_lists(self) -> Paged[ColonyContactList]:
        """The company's contact lists."""
        return self._paged(ColonyContactList, self.path("contactlists"))

    def add_contact_list(self, title: str, saved_query: int | None = None) -> Operation[ColonyContactList]:
        """Create an (empty, or saved-query backed) contact list."""
        body: dict[str, Any] = {"title": title}
        if saved_query is not None:
            body["saved_query"] = saved_query
        response = yield from self.call_ok(self.request("POST", self.path("contactlists"), json=body))
        return self._object(ColonyContactList, response)

    def get_contact_list(self, list_id: int) -> Operation[ColonyContactList]:
        """One contact list."""
        response = yield from self.call_ok(self.request("GET", self.path("contactlist", id=list_id)))
        return self._object(ColonyContactList, response)

    def update_contact_list(
        self,
        list_id: int,
        *,
        title: str | None = None,
        saved_query: int | None = None,
        clear_saved_query: bool = False,
    ) -> Operation[ColonyContactList]:
        """Change a list's title and/or saved query (``PATCH``)."""
        body: dict[str, Any] = {}
        if title is not None:
            body["title"] = title
        if saved_query is not None:
            body["saved_query"] = saved_query
        elif clear_saved_query:
            body["saved_query"] = None
        if not body:
            raise ValidationError("nothing to update", field="title")
        response = yield from self.call_ok(
            self.request("PATCH", self.path("contactlist", id=list_id), json=body)
        )
        return self._object(ColonyContactList, response)

    def delete_contact_list(self, list_id: int) -> Operation[None]:
        """Delete a contact list."""
        yield from self.call_ok(self.request("DELETE", self.path("contactlist_delete", id=list_id)))

    def delete_contact_lists(self, list_ids: Sequence[int]) -> Operation[None]:
        """Delete several contact lists in one request (seed 002: "delete contact lists").

        ``DELETE contactlists_delete`` with ``{"ids": [...]}`` [INF: path and body are not
        published]. The emulator deletes all or nothing: an unknown id is a 404
        (:class:`~smsgate.errors.ResourceNotFound`) and no list is deleted.
        """
        ids = []
        for i, value in enumerate(list_ids):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError("must be a contact list id (an integer)", field="list_ids",
                                      value=value, location=f"item {i}")
            ids.append(value)
        if not ids:
            raise ValidationError("no contact list ids given", field="list_ids")
        response = yield from self.call_ok(self.request(
            "DELETE", self.path("contactlists_delete"), json={"ids": ids}
        ))
        self._deleted(response)

    def _deleted(self, response: httpx.Response) -> None:
        """A delete's answer: DRF's 204 (or a 2xx with an empty or ``{}`` body); else MalformedResponse."""
        try:
            data = self._body(response)
        except MalformedResponse:
            data = _NOT_JSON
        self._raise_body_error(data, response)
        if data is not None and not isinstance(data, dict):
            got = "a body that is not JSON" if data is _NOT_JSON else f"a JSON {type(data).__name__}"
            raise self._malformed(
                f"{self._where(response)}: expected HTTP 204 after the delete, got HTTP "
                f"{response.status_code} with {got}", response,
            )

    def _applied(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The body of an answer that seed 002 documents as ``{}`` (the vendor has acted).

        Errors inside the body are ``RequestRejected``; a body that is not a JSON object is
        ``MalformedResponse`` saying the action may have been applied (check before repeating).
        """
        try:
            data = self._body(response)
        except MalformedResponse:
            data = _NOT_JSON
        self._raise_body_error(data, response)
        if not isinstance(data, dict):
            got = ("an empty body" if data is None else "a body that is not JSON" if data is _NOT_JSON
                   else f"a JSON {type(data).__name__}")
            raise self._malformed(
                f"{self._where(response)}: expected a JSON object ({{}}) after the {what}, got {got}; "
                f"the {what} may have been applied: check before repeating it", response,
            )
        return data

    def _contact_list_in(self, data: Mapping[str, Any], response: httpx.Response) -> ColonyContactList | None:
        """A contact list carried by an answer documented as ``{}`` (some accounts may send one)."""
        if data.get("id") is None:
            return None
        return self._parse(ColonyContactList, dict(data), self._where(response), response)

    def find_contact_list(self, title: str) -> Operation[ColonyContactList | None]:
        """The newest contact list (highest id) titled ``title``, or None; walks every page."""
        records = yield from self.collect(self.contact_lists())
        matching = [r for r in records if r.title == title]
        if len(matching) > 1:
            log.warning("colony %s: %d contact lists are titled %r; taking the newest (id %s)",
                        self.instance_name, len(matching), title, max(r.id for r in matching))
        return max(matching, key=lambda r: r.id) if matching else None

    def import_contact_list_csv(
        self, title: str, file: bytes | str, filename: str = "contacts.csv"
    ) -> Operation[ColonyContactList]:
        """Create a contact list from a CSV upload (multipart field ``file``).

        Colony answers ``{}`` (seed 002): the new list is then found by its title (the
        newest list of that title, so keep titles unique). Post it once: if the list cannot
        be found afterwards, the error says so rather than inviting a second import.
        """
        response = yield from self.call_ok(self.request(
            "POST", self.path("contactlist_import"), data={"title": title},
            files={"file": (filename, _bytes(file), "text/csv")},
        ))
        data = self._applied(response, "contact list import")
        record = self._contact_list_in(data, response)
        if record is None:
            record = yield from self.find_contact_list(title)
        if record is None:
            raise self._malformed(
                f"{self._where(response)}: Colony accepted the import of contact list {title!r} but no list "
                "of that title is listed; it may still be being created: do not import it again, look "
                "for it with contact_lists()", response,
            )
        return record

    def import_contacts_csv(
        self, list_id: int, file: bytes | str, filename: str = "contacts.csv"
    ) -> Operation[ColonyContactList]:
        """Add the contacts of a CSV upload (field ``file``) to an existing list.

        Colony answers ``{}`` (seed 002); the list is then read back by its id.
        """
        response = yield from self.call_ok(self.request(
            "POST", self.path("contactlist_import_into", id=list_id),
            files={"file": (filename, _bytes(file), "text/csv")},
        ))
        record = self._contact_list_in(self._applied(response, "contact import"), response)
        if record is None:
            record = yield from self.get_contact_list(list_id)
        return record

    def refresh_contact_list(self, list_id: int) -> Operation[ColonyContactList]:
        """Re-run the saved query behind a list and repopulate it.

        Colony answers ``{}`` (seed 002); the list is then read back by its id.
        """
        response = yield from self.call_ok(
            self.request("GET", self.path("contactlist_refresh", id=list_id))
        )
        record = self._contact_list_in(self._applied(response, "refresh"), response)
        if record is None:
            record = yield from self.get_contact_list(list_id)
        return record

    def generate_contact_list(
        self, list_id: int, saved_query: int | None = None
    ) -> Operation[dict[str, Any]]:
        """Launch the task saving contacts (of ``saved_query`` or the list's own) into a list."""
        body: dict[str, Any] = {self.opts.contact_list_field: list_id}
        if saved_query is not None:
            body["saved_query"] = saved_query
        response = yield from self.call_ok(
            self.request("POST", self.path("contactlist_generate"), json=body)
        )
        return self._dict(response)

    def to_contact_list(self, record: ColonyContactList, size: int | None = None) -> ContactList:
        """The neutral view of a Colony contact list."""
        return ContactList(
            id=str(record.id), name=record.title or "", size=size, provider=self.instance_name,
            raw=record.raw(),
        )

    def create_contact_list(
        self, contact_list: ContactList, phones: Sequence[str]
    ) -> Operation[ContactList]:
        """Create a list titled ``contact_list.name`` and add ``phones`` in batches."""
        record = yield from self.add_contact_list(contact_list.name)
        yield from self.add_contacts(record.id, phones)
        return self.to_contact_list(record, size=len(phones)).model_copy(
            update={"description": contact_list.description}
        )

    # =============================================================== contacts
    def contacts(self, list_id: int | None = None) -> Paged[ColonyContact]:
        """Contacts, optionally of one list (``?contact_list=<id>`` [INF])."""
        params = {self.opts.contact_list_field: list_id} if list_id is not None else None
        return self._paged(ColonyContact, self.path("contacts"), params)

    def _contact_body(self, list_id: int, item: str | Contact, i: int) -> dict[str, Any]:
        contact = Contact(phone=item) if isinstance(item, str) else item
        body: dict[str, Any] = dict(contact.fields)
        if contact.name is not None:
            body.setdefault("name", contact.name)
        body[self.opts.contact_list_field] = list_id
        body[self.opts.contact_phone_field] = _digits(contact.phone, f"contact {i}")
        return body

    def add_contacts(
        self, list_id: int, contacts: Sequence[str | Contact]
    ) -> Operation[list[ColonyContact]]:
        """Batch-create contacts (E.164 numbers or :class:`Contact`) in list ``list_id``."""
        bodies = [self._contact_body(list_id, c, i) for i, c in enumerate(contacts)]
        created: list[ColonyContact] = []
        size = self.opts.contact_batch_size
        for start in range(0, len(bodies), size):
            response = yield from self.call_ok(
                self.request("POST", self.path("contacts"), json=bodies[start : start + size])
            )
            data = self._body(response)
            if isinstance(data, list):
                where = self._where(response)
                created.extend(self._parse(ColonyContact, d, f"{where}: item {i}", response)
                               for i, d in enumerate(data))
        return created

    def get_contact(self, contact_id: int) -> Operation[ColonyContact]:
        """One contact."""
        response = yield from self.call_ok(self.request("GET", self.path("contact", id=contact_id)))
        return self._object(ColonyContact, response)

    def update_contact(self, contact_id: int, **fields: Any) -> Operation[ColonyContact]:
        """Change fields of a contact (``PATCH``); a ``phone`` keyword is given as E.164."""
        body = dict(fields)
        if "phone" in body:
            body[self.opts.contact_phone_field] = _digits(str(body.pop("phone")))
        if not body:
            raise ValidationError("nothing to update", field="fields")
        response = yield from self.call_ok(
            self.request("PATCH", self.path("contact", id=contact_id), json=body)
        )
        return self._object(ColonyContact, response)

    def delete_contact(self, contact_id: int) -> Operation[None]:
        """Delete a contact."""
        yield from self.call_ok(self.request("DELETE", self.path("contact", id=contact_id)))

    def to_contact(self, record: ColonyContact) -> Contact:
        """The neutral view of a Colony contact (E.164 phone when it is a valid number)."""
        raw = record.get(self.opts.contact_phone_field)
        phone = str(raw) if raw is not None else ""
        try:
            phone = phonelib.normalize(phone, self.opts.region)
        except InvalidPhoneNumber:
            pass
        skip = {self.opts.contact_phone_field, self.opts.contact_list_field, "id", "name"}
        extra = {k: str(v) for k, v in (record.model_extra or {}).items() if k not in skip and v is not None}
        name = record.get("name")
        return Contact(
            phone=phone, id=str(record.id) if record.id is not None else None,
            name=str(name) if name is not None else None, fields=extra,
        )

    # ================================================================ company
    def get_company(self) -> Operation[dict[str, Any]]:
        """The company's details (Colony publishes no field list: returned as a dict)."""
        response = yield from self.call_ok(self.request("GET", self.path("company")))
        return self._dict(response)

    def update_company(self, *, replace: bool = False, **fields: Any) -> Operation[dict[str, Any]]:
        """Update company details (``PATCH``, or ``PUT`` with ``replace=True``)."""
        if not fields:
            raise ValidationError("nothing to update", field="fields")
        response = yield from self.call_ok(
            self.request("PUT" if replace else "PATCH", self.path("company"), json=fields)
        )
        return self._dict(response)

    # ============================================================ deployments
    def deployments(self) -> Paged[ColonyDeployment]:
        """The company's deployments."""
        return self._paged(ColonyDeployment, self.path("deployments"))

    def _deployment_fields(
        self,
        title: str,
        send_date: datetime | None,
        marketing: bool | None,
        optout: bool | None,
        linked_campaign: int | None,
        dispatch: int | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "title": title,
            "marketing": self.opts.marketing if marketing is None else marketing,
            "optout": self.opts.optout if optout is None else optout,
        }
        if send_date is not None:
            body["send_date"] = send_date.isoformat()
        if linked_campaign is not None:
            body["linked_campaign"] = linked_campaign
        dispatch = self.opts.dispatch if dispatch is None else dispatch
        if dispatch is not None:
            body["dispatch"] = dispatch
        return body

    @staticmethod
    def _form(fields: Mapping[str, Any]) -> dict[str, str]:
        return {k: _flag(v) if isinstance(v, bool) else str(v) for k, v in fields.items()}

    def list_members(self, list_id: int) -> Operation[list[ColonyContact]]:
        """Every contact of list ``list_id``, each checked to name that list.

        The contacts listing is filtered with ``?contact_list=<id>`` [INF]; contacts of
        other lists (a server ignoring the filter) are dropped, and a contact that does
        not say which list it belongs to (field ``contact_list_field``) is
        ``MalformedResponse``: its membership cannot be told, so nothing is sent.
        """
        field = self.opts.contact_list_field
        members: list[ColonyContact] = []
        for record in (yield from self.collect(self.contacts(list_id))):
            value = record.get(field)
            if value is None:
                raise self._malformed(
                    f"GET {self.path('contacts')}: contact {record.id} has no {field!r} field, so the "
                    f"members of contact list {list_id} cannot be told from other contacts; set option "
                    "contact_list_field to the field Colony uses"
                )
            if str(value) == str(list_id):
                members.append(record)
        return members

    def _member_rows(self, list_id: int, members: Sequence[ColonyContact], message: str) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        for record in members:
            raw = record.get(self.opts.contact_phone_field)
            try:
                phone = phonelib.normalize(str(raw) if raw is not None else "", self.opts.region)
            except InvalidPhoneNumber as exc:
                raise InvalidPhoneNumber(
                    exc.reason, field=self.opts.contact_phone_field, value=raw,
                    location=f"contact {record.id} of contact list {list_id}",
                ) from None
            rows.append((phone, message))
        return rows

    def create_deployment(
        self,
        *,
        title: str,
        contact_list: int,
        message: str,
        send_date: datetime | None = None,
        marketing: bool | None = None,
        optout: bool | None = None,
        linked_campaign: int | None = None,
        dispatch: int | None = None,
    ) -> Operation[ColonyDeployment]:
        """Create a deployment sending ``message`` to a contact list (at ``send_date`` or now).

        Colony's published deployment model has no audience or message field (a server
        ignoring unknown fields would create an empty deployment that never sends), so
        the list's members are read (:meth:`list_members`) and uploaded as a
        ``destination,message`` CSV through the documented deployment import. A list
        without contacts is a ``ValidationError`` and nothing is created.
        """
        members = yield from self.list_members(contact_list)
        if not members:
            raise ValidationError(
                f"contact list {contact_list} has no contacts: nothing to deploy",
                field="contact_list", value=contact_list,
            )
        rows = self._member_rows(contact_list, members, message)
        record = yield from self.import_deployment_csv(
            deployment_csv(rows), title=title, send_date=send_date, marketing=marketing, optout=optout,
            linked_campaign=linked_campaign, dispatch=dispatch,
        )
        return record

    def get_deployment(self, deployment_id: int) -> Operation[ColonyDeployment]:
        """One deployment with its current status and credits."""
        response = yield from self.call_ok(
            self.request("GET", self.path("deployment", id=deployment_id))
        )
        return self._object(ColonyDeployment, response)

    def update_deployment(
        self,
        deployment_id: int,
        *,
        title: str | None = None,
        send_date: datetime | None = None,
        marketing: bool | None = None,
        optout: bool | None = None,
        linked_campaign: int | None = None,
        dispatch: int | None = None,
    ) -> Operation[ColonyDeployment]:
        """Change a deployment not yet sent (``PATCH deployment``): only the fields given.

        The detail path and its verbs are [INF] (DRF detail: GET PUT PATCH DELETE). A
        deployment already sending is refused by Colony (``RequestRejected``).
        """
        body: dict[str, Any] = {}
        if title is not None:
            if not title.strip():
                raise ValidationError("may not be blank", field="title", value=title)
            body["title"] = title
        if send_date is not None:
            body["send_date"] = send_date.isoformat()
        for key, value in (("marketing", marketing), ("optout", optout)):
            if value is not None:
                body[key] = value
        for key, number in (("linked_campaign", linked_campaign), ("dispatch", dispatch)):
            if number is not None:
                body[key] = number
        if not body:
            raise ValidationError("nothing to update", field="deployment")
        response = yield from self.call_ok(
            self.request("PATCH", self.path("deployment", id=deployment_id), json=body)
        )
        return self._object(ColonyDeployment, response)

    def delete_deployment(self, deployment_id: int) -> Operation[None]:
        """Delete a deployment not yet sent (``DELETE deployment``, 204 [INF])."""
        response = yield from self.call_ok(
            self.request("DELETE", self.path("deployment", id=deployment_id))
        )
        self._deleted(response)

    def import_deployment_csv(
        self,
        file: bytes | str,
        *,
        title: str,
        send_date: datetime | None = None,
        marketing: bool | None = None,
        optout: bool | None = None,
        linked_campaign: int | None = None,
        dispatch: int | None = None,
        filename: str = "deployment.csv",
    ) -> Operation[ColonyDeployment]:
        """Create a deployment from a CSV of ``destination,message`` rows (field ``file``)."""
        fields = self._deployment_fields(title, send_date, marketing, optout, linked_campaign, dispatch)
        response = yield from self.call_ok(self.request(
            "POST", self.path("deployment_import"), data=self._form(fields),
            files={"file": (filename, _bytes(file), "text/csv")},
        ))
        return self._object(ColonyDeployment, response)

    def import_deployment_numbers_csv(
        self,
        file: bytes | str,
        *,
        title: str,
        message: str,
        send_date: datetime | None = None,
        marketing: bool | None = None,
        optout: bool | None = None,
        linked_campaign: int | None = None,
        dispatch: int | None = None,
        filename: str = "numbers.csv",
    ) -> Operation[ColonyDeployment]:
        """Create a deployment sending one ``message`` to a CSV of ``destination`` numbers."""
        fields = self._deployment_fields(title, send_date, marketing, optout, linked_campaign, dispatch)
        fields["message"] = message
        response = yield from self.call_ok(self.request(
            "POST", self.path("deployment_import_numbers"), data=self._form(fields),
            files={"file": (filename, _bytes(file), "text/csv")},
        ))
        return self._object(ColonyDeployment, response)

    def import_deployment_rows_csv(
        self, deployment_id: int, file: bytes | str, filename: str = "deployment.csv"
    ) -> Operation[ColonyDeployment]:
        """Append ``destination,message`` rows from a CSV to a deployment not yet sent."""
        response = yield from self.call_ok(self.request(
            "POST", self.path("deployment_import_into", id=deployment_id),
            files={"file": (filename, _bytes(file), "text/csv")},
        ))
        return self._object(ColonyDeployment, response)

    def generate_deployment_report(self, deployment_id: int) -> Operation[dict[str, Any]]:
        """Ask Colony to build a deployment report and place it in the company/user filebox."""
        response = yield from self.call_ok(
            self.request("POST", self.path("deployment_report", id=deployment_id), json={})
        )
        return self._dict(response)

    def to_campaign(self, record: ColonyDeployment, base: Campaign | None = None) -> Campaign:
        """The neutral campaign of a deployment (``base`` keeps text / audience)."""
        cost, _ = self._cost(record.total_credits)
        update: dict[str, Any] = {
            "id": str(record.id),
            "name": record.title or (base.name if base else ""),
            "status": deployment_state(record.status, record.error, self.statuses),
            "raw_status": str(record.status) if record.status is not None else None,
            "recipient_count": record.total_contacts,
            "cost": cost,
            "provider": self.instance_name,
            "created_at": record.date_created,
            "start_at": record.send_date or (base.start_at if base else None),
            "raw": record.raw(),
        }
        return (base or Campaign()).model_copy(update=update)

    def create_campaign(self, campaign: Campaign) -> Operation[Campaign]:
        """Run a neutral campaign natively as a Colony deployment.

        Either way a ``destination,message`` CSV is uploaded to the deployment import
        (the documented way to give a deployment its recipients): with
        ``contact_list_id`` one row per member of that Colony list (the text as given),
        with ``contacts`` one row per contact (``{name}`` / field placeholders rendered). ``start_at`` becomes ``send_date``;
        ``provider_options`` may set ``marketing``, ``optout``, ``linked_campaign``, ``dispatch``.
        """
        if campaign.text is None:
            if campaign.template_id is not None:
                raise self.unsupported("templates", "give the campaign a text")
            raise ValidationError("a Colony deployment needs a message text", field="text")
        po = campaign.provider_options
        flags: dict[str, Any] = {
            "send_date": campaign.start_at,
            "marketing": _opt_bool(po, "marketing"),
            "optout": _opt_bool(po, "optout"),
            "linked_campaign": _opt_int(po, "linked_campaign"),
            "dispatch": _opt_int(po, "dispatch"),
        }
        title = campaign.name or "smsgate campaign"
        if campaign.contact_list_id is not None:
            try:
                list_id = int(campaign.contact_list_id)
            except ValueError:
                raise ValidationError(
                    "must be a Colony contact list id (an integer)",
                    field="contact_list_id", value=campaign.contact_list_id,
                ) from None
            record = yield from self.create_deployment(
                title=title, contact_list=list_id, message=campaign.text, **flags
            )
        elif campaign.contacts:
            needs = textlib.template_variables(campaign.text)
            rows = []
            for i, contact in enumerate(campaign.contacts):
                text = campaign.text
                if needs:
                    values = dict(contact.fields)
                    if contact.name is not None:
                        values.setdefault("name", contact.name)
                    try:
                        text = textlib.render_template(campaign.text, values)
                    except ValidationError as exc:
                        raise type(exc)(exc.reason, field=exc.field, value=exc.value,
                                        location=f"contact {i}") from None
                rows.append((contact.phone, text))
            record = yield from self.import_deployment_csv(deployment_csv(rows), title=title, **flags)
        else:
            raise ValidationError(
                "a campaign needs a contact_list_id or contacts", field="contact_list_id"
            )
        return self.to_campaign(record, campaign)

    def get_campaign(self, campaign_id: str) -> Operation[Campaign]:
        """The deployment ``campaign_id`` as a neutral campaign."""
        try:
            did = int(campaign_id)
        except ValueError:
            raise ValidationError(
                "must be a Colony deployment id (an integer)", field="campaign_id", value=campaign_id
            ) from None
        record = yield from self.get_deployment(did)
        return self.to_campaign(record)

    # ================================================================ online check
    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """The password grant, then ``GET /collate/campaigns/`` (the vendor's own smoke test [DOC]).

        Colony's sends carry no sender ID, so there is none to check.
        """
        self.invalidate_auth()  # a fresh password grant: the credentials, not a cached token
        paged = self.collate_campaigns()
        yield from paged.fetch(paged.first)
        return ProviderCheck(endpoint=f"POST {self.path('token')}, GET {self.path('collate_campaigns')}",
                             sender_detail="Colony's sends carry no sender ID")

    # ================================================================ collate
    def collate_campaigns(self) -> Paged[ColonyCollateCampaign]:
        """The company's collate campaigns (``GET /collate/campaigns/`` [DOC]).

        Their ``id`` s are what a sent message's ``campaign_pk`` (and a deployment's
        ``linked_campaign``) must name.
        """
        return self._paged(ColonyCollateCampaign, self.path("collate_campaigns"))

    def get_collate_campaign(self, campaign_id: int) -> Operation[ColonyCollateCampaign]:
        """One collate campaign (detail path [INF])."""
        response = yield from self.call_ok(
            self.request("GET", self.path("collate_campaign", id=campaign_id))
        )
        return self._object(ColonyCollateCampaign, response)

    def inbound_messages(
        self, *, campaign: int | None = None, originator: str | None = None
    ) -> Paged[ColonyInboundMessage]:
        """Messages received (replies), read-only: ``GET /collate/campaigns/message/`` [DOC].

        Optionally filtered by collate campaign id and by sender (E.164; sent as
        international digits); the filter parameter names are [INF]. Each item is read
        by :func:`smsgate_colony.wire.parse_inbound_message`.
        """
        params: dict[str, Any] = {}
        if campaign is not None:
            params["campaign"] = campaign
        if originator is not None:
            params["originator"] = _digits(originator)
        return self._paged(ColonyInboundMessage, self.path("inbound_messages"), params or None)

    def get_inbound_message(self, message_id: int) -> Operation[ColonyInboundMessage]:
        """One received message (detail path [INF]; the vendor's "get and put a Message")."""
        response = yield from self.call_ok(
            self.request("GET", self.path("inbound_message", id=message_id))
        )
        return self._object(ColonyInboundMessage, response)

    # ============================================================= statistics
    def _period(self, period: str) -> str:
        key = period.lower()
        aliases = {"hour": "hourly", "day": "daily", "month": "monthly", "year": "yearly"}
        key = aliases.get(key, key)
        if key not in PERIODS:
            raise ValidationError(
                f"unknown period {period!r}; use one of {', '.join(PERIODS)}", field="period", value=period
            )
        return key

    def deployment_stats(self, period: str = "daily", deployment: int | None = None) -> Paged[ColonyStat]:
        """Deployment statistics by ``hourly`` / ``daily`` / ``monthly`` / ``yearly`` period."""
        params = {"deployment": deployment} if deployment is not None else None
        return self._paged(ColonyStat, self.path("deployment_stats", period=self._period(period)), params)

    def get_deployment_stat(self, period: str, stat_id: int) -> Operation[ColonyStat]:
        """One statistics row."""
        response = yield from self.call_ok(self.request(
            "GET", self.path("deployment_stat", period=self._period(period), id=stat_id)
        ))
        return self._object(ColonyStat, response)

    def statistics(self, **filters: Any) -> Operation[Stats]:
        """Neutral statistics from Colony's deployment stats.

        Filters: ``period`` (``hourly``/``daily``/``monthly``/``yearly``, default daily),
        ``deployment`` (id; ``campaign_id`` is accepted as the neutral alias), ``since`` / ``until`` (datetimes, on ``period_start``).
        ``sms_sent_count`` -> sent, ``sms_unsent_count`` -> failed,
        ``sms_optout_count`` -> opted_out, ``total`` -> submitted; email counts stay in ``raw``.
        """
        if "campaign_id" in filters:  # the neutral name for a provider-side campaign (a deployment here)
            filters = dict(filters)
            campaign_id = filters.pop("campaign_id")
            if filters.get("deployment") is not None and str(filters["deployment"]) != str(campaign_id):
                raise ValidationError(
                    "give campaign_id or deployment, not two different ones",
                    field="campaign_id", value=campaign_id,
                )
            filters["deployment"] = campaign_id
        unknown = set(filters) - {"period", "deployment", "since", "until"}
        if unknown:
            raise ValidationError(
                f"unknown statistics filter(s) {', '.join(sorted(unknown))}; "
                "use period, deployment, since, until", field=sorted(unknown)[0]
            )
        period = self._period(str(filters.get("period") or "daily"))
        deployment = _opt_int(filters, "deployment")
        since, until = _opt_when(filters, "since"), _opt_when(filters, "until")
        rows = yield from self.collect(self.deployment_stats(period, deployment))
        if since is not None or until is not None:
            rows = [r for r in rows if r.period_start is None or (
                (since is None or r.period_start >= since) and (until is None or r.period_start < until)
            )]
        buckets: dict[datetime | None, StatsBucket] = {}
        email = {"email_sent_count": 0, "email_unsent_count": 0, "email_optout_count": 0}
        for r in rows:
            b = buckets.setdefault(r.period_start, StatsBucket(
                period_start=r.period_start,
                label=r.period_start.isoformat() if r.period_start else "",
            ))
            b.submitted += r.total
            b.sent += r.sms_sent_count
            b.failed += r.sms_unsent_count
            b.opted_out += r.sms_optout_count
            for k in email:
                email[k] += getattr(r, k)
        detail = sorted(buckets.values(), key=lambda b: (b.period_start is None, b.period_start or 0))
        return Stats(
            provider=self.instance_name,
            submitted=sum(b.submitted for b in detail),
            sent=sum(b.sent for b in detail),
            failed=sum(b.failed for b in detail),
            opted_out=sum(b.opted_out for b in detail),
            detail=detail,
            raw={"period": period, "deployment": deployment, "rows": len(rows), **email},
        )


#: Marks a body that is not JSON (distinct from ``None``, an empty body).
_NOT_JSON: Any = object()


def _bytes(file: bytes | str) -> bytes:
    return file.encode("utf-8") if isinstance(file, str) else file


def _opt_bool(values: Mapping[str, Any], key: str) -> bool | None:
    value = values.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ValidationError("must be true or false", field=key, value=value)


def _opt_when(values: Mapping[str, Any], key: str) -> datetime | None:
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError("must be a datetime", field=key, value=value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _opt_int(values: Mapping[str, Any], key: str) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError("must be an integer", field=key, value=value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError("must be an integer", field=key, value=value) from None
