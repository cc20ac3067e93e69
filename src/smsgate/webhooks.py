"""Delivery-report webhooks as an ASGI app to mount in Starlette or FastAPI.

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
Responses: 200 ``{"reports": n, "matched": m}``; 401 on a bad
signature; 404 for an unknown tenant or provider instance; 400 for a body the
provider cannot read; 501 when the provider documents no webhooks.
Needs the ``server`` extra (Starlette).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smsgate.errors import AuthFailed, ConfigError, SmsgateError, Unsupported, ValidationError
from smsgate.gateway import AsyncGateway, Gateway

__all__ = ["webhook_app"]

log = logging.getLogger("smsgate.webhooks")


def webhook_app(gateway: Gateway | AsyncGateway) -> Starlette:
    """An ASGI app receiving delivery reports at ``POST /{tenant}/{instance}``."""

    async def receive(request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        instance = request.path_params["instance"]
        body = await request.body()
        headers = dict(request.headers)
        if request.url.query:
            # vendors that sign nothing authenticate callbacks by a token in the URL
            headers["x-smsgate-query"] = request.url.query
        try:
            if tenant not in gateway.settings.tenants or instance not in gateway.settings.tenants[tenant].providers:
                return JSONResponse({"error": "unknown tenant or provider"}, status_code=404)
            if isinstance(gateway, AsyncGateway):
                reports = await gateway.ingest(tenant, instance, headers, body)
            else:  # the sync gateway's store calls run off the event loop
                reports = await asyncio.to_thread(gateway.ingest, tenant, instance, headers, body)
        except AuthFailed:
            log.warning("webhook for %s/%s: bad signature", tenant, instance)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        except Unsupported as exc:
            return JSONResponse({"error": str(exc)}, status_code=501)
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            log.warning("webhook for %s/%s: unreadable body (%s)", tenant, instance, type(exc).__name__)
            return JSONResponse({"error": "unreadable delivery report"}, status_code=400)
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except SmsgateError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        matched = sum(1 for r in reports if r.provider_message_id)
        return JSONResponse({"reports": len(reports), "matched": matched})

    routes: list[Any] = [Route("/{tenant}/{instance}", receive, methods=["POST"])]
    return Starlette(routes=routes)
