"""``smsgate serve``: the webhook app (delivery reports and inbound messages) under uvicorn."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import typer

from smsgate.cli._common import (
    ConfigOpt,
    app,
    console,
    load_settings,
    open_async_gateway,
    require_tenants,
    stored_tenant_names,
)
from smsgate.cli._interrupt import on_interrupt
from smsgate.errors import ValidationError
from smsgate.server import LiveServer, require_server

__all__ = ["STOPPED", "serve"]

#: What ``smsgate serve`` says when Ctrl-C stops it.
STOPPED = ("stopped serving webhooks; the delivery reports and replies received are in the store. Run "
           "'smsgate serve' again to go on; 'smsgate status sync' looks up the statuses of messages whose "
           "reports were posted while it was down (at providers with status lookups)")


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every one).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    path: Annotated[str, typer.Option(help="Where the app is mounted: vendors call PATH/TENANT/INSTANCE.")]
    = "/hooks",
    max_body: Annotated[int | None, typer.Option(
        help="Largest request body accepted, in bytes (413 beyond; default 1 MiB).")] = None,
) -> None:
    """Serve the webhook app for every configured tenant until Ctrl-C (docs/webhooks.md).

    Ctrl-C stops it (exit 130): the reports and replies it took are in the store. One
    process, no access log (a callback URL may carry a token). In production, run
    smsgate.webhooks.webhook_app under your own ASGI server instead, behind TLS.
    """
    require_server("smsgate serve")
    if not path.startswith("/"):
        raise ValidationError(f"must start with '/', not {path!r}", field="--path")
    if not 0 <= port <= 65535:
        raise ValidationError(f"must be 0..65535, not {port}", field="--port")
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from smsgate.webhooks import check_max_body, webhook_app

    if max_body is not None:
        try:
            check_max_body(max_body)  # before anything is opened
        except ValidationError as exc:  # named as typed, not as the library's argument
            raise ValidationError(exc.reason, field="--max-body") from None
    settings = load_settings(config)
    require_tenants(settings, config)  # nothing to serve: say where it looked, create no ./smsgate.db
    gateway = open_async_gateway(settings)  # the tenants stored with 'smsgate tenant add' too
    tenants = [*settings.tenants, *stored_tenant_names(gateway)]
    hooks = webhook_app(gateway) if max_body is None else webhook_app(gateway, max_body=max_body)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.aclose()

    mount = path.rstrip("/")
    asgi = Starlette(routes=[Mount(mount, app=hooks)] if mount else [Mount("/", app=hooks)], lifespan=lifespan)
    server = LiveServer(asgi, host=host, port=port).start()
    try:
        console.print(f"serving webhooks on {server.url}{mount}/<tenant>/<instance> "
                      f"(tenants: {', '.join(tenants) or 'none'}); Ctrl-C to stop", highlight=False,
                      soft_wrap=True)
        with on_interrupt(STOPPED):
            while True:
                time.sleep(3600)
    finally:
        server.stop()
