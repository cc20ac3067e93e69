"""The options of a ``generic_http`` provider instance: the whole vendor API in TOML.

Every string template and path is compiled when the configuration loads, so a typo
is a :class:`~smsgate.errors.ConfigError` naming its key
(``providers.<instance>.options.response.id_path``), never a failure at send time.
See docs/generic-http.md for the reference and two worked examples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smsgate.lifecycle import Status
from smsgate_generic_http.wire import MESSAGE_FIELDS, Path, Template, compile_structure, structure_templates

__all__ = [
    "LOOKUP_FIELDS",
    "BasicAuth",
    "BulkOptions",
    "CheckOptions",
    "GenericHttpOptions",
    "RequestOptions",
    "ResponseOptions",
    "StatusLookupOptions",
    "WebhookOptions",
]

#: Placeholders of a status-lookup request: the vendor's message id and the number.
LOOKUP_FIELDS = frozenset({"id", "to", "to_digits"})
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NO_FIELDS: frozenset[str] = frozenset()


def _template(allowed: frozenset[str], *, secrets: bool = True) -> BeforeValidator:
    def parse(value: Any) -> Template:
        if isinstance(value, Template):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        if "\r" in value or "\n" in value:
            raise ValueError("line breaks are not allowed here")
        return Template.parse(value, allowed, secrets=secrets)

    return BeforeValidator(parse)


def _path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a path string such as 'data.id', got {type(value).__name__}")
    return Path.parse(value)


PathOption = Annotated[Path, BeforeValidator(_path)]
#: Text with secrets only (auth headers, tokens).
SecretTemplate = Annotated[Template, _template(_NO_FIELDS)]
#: A URL path of a send: message placeholders, no secrets (URL paths end up in logs).
SendUrl = Annotated[Template, _template(MESSAGE_FIELDS, secrets=False)]
SendValue = Annotated[Template, _template(MESSAGE_FIELDS)]
LookupUrl = Annotated[Template, _template(LOOKUP_FIELDS, secrets=False)]
LookupValue = Annotated[Template, _template(LOOKUP_FIELDS)]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _check_url(url: Template) -> Template:
    if "?" in url.source or "#" in url.source:
        raise ValueError("put query parameters under 'query', not in the URL")
    return url


def _success_codes(value: list[int]) -> list[int]:
    if not value:
        raise ValueError("list at least one HTTP status")
    bad = [c for c in value if not 200 <= c < 400]
    if bad:
        raise ValueError(f"success statuses are 2xx or 3xx, not {bad}")
    return value


class BasicAuth(_Options):
    """HTTP Basic authentication, sent with every request (``Authorization: Basic ...``)."""

    username: SecretTemplate
    password: SecretTemplate


class RequestOptions(_Options):
    """How a message is sent: ``[options.request]``."""

    #: HTTP method of the send.
    method: Literal["POST", "PUT", "PATCH", "GET"] = "POST"
    #: Path under ``base_url`` (or an absolute URL); message placeholders are URL-quoted. No
    #: secrets, and not the message text (a URL's path is logged).
    url: SendUrl
    #: Query parameters; values are templates (secrets allowed: smsgate drops query strings from logs).
    query: dict[str, SendValue] = Field(default_factory=dict)
    #: A JSON body: a table (or a string holding JSON) whose string values are templates.
    json_body: Any = Field(default=None, alias="json")
    #: A form-encoded body: field name -> template.
    form: dict[str, SendValue] | None = None

    _check_url = field_validator("url")(_check_url)

    @field_validator("url")
    @classmethod
    def _no_text_in_url(cls, url: Template) -> Template:
        """Refuse ``{text}`` in the URL: httpx logs every request's URL at INFO (smsgate's log
        filter drops the query string only) and smsgate's errors name the request's path, so
        every message's whole text (a one-time code) would be in the logs."""
        if "text" in url.fields:
            raise ValueError("the message text cannot go in the URL's path (URLs are logged: httpx logs each "
                             "request's at INFO); put {text} under 'query', 'json' or 'form'")
        return url

    @field_validator("json_body", mode="before")
    @classmethod
    def _compile_json(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not valid JSON ({exc.args[0].split(':')[0]})") from None
        if not isinstance(value, (dict, list)):
            raise ValueError("a JSON body template is an object or a list")
        return compile_structure(value, MESSAGE_FIELDS)

    @model_validator(mode="after")
    def _one_body(self) -> RequestOptions:
        if self.json_body is not None and self.form is not None:
            raise ValueError("give 'json' or 'form', not both")
        if self.method == "GET" and (self.json_body is not None or self.form is not None):
            raise ValueError("a GET send has no body: put the fields under 'query'")
        fields = set().union(*(t.fields for _, t in self.templates()))
        if not fields & {"to", "to_digits"}:
            raise ValueError("the request never uses the recipient: put the placeholder to or to_digits in it")
        return self

    def templates(self) -> Iterator[tuple[str, Template]]:
        """``(option key under request, template)`` for every template."""
        yield "url", self.url
        for key, t in self.query.items():
            yield f"query.{key}", t
        if self.json_body is not None:
            for where, t in structure_templates(self.json_body):
                yield f"json.{where}", t
        for key, t in (self.form or {}).items():
            yield f"form.{key}", t


class ResponseOptions(_Options):
    """How the answer to a send is read: ``[options.response]``."""

    #: HTTP statuses meaning "accepted"; any other is an error.
    success_status: list[int] = Field(default_factory=lambda: [200, 201, 202])
    #: Where the vendor's message id is in a JSON answer (needed for status lookups and webhooks).
    id_path: PathOption | None = None
    #: Where the vendor's status of the new message is (read through ``status_map``).
    status_path: PathOption | None = None
    #: Where the vendor's error message is. In a success answer a value there that is not
    #: null, false, 0 or empty means the vendor refused the message (vendors that answer 200
    #: with an error).
    error_path: PathOption | None = None
    #: Where the vendor's error code is in a refused send (an error answer, or a success
    #: answer with an error at ``error_path``).
    error_code_path: PathOption | None = None
    #: Vendor error codes (at ``error_code_path``) and send statuses (at ``status_path`` or
    #: ``bulk.status_path``) meaning the recipient opted out or is on the vendor's suppression
    #: / do-not-disturb list (compared ignoring case): the send raises ``RecipientSuppressed``
    #: (one message of a bulk answer is ``suppressed``) and the gateway records an opt-out.
    opted_out_codes: list[str] = Field(default_factory=list)

    _codes = field_validator("success_status")(_success_codes)

    @field_validator("opted_out_codes")
    @classmethod
    def _some_text(cls, codes: list[str]) -> list[str]:
        for code in codes:
            if not code.strip():
                raise ValueError("an opted-out code cannot be empty")
        return codes


class BulkOptions(_Options):
    """Several messages in one request: ``[options.bulk]`` (optional, JSON bodies only).

    ``request.json`` holds a list with one item template at ``items_path``; a bulk
    request repeats that item once per message (a single send is a list of one).
    Everything outside the item must be the same for the messages of one request
    (the gateway groups them by those values).
    """

    #: Messages per request, at most.
    max_batch: int = Field(ge=2, le=10_000)
    #: Where the list of message items is in ``request.json``.
    items_path: PathOption
    #: Where the list of per-message results is in the answer (in the order sent).
    results_path: PathOption
    #: Where the vendor's message id is in one result.
    id_path: PathOption
    #: Where the vendor's status is in one result (through ``status_map``).
    status_path: PathOption | None = None


class StatusLookupOptions(_Options):
    """How one message's status is looked up: ``[options.status_lookup]`` (optional)."""

    method: Literal["GET", "POST"] = "GET"
    #: Path with ``{id}`` (the vendor's message id), ``{to}``, ``{to_digits}``; no secrets.
    url: LookupUrl
    query: dict[str, LookupValue] = Field(default_factory=dict)
    #: Where the status is in the JSON answer (read through ``status_map``).
    status_path: PathOption
    #: Where the vendor's error message is in an error answer.
    error_path: PathOption | None = None

    _check_url = field_validator("url")(_check_url)


class CheckOptions(_Options):
    """A harmless authenticated call for ``smsgate config check --online``: ``[options.check]`` (optional).

    E.g. an account, balance or sender-ID listing endpoint: nothing is sent or created.
    """

    method: Literal["GET", "POST"] = "GET"
    #: Path under ``base_url`` (or an absolute URL), without placeholders or secrets.
    url: Annotated[Template, _template(_NO_FIELDS, secrets=False)]
    #: Query parameters (secrets allowed: smsgate drops query strings from logs).
    query: dict[str, SecretTemplate] = Field(default_factory=dict)
    #: HTTP statuses meaning the credentials were accepted.
    success_status: list[int] = Field(default_factory=lambda: [200])
    #: Where a list of the account's registered sender IDs is in the JSON answer (optional):
    #: the instance's sender must be among them.
    senders_path: PathOption | None = None
    #: The key of the sender ID in each listed object (when the list holds objects, not strings).
    sender_field: str | None = None

    _check_url = field_validator("url")(_check_url)
    _codes = field_validator("success_status")(_success_codes)


class WebhookOptions(_Options):
    """How a delivery-report callback is read: ``[options.webhook]`` (optional).

    The callback's body is one report, or a list of them (a JSON list body, or the
    list at ``items_path``).
    """

    format: Literal["json", "form"] = "json"
    #: Where a list of reports is (default: the body is one report, or a JSON list of them).
    items_path: PathOption | None = None
    #: Where the vendor's message id is in a report.
    id_path: PathOption
    #: Where the vendor's status is in a report (read through ``status_map``).
    status_path: PathOption
    #: Where the time of the event is (ISO 8601 or Unix seconds/milliseconds).
    timestamp_path: PathOption | None = None
    #: Where the recipient's number is.
    to_path: PathOption | None = None
    #: Where an error code is.
    error_code_path: PathOption | None = None
    #: A shared token the callback must carry (e.g. ``"{secret.webhook_token}"``).
    token: SecretTemplate | None = None
    #: The header carrying the token ...
    token_header: str | None = None
    #: ... or the query parameter of the callback URL carrying it.
    token_query: str | None = None
    #: ``False`` accepts callbacks without a token (only behind another control, such as an
    #: IP allow-list): anybody who knows the URL could otherwise post reports.
    token_required: bool = True

    @model_validator(mode="after")
    def _token_place(self) -> WebhookOptions:
        if self.token is None and self.token_required:
            raise ValueError("a webhook needs the vendor's shared token, else anybody who knows the callback URL "
                             "could post delivery reports: give 'token' (e.g. \"{secret.webhook_token}\") with "
                             "'token_header' or 'token_query', or set 'token_required' to false behind another "
                             "control (an IP allow-list)")
        places = [p for p in (self.token_header, self.token_query) if p]
        if self.token is not None and len(places) != 1:
            raise ValueError("a token needs exactly one of 'token_header' and 'token_query'")
        if self.token is None and places:
            raise ValueError("'token_header'/'token_query' need 'token'")
        if self.token_header is not None and not _HEADER_NAME.fullmatch(self.token_header):
            raise ValueError("token_header is not a valid header name")
        return self


class GenericHttpOptions(_Options):
    """Options of a ``generic_http`` instance (``[tenants.<t>.providers.<i>.options]``)."""

    #: Headers of every request (send and lookup); values may use ``{secret.NAME}`` only.
    headers: dict[str, SecretTemplate] = Field(default_factory=dict)
    #: HTTP Basic authentication of every request.
    basic_auth: BasicAuth | None = None
    request: RequestOptions
    response: ResponseOptions = Field(default_factory=ResponseOptions)
    #: Vendor status string -> neutral status (``queued``, ``submitted``, ``sent``,
    #: ``delivered``, ``undelivered``, ``failed``, ``rejected``, ``expired``, ``unknown``).
    status_map: dict[str, Status] = Field(default_factory=dict)
    status_lookup: StatusLookupOptions | None = None
    webhook: WebhookOptions | None = None
    bulk: BulkOptions | None = None
    check: CheckOptions | None = None

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, Template]) -> dict[str, Template]:
        for name in value:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
        return value

    @field_validator("basic_auth")
    @classmethod
    def _one_authorization(cls, value: BasicAuth | None, info: ValidationInfo) -> BasicAuth | None:
        headers = info.data.get("headers") or {}
        if value is not None and any(k.lower() == "authorization" for k in headers):
            raise ValueError("give 'basic_auth' or an 'Authorization' header, not both")
        return value

    @field_validator("status_lookup", "webhook")
    @classmethod
    def _needs_ids(cls, value: Any, info: ValidationInfo) -> Any:
        response = info.data.get("response")
        if value is not None and isinstance(response, ResponseOptions) and response.id_path is None:
            raise ValueError("needs 'response.id_path': without the vendor's message id nothing can be matched")
        return value

    @field_validator("bulk")
    @classmethod
    def _bulk_fits_the_body(cls, bulk: BulkOptions | None, info: ValidationInfo) -> BulkOptions | None:
        request = info.data.get("request")
        if bulk is None or not isinstance(request, RequestOptions):
            return bulk
        if request.json_body is None:
            raise ValueError("needs a JSON body ('request.json') holding the list of messages")
        items = bulk.items_path.get(request.json_body)
        if not isinstance(items, list) or len(items) != 1:
            raise ValueError("'items_path' must point at a list of one item template in 'request.json'")
        inner = set().union(*(t.fields for _, t in structure_templates(items[0])))
        if not inner & {"to", "to_digits"}:
            raise ValueError("the item at 'items_path' must use the recipient (placeholder to or to_digits)")
        return bulk

    @model_validator(mode="after")
    def _opted_out_codes_are_read(self) -> GenericHttpOptions:
        res = self.response
        if res.opted_out_codes and res.error_code_path is None and res.status_path is None and (
                self.bulk is None or self.bulk.status_path is None):
            raise ValueError("'response.opted_out_codes' needs somewhere to read them: 'response.error_code_path' "
                             "or a status path ('response.status_path', 'bulk.status_path')")
        return self

    def shared_fields(self) -> frozenset[str]:
        """Message placeholders used outside the bulk item: equal within one bulk request."""
        outside: set[str] = set()
        body = self.request.json_body
        item = None
        if self.bulk is not None and body is not None:
            items = self.bulk.items_path.get(body)
            item = items[0] if isinstance(items, list) and items else None
        for key, t in self.request.templates():
            if not key.startswith("json."):
                outside |= t.fields
        if body is not None:
            for _, t in structure_templates(body):
                if item is None or not any(t is u for _, u in structure_templates(item)):
                    outside |= t.fields
        return frozenset(f for f in outside if not f.startswith("secret."))

    def templates(self) -> Iterator[tuple[str, Template]]:
        """``(option key, template)`` for every template of the options (for secret checks)."""
        for key, t in self.headers.items():
            yield f"headers.{key}", t
        if self.basic_auth is not None:
            yield "basic_auth.username", self.basic_auth.username
            yield "basic_auth.password", self.basic_auth.password
        for key, t in self.request.templates():
            yield f"request.{key}", t
        if self.status_lookup is not None:
            yield "status_lookup.url", self.status_lookup.url
            for key, t in self.status_lookup.query.items():
                yield f"status_lookup.query.{key}", t
        if self.webhook is not None and self.webhook.token is not None:
            yield "webhook.token", self.webhook.token
        if self.check is not None:
            yield "check.url", self.check.url
            for key, t in self.check.query.items():
                yield f"check.query.{key}", t
