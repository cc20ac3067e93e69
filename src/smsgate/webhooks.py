"""Delivery-report and inbound-message webhooks as an ASGI app to mount in Starlette or FastAPI.

::

    from smsgate import Gateway
    from smsgate.webhooks import webhook_app

    gateway = Gateway("smsgate.toml")
    app = webhook_app(gateway)            # POST /{tenant}/{provider instance}
    # FastAPI: main_app.mount("/smsgate/webhooks", app)

Each request is verified and parsed by the provider's ``parse_webhook`` (e.g.
Squad's HMAC-SHA512 ``x-squad-encrypted-body`` signature) and applied to that
tenant's log only. The callback URL's query string reaches the provider as the
``x-smsgate-query`` header (for vendors that authenticate callbacks by a URL token).
Responses: 200 ``{"reports": n, "matched": m, "orphaned": o, "inbound": i,
"duplicates": d, "rejected": x}`` (``matched`` counts only reports that matched a logged
message; ``orphaned`` those kept until their message is logged; ``inbound`` the
inbound messages, ``duplicates`` of them already received; ``rejected`` the items refused
on their own, a field out of its bounds such as a vendor id over 200 characters, while
the rest was applied: the vendor need not resend); 401 for every failed
authentication (a bad or missing signature or token) and for an unknown tenant or
provider instance, the same answer (status, body, headers) so a caller cannot tell
which tenants exist (an unknown one's callback goes through a check against a dummy
key, so it also takes about as long); 404 for a path that is not
``/{tenant}/{instance}``; 400 for a body the provider cannot read (not JSON, nested
deeper than :data:`~smsgate.core.reports.MAX_JSON_DEPTH`, values out of range, a
shape the provider's parser trips on; a body refused before authentication, such as one
nested too deep, is refused alike for an unknown name: :func:`smsgate.core.reports.precheck`);
413 for a body over ``max_body`` bytes (checked while it is read, never buffered
whole); a client that disconnects before its body is read is logged at INFO (nothing applied);
401 too, as for an unknown tenant, for an instance that cannot authenticate any callback (its
vendor documents no webhooks, e.g. Broadcast; no token or secret configured, e.g. a Campaigns
REST instance without ``webhook_token``; its plugin cannot be built): nothing is applied and
the reason is logged at ERROR, never told to a caller who proved nothing; 501 when the
provider refuses what an *authenticated* callback holds
(:class:`~smsgate.errors.UnsupportedCallback`, e.g. a generic HTTP reply item); 503 when the store fails (:class:`~smsgate.errors.StoreError`: a locked or read-only
SQLite file, an unreachable PostgreSQL server) or the gateway is closed (shutting down):
nothing is applied, the vendor retries; 500 when anything else fails (a bug): the
error is logged with its traceback and the vendor retries. An exception from an
application's ``smsgate_on_status`` or ``smsgate_on_inbound`` hook is not a failure of
the webhook: it runs once everything the callback tells is stored (a STOP acted on),
is logged (tenant, hook, message id, traceback) and the answer is 200, since a vendor
retrying the callback would call no hook again (see :mod:`smsgate.core.hooks`).
Needs the ``server`` extra (Starlette).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import threading
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from smsgate.core.reports import precheck
from smsgate.errors import (
    AuthFailed,
    ConfigError,
    GatewayClosed,
    MalformedResponse,
    SmsgateError,
    StoreError,
    Unsupported,
    UnsupportedCallback,
    ValidationError,
)
from smsgate.gateway import AsyncGateway, Gateway

__all__ = ["MAX_BODY", "AccessLogRedactor", "check_max_body", "webhook_app"]

log = logging.getLogger("smsgate.webhooks")

#: Default largest webhook body, in bytes (delivery reports are small; batches of
#: a few thousand still fit).
MAX_BODY = 1 << 20


class _TooLarge(Exception):
    pass


_QUERY_VALUE = re.compile(r"=[^&]*")


class AccessLogRedactor(logging.Filter):
    """Masks the query values in uvicorn's access-log lines of requests to a webhook app.

    A callback URL may carry a token (``/hooks/acme/main?token=...``: Campaigns REST,
    ``generic_http``), and uvicorn logs every request's path with its query string at
    INFO on ``uvicorn.access``. On that logger, this filter rewrites the path argument of
    a line whose path lies under a webhook app (the mount prefixes the apps have served
    at) to ``/hooks/acme/main?token=***``; every other line passes unchanged.
    :func:`webhook_app` installs it on ``uvicorn.access`` (once); for another server,
    switch its access log off or add a filter of your own.
    """

    #: the most mount prefixes remembered (a process mounts a few)
    MAX_PREFIXES = 64

    def __init__(self) -> None:
        super().__init__()
        self._prefixes: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def serve_under(self, prefix: str) -> None:
        """Redact the lines of requests whose path starts with ``prefix`` (a mount's ``root_path``)."""
        quoted = urllib.parse.quote(prefix)
        if prefix in self._prefixes and quoted in self._prefixes:
            return
        with self._lock:
            if len(self._prefixes) < self.MAX_PREFIXES:
                self._prefixes = self._prefixes | {prefix, quoted}

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the path argument of an access line under a webhook app; keep every record."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            path, _, query = args[2].partition("?")
            if any(path == p or path.startswith(p.rstrip("/") + "/") for p in self._prefixes):
                record.args = (*args[:2], f"{path}?{_QUERY_VALUE.sub('=***', query)}", *args[3:])
        return True


_access_redactor = AccessLogRedactor()


def _redact_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if _access_redactor not in logger.filters:
        logger.addFilter(_access_redactor)


class _MarkPrefix:
    """ASGI middleware: tells the access-log redactor where this app is mounted, before
    any answer (and so any access-log line) of the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _access_redactor.serve_under(str(scope.get("root_path", "")))
        await self.app(scope, receive, send)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (``_TooLarge``) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _route_names(request: Request) -> tuple[str, str] | None:
    """The tenant and provider instance a request's path names, or ``None``.

    Read from the raw path when the server gives it, so a name holding ``/`` is
    reached by its quoted form (``/org%2Fteam/main``, as the emulators and the
    sandbox quote it) and never by the unquoted one (``/org/team/main`` is no
    tenant's). The two last segments are taken, so a mount prefix does not matter;
    they must spell the decoded path the app was routed on.
    """
    path: str = request.path_params["path"]
    path = path[:-1] if path.endswith("/") else path  # ".../acme/main/" is ".../acme/main"
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        raw = raw.split(b"?", 1)[0]
        *_, first, second = [b"", b"", *(raw[:-1] if raw.endswith(b"/") else raw).split(b"/")]
        tenant, instance = (urllib.parse.unquote(part.decode("latin-1")) for part in (first, second))
        if f"{tenant}/{instance}" == path:
            return tenant, instance
        return None
    parts = path.split("/")  # a server without raw_path: names holding "/" cannot be told apart
    return (parts[0], parts[1]) if len(parts) == 2 else None


#: The key of the check an unknown tenant's callback goes through (a per-process random one:
#: no signature matches it), so it takes about as long as a known instance's refusal.
_DUMMY_KEY = secrets.token_bytes(64)


def _dummy_check(body: bytes, headers: dict[str, str]) -> None:
    """Spend what verifying a callback costs (an HMAC-SHA512 of the body, a constant-time
    compare of every header value) against a key no caller knows; the outcome is ignored."""
    digest = hmac.new(_DUMMY_KEY, body, hashlib.sha512).hexdigest().encode()
    for value in headers.values():
        hmac.compare_digest(digest, value.lower().encode("utf-8", "replace"))


def _auth_failed() -> JSONResponse:
    """The one answer of a callback that is not authenticated, whether or not its tenant exists."""
    return JSONResponse({"error": "authentication failed"}, status_code=401)


def check_max_body(max_body: object) -> int:
    """``max_body`` if it is a whole number of bytes >= 1, else a :class:`ValidationError`
    (field ``max_body``): a smaller one would answer every callback 413, and the vendors'
    reports would be lost."""
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise ValidationError(f"the largest body accepted must be a whole number of bytes >= 1 (default "
                              f"{MAX_BODY}), not {max_body!r}: a smaller one refuses every callback",
                              field="max_body")
    return max_body


def webhook_app(gateway: Gateway | AsyncGateway, *, max_body: int = MAX_BODY) -> Starlette:
    """An ASGI app receiving delivery reports at ``POST /{tenant}/{instance}``.

    ``max_body``: the largest body accepted, in bytes (413 beyond it; :func:`check_max_body`
    refuses one under 1 at once). Installs :class:`AccessLogRedactor` on uvicorn's access log
    (query values of the app's requests masked: a callback URL may carry a token).
    """
    check_max_body(max_body)

    async def receive(request: Request) -> JSONResponse:
        # names from the URL are logged with repr(): they are the caller's, newlines included
        names = _route_names(request)
        try:
            body = await _read_body(request, max_body)
        except _TooLarge:
            log.warning("webhook for %r: body over %d bytes refused", request.path_params["path"], max_body)
            return JSONResponse({"error": f"body larger than {max_body} bytes"}, status_code=413)
        except ClientDisconnect:  # a vendor timing out, a dropped connection: nobody reads an answer
            log.info("webhook for %r: the client disconnected before its body was read; nothing applied",
                     request.path_params["path"])
            return JSONResponse({"error": "client disconnected"}, status_code=400)
        if names is None:  # the path's shape alone (no tenant looked up): tells nothing of who exists
            return JSONResponse({"error": "not a callback URL: POST /{tenant}/{instance}"}, status_code=404)
        tenant, instance = names
        headers = dict(request.headers)
        if request.url.query:
            # vendors that sign nothing authenticate callbacks by a token in the URL
            headers["x-smsgate-query"] = request.url.query
        if gateway._core_._store is None:  # opened at its first use: off the event loop
            try:
                await asyncio.to_thread(_open_store, gateway)
            except SmsgateError as exc:
                # unreachable, locked, its SQLite folder gone since the gateway was made (a
                # ConfigError too), the gateway closed: nothing applied, answered 503 so that the
                # vendor retries (a 401, as for a configuration problem, made it drop the report)
                log.error("webhook for %r/%r: not applied: the store cannot be opened: %s", tenant, instance, exc)
                return JSONResponse({"error": "temporarily unavailable; retry later"}, status_code=503)
        try:
            if gateway.tenants is None:  # the configuration's tenants: no I/O
                known = gateway.has_provider(tenant, instance)
            elif isinstance(gateway, AsyncGateway):  # a tenant source is asked in its worker threads
                known = await gateway.has_provider_async(tenant, instance)
            else:  # a tenant source (StoredTenants: the store) is asked off the event loop, for any
                known = await asyncio.to_thread(gateway.has_provider, tenant, instance)  # name in any URL
            if not known:  # answered as a known instance's failed authentication: names cannot be probed
                precheck(instance, headers, body)  # a body a known one refuses unread is refused alike
                await asyncio.to_thread(_dummy_check, body, headers)
                log.info("webhook for %r/%r: unknown tenant or provider instance; answered as a failed "
                            "authentication", tenant, instance)
                return _auth_failed()
            if isinstance(gateway, AsyncGateway):
                outcome = await gateway.receive(tenant, instance, headers, body)
            else:  # the sync gateway's store calls run off the event loop
                outcome = await asyncio.to_thread(gateway.receive, tenant, instance, headers, body)
        except AuthFailed as exc:
            log.warning("webhook for %r/%r: authentication failed (%s)", tenant, instance, exc)
            return _auth_failed()
        except UnsupportedCallback as exc:  # raised once the caller authenticated: told precisely
            return JSONResponse({"error": str(exc)}, status_code=501)
        except (StoreError, GatewayClosed) as exc:  # locked, unreachable, shutting down: nothing applied
            # (before ConfigError: a store that cannot be opened, StoreUnavailable, is both)
            log.error("webhook for %r/%r: not applied: %s", tenant, instance, exc)
            return JSONResponse({"error": "temporarily unavailable; retry later"}, status_code=503)
        except (Unsupported, ConfigError) as exc:
            # the instance authenticates nobody (its vendor documents no webhooks; no token or secret
            # configured; its plugin cannot be built): the caller proved nothing, so it is answered
            # as a failed authentication, never in a way telling that the instance exists
            await asyncio.to_thread(_dummy_check, body, headers)
            log.error("webhook for %r/%r: %s; answered as a failed authentication", tenant, instance,
                      f"not configured: {exc}" if isinstance(exc, ConfigError) else exc)
            return _auth_failed()
        except (ValidationError, MalformedResponse) as exc:
            # the kernel turns whatever a provider's parser trips on into a ValidationError
            log.warning("webhook for %r/%r: unreadable body (%s)", tenant, instance, type(exc).__name__)
            return JSONResponse({"error": str(exc)}, status_code=400)
        except SmsgateError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception:
            # not the body's fault (a bug; an application hook that raised is logged, not raised):
            # a 400 would tell the vendor to drop the callback and lose what it carries (a STOP)
            log.exception("webhook for %r/%r: failed while applying it; answered 500 so the vendor retries",
                          tenant, instance)
            return JSONResponse({"error": "internal error; retry later"}, status_code=500)
        return JSONResponse({"reports": len(outcome.reports), "matched": outcome.matched,
                             "orphaned": outcome.orphaned, "inbound": len(outcome.inbound),
                             "duplicates": outcome.duplicates, "rejected": outcome.rejected})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # served as the app itself (smsgate serve, uvicorn webhooks:app): the store opened at
        # startup, off the event loop, not by the first callback (mounted in another app, whose
        # server sends no lifespan events to it, the first callback opens it, off the loop too)
        try:
            await asyncio.to_thread(_open_store, gateway)
        except SmsgateError as exc:  # said; each callback answers 503 until the store opens
            log.error("webhooks: the store could not be opened at startup: %s", exc)
        yield

    routes: list[Any] = [Route("/{path:path}", receive, methods=["POST"])]
    _redact_access_log()  # a callback URL may carry a token: never in uvicorn's access log
    return Starlette(routes=routes, middleware=[Middleware(_MarkPrefix)], lifespan=lifespan)


def _open_store(gateway: Gateway | AsyncGateway) -> None:
    """Open ``gateway``'s store now (in a worker thread): a gateway opens its store at its first
    use, so that making one (importing an app module) does no I/O. A gateway closed, or made
    before this process was forked, is refused first (:class:`~smsgate.errors.GatewayClosed`,
    :class:`~smsgate.errors.GatewayForked`): it opens no store."""
    gateway._check_open()
    gateway.store  # noqa: B018  (the property opens it)
