"""fence27: opt-outs read again inside a provider call, and for a ``send_many``'s late requests.

A message's opt-outs are checked when it is prepared, and again in its write-ahead's
transaction after a wait for its limits (tests/test_recheck.py, tests/test_atk25.py). Two
waits were not covered:

* a retry *inside* the provider call (the vendor answered 429, or a 5xx it declares "not
  processed"): the retry waits for its ``Retry-After`` (or backoff) and for its limits again,
  after the write-ahead. A try that leaves more than ``RECHECK_AFTER`` after its call began
  now reads its numbers' opt-outs first (``smsgate.core.deliver.Fresh``): one that opted out is
  not retried (its message logged ``rejected`` / ``opted_out``, a campaign recipient
  ``skipped``), the rest of a bulk request go in a new request without it, and one that opted
  out of that provider's sender only fails over to the next provider of its route;
* a long ``send_many`` to a provider without limits: its messages are logged ahead a chunk at
  a time, with no write-ahead of each request; a request leaving more than ``RECHECK_AGE``
  after its chunk was prepared now reads them again first.

Sequencing is by the emulator's faults and smsgate's own log line of the 429 (the opt-out is
committed as that answer comes back, after the write-ahead and the first try), never by
timing; verdicts come from the emulator's own request record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_provider import API_KEY, OptOutOnSend, create_emulator, echo_plugins, sign
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway, OptedOut, Status
from smsgate.testing import EmulatorControl, FaultRule, LiveServer
from smsgate.webhooks import webhook_app

FIRST, VICTIM, OTHER, LAST = "+2348031270001", "+2348031270002", "+2348031270003", "+2348031270004"
STOPPED = "Acme: you will get no more messages"


@pytest.fixture
def emu() -> Iterator[LiveServer]:
    with LiveServer(create_emulator()) as server:
        yield server


def provider(url: str, sender: str = "ACME", **more: Any) -> dict[str, Any]:
    return {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": sender, **more}


def config(store: str, **providers: dict[str, Any]) -> dict[str, Any]:
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": providers}}}


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}"


def requests(emu: LiveServer) -> list[tuple[int, list[tuple[str, str]]]]:
    """Every send request the vendor received, in order: its HTTP status (200 for any success)
    and its messages' ``(to, from)``."""
    out = []
    for r in EmulatorControl(emu.url).requests(method="POST"):
        body = r.json()
        out.append((r.status if r.status >= 300 else 200, [(m["to"], m["from"]) for m in (body["messages"] if r.path.endswith("/bulk") else [body])]))
    return out


def processed(emu: LiveServer) -> list[str]:
    """Every number the vendor processed a message for (answered below 300), in order."""
    return [to for status, msgs in requests(emu) if status < 300 for to, _ in msgs]


@contextlib.contextmanager
def on_the_429(action: Callable[[], None]) -> Iterator[list[Callable[[], None]]]:
    """Runs ``action`` once, from smsgate's own log line of the vendor's 429 (the first try's
    answer, before its retry waits); yields a list that is empty once it ran."""
    pending = [action]

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "-> 429" in record.getMessage() and pending:
                pending.pop()()

    logger = logging.getLogger("smsgate.transport")
    handler, level = Handler(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield pending
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def throttle_once(emu: LiveServer, retry_after: float | None = 1) -> None:
    """The vendor answers the next send request 429 (not processed), with ``Retry-After``."""
    EmulatorControl(emu.url).add(FaultRule.error(429, method="POST", count=1, retry_after=retry_after))


# ------------------------------------------------------------------------- a retry after a 429
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_send_retried_after_a_429_is_not_sent_to_a_number_that_opted_out_meanwhile(
        emu: LiveServer, tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    """``send()`` (no limits): the first try is answered 429 with ``Retry-After: 1``; the
    number opts out as that answer comes back. The retry, a second later, is not sent:
    ``OptedOut``, the log says ``rejected`` (``opted_out``), and the idempotency key answers with
    that refusal. (It was sent: nothing read the opt-outs after the write-ahead.)"""
    throttle_once(emu)
    url = request.getfixturevalue("pg_url") if store == "postgres" else sqlite(tmp_path)
    with Gateway(config(url, one=provider(emu.url)), plugins=echo_plugins()) as gw:
        t = gw.tenant("acme")
        with on_the_429(lambda: t.optouts.add(VICTIM, reason="STOP while the vendor throttled")) as pending:
            with pytest.raises(OptedOut):
                t.send(VICTIM, "sale today", idempotency_key="k-1")
        assert not pending, "the 429 was never logged"
        (logged,) = t.messages(to=VICTIM)
        assert (logged.status, logged.raw_status) == (Status.REJECTED, "opted_out")
        again = t.send(VICTIM, "sale today", idempotency_key="k-1")
        assert (again.message_id, again.status) == (logged.message_id, Status.REJECTED)
    assert requests(emu) == [(429, [(VICTIM, "ACME")])]


def test_a_bulk_request_retried_after_a_429_is_sent_again_without_the_number_that_opted_out(
        emu: LiveServer, tmp_path: Path) -> None:
    """``send_many`` of two numbers in one bulk request (SQLite, no limits), answered 429: one
    number opts out meanwhile. The request is not retried as it was: it goes again without that
    number (the other is still sent), which is returned and logged ``rejected`` (``opted_out``)."""
    throttle_once(emu)
    with Gateway(config(sqlite(tmp_path), one=provider(emu.url)), plugins=echo_plugins()) as gw:
        t = gw.tenant("acme")
        with on_the_429(lambda: t.optouts.add(VICTIM)) as pending:
            results = t.send_many([FIRST, VICTIM], "sale")
        assert not pending
        assert [(r.to, r.status, r.error_code) for r in results] == [
            (FIRST, Status.SUBMITTED, None), (VICTIM, Status.REJECTED, "opted_out")]
        assert [(m.status, m.raw_status) for m in t.messages(to=VICTIM)] == [(Status.REJECTED, "opted_out")]
    assert requests(emu) == [(429, [(FIRST, "ACME"), (VICTIM, "ACME")]), (200, [(FIRST, "ACME")])]


def test_an_async_bulk_request_retried_after_its_limits_is_rechecked(emu: LiveServer, tmp_path: Path) -> None:
    """The same through ``AsyncGateway`` (SQLite; the read in the store's worker thread), a
    provider with limits (two messages each 2 s) and a 429 without ``Retry-After``: the retry
    waits ~2 s for its limits, after the write-ahead; then it goes without the opted-out number."""
    throttle_once(emu, retry_after=None)
    cfg = config(sqlite(tmp_path), one=provider(emu.url, limits=[{"rate": 2, "per": 2}]))
    with Gateway(cfg, plugins=echo_plugins()) as side:  # commits the opt-out from the transport's log line
        optouts = side.tenant("acme").optouts

        async def main() -> list[Any]:
            async with AsyncGateway(cfg, plugins=echo_plugins()) as gw:
                return await gw.tenant("acme").send_many([FIRST, VICTIM], "sale")

        with on_the_429(lambda: optouts.add(VICTIM)) as pending:
            results = asyncio.run(main())
        assert not pending
    assert [(r.to, r.status, r.error_code) for r in results] == [
        (FIRST, Status.SUBMITTED, None), (VICTIM, Status.REJECTED, "opted_out")]
    assert requests(emu) == [(429, [(FIRST, "ACME"), (VICTIM, "ACME")]), (200, [(FIRST, "ACME")])]


def test_an_async_send_retried_after_a_429_raises_opted_out(emu: LiveServer, tmp_path: Path) -> None:
    """``AsyncGateway.send`` (SQLite, no limits), the retry after ``Retry-After: 1``."""
    throttle_once(emu)
    cfg = config(sqlite(tmp_path), one=provider(emu.url))
    with Gateway(cfg, plugins=echo_plugins()) as side:
        optouts = side.tenant("acme").optouts

        async def main() -> None:
            async with AsyncGateway(cfg, plugins=echo_plugins()) as gw:
                with pytest.raises(OptedOut):
                    await gw.tenant("acme").send(VICTIM, "sale today")

        with on_the_429(lambda: optouts.add(VICTIM)) as pending:
            asyncio.run(main())
        assert not pending
        assert [(m.status, m.raw_status) for m in side.tenant("acme").messages(to=VICTIM)] == [
            (Status.REJECTED, "opted_out")]
    assert processed(emu) == []


def test_an_opt_out_of_the_first_providers_sender_only_fails_the_retry_over(emu: LiveServer, tmp_path: Path) -> None:
    """Route ``one`` (sender ``AcmeOne``) then ``two`` (``AcmeTwo``): the number opts out of
    ``AcmeOne`` only while ``one``'s first try is throttled. It is not refused (its preparation
    would have routed it to ``two``): the retry goes to ``two``, as ``AcmeTwo``. An opt-out of
    every sender refuses it (the test above)."""
    throttle_once(emu)
    cfg = config(sqlite(tmp_path), one=provider(emu.url, "AcmeOne"), two=provider(emu.url, "AcmeTwo"))
    with Gateway(cfg, plugins=echo_plugins()) as gw:
        t = gw.tenant("acme")
        with on_the_429(lambda: t.optouts.add(VICTIM, scope="AcmeOne")) as pending:
            result = t.send(VICTIM, "sale today")
        assert not pending
        assert (result.status, result.provider) == (Status.SUBMITTED, "two")
    assert requests(emu) == [(429, [(VICTIM, "AcmeOne")]), (200, [(VICTIM, "AcmeTwo")])]


def test_a_campaign_request_retried_after_a_429_skips_the_recipient_that_opted_out(
        emu: LiveServer, tmp_path: Path) -> None:
    """A campaign run (SQLite): its request is throttled and the recipient opts out meanwhile;
    the retry is not sent and the recipient is ``skipped`` (``opted_out``)."""
    throttle_once(emu)
    with Gateway(config(sqlite(tmp_path), one=provider(emu.url)), plugins=echo_plugins()) as gw:
        t = gw.tenant("acme")
        cid = t.campaigns.create("fence27", text="sale", audience=[VICTIM], mode="fanout", concurrency=1).campaign_id
        with on_the_429(lambda: t.optouts.add(VICTIM)) as pending:
            progress = t.campaigns.get(cid).run()
        assert not pending
        assert (progress.sent, progress.skipped_by_reason) == (0, {"opted_out": 1}), progress
        assert [(m.status, m.raw_status) for m in t.messages(to=VICTIM)] == [(Status.REJECTED, "opted_out")]
    assert processed(emu) == []


def test_a_stop_confirmation_retried_after_a_429_is_still_sent(emu: LiveServer) -> None:
    """The stop confirmation keeps the check it was prepared with (the opt-out its own STOP
    recorded does not hold it back) when its first try is throttled and it is retried."""
    throttle_once(emu)
    cfg = config("memory://", one=provider(emu.url))
    cfg["tenants"]["acme"]["inbound"] = {"stop_reply": STOPPED}
    with Gateway(cfg, plugins=echo_plugins()) as gw, LiveServer(webhook_app(gw)) as hooks:
        body = b'[{"type": "inbound", "id": "s1", "from": "%s", "to": "ACME", "text": "STOP"}]' % VICTIM.encode()
        r = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)}, timeout=30)
        assert r.status_code == 200, r.text
        assert gw.tenant("acme").optouts.check(VICTIM)
    assert requests(emu) == [(429, [(VICTIM, "ACME")]), (200, [(VICTIM, "ACME")])]


# --------------------------------------------------------------- a long send_many without limits
def test_a_send_many_request_leaving_long_after_its_chunk_was_checked_is_rechecked(
        emu: LiveServer, tmp_path: Path) -> None:
    """``send_many`` of four numbers (SQLite, no limits): two bulk requests, one after the
    other, the chunk logged ahead at once. The number of the second request opts out as the
    first leaves; the vendor takes 1.5 s to answer the first (longer than ``RECHECK_AGE``). The
    second request goes without it. (It was sent: a request logged ahead with its chunk read
    nothing again, however late it left.)"""
    EmulatorControl(emu.url).add(FaultRule.latency(1.5, method="POST", count=1))
    holder: list[Any] = []
    hook = OptOutOnSend(FIRST, lambda: holder[0].optouts.add(VICTIM))
    with Gateway(config(sqlite(tmp_path), one=provider(emu.url)), plugins=echo_plugins(hook)) as gw:
        t = gw.tenant("acme")
        holder.append(t)
        results = t.send_many([FIRST, OTHER, VICTIM, LAST], "sale")
        assert hook.done
        assert [(r.to, r.status, r.error_code) for r in results] == [
            (FIRST, Status.SUBMITTED, None), (OTHER, Status.SUBMITTED, None), (VICTIM, Status.REJECTED, "opted_out"),
            (LAST, Status.SUBMITTED, None)]
        assert [(m.status, m.raw_status) for m in t.messages(to=VICTIM)] == [(Status.REJECTED, "opted_out")]
    assert [msgs for _, msgs in requests(emu)] == [[(FIRST, "ACME"), (OTHER, "ACME")], [(LAST, "ACME")]]


def test_an_async_send_many_request_leaving_long_after_its_chunk_was_checked_is_rechecked(
        emu: LiveServer, tmp_path: Path) -> None:
    """The same through ``AsyncGateway`` (SQLite), one request at a time."""
    EmulatorControl(emu.url).add(FaultRule.latency(1.5, method="POST", count=1))
    cfg = config(sqlite(tmp_path), one=provider(emu.url))
    with Gateway(cfg, plugins=echo_plugins()) as side:
        optouts = side.tenant("acme").optouts
        hook = OptOutOnSend(FIRST, lambda: optouts.add(VICTIM))

        async def main() -> list[Any]:
            async with AsyncGateway(cfg, plugins=echo_plugins(hook)) as gw:
                return await gw.tenant("acme").send_many([FIRST, OTHER, VICTIM, LAST], "sale", concurrency=1)

        results = asyncio.run(main())
        assert hook.done
    assert [(r.to, r.status, r.error_code) for r in results] == [
        (FIRST, Status.SUBMITTED, None), (OTHER, Status.SUBMITTED, None), (VICTIM, Status.REJECTED, "opted_out"),
        (LAST, Status.SUBMITTED, None)]
    assert [msgs for _, msgs in requests(emu)] == [[(FIRST, "ACME"), (OTHER, "ACME")], [(LAST, "ACME")]]
