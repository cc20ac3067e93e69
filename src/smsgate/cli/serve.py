"""``smsgate serve``: the webhook app (delivery reports and inbound messages) under uvicorn."""

from __future__ import annotations

import contextlib
import re
import time
import urllib.parse
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
from smsgate.errors import SmsgateError, ValidationError
from smsgate.gateway import AsyncGateway
from smsgate.server import LiveServer, require_server

__all__ = ["STOPPED", "callback_lines", "serve"]

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
    public_url: Annotated[str | None, typer.Option(
        "--public-url", metavar="URL", help="Where vendors reach this server (e.g. https://hooks.example.com, "
        "your proxy's address): the callback URLs printed start with it (default: http://HOST:PORT).")] = None,
) -> None:
    """Serve the webhook app for every configured tenant until Ctrl-C (docs/webhooks.md).

    Ctrl-C stops it (exit 130): the reports and replies it took are in the store. One
    process, no access log (a callback URL may carry a token). In production, run
    smsgate.webhooks.webhook_app under your own ASGI server instead, behind TLS.
    """
    require_server("smsgate serve")
    if public_url is not None and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", public_url):
        raise ValidationError(f"must be an http(s) URL without a query, not {public_url!r}", field="--public-url")
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
        with on_interrupt(STOPPED):  # from the first line printed: a Ctrl-C during the banner says so too
            console.print(f"serving webhooks on {server.url}{mount} (tenants: {', '.join(tenants) or 'none'}); "
                          "Ctrl-C to stop", highlight=False, soft_wrap=True)
            base = (public_url.rstrip("/") if public_url is not None else server.url) + mount
            console.print("callback URLs to give each vendor (POST):", highlight=False)
            for line in callback_lines(gateway, tenants, base):
                console.print(f"  {line}", highlight=False, soft_wrap=True, markup=False)
            while True:
                time.sleep(3600)
    finally:
        server.stop()


def callback_lines(gateway: AsyncGateway, tenants: list[str], base: str) -> list[str]:
    """One line per tenant and provider instance: the callback URL to configure at its vendor
    (``base`` + ``/{tenant}/{instance}``, names quoted as the app reads them).

    An instance whose vendor signs nothing carries a shared token in its URL
    (:meth:`~smsgate.provider.Provider.callback_token`): the line shows the parameter with a
    placeholder and names the setting that holds the token, never the token itself. An
    instance whose vendor documents no delivery reports says so; one that cannot be built
    (a missing plugin) says why, and the others are still listed. A tenant without providers
    (nothing to call back) gets one line saying so and where one is added.
    """
    lines = []
    for name in tenants:
        try:
            # a stored tenant is loaded first: an AsyncTenant's plain attributes never ask the
            # source (it was "not listed: ... not loaded yet: await handle.load()"); this thread
            # runs no event loop (the server has its own), so the source is asked here
            gateway._core_.resolve(name)
            tenant = gateway.tenant(name)
            instances = list(tenant.config.providers)
        except SmsgateError as exc:
            lines.append(f"{name}: not listed ({exc})")
            continue
        if not instances:
            lines.append(f"{name}: no providers configured, so no callback URL (add a "
                         f"[tenants.{name}.providers.NAME] table; docs/configuration.md)")
        for instance in instances:
            url = f"{base}/{urllib.parse.quote(name, safe='')}/{urllib.parse.quote(instance, safe='')}"
            where = f"tenants.{name}.providers.{instance}"
            try:
                prov = tenant.provider(instance)
            except SmsgateError as exc:
                lines.append(f"{name}/{instance}: {url} (its provider cannot be built: {exc})")
                continue
            line = f"{name}/{instance} ({prov.name}): {url}"
            token = prov.callback_token()
            if token is not None:
                param, setting = token
                line = (f"{line}?{urllib.parse.quote(param, safe='')}=TOKEN (TOKEN: the value of {where}.{setting}, "
                        "not printed; the vendor signs nothing, so the URL carries it)")
            if not prov.capabilities.delivery_reports:
                line += " (the vendor documents no delivery reports: only what its plugin takes, e.g. replies)"
            lines.append(line)
    return lines
