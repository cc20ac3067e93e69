"""What the vendor is told when applying a webhook fails for a reason other than its body.

Over loopback HTTP with the reference (echo) provider: an application hook that raises is
not the body's fault, so the answer is a 500 the vendor retries, never a 400 telling it to
drop the callback (and the STOP reply it may carry); a gateway shutting down is a 503 whose
log line cannot be forged from the URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from smsgate import DeliveryReport, Gateway, InboundMessage, hookimpl
from smsgate.plugins import PluginManager
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app

SENDER = "+2348031234567"


class Failing:
    """A hook implementation with a bug: it raises ``exc`` from the named hook."""

    def __init__(self, hook: str, exc: Exception) -> None:
        self.hook, self.exc = hook, exc

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: DeliveryReport) -> None:
        if self.hook == "smsgate_on_status":
            raise self.exc

    @hookimpl
    def smsgate_on_inbound(self, tenant: str, message: InboundMessage) -> None:
        if self.hook == "smsgate_on_inbound":
            raise self.exc


@pytest.fixture(scope="module")
def emu() -> Iterator[LiveServer]:
    with LiveServer(create_emulator()) as server:
        yield server


def gateway(url: str, *extra: object) -> Gateway:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    for plugin in extra:
        pm.register(plugin)
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}}
    return Gateway({"store": "memory://", "tenants": {"acme": {"default_region": "NG", "sender": "ACME",
                                                               "providers": {"one": prov}}}}, plugins=pm)


def post(url: str, items: list[dict[str, Any]]) -> httpx.Response:
    body = json.dumps(items).encode()
    return httpx.post(url, content=body, headers={"X-Echo-Signature": sign(body)}, timeout=10)


@pytest.mark.parametrize("hook", ["smsgate_on_status", "smsgate_on_inbound"])
@pytest.mark.parametrize("exc", [KeyError("customer_id"), ValueError("bad"), TypeError("oops"),
                                 RuntimeError("metrics backend down")], ids=type)
def test_an_application_hook_that_raises_is_a_500_the_vendor_retries_not_a_400(
    emu: LiveServer, hook: str, exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="smsgate.webhooks")
    with gateway(emu.url, Failing(hook, exc)) as gw, LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send(SENDER, "hello")
        items = [{"id": sent.provider_message_id, "status": "delivered"},
                 {"type": "inbound", "id": "e1", "from": SENDER, "to": "ACME", "text": "thanks"}]
        r = post(f"{hooks.url}/acme/one", items)
    # a 4xx tells the vendor the callback is bad: it would never send it again
    assert r.status_code == 500, r.text
    assert r.json() == {"error": "internal error; retry later"}
    failed = [rec for rec in caplog.records if rec.name == "smsgate.webhooks" and rec.levelno == logging.ERROR]
    assert failed and failed[0].exc_info is not None and failed[0].exc_info[1] is exc
    assert "'acme'/'one'" in failed[0].getMessage()


def test_a_body_the_parser_trips_on_is_still_a_400(emu: LiveServer) -> None:
    with gateway(emu.url) as gw, LiveServer(webhook_app(gw)) as hooks:
        r = post(f"{hooks.url}/acme/one", [{"status": "delivered", "id": {"not": "text"}}, 7])  # type: ignore[list-item]
    assert r.status_code == 400, r.text


def test_names_in_the_url_cannot_forge_log_lines_while_the_gateway_shuts_down(
    emu: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smsgate")
    gw = gateway(emu.url)
    with LiveServer(webhook_app(gw)) as hooks:
        gw.close()  # a deploy: the app still gets requests while its gateway is closed
        # a carriage return sends a terminal back to the line's start: the rest overwrites it
        # (Starlette's router refuses a newline in a path, not a carriage return)
        r = httpx.post(f"{hooks.url}/x%0D2026-01-01 ERROR smsgate: forged/one", content=b"[]", timeout=10)
    assert r.status_code == 503, r.text
    lines = [rec.getMessage() for rec in caplog.records if rec.name.startswith("smsgate")]
    assert lines and not any("\r" in line or "\n" in line for line in lines), lines
