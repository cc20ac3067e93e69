"""A tenant's ``max_segments``: one cap on a message's length for single sends, send_many
and campaigns (preparation and dispatch), proved from the echo emulator's own request
record. A contact field of 100,000 characters rendered through ``{name}`` must not become
an SMS of ~1,500 paid segments."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Gateway, MessageSpec, Status
from smsgate.campaigns import CsvAudience
from smsgate.config import TenantConfig
from smsgate.errors import ConfigError, ValidationError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer

HUGE = "x" * 100_000  # ~654 GSM-7 segments


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = LiveServer(create_emulator()).start()
    yield server.url
    server.stop()


@pytest.fixture
def ctl(url: str) -> EmulatorControl:
    c = EmulatorControl(url)
    c.reset()
    return c


def gateway(url: str, **tenant: Any) -> Gateway:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}
    return Gateway({"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov},
                                                               **tenant}}}, plugins=pm)


def sent_texts(ctl: EmulatorControl) -> list[str]:
    out: list[str] = []
    for r in ctl.requests("/messages", "POST"):
        body = r.json()
        out.extend(m["text"] for m in body["messages"]) if "messages" in body else out.append(body["text"])
    return out


def test_the_default_is_ten_segments_and_it_is_configurable() -> None:
    assert TenantConfig().max_segments == 10
    assert TenantConfig(max_segments=None).max_segments is None  # no cap, explicitly
    with pytest.raises(ValueError):
        TenantConfig(max_segments=0)


def test_a_single_send_over_the_cap_is_a_validation_error_naming_the_field_and_counts(
        url: str, ctl: EmulatorControl) -> None:
    with gateway(url) as gw:
        t = gw.tenant("acme")
        with pytest.raises(ValidationError) as info:
            t.send("08031234567", "Hi {name}", variables={"name": HUGE})
        err = info.value
        assert err.field == "text"
        assert "654 segments" in str(err) and "max_segments = 10" in str(err) and "100,003 characters" in str(err)
        assert HUGE not in str(err)
        assert t.messages() == []  # refused before anything is logged or sent
        assert t.send("08031234567", "y" * 1530).ok  # exactly 10 GSM-7 segments: sent
    assert sent_texts(ctl) == ["y" * 1530]


def test_the_cap_counts_segments_not_characters(url: str, ctl: EmulatorControl) -> None:
    with gateway(url, max_segments=2) as gw:
        t = gw.tenant("acme")
        assert t.send("08031234567", "ж" * 134).ok  # UCS-2: two segments of 67
        with pytest.raises(ValidationError, match="3 segments"):
            t.send("08031234567", "ж" * 135)
    assert sent_texts(ctl) == ["ж" * 134]
    with gateway(url, max_segments=None) as gw:  # no cap: the caller's choice
        assert gw.tenant("acme").send("08031234567", "z" * 2000).ok
    assert sent_texts(ctl)[-1] == "z" * 2000


def test_send_many_rejects_only_the_row_over_the_cap(url: str, ctl: EmulatorControl) -> None:
    with gateway(url) as gw:
        res = gw.tenant("acme").send_many([
            MessageSpec(to="08031234561", text="Hi {name}", variables={"name": "Ada"}),
            MessageSpec(to="08031234562", text="Hi {name}", variables={"name": HUGE}),
            MessageSpec(to="08031234563", text="Hi {name}", variables={"name": "Bo"})])
    assert [r.status for r in res] == [Status.SUBMITTED, Status.REJECTED, Status.SUBMITTED]
    assert "max_segments" in (res[1].error or "") and "recipient 1" in (res[1].error or "")
    assert sorted(sent_texts(ctl)) == ["Hi Ada", "Hi Bo"]


def test_a_campaign_skips_the_row_naming_its_line_and_never_sends_it(
        tmp_path: Path, url: str, ctl: EmulatorControl) -> None:
    path = tmp_path / "list.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([["phone", "name"], ["08031234561", "Ada"], ["08031234562", HUGE], ["08031234563", "Bo"]])
    with gateway(url) as gw:
        camp = gw.tenant("acme").campaigns.create("big", text="Hi {name}", audience=CsvAudience(path))
        p = camp.preview()
        assert (p.recipients, p.skipped) == (2, {"too_long": 1})
        (e,) = p.errors
        assert (e.reason, e.location) == ("too_long", "list.csv, line 3")
        assert "654 segments" in e.detail and "max_segments = 10" in e.detail
        assert camp.run().sent == 2
    assert sorted(sent_texts(ctl)) == ["Hi Ada", "Hi Bo"]


def test_a_campaign_run_after_the_cap_was_lowered_rejects_the_row_at_dispatch(
        tmp_path: Path, url: str, ctl: EmulatorControl) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"

    def gw_with(**tenant: Any) -> Gateway:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME"}
        return Gateway({"store": db, "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov},
                                                          **tenant}}}, plugins=pm)

    with gw_with(max_segments=None) as gw:
        camp = gw.tenant("acme").campaigns.create("c", text="Hi {name}", audience=[
            {"phone": "08031234561", "name": "Ada"}, {"phone": "08031234562", "name": "w" * 400}])
        assert camp.preview().recipients == 2
        cid = camp.campaign_id
    with gw_with(max_segments=2) as gw:
        done = gw.tenant("acme").campaigns.get(cid).run()
        assert (done.sent, done.failed) == (1, 1)
        (row,) = [r for r in gw.store.recipients("acme", cid) if r.reason]
        assert row.reason == "too_long" and "max_segments = 2" in (row.detail or "")
    assert sent_texts(ctl) == ["Hi Ada"]


def test_a_bad_max_segments_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="max_segments"):
        gateway(url, max_segments="many")
