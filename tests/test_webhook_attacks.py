"""The webhook app attacked over loopback HTTP with every installed provider.

Authenticated but hostile bodies must be a typed 4xx (never a 500) and leave
nothing half-applied; reports replayed or out of order never move a status back;
an unknown tenant or instance is answered as a known one with bad credentials (one 401);
secrets never reach the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway, Status
from smsgate.plugins import PluginManager
from smsgate.testing import LiveServer
from smsgate.testing.sandbox import RunningEmulator, start_emulator
from smsgate.webhooks import webhook_app

PROVIDERS = ["squad", "campaigns_api", "colony", "generic_http", "broadcast"]


def auth(emu: RunningEmulator, body: bytes) -> tuple[dict[str, str], str]:
    """Headers and a query string that authenticate ``body`` as ``emu``'s vendor would."""
    creds = emu._credentials
    if emu.name == "squad":
        digest = hmac.new(creds["secret_key"].encode(), body, hashlib.sha512).hexdigest().upper()
        return {"x-squad-encrypted-body": digest}, ""
    token = creds.get("webhook_token", "")
    return {"X-Webhook-Token": token}, f"token={token}"


@pytest.fixture(scope="module", params=PROVIDERS)
def hooked(request: pytest.FixtureRequest) -> Iterator[tuple[RunningEmulator, Gateway, str]]:
    emu = start_emulator(request.param)
    try:
        extra: dict[str, Any] = {}
        if emu.name == "colony":
            extra["credentials"] = {**emu._credentials, "webhook_token": "colony-relay-token"}
            emu._credentials = extra["credentials"]
        gw = emu.gateway("acme", region="NG", instance="main", **extra)
        with LiveServer(webhook_app(gw, max_body=64 * 1024)) as server:
            yield emu, gw, server.url
    finally:
        emu.stop()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["id", "Id", "status", "statusCode", "data", "Body", "Event", "message_id", "type",
                         "from", "to", "text", "webHookType", "phoneNumber", "timestamp", "parts", "part",
                         "batch_id", "TransactionRef", "messages", "price", "cost"]) | st.text(max_size=8),
        children, max_size=6),
    max_leaves=20,
)

FIXED = [b"", b"null", b"1", b'"x"', b"[]", b"{}", b"[1]", b"[null]", b'[{"id": null}]', b"\xff\xfe\x00",
         b'{"data": null}', b'{"data": []}', b'{"data": {"Id": "x", "statusCode": 999}}', b'{"Body": []}',
         b'{"webHookType": 1, "data": {"Id": 1e400, "statusCode": 1}}', b'{"a": NaN}', b"a=b&c=%ff",
         b'{"Event": "x", "Body": {"batch_id": {"a": 1}}}', b'[{"id": "x", "status": "delivered", "parts": -1}]']


def post(url: str, emu: RunningEmulator, body: bytes, path: str = "/acme/main") -> httpx.Response:
    headers, query = auth(emu, body)
    return httpx.post(f"{url}{path}" + (f"?{query}" if query else ""), content=body,
                      headers={"content-type": "application/json", **headers}, timeout=10)


def assert_typed(r: httpx.Response, emu: RunningEmulator) -> None:
    # broadcast's vendor documents no webhooks: no callback of it is authenticated (401, as any)
    typed = (401,) if emu.name == "broadcast" else (200, 400, 501)
    assert r.status_code in typed, (r.status_code, r.text)
    assert isinstance(r.json(), dict)


def test_fixed_hostile_bodies_are_typed_answers(hooked: tuple[RunningEmulator, Gateway, str]) -> None:
    emu, _, url = hooked
    for body in FIXED:
        assert_typed(post(url, emu, body), emu)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=JSON)
def test_any_authenticated_json_is_a_typed_answer(hooked: tuple[RunningEmulator, Gateway, str], doc: Any) -> None:
    emu, _, url = hooked
    assert_typed(post(url, emu, json.dumps(doc).encode()), emu)


def test_unknown_tenant_or_instance_answers_as_a_known_one_with_bad_credentials(
    hooked: tuple[RunningEmulator, Gateway, str]
) -> None:
    """An unauthenticated caller cannot tell a tenant or instance that exists from one that
    does not: the same status, body and headers (but ``date``) for all four, Broadcast's too (its
    vendor documents no webhooks: it answered 501 before, telling the instance existed)."""
    _, _, url = hooked

    def answer(path: str) -> tuple[int, str, dict[str, str]]:
        r = httpx.post(f"{url}{path}", content=b"[]", headers={"content-type": "application/json"}, timeout=10)
        return r.status_code, r.text, {k: v for k, v in r.headers.items() if k != "date"}

    paths = ("/acme/main", "/nobody/main", "/acme/nothing", "/nobody/nothing")
    answers = {path: answer(path) for path in paths}
    assert len({repr(a) for a in answers.values()}) == 1, answers
    assert answers["/nobody/main"][:2] == (401, json.dumps({"error": "authentication failed"}, separators=(",", ":")))


# ------------------------------------------------------------------- echo: replay, order, secrets
@pytest.fixture
def echo_hooks() -> Iterator[tuple[Gateway, str]]:
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}
        with Gateway(cfg, plugins=pm) as gw, LiveServer(webhook_app(gw)) as server:
            yield gw, server.url


def echo_post(url: str, items: list[dict[str, Any]], signature: str | None = None) -> httpx.Response:
    body = json.dumps(items).encode()
    return httpx.post(f"{url}/acme/one", content=body,
                      headers={"X-Echo-Signature": sign(body) if signature is None else signature})


def test_replayed_and_late_reports_never_move_a_status_back(echo_hooks: tuple[Gateway, str]) -> None:
    gw, url = echo_hooks
    sent = gw.tenant("acme").send("08031234567", "x")
    pid = sent.provider_message_id
    assert echo_post(url, [{"id": pid, "status": "delivered"}]).json()["matched"] == 1
    history = len(gw.tenant("acme").get(sent.message_id).history)
    for _ in range(3):  # a vendor retrying, an attacker replaying a captured request
        assert echo_post(url, [{"id": pid, "status": "delivered"}]).status_code == 200
        assert echo_post(url, [{"id": pid, "status": "accepted"}]).status_code == 200
        assert echo_post(url, [{"id": pid, "status": "failed"}]).status_code == 200
    record = gw.tenant("acme").get(sent.message_id)
    assert record.status is Status.DELIVERED
    assert len(record.history) == history


def test_a_bad_item_in_a_batch_applies_nothing(echo_hooks: tuple[Gateway, str]) -> None:
    gw, url = echo_hooks
    sent = gw.tenant("acme").send("08031234567", "x")
    r = echo_post(url, [{"id": sent.provider_message_id, "status": "delivered"}, {"id": "y", "status": "bogus"}])
    assert r.status_code == 400
    assert gw.tenant("acme").get(sent.message_id).status is Status.SUBMITTED


def test_secrets_in_the_callback_url_or_headers_never_reach_the_logs(
    hooked: tuple[RunningEmulator, Gateway, str], caplog: pytest.LogCaptureFixture
) -> None:
    emu, _, url = hooked
    secrets = [v for v in emu._credentials.values() if len(v) > 6]
    caplog.set_level(logging.DEBUG)
    for body in (b"[]", b"{", b'{"data": {"Id": "x"}}'):
        headers, query = auth(emu, body)
        for path in ("/acme/main", "/nobody/main"):
            httpx.post(f"{url}{path}?{query}", content=body, headers=headers)
            httpx.post(f"{url}{path}?token=wrong-{secrets[0]}", content=body, headers={"X-Webhook-Token": "no"})
    # the test's own client (httpx, httpcore) logs what it sends: only the server side counts
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize("body", [b'{"a": 1}', b"[1]", b'"x"', b"[[]]", b'[{"id": "x"}]'])
def test_a_parser_tripping_on_an_odd_shape_is_a_400_not_a_500(echo_hooks: tuple[Gateway, str], body: bytes) -> None:
    """A provider's parser that indexes a list as a dict (AttributeError, IndexError...) on a
    signed body of an odd shape: the app answers 400 naming the error, never 500, and the
    direct API raises a ValidationError, not the parser's own exception."""
    from smsgate.errors import ValidationError

    gw, url = echo_hooks
    r = httpx.post(f"{url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
    assert r.status_code == 400, r.text
    assert "unreadable body" in r.json()["error"]
    with pytest.raises(ValidationError, match="unreadable body"):
        gw.receive("acme", "one", {"X-Echo-Signature": sign(body)}, body)


@pytest.fixture
def odd_names() -> Iterator[tuple[Gateway, str]]:
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        tenants = {name: {"default_region": "NG", "providers": {"one": prov}} for name in ("org/team", "org", "a b")}
        cfg = {"store": "memory://", "tenants": tenants}
        with Gateway(cfg, plugins=pm) as gw, LiveServer(webhook_app(gw)) as server:
            yield gw, server.url


def test_a_tenant_name_with_a_slash_is_reached_by_its_quoted_url_and_by_no_other(
    odd_names: tuple[Gateway, str]
) -> None:
    """The sandbox and the emulators build callback URLs with the tenant's name quoted
    (``org%2Fteam``): that URL reaches tenant ``org/team``; ``/org/team/one`` does not
    (it is tenant ``org``'s instance ``team``... which does not exist)."""
    gw, url = odd_names
    sent = {name: gw.tenant(name).send("08031234567", "x") for name in ("org/team", "org")}
    body = json.dumps([{"id": sent["org/team"].provider_message_id, "status": "delivered"}]).encode()
    headers = {"X-Echo-Signature": sign(body)}
    assert httpx.post(f"{url}/org/team/one", content=body, headers=headers).status_code == 404
    r = httpx.post(f"{url}/org%2Fteam/one", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["matched"] == 1, r.text
    assert gw.tenant("org/team").get(sent["org/team"].message_id).status is Status.DELIVERED
    assert gw.tenant("org").get(sent["org"].message_id).status is Status.SUBMITTED
    body = b"[]"
    assert httpx.post(f"{url}/a%20b/one", content=body, headers={"X-Echo-Signature": sign(body)}).status_code == 200


def test_names_in_the_url_cannot_forge_log_lines(
    odd_names: tuple[Gateway, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = odd_names
    caplog.set_level(logging.DEBUG, logger="smsgate")
    forged = "x%0A2026-01-01 ERROR smsgate: forged"
    httpx.post(f"{url}/{forged}/one", content=b"[" * 2_000_000)  # 413, logged before the route is known
    httpx.post(f"{url}/a%20b/one%0Aforged", content=b"[]")
    httpx.post(f"{url}/a%20b/one", content=b"[]", headers={"X-Echo-Signature": "bad"})  # 401, logged
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("smsgate")]
    assert lines and not any("\n" in line for line in lines), lines


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("items", [
    [{"id": "x\u0000", "status": "delivered"}],
    [{"id": "SENT", "status": "delivered"}, {"type": "inbound", "id": "i3", "from": "+2348031234567",
                                             "to": "AC\u0000ME", "text": "hi"}],
    [{"id": "SENT", "status": "delivered"}, {"type": "inbound", "id": "i\u0000", "from": "+2348031234567",
                                             "text": "hi"}],
], ids=["report id", "inbound to", "inbound id"])
def test_a_nul_character_in_a_signed_body_is_a_400_and_nothing_is_applied(
    store: str, items: list[dict[str, Any]], tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL keeps no NUL character: such a body was a 500 there (psycopg's error; the
    vendor retried it for ever) and stored on SQLite. Both refuse it now, applying nothing.
    (A NUL in an inbound message's text is kept as U+FFFD instead: tests/test_attack_10.py.)"""
    url = f"sqlite:///{tmp_path / 'nul.db'}" if store == "sqlite" else request.getfixturevalue("pg_url")
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        cfg = {"store": url, "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}
        with Gateway(cfg, plugins=pm) as gw, LiveServer(webhook_app(gw)) as server:
            sent = gw.tenant("acme").send("08031234567", "x")
            for item in items:
                if item.get("id") == "SENT":
                    item["id"] = sent.provider_message_id
            body = json.dumps(items).encode()
            r = httpx.post(f"{server.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
            assert r.status_code == 400, r.text
            assert "NUL" in r.json()["error"]
            assert gw.tenant("acme").get(sent.message_id).status is Status.SUBMITTED
            assert gw.tenant("acme").inbound() == [] and gw.tenant("acme").orphan_reports() == []


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_one_report_delivered_by_eight_threads_at_once_is_applied_once(
    store: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """A vendor retrying while its first attempt is still being applied (or an attacker
    replaying a captured request in parallel): each message gets one ``delivered`` event."""
    import threading

    url = f"sqlite:///{tmp_path / 'race.db'}" if store == "sqlite" else request.getfixturevalue("pg_url")
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        cfg = {"store": url, "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}
        with Gateway(cfg, plugins=pm) as gw, LiveServer(webhook_app(gw)) as server:
            sent = gw.tenant("acme").send_many([f"0803123{i:04d}" for i in range(20)], "x")
            body = json.dumps([{"id": s.provider_message_id, "status": "delivered"} for s in sent]).encode()
            barrier = threading.Barrier(8, timeout=60)  # a party that never came: an error, not a hang
            codes: list[int] = []

            def post() -> None:
                with httpx.Client() as client:
                    barrier.wait()
                    codes.append(client.post(f"{server.url}/acme/one", content=body,
                                             headers={"X-Echo-Signature": sign(body)}, timeout=30).status_code)

            threads = [threading.Thread(target=post) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert codes == [200] * 8
            for s in sent:
                record = gw.tenant("acme").get(s.message_id)
                assert record.status is Status.DELIVERED
                assert [e.status for e in record.history].count(Status.DELIVERED) == 1, record.history


def test_a_callback_url_with_a_trailing_slash_reaches_its_tenant(odd_names: tuple[Gateway, str]) -> None:
    _, url = odd_names
    for path in ("/org/one/", "/org%2Fteam/one/", "/a%20b/one/"):
        r = httpx.post(f"{url}{path}", content=b"[]", headers={"X-Echo-Signature": sign(b"[]")})
        assert r.status_code == 200, (path, r.text)
    for path in ("/org//one", "/org/one//", "/one/"):
        assert httpx.post(f"{url}{path}", content=b"[]", headers={"X-Echo-Signature": sign(b"[]")}).status_code == 404
