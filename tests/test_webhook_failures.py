"""What the vendor is told when applying a webhook fails, or an application hook raises.

Over loopback HTTP with the reference (echo) provider: an application hook that raises is
not the body's fault, and the callback is stored before any hook runs; a vendor retrying it
would call no hook again (once per change), so the answer is a 200 and the failure is
logged with the tenant, the hook and the message id; never a 400 telling the vendor to drop
the callback (and the STOP reply it may carry). A gateway shutting down is a 503 whose log
line cannot be forged from the URL.
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
def test_an_application_hook_that_raises_is_logged_and_answered_200(
    emu: LiveServer, hook: str, exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smsgate")
    with gateway(emu.url, Failing(hook, exc)) as gw, LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send(SENDER, "hello")
        items = [{"id": sent.provider_message_id, "status": "delivered"},
                 {"type": "inbound", "id": "e1", "from": SENDER, "to": "ACME", "text": "secret body 4417"}]
        r = post(f"{hooks.url}/acme/one", items)
        (inbound,) = gw.tenant("acme").inbound()
        assert gw.tenant("acme").get(sent.message_id).status.value == "delivered"
    # a 4xx tells the vendor the callback is bad (it would drop it); a 500 makes it retry a
    # callback that is stored already and whose retry calls no hook again
    assert r.status_code == 200, r.text
    assert r.json() == {"reports": 1, "matched": 1, "orphaned": 0, "inbound": 1, "duplicates": 0, "rejected": 0}
    failed = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(failed) == 1 and failed[0].name == "smsgate", [rec.getMessage() for rec in failed]
    assert failed[0].exc_info is not None and failed[0].exc_info[1] is exc
    line = failed[0].getMessage()
    about = f"message {sent.message_id}" if hook == "smsgate_on_status" else f"inbound {inbound.id}"
    assert f"tenant acme: {hook} failed for {about}" in line, line
    # the inbound text never reaches the log (only ids)
    assert not any("secret body 4417" in rec.getMessage() for rec in caplog.records)


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


APP = '''
import sys
sys.path.insert(0, {tests!r})
from reference_provider import API_KEY, EchoPlugin
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from smsgate import Gateway
from smsgate.plugins import PluginManager
from smsgate.webhooks import webhook_app

pm = PluginManager(load_entry_points=False)
pm.register(EchoPlugin())
prov = {{"plugin": "echo", "base_url": "http://127.0.0.1:9", "credentials": {{"api_key": API_KEY}}}}
gateway = Gateway({{"store": "memory://", "tenants": {{"acme": {{"providers": {{"one": prov}}}}}}}}, plugins=pm)


async def orders(request):
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/orders", orders), Mount("/smsgate/webhooks", webhook_app(gateway))])
'''


def test_a_token_in_the_callback_url_never_reaches_uvicorns_access_log(tmp_path: Any) -> None:
    """docs/fastapi.md runs the app with ``uvicorn main:app``, whose access log (on by default,
    at INFO) printed ``POST /smsgate/webhooks/acme/one?token=<the webhook token>``."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    (tmp_path / "main.py").write_text(APP.format(tests=str(Path(__file__).parent)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "main:app", "--port", str(port), "--app-dir",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/orders", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        secret = "hook-token-that-must-not-leak-41c9"
        answers = [httpx.post(f"{base}/smsgate/webhooks/acme/one?token={secret}&x=1", content=b"[]").status_code,
                   httpx.get(f"{base}/smsgate/webhooks/acme/one?token={secret}").status_code,  # 405
                   httpx.get(f"{base}/orders?page=2").status_code]
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert answers == [401, 405, 200], (answers, output)
    assert secret not in output, output
    assert '"POST /smsgate/webhooks/acme/one?token=***&x=*** HTTP/1.1" 401' in output, output
    assert '"GET /orders?page=2 HTTP/1.1" 200' in output, output  # the app's other lines keep their query


# ------------------------------------------------------------------ stored tenants, off the event loop
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_tenant_lookups_for_any_name_in_a_url_never_run_on_the_event_loop(tmp_path: Any, kind: str) -> None:
    """With stored tenants, every callback asks the store whether its URL's tenant exists:
    for a name nobody stored, a query per request that anyone can send. The app asked on
    the event loop's thread (a PostgreSQL round trip blocking every other request of the
    app); it asks in a worker thread (the store is only ever called off the loop)."""
    import threading

    from cryptography.fernet import Fernet

    from smsgate import AsyncGateway
    from smsgate.store.base import TenantRow
    from smsgate.store.sqlite import SQLiteStore
    from smsgate.tenants import StoredTenants

    class Watched(SQLiteStore):
        """A real SQLite store noting the thread of each tenant read."""

        def __init__(self, path: str) -> None:
            super().__init__(path)
            self.threads: list[str] = []

        def get_tenant_row(self, name: str) -> TenantRow | None:
            self.threads.append(threading.current_thread().name)
            return super().get_tenant_row(name)

        def tenants_version(self) -> int:
            self.threads.append(threading.current_thread().name)
            return super().tenants_version()

    store = Watched(str(tmp_path / "tenants.db"))
    store.migrate()
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    tenants = StoredTenants(store, keys=Fernet.generate_key().decode(), plugins=pm)
    tenants.add("acme", {"providers": {"one": {"plugin": "echo", "base_url": "http://127.0.0.1:9",
                                               "credentials": {"api_key": API_KEY}}}})
    cfg = {"store": "memory://", "tenants": {}}
    gw: Gateway | AsyncGateway = (Gateway(cfg, plugins=pm, tenants=tenants) if kind == "sync"
                                  else AsyncGateway(cfg, plugins=pm, tenants=tenants))
    with LiveServer(webhook_app(gw)) as hooks:
        store.threads.clear()
        answers = [httpx.post(f"{hooks.url}/guess{i}/one", content=b"[]", timeout=10).status_code for i in range(5)]
        on_loop = [name for name in store.threads if name.startswith("smsgate-live-")]
        if kind == "sync":  # the sync gateway applies reports in a worker thread too
            body = b"[]"
            answers.append(httpx.post(f"{hooks.url}/acme/one", content=body, timeout=10,
                                      headers={"X-Echo-Signature": sign(body)}).status_code)
            on_loop += [name for name in store.threads if name.startswith("smsgate-live-")]
    if isinstance(gw, Gateway):
        gw.close()
    else:
        import asyncio

        asyncio.run(gw.aclose())
    assert answers == [401] * 5 + ([200] if kind == "sync" else [])  # unknown: as a failed authentication
    assert store.threads and on_loop == [], store.threads
    store.close()


# ------------------------------------------------------------------ hooks run after everything is stored
class HeardInbound:
    def __init__(self) -> None:
        self.texts: list[str] = []

    @hookimpl
    def smsgate_on_inbound(self, tenant: str, message: InboundMessage) -> None:
        self.texts.append(message.text)


def test_a_failing_status_hook_loses_no_stop_reply_of_the_same_callback(emu: LiveServer) -> None:
    heard = HeardInbound()
    with gateway(emu.url, Failing("smsgate_on_status", RuntimeError("metrics backend down")), heard) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send(SENDER, "hello")
        items = [{"id": sent.provider_message_id, "status": "delivered"},
                 {"type": "inbound", "id": "e1", "from": SENDER, "to": "ACME", "text": "STOP"}]
        answer = post(f"{hooks.url}/acme/one", items)
        assert answer.status_code == 200  # the app's hook failed: logged, the callback is stored
        assert gw.tenant("acme").optouts.check(SENDER)  # ...but the STOP is stored already
        assert gw.tenant("acme").get(sent.message_id).status.value == "delivered"
        assert heard.texts == ["STOP"]  # and the other hook heard of the reply despite the failing one


class Counting:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: DeliveryReport) -> None:
        self.seen.append((message_id, report.status.value))


def test_a_repeated_report_fires_the_status_hook_once(emu: LiveServer) -> None:
    """The hook's spec: "Called when a message's status changes"; a vendor retrying a callback
    (a timeout on its side) must not make an app count a delivery twice."""
    counting = Counting()
    with gateway(emu.url, counting) as gw, LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send(SENDER, "hello")
        for _ in range(3):
            assert post(f"{hooks.url}/acme/one", [{"id": sent.provider_message_id, "status": "delivered"}]).is_success
        history = [e.status.value for e in gw.tenant("acme").get(sent.message_id).history]
    assert history.count("delivered") == 1  # the store applied it once...
    assert counting.seen == [(sent.message_id, "delivered")]  # ...and the hook heard of it once


# ------------------------------------------------------------------ a token pasted into a URL as it is
@pytest.mark.parametrize("plugin", ["campaigns_api", "generic_http"])
@pytest.mark.parametrize("written", ["raw", "encoded"])
def test_a_base64_token_in_the_callback_url_authenticates_as_written_or_encoded(plugin: str, written: str) -> None:
    """``openssl rand -base64 24`` gives tokens with ``+``, ``/`` and ``=``; pasted as they are
    into a vendor's callback URL, the form decoding of the query read the ``+`` as a space, and
    every callback was refused (401) for a token that was right."""
    import urllib.parse

    from smsgate.testing.sandbox import start_emulator

    token = "q8+Zr/3kT0x+Ae9LwY2bHc=="
    emu = start_emulator(plugin)
    try:
        creds = {**emu._credentials, "webhook_token": token}
        extra: dict[str, Any] = {"credentials": creds}
        if plugin == "generic_http":
            opts = dict(emu._settings["options"])
            opts["webhook"] = {**opts["webhook"], "token_header": None, "token_query": "token"}
            extra["options"] = opts
        gw = emu.gateway("acme", region="NG", instance="main", **extra)
        with LiveServer(webhook_app(gw)) as hooks:
            query = token if written == "raw" else urllib.parse.quote(token, safe="")
            r = httpx.post(f"{hooks.url}/acme/main?token={query}", content=b"[]", timeout=10)
            wrong = httpx.post(f"{hooks.url}/acme/main?token={query.replace('q8', 'q9')}", content=b"[]", timeout=10)
    finally:
        emu.stop()
    assert r.status_code in (200, 400), r.text  # authenticated (an empty list may be a 400 of the parser)
    assert wrong.status_code == 401


# ------------------------------------------------------------------ hooks after a send
class FailingAfterSend:
    @hookimpl
    def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
        raise RuntimeError("audit backend down")

    @hookimpl
    def smsgate_on_call(self, tenant: str, instance: str, error: Any, seconds: float, waited: float) -> None:
        raise RuntimeError("metrics backend down")


def test_a_failing_after_send_or_on_call_hook_never_fails_a_send_the_vendor_took(
        caplog: pytest.LogCaptureFixture) -> None:
    """The send has happened: raising would lose its result, and a caller retrying
    without an idempotency key would send it twice. Counted from the vendor's record."""
    taken: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(taken)) as emu, gateway(emu.url, FailingAfterSend()) as gw:
        tenant = gw.tenant("acme")
        with caplog.at_level(logging.ERROR, logger="smsgate"):
            one = tenant.send(SENDER, "hello")
            many = tenant.send_many(["+2348030000001", "+2348030000002", "+2348030000003"], "hi")
        assert one.ok and all(r.ok for r in many)
        assert {m["to"] for m in taken.values()} == {SENDER, "+2348030000001", "+2348030000002", "+2348030000003"}
        assert len(taken) == 4  # each once
        assert tenant.get(one.message_id).status.value == "submitted"
    assert "smsgate_after_send failed" in caplog.text and "smsgate_on_call failed" in caplog.text


def test_a_failing_status_hook_does_not_stop_the_poller_at_every_change(caplog: pytest.LogCaptureFixture) -> None:
    """The poller's tick goes on past a failing ``smsgate_on_status``: every message it
    looked up gets its status in one tick, and the hook's failure is logged."""
    with LiveServer(create_emulator()) as emu, \
            gateway(emu.url, Failing("smsgate_on_status", RuntimeError("metrics backend down"))) as gw:
        tenant = gw.tenant("acme")
        sent = tenant.send_many(["+2348030000011", "+2348030000012", "+2348030000013"], "hi")
        with caplog.at_level(logging.ERROR, logger="smsgate"):
            summary = tenant.sync_statuses(older_than=0)
        assert summary.looked_up == 3
        assert {tenant.get(r.message_id).status.value for r in sent} == {"delivered"}
    assert {f"tenant acme: smsgate_on_status failed for message {r.message_id}" for r in sent} <= {
        rec.getMessage().split(" (logged")[0] for rec in caplog.records}


def test_a_failing_status_hook_never_fails_a_refreshed_status_lookup(caplog: pytest.LogCaptureFixture) -> None:
    """``status(refresh=True)`` stores what the vendor said and calls ``smsgate_on_status``:
    a raising hook raised out of the lookup (the caller lost the record it had just stored)."""
    with LiveServer(create_emulator()) as emu, \
            gateway(emu.url, Failing("smsgate_on_status", RuntimeError("metrics backend down"))) as gw:
        tenant = gw.tenant("acme")
        sent = tenant.send(SENDER, "hi")
        with caplog.at_level(logging.ERROR, logger="smsgate"):
            record = tenant.status(sent.message_id, refresh=True)
        assert record.status.value == "delivered"
        assert tenant.get(sent.message_id).status.value == "delivered"
    assert f"smsgate_on_status failed for message {sent.message_id}" in caplog.text
