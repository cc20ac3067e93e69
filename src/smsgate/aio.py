"""Bulk async HTTP on aiohttp, for providers that speak httpx.

httpx's own async connection pool slows down sharply as concurrency grows (see
docs/performance.md), and real vendors need high concurrency to hide their
latency. :class:`AiohttpClient` runs the :class:`httpx.Request` objects that
providers build on an :class:`aiohttp.ClientSession` and hands back ordinary
:class:`httpx.Response` objects, so providers and the retry policy in
:mod:`smsgate.transport` see nothing but httpx. Only public APIs of both
libraries are used: the request goes out through ``ClientSession.request``, the
answer comes back as ``httpx.Response(status, headers=..., stream=httpx.ByteStream(body))``
read in full, exactly as a custom httpx transport builds it.

:class:`~smsgate.AsyncGateway` uses it by default when aiohttp is installed
(``pip install 'smsgate[fast]'``)::

    from smsgate import AsyncGateway
    from smsgate.aio import AiohttpClient

    async with AsyncGateway("smsgate.toml") as gw:  # an AiohttpClient of its own
        results = await gw.tenant("acme").send_many(numbers, "Sale ends tonight", concurrency=256)

    client = AiohttpClient(limit=512)  # or your own, shared by several gateways (closed by you)
    gw = AsyncGateway("smsgate.toml", http_client=client)

What goes on the wire is the httpx request as built: its method, URL, headers
(aiohttp adds none of its own: no ``User-Agent``, ``Accept``, ``Accept-Encoding``
or ``Content-Type`` the request did not carry) and body; the one difference is
a ``Content-Length: 0`` that aiohttp adds to a ``DELETE`` without a body. Redirects are not
followed, no cookie jar keeps cookies between requests, and compressed answers
are handed to httpx undecoded, so ``response.content`` is decoded by httpx as
with its own transports.

Failures are the httpx exceptions httpx's own transport raises for the same
event, so the retry policy's split between "never sent" (retried) and "maybe
sent" (never repeated for a non-idempotent request: :class:`~smsgate.errors.UnknownOutcome`)
holds on this client too. tests/test_aio.py checks each row against httpx itself
on loopback servers that misbehave on purpose:

==============================================  ===========================================
aiohttp                                         httpx (smsgate's outcome)
==============================================  ===========================================
``ClientConnectorError`` (refused, DNS, TLS     ``ConnectError`` (never sent: retried)
handshake or certificate, proxy unreachable),
``ServerFingerprintMismatch``
``ConnectionTimeoutError`` (connecting)         ``ConnectTimeout`` (never sent)
no free connection within ``timeout["pool"]``   ``PoolTimeout`` (never sent)
``InvalidURL``, ``NonHttpUrlClientError``       ``UnsupportedProtocol`` (never sent)
``SocketTimeoutError`` (no byte for             ``ReadTimeout`` (maybe sent)
``timeout["read"]`` seconds), other timeouts
``ServerDisconnectedError`` (hang-up after the  ``RemoteProtocolError`` (maybe sent)
request was sent, or mid-head),
``ClientResponseError`` (malformed answer),
``ClientPayloadError`` (truncated or malformed
body)
``ClientHttpProxyError`` (proxy refused the     ``ProxyError`` (maybe sent, as httpx's)
``CONNECT``)
``ClientConnectionResetError`` (connection      ``WriteError`` (maybe sent)
lost while writing the request)
``ClientOSError`` (connection reset), any       ``ReadError`` (maybe sent)
other ``ClientError`` or ``OSError``
``ValueError`` (a header aiohttp refuses)       ``LocalProtocolError``
==============================================  ===========================================

The subtle row is the hang-up: a server closing the connection *after* it
received the request must never become a "never sent" class, or the message
would be sent twice. ``ClientConnectorError`` is only raised while connecting,
before a byte of the request is written. Two cases differ slightly from httpx
(the outcome class is the same): a connection reset in the middle of a body
is ``RemoteProtocolError`` (httpx says ``ReadError``), and aiohttp itself
repeats an *idempotent* request (GET, PUT, DELETE, ...) once when a kept-alive
connection turns out to be closed, as browsers do; it never repeats a POST.

Timeouts come from each request's ``extensions["timeout"]`` (httpx's
``connect`` / ``read`` / ``write`` / ``pool`` dict, which providers set from
their ``timeout`` setting), else from ``timeout``: ``connect`` bounds connecting
(DNS, TCP, TLS), ``read`` the wait for each piece of the answer, ``pool`` the
wait for one of the ``limit`` connections. aiohttp has no write timeout
(``write`` is not used; requests to SMS APIs are small).

Connections belong to the event loop that opened them: the session is created
on first use inside the running loop, and a client used again from a new loop
(a second ``asyncio.run``) starts a new session there. Close the client with
``await client.aclose()`` (``AsyncGateway`` closes the one it created; a client
or session you pass in is yours to close).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from smsgate.answers import (
    ANSWER_TIME_FACTOR,
    KEEPALIVE_SECONDS,
    MAX_ANSWER_BYTES,
    Pieces,
    decode_step,
    decoded_response,
    read_decoded,
    stream_decoder,
    too_large_answer,
    too_slow_answer,
)
from smsgate.errors import ConfigError, WrongEventLoop

try:
    import aiohttp
    import yarl
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        f"smsgate.aio needs aiohttp (the 'fast' extra), but {exc.name or 'aiohttp'!r} cannot be imported: "
        f"{exc}. Install it with: pip install 'smsgate[fast]'",
        name=exc.name,
    ) from exc

if sys.version_info >= (3, 11):
    from asyncio import timeout as _deadline
else:  # pragma: no cover - aiohttp installs async-timeout on Python 3.10
    from async_timeout import timeout as _deadline

__all__ = ["AiohttpClient", "httpx_error"]

#: aiohttp's automatic request headers: never added, so the request goes out as httpx built it.
_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_VERSIONS = {(1, 1): b"HTTP/1.1", (1, 0): b"HTTP/1.0"}
_CACHE_SIZE = 64  # distinct timeout dicts / proxy decisions kept (providers use a handful)
_URL_CACHE_SIZE = 256  # parsed URLs kept (paths with ids in them would grow it without bound)

#: httpcore's event before a request's headers are written, which a request's ``trace`` is told of
_HEADERS_STARTED = "http11.send_request_headers.started"

#: The ``trace`` extension and the request this task is handing to aiohttp on a session the
#: client opened itself: its connector tells the trace once the request holds its connection.
_HANDING: contextvars.ContextVar[tuple[Any, httpx.Request] | None] = contextvars.ContextVar(
    "smsgate_aio_handing", default=None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _TracingConnector(aiohttp.TCPConnector):
    """The connector of the session :class:`AiohttpClient` opens: once a request holds its
    connection (kept alive or new), right before aiohttp writes it, the request's ``trace``
    (httpx's extension, an async callable) is told ``http11.send_request_headers.started``, as
    httpcore tells it before it writes the headers. A campaign runner's fence is passed there
    (:mod:`smsgate.transport`): a process paused (a VM, a laptop asleep, SIGSTOP) between the
    transport's check and the connection, past its lease, must not send once continued: another
    runner took the recipient over meanwhile, and may have sent it. What the trace raises is
    raised as is, the connection given back unused. A kept-alive connection the vendor closed
    while the trace ran (a lease renewed after a pause: store I/O) is dropped and the request
    takes another, told again: written on the closed one, it failed as a request that may
    have reached the vendor."""

    async def connect(self, req: Any, *args: Any, **kwargs: Any) -> Any:
        conn = await super().connect(req, *args, **kwargs)
        handing = _HANDING.get()
        if handing is None:
            return conn
        trace, request = handing
        for again in (True, False):
            try:
                await trace(_HEADERS_STARTED, {"request": request})
            except BaseException:
                conn.release()
                raise
            if not (again and conn.closed):
                break
            conn.close()
            conn = await super().connect(req, *args, **kwargs)
        return conn


def httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx exception for an aiohttp failure of ``request`` (see the module's table).

    Returns ``None`` for an exception that is not an HTTP failure (a bug, a
    cancellation): the caller re-raises it as it is.
    """
    cls: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        cls = httpx.ProxyError
    elif isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ServerFingerprintMismatch)):
        cls = httpx.ConnectError  # raised while connecting: not a byte of the request was written
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        cls = httpx.ConnectTimeout
    elif isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        cls = httpx.ReadTimeout
    elif isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        cls = httpx.UnsupportedProtocol
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError,
                          aiohttp.ClientPayloadError)):
        cls = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientConnectionResetError):
        cls = httpx.WriteError
    elif isinstance(exc, (aiohttp.ClientError, OSError)):
        # ClientOSError and the like: the connection broke after it was made, so the
        # request may have been sent
        cls = httpx.ReadError
    elif isinstance(exc, ValueError):
        cls = httpx.LocalProtocolError
    else:
        return None
    detail = str(exc) or type(exc).__name__
    return cls(f"{type(exc).__name__}: {detail}", request=request)


def _ascii_only(raw: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether every header name and value is ASCII (then httpx decodes them as ASCII)."""
    for name, value in raw:  # noqa: SIM110 - a loop: all() over a generator costs twice as much, per answer
        if not (name.isascii() and value.isascii()):
            return False
    return True


def _str_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Header pairs as aiohttp takes them (it writes them back as UTF-8)."""
    try:
        return [(k.decode(), v.decode()) for k, v in raw]
    except UnicodeDecodeError:  # not UTF-8: the nearest aiohttp can send
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


async def _bounded_body(answer: aiohttp.ClientResponse, request: httpx.Request, read: float | None) -> bytes:
    """The body of ``answer``, at most :data:`~smsgate.answers.MAX_ANSWER_BYTES` of it (else
    :class:`~smsgate.errors.MalformedResponse`), arrived within
    :data:`~smsgate.answers.ANSWER_TIME_FACTOR` times the read timeout (else
    :class:`httpx.ReadTimeout`), as the httpx drivers read answers: checked as each chunk
    arrives (no timer per request; a body that stops coming is aiohttp's ``sock_read`` timeout).
    A body that came whole with the headers (an API answer) is taken as it is. A compressed
    body (``Content-Encoding``, which httpx decodes) is held to the cap once decoded too, when
    httpx decodes it (:func:`_read`)."""
    if answer.content.is_eof():  # all of it in already: nothing to wait for, no loop
        body = await answer.read()
        if len(body) > MAX_ANSWER_BYTES:
            raise too_large_answer(request)
        return body
    deadline = None if read is None else time.monotonic() + ANSWER_TIME_FACTOR * read
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise too_large_answer(request)
        if deadline is not None and time.monotonic() > deadline:
            raise too_slow_answer(request)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _read(response: httpx.Response, body: bytes) -> httpx.Response:
    """``response`` (built on ``body``) read as httpx's own clients read it: decoded by httpx,
    a compressed body handed to its decoder a step at a time
    (:func:`~smsgate.answers.decode_step`) and held to the cap once decoded
    (:class:`~smsgate.errors.MalformedResponse` past it), then returned decoded
    (:func:`~smsgate.answers.decoded_response`)."""
    encoding = response.headers.get_list("content-encoding")
    request = response.request
    decoder = stream_decoder(encoding, MAX_ANSWER_BYTES, lambda: too_large_answer(request))
    if decoder is not None:
        return decoded_response(response, decoder.read([body]))
    step = decode_step(encoding, request) if encoding else None
    if step is None:
        response.read()
        return response
    response.stream = Pieces(body, step)
    content = read_decoded(response.iter_bytes(), MAX_ANSWER_BYTES, lambda: too_large_answer(request))
    return decoded_response(response, content)


class AiohttpClient:
    """Sends :class:`httpx.Request` objects on an :class:`aiohttp.ClientSession`.

    ``session``: a session of yours to send on (never closed by this client; its
    own settings apply, except that redirects are never followed and bodies are
    not decompressed); by default the client opens its own on first use, with a
    connection pool of ``limit``, no cookie jar and TLS verified against the
    system's certificate authorities (``verify``: ``False`` turns verification
    off, an :class:`ssl.SSLContext` replaces it).

    ``limit``: requests in flight at once, hence open connections (give it at
    least the ``concurrency`` of ``send_many``); a request waits up to its
    ``pool`` timeout for a free one, then fails with :class:`httpx.PoolTimeout`.

    ``timeout``: seconds, for requests that carry no ``extensions["timeout"]``.

    ``trust_env``: as httpx, send through the proxies named by ``HTTP_PROXY`` /
    ``HTTPS_PROXY`` / ``ALL_PROXY`` unless ``NO_PROXY`` excludes the host (read
    when the client is created); ``.netrc`` is not read. ``proxy`` names one
    proxy URL for every request instead.

    A request's httpx ``trace`` extension (an async callable), if it has one, is told
    httpcore's event before a request's headers are written,
    ``http11.send_request_headers.started``, once the request holds its connection, right
    before aiohttp writes it (what it raises is raised as is, the request not sent). The
    transport passes a campaign runner's fence there again, so a process paused between the
    two checks (past its lease) sends nothing once continued. On a ``session`` of yours the
    client cannot see aiohttp take a connection: the trace is told only when the request had
    to wait for one of the ``limit`` slots, right before it is handed to aiohttp (a session
    with a smaller connection limit than ``limit`` can make a request wait inside aiohttp
    after that).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        limit: int = 256,
        timeout: float | None = 30.0,
        trust_env: bool = True,
        proxy: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        if limit < 1:
            raise ConfigError(f"AiohttpClient(limit={limit}): the connection limit must be at least 1")
        self.limit = limit
        self._given = session
        # aiohttp's automatic headers are skipped by the session this client opens (set once,
        # not merged per request); a session passed in is told so on every request
        self._skip: tuple[str, ...] | None = _AUTO_HEADERS if session is not None else None
        self._session: aiohttp.ClientSession | None = session
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the last session bound (_bind)
        # a session given is the loop's it was made in: the one running now, where it is made
        # (aiohttp's own record of it is private), checked before its first request too
        self._made_in = _running_loop() if session is not None else None
        self._slots: asyncio.Semaphore | None = None
        self._verify = verify
        self._proxy = proxy
        # like httpx, the environment is read once, when the client is made
        self._env_proxies = urllib.request.getproxies() if trust_env and proxy is None else {}
        self._proxy_for: dict[tuple[str, str, int | None], str | None] = {}
        self._default = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._timeouts: dict[tuple[Any, Any, Any], tuple[aiohttp.ClientTimeout, float | None]] = {}
        self._urls: dict[str, yarl.URL] = {}
        #: the last request's httpx.URL and its yarl.URL (kept: identity is a safe key only while it lives)
        self._last: tuple[object, yarl.URL] = (None, yarl.URL())
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session requests go out on (``None`` until the first request if the client opens its own)."""
        return self._session

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    # ------------------------------------------------------------ sending
    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its response, body read in full.

        Raises the httpx exception for what went wrong (see the module's table).
        """
        loop = asyncio.get_running_loop()
        session = self._session
        if loop is not self._loop or session is None:
            session = await self._bind(loop)
        slots = self._slots
        assert slots is not None
        client_timeout, pool = self._timeout_for(request)
        waited = slots.locked()
        if waited:
            try:
                async with _deadline(pool):
                    await slots.acquire()
            except asyncio.TimeoutError:
                raise httpx.PoolTimeout(
                    f"no free connection within {pool} s (limit {self.limit})", request=request
                ) from None
        else:
            await slots.acquire()
        handing = None
        try:
            if (trace := request.extensions.get("trace")) is not None:
                if self._given is None:  # told by the connector, once the request holds its connection
                    handing = _HANDING.set((trace, request))
                elif waited:
                    await trace(_HEADERS_STARTED, {"request": request})
            start = time.perf_counter()
            try:
                content = request.content
            except httpx.RequestNotRead:
                content = await request.aread()  # a streamed body: API requests are small
            try:
                # built by a plain method: the header lists (httpx's raw pairs and aiohttp's str
                # pairs, a dozen objects) are not kept alive by this frame while the answer is awaited
                answer = await self._request(session, request, content, client_timeout)
                try:
                    body = await _bounded_body(answer, request, client_timeout.sock_read)
                except BaseException:
                    answer.close()
                    raise
            except Exception as exc:
                error = httpx_error(exc, request)
                if error is None:
                    raise
                raise error from exc
        finally:
            slots.release()
            if handing is not None:
                _HANDING.reset(handing)
        version = answer.version
        reason = answer.reason
        raw = answer.raw_headers
        response = httpx.Response(
            answer.status,
            headers=raw,
            stream=httpx.ByteStream(body),
            request=request,
            extensions={
                "http_version": _VERSIONS.get(version) or b"HTTP/%d.%d" % version
                if version is not None else b"HTTP/1.1",
                "reason_phrase": reason.encode("latin-1", "replace") if reason else b"",
            },
        )
        if _ascii_only(raw):
            # what httpx's Headers.encoding finds for such headers, told instead of sniffed: its sniff
            # runs on the first header lookup (read() looks up Content-Encoding), ~10% of read()
            response.headers.encoding = "ascii"
        response = _read(response, body)  # decodes Content-Encoding as httpx's own clients do
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        return response

    def _request(self, session: aiohttp.ClientSession, request: httpx.Request, content: bytes,
                 client_timeout: aiohttp.ClientTimeout) -> Any:
        """``session.request(...)`` for ``request`` (not awaited yet): the request as httpx built it."""
        raw = request.headers.raw
        headers = _str_headers(raw)
        chunked = None
        for name, _ in raw:
            if len(name) == 17 and name.lower() == b"transfer-encoding":
                # a body of unknown length: aiohttp frames it when asked to, with its own header
                headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
                chunked = True
        url = request.url
        if url is self._last[0]:  # a provider sends its cached httpx.URL (immutable) again and again
            target = self._last[1]
        else:
            text = str(url)
            found = self._urls.get(text)
            if found is None:
                found = yarl.URL(text, encoded=True)  # httpx has already encoded it
                if len(self._urls) < _URL_CACHE_SIZE:
                    self._urls[text] = found
            target = found
            self._last = (url, target)
        return session.request(
            request.method,
            target,
            headers=headers,
            data=content or None,
            chunked=chunked,
            skip_auto_headers=self._skip,
            allow_redirects=False,
            auto_decompress=False,
            timeout=client_timeout,
            proxy=self._proxy or (self._env_proxy(url) if self._env_proxies else None),
        )

    @property
    def owns_session(self) -> bool:
        """Whether this client opens its sessions itself (one for each event loop that uses it);
        ``False``: it sends on the ``aiohttp.ClientSession`` it was given, which is its loop's."""
        return self._given is None

    @property
    def bound_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop whose connections this client holds: its last session's, or a given
        session's (the loop running when the client was made); ``None``: none yet."""
        return self._loop or self._made_in

    def check_loop(self) -> None:
        """:class:`~smsgate.errors.WrongEventLoop` if another event loop than the running one (or
        than none), still open, holds this client's connections; a loop that is closed hands the
        client over to the next. :class:`~smsgate.AsyncGateway` asks it before a send logs anything."""
        loop = self.bound_loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            raise WrongEventLoop()

    async def _bind(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        """The session for ``loop``: opened on first use, re-opened in a new loop."""
        if self._closed:
            raise RuntimeError("AiohttpClient is closed")
        self.check_loop()
        if self._given is None:
            old = self._session
            if old is not None:
                # opened in a loop that is closed: its connections cannot be used here; closing
                # the session only marks it closed (aiohttp leaves the dead loop's sockets alone)
                await old.close()
            connector = _TracingConnector(limit=self.limit, ssl=self._ssl(), keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=False,
                skip_auto_headers=_AUTO_HEADERS,
                trust_env=False,  # proxies from the environment are chosen here, once per host
            )
        self._loop = loop
        self._slots = asyncio.Semaphore(self.limit)
        assert self._session is not None
        return self._session

    def _ssl(self) -> ssl.SSLContext | bool:
        verify = self._verify
        return verify if isinstance(verify, ssl.SSLContext) or verify is False else True

    def _timeout_for(self, request: httpx.Request) -> tuple[aiohttp.ClientTimeout, float | None]:
        """aiohttp's timeouts for ``request`` (one object per distinct timeout dict), and its pool timeout."""
        given = request.extensions.get("timeout")
        # ``type(...) is dict`` first: an ABC isinstance check costs ~0.4 us, on every request
        t: Mapping[str, Any] = given if type(given) is dict or isinstance(given, Mapping) else self._default
        key = (t.get("connect"), t.get("read"), t.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            connect, read, pool = key
            found = (aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read), pool)
            if len(self._timeouts) < _CACHE_SIZE:
                self._timeouts[key] = found
        return found

    def _env_proxy(self, url: httpx.URL) -> str | None:
        """The proxy the environment names for ``url`` (as httpx with ``trust_env``), or ``None``."""
        key = (url.scheme, url.host, url.port)
        if key in self._proxy_for:
            return self._proxy_for[key]
        proxies = self._env_proxies
        proxy = proxies.get(url.scheme) or proxies.get("all")
        if proxy is not None and urllib.request.proxy_bypass(url.host if url.port is None
                                                             else f"{url.host}:{url.port}"):
            proxy = None
        if len(self._proxy_for) < _CACHE_SIZE:
            self._proxy_for[key] = proxy
        return proxy

    # ------------------------------------------------------------ closing
    async def aclose(self) -> None:
        """Close the session this client opened (a session passed in stays open)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._given is None and not session.closed:
            await session.close()

    async def __aenter__(self) -> AiohttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("given session" if self._given is not None else "own session")
        return f"<AiohttpClient limit={self.limit} {state}>"
