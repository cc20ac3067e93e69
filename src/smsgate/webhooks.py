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
"duplicates": d}`` (``matched`` counts only reports that matched a logged
message; ``orphaned`` those kept until their message is logged; ``inbound`` the
inbound messages, ``duplicates`` of them already received); 401 for every failed
authentication (a bad or missing signature or token); 404 for an unknown tenant
or provider instance; 400 for a body the provider cannot read (not JSON, nested
deeper than :data:`~smsgate.core.reports.MAX_JSON_DEPTH`, values out of range, a
shape the provider's parser trips on);
413 for a body over ``max_body`` bytes (checked while it is read, never buffered
whole); 501 when the provider documents no webhooks; 503 when the provider
instance is not configured to authenticate callbacks (e.g. a Campaigns REST
instance without ``webhook_token``: nothing is applied, the vendor retries), and
503 when the store fails (:class:`~smsgate.errors.StoreError`: a locked or read-only
SQLite file, an unreachable PostgreSQL server) or the gateway is closed (shutting down):
nothing is applied, the vendor retries; 500 when anything else fails (an exception
from an application's ``smsgate_on_status`` or ``smsgate_on_inbound`` hook, a bug): the
error is logged with its traceback and the vendor retries.
Needs the ``server`` extra (Starlette).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smsgate.errors import (
    AuthFailed,
    ConfigError,
    GatewayClosed,
    MalformedResponse,
    SmsgateError,
    StoreError,
    Unsupported,
    ValidationError,
)
from smsgate.gateway import AsyncGateway, Gateway

__all__ = ["MAX_BODY", "webhook_app"]

log = logging.getLogger("smsgate.webhooks")

#: Default largest webhook body, in bytes (delivery reports are small; batches of
#: a few thousand still fit).
MAX_BODY = 1 << 20


class _TooLarge(Exception):
    pass


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


def webhook_app(gateway: Gateway | AsyncGateway, *, max_body: int = MAX_BODY) -> Starlette:
    """An ASGI app receiving delivery reports at ``POST /{tenant}/{instance}``.

    ``max_body``: the largest body accepted, in bytes (413 beyond it).
    """

    async def receive(request: Request) -> JSONResponse:
        # names from the URL are logged with repr(): they are the caller's, newlines included
        names = _route_names(request)
        try:
            body = await _read_body(request, max_body)
        except _TooLarge:
            log.warning("webhook for %r: body over %d bytes refused", request.path_params["path"], max_body)
            return JSONResponse({"error": f"body larger than {max_body} bytes"}, status_code=413)
        if names is None:
            return JSONResponse({"error": "unknown tenant or provider"}, status_code=404)
        tenant, instance = names
        headers = dict(request.headers)
        if request.url.query:
            # vendors that sign nothing authenticate callbacks by a token in the URL
            headers["x-smsgate-query"] = request.url.query
        try:
            if not gateway.has_provider(tenant, instance):
                return JSONResponse({"error": "unknown tenant or provider"}, status_code=404)
            if isinstance(gateway, AsyncGateway):
                outcome = await gateway.receive(tenant, instance, headers, body)
            else:  # the sync gateway's store calls run off the event loop
                outcome = await asyncio.to_thread(gateway.receive, tenant, instance, headers, body)
        except AuthFailed as exc:
            log.warning("webhook for %r/%r: authentication failed (%s)", tenant, instance, exc)
            return JSONResponse({"error": "authentication failed"}, status_code=401)
        except Unsupported as exc:
            return JSONResponse({"error": str(exc)}, status_code=501)
        except (StoreError, GatewayClosed) as exc:  # locked, unreachable, shutting down: nothing applied
            log.error("webhook for %r/%r: not applied: %s", tenant, instance, exc)
            return JSONResponse({"error": "temporarily unavailable; retry later"}, status_code=503)
        except ConfigError as exc:
            log.error("webhook for %r/%r: not configured: %s", tenant, instance, exc)
            return JSONResponse({"error": "webhook not configured for this provider"}, status_code=503)
        except (ValidationError, MalformedResponse) as exc:
            # the kernel turns whatever a provider's parser trips on into a ValidationError
            log.warning("webhook for %r/%r: unreadable body (%s)", tenant, instance, type(exc).__name__)
            return JSONResponse({"error": str(exc)}, status_code=400)
        except SmsgateError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception:
            # not the body's fault (an application hook that raised, a bug): a 400 would tell the
            # vendor to drop the callback and lose what it carries (a STOP); a 500 makes it retry
            log.exception("webhook for %r/%r: failed while applying it; answered 500 so the vendor retries",
                          tenant, instance)
            return JSONResponse({"error": "internal error; retry later"}, status_code=500)
        return JSONResponse({"reports": len(outcome.reports), "matched": outcome.matched,
                             "orphaned": outcome.orphaned, "inbound": len(outcome.inbound),
                             "duplicates": outcome.duplicates})

    routes: list[Any] = [Route("/{path:path}", receive, methods=["POST"])]
    return Starlette(routes=routes)
