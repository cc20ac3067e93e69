"""The provider contract: capabilities plus sans-I/O operations.

A provider *operation* is a generator. It yields :class:`httpx.Request` objects,
receives :class:`httpx.Response` objects back, and finally returns a neutral
result. It never performs I/O, so the same code runs under a sync
:class:`httpx.Client`, an async :class:`httpx.AsyncClient`, or a unit test that
feeds canned responses (see :func:`smsgate.transport.run_with_responses`)::

    class MyProvider(Provider):
        name = "mine"
        capabilities = Capabilities(status_lookup=True)

        def send(self, msg):
            response = yield from self.call(self.request("POST", "/sms", json={...}))
            data = self.json(response)
            return SendResult(to=msg.to, status=Status.SUBMITTED, ...)

Multi-step flows (OAuth token fetch, CSV upload to a signed URL, walking every
page of a listing) are more ``yield`` s. :meth:`Provider.call` applies
authentication, obtaining or refreshing tokens through :meth:`Provider.authenticate`
and retrying once on 401 when the provider uses tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import json as _json
import re
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from smsgate.errors import (
    AuthFailed,
    ConfigError,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    ResourceNotFound,
    UnknownOutcome,
    Unsupported,
    conceal,
    mask_numbers,
    path_numbers,
    redact,
    request_where,
    shown_value,
)
from smsgate.keyhints import unknown_key_hint
from smsgate.models import (
    Campaign,
    ContactList,
    DeliveryReport,
    InboundMessage,
    OptOut,
    OutboundMessage,
    ProviderCheck,
    SendResult,
    Stats,
    Template,
    WebhookEvents,
    sender_problem,
)
from smsgate.traffic.breaker import Breaker
from smsgate.traffic.limits import Limit

__all__ = [
    "AUTH_REQUEST",
    "COMMON_SECRET_NAMES",
    "IDEMPOTENT",
    "MAX_EMPTY_PAGES",
    "MAX_PAGES",
    "MAX_RETRIES",
    "MAX_TIMEOUT",
    "Capabilities",
    "Operation",
    "Page",
    "Paged",
    "PagesAsked",
    "Provider",
    "ProviderSettings",
    "before_sending",
    "is_auth_request",
    "is_idempotent",
    "mark_idempotent",
    "page_key",
    "parse_model",
    "parse_retry_after",
    "query_token",
    "read_int",
    "secret_options",
]

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

#: A sans-I/O operation: yields requests, receives responses, returns ``T``.
Operation = Generator[httpx.Request, httpx.Response, T]

#: Request extension key marking a request as safe to repeat.
IDEMPOTENT = "smsgate.idempotent"
#: Request extension marking a token or login request (see :meth:`Provider.authorized`).
AUTH_REQUEST = "smsgate.auth"

#: Parsed URLs a provider instance keeps (paths with ids in them would grow it without bound).
_URL_CACHE_SIZE = 256


#: ``json.dumps``'s encoder for httpx's arguments, made once: ``dumps`` with any argument builds a
#: new :class:`json.JSONEncoder` on every call (~0.7 us of a ~2 us body); ``encode`` keeps no state.
_JSON_ENCODER = _json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json_body(value: Any) -> bytes:
    """JSON as httpx 0.28 encodes a ``json=`` request body."""
    return _JSON_ENCODER.encode(value).encode("utf-8")


def _encodes_json_like_httpx() -> bool:
    """Whether a request built from :func:`_json_body` is byte for byte the one httpx builds."""
    sample = {"to": "+2348031234567", "text": "Grüße ✓ \u2028", "n": [1, 2.5, None, True], "o": {"k": "v"}}
    try:
        theirs = httpx.Request("POST", "http://probe.invalid/p", json=sample)
        ours = _json_request("POST", httpx.URL("http://probe.invalid/p"), sample, {})
        return (ours.content, ours.headers.raw, type(ours.stream)) == (
            theirs.content, theirs.headers.raw, type(theirs.stream))
    except Exception:  # pragma: no cover - an httpx that encodes JSON differently
        return False


def _json_request(method: str, url: httpx.URL, value: Any, extensions: dict[str, Any]) -> httpx.Request:
    """``httpx.Request(method, url, json=value)``, built without httpx's header merging.

    A request given its ``stream`` gets no automatic headers, so it carries exactly
    the ones httpx would add for ``json=`` (``Host``, ``Content-Length``,
    ``Content-Type``, in httpx's order); :data:`_JSON_SHORTCUT` checks at import
    that the two requests are the same.
    """
    body = _json_body(value)
    headers = [(b"Host", url.netloc), (b"Content-Length", b"%d" % len(body)), (b"Content-Type", b"application/json")]
    request = httpx.Request(method, url, headers=headers, stream=httpx.ByteStream(body), extensions=extensions)
    # httpx.Request copies the URL it is given: the provider's cached one (immutable, equal) is put
    # back, so the copy is not kept alive while the request is in flight and a client can know
    # the URL by identity (smsgate.aio's parsed-URL cache)
    request.url = url
    request.read()  # the body is in memory: make request.content available, as json= does
    return request


#: Build JSON requests from pre-encoded bodies and headers (skipping httpx's header
#: merging, about a quarter of the cost of a request) when that gives the same request.
_JSON_SHORTCUT = _encodes_json_like_httpx()


def mark_idempotent(request: httpx.Request, value: bool = True) -> httpx.Request:
    """Mark ``request`` as safe (or unsafe) to repeat after an ambiguous failure.

    Use it for a POST the vendor de-duplicates by a client reference.
    """
    request.extensions[IDEMPOTENT] = value
    return request


def is_auth_request(request: httpx.Request) -> bool:
    """Whether ``request`` obtains credentials (a token, a login) rather than acting."""
    return bool(request.extensions.get(AUTH_REQUEST))


def is_idempotent(request: httpx.Request) -> bool:
    """Whether repeating ``request`` cannot cause a second side effect."""
    marked = request.extensions.get(IDEMPOTENT)
    if marked is not None:
        return bool(marked)
    return request.method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header (seconds or an HTTP date) into seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = now or datetime.now(when.tzinfo)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do. The gateway routes and emulates by these flags."""

    send: bool = True
    bulk: bool = False
    max_batch: int = 1
    native_campaigns: bool = False
    templates: bool = False
    contact_lists: bool = False
    media: bool = False
    location: bool = False
    delivery_reports: bool = False
    status_lookup: bool = False
    client_reference: bool = False
    #: the vendor can say whether it received a given message (by client reference, or by
    #: listing what it received): see :meth:`Provider.find_sent`
    sent_lookup: bool = False
    optout_sync: bool = False
    statistics: bool = False


    def as_dict(self) -> dict[str, Any]:
        """All flags as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The operation a provider must implement for each capability the gateway acts on: with
#: ``bulk`` it calls :meth:`Provider.send_many`, with ``status_lookup`` :meth:`Provider.status`,
#: with ``client_reference`` :meth:`Provider.find_by_reference` and with ``sent_lookup``
#: :meth:`Provider.find_sent` (see :func:`unimplemented_capabilities`).
CAPABILITY_OPERATIONS: dict[str, str] = {
    "bulk": "send_many",
    "status_lookup": "status",
    "client_reference": "find_by_reference",
    "sent_lookup": "find_sent",
}


def unimplemented_capabilities(provider: Provider) -> list[tuple[str, str]]:
    """The capabilities ``provider`` declares (:data:`CAPABILITY_OPERATIONS`) whose operation its
    class leaves as :class:`Provider`'s, which raises ``Unsupported``: ``(capability, operation)``
    pairs. A plugin declaring ``bulk=True`` without a ``send_many`` failed every bulk send."""
    cls = type(provider)
    return [(capability, operation) for capability, operation in CAPABILITY_OPERATIONS.items()
            if getattr(provider.capabilities, capability)
            and getattr(cls, operation) is getattr(Provider, operation)]


#: The longest ``timeout`` a provider instance may have (a day): a longer one is a mistake, and past
#: about 10**10 seconds a send would fail on the clock (``OverflowError``) after logging its message.
MAX_TIMEOUT = 86_400.0
#: The most ``max_retries`` a provider instance may have: repeats of one request after its first
#: attempt. The backoff reaches its cap (:class:`~smsgate.transport.RetryPolicy`'s ``max_delay``,
#: 10 s) at the 7th repeat, so each repeat from there only holds the caller up to 10 s more (up to
#: 60 s when the vendor answers 429 with a ``Retry-After``): 10 repeats already hold a send up to
#: about 10 minutes. A vendor still refusing after that is down, which the circuit breaker and a
#: later retry of the message (``smsgate.contrib.celery``, ``sync``) are for; 1,000,000 (taken
#: before) held a send for days and hammered the vendor.
MAX_RETRIES = 10


class ProviderSettings(BaseModel):
    """Configuration of one provider instance inside a tenant.

    ``credentials`` are secrets (redacted in reprs and errors); ``options`` are
    plugin-specific and validated by the plugin's ``options_model`` if it has one.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # no input_value: a key in the wrong place

    plugin: str
    base_url: str | None = None
    sender: str | None = None
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT, allow_inf_nan=False,
                           description="seconds per connect, read, write and pool wait (0 < timeout <= 86400)")
    max_retries: int = Field(default=3, ge=0, le=MAX_RETRIES,
                             description="repeats of a refused request after the first attempt (0 to 10)")
    not_processed_statuses: frozenset[int] = Field(
        default_factory=frozenset,
        description="HTTP 5xx statuses this vendor documents as 'not processed': a send answered with "
                    "one is repeated (added to the provider's own declaration); only set what the "
                    "vendor's contract says")
    rate_limit: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                     description="messages per second (shorthand for one entry of limits)")
    limits: list[Limit] = Field(default_factory=list, description="rate limits of this instance")
    max_concurrency: int | None = Field(default=None, ge=1, description="requests in flight at once, at most")
    breaker: Breaker = Field(default_factory=Breaker, description="circuit breaker (skip it while it is down)")
    max_batch: int | None = Field(default=None, ge=1, description="cap on messages per bulk call")
    price_per_segment: float | None = Field(default=None, ge=0, allow_inf_nan=False,
                                            description="price of one segment (finite, >= 0)")
    currency: str | None = None

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, value: str | None) -> str | None:
        return check_sender_setting(value)

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _rate_limit_number(cls, value: object) -> object:
        """``rate_limit = "50/s"`` or ``"100/minute"``: said what the setting takes (pydantic said only
        "unable to parse string as a number")."""
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                raise ValueError(f"{shown_value(value, 40)} is not a number: rate_limit is messages per second "
                                 "(rate_limit = 50); for another period or segments, give limits = "
                                 "[{ rate = 100, per = \"minute\" }] (docs/routing.md)") from None
        return value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: float | None) -> float | None:
        if value is not None:
            Limit(rate=value)  # the shorthand is that limit: its rules (a window of at most 366 days)
        return value

    @field_validator("credentials")
    @classmethod
    def _check_credentials(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        # a value of spaces alone is a mistake (a stray blank from a file or an environment
        # variable), and as a webhook token it would be guessed at once: never taken as a secret
        blank = sorted(key for key, secret in value.items()
                       if secret.get_secret_value() and not secret.get_secret_value().strip())
        if blank:
            raise ValueError(f"{', '.join(map(repr, blank))}: blank (only spaces); give the value, or leave it out")
        return value

    @field_validator("not_processed_statuses")
    @classmethod
    def _check_not_processed(cls, value: frozenset[int]) -> frozenset[int]:
        return check_not_processed_statuses(value)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = check_base_url(value)
        parts = urllib.parse.urlsplit(url.strip())
        if "@" in parts.netloc:
            # it would be shown wherever the settings are (reprs, `config check`, errors)
            raise ValueError(f"{_without_password(url)!r} carries a user name or password: put them under "
                             "'credentials' (the provider sends them as the vendor expects)")
        if "?" in url or "#" in url:
            # request paths are appended to it (a query or fragment would swallow them), and a key
            # in the query would be shown wherever the settings are: never repeated here
            address = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
            raise ValueError(f"{address!r} followed by a query string or fragment ('?...' or '#...', not shown): "
                             "base_url is the vendor's address, to which each request's path is added; put a key "
                             "under 'credentials' (the provider sends it as the vendor expects)")
        return url

    @model_validator(mode="after")
    def _no_credential_elsewhere(self) -> ProviderSettings:
        # a credential's value copied into a setting shown and stored in the clear (base_url's
        # path, which httpx logs at INFO and errors name; sender; an option): refused, not shown
        secrets = {key: value.get_secret_value() for key, value in self.credentials.items()}
        secrets = {key: value for key, value in secrets.items() if len(value) >= MIN_SECRET_CHARS}
        if not secrets:
            return self
        settings = {"plugin": self.plugin, "base_url": self.base_url, "sender": self.sender,
                    "currency": self.currency, **{f"options.{key}": value for key, value in self.options.items()}}
        for name, value in settings.items():
            held = sorted(key for key, secret in secrets.items() if any(secret in leaf for leaf in _leaves(value)))
            if held:
                raise ValueError(f"{name} holds the value of credentials.{held[0]} (not shown): a credential goes "
                                 f"under 'credentials' only (the provider sends it as the vendor expects); {name} is "
                                 "shown in errors, logs and `smsgate config check`, and stored in the clear")
        return self

    def secret(self, key: str, default: str | None = None) -> str | None:
        """The plain value of credential ``key``."""
        value = self.credentials.get(key)
        return value.get_secret_value() if value is not None else default


#: The shortest credential value :class:`ProviderSettings` looks for in its other settings (a
#: shorter one, ``"v2"``, may be part of any URL or name by chance).
MIN_SECRET_CHARS = 8

#: Setting names that are secrets for every plugin (:attr:`Provider.secret_names` extends them).
COMMON_SECRET_NAMES: frozenset[str] = frozenset({
    "access_token", "account_token", "api_key", "api_secret", "apikey", "auth_token", "client_secret",
    "encryption_key", "passwd", "password", "private_key", "refresh_token", "secret", "secret_key",
    "session_id", "token", "webhook_secret", "webhook_token",
})


def secret_options(provider: type[Provider], options: Mapping[str, Any]) -> list[str]:
    """The keys of ``options`` that ``provider`` declares secret (:attr:`Provider.secret_names`),
    compared without regard to case, ``-`` or ``_``: the one rule that keeps a secret out of
    ``options``, which are shown and stored in the clear. Sorted; empty when none."""
    declared = {setting_name(name) for name in provider.secret_names}
    return sorted(str(key) for key in options if setting_name(str(key)) in declared)


def setting_name(name: str) -> str:
    """A setting's name as compared with declared names: ``Secret-Key`` is ``secret_key``."""
    return name.strip().lower().replace("-", "_")


def check_sender_setting(value: str | None) -> str | None:
    """A configured sender (``sender``, ``inbound.reply_sender``): ``None`` or a sender ID per
    :data:`~smsgate.models.SENDER_RULE`; :class:`ValueError` (pydantic names the key) otherwise."""
    if value is not None:
        problem = sender_problem(value)
        if problem is not None:
            raise ValueError(problem)
    return value


def check_not_processed_statuses(statuses: Iterable[int]) -> frozenset[int]:
    """``statuses`` as a frozenset if each is an HTTP 5xx status (500-599): the statuses a vendor
    documents as "not processed". :class:`ValueError` (pydantic names the key) otherwise: a 4xx
    is never repeated anyway, and a 2xx or 3xx is no failure."""
    bad = sorted(code for code in statuses if not 500 <= code <= 599)
    if bad:
        raise ValueError(f"{', '.join(map(str, bad))}: not an HTTP 5xx status; list only the 5xx "
                         "statuses (500-599) the vendor documents as 'not processed', e.g. [503]")
    return frozenset(statuses)


def check_base_url(url: str) -> str:
    """``url`` if it is an ``http://`` or ``https://`` URL with a host and a valid port.

    Raises :class:`ValueError` saying what is wrong (pydantic turns it into an error
    naming the key), so a bad ``base_url`` fails when the configuration is loaded
    rather than at the first send.
    """
    plain = _without_password(url)  # what an error may show: never a password,
    shown = shown_value(plain)  # nor a key pasted as base_url (said to be hidden)
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port  # ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ValueError(f"{shown} is not a valid URL ({conceal(str(exc))}); write e.g. 'https://api.example.com:8443'") from None
    if parts.scheme in ("http", "https"):
        pass
    elif parts.netloc:
        raise ValueError(f"{shown}: the scheme must be http or https, not {shown_value(parts.scheme)}")
    elif shown == repr(plain):
        raise ValueError(f"{shown} needs a scheme: write 'https://{plain.strip()}' (or http:// for a "
                         "local emulator)")
    else:
        raise ValueError(f"{shown} needs a scheme: write the vendor's address, e.g. 'https://api.example.com' (or "
                         "http:// for a local emulator); a key goes under 'credentials'")
    if not parts.hostname:
        raise ValueError(f"{shown} has no host")
    if port == 0:
        raise ValueError(f"{shown}: port 0 is not a port to connect to")
    return url


def _without_password(url: str) -> str:
    """``url`` with its user information (``user:password@``, or a token as the user) replaced by ``***@``."""
    return _USERINFO.sub(r"\1***@", url)


_USERINFO = re.compile(r"^(\s*[^:/?#]*:?//)[^/?#]*@")


@dataclass
class Page(Generic[T]):
    """One page of a paged listing: its items, and the request for the next page."""

    items: list[T]
    next_request: httpx.Request | None = None
    total: int | None = None


#: The most pages one walk of a listing reads (:meth:`Paged.after`): past it the walk is a
#: :class:`~smsgate.errors.MalformedResponse`. A backstop against a vendor whose pages never end
#: though each differs; 100,000 pages is 5 million items at 50 a page, far past any listing a
#: status lookup or an inbound poll reads (an hour or more of requests).
MAX_PAGES = 100_000


def page_key(request: httpx.Request) -> bytes:
    """What tells one page request of a listing from another: a digest of its method, URL and
    body (a walk of many pages keeps one small key per page)."""
    try:
        body = request.content
    except httpx.RequestNotRead:  # a streamed body: told apart by method and URL only
        body = b""
    digest = hashlib.sha256(f"{request.method} {request.url}\n".encode())
    digest.update(body)
    return digest.digest()


def _items_key(items: Sequence[object]) -> bytes:
    """What tells one page's items from another's (a digest of their ``repr``)."""
    return b"i" + hashlib.sha256(repr(items).encode("utf-8", "surrogatepass")).digest()


def _empty_key(n: int) -> bytes:
    """The items key of an empty page: unique to the walk's position (never compared equal)."""
    return b"e%d" % n


#: How many empty pages in a row, each linking to a next one, a walk of a listing reads before it
#: stops (:meth:`Paged.after`): a vendor whose cursor counts up over an empty result would be
#: walked for ever, a request a page, the cursor never leading back to a page already asked for.
MAX_EMPTY_PAGES = 50


class PagesAsked(set[bytes]):
    """What a walk of a listing asked for so far (:func:`page_key` of each page's request), and
    how many pages in a row came empty (:data:`MAX_EMPTY_PAGES`); :meth:`Paged.after` keeps it."""

    __slots__ = ("empty_run",)

    def __init__(self, first: httpx.Request) -> None:
        super().__init__((page_key(first),))
        self.empty_run = 0


@dataclass
class Paged(Generic[T]):
    """A lazily walked listing: the first request and how to read any page.

    ``parse(request, response)`` returns a :class:`Page` whose ``next_request`` is
    ``None`` on the last page. Drivers iterate it (``driver.iterate(paged)``),
    holding one page in memory at a time. Each request goes through the provider's
    :meth:`Provider.call_ok` (auth, token refresh, typed errors).
    """

    provider: Provider
    first: httpx.Request
    parse: Callable[[httpx.Request, httpx.Response], Page[T]]

    def fetch(self, request: httpx.Request) -> Operation[Page[T]]:
        """Operation fetching and parsing one page."""
        response = yield from self.provider.call_ok(request)
        return self.parse(request, response)

    def after(self, page: Page[T], asked: set[bytes]) -> httpx.Request | None:
        """The request for the page after ``page`` (``None`` on the last page), the one rule of
        every walk of a listing (:meth:`walk`, the drivers' ``iterate``).

        ``asked``: what this walk read so far (the first request's :func:`page_key`, then two
        keys a page: its items' and its next request's), to which ``page``'s are added; a
        :class:`PagesAsked` counts empty pages in a row too. A vendor's paging bug must not have
        a walk ask for ever (a status lookup never ending, a ``collect`` filling memory); each of
        these is a :class:`~smsgate.errors.MalformedResponse` (no URL in its text: a query may
        hold a credential):

        * a next page already asked for (a cursor or ``next`` link leading back, ``A -> B -> A``);
        * a page whose items are those of a page this walk already read (a vendor that ignores the
          page asked for and answers the same page to every URL, the adapter asking ``page=N+1``
          or a fresh cursor each time). Empty pages are not compared (a vendor filtering after
          paging may answer several);
        * :data:`MAX_EMPTY_PAGES` empty pages in a row, each naming a next one (a
          :class:`PagesAsked` only);
        * a page past :data:`MAX_PAGES`.
        """
        request = page.next_request
        if request is None:
            return None
        number = (len(asked) + 1) // 2 + 1  # of the page after this one
        where = f"{request_where(request)}"
        items = _items_key(page.items) if page.items else _empty_key(len(asked))
        if items in asked:
            raise MalformedResponse(f"{where}: the vendor's pages loop: it answered page {number - 1} of this "
                                    "listing with the same items as a page it read before (it ignores the page "
                                    "asked for)", provider=self.provider.instance_name)
        asked.add(items)
        if isinstance(asked, PagesAsked):
            asked.empty_run = 0 if page.items else asked.empty_run + 1
            if asked.empty_run >= MAX_EMPTY_PAGES:
                raise MalformedResponse(f"{where}: {asked.empty_run} pages in a row "
                                        "came empty, each naming a next one: the vendor's paging does not end",
                                        provider=self.provider.instance_name)
        key = page_key(request)
        if key in asked:
            raise MalformedResponse(f"{where}: the vendor's next page is one this "
                                    f"listing already read (page {number}): its pages loop",
                                    provider=self.provider.instance_name)
        if number > MAX_PAGES:
            raise MalformedResponse(f"{where}: the vendor's listing has more than {MAX_PAGES} pages (MAX_PAGES): "
                                    "stopped there, as a listing that would never end",
                                    provider=self.provider.instance_name)
        asked.add(key)
        return request

    def walk(self, visit: Callable[[Page[T]], R | None]) -> Operation[R | None]:
        """Operation fetching the pages in order and calling ``visit`` on each.

        It stops at the first page for which ``visit`` returns something other than
        ``None`` and returns that; after the last page it returns ``None``. The one
        page-walking loop every provider operation uses (the drivers' ``iterate``
        walks the same way, page by page, outside an operation).
        """
        request: httpx.Request | None = self.first
        asked = PagesAsked(self.first)
        while request is not None:
            page = yield from self.fetch(request)
            found = visit(page)
            if found is not None:
                return found
            request = self.after(page, asked)
        return None

    def collect(self) -> Operation[list[T]]:
        """Operation returning every item of every page (all in memory: for short listings)."""
        out: list[T] = []
        yield from self.walk(lambda page: out.extend(page.items))
        return out

    def find(self, match: Callable[[T], bool]) -> Operation[T | None]:
        """Operation returning the first item for which ``match`` is true (pages after it
        are not fetched), or ``None`` when no page has one."""
        return (yield from self.walk(lambda page: next((item for item in page.items if match(item)), None)))


def _not_sent(exc: ProviderError, what: str, step: str) -> ProviderUnavailable:
    """The certain failure of ``what``: ``step``, which had to succeed before it left, failed with ``exc``."""
    text = str(exc)
    head = f"[{exc.provider}] " if exc.provider else ""
    if head and text.startswith(head):
        text = text[len(head):]
    error = ProviderUnavailable(f"{what} was not sent: {step} failed: {text}", provider=exc.provider)
    error.status_code, error.body = exc.status_code, exc.body
    return error


def before_sending(operation: Operation[T], what: str, step: str) -> Operation[T]:
    """Run ``operation``, a step that must succeed before the request of ``what`` leaves
    (an upload, a lookup), so its own "maybe acted" failures are certain failures of ``what``.

    A :class:`~smsgate.errors.MalformedResponse` or :class:`~smsgate.errors.UnknownOutcome`
    of the step (its answer unreadable or lost) says nothing about ``what``, which never
    left: it is raised as :class:`~smsgate.errors.ProviderUnavailable` (``"{what} was not
    sent: {step} failed: ..."``, the original as its cause), so the gateway fails the
    message over (or logs it ``failed``) instead of logging it ``unknown``.
    """
    try:
        return (yield from operation)
    except (MalformedResponse, UnknownOutcome) as exc:
        raise _not_sent(exc, what, step) from exc


class Provider:
    """Base class of provider adapters.

    Subclasses set ``name`` (the plugin slug), ``capabilities`` and
    ``default_base_url``, and implement the operations they support. Every
    operation not overridden raises :class:`~smsgate.errors.Unsupported`.
    """

    name: ClassVar[str] = ""
    #: What the provider can do; a provider may set ``self.capabilities`` per instance
    #: (e.g. from an ``api_version`` option).
    capabilities: Capabilities = Capabilities()
    default_base_url: ClassVar[str] = ""
    #: Optional pydantic model validating ``settings.options``.
    options_model: ClassVar[type[BaseModel] | None] = None
    #: The names of this plugin's settings that are secrets: its credentials. A secret
    #: belongs under ``credentials`` (a :class:`~pydantic.SecretStr`, redacted in reprs and
    #: errors, encrypted by :class:`~smsgate.tenants.StoredTenants`); an option of one of
    #: these names is refused (:func:`secret_options`). Extend the common names, e.g.
    #: ``secret_names = Provider.secret_names | {"encryption_iv"}``.
    secret_names: ClassVar[frozenset[str]] = COMMON_SECRET_NAMES
    #: True if the provider obtains tokens and should re-authenticate on 401.
    uses_tokens: ClassVar[bool] = False
    #: HTTP 5xx statuses with which the vendor *documents* that it did not process a request:
    #: safe to repeat even for a send (see :class:`~smsgate.transport.RetryPolicy`). Empty by
    #: default: a 5xx is no proof that nothing happened (a 503 may come after the vendor acted),
    #: so a send answered with one is left ``unknown`` rather than sent twice. An instance may
    #: add statuses its vendor contract documents (``ProviderSettings.not_processed_statuses``).
    not_processed_statuses: ClassVar[frozenset[int]] = frozenset()
    #: The keys of a message's ``provider_options`` this provider's ``send`` reads (e.g.
    #: Colony's ``campaign_pk``). A message carrying any other key is not given to it: routing
    #: skips it, and with no other provider on the route the message is refused with
    #: :class:`~smsgate.errors.NoCapableProvider` (an :class:`~smsgate.errors.Unsupported`),
    #: never sent with its option silently dropped. Empty by default: declare the keys your
    #: adapter reads.
    send_options: ClassVar[frozenset[str]] = frozenset()
    #: True if one bulk request may not name the same number twice; the gateway then
    #: puts repeats of a number into separate requests.
    distinct_recipients: ClassVar[bool] = False
    #: True if the vendor refuses a message without a sender ID; ``smsgate config check``
    #: then fails for an instance whose configuration (instance or tenant) sets none.
    #: A provider may set it per instance (e.g. from an ``api_version`` option).
    requires_sender: bool = False
    #: The tenant this instance serves, set by the gateway after constructing it (``None``
    #: for an instance made outside a gateway). Adapters rarely need it (the in-memory
    #: provider files its outbox by it).
    tenant: str | None = None

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        self.settings = settings
        self.instance_name = instance_name or self.name
        base = settings.base_url or self.default_base_url
        if not base:
            raise ConfigError(f"provider {self.instance_name!r}: base_url is required", field="base_url")
        self.base_url = base.rstrip("/")
        self.options: BaseModel | None = self._validate_options(settings.options)
        # per-request constants of request(): the timeout extension and parsed URLs
        self._timeout = httpx.Timeout(settings.timeout).as_dict()
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.instance_name!r} base_url={self.base_url!r}>"

    def _validate_options(self, options: Mapping[str, Any]) -> BaseModel | None:
        """``options`` validated by :attr:`options_model`; a :class:`ConfigError` never shows a value.

        pydantic's own error repeats each bad input (``input_value=...``), and a secret
        put under ``options`` by mistake would come back in it (and in ``smsgate config
        check``). The error names the instance and each bad option (its location and
        pydantic's message, with the input value masked in it) and chains nothing.

        An option the plugin declares secret (:func:`secret_options`) is refused first, with
        or without an options model: options are shown and stored in the clear.
        """
        misplaced = secret_options(type(self), options)
        problems = [f"options.{key}: a secret of this plugin: pass it as credentials.{key} (credentials are "
                    "redacted in reprs, logs and errors, and encrypted in stored tenants; options are not)"
                    for key in misplaced]
        if self.options_model is not None:
            try:
                validated = self.options_model.model_validate({k: v for k, v in options.items() if k not in misplaced})
            except PydanticValidationError as exc:
                problems.extend(_option_problems(exc, self.options_model))
            else:
                if not problems:
                    return validated
        elif not problems:
            return None
        # raised outside the except block: no __context__ holding the inputs
        raise ConfigError(
            f"provider {self.instance_name!r} ({self.name or type(self).__name__}): invalid options:\n  "
            + "\n  ".join(problems)
            + "\n(option values are not shown; secrets belong under 'credentials')",
            field=f"options.{misplaced[0]}" if len(problems) == len(misplaced) == 1 else "options",
        )

    # ---------------------------------------------------------------- helpers

    def secrets(self) -> list[str]:
        """Plain secret values, so errors can redact them."""
        return [v.get_secret_value() for v in self.settings.credentials.values()]

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Request:
        """Build a request to ``base_url + path`` (absolute URLs are kept as given)."""
        target = path if path.startswith(("http://", "https://")) else self.base_url + path
        url: str | httpx.URL = target
        clean_params = None
        if params is None:
            # parsing a URL is a third of the cost of building a request: reuse the parsed
            # form of the few URLs a provider calls (httpx.URL is immutable)
            parsed = self._urls.get(target)
            if parsed is None:
                parsed = httpx.URL(target)
                if len(self._urls) < _URL_CACHE_SIZE:
                    self._urls[target] = parsed
            url = parsed
        else:
            clean_params = {k: v for k, v in params.items() if v is not None}
        if (json is not None and _JSON_SHORTCUT and isinstance(url, httpx.URL) and headers is None
                and content is None and data is None and files is None):
            req = _json_request(method, url, json, {"timeout": dict(self._timeout)})
        else:
            req = httpx.Request(
                method,
                url,
                json=json,
                params=clean_params,
                data=data,
                files=files,
                content=content,
                headers=headers,
                extensions={"timeout": dict(self._timeout)},
            )
            if isinstance(url, httpx.URL):
                req.url = url  # the cached URL, not httpx's copy of it (see _json_request)
        if idempotent is not None:
            mark_idempotent(req, idempotent)
        return req

    def authenticate(self, request: httpx.Request) -> Operation[None] | None:
        """Add credentials to ``request`` (headers, query): a plain method, or an operation.

        The default adds nothing. A vendor with static credentials overrides it as a
        plain method that sets headers and returns ``None``; one that obtains tokens
        writes it as a generator (``yield from`` a token fetch when the cached token is
        missing or expired). :meth:`authorized` drives either kind.
        """
        return None

    def invalidate_auth(self) -> None:
        """Forget cached tokens (called after a 401 when ``uses_tokens``)."""

    def authorized(self, request: httpx.Request) -> Operation[None]:
        """:meth:`authenticate` ``request``, each token or login request it makes marked
        as such (:func:`is_auth_request`): rate limits do not charge those.

        ``request`` has not left while this runs, so an answer lost or unreadable here (a
        garbled token answer, a login whose answer was lost) is no "maybe sent" for it:
        such a :class:`~smsgate.errors.MalformedResponse` or
        :class:`~smsgate.errors.UnknownOutcome` is raised as
        :class:`~smsgate.errors.ProviderUnavailable` (a message may fail over; it is
        never logged ``unknown`` for a send that never left).
        """
        flow = self.authenticate(request)
        if flow is None:  # a plain method: the credentials are on the request already
            return
        try:
            step = next(flow)
            while True:
                step.extensions[AUTH_REQUEST] = True
                try:
                    response = yield step
                except Exception as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration:
            return
        except (MalformedResponse, UnknownOutcome) as exc:
            raise _not_sent(exc, f"{request_where(request)}", "authenticating it") from exc

    def call(self, request: httpx.Request) -> Operation[httpx.Response]:
        """Authenticate and send ``request``; on 401 with tokens, refresh once and retry."""
        yield from self.authorized(request)
        response = yield request
        if response.status_code == 401 and self.uses_tokens:
            self.invalidate_auth()
            yield from self.authorized(request)
            response = yield request
        return response

    def call_ok(self, request: httpx.Request) -> Operation[httpx.Response]:
        """Like :meth:`call`, then raise a typed error for a non-2xx response."""
        response = yield from self.call(request)
        self.raise_for_status(response)
        return response

    def json(self, response: httpx.Response) -> Any:
        """Decode a JSON body or raise :class:`MalformedResponse`."""
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            kind = response.headers.get("content-type", "no content-type")
            # a JSON content type whose body is not JSON (cut short, garbage): say so, and where
            # the decoder stopped (its message: never the body, which is redacted below)
            got = kind
            if "json" in kind.lower():
                stop = (f"{exc.msg} at character {exc.pos}" if isinstance(exc, _json.JSONDecodeError)
                        else type(exc).__name__)
                got = f"a body that is not valid JSON though labelled {kind} ({stop})"
            problem = MalformedResponse(
                f"expected JSON from {request_where(response)}, got {got}",
                provider=self.instance_name,
                status_code=response.status_code,
                body=self._safe_body(response),
            )
        # chained to nothing: the decoder's error holds the whole body, unredacted (``doc``, ``object``)
        raise problem

    def error_message(self, response: httpx.Response) -> str:
        """Extract the vendor's error text from a response (override per vendor)."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return response.text[:200] or response.reason_phrase
        if isinstance(body, dict):
            for key in ("message", "detail", "error", "title", "error_description"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    return value
            errors = body.get("errors")
            if errors:
                return _json.dumps(errors)[:300]
        return _json.dumps(body)[:300]

    def _safe_body(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except Exception:  # pragma: no cover - undecodable body
            text = ""
        return mask_numbers(redact(text[:500], self.secrets()), path_numbers(response.request.url.path))

    def safe_text(self, text: str, response: httpx.Response) -> str:
        """A vendor's ``text`` about ``response`` for an error: credentials redacted, and the phone
        numbers the request's path names (:func:`~smsgate.errors.mask_path`) masked where the
        vendor repeats them."""
        return mask_numbers(redact(text, self.secrets()), path_numbers(response.request.url.path))

    def safe_error_message(self, response: httpx.Response) -> str:
        """:meth:`error_message` for an error's text (:meth:`safe_text`)."""
        return self.safe_text(self.error_message(response), response)

    def raise_for_status(self, response: httpx.Response) -> None:
        """Raise the typed error matching a non-2xx ``response``."""
        code = response.status_code
        if code < 400:
            return
        msg = self.safe_error_message(response) or response.reason_phrase
        where = request_where(response)
        kw: dict[str, Any] = {
            "provider": self.instance_name,
            "status_code": code,
            "body": self._safe_body(response),
        }
        if code in (401, 403):
            raise AuthFailed(f"{where}: authentication failed: {msg}", **kw)
        if code == 429:
            raise RateLimited(
                f"{where}: rate limited: {msg}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                **kw,
            )
        if code == 404:
            raise ResourceNotFound(f"{where}: not found: {msg}", **kw)
        if code >= 500:
            raise ProviderUnavailable(f"{where}: provider error: {msg}", **kw)
        raise RequestRejected(f"{where}: rejected: {msg}", **kw)

    def reaches(self, to: str) -> bool:
        """Whether this instance can carry a message to ``to`` (E.164). Routing leaves out an
        instance that cannot, as it leaves out one lacking a capability the message needs (the
        default: every number). Pure and cheap: it is asked for each message."""
        return True

    def unsupported(self, feature: str, hint: str = "") -> Unsupported:
        """An :class:`Unsupported` error naming this provider and ``feature``."""
        return Unsupported(self.instance_name, feature, hint)

    def malformed(self, message: str, response: httpx.Response | None = None) -> MalformedResponse:
        """A :class:`MalformedResponse` for an answer that is not what the vendor documents.

        With ``response``, the message starts with ``METHOD /path`` (never the query,
        which may carry credentials) and the error carries the status code and the
        body, credentials redacted.
        """
        if response is None:
            return MalformedResponse(message, provider=self.instance_name)
        return MalformedResponse(
            f"{request_where(response)}: {message}",
            provider=self.instance_name,
            status_code=response.status_code,
            body=self._safe_body(response),
        )

    def json_object(self, response: httpx.Response, what: str = "answer") -> dict[str, Any]:
        """The JSON object of ``response``, else :class:`MalformedResponse` naming ``what``."""
        data = self.json(response)
        return self.expect_object(data, response, what)

    def expect_object(self, value: Any, response: httpx.Response, what: str) -> dict[str, Any]:
        """``value`` if it is a JSON object, else :class:`MalformedResponse` naming ``what``."""
        if not isinstance(value, dict):
            raise self.malformed(f"{what}: expected a JSON object, got {type(value).__name__}", response)
        return value

    def expect_rows(self, value: Any, response: httpx.Response, what: str) -> list[dict[str, Any]]:
        """``value`` as a list of JSON objects (``None`` is empty), else :class:`MalformedResponse`
        naming ``what`` (and the index of the first item that is not an object)."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.malformed(f"{what}: expected a list, got {type(value).__name__}", response)
        for i, row in enumerate(value):
            if not isinstance(row, dict):
                raise self.malformed(f"{what}[{i}]: expected an object, got {type(row).__name__}", response)
        return value

    def provider_error(self, message: str, response: httpx.Response | None = None) -> ProviderError:
        """A :class:`RequestRejected` for an error reported inside a 2xx body."""
        return RequestRejected(
            message,
            provider=self.instance_name,
            status_code=response.status_code if response is not None else None,
            body=self._safe_body(response) if response is not None else None,
        )

    # ------------------------------------------------------------- operations
    # Every operation is a generator; the defaults raise Unsupported lazily,
    # when the operation is driven.

    def check(self, sender: str | None = None) -> Operation[ProviderCheck]:
        """Authenticate with a harmless call (nothing sent, nothing created) and say what the vendor tells.

        ``sender``: the sender ID messages of this instance carry (default
        ``settings.sender``); checked where the vendor lists registered sender IDs.
        Raises :class:`~smsgate.errors.AuthFailed` when the credentials are refused and
        :class:`~smsgate.errors.TransportError` when the vendor cannot be reached
        (``smsgate config check --online`` reports both per instance).
        """
        raise self.unsupported("online check")
        yield  # pragma: no cover

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Send one message."""
        raise self.unsupported("send")
        yield  # pragma: no cover

    def batch_key(self, msg: OutboundMessage) -> object:
        """What messages must share to go in one bulk request (default: nothing).

        The gateway puts messages into one :meth:`send_many` call only when their
        keys are equal: e.g. the sender ID where a request has one sender, or the
        content where a request is one broadcast of one text to many numbers.
        ``msg`` is the message as this provider receives it (sender resolved).
        """
        return None

    def send_many(self, msgs: Sequence[OutboundMessage]) -> Operation[list[SendResult]]:
        """Send several messages in **one request** (``capabilities.bulk``).

        The gateway calls it with at most ``max_batch`` messages that share one
        :meth:`batch_key` (and distinct numbers if :attr:`distinct_recipients`),
        and does all batching, failover and re-sending itself. Returns one result
        per message, in order; it must not raise once the vendor may have accepted
        the request (read what can be read; a message the vendor did not mention is
        ``unknown``). A message the vendor refused together with the others without
        processing it (e.g. the rest of a request rejected as a whole because of one
        item) comes back with ``resend=True``: the gateway sends it again.
        """
        raise self.unsupported("bulk send", "the gateway sends one by one instead")
        yield  # pragma: no cover

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """Look up the current status of a message sent earlier."""
        raise self.unsupported("status lookup")
        yield  # pragma: no cover

    def find_by_reference(self, message_id: str, to: str) -> Operation[DeliveryReport | None]:
        """Find a message sent earlier with client reference ``message_id``.

        Providers whose vendor stores a client reference (``capabilities.client_reference``)
        implement it; the campaign engine uses it to resolve sends whose outcome is
        unknown. Returns ``None`` when the vendor never received that message.
        """
        raise self.unsupported("lookup by client reference")
        yield  # pragma: no cover

    def find_sent(self, msg: OutboundMessage, since: datetime) -> Operation[DeliveryReport | None]:
        """Whether the vendor received ``msg`` (logged at ``since`` or later): its report, or None.

        The gateway asks it about a message whose request may have left when its
        sender stopped (a crash), where ``capabilities.client_reference`` or
        ``capabilities.sent_lookup`` is set: found means sent, ``None`` means never
        received (sent again). The default asks :meth:`find_by_reference`; a vendor
        without client references may search what it received (number, text, time).
        """
        if not self.capabilities.client_reference:
            raise self.unsupported("looking up a sent message")
        return (yield from self.find_by_reference(msg.message_id, msg.to))

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes
    ) -> list[DeliveryReport]:
        """Verify and parse a delivery-report callback (pure, no I/O)."""
        raise self.unsupported("delivery-report webhooks")

    def callback_token(self) -> tuple[str, str] | None:
        """Where this instance's callback URL carries a shared token: ``(query parameter, the
        setting holding the token)``, e.g. ``("token", "credentials.webhook_token")``; ``None``
        when its callback URL needs none (a vendor that signs its callbacks, no token configured).
        ``smsgate serve`` prints each callback URL with the parameter and names the setting,
        never the token. The default: ``token`` when a ``webhook_token`` credential is set (as
        :meth:`check_webhook_token` reads it); a plugin reading another parameter overrides it."""
        return ("token", "credentials.webhook_token") if self.settings.secret("webhook_token") else None

    def check_webhook_token(self, headers: Mapping[str, str], *, param: str = "token", required: bool = True,
                            error: type[AuthFailed] = AuthFailed, hint: str = "") -> None:
        """Authenticate a callback of a vendor that signs nothing, by a shared token.

        The token (credential ``webhook_token``) must arrive in the callback URL's
        query (``?token=...``; the webhook app passes the query string as the
        ``X-Smsgate-Query`` header) or in an ``X-Webhook-Token`` header, compared in
        constant time. Raises :class:`~smsgate.errors.AuthFailed` when it is missing
        or wrong (or ``error``, a subclass), and :class:`~smsgate.errors.ConfigError`
        (ending with ``hint``) when no token is configured and ``required``:
        nothing is applied unauthenticated by default.
        """
        expected = self.settings.secret("webhook_token")
        if not expected:
            if required:
                raise ConfigError(f"provider {self.instance_name!r}: the vendor signs no callback; configure "
                                  f"credentials.webhook_token and put it in the callback URL (?{param}=...){hint}")
            return
        lowered = {k.lower(): v for k, v in headers.items()}
        header = lowered.get("x-webhook-token")
        given = (header,) if header is not None else query_token(lowered.get("x-smsgate-query", ""), param)
        if not any(hmac.compare_digest(g.encode(), expected.encode()) for g in given):
            raise error(f"webhook token {'wrong' if given else 'missing'} ({param})", provider=self.instance_name)

    def parse_events(self, headers: Mapping[str, str], body: bytes) -> WebhookEvents:
        """Verify and parse any callback of this vendor: delivery reports and/or inbound messages.

        The webhook app calls this for every request to ``/{tenant}/{instance}``,
        so the provider tells the kinds apart. The default is
        :meth:`parse_webhook`'s reports; a provider whose vendor documents an
        inbound format overrides it (see docs/inbound.md). Pure, no I/O; raises
        :class:`~smsgate.errors.AuthFailed` for a failed signature or token check.
        """
        return WebhookEvents(reports=self.parse_webhook(headers, body))

    def list_inbound(self) -> Operation[list[InboundMessage]]:
        """The inbound messages (replies) the vendor lists, for a vendor that offers a list
        rather than a webhook; :meth:`smsgate.Tenant.poll_inbound` stores them (once per
        vendor event) and acts on their keywords."""
        raise self.unsupported("inbound listing", "its vendor offers no list of replies to poll (docs/inbound.md, "
                               "'Which vendors send inbound messages', says which do and how: a list, a webhook)")
        yield  # pragma: no cover

    def list_optouts(self) -> Operation[list[OptOut]]:
        """Opt-outs recorded at the vendor."""
        raise self.unsupported("opt-out sync")
        yield  # pragma: no cover

    def add_optout(self, phone: str, reason: str | None = None) -> Operation[None]:
        """Record an opt-out at the vendor."""
        raise self.unsupported("opt-out push")
        yield  # pragma: no cover

    def remove_optout(self, phone: str) -> Operation[None]:
        """Remove (overwrite) an opt-out at the vendor."""
        raise self.unsupported("opt-out removal")
        yield  # pragma: no cover

    def create_template(self, template: Template) -> Operation[Template]:
        """Create a template at the vendor; returns it with its provider id set."""
        raise self.unsupported("templates")
        yield  # pragma: no cover

    def list_templates(self) -> Operation[list[Template]]:
        """Templates stored at the vendor."""
        raise self.unsupported("templates")
        yield  # pragma: no cover

    def create_contact_list(
        self, contact_list: ContactList, phones: Sequence[str]
    ) -> Operation[ContactList]:
        """Create a contact list at the vendor and fill it with ``phones`` (E.164)."""
        raise self.unsupported("contact lists")
        yield  # pragma: no cover

    def create_campaign(self, campaign: Campaign) -> Operation[Campaign]:
        """Hand a whole campaign to the vendor's campaign API."""
        raise self.unsupported("native campaigns")
        yield  # pragma: no cover

    def get_campaign(self, campaign_id: str) -> Operation[Campaign]:
        """A campaign at the vendor, with its current state."""
        raise self.unsupported("native campaigns")
        yield  # pragma: no cover

    def statistics(self, **filters: Any) -> Operation[Stats]:
        """Statistics computed by the vendor.

        ``campaign_id`` (the provider-side campaign id) is the one neutral filter
        every implementation accepts; others are vendor-specific.
        """
        raise self.unsupported("statistics")
        yield  # pragma: no cover


def parse_model(cls: type[M], data: object, where: str) -> M:
    """``data`` (a decoded JSON answer) as a ``cls``: the envelope check of a wire model.

    Anything but an object, or an object ``cls`` refuses, is :class:`MalformedResponse`
    naming ``where`` and the first bad field (never the value: it may be personal data).
    """
    if not isinstance(data, dict):
        raise MalformedResponse(f"{where}: expected a {cls.__name__} object, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "?"
        raise MalformedResponse(f"{where}: unexpected {cls.__name__}: field {loc!r}: {err['msg']}") from None


_INT_TEXT = re.compile(r"[+-]?\d{1,18}")
_DECIMAL_TEXT = re.compile(r"[+-]?\d{1,18}(\.0*)?")


def read_int(value: object) -> int | None:
    """An integer from a vendor's answer, or ``None``: the one lenient reading every provider uses.

    Accepted: an ``int`` (not ``bool``), an integral ``float``, a string of up to 18 digits with
    an optional sign, surrounding blanks and a ``.0`` fraction (``" 3 "``, ``"3.0"``). Anything
    else (``"3.5"``, ``"1e3"``, ``"abc"``, absurdly long digit strings, lists) is ``None``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            return int(text)
        if _DECIMAL_TEXT.fullmatch(text):
            return int(text.split(".", 1)[0])
    return None


def query_token(query: str, name: str) -> tuple[str, ...]:
    """The value of parameter ``name`` in the URL query string ``query`` (its first
    occurrence), read both ways a vendor may have meant it: form-decoded (``+`` is a
    space, as :func:`urllib.parse.parse_qs` reads it) and percent-decoded only (``+``
    stays). A token with ``+`` (base64) pasted into a vendor's callback URL as it is
    arrives unencoded; compare a token with each. ``()`` when the parameter is absent.
    """
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if sep and urllib.parse.unquote_plus(key) == name:
            form, plain = urllib.parse.unquote_plus(value), urllib.parse.unquote(value)
            return (form,) if form == plain else (form, plain)
    return ()


def _option_problems(exc: PydanticValidationError, model: type[BaseModel]) -> list[str]:
    """``options.<loc>: <message>`` per error, any input value masked in the message; an option
    ``model`` does not know names the close one it was likely meant to be."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in ("options", *err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        hint = unknown_key_hint(model, tuple(err["loc"]), "options.") if err["type"] == "extra_forbidden" else ""
        problems.append(f"{loc}: {redact(msg, _leaves(err.get('input')))}{hint}")
    return problems


def _leaves(value: object) -> list[str]:
    """The strings (and numbers, as text) inside an input value, for masking."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [leaf for item in value for leaf in _leaves(item)]
    return []
