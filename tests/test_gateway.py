"""Gateway policy end to end over loopback HTTP with the reference provider."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bounded import reap
from reference_provider import API_KEY, EchoPlugin, EchoProvider, create_emulator, sign
from smsgate import (
    AsyncGateway,
    Attachment,
    ConfigError,
    Gateway,
    MessageSpec,
    OptedOut,
    Status,
    Template,
    UnknownOutcome,
    UnknownProvider,
    Unsupported,
    hookimpl,
)
from smsgate.errors import AuthFailed, InvalidPhoneNumber, NotFound, TransportError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    a, b = LiveServer(create_emulator()).start(), LiveServer(create_emulator()).start()
    yield a.url, b.url
    a.stop()
    b.stop()


@pytest.fixture
def ctl(urls: tuple[str, str]) -> tuple[EmulatorControl, EmulatorControl]:
    a, b = EmulatorControl(urls[0]), EmulatorControl(urls[1])
    a.reset()
    b.reset()
    return a, b


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def config(urls: tuple[str, str], **tenant_extra: Any) -> dict[str, Any]:
    prov = {"plugin": "echo", "credentials": {"api_key": API_KEY}, "sender": "ACME"}
    acme = {
        "default_region": "NG",
        "providers": {"one": {**prov, "base_url": urls[0]}, "two": {**prov, "base_url": urls[1]}},
        **tenant_extra,
    }
    globex = {"default_region": "ZA", "providers": {"one": {**prov, "base_url": urls[0]}}}
    return {"store": "memory://", "tenants": {"acme": acme, "globex": globex}}


def gateway(urls: tuple[str, str], **tenant_extra: Any) -> Gateway:
    return Gateway(config(urls, **tenant_extra), plugins=plugins())


def test_send_normalises_logs_and_tracks_status(urls: tuple[str, str], ctl: Any) -> None:
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        result = acme.send("0803 123 4567", "hello")
        assert result.to == "+2348031234567"
        assert result.status == Status.SUBMITTED and result.provider == "one"
        assert result.segments == 1
        sent = ctl[0].requests("/messages")[0].json()
        assert {k: sent[k] for k in ("to", "text", "from")} == {"to": "+2348031234567", "text": "hello", "from": "ACME"}
        assert sent["client_ref"] == result.message_id
        record = acme.status(result.message_id)
        assert record.status == Status.DELIVERED
        assert [e.status for e in record.history] == [Status.QUEUED, Status.SUBMITTED, Status.DELIVERED]
        assert record.delivered_at is not None
        # final: no further lookups
        n = len(ctl[0].requests())
        acme.status(result.message_id)
        assert len(ctl[0].requests()) == n


def test_invalid_number_is_typed_and_names_input(urls: tuple[str, str], ctl: Any) -> None:
    with gateway(urls) as gw, pytest.raises(InvalidPhoneNumber, match="12345"):
        gw.tenant("acme").send("12345", "hi")
    assert ctl[0].requests() == []


WRONG_TYPES = [  # (argument, value, what the error says after "field 'ARG': ")
    ("sender", 12345, "expected a string, got int"),
    ("sender", ["ACME"], "expected a string, got list"),
    ("text", 123, "expected a string, got int"),
    ("to", 8031234567, "expected a string, got int"),
    ("reference", 5, "expected a string, got int"),
    ("idempotency_key", 5, "expected a string, got int"),
    ("campaign_id", 5, "expected a string id, got int"),
    ("provider", 5, "expected the name of one of the tenant's provider instances, got int"),
    ("variables", 5, "expected a mapping of names to values, got int"),
    ("provider_options", 5, "expected a mapping, got int"),
    ("attachments", "photo.jpg", "expected a list of smsgate.Attachment, got str"),
    ("location", "Lagos", "Input should be a valid dictionary or instance of Location, got str"),
    ("template", "hi {name}", "expected a smsgate.Template, got str"),
]


@pytest.mark.parametrize(("arg", "value", "says"), WRONG_TYPES, ids=[f"{a}={v!r}" for a, v, _ in WRONG_TYPES])
def test_an_argument_of_the_wrong_type_is_a_typed_error_naming_it(
        urls: tuple[str, str], ctl: Any, arg: str, value: Any, says: str) -> None:
    """``send(to, text, sender=12345)`` raised pydantic's own ValidationError (``text=123`` a
    TypeError, ``variables=5`` an AttributeError): now smsgate's, naming the argument."""
    from smsgate.errors import ValidationError

    kwargs: dict[str, Any] = {"to": "08031234567", "text": "hi", arg: value}
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as raised:
            acme.send(**kwargs)
        assert raised.value.field == arg and str(raised.value) == f"field {arg!r}: {says}"
        assert raised.value.__cause__ is None and raised.value.__context__ is None  # no pydantic error chained
        assert acme.messages() == []  # nothing logged

        async def async_send() -> None:
            async with AsyncGateway(config(urls), plugins=plugins()) as agw:
                await agw.tenant("acme").send(**kwargs)

        with pytest.raises(ValidationError, match=f"field {arg!r}"):
            asyncio.run(async_send())
    assert ctl[0].requests() == [] and ctl[1].requests() == []


def test_opted_out_never_sent_through_any_api(urls: tuple[str, str], ctl: Any) -> None:
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        assert acme.optouts.add("08031234567", reason="STOP")
        assert not acme.optouts.add("+2348031234567")  # same number, already there
        assert acme.optouts.check("+2348031234567")
        with pytest.raises(OptedOut):
            acme.send("08031234567", "x")
        with pytest.raises(OptedOut):
            acme.send("08031234567", "x", provider="two")
        many = acme.send_many(["08031234567", "08031234561"], "y")
        assert [r.status for r in many] == [Status.REJECTED, Status.SUBMITTED]
        assert many[0].error_code == "opted_out"

        async def go() -> None:
            async with AsyncGateway(config(urls), plugins=plugins(), store=gw.store) as agw:
                t = agw.tenant("acme")
                with pytest.raises(OptedOut):
                    await t.send("08031234567", "z")
                res = await t.send_many(["08031234567"], "z")
                assert res[0].status == Status.REJECTED

        asyncio.run(go())
        counts = gw.store.count_by_status("acme")
        assert counts[Status.REJECTED] == 5
        assert acme.optouts.remove("08031234567")
        assert acme.send("08031234567", "welcome back").ok
    sent_to = [r.json()["to"] for r in ctl[0].requests("/messages", "POST") if r.path == "/messages"]
    bulk_to = [m["to"] for r in ctl[0].requests("/messages/bulk") for m in r.json()["messages"]]
    assert (sent_to + bulk_to).count("+2348031234567") == 1  # only after opting back in


def test_idempotency_key_never_sends_twice(urls: tuple[str, str], ctl: Any) -> None:
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        first = acme.send("08031234567", "once", idempotency_key="order-1")
        again = acme.send("08031234567", "once", idempotency_key="order-1")
        assert again.message_id == first.message_id
        many = acme.send_many(
            [
                MessageSpec(to="08031234567", text="once", idempotency_key="order-1"),
                MessageSpec(to="08031234562", text="b", idempotency_key="order-2"),
            ]
        )
        assert many[0].message_id == first.message_id
        # the same key in another tenant is a different key
        other = gw.tenant("globex").send("+27821234567", "hi", idempotency_key="order-1")
        assert other.message_id != first.message_id
    assert len(ctl[0].requests("/messages")) == 3


def test_a_key_repeated_in_one_send_many_gets_the_first_messages_final_result(
    urls: tuple[str, str], ctl: Any
) -> None:
    # both rows carry one key: one message leaves, and both rows report its answer (not a
    # stale "queued" snapshot taken when the second row's key was found bound)
    rows = [
        MessageSpec(to="08031234567", text="once", idempotency_key="dup-1"),
        MessageSpec(to="08031234567", text="once", idempotency_key="dup-1"),
        MessageSpec(to="08031234562", text="other", idempotency_key="dup-1"),
    ]
    with gateway(urls) as gw:
        many = gw.tenant("acme").send_many(rows)
    assert [r.status for r in many] == [Status.SUBMITTED] * 3
    assert len({r.message_id for r in many}) == 1

    async def run() -> list[Any]:
        async with AsyncGateway(config(urls), plugins=plugins()) as agw:
            return await agw.tenant("acme").send_many(
                [MessageSpec(to=r.to, text=r.text, idempotency_key="dup-2") for r in rows])

    amany = asyncio.run(run())
    assert [r.status for r in amany] == [Status.SUBMITTED] * 3
    assert len({r.message_id for r in amany}) == 1
    sent = [m["to"] for r in ctl[0].requests("/messages") for m in [r.json()]]
    bulk = [m["to"] for r in ctl[0].requests("/messages/bulk") for m in r.json()["messages"]]
    assert len(sent + bulk) == 2


def test_tenants_are_isolated(urls: tuple[str, str], ctl: Any) -> None:
    with gateway(urls) as gw:
        acme, globex = gw.tenant("acme"), gw.tenant("globex")
        r = acme.send("08031234567", "secret plans")
        acme.optouts.add("+27821234567")
        with pytest.raises(NotFound):
            globex.get(r.message_id)
        with pytest.raises(NotFound):
            globex.status(r.message_id)
        assert globex.messages() == []
        assert globex.optouts.list() == [] and not globex.optouts.check("+27821234567")
        assert globex.send("+27821234567", "not opted out here").ok
        assert len(acme.messages()) == 1 and len(globex.messages()) == 1
        assert not globex.optouts.remove("+27821234567")
        assert acme.optouts.check("+27821234567")


def test_log_records_the_sender_each_message_went_out_with(urls: tuple[str, str], ctl: Any) -> None:
    cfg = config(urls)
    cfg["tenants"]["acme"]["providers"]["two"]["sender"] = "TWO"
    with Gateway(cfg, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        default = acme.send("08031234567", "provider default")
        chosen = acme.send("08031234568", "caller's", sender="PROMO")
        bulk = acme.send_many(["08031234561", "08031234562"], "bulk")
        assert gw.store.get_message("acme", default.message_id).sender == "ACME"
        assert gw.store.get_message("acme", chosen.message_id).sender == "PROMO"
        assert {gw.store.get_message("acme", r.message_id).sender for r in bulk} == {"ACME"}
        posted = [r.json() for r in ctl[0].requests("/messages", method="POST")]
        sent = {m["from"] for body in posted for m in body.get("messages", [body])}  # single and bulk
        assert sent == {"ACME", "PROMO"}  # what the log says is what went out
    cfg["tenants"]["acme"]["providers"]["one"]["base_url"] = f"http://127.0.0.1:{closed_port()}"
    cfg["tenants"]["acme"]["providers"]["one"]["max_retries"] = 0
    with Gateway(cfg, plugins=plugins()) as gw:
        r = gw.tenant("acme").send("08031234569", "fails over")
        assert r.provider == "two"
        assert gw.store.get_message("acme", r.message_id).sender == "TWO"


def test_failover_only_when_not_sent(urls: tuple[str, str], ctl: Any) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    cfg = config(urls)
    cfg["tenants"]["acme"]["providers"]["one"]["base_url"] = dead
    cfg["tenants"]["acme"]["providers"]["one"]["max_retries"] = 0
    with Gateway(cfg, plugins=plugins()) as gw:
        r = gw.tenant("acme").send("08031234567", "via two")
        assert r.provider == "two" and r.ok
    # a 500 after processing is ambiguous: no failover, recorded as unknown
    ctl[0].fault(kind="status", status=500, path="/messages", process=True)
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(UnknownOutcome):
            acme.send("08031234567", "maybe")
        assert acme.messages()[0].status == Status.UNKNOWN
    assert len(ctl[1].requests()) == 1  # only "via two" from the first part
    # a rejection (4xx) is certain: the next provider is tried
    ctl[0].fault(kind="status", status=401, path="/messages")
    with gateway(urls) as gw:
        assert gw.tenant("acme").send("08031234567", "x").provider == "two"


def test_failover_keeps_the_reason_of_a_configuration_error(urls: tuple[str, str], ctl: Any,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Squad v2 without a sender fails with a ConfigError when it builds its request; before,
    the error after failover named only the last provider's failure, and the log only the type."""
    from smsgate.plugins import default_plugins

    pm = plugins()
    pm.add_provider(default_plugins().get_provider_class("squad"))
    dead = f"http://127.0.0.1:{closed_port()}"
    cfg = config(urls, routes=[{"prefixes": ["+234"], "providers": ["sq", "one"]}])
    acme = cfg["tenants"]["acme"]
    acme["providers"]["sq"] = {"plugin": "squad", "base_url": dead, "options": {"api_version": "v2"},
                               "credentials": {"secret_key": "sk_test_not_used"}}  # no sender anywhere
    acme["providers"]["one"].update(base_url=dead, max_retries=0)
    reason = "provider 'sq' (squad v2): sender_id is required"
    caplog.set_level(logging.WARNING, logger="smsgate")
    with Gateway(cfg, plugins=pm) as gw:
        t = gw.tenant("acme")
        with pytest.raises(TransportError) as raised:
            t.send("08031234567", "x")
        err = raised.value
        assert str(err).startswith("[one] ") and f"(after failing over from {reason}" in str(err), str(err)
        assert [(name, type(e).__name__) for name, e in err.failed_over] == [("sq", "ConfigError")]
        assert reason in t.messages()[0].error  # the log keeps it too
        [result] = t.send_many(["08031234568"], "y")  # and a bulk send's answer
        assert result.status == Status.FAILED and reason in (result.error or "")
        assert f"send via sq failed (ConfigError: {reason}" in caplog.text
        caplog.clear()
    acme["providers"]["one"]["base_url"] = urls[0]  # the next provider works: the warning still says why
    with Gateway(cfg, plugins=pm) as gw:
        assert gw.tenant("acme").send("08031234567", "x").provider == "one"
    assert f"send via sq failed (ConfigError: {reason}" in caplog.text


def test_all_providers_down_raises_last_error_and_logs_failed(urls: tuple[str, str]) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    cfg = config(urls)
    for p in cfg["tenants"]["acme"]["providers"].values():
        p["base_url"] = dead
        p["max_retries"] = 0
    with Gateway(cfg, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(TransportError):
            acme.send("08031234567", "x")
        rec = acme.messages()[0]
        assert rec.status == Status.FAILED and rec.error
        results = acme.send_many(["08031234561", "08031234562"], "y")
        assert all(r.status == Status.FAILED for r in results)


def test_routes_by_prefix_and_country(urls: tuple[str, str], ctl: Any) -> None:
    routes = [{"prefixes": ["+27"], "providers": ["two"]}, {"countries": ["NG"], "providers": ["one"]}]
    with gateway(urls, routes=routes) as gw:
        acme = gw.tenant("acme")
        assert acme.send("+27821234567", "za").provider == "two"
        assert acme.send("08031234567", "ng").provider == "one"
        with pytest.raises(ConfigError, match="no route"):
            acme.send("+447912345678", "uk")
        res = acme.send_many(["+447912345678", "08031234567"], "mixed")
        assert res[0].status == Status.REJECTED and res[0].error_code == "no_route"
        assert res[1].ok


def test_bulk_uses_batches(urls: tuple[str, str], ctl: Any) -> None:
    numbers = [f"0803123456{i}" for i in range(5)]
    with gateway(urls) as gw:
        results = gw.tenant("acme").send_many(numbers, "bulk")
    assert [r.to for r in results] == [f"+234803123456{i}" for i in range(5)]
    assert all(r.ok for r in results)
    assert len(ctl[0].requests("/messages/bulk")) == 3  # max_batch=2
    assert len({r.provider_message_id for r in results}) == 5


def test_send_many_reports_invalid_rows_without_losing_others(urls: tuple[str, str]) -> None:
    with gateway(urls) as gw:
        res = gw.tenant("acme").send_many(["08031234567", "not a number", "08031234568"], "x")
    assert [r.status for r in res] == [Status.SUBMITTED, Status.REJECTED, Status.SUBMITTED]
    assert "recipient 1" in (res[1].error or "") and "not a number" in (res[1].error or "")


def test_templates_and_variables(urls: tuple[str, str], ctl: Any) -> None:
    tpl = Template(name="ship", body="Hi {name}, order {order} shipped")
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        acme.send("08031234567", template=tpl, variables={"name": "Ada", "order": "42"})
        acme.send_many([MessageSpec(to="08031234561", variables={"name": "Bo", "order": "7"})], template=tpl)
        from smsgate.errors import TemplateError

        with pytest.raises(TemplateError, match="order"):
            acme.send("08031234567", template=tpl, variables={"name": "Ada"})
    texts = [r.json()["text"] for r in ctl[0].requests("/messages") if r.path == "/messages"]
    assert texts == ["Hi Ada, order 42 shipped", "Hi Bo, order 7 shipped"]


def test_a_text_and_a_template_together_are_refused_not_one_silently_dropped(
    urls: tuple[str, str], ctl: Any
) -> None:
    """``send("...", "my text", template=tpl)`` sent the template and dropped the text without
    a word (a campaign already refused both; found by a new-user trial)."""
    from smsgate.errors import ValidationError

    tpl = Template(name="ship", body="Hi {name}")
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError, match="exactly one of text or template"):
            acme.send("08031234567", "my own text", template=tpl, variables={"name": "Ada"})
        many = acme.send_many([{"to": "08031234561", "text": "own", "variables": {"name": "Bo"}},
                               {"to": "08031234562", "variables": {"name": "Cy"}}], template=tpl)
    assert [r.status for r in many] == [Status.REJECTED, Status.SUBMITTED]
    assert "exactly one of text or template" in (many[0].error or "")
    assert [r.json()["text"] for r in ctl[0].requests("/messages")] == ["Hi Cy"]


def test_smart_encoding_keeps_gsm7(urls: tuple[str, str], ctl: Any) -> None:
    with gateway(urls, smart_encoding=True) as gw:
        r = gw.tenant("acme").send("08031234567", "“Hello” — it’s here…")  # noqa: RUF001
    assert ctl[0].requests("/messages")[0].json()["text"] == '"Hello" - it\'s here...'
    assert r.segments == 1


def test_media_to_text_only_provider_is_unsupported(urls: tuple[str, str], ctl: Any) -> None:
    with gateway(urls) as gw:
        with pytest.raises(Unsupported, match="media"):
            gw.tenant("acme").send("08031234567", "pic", attachments=[Attachment(url="https://x/y.png")])
    assert ctl[0].requests() == []


def test_hooks_fire(urls: tuple[str, str], ctl: Any) -> None:
    seen: list[tuple[str, Any]] = []

    class Audit:
        @hookimpl
        def smsgate_before_send(self, tenant: str, message: Any) -> None:
            seen.append(("before", message.to))

        @hookimpl
        def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
            seen.append(("after", result.status))

        @hookimpl
        def smsgate_on_status(self, tenant: str, message_id: str, report: Any) -> None:
            seen.append(("status", report.status))

    with gateway(urls) as gw:
        gw.plugins.register(Audit())
        acme = gw.tenant("acme")
        r = acme.send("08031234567", "hooked")
        acme.status(r.message_id)
    assert seen == [("before", "+2348031234567"), ("after", Status.SUBMITTED), ("status", Status.DELIVERED)]


def test_webhook_ingest(urls: tuple[str, str]) -> None:
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        r = acme.send("08031234567", "x")
        body = json.dumps(
            [{"id": r.provider_message_id, "status": "delivered"}, {"id": "unknown-id", "status": "failed"}]
        ).encode()
        reports = gw.ingest("acme", "one", {"X-Echo-Signature": sign(body).upper()}, body)
        assert len(reports) == 2
        assert acme.get(r.message_id).status == Status.DELIVERED
        with pytest.raises(AuthFailed):
            gw.ingest("acme", "one", {"X-Echo-Signature": "00"}, body)
        # another tenant cannot touch acme's message through its own webhook
        gw.ingest("globex", "one", {"X-Echo-Signature": sign(body)}, body)
        assert gw.tenant("globex").messages() == []


def test_unknown_provider_lists_installed(urls: tuple[str, str]) -> None:
    cfg = config(urls)
    cfg["tenants"]["acme"]["providers"]["one"]["plugin"] = "nosuch"
    with (
        Gateway(cfg, plugins=plugins()) as gw,
        pytest.raises(UnknownProvider, match="installed providers: echo"),
    ):
        gw.tenant("acme").send("08031234567", "x")


def test_unknown_tenant(urls: tuple[str, str]) -> None:
    with gateway(urls) as gw, pytest.raises(ConfigError, match="configured tenants: acme, globex"):
        gw.tenant("initech")


def test_async_gateway_end_to_end(urls: tuple[str, str], ctl: Any) -> None:
    async def go() -> None:
        async with AsyncGateway(config(urls), plugins=plugins()) as gw:
            acme = gw.tenant("acme")
            r = await acme.send("08031234567", "async")
            assert r.ok
            rec = await acme.status(r.message_id)
            assert rec.status == Status.DELIVERED
            res = await acme.send_many([f"0803123456{i}" for i in range(7)], "many", concurrency=4)
            assert all(x.ok for x in res) and len(res) == 7

    asyncio.run(go())
    assert len(ctl[0].requests("/messages/bulk")) == 4


def test_no_secret_in_logs_reprs_or_errors(urls: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = config(urls)
    cfg["tenants"]["acme"]["providers"]["one"]["credentials"]["api_key"] = "wrong-but-secret-999"
    cfg["tenants"]["acme"]["providers"]["two"]["credentials"]["api_key"] = "wrong-but-secret-999"
    with Gateway(cfg, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(AuthFailed) as info:
            acme.send("08031234567", "the body text is private")
        texts = [
            str(info.value),
            repr(info.value),
            repr(gw.settings),
            str(gw.settings),
            repr(acme.provider("one")),
            caplog.text,
            acme.messages()[0].model_dump_json(),
        ]
    for text in texts:
        assert "wrong-but-secret-999" not in text
        assert API_KEY not in text
    assert "the body text is private" not in caplog.text
    assert "+2348031234567" not in caplog.text  # numbers are masked in logs


def test_a_send_logs_per_message_at_debug_only(urls: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """The per-message line costs a busy worker CPU: DEBUG, number masked, never the text."""
    caplog.set_level(logging.INFO, logger="smsgate")
    with Gateway(config(urls), plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        acme.send("08031234567", "the body text is private")
        acme.send_many(["08031234568", "08031234569"], "the body text is private")
        assert [r for r in caplog.records if r.name.startswith("smsgate")] == []
        caplog.set_level(logging.DEBUG, logger="smsgate")
        result = acme.send("08031234560", "the body text is private")
    lines = [r for r in caplog.records if r.name == "smsgate" and r.getMessage().startswith("sent ")]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (logging.DEBUG, f"sent {result.message_id} to +234*******560 via {result.provider}: submitted")]
    assert "the body text is private" not in caplog.text


def test_config_file_env_substitution_and_override(
    tmp_path: Path, urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "smsgate.toml"
    path.write_text(f"""
store = "memory://"
[tenants.acme]
default_region = "NG"
[tenants.acme.providers.one]
plugin = "echo"
base_url = "{urls[0]}"
credentials = {{ api_key = "${{ECHO_KEY}}" }}
""")
    from smsgate.config import load_config

    with pytest.raises(ConfigError, match="ECHO_KEY is not set"):
        load_config(path, environ={})
    monkeypatch.setenv("ECHO_KEY", API_KEY)
    monkeypatch.setenv("SMSGATE_TENANTS__ACME__SENDER", "FROMENV")
    settings = load_config(path)
    assert settings.tenants["acme"].sender == "FROMENV"
    assert settings.tenants["acme"].providers["one"].secret("api_key") == API_KEY
    with Gateway(settings, plugins=plugins()) as gw:
        assert gw.tenant("acme").send("08031234567", "from file").ok


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    from smsgate.config import load_config

    with pytest.raises(ConfigError, match=r"routes\[0\] names provider 'nope'"):
        load_config({"tenants": {"a": {"routes": [{"providers": ["nope"]}]}}})
    with pytest.raises(ConfigError, match="timezone: 'Mars/Base' is not an IANA time zone name"):
        load_config({"tenants": {"a": {"timezone": "Mars/Base"}}})
    bad = tmp_path / "bad.toml"
    bad.write_text("store = ")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_bad_provider_options_are_config_errors_that_never_echo_a_value() -> None:
    """A secret put under ``options`` by mistake must not come back in the error (pydantic's shows inputs)."""
    from smsgate_broadcast import BroadcastProvider
    from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(BroadcastProvider)
    options = {"max_batch": "sk_live_123", "credentials_in": "sk_live_456", "api_key": "sk_live_789",
               "api_prefix": "/api/v1"}
    wa = {"plugin": "broadcast", "credentials": SANDBOX_CREDENTIALS, "options": options}
    cfg = {"store": "memory://", "tenants": {"acme": {"providers": {"wa": wa}}}}
    with Gateway(cfg, plugins=pm) as gw, pytest.raises(ConfigError) as info:
        gw.tenant("acme").provider("wa")
    err = info.value
    text = f"{err} {err!r} {err.args!r}"
    assert "sk_live" not in text
    assert err.__cause__ is None and err.__context__ is None  # no pydantic error (with the inputs) behind it
    assert "provider 'wa' (broadcast)" in str(err)
    for name, problem in [("max_batch", "valid integer"), ("credentials_in", "'both', 'body' or 'query'"),
                          ("api_key", "a secret of this plugin: pass it as credentials.api_key")]:
        assert f"options.{name}: " in str(err) and problem in str(err)
    assert "api_prefix" not in str(err)  # only the bad ones are named


def test_option_errors_hide_values_a_validator_writes_into_its_message() -> None:
    from pydantic import BaseModel, field_validator

    from smsgate.provider import Provider, ProviderSettings

    class Options(BaseModel):
        region: str = "eu"

        @field_validator("region")
        @classmethod
        def known(cls, value: str) -> str:
            raise ValueError(f"unknown region {value!r}")

    class Vendor(Provider):
        name = "vendor"
        default_base_url = "https://vendor.example"
        options_model = Options

    with pytest.raises(ConfigError, match=r"options\.region: unknown region '\*\*\*'") as info:
        Vendor(ProviderSettings(plugin="vendor", options={"region": "tok_secret_1"}), instance_name="v")
    assert "tok_secret_1" not in str(info.value)


def test_sqlite_store_end_to_end(tmp_path: Path, urls: tuple[str, str]) -> None:
    cfg = config(urls)
    cfg["store"] = f"sqlite:///{tmp_path / 'log.db'}"
    with Gateway(cfg, plugins=plugins()) as gw:
        r = gw.tenant("acme").send("08031234567", "persisted", idempotency_key="k")
    with Gateway(cfg, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        assert acme.get(r.message_id).status == Status.SUBMITTED
        assert acme.send("08031234567", "persisted", idempotency_key="k").message_id == r.message_id


def test_provider_class_is_reachable(urls: tuple[str, str]) -> None:
    with gateway(urls) as gw:
        assert isinstance(gw.tenant("acme").provider("one"), EchoProvider)


def test_a_placeholder_without_a_value_is_never_sent(urls: tuple[str, str], ctl: Any) -> None:
    from smsgate.errors import TemplateError

    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        res = acme.send_many(["08031234567", {"to": "08031234568", "variables": {"name": "Ada"}}], "Hi {name}")
        assert res[0].status == Status.REJECTED and "missing variable(s) 'name'" in (res[0].error or "")
        assert res[1].ok
        with pytest.raises(TemplateError, match="missing variable"):
            acme.send("08031234569", "Your code is {code}")
        assert acme.send("08031234569", "Smile :-} {").ok  # no placeholder: sent as written
    texts = [m["text"] for r in ctl[0].requests("/messages", method="POST")
             for m in r.json().get("messages", [r.json()])]
    assert sorted(texts) == ["Hi Ada", "Smile :-} {"]


def test_instance_max_batch_caps_bulk_calls(urls: tuple[str, str], ctl: Any) -> None:
    cfg = config(urls)
    cfg["tenants"]["acme"]["providers"]["one"]["max_batch"] = 1
    with Gateway(cfg, plugins=plugins()) as gw:
        results = gw.tenant("acme").send_many([f"0803123456{i}" for i in range(3)], "one by one")
    assert all(r.ok for r in results)
    assert [len(r.json()["messages"]) for r in ctl[0].requests("/messages/bulk")] == [1, 1, 1]


# ------------------------------------------------------------ chunked send_many
def _sent_sizes(ctl: Any) -> list[int]:
    return [len(r.json()["messages"]) for r in ctl.requests("/messages/bulk")]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chunked_send_many_makes_the_same_bulk_calls(
    urls: tuple[str, str], ctl: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Prepared 3 at a time, 11 valid messages still go out as 2+2+2+2+2+1 (max_batch=2), in order."""
    import smsgate.core.deliver

    numbers = [f"080312345{i:02d}" for i in range(12)]
    numbers[7] = "not a number"  # rejected in the third chunk, keeps its place
    expected = [f"+23480312345{i:02d}" for i in range(12)]
    expected[7] = "not a number"

    def run() -> list[Any]:
        if mode == "sync":
            with gateway(urls) as gw:
                return gw.tenant("acme").send_many(numbers, "chunked")

        async def go() -> list[Any]:
            async with AsyncGateway(config(urls), plugins=plugins()) as agw:
                return await agw.tenant("acme").send_many(numbers, "chunked", concurrency=4)

        return asyncio.run(go())

    whole = run()
    unchunked = sorted(_sent_sizes(ctl[0]))
    ctl[0].reset()
    monkeypatch.setattr(smsgate.core.deliver, "SEND_CHUNK", 3)
    results = run()
    assert sorted(_sent_sizes(ctl[0])) == unchunked == [1, 2, 2, 2, 2, 2]
    for res in (whole, results):
        assert [r.to for r in res] == expected
        assert [r.ok for r in res] == [i != 7 for i in range(12)]
        assert "recipient 7" in (res[7].error or "")
    assert len({r.message_id for r in results}) == 12


def _spy_log(gw: Gateway, events: list[str]) -> None:
    """Record each opt-out check (one per prepared chunk) and each log write (inserts, updates)."""
    store = gw.store
    opted, write = store.optout_scopes, store.write_log

    def checking(tenant: str, phones: Any) -> Any:
        events.append(f"check {len(phones)}")
        return opted(tenant, phones)

    def writing(tenant: str, log: Any) -> Any:
        events.append(f"log {len(log.inserts)}+{len(log.updates)}")
        return write(tenant, log)

    store.optout_scopes = checking  # type: ignore[method-assign]
    store.write_log = writing  # type: ignore[method-assign]


def test_send_many_prepares_a_chunk_just_before_sending_it(
    urls: tuple[str, str], ctl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smsgate.core.deliver
    from smsgate.core.drive import LogWriter

    monkeypatch.setattr(smsgate.core.deliver, "SEND_CHUNK", 4)
    events: list[str] = []

    class Spy:
        @hookimpl
        def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
            events.append("sent")

    pm = plugins()
    pm.register(Spy())
    cfg = config(urls)
    cfg["tenants"]["acme"]["providers"]["one"]["max_batch"] = 1
    monkeypatch.setattr(LogWriter, "max_age", 3600.0)
    with Gateway(cfg, plugins=pm) as gw:
        _spy_log(gw, events)
        results = gw.tenant("acme").send_many([f"0803123456{i}" for i in range(10)], "x")
    assert all(r.ok for r in results)
    # each chunk is prepared and logged (queued) in one write just before its first request
    # leaves, with the answers held back so far; the last answers are written at the end
    assert events == ["check 4", "log 4+0", *["sent"] * 4, "check 4", "log 4+4", *["sent"] * 4,
                      "check 2", "log 2+4", "sent", "sent", "log 0+2"]


def test_send_many_refuses_a_malformed_item_before_sending_anything(
    urls: tuple[str, str], ctl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smsgate.core.deliver
    from smsgate.errors import ValidationError

    monkeypatch.setattr(smsgate.core.deliver, "SEND_CHUNK", 2)
    with gateway(urls) as gw:
        with pytest.raises(ValidationError, match="recipient 5"):
            gw.tenant("acme").send_many(["08031234560", "08031234561", "08031234562", "08031234563",
                                         "08031234564", 12345], "x")  # type: ignore[list-item]
        assert gw.store.list_messages("acme") == []
    assert ctl[0].requests("/messages/bulk") == [] and ctl[0].requests("/messages") == []


# ------------------------------------------------------------ hot-path batching
def test_send_many_answers_ride_along_with_the_next_write_and_send_logs_before_returning(
    urls: tuple[str, str], ctl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smsgate.core.drive import LogWriter

    monkeypatch.setattr(LogWriter, "max_age", 3600.0)  # only the next write, size and the end write them
    events: list[str] = []
    with gateway(urls) as gw:
        acme = gw.tenant("acme")
        _spy_log(gw, events)
        results = acme.send_many([f"0803123456{i}" for i in range(7)], "batched")
        # bulk calls of 2, 2, 2, 1: the chunk logged ahead in one write, the answers at the end
        assert events == ["check 7", "log 7+0", "log 0+7"]
        assert all(acme.get(r.message_id).status == Status.SUBMITTED for r in results)
        events.clear()
        r = acme.send("08031234567", "single")
        assert events == ["check 1", "log 1+0", "log 0+1"]  # send() logs its outcome before it returns
        assert acme.get(r.message_id).status == Status.SUBMITTED
    monkeypatch.setattr(LogWriter, "size", 3)
    events.clear()
    cfg = config(urls)
    cfg["tenants"]["acme"]["providers"]["one"]["max_batch"] = 1
    with Gateway(cfg, plugins=plugins()) as gw:
        _spy_log(gw, events)
        gw.tenant("acme").send_many([f"0803123456{i}" for i in range(3)], "x")
    assert events == ["check 3", "log 3+0", "log 0+3"]  # 3 answers held: written


def test_send_many_interrupted_midway_logs_what_it_sent(
    urls: tuple[str, str], ctl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smsgate.core.drive import LogWriter

    monkeypatch.setattr(LogWriter, "max_age", 3600.0)

    class Boom:
        @hookimpl
        def smsgate_before_send(self, tenant: str, message: Any) -> None:
            if message.to.endswith("2"):
                raise KeyboardInterrupt  # the process is stopped in the middle of the batch

    with gateway(urls) as gw:
        gw.plugins.register(Boom())
        acme = gw.tenant("acme")
        with pytest.raises(KeyboardInterrupt):
            acme.send_many([f"0803123456{i}" for i in range(5)], "half")
        by_to = {rec.to: rec.status for rec in acme.messages()}
    # bulk calls of two: the first left and is logged with its answer; the second was under way
    # when the process was stopped and stays queued ("may have left"); the third never started
    # and is failed (not_sent), not queued (tests/test_faults.py)
    assert by_to["+2348031234560"] == by_to["+2348031234561"] == Status.SUBMITTED
    assert {by_to[f"+234803123456{i}"] for i in (2, 3)} == {Status.QUEUED}
    assert by_to["+2348031234564"] == Status.FAILED
    assert len(ctl[0].requests("/messages/bulk")) == 1


def test_webhook_that_overtakes_a_held_back_answer_still_matches(
    urls: tuple[str, str], ctl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smsgate.core.drive import LogWriter

    monkeypatch.setattr(LogWriter, "max_age", 3600.0)
    matched: list[int] = []

    class InstantReport:
        """A delivery report arriving (in this process) right after the vendor accepted the message."""

        @hookimpl
        def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
            body = json.dumps([{"id": result.provider_message_id, "status": "delivered"}]).encode()
            before = acme.get(message.message_id).status  # still queued: the answer is held back
            gw.ingest("acme", "one", {"X-Echo-Signature": sign(body)}, body)
            matched.append(before == Status.QUEUED and acme.get(message.message_id).status == Status.DELIVERED)

    cfg = config(urls)
    cfg["tenants"]["acme"]["providers"]["one"]["max_batch"] = 1  # one message per call: one report each
    with Gateway(cfg, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        gw.plugins.register(InstantReport())
        results = acme.send_many(["08031234561", "08031234562", "08031234563"], "fast report")
        assert matched == [True, True, True]
        assert [acme.get(r.message_id).status for r in results] == [Status.DELIVERED] * 3


def test_async_held_back_writes_are_written_by_a_timer(urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from smsgate.core.drive import AsyncLogWriter
    from smsgate.store import MessageUpdate
    from smsgate.store.base import LogWrite

    monkeypatch.setattr(AsyncLogWriter, "max_age", 0.01)

    async def go() -> None:
        async with AsyncGateway(config(urls), plugins=plugins()) as gw:
            acme = gw.tenant("acme")
            res = await acme.send_many(["08031234567"], "queued first", provider="one")
            writes: list[int] = []
            original = gw.store.write_log

            def counting(tenant: str, log: Any) -> Any:
                writes.append(len(log.updates))
                return original(tenant, log)

            gw.store.write_log = counting  # type: ignore[method-assign]
            writer = gw._plan_driver("acme").writer
            at = (await acme.get(res[0].message_id)).updated_at
            writer.defer(LogWrite(updates=[MessageUpdate(message_id=res[0].message_id, status=Status.SENT, at=at,
                                                         source="test")]))
            assert writes == []
            await asyncio.sleep(0.2)  # the loop runs the writer's 10 ms timer meanwhile
            assert writes == [1]
            assert (await acme.get(res[0].message_id)).status == Status.SENT
            await writer.flush()
            assert writes == [1]  # nothing left to write

    asyncio.run(go())


def test_region_is_looked_up_only_for_country_routes(
    urls: tuple[str, str], ctl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smsgate.phone

    calls: list[str] = []
    original = smsgate.phone.region_of

    def counting(phone: str) -> str | None:
        calls.append(phone)
        return original(phone)

    monkeypatch.setattr(smsgate.phone, "region_of", counting)
    with gateway(urls, routes=[{"prefixes": ["+234"], "providers": ["two"]}]) as gw:
        assert gw.tenant("acme").send("08031234567", "by prefix").provider == "two"
    assert calls == []
    with gateway(urls, routes=[{"countries": ["NG"], "providers": ["two"]}]) as gw:
        assert gw.tenant("acme").send("08031234567", "by country").provider == "two"
    assert calls == ["+2348031234567"]


def test_new_id_format_order_and_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    from smsgate import ids

    ms = 1_790_000_000_123
    monkeypatch.setattr(time, "time_ns", lambda: ms * 1_000_000 + 999)
    raw = bytes(range(246, 256))
    monkeypatch.setattr(os, "urandom", lambda n: bytes(n - 10) + raw)  # the pool is used from its end
    monkeypatch.setattr(ids, "_pool", bytearray())
    got = ids.new_id("msg")
    # the same digits as the plain big-endian base32 expansion of both parts
    assert got == f"msg_{ids._b32(ms, 10)}{ids._b32(int.from_bytes(raw, 'big'), 16)}"
    monkeypatch.undo()
    made = [ids.new_id("cmp") for _ in range(2000)]
    assert len(set(made)) == len(made)
    assert all(len(m) == 30 and m.startswith("cmp_") and set(m[4:]) <= set(ids._ALPHABET) for m in made)
    assert made == sorted(made, key=lambda m: m[4:14])  # ordered by their time part


def test_new_ids_made_in_many_threads_at_once_are_all_different() -> None:
    """Threads taking random bytes from the read-ahead pool at once each get their own: two
    threads read the same ten bytes before either removed them and made the same id in the same
    millisecond (a message lost from the testing outbox, two messages of one id in a store)."""
    import sys
    import threading

    from smsgate import ids

    made: list[list[str]] = []

    def work() -> None:
        made.append([ids.new_id() for _ in range(20_000)])

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: the race shows in every run before the fix
    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
    every = [i for part in made for i in part]
    assert len(every) == 160_000 and len(set(every)) == len(every)


def test_new_ids_differ_across_a_fork() -> None:
    """The read-ahead random bytes are not shared with a forked child (no id made twice)."""
    import os

    from smsgate import ids

    ids.new_id()  # the parent has a pool now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ",".join(ids.new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    reap(pid)
    child = os.read(read, 1_000_000).decode().split(",")
    os.close(read)
    mine = [ids.new_id() for _ in range(50)]
    assert len(child) == 50 and not {c[14:] for c in child} & {m[14:] for m in mine}
