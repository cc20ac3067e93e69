"""Drive sans-I/O provider operations over real HTTP clients.

:class:`SyncDriver` runs an operation with an :class:`httpx.Client`,
:class:`AsyncDriver` with anything that sends an :class:`httpx.Request` and
returns its :class:`httpx.Response` read in full (:class:`AsyncSender`): an
:class:`httpx.AsyncClient` on any transport, or :class:`smsgate.aio.AiohttpClient`
(aiohttp, for bulk work). Both apply one retry policy:

* connection failures (the request never left): retried;
* HTTP 429: retried after ``Retry-After`` (or backoff);
* HTTP 5xx: retried only for idempotent requests, or for statuses the vendor
  documents as "not processed" (``RetryPolicy.not_processed``: none by default; the
  provider's declaration and the instance's ``not_processed_statuses`` setting);
* a timeout or broken connection *after* the request was sent: retried only for
  idempotent requests; otherwise :class:`~smsgate.errors.UnknownOutcome` is raised
  so the caller can resolve the outcome instead of sending twice.

A non-idempotent request answered with a 5xx the provider did not declare as
"not processed" also raises ``UnknownOutcome`` once retries are exhausted: the
vendor may have acted on it.

An answer's body is read up to :data:`MAX_ANSWER_BYTES` (past it a
:class:`~smsgate.errors.MalformedResponse`: the vendor may have acted) and must arrive
within :data:`ANSWER_TIME_FACTOR` times the read timeout after its headers (past it the
try ends as a read timeout): a vendor's endless or trickled answer never takes the
process's memory nor holds a send for ever (both drivers, and :class:`smsgate.aio.AiohttpClient`).
An async try must also end within its whole budget (:func:`~smsgate.answers.try_budget`), so
trickled *headers* cannot hold it either (:class:`~smsgate.answers.TryDeadlines`); the sync
driver times them per read only.

A request marked as a download (:func:`smsgate.downloads.download_request`: a media
attachment fetched from the URL a caller gave) is fetched under its
:class:`~smsgate.downloads.DownloadPolicy`: its host resolved once and every address
checked, the connection made to the checked address, the body streamed with httpx and
stopped past the size cap (both drivers, whatever :class:`AsyncSender` sends the rest).
It is not charged to the provider's limits: it does not go to the vendor.

Backoff is capped exponential with full jitter.

:func:`default_client` and :func:`async_client` give the gateways their HTTP
clients. httpx logs every request's full URL at INFO (``HTTP Request: POST
https://...?api_key=...`` on the ``httpx`` logger) and some vendors take
credentials in the query string: the drivers install :class:`HttpxLogRedactor`
there, which drops query strings (and user:password) from that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import importlib.util
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

import httpx

from smsgate import downloads
from smsgate._shield import shielded
from smsgate.answers import (
    ANSWER_TIME_FACTOR,
    KEEPALIVE_SECONDS,
    MAX_ANSWER_BYTES,
    StreamDecoder,
    TryDeadlines,
    aread_decoded,
    decode_step,
    decoded_response,
    pieces,
    read_decoded,
    stream_decoder,
    too_large_answer,
    too_slow_answer,
    too_slow_try,
    try_budget,
)
from smsgate.errors import (
    DownloadRefused,
    DownloadTooLarge,
    LeaseLost,
    TransportError,
    UnknownOutcome,
    mask_path,
    request_where,
)
from smsgate.provider import Operation, Paged, PagesAsked, is_auth_request, is_idempotent, parse_retry_after
from smsgate.traffic.gate import AsyncGate, SyncGate

if TYPE_CHECKING:
    from typing import TypeAlias

    import aiohttp

__all__ = [
    "ANSWER_TIME_FACTOR",
    "DEFAULT_LIMITS",
    "KEEPALIVE_SECONDS",
    "MAX_ANSWER_BYTES",
    "AsyncDriver",
    "AsyncSender",
    "HttpxLogRedactor",
    "RetryPolicy",
    "SyncDriver",
    "ThreadClients",
    "aread_answer",
    "async_client",
    "default_client",
    "forget_request",
    "is_async_client",
    "may_have_left",
    "read_answer",
    "redact_httpx_log",
    "run_with_responses",
    "shown_request_url",
    "too_large_answer",
    "too_slow_answer",
]

log = logging.getLogger("smsgate.transport")

T = TypeVar("T")

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_AMBIGUOUS = (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def may_have_left(response: httpx.Response | None, error: Exception | None, not_processed: frozenset[int]) -> bool:
    """Whether a try that ended with ``response`` or ``error`` may have reached the vendor and
    been acted on: an error once the request may have been written, or a 5xx the provider does
    not declare unprocessed (``not_processed``). A refused connection, a 429 or a 4xx did not."""
    if error is not None:
        return not isinstance(error, (*_NEVER_SENT, httpx.LocalProtocolError))
    return response is not None and response.status_code >= 500 and response.status_code not in not_processed


#: httpcore's trace events of a request about to write its headers on the connection it holds
#: (:class:`smsgate.aio.AiohttpClient` emits the first too, once aiohttp hands a request its
#: connection; on a session of the caller's, once a request that waited for a slot holds one)
_HEADERS_EVENTS = frozenset({"http11.send_request_headers.started", "http2.send_request_headers.started"})


class _FenceStop(Exception):
    """A fence that failed in the client's ``trace`` hook (``error``): raised through the client,
    unwrapped by the driver, which treats it as a fence failing before the try."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


#: A fence that took longer than this at the connection (a lease renewal) gives the connection
#: back: an idle keep-alive connection it was handed may have been closed by the vendor meanwhile
#: (a request written on it fails as one that may have reached the vendor), so the try starts
#: again, unsent, and takes a connection afresh (the pool checks an idle one then, or opens one)
_SLOW_FENCE = 0.1


class _TryAgain(Exception):
    """Raised by the ``trace`` hook after a slow fence at an HTTP/1.1 connection, before anything
    was written on it (httpcore closes a connection whose request raised there): the driver
    starts the try again, once a request (:data:`_SLOW_FENCE`)."""


def _pooled(name: str, info: dict[str, Any]) -> bool:
    """Whether the event is httpcore's on an HTTP/1.1 connection of its pool (its request is
    httpcore's own, not the ``httpx.Request`` that :class:`smsgate.aio.AiohttpClient` passes before
    aiohttp picks a connection; an HTTP/2 connection carries other requests)."""
    return name.startswith("http11.") and not isinstance(info.get("request"), httpx.Request)


class _Trace:
    """The ``trace`` request extension (httpx's, public) of a fenced request: passes the call's
    fence again once the request holds its connection, right before its headers are written.

    The driver checks the fence before each try; a try may then wait inside the client for a
    connection of its pool (more requests in flight than the pool's size) for as long as the
    process stays paused, and leave after another runner took its claims over. Any ``trace`` the
    request carried already is called first."""

    __slots__ = ("fence", "outer", "refreshed")

    def __init__(self, fence: Callable[[], object], outer: Callable[[str, dict[str, Any]], object] | None) -> None:
        self.fence = fence
        self.outer = outer
        self.refreshed = False  # started the try again after a slow fence (once a request)

    def __call__(self, name: str, info: dict[str, Any]) -> None:
        if self.outer is not None:
            self.outer(name, info)
        if name in _HEADERS_EVENTS:
            started = time.monotonic()
            try:
                self.fence()
            except Exception as exc:
                raise _FenceStop(exc) from exc
            if not self.refreshed and time.monotonic() - started > _SLOW_FENCE and _pooled(name, info):
                self.refreshed = True
                raise _TryAgain


class _AsyncTrace:
    """:class:`_Trace` for async clients (httpx's async ``trace`` is a coroutine function)."""

    __slots__ = ("fence", "outer", "refreshed")

    def __init__(self, fence: Callable[[], Awaitable[object] | None],
                 outer: Callable[[str, dict[str, Any]], Awaitable[object]] | None) -> None:
        self.fence = fence
        self.outer = outer
        self.refreshed = False

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if self.outer is not None:
            await self.outer(name, info)
        if name in _HEADERS_EVENTS:
            started = time.monotonic()
            try:
                if (pending := self.fence()) is not None:
                    await pending
            except Exception as exc:
                raise _FenceStop(exc) from exc
            if not self.refreshed and time.monotonic() - started > _SLOW_FENCE and _pooled(name, info):
                self.refreshed = True
                raise _TryAgain


def _traced(request: httpx.Request, trace: type[_Trace] | type[_AsyncTrace], fence: Any) -> None:
    """Give ``request`` a ``trace`` extension passing ``fence`` (once: a request sent again keeps
    the first one's, whose fence it replaces)."""
    outer: Any = request.extensions.get("trace")
    if isinstance(outer, (_Trace, _AsyncTrace)):
        outer = outer.outer
    request.extensions["trace"] = trace(fence, outer)


def _refuse(request: httpx.Request, provider: str, exc: Exception, left: bool) -> NoReturn:
    """Raise what a try that its fence or its limits refused (``exc``) ends with: ``exc`` itself,
    unless an earlier try of the request may have reached the vendor (``left``): then not
    "never sent" but :class:`UnknownOutcome` (``LeaseLost`` always stands: its messages are
    another runner's to settle)."""
    if left and not isinstance(exc, LeaseLost):
        raise _stopped_after_a_try(request, provider, exc) from exc
    raise exc


def _stopped_after_a_try(request: httpx.Request, provider: str, exc: Exception) -> UnknownOutcome:
    """What a retry that its limits stopped (``exc``: a stop, the limits' store failing) raises
    when an earlier try of the same request may have reached the vendor: not "never sent"."""
    return UnknownOutcome(
        f"{request_where(request)}: an earlier try may have reached the provider, and the "
        f"retry was stopped before it left ({type(exc).__name__}): the message may have been sent",
        provider=provider,
    )


def _answer_deadline(request: httpx.Request, timeout: httpx.Timeout) -> float | None:
    """When the body of ``request``'s answer must have arrived by (``None``: no read timeout)."""
    per_request = request.extensions.get("timeout")
    read = per_request.get("read") if isinstance(per_request, dict) else timeout.read
    return None if read is None else time.monotonic() + ANSWER_TIME_FACTOR * float(read)


class _BoundedStream(httpx.SyncByteStream):
    """An answer's body stream as it arrives, stopped past ``limit`` bytes (:data:`MAX_ANSWER_BYTES`;
    ``None``: a download, held to its policy's ``max_bytes`` as httpx decodes it) or its deadline;
    with ``step`` (a compressed body, :func:`~smsgate.answers.decode_step`) handed on in pieces of
    at most ``step`` bytes, so that httpx decodes no more than a step's worth at a time."""

    def __init__(self, stream: Iterable[bytes], request: httpx.Request, provider: str, deadline: float | None,
                 step: int | None, limit: int | None) -> None:
        self.stream, self.request, self.provider, self.deadline = stream, request, provider, deadline
        self.step, self.limit = step, limit

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self.stream:
            size += len(chunk)
            if self.limit is not None and size > self.limit:
                raise too_large_answer(self.request, self.provider)
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise too_slow_answer(self.request)
            if self.step is None:
                yield chunk
            else:
                yield from pieces(chunk, self.step)

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


class _AsyncBoundedStream(httpx.AsyncByteStream):
    """:class:`_BoundedStream` of an async answer."""

    def __init__(self, stream: AsyncIterable[bytes], request: httpx.Request, provider: str,
                 deadline: float | None, step: int | None, limit: int | None) -> None:
        self.stream, self.request, self.provider, self.deadline = stream, request, provider, deadline
        self.step, self.limit = step, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self.stream:
            size += len(chunk)
            if self.limit is not None and size > self.limit:
                raise too_large_answer(self.request, self.provider)
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise too_slow_answer(self.request)
            if self.step is None:
                yield chunk
            else:
                for piece in pieces(chunk, self.step):
                    yield piece

    async def aclose(self) -> None:
        aclose = getattr(self.stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _decoder(response: httpx.Response, provider: str) -> StreamDecoder | None:
    """The streaming decoder of ``response``'s body, held to the answer cap (brotli, zstd:
    :func:`~smsgate.answers.stream_decoder`); ``None``: httpx decodes it, if anything."""
    request = response.request
    return stream_decoder(response.headers.get_list("content-encoding"), MAX_ANSWER_BYTES,
                          lambda: too_large_answer(request, provider))


def _step(response: httpx.Response, provider: str) -> int | None:
    """How many raw bytes of ``response``'s body httpx may decode at a time (``None``: not compressed)."""
    encoding = response.headers.get_list("content-encoding")
    return decode_step(encoding, response.request, provider=provider) if encoding else None


def read_answer(client: httpx.Client, request: httpx.Request, provider: str = "") -> httpx.Response:
    """Send ``request`` with ``client`` and read its answer, at most :data:`MAX_ANSWER_BYTES` of it
    (as it arrives, and once decoded) within :data:`ANSWER_TIME_FACTOR` times its read timeout (else
    :class:`MalformedResponse`, or :class:`httpx.ReadTimeout`; the connection is closed). A
    compressed answer comes back decoded (:func:`~smsgate.answers.decoded_response`)."""
    response = client.send(request, stream=True)
    try:
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)  # what a sync client answers with
        decoder = _decoder(response, provider)
        step = None if decoder is not None else _step(response, provider)
        response.stream = _BoundedStream(stream, request, provider, _answer_deadline(request, client.timeout),
                                         step, MAX_ANSWER_BYTES)
        if decoder is not None:
            response = decoded_response(response, decoder.read(response.iter_raw()))
        elif step is None:
            response.read()
        else:
            content = read_decoded(response.iter_bytes(), MAX_ANSWER_BYTES, lambda: too_large_answer(request, provider))
            response = decoded_response(response, content)
    except BaseException:
        response.close()
        raise
    return response


async def aread_answer(client: httpx.AsyncClient, request: httpx.Request, provider: str = "") -> httpx.Response:
    """:func:`read_answer` with an :class:`httpx.AsyncClient`."""
    response = await client.send(request, stream=True)
    try:
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)  # what an async client answers with
        decoder = _decoder(response, provider)
        step = None if decoder is not None else _step(response, provider)
        response.stream = _AsyncBoundedStream(stream, request, provider, _answer_deadline(request, client.timeout),
                                              step, MAX_ANSWER_BYTES)
        if decoder is not None:
            response = decoded_response(response, await decoder.aread(response.aiter_raw()))
        elif step is None:
            await response.aread()
        else:
            content = await aread_decoded(response.aiter_bytes(), MAX_ANSWER_BYTES,
                                          lambda: too_large_answer(request, provider))
            response = decoded_response(response, content)
    except BaseException:
        await response.aclose()
        raise
    return response


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a request.

    ``max_retries`` counts repeats after the first attempt. Delays grow as
    ``base * 2**attempt`` capped at ``max_delay``, with full jitter; a
    ``Retry-After`` from the server wins, capped at ``max_retry_after``.
    """

    max_retries: int = 3
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    not_processed: frozenset[int] = frozenset()
    provider: str = ""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """Jittered delay before retry number ``attempt`` (0-based)."""
        cap = min(self.max_delay, self.base_delay * (2**attempt))
        return self.rng.uniform(0, cap)

    def decide(
        self, request: httpx.Request, attempt: int, response: httpx.Response | None,
        error: Exception | None,
    ) -> float | None:
        """Seconds to wait before retrying, or ``None`` to stop.

        Raises :class:`TransportError` / :class:`UnknownOutcome` when retries are
        exhausted on a transport failure.
        """
        can_retry = attempt < self.max_retries
        idempotent = is_idempotent(request)
        if error is not None:
            where = f"{request_where(request)}"
            forget_request(error)  # the cause of the error raised below (the request sent again is not it)
            if isinstance(error, httpx.LocalProtocolError):
                # h11 refuses to write a request it cannot frame (a header value holding a line
                # break or a NUL) before a byte of it leaves: never sent, and the same again if
                # repeated. Its text quotes the header's value (a credential): left out, as the cause.
                raise TransportError(
                    f"{where}: the request could not be written (an illegal character in a header; "
                    f"is there a line break or a NUL at the end of a credential?), so nothing was sent to "
                    f"{_host_port(request.url)}", provider=self.provider,
                ) from None
            if isinstance(error, _NEVER_SENT):
                if can_retry:
                    return self.backoff(attempt)
                raise TransportError(
                    f"{where}: could not connect to {_host_port(request.url)} "
                    f"({_describe(error)}) after {attempt + 1} attempt(s); is the base_url right and the "
                    "service up?", provider=self.provider,
                ) from error
            if idempotent and can_retry:
                return self.backoff(attempt)
            if idempotent:
                raise TransportError(
                    f"{where}: {type(error).__name__} after {attempt + 1} attempts",
                    provider=self.provider,
                ) from error
            raise UnknownOutcome(
                f"{where}: {type(error).__name__} after the request was sent; the provider may "
                "have processed it, so it was not repeated",
                provider=self.provider,
            ) from error
        assert response is not None
        code = response.status_code
        if code == 429:
            if not can_retry:
                return None
            after = parse_retry_after(response.headers.get("retry-after"))
            if after is not None:
                return min(after, self.max_retry_after)
            return self.backoff(attempt)
        if code >= 500:
            safe = idempotent or code in self.not_processed
            if safe and can_retry:
                after = parse_retry_after(response.headers.get("retry-after"))
                return min(after, self.max_retry_after) if after is not None else self.backoff(attempt)
            if not safe:
                raise UnknownOutcome(
                    f"{request_where(request)}: HTTP {code} after the request was "
                    "sent; the provider may have processed it, so it was not repeated",
                    provider=self.provider,
                    status_code=code,
                )
        return None


def _host_port(url: httpx.URL) -> str:
    """``host:port`` of ``url`` (the scheme's default port when it names none)."""
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return f"{url.host}:{port}" if port else url.host


def _describe(error: Exception) -> str:
    """``ConnectError: [Errno 111] Connection refused`` (the exception's own text when it has one)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class AsyncSender(Protocol):
    """What :class:`AsyncDriver` sends with.

    :class:`httpx.AsyncClient` and :class:`smsgate.aio.AiohttpClient` are two;
    ``send`` returns the response with its body read, and raises httpx's
    exceptions (:class:`httpx.TransportError` and its subclasses) for failures.
    """

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the response's body is read."""
        ...

    async def aclose(self) -> None:
        """Release the connections."""
        ...


if TYPE_CHECKING:
    #: What ``AsyncGateway(http_client=...)`` takes (see :func:`async_client`).
    AsyncHTTPClient: TypeAlias = "AsyncSender | aiohttp.ClientSession"

#: The sync default's pool: keep-alive connections for a gateway shared by ~64 threads.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=64, keepalive_expiry=KEEPALIVE_SECONDS)


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing.

    The drivers send requests the providers built, which never carry a client's
    cookies (httpx adds them in ``build_request`` only), so storing the cookies
    vendors set is work for nothing: about 9 us per response.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        """Keep no cookie from ``response``."""


def default_client(*, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """The :class:`httpx.Client` a :class:`~smsgate.Gateway` makes when given none.

    A plain httpx client: 30 s timeouts (providers set their own per request),
    :data:`DEFAULT_LIMITS`, and a cookie jar that keeps nothing (the requests
    smsgate sends never carry the client's cookies). ``verify``: httpx's (a TLS
    context made once with :func:`httpx.create_ssl_context` saves each further
    client the ~20 ms of loading the CA certificates).
    """
    return httpx.Client(timeout=30.0, limits=DEFAULT_LIMITS, cookies=_NoCookies(), verify=verify)


class ThreadClients:
    """A plain :class:`httpx.Client` of its own for each send thread of a gateway that made its client.

    httpcore's connection pool looks over every pooled connection, under one lock, at each
    request and each response, so threads sharing one client spend CPU a request that grows
    with their number (bench/analysis.md, 2026-12-05: ~30 us at 2 threads, ~1,270 at 64).
    A campaign run's send threads (:meth:`thread`) each take a client made as
    :func:`default_client` makes it (one TLS context shared by all), from a free list they
    give it back to, so later runs reuse its connections; :meth:`close` closes them.
    A client the application gave the gateway is shared by every thread, as given.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the fields below
        self._free: list[httpx.Client] = []
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    def current(self) -> httpx.Client | None:
        """The calling thread's client, while it is a send thread (inside :meth:`thread`)."""
        return getattr(self._local, "client", None)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def thread(self) -> Iterator[None]:
        """Run the calling thread's sends on a client of its own until the block ends."""
        with self._lock:
            client = self._free.pop() if self._free else None
            if client is None and self._tls is None:
                self._tls = httpx.create_ssl_context()
            tls = self._tls
        if client is None:
            client = default_client(verify=tls if tls is not None else True)
        self._local.client = client
        try:
            yield
        finally:
            self._local.client = None
            with self._lock:
                keep = not self._closed
                if keep:
                    self._free.append(client)
            if not keep:
                client.close()

    def close(self) -> None:
        """Close the clients not in use; those in use close when their thread ends."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        for client in free:
            client.close()


def async_client(http_client: Any = None) -> AsyncSender:
    """The :class:`AsyncSender` for ``AsyncGateway(http_client=...)``.

    ``None``: a new :class:`smsgate.aio.AiohttpClient` when aiohttp is installed
    (``pip install 'smsgate[fast]'``), else a plain ``httpx.AsyncClient`` (30 s
    timeouts, a cookie jar that keeps nothing, as :func:`default_client`).
    An :class:`aiohttp.ClientSession` is wrapped in an ``AiohttpClient`` (which
    never closes it); an ``httpx.AsyncClient``, an ``AiohttpClient`` or any other
    :class:`AsyncSender` is used as it is. Anything else (:func:`is_async_client`) is a ``TypeError``.
    """
    if not is_async_client(http_client):
        raise TypeError(
            f"http_client must be an httpx.AsyncClient, an aiohttp.ClientSession or smsgate.aio.AiohttpClient, "
            f"not {type(http_client).__name__}"
        )
    if http_client is None:
        if importlib.util.find_spec("aiohttp") is None:
            return httpx.AsyncClient(timeout=30.0, cookies=_NoCookies(), limits=httpx.Limits(
                max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_SECONDS))
        from smsgate.aio import AiohttpClient

        return AiohttpClient()
    if _is_aiohttp_session(http_client):
        from smsgate.aio import AiohttpClient

        return AiohttpClient(http_client)
    return http_client  # type: ignore[no-any-return]


def is_async_client(http_client: object) -> bool:
    """Whether :func:`async_client` takes ``http_client``: ``None``, an :class:`AsyncSender`
    (``send`` and ``aclose``: an ``httpx.AsyncClient``, an ``AiohttpClient``) or an
    :class:`aiohttp.ClientSession`."""
    return (http_client is None or _is_aiohttp_session(http_client)
            or (callable(getattr(http_client, "send", None)) and callable(getattr(http_client, "aclose", None))))


def _is_aiohttp_session(http_client: object) -> bool:
    if not type(http_client).__module__.startswith("aiohttp"):
        return False  # (aiohttp, an optional dependency, is imported only for one of its objects)
    import aiohttp

    return isinstance(http_client, aiohttp.ClientSession)


class HttpxLogRedactor(logging.Filter):
    """Drops query strings (and user:password) from httpx's ``HTTP Request:`` log line, and
    masks phone numbers in its path.

    httpx logs ``HTTP Request: POST https://host/path?api_key=... "HTTP/1.1 200 OK"``
    at INFO on the ``httpx`` logger; the URL becomes ``https://host/path``. A run of 8 to
    15 digits in the path (``+`` or ``%2B`` before it or not: a vendor API taking the
    recipient in its path, ``/send/{to}``), not part of a hex id or a UUID, is masked as smsgate's own logs
    and errors mask numbers (:func:`smsgate.errors.mask_path`: ``/send/+234*******567``,
    ``/send/tel%3A%2B234*******567``). Every other record passes unchanged. Installed by
    :func:`redact_httpx_log`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the URL argument of an ``HTTP Request:`` record; keep every record."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(record.msg, str) \
                and record.msg.startswith("HTTP Request:"):
            url = args[1]
            if isinstance(url, str):
                try:
                    url = httpx.URL(url)
                except httpx.InvalidURL:
                    return True
            if isinstance(url, httpx.URL):
                shown = shown_request_url(url)
                if shown is not url:
                    record.args = (args[0], shown, *args[2:])
        return True


def shown_request_url(url: httpx.URL) -> httpx.URL:
    """``url`` as a log line or an error may show it: without its query string, fragment and
    user information (a key may be there), the phone numbers of its path masked
    (:func:`~smsgate.errors.mask_path`); ``url`` itself when it has none of them. The one rule
    of httpx's request log line (:class:`HttpxLogRedactor`) and of the request an error's cause
    keeps (:func:`forget_request`)."""
    shown = url
    if url.query or url.fragment or url.userinfo:
        shown = url.copy_with(query=None, fragment=None, userinfo=b"")
    path = shown.raw_path.decode("ascii", "replace")
    masked = mask_path(path)
    if masked != path:
        shown = shown.copy_with(raw_path=masked.encode("ascii"))
    return shown


def forget_request(error: BaseException) -> BaseException:
    """``error`` (an httpx error, about to be the cause of a :class:`~smsgate.errors.TransportError`
    or :class:`~smsgate.errors.UnknownOutcome`) with its ``request`` replaced by a bare one:
    the method and :func:`shown_request_url`, no headers, no body. The request it kept held the
    credentials (an ``Authorization`` or key header, a key in the query string) and the
    message's text, for anyone reading ``exc.__cause__.request`` (an error tracker, a logger
    printing the chain's attributes)."""
    if not isinstance(error, httpx.RequestError):
        return error
    try:
        request = error.request  # (public: raises RuntimeError when the error holds none)
    except RuntimeError:
        return error
    error.request = httpx.Request(request.method, shown_request_url(request.url))
    return error


_redactor_lock = threading.Lock()


def redact_httpx_log() -> None:
    """Install :class:`HttpxLogRedactor` on the ``httpx`` logger, once (idempotent).

    The drivers call it, so any client smsgate sends with is covered.
    """
    logger = logging.getLogger("httpx")
    if any(isinstance(f, HttpxLogRedactor) for f in logger.filters):
        return
    with _redactor_lock:
        if not any(isinstance(f, HttpxLogRedactor) for f in logger.filters):
            logger.addFilter(HttpxLogRedactor())


def _log_request(request: httpx.Request, response: httpx.Response | None, attempt: int) -> None:
    if log.isEnabledFor(logging.DEBUG):
        status = response.status_code if response is not None else "error"
        # never the query string or the body: they may hold credentials or message text
        log.debug("%s -> %s (attempt %d)", request_where(request), status, attempt + 1)


def _download_target(request: httpx.Request, policy: downloads.DownloadPolicy,
                     addresses: list[str] | None) -> httpx.Request:
    """The request to send for a download: pinned to its checked address (unless private
    hosts are allowed, when ``addresses`` is ``None``)."""
    if addresses is None:
        return request
    return downloads.pinned(request, downloads.check_address(request.url, addresses, policy))


def _too_large(request: httpx.Request, policy: downloads.DownloadPolicy) -> DownloadTooLarge:
    return DownloadTooLarge(url=downloads.shown_url(request.url), limit=policy.max_bytes)


def _download_decoder(response: httpx.Response, request: httpx.Request,
                      policy: downloads.DownloadPolicy) -> StreamDecoder | None:
    """The streaming decoder of a download's body, held to its ``max_bytes`` (brotli, zstd:
    :func:`~smsgate.answers.stream_decoder`); ``None``: httpx decodes it, if anything."""
    return stream_decoder(response.headers.get_list("content-encoding"), policy.max_bytes,
                          lambda: _too_large(request, policy))


def _download_step(response: httpx.Response, request: httpx.Request) -> int | None:
    """How many raw bytes of a compressed download httpx may decode at a time, so that no step
    decodes past its cap by much (``gzip, gzip``, brotli: a few bytes decode to MiB, a few KiB to
    gigabytes); ``None`` when it is not compressed. An encoding that cannot be bounded so is
    refused (:class:`~smsgate.errors.DownloadRefused`)."""
    encoding = response.headers.get_list("content-encoding")
    if not encoding:
        return None
    return decode_step(encoding, request, refuse=lambda reason: DownloadRefused(
        reason, url=downloads.shown_url(request.url)))


class SyncDriver:
    """Runs operations with a blocking :class:`httpx.Client`."""

    def __init__(
        self,
        client: httpx.Client,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        threads: ThreadClients | None = None,
    ) -> None:
        self.client = client
        #: A send thread's own client, used instead of ``client`` in that thread.
        self.threads = threads
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._stock_policy = type(self.policy).decide is RetryPolicy.decide
        redact_httpx_log()

    def send(self, request: httpx.Request, gate: SyncGate | None = None,
             fence: Callable[[], object] | None = None,
             recheck: Callable[[], object] | None = None) -> httpx.Response:
        """Send one request with the retry policy applied; each attempt first passes ``gate``
        (the limits it is charged to), unless it obtains credentials; each try first passes
        ``fence`` (its exception, e.g. :class:`~smsgate.errors.LeaseLost`, is raised as it is):
        a retry, and the first try too, as a request of an operation that made others before it
        (a token fetch, a 401's refresh) leaves long after the call's own fence. ``recheck`` is
        passed by each try once its limits admitted it, right before it leaves (a send's opt-outs
        read again after a wait, see :class:`smsgate.core.deliver.Fresh`); what it raises is
        raised as ``fence``'s is, its place in the limits given back."""
        policy = request.extensions.get(downloads.DOWNLOAD)
        if gate is not None and (is_auth_request(request) or policy is not None):
            gate = None
        if fence is not None:  # passed again once the try holds its connection (_Trace)
            _traced(request, _Trace, fence)
        attempt, left = 0, False
        while True:
            response: httpx.Response | None = None
            error: Exception | None = None
            try:  # each try passes the call's fence first (the first too: see the docstring); its limits
                if fence is not None:
                    fence()
                ticket = gate.acquire() if gate is not None else None
            except Exception as exc:  # an earlier try may have reached the vendor: never "not sent"
                _refuse(request, self.policy.provider, exc, left)
            if recheck is not None:  # after any wait: its limits', the retry's own
                try:
                    recheck()
                except BaseException as exc:  # not sent: its place given back, as a gate's fence does
                    if ticket is not None:
                        gate.release(ticket)  # type: ignore[union-attr]
                        gate.admitted -= 1  # type: ignore[union-attr]
                    if not isinstance(exc, Exception):
                        raise
                    _refuse(request, self.policy.provider, exc, left)
            try:
                if policy is not None:
                    response = self._download(request, policy)
                else:
                    response = read_answer(self._client(), request, self.policy.provider)
            except httpx.TransportError as exc:
                error = exc
            except _FenceStop as stop:
                _refuse(request, self.policy.provider, stop.error, left)
            except _TryAgain:  # a slow fence at a pooled connection: the try again, unsent (_SLOW_FENCE)
                continue
            finally:
                if ticket is not None:
                    gate.release(ticket)  # type: ignore[union-attr]
            _log_request(request, response, attempt)
            if response is not None and response.status_code < 429 and self._stock_policy:
                return response  # RetryPolicy.decide's answer for it, without the call
            delay = self.policy.decide(request, attempt, response, error)
            if delay is None:
                assert response is not None
                return response
            left = left or may_have_left(response, error, self.policy.not_processed)
            self._sleep(delay)
            attempt += 1

    def _client(self) -> httpx.Client:
        """The client of the calling thread: its own (a send thread's, see :class:`ThreadClients`), else ``client``."""
        return (self.threads.current() if self.threads is not None else None) or self.client

    def _download(self, request: httpx.Request, policy: downloads.DownloadPolicy) -> httpx.Response:
        downloads.check_url(str(request.url))
        addresses = None if policy.allow_private else downloads.resolve(request.url)
        response = self._client().send(_download_target(request, policy, addresses), stream=True)
        try:
            response.request = request
            downloads.check_response(response, policy)
            if (decoder := _download_decoder(response, request, policy)) is not None:
                return downloads.completed(response, decoder.read(response.iter_raw()))
            if (step := _download_step(response, request)) is not None:
                assert isinstance(response.stream, httpx.SyncByteStream)
                response.stream = _BoundedStream(response.stream, request, self.policy.provider, None, step, None)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > policy.max_bytes:
                    raise _too_large(request, policy)
        finally:
            response.close()
        return downloads.completed(response, bytes(body))

    def run(self, operation: Operation[T], gate: SyncGate | None = None,
            fence: Callable[[], object] | None = None, recheck: Callable[[], object] | None = None) -> T:
        """Drive ``operation`` to completion and return its result (its requests through ``gate``,
        each of their tries through ``fence`` and ``recheck``: see :meth:`send`)."""
        try:
            request = next(operation)
            while True:
                try:
                    response = self.send(request, gate, fence, recheck)
                except Exception as exc:
                    request = operation.throw(exc)
                else:
                    request = operation.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def iterate(self, paged: Paged[T]) -> Iterator[T]:
        """Yield every item of a paged listing, one page in memory at a time."""
        request: httpx.Request | None = paged.first
        asked = PagesAsked(paged.first)
        while request is not None:
            page = self.run(paged.fetch(request))
            yield from page.items
            request = paged.after(page, asked)


class AsyncDriver:
    """Runs operations with an :class:`AsyncSender`.

    ``client`` is an :class:`httpx.AsyncClient` (any transport) or a
    :class:`smsgate.aio.AiohttpClient`; :func:`async_client` also turns an
    :class:`aiohttp.ClientSession` into one.
    """

    def __init__(
        self,
        client: AsyncSender,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._stock_policy = type(self.policy).decide is RetryPolicy.decide
        self._deadlines: TryDeadlines | None = None  # of the loop it last ran on
        redact_httpx_log()

    async def send(self, request: httpx.Request, gate: AsyncGate | None = None,
                   fence: Callable[[], Awaitable[object] | None] | None = None,
                   recheck: Callable[[], Awaitable[object] | None] | None = None) -> httpx.Response:
        """Send one request with the retry policy applied; each attempt first passes ``gate``
        (the limits it is charged to), unless it obtains credentials; each try ``fence``, and
        ``recheck`` once admitted (see :meth:`SyncDriver.send`)."""
        response: httpx.Response = await self.run(_one(request), gate, fence, recheck)
        return response

    async def _download(self, request: httpx.Request, policy: downloads.DownloadPolicy) -> httpx.Response:
        url = downloads.check_url(str(request.url))
        addresses = None
        if not policy.allow_private:
            addresses = downloads.literal_address(url)
            if addresses is None:  # looked up off the event loop, once
                port = url.port or (443 if url.scheme == "https" else 80)
                try:
                    infos = await asyncio.get_running_loop().getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
                except (OSError, UnicodeError) as exc:
                    raise downloads.unresolvable(url, exc) from None
                addresses = downloads.addresses_of(infos)
        target = _download_target(request, policy, addresses)
        async with contextlib.AsyncExitStack() as stack:
            # streamed with httpx whatever sends the rest (an AsyncSender reads bodies in full)
            client = self.client if isinstance(self.client, httpx.AsyncClient) else \
                await stack.enter_async_context(httpx.AsyncClient(cookies=_NoCookies()))
            response = await client.send(target, stream=True)
            stack.push_async_callback(response.aclose)
            response.request = request
            downloads.check_response(response, policy)
            if (decoder := _download_decoder(response, request, policy)) is not None:
                return downloads.completed(response, await decoder.aread(response.aiter_raw()))
            if (step := _download_step(response, request)) is not None:
                assert isinstance(response.stream, httpx.AsyncByteStream)
                response.stream = _AsyncBoundedStream(response.stream, request, self.policy.provider, None, step,
                                                      None)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > policy.max_bytes:
                    raise _too_large(request, policy)
        return downloads.completed(response, bytes(body))

    async def run(self, operation: Operation[T], gate: AsyncGate | None = None,
                  fence: Callable[[], Awaitable[object] | None] | None = None,
                  recheck: Callable[[], Awaitable[object] | None] | None = None) -> T:
        """Drive ``operation`` to completion and return its result: each request it makes is sent
        with the retry policy applied, each attempt first passing ``gate`` (the limits it is
        charged to) unless it obtains credentials, each try first passing ``fence``, and
        ``recheck`` once admitted (see :meth:`SyncDriver.send`; what they return is awaited
        unless ``None``); a request's failure is raised in ``operation``.

        Each request is sent here, not by a coroutine of its own (:meth:`send` runs a one-request
        operation): a request in flight keeps one coroutine fewer alive, for the garbage collector
        to go through while thousands wait for their answers."""
        try:
            request = next(operation)
            while True:
                try:
                    policy = request.extensions.get(downloads.DOWNLOAD)
                    through = gate
                    if through is not None and (is_auth_request(request) or policy is not None):
                        through = None
                    if fence is not None:  # passed again once the try holds its connection (_Trace)
                        _traced(request, _AsyncTrace, fence)
                    attempt, left = 0, False
                    while True:
                        response: httpx.Response | None = None
                        error: Exception | None = None
                        try:  # each try passes the call's fence first (see SyncDriver.send); its limits
                            if fence is not None and (pending := fence()) is not None:
                                await pending  # (None: a clock read said the fence holds)
                            ticket = await through.acquire() if through is not None else None
                        except Exception as exc:  # an earlier try may have reached the vendor: never "not sent"
                            _refuse(request, self.policy.provider, exc, left)
                        if recheck is not None:  # after any wait: its limits', the retry's own
                            try:
                                if (pending := recheck()) is not None:
                                    await pending  # (None: a clock read said it is fresh)
                            except BaseException as exc:  # not sent: its place given back, as a gate's fence does
                                if ticket is not None:
                                    with shielded():
                                        await through.release(ticket)  # type: ignore[union-attr]
                                    through.admitted -= 1  # type: ignore[union-attr]
                                if not isinstance(exc, Exception):
                                    raise
                                _refuse(request, self.policy.provider, exc, left)
                        try:
                            if policy is not None:
                                response = await self._download(request, policy)
                            else:  # within the try's whole budget (_watch)
                                client = self.client
                                watched = self._watch(request)
                                try:
                                    if isinstance(client, httpx.AsyncClient):
                                        response = await aread_answer(client, request, self.policy.provider)
                                    else:  # an AsyncSender reads answers in full (AiohttpClient: bounded too)
                                        response = await client.send(request)
                                        if not response.is_stream_consumed:
                                            await response.aread()
                                except asyncio.CancelledError:
                                    if watched is not None and watched.settle():
                                        raise too_slow_try(request, self._budget(request) or 0.0) from None
                                    raise
                                finally:
                                    if watched is not None:
                                        watched.settle()
                        except httpx.TransportError as exc:
                            error = exc
                        except _FenceStop as stop:
                            _refuse(request, self.policy.provider, stop.error, left)
                        except _TryAgain:  # a slow fence at a pooled connection: the try again, unsent
                            continue
                        finally:
                            if ticket is not None:
                                await through.release(ticket)  # type: ignore[union-attr]
                        _log_request(request, response, attempt)
                        if response is not None and response.status_code < 429 and self._stock_policy:
                            break  # RetryPolicy.decide's answer for it, without the call
                        delay = self.policy.decide(request, attempt, response, error)
                        if delay is None:
                            break
                        left = left or may_have_left(response, error, self.policy.not_processed)
                        await self._sleep(delay)
                        attempt += 1
                    assert response is not None
                except Exception as exc:
                    request = operation.throw(exc)
                else:
                    request = operation.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _budget(self, request: httpx.Request) -> float | None:
        """The whole budget of a try of ``request`` (:func:`~smsgate.answers.try_budget` of its
        ``timeout`` extension, else of an :class:`httpx.AsyncClient`'s own timeouts)."""
        timeouts = request.extensions.get("timeout")
        if timeouts is None and isinstance(self.client, httpx.AsyncClient):
            timeouts = self.client.timeout.as_dict()
        return try_budget(timeouts)

    def _watch(self, request: httpx.Request) -> TryDeadlines | None:
        """Watch the calling task's try of ``request`` for its whole budget (:meth:`_budget`);
        past it the try ends as :func:`~smsgate.answers.too_slow_try` (the vendor may have taken
        it). The deadlines it is watched by (``None``: unbounded), which the caller settles when the
        try ends: inline in :meth:`run`, so that a request in flight keeps no coroutine nor object
        of its own alive for this."""
        budget = self._budget(request)
        if budget is None:
            return None
        deadlines = self._deadlines
        loop = asyncio.get_running_loop()
        if deadlines is None or deadlines.loop is not loop:
            deadlines = self._deadlines = TryDeadlines(loop)
        return deadlines if deadlines.watch(budget) else None

    async def iterate(self, paged: Paged[T]) -> AsyncIterator[T]:
        """Yield every item of a paged listing, one page in memory at a time."""
        request: httpx.Request | None = paged.first
        asked = PagesAsked(paged.first)
        while request is not None:
            page = await self.run(paged.fetch(request))
            for item in page.items:
                yield item
            request = paged.after(page, asked)


def _one(request: httpx.Request) -> Operation[httpx.Response]:
    """The operation of sending ``request`` alone (:meth:`AsyncDriver.send`)."""
    response = yield request
    return response


Responder = httpx.Response | Callable[[httpx.Request], httpx.Response]


def run_with_responses(operation: Operation[T], responses: Iterable[Responder]) -> T:
    """Drive ``operation`` with canned responses, no network: for adapter unit tests.

    Each item is a response (its ``request`` is set to the yielded request) or a
    callable receiving the request. Raises ``AssertionError`` if the operation
    asks for more requests than given.
    """
    feed = iter(responses)
    try:
        request = next(operation)
        while True:
            try:
                item = next(feed)
            except StopIteration:
                raise AssertionError(
                    f"operation made an unexpected request: {request.method} {request.url}"
                ) from None
            response = item(request) if callable(item) else item
            response.request = request
            request = operation.send(response)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
