"""Attack round 17: inbound keywords, the webhook server over HTTP, templates and text, limits."""

from __future__ import annotations

import contextlib
import copy
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Gateway, Status
from smsgate import text as textmod
from smsgate.emulation import EmulatorControl
from smsgate.errors import ConfigError, OptedOut, RecipientSuppressed, TemplateError, ValidationError
from smsgate.keywords import keyword_scope
from smsgate.models import InboundMessage
from smsgate.phone import PhoneNormalizer
from smsgate.plugins import PluginManager
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app


@pytest.mark.parametrize("body", ["Привет {имя} :-}", "Bonjour {prénom}, -50% {", "{名前}さん }"])
def test_a_malformed_template_with_a_non_ascii_placeholder_is_not_sent_as_written(body: str) -> None:
    # the name is a placeholder to the template parser (str.isidentifier): the stray brace must be
    # reported, never the text sent to everyone with "{имя}" in it
    assert textmod.has_placeholders(body) is True
    with pytest.raises(TemplateError, match="unmatched"):
        textmod.render_template(body, {})


# --------------------------------------------------------------- opt-out scopes: one number, any form
@pytest.fixture
def echo_gateway() -> Iterator[Callable[..., Gateway]]:
    """A gateway factory: tenant ``acme`` (region NG) with an echo provider on a loopback emulator."""
    with LiveServer(create_emulator()) as emu, contextlib.ExitStack() as stack:
        def make(**tenant: Any) -> Gateway:
            pm = PluginManager(load_entry_points=False)
            pm.register(EchoPlugin())
            prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
            cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov},
                                                              **tenant}}}
            return stack.enter_context(Gateway(cfg, plugins=pm))
        yield make


def test_an_optout_scoped_to_the_senders_number_in_national_form_stops_that_sender(
    echo_gateway: Callable[..., Gateway]
) -> None:
    # 08020000000 and +2348020000000 are one number in Nigeria (the keyword path knows it): an
    # opt-out of that sender given in either form must stop messages from it
    acme = echo_gateway(sender="+2348020000000").tenant("acme")
    acme.optouts.add("08031234567", scope="08020000000")
    assert acme.optouts.check("08031234567", sender="+2348020000000")
    with pytest.raises(OptedOut):
        acme.send("08031234567", "hello")
    assert acme.optouts.remove("08031234567", scope="+234 802 000 0000")
    assert acme.send("08031234567", "hello").status is Status.SUBMITTED


def test_a_sender_given_per_message_in_another_form_is_the_sender_its_optout_names(
    echo_gateway: Callable[..., Gateway]
) -> None:
    acme = echo_gateway(sender="08020000000").tenant("acme")
    acme.optouts.add("08031234567", scope="08020000000")
    with pytest.raises(OptedOut):
        acme.send("08031234567", "hello", sender="+2348020000000")
    with pytest.raises(OptedOut):
        acme.send("08031234567", "hello")
    assert acme.send("08031234568", "hello", sender="+2348020000000").status is Status.SUBMITTED


# --------------------------------------------------------------- limits: a window no clock can date
@pytest.mark.parametrize("limit", [{"rate": 0.5, "per": 1e308},      # 2e308 s: infinite
                                   {"rate": 1e-320},                  # one every 1e320 s
                                   {"rate": 1, "per": 1e300},         # Redis: "value is not an integer or out of range"
                                   {"rate": 1e-3, "per": "day"}])     # one every 1,000 days
def test_a_limit_whose_window_is_beyond_a_year_is_a_config_error(echo_gateway: Callable[..., Gateway],
                                                                  limit: dict[str, Any]) -> None:
    # before: accepted, then every second send raised a bare OverflowError (cannot convert float
    # infinity to integer; timestamp out of range) or, on Redis, a StoreError blaming the Redis
    with pytest.raises(ConfigError, match="limits") as err:
        echo_gateway(limits=[limit])
    assert "366 days" in str(err.value)


def test_a_limit_of_one_a_year_still_loads(echo_gateway: Callable[..., Gateway]) -> None:
    echo_gateway(limits=[{"rate": 1, "per": 366 * 86400}, {"rate": 12, "per": 366 * 86400}])


def test_the_rate_limit_shorthand_is_checked_as_its_limit_when_loaded(echo_gateway: Callable[..., Gateway]) -> None:
    with pytest.raises(ConfigError, match=r"providers\.one\.rate_limit: .*366 days"):
        echo_gateway(providers={"one": {"plugin": "echo", "base_url": "http://127.0.0.1:9",
                                        "credentials": {"api_key": API_KEY}, "rate_limit": 1e-9}})


def test_a_campaign_from_a_sender_written_in_another_form_skips_the_numbers_opted_out_of_it(
    echo_gateway: Callable[..., Gateway]
) -> None:
    acme = echo_gateway(sender="08020000000").tenant("acme")
    acme.optouts.add("08031234567", scope="08020000000")
    camp = acme.campaigns.create("promo", audience=["08031234567", "08031234568"], text="hello",
                                 sender="+2348020000000")
    assert camp.preview().skipped == {"opted_out": 1}


def test_a_vendor_suppression_of_a_number_sender_is_checked_under_the_same_key(tmp_path: Path) -> None:
    # the suppression is stored under the sender the message went out with, and the next send from
    # that sender is refused locally, whatever form the number is in (one key rule, both ways)
    from smsgate_generic_http import GenericHttpProvider
    from smsgate_generic_http.emulator import SANDBOX_CREDENTIALS, SANDBOX_OPTIONS, create_app

    blocked = "+2348031230001"
    opts = copy.deepcopy(SANDBOX_OPTIONS)
    opts["response"].update({"error_code_path": "error.code", "opted_out_codes": ["BLACKLISTED"]})
    with LiveServer(create_app(opts, delivery_delay=0.0, suppressed=[blocked])) as vendor:
        pm = PluginManager(load_entry_points=False)
        pm.add_provider(GenericHttpProvider)
        prov = {"plugin": "generic_http", "base_url": vendor.url, "credentials": dict(SANDBOX_CREDENTIALS),
                "options": opts}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"v": prov}}}}
        with Gateway(cfg, plugins=pm) as gw:
            acme = gw.tenant("acme")
            with pytest.raises(RecipientSuppressed):
                acme.send(blocked, "hello", sender="8020000000")
            for sender in ("8020000000", "08020000000", "+2348020000000"):
                with pytest.raises(OptedOut):
                    acme.send(blocked, "again", sender=sender)
            assert acme.optouts.check(blocked, sender="08020000000")


def test_a_reply_scope_naming_the_senders_number_in_national_form_stops_that_sender() -> None:
    # replies to short code 12345 concern the sender configured as +2348020000000, written in
    # reply_scopes as the brand's staff write it: a STOP to 12345 must stop that sender
    normalize = PhoneNormalizer("NG").normalize
    scope = keyword_scope(True, {"12345": "08020000000"}, "12345", normalize, ["+2348020000000"])
    assert scope == keyword_scope(True, {}, "+2348020000000", normalize, ["+2348020000000"]) == "2348020000000"


# --------------------------------------------------------------- auto-replies that loop
@pytest.mark.parametrize("reply", ["HELP", "Info.", "STOP", "start!"])
def test_a_help_reply_that_is_itself_a_keyword_is_a_config_error(echo_gateway: Callable[..., Gateway],
                                                                reply: str) -> None:
    # texted to a number answering keywords (another tenant, another gateway, our own number), a
    # help reply "HELP" is answered with one, and so on, at the tenant's cost, for ever
    with pytest.raises(ConfigError, match=r"help_reply .* is itself a keyword"):
        echo_gateway(inbound={"help_reply": reply})


def test_a_help_word_from_one_of_the_tenants_own_numbers_gets_no_reply(echo_gateway: Callable[..., Gateway]) -> None:
    # the tenant texting itself: its reply would come back to it as a reply
    acme = echo_gateway(sender="+2348020000000", inbound={"help_reply": "Acme: reply STOP to opt out"}).tenant("acme")
    (own,) = acme.ingest_inbound("one", [InboundMessage(vendor_id="v1", from_number="08020000000",
                                                        to="+2348020000000", text="HELP")])
    assert own.action == "help"
    assert acme.messages() == []
    acme.ingest_inbound("one", [InboundMessage(vendor_id="v2", from_number="08031234567", text="HELP")])
    assert [m.to for m in acme.messages()] == ["+2348031234567"]


# --------------------------------------------------------------- the webhook app over HTTP
class _Seen(logging.Handler):
    """Keeps the records it is given; ``event`` set at the first one that ``wanted`` accepts."""

    def __init__(self, wanted: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.wanted = wanted
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.wanted(record):
            self.event.set()


def test_a_client_leaving_mid_body_is_no_error_with_a_traceback(echo_gateway: Callable[..., Gateway],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    # a vendor timing out, a network drop, anyone with a socket: before, uvicorn logged
    # "Exception in ASGI application" with Starlette's ClientDisconnect traceback at ERROR each time
    gw = echo_gateway()
    caplog.set_level(logging.INFO, logger="smsgate.webhooks")
    seen = _Seen(lambda r: (r.name == "uvicorn.error" and r.levelno >= logging.ERROR)
                 or (r.name == "smsgate.webhooks" and "disconnected" in r.getMessage()))
    loggers = [logging.getLogger("uvicorn.error"), logging.getLogger("smsgate.webhooks")]
    with LiveServer(webhook_app(gw)) as server:
        for logger in loggers:
            logger.addHandler(seen)
        try:
            with socket.create_connection((server.host, server.port)) as sock:
                sock.sendall(b"POST /acme/one HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[{\"id\": ")
            assert seen.event.wait(10), [r.getMessage() for r in seen.records]
        finally:
            for logger in loggers:
                logger.removeHandler(seen)
    assert [r.levelname for r in seen.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert gw.tenant("acme").messages() == []


def test_a_native_campaign_hands_over_no_one_opted_out_of_its_number_sender_in_another_form() -> None:
    pytest.importorskip("smsgate_campaigns_api")
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    prov = {"plugin": "campaigns_api", "credentials": {"api_key": SANDBOX_API_KEY}, "sender": "+447912345600"}
    a, b = "+447912345601", "+447912345602"
    with LiveServer(create_app(delivery_delay=0.05, campaign_delay=0.05)) as server:
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "GB",
                                                          "providers": {"dm": {**prov, "base_url": server.url}}}}}
        with Gateway(cfg) as gw:
            acme = gw.tenant("acme")
            camp = acme.campaigns.create("promo", text="Hi", audience=[a, b], provider="dm", mode="native",
                                         sender="07912345600")
            acme.optouts.add(a, scope="+447912345600")  # after preparation: the handover must leave it out
            done = camp.run()
            assert (done.sent, done.skipped_by_reason) == (1, {"opted_out": 1})
        bodies = " ".join(r.body for r in EmulatorControl(server.url).requests() if r.method == "POST")
    assert "7912345601" not in bodies and "7912345602" in bodies


@pytest.mark.parametrize("window", [1e-300, 1e-12, 0.5])
def test_a_help_reply_window_under_a_second_is_a_config_error(echo_gateway: Callable[..., Gateway],
                                                              window: float) -> None:
    # before: 1e-300 loaded, then every help word raised OverflowError (its window's number is
    # infinite): a webhook answered 500 for ever, the callback's other replies (a STOP) unapplied;
    # a window of a fraction of a second caps nothing
    with pytest.raises(ConfigError, match="help_reply_window"):
        echo_gateway(inbound={"help_reply": "Acme: reply STOP to opt out", "help_reply_window": window})


@pytest.mark.parametrize("lease", [float("inf"), 1e300, 86400.5])
def test_a_campaign_lease_no_clock_can_date_is_refused_when_created(echo_gateway: Callable[..., Gateway],
                                                                    lease: float) -> None:
    # before: created, then every run() raised OverflowError (utcnow() + timedelta(seconds=inf)):
    # a campaign that could never run
    acme = echo_gateway().tenant("acme")
    with pytest.raises(ValidationError) as refused:
        acme.campaigns.create("promo", audience=["08031234567"], text="hi", lease_seconds=lease)
    assert refused.value.field == "lease_seconds"
    assert acme.campaigns.list() == []
