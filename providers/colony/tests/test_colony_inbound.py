"""Colony inbound replies (collate messages) through the webhook app: parser properties and
the compliance acceptance over the Colony emulator.

Colony documents no webhook (replies are polled from ``/collate/campaigns/message/``);
a relay posts the documented collate message objects to ``/{tenant}/{instance}``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from colony_harness import NUMBER, NUMBER2, TENANT, plugins, served

from smsgate import hookimpl
from smsgate.config import InboundConfig, Settings, TenantConfig
from smsgate.errors import AuthFailed, ConfigError, OptedOut, ValidationError
from smsgate.gateway import Gateway
from smsgate.models import CampaignStatus, InboundMessage
from smsgate.provider import ProviderSettings
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing.server import LiveServer
from smsgate.webhooks import webhook_app
from smsgate_colony import ColonyProvider
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app
from smsgate_colony.inbound import inbound_from_collate, parse_inbound_webhook

TOKEN = "relay-token-42"
HELP = "Acme offers: reply STOP to opt out"


def reply(vid: int, text: str, originator: str = "27815854565") -> dict[str, Any]:
    """A collate inbound message as Colony's model has it."""
    return {"id": vid, "originator": originator, "campaign": 7, "text": text, "network": "MTN",
            "provider": "colony", "backend": "smpp", "backend_id": f"b-{vid}", "blacklisted": False,
            "fraud_suspect": False, "date_created": "2026-12-03T10:00:00Z"}


# --------------------------------------------------------------------- parser
def test_parser_reads_object_list_and_drf_page() -> None:
    one = parse_inbound_webhook(json.dumps(reply(1, "Stop")).encode(), instance="col", region="ZA").inbound
    assert [(m.vendor_id, m.from_number, m.text, m.provider) for m in one] == [("id:1", NUMBER, "Stop", "col")]
    assert one[0].received_at == datetime(2026, 12, 3, 10, tzinfo=timezone.utc) and one[0].raw["network"] == "MTN"
    many = parse_inbound_webhook(json.dumps([reply(1, "a"), reply(2, "b")]).encode(), instance="c", region="ZA")
    page = parse_inbound_webhook(json.dumps({"count": 2, "next": None, "results": [reply(1, "a"), reply(2, "b")]})
                                 .encode(), instance="c", region="ZA")
    assert [m.vendor_id for m in many.inbound] == [m.vendor_id for m in page.inbound] == ["id:1", "id:2"]
    no_id = {k: v for k, v in reply(3, "x").items() if k not in ("id", "backend_id")}
    first = inbound_from_collate(no_id, instance="c", region="ZA")
    assert first.vendor_id == inbound_from_collate(dict(no_id), instance="c", region="ZA").vendor_id
    assert first.vendor_id != inbound_from_collate({**no_id, "date_created": "2026-12-03T10:00:01Z"},
                                                   instance="c", region="ZA").vendor_id


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"text": "STOP"}', b'{"originator": "", "text": "x"}',
                                  b'{"originator": "2781", "text": 5, "id": 1}',
                                  b'{"originator": "27815854565", "text": "STOP"}',
                                  b'{"originator": "27815854565", "id": 1, "date_created": "yesterday"}'])
def test_parser_refuses_malformed_bodies_with_a_typed_error(body: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_inbound_webhook(body, instance="c", region="ZA")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=3), max_leaves=8)
collate_like = st.fixed_dictionaries({}, optional={
    "id": json_values, "backend_id": json_values, "originator": json_values | st.from_regex(r"\+?27[0-9]{9}"),
    "text": json_values, "campaign": json_values, "date_created": json_values | st.datetimes().map(str)})


@settings(max_examples=300)
@given(item=collate_like | json_values)
def test_parser_on_any_json_gives_messages_or_a_validation_error(item: Any) -> None:
    body = json.dumps(item).encode()
    try:
        events = parse_inbound_webhook(body, instance="c", region="ZA")
    except ValidationError:
        return
    for m in events.inbound:
        assert isinstance(m, InboundMessage) and m.vendor_id and m.provider == "c"


@given(body=st.binary(max_size=200))
def test_parser_on_any_bytes_gives_messages_or_a_validation_error(body: bytes) -> None:
    try:
        parse_inbound_webhook(body, instance="c", region="ZA")
    except ValidationError:
        pass


def test_the_token_is_required() -> None:
    prov = ColonyProvider(ProviderSettings(plugin="colony", credentials=dict(SANDBOX_CREDENTIALS)))
    with pytest.raises(ConfigError, match="webhook_token"):
        prov.parse_events({}, json.dumps(reply(1, "STOP")).encode())
    prov = ColonyProvider(ProviderSettings(plugin="colony",
                                           credentials={**SANDBOX_CREDENTIALS, "webhook_token": TOKEN}))
    for headers in ({}, {"x-smsgate-query": "token=nope"}, {"X-Webhook-Token": "nope"}):
        with pytest.raises(AuthFailed):
            prov.parse_events(headers, b"{}")
    assert len(prov.parse_events({"x-smsgate-query": f"token={TOKEN}"}, json.dumps(reply(1, "x")).encode())
               .inbound) == 1
    with pytest.raises(Exception, match="delivery-report webhooks"):  # Colony documents no DLR
        prov.parse_webhook({}, b"{}")


# ----------------------------------------------------------------- acceptance
class Inbox:
    def __init__(self) -> None:
        self.seen: list[InboundMessage] = []

    @hookimpl
    def smsgate_on_inbound(self, tenant: str, message: InboundMessage) -> None:
        self.seen.append(message)


def test_stop_start_and_help_over_the_emulator(tmp_path: Path) -> None:
    app = create_app(delivery_delay=0)
    inbox = Inbox()
    pm = plugins()
    pm.register(inbox)
    with served(app) as url:
        cfg = Settings(store="memory://", tenants={TENANT: TenantConfig(
            default_region="ZA", sender="ACME", inbound=InboundConfig(help_reply=HELP),
            providers={"colony": ProviderSettings(plugin="colony", base_url=url, max_retries=1, credentials={
                **SANDBOX_CREDENTIALS, "webhook_token": TOKEN})})})
        store = SQLiteStore(str(tmp_path / "log.db"))
        store.migrate()
        with Gateway(cfg, store=store, plugins=pm) as gw, LiveServer(webhook_app(gw)) as hooks:
            hook = f"{hooks.url}/{TENANT}/colony?token={TOKEN}"
            t = gw.tenant(TENANT)

            def relay(item: dict[str, Any]) -> dict[str, Any]:
                # received now: a help word received over a day ago gets no auto-reply
                item = {**item, "date_created": datetime.now(timezone.utc).isoformat()}
                r = httpx.post(hook, content=json.dumps(item).encode())
                assert r.status_code == 200, r.text
                answer: dict[str, Any] = r.json()
                return answer

            def sends_to(number: str) -> list[str]:
                return [s.message for s in app.vendor.sends if s.destination == number.lstrip("+")]

            camp = t.campaigns.create("spring", text="Spring sale!", audience=[NUMBER, NUMBER2])
            assert camp.run().status is CampaignStatus.COMPLETED
            assert sends_to(NUMBER) == ["Spring sale!"] and sends_to(NUMBER2) == ["Spring sale!"]

            # the recipient replies "Stop" to the campaign message
            assert relay(reply(101, "Stop"))["inbound"] == 1
            with pytest.raises(OptedOut):
                t.send(NUMBER, "are you sure?")
            summer = t.campaigns.create("summer", text="Summer sale!", audience=[NUMBER, NUMBER2]).run()
            assert (summer.sent, summer.skipped) == (1, 1)
            assert sends_to(NUMBER) == ["Spring sale!"]  # the vendor never saw the later messages
            assert sends_to(NUMBER2) == ["Spring sale!", "Summer sale!"]
            (optout,) = t.optouts.list()
            assert optout.phone == NUMBER and optout.source == "keyword"
            stop_msg = t.inbound(from_number=NUMBER)[0]
            assert stop_msg.action == "optout" and f"inbound {stop_msg.id}" in (optout.reason or "")

            # "START" re-subscribes
            assert relay(reply(102, " start. "))["inbound"] == 1
            assert t.send(NUMBER, "welcome back").ok
            assert sends_to(NUMBER)[-1] == "welcome back"

            # HELP delivered twice by the relay: one auto-reply
            first, second = relay(reply(103, "Help?")), relay(reply(103, "Help?"))
            assert (first["duplicates"], second["duplicates"]) == (0, 1)
            assert sends_to(NUMBER).count(HELP) == 1
            help_msg = t.inbound(from_number=NUMBER)[0]
            assert help_msg.action == "help"
            replies = [m for m in t.messages(to=NUMBER) if m.reference == f"inbound:{help_msg.id}"]
            assert len(replies) == 1 and replies[0].status.rank >= 2

            # everything stored once, newest first, each with the action it caused
            assert [(m.vendor_id, m.action) for m in t.inbound()] == [
                ("id:103", "help"), ("id:102", "optin"), ("id:101", "optout")]
            assert [m.vendor_id for m in inbox.seen] == ["id:101", "id:102", "id:103"]

            # a plain reply is stored, acts on nothing; a request without the token is refused
            assert relay(reply(104, "thanks!"))["inbound"] == 1 and t.inbound()[0].action == "none"
            assert httpx.post(f"{hooks.url}/{TENANT}/colony", content=json.dumps(reply(105, "STOP"))).status_code == 401
            assert not t.optouts.check(NUMBER)


# ----------------------------------------------------------------- polling
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_replies_are_polled_from_the_list_stored_once_and_acted_on(tmp_path: Path, mode: str) -> None:
    """Colony has no inbound webhook: `tenant.poll_inbound` reads the collate message list;
    a reply listed again on the next poll is neither stored nor acted on twice."""
    import asyncio

    from smsgate import AsyncGateway

    app = create_app(delivery_delay=0)
    with served(app) as url:
        cfg = Settings(store=f"sqlite:///{tmp_path / 'log.db'}", tenants={TENANT: TenantConfig(
            default_region="ZA", sender="ACME", inbound=InboundConfig(help_reply=HELP),
            providers={"colony": ProviderSettings(plugin="colony", base_url=url, max_retries=1,
                                                  credentials=dict(SANDBOX_CREDENTIALS))})})
        app.vendor.receive(NUMBER.lstrip("+"), "Stop")
        app.vendor.receive(NUMBER2.lstrip("+"), "HELP")
        app.vendor.receive(NUMBER2.lstrip("+"), "thanks!")
        if mode == "sync":
            with Gateway(cfg, plugins=plugins()) as gw:
                t = gw.tenant(TENANT)
                first, again = t.poll_inbound("colony"), t.poll_inbound("colony")
                stored = t.inbound()
                opted = t.optouts.check(NUMBER)
        else:
            async def run() -> tuple[Any, Any, Any, bool]:
                async with AsyncGateway(cfg, plugins=plugins()) as gw:
                    t = gw.tenant(TENANT)
                    first, again = await t.poll_inbound("colony"), await t.poll_inbound("colony")
                    return first, again, await t.inbound(), await t.optouts.check(NUMBER)
            first, again, stored, opted = asyncio.run(run())
        assert len(first) == len(again) == 3
        assert sorted(m.text for m in stored) == ["HELP", "Stop", "thanks!"]  # each once
        assert opted  # "Stop" opted the number out
        helps = [s.message for s in app.vendor.sends if s.destination == NUMBER2.lstrip("+")]
        assert helps == [HELP]  # one HELP reply, though the HELP was listed twice


def test_a_vendor_without_a_reply_list_says_so() -> None:
    prov = ColonyProvider(ProviderSettings(plugin="colony", credentials=dict(SANDBOX_CREDENTIALS)))
    assert prov.capabilities is not None
    from smsgate.provider import Provider

    with pytest.raises(Exception, match="inbound listing"):
        next(Provider.list_inbound(prov))


def test_smsgate_inbound_poll_reads_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from smsgate.cli import app as cli

    monkeypatch.chdir(tmp_path)
    emulator = create_app(delivery_delay=0)
    emulator.vendor.receive(NUMBER.lstrip("+"), "Stop")
    with served(emulator) as url:
        creds = ", ".join(f'{k} = "{v}"' for k, v in SANDBOX_CREDENTIALS.items())
        (tmp_path / "smsgate.toml").write_text(
            f'store = "sqlite:///log.db"\n[tenants.{TENANT}]\ndefault_region = "ZA"\n'
            f'[tenants.{TENANT}.providers.colony]\nplugin = "colony"\nbase_url = "{url}"\n'
            f"credentials = {{ {creds} }}\n")
        out = CliRunner().invoke(cli, ["inbound", "--poll", "colony", "--json"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert [(m["from_number"], m["text"], m["action"]) for m in listed] == [(NUMBER, "Stop", "optout")]
