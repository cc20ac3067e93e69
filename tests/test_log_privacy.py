"""Our own INFO/WARNING log lines never carry a recipient's whole number (personal data).

An error naming a number (``OptedOut``, ``InvalidPhoneNumber``, a ``ValidationError`` on a
phone field) keeps it in ``str(exc)`` for the caller; a log line at INFO or WARNING shows it
masked (:func:`smsgate.errors.mask_phone`). Each test runs a main path over loopback HTTP
against the reference emulator and reads every record the ``smsgate`` loggers wrote.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from smsgate import Gateway
from smsgate.errors import ConfigError, NoCapableProvider, OptedOut, SmsgateError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.webhooks import webhook_app

NUMBER = "+2348031234567"
OTHER = "+2348031234568"


@pytest.fixture()
def emu() -> Iterator[LiveServer]:
    with LiveServer(create_emulator()) as server:
        yield server


def gateway(url: str, **inbound: Any) -> Gateway:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}}
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return Gateway({"store": "memory://", "tenants": {"acme": {
        "default_region": "NG", "sender": "ACME", "providers": {"one": prov},
        "inbound": {"help_reply": "Acme: reply STOP to stop", "help_reply_limit": 5, **inbound}}}}, plugins=pm)


def leaks(caplog: pytest.LogCaptureFixture, *numbers: str) -> list[str]:
    """The INFO/WARNING lines (of smsgate's loggers) naming one of ``numbers`` whole, with or
    without its ``+``."""
    forms = {f for n in numbers for f in (n, n.lstrip("+"))}
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records
            if r.name.startswith("smsgate") and logging.INFO <= r.levelno <= logging.WARNING
            and any(f in r.getMessage() for f in forms)]


def post(url: str, items: list[dict[str, Any]]) -> None:
    body = json.dumps(items).encode()
    r = httpx.post(url, content=body, headers={"X-Echo-Signature": sign(body)})
    assert r.status_code == 200, r.text


def test_inbound_stop_then_help_from_the_opted_out_number(emu: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="smsgate")
    with gateway(emu.url, optout_scope="sender", start_reply="Acme: welcome back") as gw, \
            LiveServer(webhook_app(gw)) as hooks:
        url = f"{hooks.url}/acme/one"
        post(url, [{"type": "inbound", "id": "s1", "from": NUMBER, "to": "ACME", "text": "STOP"}])
        assert gw.tenant("acme").optouts.check(NUMBER, sender="ACME")
        # its help reply is sent all the same (CTIA: HELP is answered after STOP)
        post(url, [{"type": "inbound", "id": "h1", "from": NUMBER, "to": "ACME", "text": "HELP"}])
        # a START to another sender lifts nothing: its confirmation (from ACME) is refused for the
        # opt-out (logged at INFO: masked)
        post(url, [{"type": "inbound", "id": "s2", "from": NUMBER, "to": "PROMO", "text": "START"}])
    said = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert said and "+234*******567" in said[0], said
    assert [r.json()["text"] for r in EmulatorControl(emu.url).requests("/messages", "POST")] == [
        "Acme: reply STOP to stop"]  # the help reply only
    assert leaks(caplog, NUMBER) == []


def test_a_send_refused_for_an_opt_out(emu: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="smsgate")
    with gateway(emu.url) as gw:
        t = gw.tenant("acme")
        t.optouts.add(NUMBER)
        with pytest.raises(OptedOut) as info:
            t.send(NUMBER, "hello")
        assert NUMBER in str(info.value)  # the caller's error keeps it
        results = t.send_many([NUMBER, OTHER], "hi")
        assert [r.status.value for r in results] == ["rejected", "submitted"]
    assert leaks(caplog, NUMBER, OTHER) == []


def test_campaign_rows_skipped_or_refused(emu: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="smsgate")
    with gateway(emu.url) as gw:
        t = gw.tenant("acme")
        t.optouts.add(NUMBER)
        camp = t.campaigns.create("c", text="hi", audience=[NUMBER, OTHER, "12345"])
        camp.run()
        late = "+2348031234569"
        again = t.campaigns.create("d", text="hi", audience=[late])
        t.optouts.add(late)  # opted out after preparation: refused when dispatched
        again.run()
        assert [m.status.value for m in t.messages(to=late)] == ["rejected"]
    assert leaks(caplog, NUMBER, OTHER, late) == []


def test_routing_errors_name_the_number_masked_in_a_logged_traceback(
        emu: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """``NoCapableProvider`` (no provider of the route carries the number) and the
    ``ConfigError`` of a number no route matches are configuration errors: an application (or
    Celery's worker) logs them at ERROR with their traceback, whose last line is ``str(exc)``.
    That text names the number masked; ``NoCapableProvider.phone`` keeps it whole for the caller."""
    prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}
    squad = {"plugin": "squad", "sender": "ACME", "credentials": {"secret_key": "sandbox_sk_x"}}
    uk, za = "+447912345678", "+27821234567"
    pm = PluginManager(load_entry_points=True)
    pm.register(EchoPlugin())
    cfg = {"store": "memory://", "tenants": {"acme": {
        "default_region": "NG", "providers": {"one": prov, "squad": squad},
        "routes": [{"prefixes": ["+44"], "providers": ["squad"]}, {"prefixes": ["+234"], "providers": ["one"]}]}}}
    log = logging.getLogger("smsgate.test")
    with Gateway(cfg, plugins=pm) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(NoCapableProvider) as nowhere:
            acme.send(uk, "hi")
        with pytest.raises(ConfigError) as no_route:
            acme.send(za, "hi")
    assert nowhere.value.phone == uk
    for exc in (nowhere.value, no_route.value):
        try:
            raise exc
        except SmsgateError:
            log.exception("the send failed")
    logged = "\n".join(r.getMessage() + "\n" + (r.exc_text or "") for r in caplog.records)
    assert "+447******678" in logged and "+278*****567" in logged, logged
    assert uk not in logged and za not in logged and uk[1:] not in logged and za[1:] not in logged, logged
