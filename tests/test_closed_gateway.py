"""Using a Gateway / AsyncGateway (or a tenant handle of one) after close() / aclose() is one
clear GatewayClosed, not sqlite3.ProgrammingError, httpx's or the executor's RuntimeError."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_provider import sign
from services import echo_config as config
from services import echo_plugins as plugins
from smsgate import AsyncGateway, Gateway, GatewayClosed, SmsgateError
from smsgate.store.base import Store
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store | str]:
    """The gateway's store: an SQLite URL (the gateway opens and closes it) or a PostgreSQL
    store given to it (closed by the test, not the gateway)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'closed.db'}"
        return
    from test_store_postgres import scratch_store

    s = scratch_store()
    s.migrate()
    yield s
    s.close()


def test_every_use_after_close_is_gateway_closed(store: Store | str, emu_url: str) -> None:
    gw = Gateway(config(emu_url), store=store, plugins=plugins())
    acme = gw.tenant("acme")
    sent = acme.send("08031234567", "before")
    lists, optouts, campaigns = acme.contact_lists, acme.optouts, acme.campaigns
    camp = campaigns.create("c", text="hi", audience=["08031234568"])
    gw.close()
    gw.close()  # again: nothing
    uses: list[Callable[[], Any]] = [
        lambda: acme.send("08031234567", "after"),
        lambda: acme.send_many(["08031234567"], "after"),
        lambda: acme.messages(),
        lambda: acme.get(sent.message_id),
        lambda: acme.status(sent.message_id),
        lambda: acme.stats(),
        lambda: acme.health(),
        lambda: acme.sync_statuses(),
        lambda: acme.purge(older_than=timedelta(days=1)),
        lambda: acme.run("one", acme.provider("one").check()),
        lambda: optouts.add("08031234567"),
        lambda: optouts.add_many(["08031234567"]),
        lambda: lists.list(),
        lambda: lists.export("any", io.StringIO()),
        lambda: campaigns.list(),
        lambda: camp.progress(),
        lambda: camp.run(),
        lambda: acme.contact_lists,
        lambda: gw.tenant("acme"),
        lambda: gw.receive("acme", "one", {}, b"[]"),
        lambda: gw.purge(older_than=60),
        lambda: gw.check(),
    ]
    for i, use in enumerate(uses):
        with pytest.raises(GatewayClosed) as info:
            use()
        assert "the Gateway is closed" in str(info.value), i
        assert isinstance(info.value, SmsgateError) and isinstance(info.value, RuntimeError)


def test_every_use_after_aclose_is_gateway_closed(store: Store | str, emu_url: str) -> None:
    async def run() -> None:
        agw = AsyncGateway(config(emu_url), store=store, plugins=plugins())
        acme = agw.tenant("acme")
        sent = await acme.send("08031234567", "before")
        await agw.aclose()
        await agw.aclose()  # again: nothing
        uses: list[Callable[[], Any]] = [
            lambda: acme.send("08031234567", "after"),
            lambda: acme.send_many(["08031234567"], "after"),
            lambda: acme.messages(),
            lambda: acme.get(sent.message_id),
            lambda: acme.status(sent.message_id),
            lambda: acme.stats(),
            lambda: acme.health(),
            lambda: acme.optouts.check("08031234567"),
            lambda: acme.contact_lists.list(),
            lambda: acme.optouts.add_many(["08031234567"]),
            lambda: acme.contact_lists.export("any", io.StringIO()),
            lambda: agw.receive("acme", "one", {}, b"[]"),
            lambda: agw.purge(older_than=60),
        ]
        for i, use in enumerate(uses):
            with pytest.raises(GatewayClosed, match="the AsyncGateway is closed"):
                await use()
            assert i >= 0
        with pytest.raises(GatewayClosed):
            agw.tenant("acme")

    asyncio.run(run())


def test_the_webhook_app_of_a_closed_gateway_answers_503(emu_url: str) -> None:
    gw = Gateway(config(emu_url), plugins=plugins())
    sent = gw.tenant("acme").send("08031234567", "x")
    with LiveServer(webhook_app(gw)) as hooks:
        gw.close()  # shutting down while the app still takes requests
        body = json.dumps([{"id": sent.provider_message_id, "status": "delivered"}]).encode()
        answer = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)})
    assert answer.status_code == 503
