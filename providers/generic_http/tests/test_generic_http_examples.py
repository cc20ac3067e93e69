"""The two worked examples of docs/generic-http.md, as written there, against emulators built
from the same options over loopback HTTP: what reached the "vendor" is read from its record."""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from smsgate.config import load_config
from smsgate.emulation import FaultRule
from smsgate.errors import AuthFailed, RequestRejected, Unsupported
from smsgate.gateway import Gateway
from smsgate.models import OutboundMessage, Status
from smsgate.plugins import PluginManager
from smsgate.store.memory import MemoryStore
from smsgate.testing.server import LiveServer
from smsgate.transport import run_with_responses
from smsgate.webhooks import webhook_app
from smsgate_generic_http import GenericHttpProvider
from smsgate_generic_http.emulator import create_app

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOC = Path(__file__).resolve().parents[3] / "docs" / "generic-http.md"
ENV = {"TEXTLY_API_KEY": "textly-key-1a2b3c", "TEXTLY_HOOK_TOKEN": "textly-hook-9z8y",
       "FORMSMS_ACCOUNT": "AC0001account", "FORMSMS_TOKEN": "formsms-token-77", "FORMSMS_HOOK": "formsms-hook-55"}
#: Quotes, backslashes, separators and an attempted field; braces are covered in test_generic_http_wire.py
#: (the gateway renders a send's text as a template first).
TRICKY = 'Hi "Ada" \\ \u2028 ✓ 😀\nline2 , "inject": true, "to": "+1", &To=+1&x='



def _example(name: str) -> str:
    """The TOML block of docs/generic-http.md configuring provider instance ``name``."""
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL)
    found = [b for b in blocks if f"[tenants.acme.providers.{name}]" in b]
    assert len(found) == 1, f"docs/generic-http.md has no single example for {name}"
    return found[0]


def _options(name: str) -> dict[str, Any]:
    return dict(tomllib.loads(_example(name))["tenants"]["acme"]["providers"][name]["options"])


def _credentials(name: str) -> dict[str, str]:
    creds = tomllib.loads(_example(name))["tenants"]["acme"]["providers"][name]["credentials"]
    return {k: ENV[v[2:-1]] for k, v in creds.items()}


def _gateway(name: str, url: str, tmp_path: Path, env: dict[str, str] | None = None) -> Gateway:
    text = re.sub(r'base_url = "[^"]*"', f'base_url = "{url}"', _example(name))
    path = tmp_path / f"{name}.toml"
    path.write_text('store = "memory://"\n[tenants.acme]\ndefault_region = "NG"\n' + text)
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(GenericHttpProvider)
    return Gateway(load_config(path, environ=env or ENV), store=MemoryStore(), plugins=pm)


@pytest.fixture
def hooks() -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    """A webhook receiver forwarding to whichever gateway the test puts in the dict."""
    holder: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await holder["app"](scope, receive, send)

    server = LiveServer(app).start()
    yield server, holder
    server.stop()


def _wait_for(predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


# ---------------------------------------------------------------- example 1: JSON + bearer
def test_json_bearer_example_sends_the_documented_request(tmp_path: Path) -> None:
    app = create_app(_options("textly"), _credentials("textly"), delivery_delay=0.2)
    server = LiveServer(app).start()
    try:
        with _gateway("textly", server.url, tmp_path) as gw:
            t = gw.tenant("acme")
            result = t.send("08031234567", TRICKY)
            assert result.status == Status.SUBMITTED and result.raw_status == "ACCEPTED"
            (rec,) = app.state_obj.requests
            assert rec.method == "POST" and rec.path == "/v2/sms/send"
            assert rec.headers["authorization"] == f"Bearer {ENV['TEXTLY_API_KEY']}"
            assert rec.headers["accept"] == "application/json"
            assert rec.headers["content-type"] == "application/json"
            assert json.loads(rec.body) == {
                "from": "ACME", "options": {"flash": False},
                "messages": [{"destination": "+2348031234567", "content": TRICKY, "reference": result.message_id}],
            }
            assert result.provider_message_id in app.vendor.messages
            time.sleep(0.25)
            assert t.status(result.message_id).status == Status.DELIVERED
            lookup = app.state_obj.requests[-1]
            assert (lookup.method, lookup.path) == ("GET", f"/v2/sms/{result.provider_message_id}")
            failing = t.send("08031234569", "to a failing number")
            time.sleep(0.25)
            assert t.status(failing.message_id).status == Status.UNDELIVERED  # "UNDELIVERABLE" in the map
    finally:
        server.stop()


def test_json_bearer_example_webhooks_with_query_token(tmp_path: Path, hooks: tuple[LiveServer, Any]) -> None:
    receiver, holder = hooks
    app = create_app(_options("textly"), _credentials("textly"), delivery_delay=0.2,
                     webhook_url=f"{receiver.url}/acme/textly")
    server = LiveServer(app).start()
    try:
        with _gateway("textly", server.url, tmp_path) as gw:
            holder["app"] = webhook_app(gw)
            t = gw.tenant("acme")
            result = t.send("08031234567", "report back")
            _wait_for(lambda: t.get(result.message_id).status == Status.DELIVERED)
            assert [s.status for s in t.get(result.message_id).history][-2:] == [Status.SENT, Status.DELIVERED]
            # a callback without the right token is refused and changes nothing
            app.state_obj.add_fault(FaultRule(kind="drop_callbacks", count=None))  # the vendor stays silent
            other = t.send("08031234568", "not yours")
            body = {"events": [{"message_id": other.provider_message_id, "state": "DELIVERED"}]}
            bad = httpx.post(f"{receiver.url}/acme/textly?token=wrong", json=body)
            assert bad.status_code == 401
            assert httpx.post(f"{receiver.url}/acme/textly", json=body).status_code == 401
            time.sleep(0.3)
            assert t.get(other.message_id).status == Status.SUBMITTED
            good = httpx.post(f"{receiver.url}/acme/textly?token={ENV['TEXTLY_HOOK_TOKEN']}", json=body)
            assert good.status_code == 200 and t.get(other.message_id).status == Status.DELIVERED
    finally:
        server.stop()


def test_json_example_reads_vendor_errors(tmp_path: Path) -> None:
    with _gateway("textly", "http://127.0.0.1:9", tmp_path) as gw:
        prov = gw.tenant("acme").provider("textly")
    msg = OutboundMessage(to="+2348031234567", text="x", message_id="m1")
    refused = httpx.Response(400, json={"errors": [{"detail": "destination not allowed"}]})
    with pytest.raises(RequestRejected, match="destination not allowed"):
        run_with_responses(prov.send(msg), [refused])
    # vendors that answer 200 with an error: the error path decides
    in_200 = httpx.Response(200, json={"errors": [{"detail": "insufficient credit"}]})
    with pytest.raises(RequestRejected, match="insufficient credit"):
        run_with_responses(prov.send(msg), [in_200])


# ---------------------------------------------------------------- example 2: form + basic auth
def test_form_basic_auth_example_sends_the_documented_request(tmp_path: Path) -> None:
    app = create_app(_options("formsms"), _credentials("formsms"), delivery_delay=0.2)
    server = LiveServer(app).start()
    try:
        with _gateway("formsms", server.url, tmp_path) as gw:
            t = gw.tenant("acme")
            result = t.send("+27821234567", TRICKY)
            assert result.status == Status.SUBMITTED and result.raw_status == "accepted"
            (rec,) = app.state_obj.requests
            assert rec.path == "/2010-04-01/Messages.json"
            assert rec.headers["content-type"] == "application/x-www-form-urlencoded"
            user, _, password = base64.b64decode(rec.headers["authorization"].removeprefix("Basic ")).decode() \
                .partition(":")
            assert (user, password) == (ENV["FORMSMS_ACCOUNT"], ENV["FORMSMS_TOKEN"])
            assert rec.headers["x-account"] == ENV["FORMSMS_ACCOUNT"]
            form = dict(urllib.parse.parse_qsl(rec.body, keep_blank_values=True))
            assert form == {"To": "+27821234567", "From": "+15005550006", "Body": TRICKY,
                            "StatusCallbackRef": result.message_id}
            with pytest.raises(Unsupported, match="status lookup"):  # no [options.status_lookup]
                t.run("formsms", t.provider("formsms").status(result))
    finally:
        server.stop()


def test_form_example_wrong_password_is_auth_failed(tmp_path: Path) -> None:
    app = create_app(_options("formsms"), _credentials("formsms"))
    server = LiveServer(app).start()
    try:
        with _gateway("formsms", server.url, tmp_path, {**ENV, "FORMSMS_TOKEN": "not-the-token"}) as gw, \
                pytest.raises(AuthFailed) as info:
            gw.tenant("acme").send("+27821234567", "hello")
        assert "not-the-token" not in f"{info.value} {info.value!r} {info.value.body}"
        assert len(app.state_obj.requests) == 1
    finally:
        server.stop()


def test_form_example_webhooks_with_header_token(tmp_path: Path, hooks: tuple[LiveServer, Any]) -> None:
    receiver, holder = hooks
    app = create_app(_options("formsms"), _credentials("formsms"), delivery_delay=0.2,
                     webhook_url=f"{receiver.url}/acme/formsms")
    server = LiveServer(app).start()
    try:
        with _gateway("formsms", server.url, tmp_path) as gw:
            holder["app"] = webhook_app(gw)
            t = gw.tenant("acme")
            ok = t.send("+27821234567", "deliver me")
            bad = t.send("+27821234569", "fail me")
            _wait_for(lambda: t.get(ok.message_id).status == Status.DELIVERED
                      and t.get(bad.message_id).status == Status.FAILED)
            assert all(c["status_code"] == 200 for c in app.vendor.callbacks)
            forged = httpx.post(f"{receiver.url}/acme/formsms", headers={"X-Callback-Token": "guess"},
                                data={"MessageSid": ok.provider_message_id, "MessageStatus": "failed"})
            assert forged.status_code == 401
            assert t.get(ok.message_id).status == Status.DELIVERED
    finally:
        server.stop()


def test_json_example_with_the_documented_bulk_block(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL)
    (bulk_block,) = [b for b in blocks if "[tenants.acme.providers.textly.options.bulk]" in b]
    name = "textly"
    options = {**_options(name), "bulk": tomllib.loads(bulk_block)["tenants"]["acme"]["providers"][name]
               ["options"]["bulk"]}
    app = create_app(options, _credentials(name), delivery_delay=60.0)
    server = LiveServer(app).start()
    try:
        text = re.sub(r'base_url = "[^"]*"', f'base_url = "{server.url}"', _example(name)) + "\n" + bulk_block
        path = tmp_path / "bulk.toml"
        path.write_text('store = "memory://"\n[tenants.acme]\ndefault_region = "NG"\n' + text)
        pm = PluginManager(load_entry_points=False)
        pm.add_provider(GenericHttpProvider)
        with Gateway(load_config(path, environ=ENV), store=MemoryStore(), plugins=pm) as gw:
            numbers = [f"+2348031234{i:03d}" for i in range(120)]
            results = gw.tenant("acme").send_many(numbers, TRICKY)
        assert [len(r.json()["messages"]) for r in app.state_obj.requests] == [50, 50, 20]
        sent = [m for r in app.state_obj.requests for m in r.json()["messages"]]
        assert [m["destination"] for m in sent] == numbers and all(m["content"] == TRICKY for m in sent)
        assert [r.provider_message_id for r in results] == list(app.vendor.messages)
        assert {r.status for r in results} == {Status.SUBMITTED}
    finally:
        server.stop()
