"""Configuration errors name their key and never a value; secrets stay out of reprs, errors and logs;
features not configured raise Unsupported."""

from __future__ import annotations

import copy
import logging
from typing import Any

import httpx
import pytest

from smsgate.config import load_config
from smsgate.errors import AuthFailed, ConfigError, Unsupported
from smsgate.gateway import Gateway
from smsgate.models import OutboundMessage, SendResult, Status
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing.server import LiveServer
from smsgate.transport import run_with_responses
from smsgate_generic_http import GenericHttpProvider
from smsgate_generic_http.emulator import SANDBOX_CREDENTIALS, SANDBOX_OPTIONS, create_app

SECRET = "sk-very-secret-123456"
BASE: dict[str, Any] = {"headers": {"Authorization": "Bearer {secret.api_key}"},
                        "request": {"url": "/send", "json": {"to": "{to}", "text": "{text}"}},
                        "response": {"id_path": "id"}}


def _gateway(options: dict[str, Any], credentials: dict[str, str] | None = None,
             base_url: str = "http://127.0.0.1:9") -> Gateway:
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(GenericHttpProvider)
    config = {"store": "memory://", "tenants": {"acme": {"providers": {"myvendor": {
        "plugin": "generic_http", "base_url": base_url,
        "credentials": {"api_key": SECRET} if credentials is None else credentials, "options": options}}}}}
    return Gateway(load_config(config), store=MemoryStore(), plugins=pm)


def _with(path: str, value: Any) -> dict[str, Any]:
    options = copy.deepcopy(BASE)
    node = options
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return options


@pytest.mark.parametrize(("path", "value", "key", "why"), [
    ("response.id_path", "data..id", "response.id_path", "empty step"),
    ("response.error_path", "", "response.error_path", "not empty"),
    ("response.success_status", [], "response.success_status", "at least one"),
    ("response.success_status", [200, 404], "response.success_status", "2xx or 3xx"),
    ("request.url", "/send?key={secret.api_key}", "request.url", "no credentials in a URL path"),
    ("request.url", "/send?key=1", "request.url", "under 'query'"),
    ("request.url", "/send/{secret.api_key}", "request.url", "no credentials in a URL path"),
    ("request.url", "/send/{recipient}", "request.url", "unknown placeholder 'recipient'"),
    ("request.json", {"to": "{to}", "x": ["{text:>5}"]}, "request.json", "at x.0"),
    ("request.json", '{"to": "{to}",}', "request.json", "not valid JSON"),
    ("request.json", {"text": "{text}"}, "request", "never uses the recipient"),
    ("request.form", {"to": "{to}"}, "request", "'json' or 'form'"),
    ("request.method", "DELETE", "request.method", "POST"),
    ("request.colour", "blue", "request.colour", "Extra inputs"),
    ("headers", {"Authorization": "Bearer {text}"}, "headers.Authorization", "unknown placeholder 'text'"),
    ("headers", {"Bad Header": "x"}, "headers", "not a valid header name"),
    ("status_map", {"DELIVRD": "deliverd"}, "status_map.DELIVRD", "'delivered'"),
    ("status_lookup", {"url": "/s/{id}"}, "status_lookup.status_path", "Field required"),
    ("webhook", {"id_path": "id", "status_path": "s", "token": "{secret.api_key}"}, "webhook",
     "exactly one of 'token_header'"),
    ("check", {"url": "/account/{secret.api_key}"}, "check.url", "no credentials in a URL path"),
    ("check", {"url": "/account/{to}"}, "check.url", "unknown placeholder 'to'"),
    ("check", {"url": "/account", "success_status": [500]}, "check.success_status", "2xx or 3xx"),
    ("check", {"url": "/account", "senders_path": "a..b"}, "check.senders_path", "empty step"),
    ("check", {"url": "/account", "method": "DELETE"}, "check.method", "GET"),
])
def test_config_errors_name_the_key(path: str, value: Any, key: str, why: str) -> None:
    with _gateway(_with(path, value)) as gw, pytest.raises(ConfigError) as info:
        gw.check()
    text = str(info.value)
    assert f"providers.myvendor.options.{key}" in text and why in text, text


def test_a_secret_put_in_an_option_is_not_echoed() -> None:
    # refused when the configuration is loaded (a credential's value in an option, see
    # ProviderSettings), no longer at gw.check(): the error names the provider and the option
    with pytest.raises(ConfigError) as info:
        _gateway(_with("headers", {"Authorization": 42, "X-Key": SECRET, "Bad Header": SECRET}))
    assert SECRET not in str(info.value) and "providers.myvendor: options.headers" in str(info.value)


def test_status_lookup_and_webhook_need_the_id_path() -> None:
    options = _with("status_lookup", {"url": "/s/{id}", "status_path": "s"})
    del options["response"]
    with _gateway(options) as gw, pytest.raises(ConfigError, match=r"options\.status_lookup: needs 'response\.id_path'"):
        gw.check()


def test_a_secret_named_but_not_configured() -> None:
    options = _with("request.query", {"key": "{secret.apikey}"})
    with _gateway(options) as gw, pytest.raises(ConfigError) as info:
        gw.check()
    text = str(info.value)
    assert "providers.myvendor.options.request.query.key" in text and "'apikey'" in text
    assert "configured: api_key" in text and SECRET not in text


def test_the_sandbox_options_are_valid() -> None:
    with _gateway(SANDBOX_OPTIONS, dict(SANDBOX_CREDENTIALS)) as gw:
        assert gw.check() == ["acme/myvendor: generic_http at http://127.0.0.1:9"]


# ---------------------------------------------------------------- Unsupported
def test_features_not_configured_are_unsupported() -> None:
    prov = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url="http://v.invalid",
                                                credentials={"api_key": SECRET}, options=BASE))
    assert not (prov.capabilities.status_lookup or prov.capabilities.delivery_reports or prov.capabilities.bulk)
    result = SendResult(to="+2348031234567", status=Status.SUBMITTED, provider_message_id="x")
    with pytest.raises(Unsupported, match="status lookup"):
        run_with_responses(prov.status(result), [])
    with pytest.raises(Unsupported, match=r"online check.*\[options\.check\]"):
        run_with_responses(prov.check(), [])
    with pytest.raises(Unsupported, match="webhooks"):
        prov.parse_webhook({}, b"{}")
    with pytest.raises(Unsupported, match="bulk"):
        run_with_responses(prov.send_many([OutboundMessage(to="+2348031234567", text="x")]), [])
    with pytest.raises(Unsupported, match="locations"):
        from smsgate.models import Location
        run_with_responses(prov.send(OutboundMessage(to="+2348031234567", text="x",
                                                     location=Location(lat=1.0, lng=2.0))), [])


# ---------------------------------------------------------------- secrets
def test_secret_never_in_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Everything logged at DEBUG (smsgate, httpx, httpcore, uvicorn) while sending, looking up,
    failing auth and refusing a webhook, with the key in a header and the query string."""
    options = copy.deepcopy(SANDBOX_OPTIONS)
    options["request"] = {**options["request"], "query": {"key": "{secret.api_key}"}}
    credentials = {**SANDBOX_CREDENTIALS, "api_key": SECRET}
    app = create_app(options, credentials, delivery_delay=60.0)
    server = LiveServer(app).start()
    caplog.set_level(logging.DEBUG)
    try:
        with _gateway(options, credentials, server.url) as gw:
            t = gw.tenant("acme")
            result = t.send("+2348031234567", "hello")
            assert app.state_obj.requests[0].query == f"key={SECRET}"  # it did travel
            t.status(result.message_id)
            assert app.state_obj.requests[1].method == "GET"  # the lookup was made
            t.send_many(["+2348031234561", "+2348031234562"], "bulk hello")
            assert app.state_obj.requests[-1].query == f"key={SECRET}"
            assert len(app.state_obj.requests[-1].json()["messages"]) == 2
            prov = t.provider("myvendor")
            text = f"{prov!r} {vars(prov)!r} {gw.settings!r} {gw.settings.tenant('acme')!r}"
            with pytest.raises(AuthFailed) as info:
                prov.parse_webhook({"X-Webhook-Token": "guess"}, b"{}")
            text += f" {info.value} {info.value!r}"
        with _gateway(options, {**credentials, "api_key": SECRET + "-wrong"}, server.url) as gw, \
                pytest.raises(AuthFailed) as refused:
            gw.tenant("acme").send("+2348031234567", "hello")
        text += f" {refused.value} {refused.value!r} {refused.value.body}"
    finally:
        server.stop()
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("httpx") for r in caplog.records), "httpx logged nothing: the check is void"
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert SECRET not in logged
    assert SECRET not in text and "sandbox-generic-hook-token" not in text
    assert "sandbox-generic-hook-token" not in logged


def test_answer_bodies_are_redacted_in_errors() -> None:
    prov = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url="http://v.invalid",
                                                credentials={"api_key": SECRET}, options=BASE))
    echo = httpx.Response(401, json={"message": f"key {SECRET} is not valid"})
    with pytest.raises(AuthFailed) as info:
        run_with_responses(prov.send(OutboundMessage(to="+2348031234567", text="x")), [echo])
    assert SECRET not in f"{info.value} {info.value.body}"


def test_a_credential_with_a_line_break_is_refused_without_showing_it() -> None:
    bad = SECRET + "\r\nX-Injected: 1"
    prov = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url="http://v.invalid",
                                                credentials={"api_key": bad}, options=BASE))
    with pytest.raises(ConfigError, match=r"headers\.Authorization") as info:
        run_with_responses(prov.send(OutboundMessage(to="+2348031234567", text="x")), [])
    assert SECRET not in str(info.value)


# ---------------------------------------------------------------- bulk
BULK_BASE: dict[str, Any] = {
    "request": {"url": "/send", "json": {"from": "{sender}", "msgs": [{"to": "{to}", "text": "{text}"}]}},
    "response": {"id_path": "ids.0"},
}


@pytest.mark.parametrize(("bulk", "why"), [
    ({"max_batch": 10, "items_path": "from", "results_path": "r", "id_path": "id"}, "list of one item"),
    ({"max_batch": 1, "items_path": "msgs", "results_path": "r", "id_path": "id"}, "greater than or equal to 2"),
    ({"max_batch": 10, "items_path": "msgs", "id_path": "id"}, "Field required"),
])
def test_bulk_config_errors(bulk: dict[str, Any], why: str) -> None:
    options = {**copy.deepcopy(BULK_BASE), "bulk": bulk}
    with _gateway(options) as gw, pytest.raises(ConfigError, match=r"providers\.myvendor\.options\.bulk") as info:
        gw.check()
    assert why in str(info.value)


def test_bulk_needs_the_recipient_in_the_item() -> None:
    options = {"request": {"url": "/send", "json": {"to": "{to}", "msgs": [{"text": "{text}"}]}},
               "bulk": {"max_batch": 5, "items_path": "msgs", "results_path": "r", "id_path": "id"}}
    with _gateway(options) as gw, pytest.raises(ConfigError, match=r"options\.bulk: the item at .items_path. must use"):
        gw.check()


def test_bulk_batches_by_what_is_outside_the_item() -> None:
    options = {**copy.deepcopy(BULK_BASE),
               "bulk": {"max_batch": 5, "items_path": "msgs", "results_path": "r", "id_path": "id",
                        "status_path": "s"},
               "status_map": {"ok": "submitted", "bad": "rejected"}}
    prov = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url="http://v.invalid", options=options))
    assert prov.capabilities.bulk and prov.capabilities.max_batch == 5
    a, b, c = (OutboundMessage(to=f"+234803123456{i}", text=f"t{i}", sender=s, message_id=f"m{i}")
               for i, s in ((1, "ACME"), (2, "ACME"), (3, "OTHER")))
    assert prov.batch_key(a) == prov.batch_key(b) != prov.batch_key(c)
    request = prov.bulk_request([a, b])
    import json as _json
    assert _json.loads(request.content) == {"from": "ACME", "msgs": [{"to": a.to, "text": "t1"},
                                                                    {"to": b.to, "text": "t2"}]}
    answer = httpx.Response(200, json={"r": [{"id": "x1", "s": "ok"}, {"id": "x2", "s": "bad"}]})
    r1, r2 = run_with_responses(prov.send_many([a, b]), [answer])
    assert (r1.status, r1.provider_message_id, r2.status, r2.provider_message_id) == \
        (Status.SUBMITTED, "x1", Status.REJECTED, "x2")
    # the vendor took the request but its answer lacks a result: unknown, never raised
    short = httpx.Response(200, json={"r": [{"id": "x1"}]})
    r1, r2 = run_with_responses(prov.send_many([a, b]), [short])
    assert (r1.status, r2.status) == (Status.SUBMITTED, Status.UNKNOWN)
    garbled = httpx.Response(200, text="<html>")
    assert {r.status for r in run_with_responses(prov.send_many([a, b]), [garbled])} == {Status.UNKNOWN}
    with pytest.raises(ValueError, match="batch_key"):
        run_with_responses(prov.send_many([a, c]), [])


def test_bulk_through_the_gateway_is_one_request_per_sender(tmp_path: Any) -> None:
    app = create_app(delivery_delay=60.0)
    server = LiveServer(app).start()
    try:
        with _gateway(SANDBOX_OPTIONS, dict(SANDBOX_CREDENTIALS), server.url) as gw:
            numbers = [f"+23480312345{i:02d}" for i in range(7)]
            results = gw.tenant("acme").send_many(numbers, "same text")
        (rec,) = app.state_obj.requests
        sent = [m["to"] for m in rec.json()["messages"]]
        assert sent == numbers
        assert [r.provider_message_id for r in results] == list(app.vendor.messages)
        assert all(r.status == Status.SUBMITTED for r in results)
    finally:
        server.stop()


# ---------------------------------------------------------------- unauthenticated callbacks
def test_a_webhook_without_a_token_is_refused_unless_said_so() -> None:
    """A callback nobody authenticates is one anybody can post: a forged report finalises a
    message (``failed``, ``delivered``) for good, since statuses only move forward. As for
    Campaigns REST, the token is required by default; ``token_required = false`` says the app
    has another control (an IP allow-list)."""
    webhook = {"id_path": "id", "status_path": "status"}
    options = {**_with("webhook", webhook), "status_map": {"delivered": "delivered", "failed": "failed"}}
    with _gateway(options) as gw, pytest.raises(ConfigError) as info:
        gw.check()
    text = str(info.value)
    assert "providers.myvendor.options.webhook" in text and "set 'token_required' to false" in text, text
    assert "***" not in text, text  # the message survives the masking of values

    from smsgate.webhooks import webhook_app

    sandbox = copy.deepcopy(SANDBOX_OPTIONS)
    sandbox["webhook"] = {**webhook, "token_required": False}
    app = create_app(sandbox, dict(SANDBOX_CREDENTIALS), delivery_delay=60.0)
    with LiveServer(app) as vendor, _gateway(sandbox, dict(SANDBOX_CREDENTIALS), vendor.url) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send("+2348031234567", "hello")
        r = httpx.post(f"{hooks.url}/acme/myvendor", json={"id": sent.provider_message_id, "status": "failed"})
        assert r.status_code == 200 and r.json()["matched"] == 1  # said so: applied without a token
        assert gw.tenant("acme").get(sent.message_id).status is Status.FAILED
