"""An aiohttp-backed :class:`httpx.AsyncClient` for bulk sending (the ``smsgate[fast]`` extra).

httpx's own async connection pool slows down sharply as concurrency grows (see
docs/performance.md), and real vendors need high concurrency to hide their
latency. :func:`fast_async_client` returns a plain :class:`httpx.AsyncClient`
whose transport is aiohttp's (from the ``httpx-aiohttp`` package), so providers
keep building :class:`httpx.Request` objects and reading :class:`httpx.Response`
objects while the bytes move through aiohttp::

    from smsgate import AsyncGateway
    from smsgate.fast import fast_async_client

    async with AsyncGateway("smsgate.toml", http_client=fast_async_client()) as gw:
        results = await gw.tenant("acme").send_many(numbers, "Sale ends tonight", concurrency=256)

Install it with ``pip install 'smsgate[fast]'`` (``httpx-aiohttp`` and ``aiohttp``).

Errors keep smsgate's retry semantics. ``httpx-aiohttp`` 0.2 maps some aiohttp
errors to the wrong httpx class (a server hanging up *after* the request was sent
becomes ``httpx.ConnectTimeout``, which would make smsgate repeat a send that may
have reached the vendor) and lets others through unmapped (a malformed HTTP
answer raises a bare ``aiohttp.ClientResponseError``). This module wraps the
transport so that every aiohttp failure becomes the httpx exception httpx's own
transport raises for the same event:

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

Notes: aiohttp has no write timeout (``timeout.write`` is ignored; ``timeout.pool``
bounds the wait for a free connection plus connecting). The client's aiohttp
session is created on its first request and belongs to that event loop: create
one client per ``asyncio.run`` and ``await client.aclose()`` when done (an
``http_client`` passed to ``AsyncGateway`` is not closed by the gateway).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from smsgate.errors import ConfigError

__all__ = ["fast_async_client"]

_INSTALL_HINT = "pip install 'smsgate[fast]'"


def _require_extra() -> None:
    """Import the extra's packages or raise a :class:`ConfigError` saying how to install them."""
    try:
        import aiohttp  # type: ignore[import-not-found]  # noqa: F401
        import httpx_aiohttp  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "httpx-aiohttp / aiohttp"
        raise ConfigError(
            f"fast_async_client() needs the optional 'fast' extra (httpx-aiohttp and aiohttp), "
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


class _FastAsyncClient(httpx.AsyncClient):
    """An AsyncClient whose default and proxy transports are aiohttp's (mapped).

    Overriding the two transport factories (as ``httpx_aiohttp.HttpxAiohttpClient``
    does) also routes proxies configured through ``proxy=`` or the environment
    (``HTTPS_PROXY``, with ``trust_env``) through aiohttp.
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

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        transport = kwargs.pop("transport", None)
        if transport is not None:
            assert isinstance(transport, httpx.AsyncBaseTransport)
            return transport
        from httpx_aiohttp import AiohttpTransport

        return _MappedTransport(AiohttpTransport(*args, **kwargs))

    def _init_proxy_transport(self, proxy: httpx.Proxy, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        from httpx_aiohttp import AiohttpTransport

        kwargs["proxy"] = proxy
        return _MappedTransport(AiohttpTransport(*args, **kwargs))


def fast_async_client(*, limit: int = 256, timeout: float = 30.0, **kw: Any) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` on aiohttp's transport, for high-concurrency sending.

    ``limit`` caps open connections (aiohttp's connector limit; give it at least
    the ``concurrency`` you pass to ``send_many``); ``timeout`` is the default
    :class:`httpx.Timeout` in seconds (providers set their own per request from
    their ``timeout`` setting). Other keyword arguments go to
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
    when the ``smsgate[fast]`` extra is not installed.
    """
    _require_extra()
    if limit < 1:
        raise ConfigError(f"fast_async_client(limit={limit}): the connection limit must be at least 1")
    kw.setdefault("limits", httpx.Limits(max_connections=limit, max_keepalive_connections=limit))
    return _FastAsyncClient(timeout=timeout, **kw)
