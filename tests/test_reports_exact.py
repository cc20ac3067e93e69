"""Delivery reports applied exactly, through the webhook app over loopback HTTP.

``matched`` counts only reports that matched a logged message; a report for a
message not logged yet is kept and applied once it is; a repeated report changes
nothing; a multipart message is delivered only once its last part is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from smsgate import Gateway, Status, hookimpl
from smsgate.core.reports import combine_parts
from smsgate.plugins import PluginManager
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app


class Seen:
    def __init__(self) -> None:
        self.statuses: list[tuple[str, Status]] = []

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: Any) -> None:
        self.statuses.append((message_id, report.status))


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[tuple[Gateway, str, Seen]]:
    seen = Seen()
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        pm.register(seen)
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}
        store = SQLiteStore(str(tmp_path / "log.db"))
        store.migrate()
        with Gateway(cfg, store=store, plugins=pm) as gw, LiveServer(webhook_app(gw)) as hooks:
            yield gw, f"{hooks.url}/acme/one", seen


def post(url: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps(items).encode()
    r = httpx.post(url, content=body, headers={"X-Echo-Signature": sign(body)})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def test_matched_counts_only_reports_of_logged_messages(env: tuple[Gateway, str, Seen]) -> None:
    gw, url, _ = env
    sent = gw.tenant("acme").send("08031234567", "x")
    answer = post(url, [{"id": sent.provider_message_id, "status": "delivered"},
                        {"id": "nobody-1", "status": "delivered"}, {"id": "nobody-2", "status": "failed"}])
    assert (answer["reports"], answer["matched"], answer["orphaned"]) == (3, 1, 2)


def test_report_before_its_message_is_applied_once_the_message_is_logged(env: tuple[Gateway, str, Seen]) -> None:
    gw, url, _ = env
    tenant = gw.tenant("acme")
    # the emulator numbers messages m1, m2...: the report for m1 overtakes the send
    answer = post(url, [{"id": "m1", "status": "delivered"}])
    assert (answer["matched"], answer["orphaned"]) == (0, 1)
    assert [(o.provider, o.provider_message_id) for o in tenant.orphan_reports()] == [("one", "m1")]
    sent = tenant.send("08031234567", "x")
    assert sent.provider_message_id == "m1"
    record = tenant.get(sent.message_id)
    assert record.status is Status.DELIVERED
    assert [e.status for e in record.history] == [Status.QUEUED, Status.SUBMITTED, Status.DELIVERED]
    assert tenant.orphan_reports() == []


def test_status_hook_runs_once_for_a_report_applied_when_its_message_is_logged(
        env: tuple[Gateway, str, Seen]) -> None:
    gw, url, seen = env
    tenant = gw.tenant("acme")
    post(url, [{"id": "m1", "status": "accepted"}, {"id": "m1", "status": "delivered"}])  # both overtake the send
    assert seen.statuses == []  # no message yet: nothing to tell
    sent = tenant.send("08031234567", "x")
    assert sent.provider_message_id == "m1"
    assert seen.statuses == [(sent.message_id, Status.SUBMITTED), (sent.message_id, Status.DELIVERED)]
    other = tenant.send("08031234568", "y")  # later writes apply nothing again
    post(url, [{"id": other.provider_message_id, "status": "delivered"}])
    assert seen.statuses[2:] == [(other.message_id, Status.DELIVERED)]


def test_status_hook_runs_for_adopted_reports_under_the_async_gateway(tmp_path: Path) -> None:
    import asyncio

    from smsgate import AsyncGateway

    seen = Seen()
    with LiveServer(create_emulator()) as emu:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        pm.register(seen)
        prov = {"plugin": "echo", "base_url": emu.url, "credentials": {"api_key": API_KEY}}
        store = SQLiteStore(str(tmp_path / "async.db"))
        store.migrate()
        gw = AsyncGateway({"tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}},
                          store=store, plugins=pm)

        async def run() -> str:
            tenant = gw.tenant("acme")
            body = json.dumps([{"id": "m1", "status": "delivered"}]).encode()
            await gw.receive("acme", "one", {"X-Echo-Signature": sign(body)}, body)
            sent = await tenant.send("08031234567", "x")
            await gw.aclose()
            return sent.message_id

        mid = asyncio.run(run())
    assert seen.statuses == [(mid, Status.DELIVERED)]


def test_repeated_reports_are_applied_once(env: tuple[Gateway, str, Seen]) -> None:
    gw, url, _ = env
    tenant = gw.tenant("acme")
    sent = tenant.send("08031234567", "x")
    item = {"id": sent.provider_message_id, "status": "delivered"}
    for _ in range(3):
        assert post(url, [item, item])["matched"] == 2
    history = tenant.get(sent.message_id).history
    assert [e.status for e in history].count(Status.DELIVERED) == 1


def test_multipart_message_is_delivered_only_after_its_last_part(env: tuple[Gateway, str, Seen]) -> None:
    gw, url, _ = env
    tenant = gw.tenant("acme")
    sent = tenant.send("08031234567", "x" * 400)  # three parts
    pmid = sent.provider_message_id
    post(url, [{"id": pmid, "status": "delivered", "part": 2, "parts": 3}])
    assert tenant.get(sent.message_id).status is Status.SENT  # a delivered part: the message is on its way
    post(url, [{"id": pmid, "status": "delivered", "part": 1, "parts": 3},
               {"id": pmid, "status": "delivered", "part": 1, "parts": 3}])  # repeated
    assert tenant.get(sent.message_id).status is Status.SENT
    post(url, [{"id": pmid, "status": "delivered", "part": 3, "parts": 3}])
    record = tenant.get(sent.message_id)
    assert record.status is Status.DELIVERED
    assert [e.status for e in record.history].count(Status.DELIVERED) == 1


def test_multipart_message_fails_when_a_part_fails(env: tuple[Gateway, str, Seen]) -> None:
    gw, url, _ = env
    tenant = gw.tenant("acme")
    sent = tenant.send("08031234567", "y" * 400)
    pmid = sent.provider_message_id
    post(url, [{"id": pmid, "status": "delivered", "part": 1, "parts": 2},
               {"id": pmid, "status": "failed", "part": 2, "parts": 2}])
    assert tenant.get(sent.message_id).status is Status.FAILED


def test_combine_parts_rule() -> None:
    S = Status
    assert combine_parts({1: S.DELIVERED}, 2) is S.SENT
    assert combine_parts({1: S.DELIVERED, 2: S.DELIVERED}, 2) is S.DELIVERED
    assert combine_parts({1: S.SUBMITTED, 2: S.DELIVERED}, 2) is S.SUBMITTED
    assert combine_parts({2: S.UNDELIVERED, 1: S.FAILED}, 2) is S.FAILED
    assert combine_parts({}, 2) is S.SENT
