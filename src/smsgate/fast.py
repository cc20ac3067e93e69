"""A fast :class:`httpx.AsyncClient` for bulk sending.

httpx's own async connection pool slows down sharply as concurrency grows (see
docs/performance.md), and real vendors need high concurrency to hide their
latency. :func:`fast_async_client` returns a plain :class:`httpx.AsyncClient`,
so providers keep building :class:`httpx.Request` objects and reading
:class:`httpx.Response` objects, with a faster transport underneath::

    from smsgate import AsyncGateway
    from smsgate.fast import fast_async_client

    async with AsyncGateway("smsgate.toml", http_client=fast_async_client()) as gw:
        results = await gw.tenant("acme").send_many(numbers, "Sale ends tonight", concurrency=256)

Two engines:

``engine="lean"`` (the default)
    smsgate's own HTTP/1.1 keep-alive transport on :mod:`asyncio` protocols
    (connection pool, timeouts, error mapping); responses are parsed by
    ``httptools.HttpResponseParser`` (llhttp, the parser of Node.js and
    uvicorn), so it needs ``httptools``, part of the ``smsgate[fast]`` extra
    (without it :func:`fast_async_client` raises a ``ConfigError`` saying so).
    Plain HTTP and TLS, ``Content-Length``, chunked and close-delimited bodies,
    interim 1xx answers, per-request connect / read / pool timeouts, a
    connection limit, idle connections closed after ``keepalive_expiry``. It is
    made for API calls: every response body is read in full before the
    response is returned (also with ``client.stream(...)``), the status line
    and headers are limited to 64 KiB, there is no HTTP/2, and requests through
    a proxy go through the aiohttp engine. Its failures are the httpx exceptions
    httpx's own transport raises for the same event: ``ConnectError`` /
    ``ConnectTimeout`` / ``PoolTimeout`` when the request never left,
    ``ReadTimeout``, ``ReadError`` (a connection reset) and
    ``RemoteProtocolError`` (hang-up, malformed or truncated answer, anything
    llhttp refuses) after it left. llhttp is a little stricter than httpx's h11:
    it also refuses a repeated ``Content-Length`` header, even with the same value.
    It needs about half the CPU time per request of the aiohttp engine.

``engine="aiohttp"``
    aiohttp's client (from the ``httpx-aiohttp`` package; install
    ``smsgate[fast]``), for what the lean engine does not do. ``httpx-aiohttp``
    0.2 maps some aiohttp errors to the wrong httpx class (a server hanging up
    *after* the request was sent becomes ``httpx.ConnectTimeout``, which would
    make smsgate repeat a send that may have reached the vendor) and lets others
    through unmapped (a malformed HTTP answer raises a bare
    ``aiohttp.ClientResponseError``). This module wraps that transport so that
    every aiohttp failure becomes the httpx exception httpx's own transport
    raises for the same event:

    ==========================================  ====================================
    aiohttp                                     httpx (smsgate outcome)
    ==========================================  ====================================
    ``ClientConnectorError`` (refused, DNS,     ``ConnectError`` (never sent: retried,
    TLS handshake), ``ServerFingerprint...``    then ``TransportError``)
    ``ClientProxyConnectionError``              ``ProxyError`` (as above)
    ``ConnectionTimeoutError``                  ``ConnectTimeout`` (as above)
    ``SocketTimeoutError``, other timeouts      ``ReadTimeout`` (``UnknownOutcome``)
    ``ServerDisconnectedError``,                ``RemoteProtocolError``
    ``ClientResponseError`` (bad HTTP)          (``UnknownOutcome``)
    ``ClientPayloadError``, ``ClientOSError``,  ``ReadError`` (``UnknownOutcome``)
    any other ``ClientError``
    ``InvalidURL``, ``NonHttpUrlClientError``   ``UnsupportedProtocol``
    ==========================================  ====================================

    aiohttp has no write timeout (``timeout.write`` is ignored; ``timeout.pool``
    bounds the wait for a free connection plus connecting).

Both engines skip httpx's per-request auth / redirect / event-hook pipeline when
the client has nothing configured there (no ``auth``, no event hooks, redirects
not followed, no proxy for the URL) and send straight through the transport,
with the same results (``response.request``, ``elapsed``, cookies, the
``httpx`` request log line, ``next_request`` on a redirect).

Connections belong to the event loop that opened them: create one client per
``asyncio.run`` and ``await client.aclose()`` when done (an ``http_client``
passed to ``AsyncGateway`` is not closed by the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx._client import ClientState

from smsgate.errors import ConfigError

__all__ = ["fast_async_client"]

_INSTALL_HINT = "pip install 'smsgate[fast]'"


_httpx_log = logging.getLogger("httpx")


def _require_extra(what: str) -> None:
    """Import the extra's packages or raise a :class:`ConfigError` saying how to install them."""
    try:
        import aiohttp  # type: ignore[import-not-found]  # noqa: F401
        import httpx_aiohttp  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "httpx-aiohttp / aiohttp"
        raise ConfigError(
            f"fast_async_client() with {what} needs the optional 'fast' extra (httpx-aiohttp and aiohttp), "
            f"but {missing!r} cannot be imported: {exc}. Install it with: {_INSTALL_HINT}"
        ) from exc


def _httpx_class(err: BaseException) -> type[httpx.TransportError] | None:
    """The httpx exception class for an aiohttp (or timeout) failure, ``None`` if not one."""
    import aiohttp  # type: ignore[import-not-found]

    if isinstance(err, aiohttp.ClientProxyConnectionError):
        return httpx.ProxyError
    if isinstance(err, (aiohttp.ClientConnectorError, aiohttp.ServerFingerprintMismatch)):
        return httpx.ConnectError
    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)  # aiohttp >= 3.10
    if connect_timeout is not None and isinstance(err, connect_timeout):
        return httpx.ConnectTimeout
    if isinstance(err, (aiohttp.ServerTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return httpx.ReadTimeout
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError
    if isinstance(err, aiohttp.ClientHttpProxyError):
        return httpx.ProxyError
    non_http = getattr(aiohttp, "NonHttpUrlClientError", aiohttp.InvalidURL)
    if isinstance(err, (aiohttp.InvalidURL, non_http)):
        return httpx.UnsupportedProtocol
    if isinstance(err, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError
    if isinstance(err, aiohttp.ClientError):
        # ClientPayloadError, ClientOSError, ClientConnectionResetError, ...: the
        # connection broke after it was made, so the request may have been sent.
        return httpx.ReadError
    return None


def _reraise(exc: Exception, request: httpx.Request) -> None:
    """Raise the corrected httpx exception for ``exc`` from the aiohttp transport.

    ``exc`` is either a raw aiohttp error or the (possibly mis-mapped) httpx error
    that ``httpx-aiohttp`` raised *from* one; the new exception is chained to the
    aiohttp error. Returns (and the caller re-raises ``exc``) for anything else.
    """
    origin: BaseException = exc
    if isinstance(exc, httpx.HTTPError) and exc.__cause__ is not None:
        origin = exc.__cause__
    cls = _httpx_class(origin)
    if cls is None:
        return
    detail = str(origin) or type(origin).__name__
    raise cls(f"{type(origin).__name__}: {detail}", request=request) from origin


class _MappedStream(httpx.AsyncByteStream):
    """A response body stream whose aiohttp errors become the right httpx errors."""

    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as exc:
            _reraise(exc, self._request)
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except Exception as exc:
            _reraise(exc, self._request)
            raise


class _MappedTransport(httpx.AsyncBaseTransport):
    """Wraps ``httpx_aiohttp.AiohttpTransport`` and corrects its exception mapping."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            _reraise(exc, request)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _MappedStream(response.stream, request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, minus the cost of reading a response that sets no cookie.

    ``httpx.Cookies.extract_cookies`` wraps every response in urllib/email objects
    for :mod:`http.cookiejar` even when it has no ``Set-Cookie`` header; that was
    12% of the client's CPU time per request in the benchmark. Responses that
    set cookies are handled exactly as before.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        for key, _ in response.headers.raw:
            if len(key) in (10, 11) and key.lower() in (b"set-cookie", b"set-cookie2"):
                super().extract_cookies(response)
                return


# ------------------------------------------------------------- lean engine
_MAX_HEAD = 64 * 1024  # bytes of status lines + headers before the answer is refused
_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}
_LEAN_HINT = "fast_async_client() with engine='lean' (the default) needs the optional 'fast' extra (httptools)"
_parser_class: Any = None  # httptools.HttpResponseParser, once _load_httptools() ran
_parser_errors: tuple[type[BaseException], ...] = ()
_callback_error: type[BaseException] = Exception


def _load_httptools() -> Any:
    """``httptools.HttpResponseParser`` (llhttp), or a :class:`ConfigError` saying how to install it."""
    global _parser_class, _parser_errors, _callback_error
    if _parser_class is None:
        try:
            import httptools
        except ImportError as exc:
            missing = exc.name or "httptools"
            raise ConfigError(
                f"{_LEAN_HINT}, but {missing!r} cannot be imported: {exc}. Install it with: {_INSTALL_HINT}"
            ) from exc
        _parser_errors = (httptools.HttpParserError, httptools.HttpParserUpgrade)
        _callback_error = httptools.HttpParserCallbackError
        _parser_class = httptools.HttpResponseParser
    return _parser_class


class _Answer:
    """A complete HTTP response as read off the wire."""

    __slots__ = ("body", "headers", "identity", "reason", "reusable", "status", "version")

    def __init__(self, version: bytes, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                 body: bytes, reusable: bool, identity: bool) -> None:
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.reusable = reusable
        self.identity = identity


class _Body(httpx.ByteStream):
    """A response body the lean engine has read in full (``identity``: no Content-Encoding)."""

    def __init__(self, body: bytes, identity: bool) -> None:
        super().__init__(body)
        self.body = body
        self.identity = identity


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection of the lean engine: one request at a time, kept alive.

    The answer to the current request is parsed by ``httptools.HttpResponseParser``
    (llhttp) as bytes arrive; its callbacks (``on_message_begin`` ... ``on_message_complete``)
    collect the status, headers and body, and ``waiter`` is completed with an
    :class:`_Answer`, or with the httpx exception for what went wrong. What llhttp
    leaves to its user is done here: a HEAD answer ends with its headers, a body
    without ``Content-Length`` or chunked framing ends when the server closes
    the connection, interim 1xx answers are skipped, and the head size is limited.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, parser_class: Any) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.waiter: asyncio.Future[_Answer] | None = None
        self.request: httpx.Request | None = None
        self.last_data = 0.0
        self._parser_class = parser_class
        self._parser: Any = None
        self._head_only = False  # answering a HEAD request: no body whatever the headers say
        self._in_head = True  # the final answer's headers are not complete yet
        self._answered = False  # waiter completed: any further byte is unexpected
        self._until_eof = False  # the body ends when the server closes the connection
        self._got_bytes = False
        self._head_bytes = 0
        self._status = 0
        self._version = b""
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._parts: list[bytes] = []
        self._framed = False  # Content-Length or Transfer-Encoding: chunked given
        self._identity = True
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None

    # -------------------------------------------------------- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        self._got_bytes = True
        self.last_data = self.loop.time()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except _parser_errors as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {_parser_detail(exc)}",
                                                 request=self.request), exc)
            return
        if self._in_head and self._head_bytes > _MAX_HEAD and not waiter.done():
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: response head longer than "
                                                 f"{_MAX_HEAD} bytes", request=self.request), None)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost settles the waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)  # a body writer waiting for buffer space: stop waiting
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if exc is None and self._until_eof:
            self._answer(False)  # a close-delimited body is complete
            return
        if exc is not None:
            err: httpx.TransportError = httpx.ReadError(f"{type(exc).__name__}: {exc}", request=self.request)
        elif not self._got_bytes:
            err = httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                            request=self.request)
        else:
            err = httpx.RemoteProtocolError("peer closed connection without sending complete message body",
                                            request=self.request)
        self._fail(err, exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # ------------------------------------------------- httptools parser callbacks
    def on_message_begin(self) -> None:
        if self._answered:
            raise ValueError("more data after the end of the response")
        self._reason = b""
        self._headers = []
        self._parts = []
        self._framed = False
        self._identity = True
        self._in_head = True

    def on_status(self, reason: bytes) -> None:
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a trailer after a chunked body: ignored, as httpx does
        value = value.rstrip(b" \t")  # llhttp strips the whitespace before a value, not after it
        self._headers.append((name, value))
        size = len(name)  # only three header names matter here: compare lengths first
        if size == 14 and name.lower() == b"content-length":
            self._framed = True
        elif size == 17 and name.lower() == b"transfer-encoding":
            if value.lower() != b"chunked":  # llhttp reads other codings to EOF; httpx (h11) refuses them
                raise ValueError(f"unsupported Transfer-Encoding {value[:40]!r}")
            self._framed = True
        elif size == 16 and name.lower() == b"content-encoding":
            self._identity = self._identity and value.lower() in (b"", b"identity")

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            return  # an interim answer (100 Continue, 103): the real one follows (llhttp refuses a 101)
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            raise ValueError(f"unsupported HTTP version {parser.get_http_version()}")
        if self._head_bytes > _MAX_HEAD and _head_size(self._reason, self._headers) > _MAX_HEAD:
            raise ValueError(f"response head longer than {_MAX_HEAD} bytes")
        self._in_head = False
        self._status = status
        self._version = version
        if self._head_only:
            # llhttp cannot be told that a HEAD answer has no body: it would wait for the
            # Content-Length it announces. The answer is complete here, and the next
            # request on this connection gets a new parser.
            self._answer(parser.should_keep_alive())
            self._parser = None
        elif not self._framed and status != 204 and status != 304:
            self._until_eof = True

    def on_body(self, body: bytes) -> None:
        if self._answered:
            raise ValueError("a body after the answer to a HEAD request")
        self._parts.append(body)

    def on_message_complete(self) -> None:
        if self._in_head or self._answered:
            return  # the end of an interim 1xx answer, or of a HEAD answer already delivered
        self._answer(self._parser.should_keep_alive())

    # --------------------------------------------------------------- requests
    def start(self, request: httpx.Request) -> asyncio.Future[_Answer]:
        """Expect the answer to ``request`` (whose bytes the caller writes next)."""
        self.request = request
        self.waiter = waiter = self.loop.create_future()
        if self._parser is None:
            self._parser = self._parser_class(self)
        self._head_only = request.method == "HEAD"
        self._in_head = True
        self._answered = False
        self._until_eof = False
        self._got_bytes = False
        self._head_bytes = 0
        self._parts = []
        return waiter

    async def drain(self, timeout: float | None) -> None:
        """Wait until the transport's write buffer drains (flow control for large bodies)."""
        if not self._write_paused or self.closed:
            return
        self._drain = self.loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._drain), timeout)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise httpx.WriteTimeout("timed out writing the request body", request=self.request) from exc
        finally:
            self._drain = None

    def close(self) -> None:
        """Drop the connection at once (never reused)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ---------------------------------------------------------------- outcome
    def _fail(self, err: httpx.TransportError, cause: BaseException | None) -> None:
        waiter = self.waiter
        if cause is not None:
            err.__cause__ = cause
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)
        self.close()

    def _answer(self, keep_alive: bool) -> None:
        self._answered = True
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(_Answer(self._version, self._status, self._reason, self._headers, body,
                                      keep_alive and not self.closed, self._identity))


def _head_size(reason: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The size of a status line and headers (give or take the spaces around values)."""
    return 15 + len(reason) + sum(len(name) + len(value) + 4 for name, value in headers) + 2


def _parser_detail(exc: BaseException) -> str:
    """What an httptools error says went wrong (for a refusal raised in a callback: that refusal)."""
    if isinstance(exc, _callback_error) and exc.__context__ is not None:
        exc = exc.__context__
    elif not isinstance(exc, _parser_errors[0]):  # HttpParserUpgrade: its argument is an offset
        return "unexpected protocol switch (101)"
    return str(exc) or type(exc).__name__


class _LeanTransport(httpx.AsyncBaseTransport):
    """The lean engine: HTTP/1.1 over asyncio with a keep-alive pool (see the module docstring)."""

    def __init__(
        self, *, verify: Any = True, cert: Any = None, trust_env: bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self._parser_class = _load_httptools()
        self._verify = verify
        self._cert = cert
        self._trust_env = trust_env
        self._ssl: ssl.SSLContext | None = None
        self._limit = limits.max_connections
        self._free = limits.max_connections if limits.max_connections is not None else -1
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._idle: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._n_idle = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # ------------------------------------------------------------------ pool
    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(verify=self._verify, cert=self._cert, trust_env=self._trust_env)
        return self._ssl

    async def _acquire(self, loop: asyncio.AbstractEventLoop, timeout: float | None,
                       request: httpx.Request) -> None:
        """Take one of the ``max_connections`` slots, waiting up to ``timeout`` (pool timeout)."""
        if self._free != 0:
            self._free -= 1  # stays negative (unlimited) when there is no limit
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if timeout is not None:
            def expire() -> None:
                if not waiter.done():
                    waiter.set_exception(httpx.PoolTimeout("timed out waiting for a free connection",
                                                           request=request))
            timer = loop.call_later(timeout, expire)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release()  # the slot was handed over just as we gave up: pass it on
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next in line
                return
        if self._free >= 0:
            self._free += 1

    def _idle_connection(self, key: tuple[bytes, bytes, int], now: float) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            self._n_idle -= 1
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if self._expiry is not None and now - conn.idle_since > self._expiry:
                conn.close()
                continue
            return conn
        return None

    def _keep(self, key: tuple[bytes, bytes, int], conn: _Connection, now: float) -> None:
        if self._closed or (self._max_idle is not None and self._n_idle >= self._max_idle):
            conn.close()
            return
        conn.waiter = None
        conn.request = None
        conn.idle_since = now
        self._idle.setdefault(key, []).append(conn)
        self._n_idle += 1

    async def _connect(self, loop: asyncio.AbstractEventLoop, request: httpx.Request, host: str, port: int,
                       tls: bool, timeout: float | None) -> _Connection:
        kwargs: dict[str, Any] = {}
        if tls:
            kwargs["ssl"] = self._ssl_context()
            sni = request.extensions.get("sni_hostname")
            kwargs["server_hostname"] = sni.decode("ascii") if isinstance(sni, bytes) else (sni or host)
        parser = self._parser_class
        try:
            opening = loop.create_connection(lambda: _Connection(loop, parser), host, port, **kwargs)
            if timeout is None:
                _, conn = await opening
            else:
                _, conn = await asyncio.wait_for(opening, timeout)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}", request=request) from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS handshake (SSLError)
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from exc
        return conn

    # -------------------------------------------------------------- requests
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        if scheme == b"https":
            tls, default_port = True, 443
        elif scheme == b"http":
            tls, default_port = False, 80
        else:
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{url.scheme}://'." if scheme else
                "Request URL is missing an 'http://' or 'https://' protocol.", request=request)
        host = url.host
        if not host:
            raise httpx.UnsupportedProtocol("Request URL is missing a host.", request=request)
        if self._closed:
            raise RuntimeError("the transport is closed")
        port = url.port or default_port
        timeouts = request.extensions.get("timeout") or {}
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        head = _request_head(request)
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None
        await self._acquire(loop, timeouts.get("pool"), request)
        conn: _Connection | None = None
        try:
            key = (scheme, url.raw_host, port)
            conn = self._idle_connection(key, loop.time())
            if conn is None:
                conn = await self._connect(loop, request, host, port, tls, timeouts.get("connect"))
            assert conn.transport is not None
            waiter = conn.start(request)
            if body is not None:
                conn.transport.write(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    conn.transport.write(body)
            else:
                await self._write_stream(conn, request, head, timeouts.get("write"))
            answer = await _wait(loop, conn, waiter, timeouts.get("read"))
            if answer.reusable and not conn.closed:
                self._keep(key, conn, loop.time())
            else:
                conn.close()
            conn = None
        finally:
            if conn is not None:
                conn.close()  # failed or cancelled mid-request: the connection's state is unknown
            self._release()
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=_Body(answer.body, answer.identity),
            request=request,
            extensions={"http_version": answer.version, "reason_phrase": answer.reason},
        )

    async def _write_stream(self, conn: _Connection, request: httpx.Request, head: bytes,
                            timeout: float | None) -> None:
        """Write a streamed body (``Transfer-Encoding: chunked`` when the request says so)."""
        assert conn.transport is not None
        transport = conn.transport
        chunked = "content-length" not in request.headers and \
            request.headers.get("transfer-encoding", "").lower() == "chunked"
        transport.write(head)
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for chunk in request.stream:
            if conn.closed or (conn.waiter is not None and conn.waiter.done()):
                return  # the server answered (or hung up) before taking the whole body
            if chunk:
                transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                await conn.drain(timeout)
        if chunked:
            transport.write(b"0\r\n\r\n")

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget connections of another (finished) event loop."""
        for idle in self._idle.values():
            for conn in idle:
                with contextlib.suppress(Exception):
                    conn.close()
        self._idle.clear()
        self._n_idle = 0
        self._waiters.clear()
        if self._limit is not None:
            self._free = self._limit
        self._loop = loop

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        self._n_idle = 0


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers, as bytes (refusing CR or LF inside a header)."""
    raw = request.headers.raw
    head = b"%s %s HTTP/1.1\r\n%s\r\n" % (
        request.method.encode("ascii"), request.url.raw_path, b"".join([b"%s: %s\r\n" % kv for kv in raw])
    )
    if head.count(b"\n") != len(raw) + 2 or head.count(b"\r") != len(raw) + 2:
        raise httpx.LocalProtocolError("illegal line break in the request line or a header", request=request)
    return head


async def _wait(loop: asyncio.AbstractEventLoop, conn: _Connection, waiter: asyncio.Future[_Answer],
                timeout: float | None) -> _Answer:
    """The answer, or ``ReadTimeout`` when no byte arrives for ``timeout`` seconds."""
    if timeout is None:
        return await waiter
    conn.last_data = loop.time()
    timers: list[asyncio.TimerHandle] = []

    def check() -> None:
        if waiter.done():
            return
        quiet = loop.time() - conn.last_data
        if quiet >= timeout:
            waiter.set_exception(httpx.ReadTimeout("timed out waiting for the response",
                                                   request=conn.request))
        else:  # bytes arrived meanwhile: wait out the rest from the last of them
            timers[0] = loop.call_later(timeout - quiet, check)

    timers.append(loop.call_later(timeout, check))
    try:
        return await waiter
    finally:
        timers[0].cancel()


class _FastAsyncClient(httpx.AsyncClient):
    """An AsyncClient on the lean engine (or aiohttp's), with a direct send path.

    Overriding the two transport factories (as ``httpx_aiohttp.HttpxAiohttpClient``
    does) also routes proxies configured through ``proxy=`` or the environment
    (``HTTPS_PROXY``, with ``trust_env``) through aiohttp.
    """

    def __init__(self, *args: Any, engine: str = "lean", **kwargs: Any) -> None:
        self._engine = engine
        super().__init__(*args, **kwargs)
        self._cookies = _Cookies(self._cookies)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        self._cookies = _Cookies(cookies)

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        transport = kwargs.pop("transport", None)
        if transport is not None:
            assert isinstance(transport, httpx.AsyncBaseTransport)
            return transport
        if self._engine == "lean":
            return _LeanTransport(verify=kwargs.get("verify", True), cert=kwargs.get("cert"),
                                  trust_env=kwargs.get("trust_env", True),
                                  limits=kwargs.get("limits", httpx.Limits()))
        from httpx_aiohttp import AiohttpTransport

        return _MappedTransport(AiohttpTransport(*args, **kwargs))

    def _init_proxy_transport(self, proxy: httpx.Proxy, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        _require_extra("a proxy")
        from httpx_aiohttp import AiohttpTransport

        kwargs["proxy"] = proxy
        return _MappedTransport(AiohttpTransport(*args, **kwargs))

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send ``request``; straight through the transport when no client feature applies.

        httpx's pipeline (auth flow, redirect loop, event hooks, three nested
        response streams) cost more CPU per request than the lean transport itself.
        It is skipped only when it would do nothing: no client or URL credentials,
        no event hooks, redirects not followed, the URL not mounted on a proxy.
        """
        if (not stream or self._engine == "lean") and _plain(self, request, auth, follow_redirects):
            transport = self._transport_for_url(request.url)
            if transport is self._transport:
                return await self._send_direct(request, transport, stream)
        return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)

    async def _send_direct(self, request: httpx.Request, transport: httpx.AsyncBaseTransport,
                           stream: bool) -> httpx.Response:
        """What ``send`` does for a request no client feature applies to."""
        self._state = ClientState.OPENED
        if "timeout" not in request.extensions:
            request.extensions = {**request.extensions, "timeout": self.timeout.as_dict()}
        start = time.perf_counter()
        response = await transport.handle_async_request(request)
        response.request = request
        response.default_encoding = self._default_encoding
        if not stream:
            body = response.stream
            if isinstance(body, _Body) and body.identity and _PRESET_CONTENT:
                _set_content(response, body.body)
            else:
                try:
                    await response.aread()
                except BaseException:
                    await response.aclose()
                    raise
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        _finish(self, request, response)
        return response


def _plain(client: httpx.Client | httpx.AsyncClient, request: httpx.Request, auth: Any,
           follow_redirects: Any) -> bool:
    """Whether httpx's send pipeline would do nothing for ``request`` but send it and read the answer."""
    return (
        auth is httpx.USE_CLIENT_DEFAULT
        and client._auth is None
        and not client._event_hooks["request"]
        and not client._event_hooks["response"]
        and (follow_redirects is False
             or (follow_redirects is httpx.USE_CLIENT_DEFAULT and not client.follow_redirects))
        and not request.url.userinfo
        and client._state is not ClientState.CLOSED
    )


def _finish(client: httpx.Client | httpx.AsyncClient, request: httpx.Request, response: httpx.Response) -> None:
    """The rest of what httpx's send does with a response: cookies, the log line, the next request."""
    client.cookies.extract_cookies(response)
    if _httpx_log.isEnabledFor(logging.INFO):
        _httpx_log.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url,
                        response.http_version, response.status_code, response.reason_phrase)
    if 300 <= response.status_code < 400 and response.has_redirect_location:
        response.next_request = client._build_redirect_request(request, response)


class _Client(httpx.Client):
    """The sync ``Gateway``'s default client: httpx's own transport, less per-request overhead.

    The same two cuts as :class:`_FastAsyncClient`: no cookie parsing of responses
    that set no cookie, and no auth / redirect / event-hook pipeline when the
    client has nothing configured there.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cookies = _Cookies(self._cookies)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        self._cookies = _Cookies(cookies)

    def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send ``request``; straight through the transport when no client feature applies."""
        if not stream and _plain(self, request, auth, follow_redirects):
            transport = self._transport_for_url(request.url)
            if transport is self._transport:
                self._state = ClientState.OPENED
                if "timeout" not in request.extensions:
                    request.extensions = {**request.extensions, "timeout": self.timeout.as_dict()}
                start = time.perf_counter()
                response = transport.handle_request(request)
                response.request = request
                response.default_encoding = self._default_encoding
                try:
                    response.read()  # also closes the stream: the connection goes back to the pool
                except BaseException:
                    response.close()
                    raise
                response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
                _finish(self, request, response)
                return response
        return super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)



def _set_content(response: httpx.Response, body: bytes) -> None:
    """Give ``response`` its (not encoded) body as if ``read()`` had read it.

    ``Response.read()`` costs more than building the response (content decoder
    lookup, chunker, stream and close bookkeeping) for what is, without a
    Content-Encoding, ``body`` itself. This sets the attributes ``read()`` sets;
    :data:`_PRESET_CONTENT` checks once that this httpx keeps them that way.
    """
    response._content = body
    response.is_stream_consumed = True
    response.is_closed = True


def _preset_content_works() -> bool:
    """Whether :func:`_set_content` gives the same response as ``read()`` with this httpx."""
    try:
        headers = [(b"Content-Type", b"application/json; charset=utf-8")]
        read = httpx.Response(200, headers=headers, stream=httpx.ByteStream(b'{"a":1}'))
        read.read()
        preset = httpx.Response(200, headers=headers, stream=httpx.ByteStream(b'{"a":1}'))
        _set_content(preset, b'{"a":1}')
        return (preset.content, preset.text, preset.json(), preset.is_closed, preset.is_stream_consumed) == (
            read.content, read.text, read.json(), read.is_closed, read.is_stream_consumed)
    except Exception:  # pragma: no cover - an httpx whose Response works differently
        return False


_PRESET_CONTENT = _preset_content_works()

_ENGINES = ("lean", "aiohttp")


def fast_async_client(
    *, limit: int = 256, timeout: float = 30.0, engine: str = "lean", **kw: Any
) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` for high-concurrency sending (see the module docstring).

    ``limit`` caps open connections (give it at least the ``concurrency`` you
    pass to ``send_many``); ``timeout`` is the default :class:`httpx.Timeout` in
    seconds (providers set their own per request from their ``timeout``
    setting); ``engine`` is ``"lean"`` (smsgate's HTTP/1.1 transport, the
    default) or ``"aiohttp"``. Other keyword arguments go to
    :class:`httpx.AsyncClient` (``headers``, ``verify``, ``proxy``, ``limits``
    overriding ``limit``, ...). Example::

        from smsgate import AsyncGateway
        from smsgate.fast import fast_async_client

        client = fast_async_client(limit=256)
        gw = AsyncGateway(cfg, http_client=client)
        try:
            results = await gw.tenant("acme").send_many(numbers, "hello", concurrency=256)
        finally:
            await gw.aclose()
            await client.aclose()  # the gateway does not close a client it was given

    Raises :class:`~smsgate.errors.ConfigError` (chained to the ``ImportError``)
    when the ``smsgate[fast]`` extra is not installed: the lean engine needs
    ``httptools``, the aiohttp engine (and a proxy) ``httpx-aiohttp`` and ``aiohttp``.
    """
    if engine not in _ENGINES:
        raise ConfigError(f"fast_async_client(engine={engine!r}): choose one of {', '.join(_ENGINES)}")
    if engine == "aiohttp":
        _require_extra("engine='aiohttp'")
    else:
        _load_httptools()
    if limit < 1:
        raise ConfigError(f"fast_async_client(limit={limit}): the connection limit must be at least 1")
    kw.setdefault("limits", httpx.Limits(max_connections=limit, max_keepalive_connections=limit))
    return _FastAsyncClient(timeout=timeout, engine=engine, **kw)
