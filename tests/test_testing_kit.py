"""The testing kit for apps (docs/testing.md): the memory and console providers, the outbox and
its assertions, the pytest fixtures as an app's test suite uses them, and the http_client= recipe."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from smsgate import Gateway
from smsgate.config import Settings, TenantConfig
from smsgate.errors import ConfigError, RequestRejected
from smsgate.models import Status
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing import Outbox, SentMessage, outbox
from smsgate.testing.conformance import ProviderConformance
from smsgate.testing.console import ConsoleProvider
from smsgate.testing.memory import MemoryProvider

pytest_plugins = ["pytester"]

NUMBER = "+2348012345678"


# ----------------------------------------------------------------- conformance
class TestMemoryConformance(ProviderConformance):
    provider_class = MemoryProvider
    uses_http = False

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        return ProviderSettings(plugin="memory")

    def vendor_record(self) -> list[Any]:
        return outbox.messages(tenant="conformance")

    def reset_vendor(self) -> None:
        outbox.clear()


class TestConsoleConformance(ProviderConformance):
    provider_class = ConsoleProvider
    uses_http = False
    printed: list[logging.LogRecord] = []

    @pytest.fixture(autouse=True)
    def _capture(self) -> Iterator[None]:
        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                TestConsoleConformance.printed.append(record)

        logger = logging.getLogger("smsgate.console")
        handler, level = Keep(), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        yield
        logger.removeHandler(handler)
        logger.setLevel(level)

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        return ProviderSettings(plugin="console", options={"output": "log"})

    def vendor_record(self) -> list[Any]:
        return list(self.printed)

    def reset_vendor(self) -> None:
        self.printed.clear()


# ----------------------------------------------------------------- memory provider
def gateway(*tenants: str, **options: Any) -> Gateway:
    plugins = PluginManager(load_entry_points=False)
    plugins.add_provider(MemoryProvider)
    prov = ProviderSettings(plugin="memory", options=options)
    return Gateway(Settings(store="memory://", tenants={t: TenantConfig(default_region="NG", providers={"m": prov})
                                                        for t in tenants or ("acme",)}),
                   store=MemoryStore(), plugins=plugins)


@pytest.fixture(autouse=True)
def _empty_outbox() -> Iterator[None]:
    outbox.clear()
    yield
    outbox.clear()


def test_memory_files_messages_per_tenant() -> None:
    with gateway("acme", "globex") as gw:
        first = gw.tenant("acme").send("08012345678", "hello acme", sender="ACME")
        gw.tenant("globex").send(NUMBER, "hello globex")
    assert first.status == Status.SENT and first.provider == "m"
    (acme,) = outbox.messages(tenant="acme")
    assert (acme.to, acme.text, acme.sender, acme.instance, acme.message_id) == (
        NUMBER, "hello acme", "ACME", "m", first.message_id)
    assert [m.text for m in outbox.messages(tenant="globex")] == ["hello globex"]
    assert len(outbox) == 2


def test_memory_fails_numbers_matching_the_option_and_the_outbox_pattern() -> None:
    with gateway(fail_numbers=r"\+2348000000\d{3}") as gw:
        t = gw.tenant("acme")
        with pytest.raises(RequestRejected, match="configured to fail"):
            t.send("+2348000000012", "no")
        assert t.messages()[0].status == Status.FAILED
        outbox.fail_numbers(r"\+23480123456\d\d")
        results = t.send_many([NUMBER, "+2348099999999"], "some")
    assert [r.status for r in results] == [Status.FAILED, Status.SENT]
    assert [m.to for m in outbox] == ["+2348099999999"]
    outbox.clear()
    assert not outbox.refuses(NUMBER)


def test_memory_marks_delivered_or_failed_later_and_the_gateway_sees_it() -> None:
    with gateway() as gw:
        t = gw.tenant("acme")
        one, two = t.send(NUMBER, "one"), t.send(NUMBER, "two")
        assert t.status(one.message_id).status == Status.SENT
        outbox.mark_delivered(one.message_id)
        outbox.mark_failed(outbox.messages()[1], error_code="absent_subscriber")
        assert t.status(one.message_id).status == Status.DELIVERED
        record = t.status(two.message_id)
    assert record.status == Status.FAILED
    with pytest.raises(RequestRejected, match="no message 'nope'"):
        outbox.mark_delivered("nope")


def test_memory_deliver_option_delivers_at_once() -> None:
    with gateway(deliver=True) as gw:
        result = gw.tenant("acme").send(NUMBER, "now")
    assert result.status == Status.DELIVERED
    assert outbox[0].status == Status.DELIVERED


def test_memory_files_a_resent_message_once_and_finds_it_by_reference() -> None:
    from smsgate.models import OutboundMessage

    with gateway() as gw:
        t = gw.tenant("acme")
        prov = t.provider("m")
        msg = OutboundMessage(to=NUMBER, text="again", message_id="msg-1")
        first, second = t.run("m", prov.send(msg)), t.run("m", prov.send(msg))
        found = t.run("m", prov.find_by_reference("msg-1", NUMBER))
        missing = t.run("m", prov.find_by_reference("msg-2", NUMBER))
    assert first.provider_message_id == second.provider_message_id
    assert len(outbox) == 1 and found is not None and found.status == Status.SENT and missing is None


def test_memory_bad_pattern_is_a_config_error_naming_the_option() -> None:
    with gateway(fail_numbers="(") as gw, pytest.raises(ConfigError, match=r"options\.fail_numbers"):
        gw.tenant("acme").send(NUMBER, "x")


def test_outbox_is_thread_safe() -> None:
    def work(i: int) -> None:
        with gateway() as gw:
            t = gw.tenant("acme")
            for j in range(25):
                t.send(NUMBER, f"{i}-{j}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(m.text for m in outbox) == sorted(f"{i}-{j}" for i in range(6) for j in range(25))


def test_built_in_plugins_load_by_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSGATE_PLUGINS", raising=False)
    found = PluginManager().providers()
    assert found["memory"] is MemoryProvider and found["console"] is ConsoleProvider
    # an app's own configuration, as it would be in smsgate.toml: no plugins argument
    config = {"store": "memory://", "tenants": {"shop": {"default_region": "NG", "providers": {
        "fake": {"plugin": "memory"}}}}}
    with Gateway(config, plugins=PluginManager()) as gw:
        result = gw.tenant("shop").send("08012345678", "from config")
    assert outbox.assert_sent(to=NUMBER, text="from config", tenant="shop")[0].message_id == result.message_id


def test_unknown_emulator_names_the_installed_ones() -> None:
    from smsgate.testing.sandbox import start_emulator

    with pytest.raises(ConfigError, match=r"no emulator 'nope' installed \(installed: .*squad"):
        start_emulator("nope")


# ----------------------------------------------------------------- console provider
def console_gateway(**options: Any) -> Gateway:
    plugins = PluginManager(load_entry_points=False)
    plugins.add_provider(ConsoleProvider)
    prov = ProviderSettings(plugin="console", options=options)
    return Gateway(Settings(store="memory://", tenants={"dev": TenantConfig(providers={"c": prov})}),
                   store=MemoryStore(), plugins=plugins)


def test_console_logs_recipient_and_length_not_the_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "smsgate.console")
    with console_gateway(output="log") as gw:
        result = gw.tenant("dev").send(NUMBER, "Your code is 990011")
    assert result.status == Status.SENT
    (line,) = [r.getMessage() for r in caplog.records if r.name == "smsgate.console"]
    assert NUMBER in line and "(19 characters)" in line
    assert "990011" not in caplog.text


def test_console_shows_the_text_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    with console_gateway(show_text=True) as gw:
        gw.tenant("dev").send(NUMBER, "Your code is 990011")
    err = capsys.readouterr().err
    assert "[smsgate console c]" in err and f"to {NUMBER}" in err and err.rstrip().endswith(": Your code is 990011")


# ----------------------------------------------------------------- assertions
def test_assert_sent_counts_and_matches_text_exactly_or_by_regex() -> None:
    box = Outbox()
    for i in range(3):
        box.add(SentMessage(to=NUMBER, text=f"Order {i} confirmed", tenant="acme"))
    assert len(box.assert_sent(to=NUMBER, text=re.compile(r"Order \d confirmed"), count=3)) == 3
    box.assert_sent(text="Order 1 confirmed", count=1)
    box.assert_not_sent(to="+2348099999999")
    with pytest.raises(AssertionError, match="expected 2 SMS to"):
        box.assert_sent(to=NUMBER, text=re.compile("Order"), count=2)
    with pytest.raises(AssertionError, match="expected no SMS at all, found 3"):
        box.assert_not_sent()


@pytest.mark.parametrize("to", ["08012345678", "2348012345678", "+234 801 234 5678", ""])
def test_a_number_not_in_e164_is_refused_not_silently_unmatched(to: str) -> None:
    """``assert_not_sent(to="0801...")`` passed although that number got a message: the outbox
    holds E.164 numbers, so a national one matched nothing (found by a new-user trial)."""
    box = Outbox()
    box.add(SentMessage(to="+2348012345678", text="Order 1 confirmed", tenant="acme"))
    for check in (box.assert_not_sent, box.assert_sent, box.messages):
        with pytest.raises(ValueError, match=r"E\.164.*\+2348012345678"):
            check(to=to)


def test_assert_sent_failure_lists_at_most_ten_messages() -> None:
    box = Outbox()
    for i in range(13):
        box.add(SentMessage(to=NUMBER, text=f"m{i}", tenant="acme", instance="memory"))
    with pytest.raises(AssertionError) as info:
        box.assert_sent(to="+2348011111111", text="hello")
    message = str(info.value)
    assert message.splitlines()[0] == "expected at least 1 SMS to +2348011111111 with text 'hello', found 0"
    assert "13 sent:" in message and f"1. to {NUMBER}: 'm0' (tenant acme, via memory, sent)" in message
    assert "10. to" in message and "m10" not in message and "... and 3 more" in message
    with pytest.raises(AssertionError, match="Nothing was sent"):
        Outbox().assert_sent(to=NUMBER)


# ----------------------------------------------------------------- http_client= recipe
def test_http_client_with_mock_transport() -> None:
    """The respx / pytest-httpx pattern with httpx's own MockTransport: no server, no emulator."""
    seen: list[httpx.Request] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        return httpx.Response(200, json={"success": True, "message": "Success", "data": {
            "batch_id": "b-1", "sent": [{"phone_number": n["phone_number"] if isinstance(n, dict) else n,
                                         "status": "sent", "transaction_id": "tx-1"}
                                        for n in body["messages"]], "errors": []}})

    settings = Settings(store="memory://", tenants={"acme": TenantConfig(providers={"squad": ProviderSettings(
        plugin="squad", base_url="https://squad.test", credentials={"secret_key": "sandbox_sk_x"},
        sender="ACME")})})
    client = httpx.Client(transport=httpx.MockTransport(vendor))
    with Gateway(settings, store=MemoryStore(), http_client=client) as gw:
        result = gw.tenant("acme").send(NUMBER, "mocked")
    assert result.ok and result.provider_message_id
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/sms/send/instant")]
    assert not client.is_closed  # the gateway does not close a client it was given
    client.close()


# ----------------------------------------------------------------- the fixtures, as an app uses them
APP = '''
def confirm_order(tenant, phone, order_id):
    """The app under test: one SMS per order."""
    return tenant.send(phone, f"Order {order_id} confirmed")
'''

APP_TESTS = '''
import pytest
from smsgate.testing import FaultRule
from shop import confirm_order


def test_order_sends_one_sms(sms_gateway, sms_outbox):
    confirm_order(sms_gateway.tenant("test"), "08012345678", 42)
    sms_outbox.assert_sent(to="+2348012345678", text="Order 42 confirmed", count=1)


def test_outbox_is_cleared_between_tests(sms_outbox):
    sms_outbox.assert_not_sent()


@pytest.fixture
def sms_region():
    return "NG"


@pytest.fixture(params=["memory", "emulator"])
def sms(request, sms_gateway, sms_outbox, sms_emulator):
    if request.param == "memory":
        return sms_gateway, sms_outbox
    emulator = sms_emulator("squad")
    return emulator.gateway(region="NG"), emulator


def test_same_test_on_memory_and_emulator(sms):
    gateway, sent = sms
    confirm_order(gateway.tenant("test"), "08012345678", 7)
    sent.assert_sent(to="+2348012345678", text="Order 7 confirmed", count=1)


def test_emulator_fault_injection(sms_emulator):
    squad = sms_emulator("squad")
    squad.add(FaultRule.error(503, retry_after=0, path="/sms/send/instant", count=1))
    assert len(squad.faults()) == 1
    # Squad does not document a 503 as "not processed"; an instance whose contract does says so
    confirm_order(squad.gateway(not_processed_statuses=[503]).tenant("test"), "+2348012345678", 8)
    squad.assert_sent(to="+2348012345678", count=1)
    assert [r.status for r in squad.requests("/sms/send/instant")] == [503, 200]
    assert len(squad.processed("/sms/send/instant")) == 1
    assert squad.faults() == []


def test_serve_app(serve_app):
    import httpx
    from smsgate.testing import emulator_app
    from starlette.applications import Starlette
    url = serve_app(emulator_app(Starlette()))
    assert httpx.get(url + "/_emulator/requests").status_code == 200


def test_wrong_text_fails_readably(sms_gateway, sms_outbox):
    for order in range(12):
        confirm_order(sms_gateway.tenant("test"), "+2348012345678", order)
    sms_outbox.assert_sent(to="+2348012345678", text="Order 99 confirmed")
'''


def test_fixtures_in_an_app_test_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGATE_PLUGINS", "")  # the fixtures load what they use, whatever it says
    pytester.makepyfile(shop=APP, test_shop=APP_TESTS)
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: expected at least 1 SMS to +2348012345678 with text 'Order 99 confirmed', found 0",
        "*12 sent:",
        "*1. to +2348012345678: 'Order 0 confirmed' (tenant test, via memory, sent)",
        "*... and 2 more",
    ])
