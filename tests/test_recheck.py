"""Opt-outs read again in the write-ahead's transaction, after a send waited for its limits.

A ``send`` / ``send_many`` request is prepared (its numbers' opt-outs checked), then waits for
its provider's rate limit (as long as the limits say, without ``max_limit_wait``). A STOP or an
``optouts.add`` committed during that wait must hold: the request reads the opt-outs again in
the transaction that logs it ahead. Verdicts come from the emulator's own request record (what
the vendor received), and from the log. The campaign side of the same rule is tests/test_atk22.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, create_emulator, echo_plugins, echo_sent_to, post_inbound
from smsgate import AsyncGateway, Gateway, OptedOut, OutboundMessage, Status, hookimpl
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.webhooks import webhook_app

FIRST, VICTIM, OTHER = "+2348031400001", "+2348031400002", "+2348031400003"
STOPPED = "Acme: you will get no more messages"


class Waiting:
    """Sets ``reached`` when a message to ``to`` is about to ask for its place in the limits
    (``smsgate_before_send`` runs after its preparation, before the wait)."""

    def __init__(self, to: str) -> None:
        self.to = to
        self.reached = threading.Event()

    @hookimpl
    def smsgate_before_send(self, tenant: str, message: OutboundMessage) -> None:
        if message.to == self.to:
            self.reached.set()


@pytest.fixture
def emu() -> Iterator[LiveServer]:
    with LiveServer(create_emulator()) as server:
        yield server


def config(url: str, store: str, **tenant: Any) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            "limits": [{"rate": 1, "per": 2}]}  # one message each 2 s: the next waits ~2 s
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}, **tenant}}}


def sent_to(emu: LiveServer) -> list[str]:
    return echo_sent_to(EmulatorControl(emu.url))


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_send_waiting_for_its_limit_is_not_sent_to_a_number_that_opted_out_meanwhile(
        emu: LiveServer, store: str, tmp_path: Path) -> None:
    """``send()`` raises ``OptedOut`` and the vendor never sees the message; the log says
    ``rejected`` (``opted_out``); the idempotency key answers with that refusal. (It was sent:
    only its preparation checked the opt-outs, up to the limit's whole wait before.)"""
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'log.db'}"
    waiting = Waiting(VICTIM)
    with Gateway(config(emu.url, url), plugins=echo_plugins(waiting)) as gw:
        t = gw.tenant("acme")
        assert t.send(FIRST, "first").status is Status.SUBMITTED  # the limit is full now
        outcome: list[object] = []

        def send() -> None:
            try:
                outcome.append(t.send(VICTIM, "sale today", idempotency_key="k-1"))
            except OptedOut as exc:
                outcome.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        assert waiting.reached.wait(10)
        t.optouts.add(VICTIM, reason="STOP while the send waited")
        sender.join(20)
        assert not sender.is_alive()
        assert isinstance(outcome[0], OptedOut), outcome
        (logged,) = t.messages(to=VICTIM)
        assert (logged.status, logged.raw_status) == (Status.REJECTED, "opted_out")
        again = t.send(VICTIM, "sale today", idempotency_key="k-1")  # the key is bound to that refusal
        assert (again.message_id, again.status) == (logged.message_id, Status.REJECTED)
    assert sent_to(emu) == [FIRST]


def test_send_many_waiting_for_its_limits_leaves_out_only_the_number_that_opted_out(emu: LiveServer) -> None:
    """Three messages, one each 2 s: the third's number opts out while the second waits. The
    vendor gets the first two; the third is returned and logged ``rejected`` (``opted_out``)."""
    waiting = Waiting(VICTIM)
    with Gateway(config(emu.url, "memory://"), plugins=echo_plugins(waiting)) as gw:
        t = gw.tenant("acme")
        results: list[Any] = []
        sender = threading.Thread(target=lambda: results.extend(t.send_many([FIRST, OTHER, VICTIM], "sale")))
        sender.start()
        assert waiting.reached.wait(10)
        t.optouts.add(VICTIM)
        sender.join(30)
        assert not sender.is_alive()
        assert [(r.to, r.status, r.error_code) for r in results] == [
            (FIRST, Status.SUBMITTED, None), (OTHER, Status.SUBMITTED, None), (VICTIM, Status.REJECTED, "opted_out")]
        assert [m.status for m in t.messages(to=VICTIM)] == [Status.REJECTED]
    assert sent_to(emu) == [FIRST, OTHER]


def test_an_async_send_many_waiting_for_its_limits_is_rechecked_too(emu: LiveServer, tmp_path: Path) -> None:
    """The same through ``AsyncGateway`` on SQLite: the read is in the write-ahead's
    transaction, in the store's worker thread."""
    waiting = Waiting(VICTIM)
    cfg = config(emu.url, f"sqlite:///{tmp_path / 'log.db'}")

    async def main() -> list[Any]:
        async with AsyncGateway(cfg, plugins=echo_plugins(waiting)) as gw:
            t = gw.tenant("acme")
            task = asyncio.ensure_future(t.send_many([FIRST, VICTIM], "sale"))
            while not waiting.reached.is_set():
                await asyncio.sleep(0.01)
            await t.optouts.add(VICTIM)
            return await task

    results = asyncio.run(main())
    assert [(r.status, r.error_code) for r in results] == [(Status.SUBMITTED, None), (Status.REJECTED, "opted_out")]
    assert sent_to(emu) == [FIRST]


def test_a_stop_confirmation_waiting_for_its_limit_is_still_sent(emu: LiveServer) -> None:
    """The one message a STOP's own opt-out does not hold back, its confirmation, keeps that
    exemption when it waits for its provider's limit (and is checked again after the wait)."""
    cfg = config(emu.url, "memory://", inbound={"stop_reply": STOPPED})
    with Gateway(cfg, plugins=echo_plugins()) as gw, LiveServer(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        assert t.send(FIRST, "first").status is Status.SUBMITTED  # the limit is full: the reply waits ~2 s
        r = post_inbound(f"{hooks.url}/acme/one", VICTIM, "STOP", event_id="s1")
        assert r.status_code == 200, r.text
        assert t.optouts.check(VICTIM)
    assert sent_to(emu) == [FIRST, VICTIM]
