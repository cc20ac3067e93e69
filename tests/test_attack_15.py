"""Attack round 15: hostile vendors and webhook callers, careless tenants (tenant isolation,
report ingestion, secrets), on SQLite and PostgreSQL, through the webhook app over loopback
HTTP and the vendors' emulators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from services import pg_url  # noqa: F401  (fixture)
from smsgate import Gateway, Status
from smsgate.errors import NotFound, OptedOut
from smsgate.store import Store
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app
from test_optout_scope import X, config, emu, plugins, post, reply, store  # noqa: F401  (fixtures)
from test_tenant_attacks import store_url  # noqa: F401  (the fixture: SQLite and PostgreSQL stores)


@pytest.fixture
def squad() -> Iterator[str]:
    """Squad's emulator (reports held back an hour: only the webhook below delivers)."""
    from smsgate_squad.emulator import create_app

    with LiveServer(create_app(delivery_delay=3600)) as server:
        yield server.url


def squad_config(url: str, database: str) -> dict[str, Any]:
    from smsgate_squad.emulator import SANDBOX_SECRET_KEY

    prov = {"plugin": "squad", "base_url": url, "credentials": {"secret_key": SANDBOX_SECRET_KEY}, "sender": "ACME"}
    return {"store": database, "tenants": {"acme": {"default_region": "NG", "providers": {"sq": prov}}}}


def squad_report(pmid: str, status: str, when: str, **fields: Any) -> tuple[bytes, dict[str, str]]:
    from smsgate_squad.auth import sign_body
    from smsgate_squad.emulator import SANDBOX_SECRET_KEY

    body = json.dumps({"Event": "sms", "TransactionRef": pmid,
                       "Body": {"status": status, "transaction_id": pmid, "dlr_timestamp": when, **fields}}).encode()
    return body, {"x-squad-encrypted-body": sign_body(SANDBOX_SECRET_KEY, body)}


@pytest.mark.parametrize("when", [
    "9999-12-31T23:59:59Z",  # a hostile (or broken) vendor's clock
    # a clock a year ahead (a stable id: pytest-xdist's workers must collect the same names)
    pytest.param((datetime.now(timezone.utc) + timedelta(days=400)).isoformat(), id="a-year-ahead"),
])
def test_a_report_dated_in_the_future_does_not_keep_its_message_from_retention(
    store_url: str, squad: str, when: str  # noqa: F811  (the fixture)
) -> None:
    """A signed delivery report dated in the future made the message's ``updated_at`` (and
    ``delivered_at``) that date: ``purge`` deletes final messages by ``updated_at``, so the
    message (number and text: personal data) was kept past every retention period, for ever
    with year 9999. A report is at most as new as the moment it is read."""
    before = datetime.now(timezone.utc)
    with Gateway(squad_config(squad, store_url)) as gw, LiveServer(webhook_app(gw)) as hooks:
        acme = gw.tenant("acme")
        sent = acme.send("08031234567", "your code is 123456")
        assert sent.provider_message_id
        body, headers = squad_report(sent.provider_message_id, "delivered", when)
        r = httpx.post(f"{hooks.url}/acme/sq", content=body, headers=headers)
        assert r.status_code == 200 and r.json()["matched"] == 1, r.text
        record = acme.get(sent.message_id)
        assert record.status is Status.DELIVERED
        after = datetime.now(timezone.utc)
        purged = acme.purge(older_than=timedelta(0))
        assert purged.messages == 1
        with pytest.raises(NotFound):
            acme.get(sent.message_id)
    assert record.delivered_at is not None and before <= record.delivered_at <= after
    assert record.updated_at <= after


def test_an_inbound_reply_dated_in_the_future_is_purged_with_the_others(store_url: str) -> None:  # noqa: F811  (the fixture)
    """An inbound reply dated in the future (here Colony's collate model posted with the relay
    token, ``date_received`` in year 9999) was stored at that date: ``purge`` deletes inbound
    messages by ``received_at``, so the reply (a number and its text: personal data) was kept
    past every retention period, for ever. A reply is at most as new as the moment it is read."""
    from smsgate.config import Settings, TenantConfig
    from smsgate.testing.sandbox import start_emulator

    colony = start_emulator("colony")
    try:
        creds = {**colony._credentials, "webhook_token": "relay-token"}
        settings = Settings(store=store_url, tenants={"acme": TenantConfig(
            default_region="NG", providers={"co": colony.provider_settings(credentials=creds)})})
        with Gateway(settings) as gw, LiveServer(webhook_app(gw)) as hooks:
            body = json.dumps([{"id": 41, "originator": "+2348031234567", "text": "call me at home",
                                "date_received": "9999-12-31T23:59:59Z"}]).encode()
            r = httpx.post(f"{hooks.url}/acme/co?token=relay-token", content=body)
            assert r.status_code == 200 and r.json()["inbound"] == 1, r.text
            acme = gw.tenant("acme")
            (stored,) = acme.inbound()
            assert acme.purge(older_than=timedelta(0)).inbound == 1
            assert acme.inbound() == []
            assert stored.received_at <= datetime.now(timezone.utc)
    finally:
        colony.stop()


def test_a_vendor_echoing_the_basic_authorization_header_shows_no_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A (hostile or chatty) vendor answering 401 with the request's own ``Authorization: Basic
    <base64 of user:password>`` in its error text: the error, its ``args`` and the log lines
    showed the base64 pair, which is the password (``redact`` knew ``Bearer`` only)."""
    import base64
    import logging

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from smsgate.errors import SmsgateError

    async def send(request: Request) -> JSONResponse:
        echoed = request.headers.get("authorization", "")
        return JSONResponse({"err": f"bad credentials (Authorization: {echoed})"}, status_code=401)

    vendor = Starlette(routes=[Route("/send", send, methods=["POST"])])
    password = "correct horse"
    pair = base64.b64encode(f"acme:{password}".encode()).decode()
    options = {"basic_auth": {"username": "{secret.user}", "password": "{secret.password}"},
               "request": {"url": "/send", "json": {"to": "{to}", "text": "{text}"}},
               "response": {"id_path": "id", "error_path": "err"}}
    with LiveServer(vendor) as server:
        prov = {"plugin": "generic_http", "base_url": server.url, "sender": "ACME", "options": options,
                "credentials": {"user": "acme", "password": password}}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"gh": prov}}}}
        caplog.set_level(logging.INFO)
        with Gateway(cfg) as gw:
            try:
                result = gw.tenant("acme").send("08031234567", "hi")
                shown = [str(result.error)]
            except SmsgateError as exc:
                shown = [str(exc), repr(exc.args)]
    shown.append(caplog.text)
    assert "bad credentials" in shown[0]
    for text in shown:
        assert pair not in text and password not in text, text


def test_a_late_or_replayed_report_changes_nothing_of_a_message_it_cannot_move(store_url: str, squad: str) -> None:  # noqa: F811  (the fixture)
    """Squad signs the body only, so a captured callback verifies for ever, and vendors retry
    callbacks out of order. A report older than the message's status (``sent`` after
    ``delivered``), or one the final status refuses (``failed`` after ``delivered``), moved no
    status, but its other fields were written all the same: the delivered message's cost went
    back to the ``sent`` report's estimate and it carried the ``failed`` report's error."""
    from decimal import Decimal

    now = datetime.now(timezone.utc).isoformat()
    with Gateway(squad_config(squad, store_url)) as gw, LiveServer(webhook_app(gw)) as hooks:
        acme = gw.tenant("acme")
        sent = acme.send("08031234567", "hi")
        assert sent.provider_message_id
        pmid = sent.provider_message_id
        stale = squad_report(pmid, "sent", now, charge="4.00", pages=3)
        for body, headers in [stale, squad_report(pmid, "delivered", now, charge="2.00", pages=1),
                              stale, squad_report(pmid, "failed", now, charge="9.00", pages=5)]:
            r = httpx.post(f"{hooks.url}/acme/sq", content=body, headers=headers)
            assert r.status_code == 200 and r.json()["matched"] == 1, r.text
        record = acme.get(sent.message_id)
    assert record.status is Status.DELIVERED
    assert (record.cost, record.segments, record.error) == (Decimal("2.00"), 1, None)


@pytest.mark.parametrize("written", ["\uff11\uff12\uff13\uff14\uff15", "\uff0b\uff11 \uff12\uff13\uff14\uff15"])
def test_a_stop_to_a_short_code_written_in_fullwidth_digits_stops_its_sender(
    emu: LiveServer, store: Store, written: str  # noqa: F811  (the fixtures)
) -> None:
    """Per-sender keyword scope: a STOP whose ``to`` is the short code ``12345`` written in
    fullwidth digits (as a phone in a CJK input mode types them, and a vendor passes them on)
    was keyed as that text (U+FF11...), which no sender ID matches: the number stayed opted
    in to the short code it had just told to stop. Scopes are compared in NFKC form."""
    inbound = {"optout_scope": "sender"}
    with Gateway(config(emu.url, inbound=inbound, sender="12345"), store=store, plugins=plugins()) as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        acme = gw.tenant("acme")
        post(f"{hooks.url}/acme/one", [reply("w1", "STOP", X, written)])
        assert [(o.phone, o.scope) for o in acme.optouts.list()] == [(X, "12345")]
        with pytest.raises(OptedOut):
            acme.send(X, "from the short code")
        acme.optouts.remove(X, scope="\uff11\uff12\uff13\uff14\uff15")  # a tenant's own input alike
        assert acme.optouts.list() == []


@pytest.mark.parametrize("written", ["\uff0b\uff12\uff13\uff14\uff18\uff10\uff13\uff11\uff12\uff13\uff10\uff10\uff10\uff11",
                                     "\u200e+2348031230001\u200e"])
def test_a_stop_from_a_number_in_fullwidth_digits_or_with_direction_marks_opts_it_out(
    emu: LiveServer, store: Store, written: str  # noqa: F811  (the fixtures)
) -> None:
    """A STOP whose ``from`` is the number in fullwidth digits, or wrapped in left-to-right
    marks (as phones in right-to-left locales show numbers), was stored as given and its
    keyword not acted on (a WARNING "from an unreadable number"): the number kept getting
    texts after it said STOP. It is read in NFKC form without format characters."""
    with Gateway(config(emu.url), store=store, plugins=plugins()) as gw, LiveServer(webhook_app(gw)) as hooks:
        post(f"{hooks.url}/acme/one", [reply("f1", "STOP", written, None)])
        assert gw.tenant("acme").optouts.check(X)


def test_a_generic_http_send_url_cannot_carry_the_message_text(caplog: pytest.LogCaptureFixture) -> None:
    """``request.url = "/send/{to}/{text}"`` was accepted: httpx logs every request's URL at INFO
    (smsgate's filter drops its query string only), so each message's whole text (a one-time
    code) was in the logs, and in smsgate's own error texts, which name the request's path. The
    text goes in ``query``, ``json`` or ``form``; the configuration is refused at load."""
    from smsgate.errors import ConfigError

    options = {"request": {"url": "/send/{to}/{text}"}, "response": {"id_path": "id"}}
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"gh": {
        "plugin": "generic_http", "base_url": "http://127.0.0.1:9", "sender": "ACME", "options": options}}}}}
    with Gateway(cfg) as gw, pytest.raises(ConfigError, match=r"request\.url: the message text"):
        gw.tenant("acme").send("08031234567", "your code is 123456")


def test_a_report_dated_before_its_message_was_sent_adds_no_negative_time_to_the_stats() -> None:
    """A vendor's clock behind ours dates a delivery before the message was sent (or even made):
    the message's delivery time was negative, and one such message pulled a tenant's average
    delivery time below what any message took (below zero with few messages). Each time counts
    as at least 0."""
    from smsgate.stats import compute
    from smsgate.store.base import MessageTimes

    made = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
    times = [MessageTimes(Status.DELIVERED, "sq", made, made + timedelta(seconds=2), made + timedelta(seconds=12),
                          1, None),
             MessageTimes(Status.DELIVERED, "sq", made, made - timedelta(minutes=5), made - timedelta(hours=1), 1, None)]
    stats = compute(times)
    assert (stats.avg_queue_seconds, stats.avg_delivery_seconds) == (1.0, 5.0)
