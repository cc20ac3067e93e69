"""A vendor's "recipient opted out" refusal becomes an opt-out (source ``vendor``).

No vendor document of this project names such an error, so it is configured:
``response.error_code_path`` and ``response.opted_out_codes``. What the vendor
received is read from the emulator's own request record.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from smsgate.emulation import EmulatorControl
from smsgate.errors import AuthFailed, ConfigError, OptedOut, RecipientSuppressed
from smsgate.gateway import Gateway
from smsgate.models import OutboundMessage, Status
from smsgate.plugins import PluginManager
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing.server import LiveServer
from smsgate_generic_http import GenericHttpProvider
from smsgate_generic_http.emulator import SANDBOX_CREDENTIALS, SANDBOX_OPTIONS, create_app
from smsgate_generic_http.options import GenericHttpOptions

BLOCKED, OTHER, OK = "+2348031230001", "+2348031230002", "+2348031230003"


def options(**response: Any) -> dict[str, Any]:
    opts = copy.deepcopy(SANDBOX_OPTIONS)
    opts["response"].update({"error_code_path": "error.code", "opted_out_codes": ["BLACKLISTED"], **response})
    return opts


@pytest.fixture()
def vendor() -> Iterator[str]:
    app = create_app(options(), delivery_delay=0.0, suppressed=[BLOCKED, OTHER])
    with LiveServer(app) as server:
        yield server.url


def gateway(url: str, tmp_path: Path, **credentials: str) -> Gateway:
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(GenericHttpProvider)
    prov = {"plugin": "generic_http", "base_url": url, "credentials": {**SANDBOX_CREDENTIALS, **credentials},
            "options": options(),
            "sender": "SMSGATE"}
    store = SQLiteStore(str(tmp_path / "log.db"))
    store.migrate()
    return Gateway({"tenants": {"acme": {"default_region": "NG", "providers": {"v": prov}}}}, store=store, plugins=pm)


def received(url: str) -> list[tuple[str, str | None]]:
    """(to, from) of every message item the vendor was sent (accepted or refused), in order."""
    out = []
    for r in EmulatorControl(url).requests("/v1/messages", "POST"):
        out.extend((m["to"], m.get("from")) for m in json.loads(r.body)["messages"])
    return out


def test_a_refused_single_send_opts_the_recipient_out_of_its_sender(vendor: str, tmp_path: Path) -> None:
    url = vendor
    with gateway(url, tmp_path) as gw:
        t = gw.tenant("acme")
        with pytest.raises(RecipientSuppressed, match="BLACKLISTED") as refused:
            t.send(BLOCKED, "hello")
        assert refused.value.vendor_code == "BLACKLISTED"
        (optout,) = t.optouts.list()
        assert (optout.phone, optout.scope, optout.source) == (BLOCKED, "smsgate", "vendor")
        assert "BLACKLISTED" in (optout.reason or "")
        (logged,) = t.messages(to=BLOCKED)
        assert logged.status is Status.REJECTED
        # the next send from that sender is refused locally: the vendor never sees it
        with pytest.raises(OptedOut, match="sender 'SMSGATE'"):
            t.send(BLOCKED, "again")
        assert t.send(OK, "fine").ok
    assert received(url) == [(BLOCKED, "SMSGATE"), (OK, "SMSGATE")]


def test_one_refused_item_of_a_bulk_answer(vendor: str, tmp_path: Path) -> None:
    url = vendor
    with gateway(url, tmp_path) as gw:
        t = gw.tenant("acme")
        first = t.send_many([BLOCKED, OK, OTHER], "bulk")
        assert [(r.ok, r.status if not r.ok else None, r.suppressed) for r in first] == [
            (False, Status.REJECTED, True), (True, None, False), (False, Status.REJECTED, True)]
        assert {(o.phone, o.scope, o.source) for o in t.optouts.list()} == {
            (BLOCKED, "smsgate", "vendor"), (OTHER, "smsgate", "vendor")}
        again = t.send_many([BLOCKED, OK, OTHER], "bulk again")
        assert [r.error_code for r in again] == ["opted_out", None, "opted_out"]
        # a campaign skips them at preparation; one prepared before the refusal skips at dispatch
        camp = t.campaigns.create("c", text="camp", audience=[BLOCKED, OK])
        assert camp.preview().skipped == {"opted_out": 1}
    assert received(url) == [(BLOCKED, "SMSGATE"), (OK, "SMSGATE"), (OTHER, "SMSGATE"), (OK, "SMSGATE")]


def test_a_campaign_recipient_refused_by_the_vendor_is_skipped_opted_out(
        vendor: str, tmp_path: Path) -> None:
    url = vendor
    with gateway(url, tmp_path) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("c", text="camp", audience=[BLOCKED, OK])
        done = camp.run()
        assert (done.sent, done.skipped_by_reason) == (1, {"opted_out": 1})
        assert [(o.phone, o.source) for o in t.optouts.list()] == [(BLOCKED, "vendor")]
        later = t.campaigns.create("c2", text="camp", audience=[BLOCKED, OK])
        assert later.preview().skipped == {"opted_out": 1} and later.run().sent == 1
    assert sorted(received(url)) == sorted([(BLOCKED, "SMSGATE"), (OK, "SMSGATE"), (OK, "SMSGATE")])


def test_other_refusals_are_not_opt_outs(vendor: str, tmp_path: Path) -> None:
    url = vendor
    with gateway(url, tmp_path, api_key="wrong") as gw:
        t = gw.tenant("acme")
        with pytest.raises(AuthFailed):
            t.send(OK, "x")
        assert t.optouts.list() == []


def test_the_adapter_reads_codes_and_statuses(vendor: str) -> None:
    """The pure parsers: an error code, a status, ignoring case; other codes stay plain refusals."""
    url = vendor
    from smsgate.provider import ProviderSettings

    prov = GenericHttpProvider(ProviderSettings(plugin="generic_http", base_url=url, credentials=SANDBOX_CREDENTIALS,
                                                options=options(opted_out_codes=["blacklisted", "DND"])), "v")
    msg = OutboundMessage(to=BLOCKED, text="x")
    req = httpx.Request("POST", f"{url}/v1/messages")
    with pytest.raises(RecipientSuppressed):
        prov.parse_send(msg, httpx.Response(400, json={"error": {"message": "no", "code": "BLACKLISTED"}},
                                            request=req))
    with pytest.raises(RecipientSuppressed):  # an error in a success answer
        prov.parse_send(msg, httpx.Response(201, json={"error": {"message": "no", "code": "dnd"}}, request=req))
    with pytest.raises(Exception) as plain:
        prov.parse_send(msg, httpx.Response(400, json={"error": {"message": "no", "code": "NO_CREDIT"}},
                                            request=req))
    assert not isinstance(plain.value, RecipientSuppressed)
    by_status = prov.parse_send(msg, httpx.Response(201, json={"data": {"messages": [{"status": "DND"}]}},
                                                    request=req))
    assert (by_status.status, by_status.suppressed, by_status.raw_status) == (Status.REJECTED, True, "DND")


def test_codes_need_somewhere_to_be_read() -> None:
    opts = copy.deepcopy(SANDBOX_OPTIONS)
    opts["response"] = {"success_status": [201], "id_path": "data.messages.0.id", "opted_out_codes": ["X"]}
    del opts["bulk"]
    with pytest.raises((ConfigError, ValueError), match="opted_out_codes"):
        GenericHttpOptions.model_validate(opts)
