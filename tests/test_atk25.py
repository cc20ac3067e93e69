"""atk25: the opt-out re-check in the write-ahead's transaction (commit 1073f99), attacked.

Written from docs/routing.md ("Waiting too long for a limit", last paragraph: "A request that
waited for its limits (more than 50 ms) checks its numbers' opt-outs again once they admit it"),
docs/campaigns.md and docs/inbound.md. Verdicts come from the emulators' own request records
(what the vendor received), never from smsgate's log alone. Sequencing is by hooks, never by
time: an opt-out is committed from inside ``smsgate_before_send`` (after the message was
prepared, its opt-outs checked), so the only question left is whether a later wait for a
limit re-checks it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, EchoProvider, OptOutOnSend, create_emulator, echo_plugins, live_on
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import AsyncGateway, Gateway, OptedOut, OutboundMessage, SendResult, Status, hookimpl
from smsgate.models import utcnow
from smsgate.store.base import LogWrite, NewMessage
from smsgate.testing import EmulatorControl, FaultRule, LiveServer

FIRST, VICTIM, OTHER = "+2348031500001", "+2348031500002", "+2348031500003"


def live(app: Any) -> LiveServer:
    """``app`` served on a free port of this file's range (47500-47589)."""
    return live_on(app, range(47500, 47590))


@pytest.fixture
def emu() -> Iterator[LiveServer]:
    with live(create_emulator()) as server:
        yield server


#: nothing listens there: a connection refused never reached a vendor (a failover)
DOWN = "http://127.0.0.1:47599"


plugins = echo_plugins


def provider(url: str, sender: str = "ACME", **more: Any) -> dict[str, Any]:
    return {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": sender, **more}


#: one message each 2 s: the next waits ~2 s
SLOW = [{"rate": 1, "per": 2}]


def failover_config(store: str, down: str, up: str, **tenant: Any) -> dict[str, Any]:
    """``one`` (down, no limits) then ``two`` (up, one message each 2 s)."""
    providers = {"one": provider(down), "two": provider(up, limits=SLOW)}
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": providers, **tenant}}}


def sent_to(server: LiveServer) -> list[str]:
    """Every number the vendor received and processed, in order (single and bulk requests)."""
    out = []
    for r in EmulatorControl(server.url).requests(method="POST"):
        if r.status >= 300:
            continue
        body = r.json()
        out += [m["to"] for m in (body["messages"] if r.path.endswith("/bulk") else [body])]
    return out


def store_url(kind: str, tmp_path: Path) -> str:
    return "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'log.db'}"


# ----------------------------------------------------------------------------------- failover
@pytest.mark.parametrize("store", ["memory", "sqlite", "postgres"])
def test_a_send_failed_over_to_a_limited_provider_is_rechecked_after_its_wait(
        emu: LiveServer, store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """``send()`` through ``one`` (down: connection refused) then ``two`` (limited, full): the
    message waits ~2 s for ``two``'s limit after failing over. An opt-out committed after its
    preparation must hold once the limit admits it (docs/routing.md). It was sent: the wait of a
    failover is inside its provider call, after the write-ahead, and nothing read the opt-outs
    again."""
    holder: list[Any] = []
    hook = OptOutOnSend(VICTIM, lambda: holder[0].optouts.add(VICTIM, reason="STOP after preparation"))
    url = request.getfixturevalue("pg_url") if store == "postgres" else store_url(store, tmp_path)
    with Gateway(failover_config(url, DOWN, emu.url), plugins=plugins(hook)) as gw:
        t = gw.tenant("acme")
        holder.append(t)
        assert t.send(FIRST, "first", provider="two").status is Status.SUBMITTED  # two's limit is full now
        with pytest.raises(OptedOut):
            t.send(VICTIM, "sale today", idempotency_key="k-1")
        (logged,) = t.messages(to=VICTIM)
        assert (logged.status, logged.raw_status) == (Status.REJECTED, "opted_out")
        again = t.send(VICTIM, "sale today", idempotency_key="k-1")  # the key answers with that refusal
        assert (again.message_id, again.status) == (logged.message_id, Status.REJECTED)
    assert sent_to(emu) == [FIRST]


@pytest.mark.parametrize(("scope", "refused"), [("AcmeTwo", True), ("AcmeOne", False)])
def test_a_failover_rechecks_the_optouts_of_the_sender_it_goes_out_with(
        emu: LiveServer, scope: str, refused: bool, tmp_path: Path) -> None:
    """Sender-scoped opt-outs: ``one`` sends as ``AcmeOne`` (down), ``two`` as ``AcmeTwo``
    (limited). An opt-out of ``AcmeTwo`` committed after the message's preparation holds once
    ``two``'s limit admits the failed-over message; one of ``AcmeOne`` only does not stop it
    going out as ``AcmeTwo``. (Both were sent.)"""
    holder: list[Any] = []
    hook = OptOutOnSend(VICTIM, lambda: holder[0].optouts.add(VICTIM, scope=scope))
    cfg = failover_config(store_url("sqlite", tmp_path), DOWN, emu.url)
    cfg["tenants"]["acme"]["providers"]["one"]["sender"] = "AcmeOne"
    cfg["tenants"]["acme"]["providers"]["two"]["sender"] = "AcmeTwo"
    with Gateway(cfg, plugins=plugins(hook)) as gw:
        t = gw.tenant("acme")
        holder.append(t)
        assert t.send(FIRST, "first", provider="two").status is Status.SUBMITTED  # two's limit is full now
        if refused:
            with pytest.raises(OptedOut):
                t.send(VICTIM, "sale today")
        else:
            assert t.send(VICTIM, "sale today").status is Status.SUBMITTED
    assert sent_to(emu) == ([FIRST] if refused else [FIRST, VICTIM])


def test_an_async_send_many_failed_over_to_a_limited_provider_is_rechecked(emu: LiveServer, tmp_path: Path) -> None:
    """The same through ``AsyncGateway`` (SQLite), ``send_many`` of two numbers: the opt-out is
    committed by another gateway on the same database (another process, in effect) as the
    victim's message is about to leave. The other number still gets its message."""
    url = store_url("sqlite", tmp_path)
    cfg = failover_config(url, DOWN, emu.url)
    other = Gateway(cfg, plugins=plugins())
    hook = OptOutOnSend(VICTIM, lambda: other.tenant("acme").optouts.add(VICTIM))

    async def main() -> list[Any]:
        async with AsyncGateway(cfg, plugins=plugins(hook)) as gw:
            t = gw.tenant("acme")
            assert (await t.send(FIRST, "first", provider="two")).status is Status.SUBMITTED
            return await t.send_many([OTHER, VICTIM], "sale")

    try:
        results = asyncio.run(main())
    finally:
        other.close()
    assert [(r.to, r.status, r.error_code) for r in results] == [
        (OTHER, Status.SUBMITTED, None), (VICTIM, Status.REJECTED, "opted_out")]
    assert sent_to(emu) == [FIRST, OTHER]


# ----------------------------------------------------------------------------------- send lease
def test_a_message_refused_by_the_recheck_holds_back_no_recovery(
        emu: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message the re-check refuses in its write-ahead's transaction never leaves and waits for
    no answer: the process's send lease must stop protecting it. It stayed among the lease's
    waiting messages for the life of the process, so the lease row's ``oldest`` stuck at its time
    and ``recover_queued()`` left every ``queued`` message of a crashed process logged since
    then alone, for as long as this process lived."""
    import smsgate.core.recover as recover

    monkeypatch.setattr(recover, "MARGIN", 0.0)  # the lease's oldest is its oldest waiting message's time
    cfg = failover_config(store_url("sqlite", tmp_path), DOWN, emu.url)
    holder: list[Any] = []
    hook = OptOutOnSend(VICTIM, lambda: holder[0].optouts.add(VICTIM))
    with Gateway(cfg, plugins=plugins(hook)) as gw:
        t = gw.tenant("acme")
        holder.append(t)
        assert t.send(FIRST, "first", provider="two").status is Status.SUBMITTED  # two's limit is full now
        with pytest.raises(OptedOut):
            t.send(VICTIM, "sale today", provider="two")  # waits for two's limit: refused in its write-ahead
        (refused,) = t.messages(to=VICTIM)
        assert refused.raw_status == "opted_out"
        # a crashed process's message, logged ahead after that refusal, never answered
        crashed = NewMessage("acme", "msg_crashed_atk25", OTHER, Status.QUEUED, utcnow())
        gw.store.write_log("acme", LogWrite(inserts=[crashed]))
        assert crashed.created_at > refused.created_at
        gw._core_.send_lease("acme").renew()  # what its renewing thread does every 20 s
        assert t.recover_queued(older_than=0) == ["msg_crashed_atk25"]
    assert sent_to(emu) == [FIRST]


# ----------------------------------------------------------------------------------- PostgreSQL
def _waiting_on(pg: Any, schema: str, what: str) -> bool:
    """Whether a backend waits for a lock: on the table ``messages`` of ``schema``
    (``what="messages"``), or on an advisory lock (``what="advisory"``)."""
    if what == "advisory":
        sql, args = "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory'", ()
    else:
        sql = ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n "
               "ON n.oid = c.relnamespace WHERE NOT l.granted AND c.relname = %s AND n.nspname = %s")
        args = (what, schema)
    return bool(pg.execute(sql, args).fetchone()[0])


def _until(done: Callable[[], bool], what: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def test_postgres_an_optout_committed_while_a_write_ahead_is_blocked_after_its_read_holds(
        emu: LiveServer, pg_url: str) -> None:  # noqa: F811
    """PostgreSQL (READ COMMITTED): a write-ahead reads its numbers' opt-outs first, then writes;
    a statement after the read may wait for a lock (another transaction's), and an opt-out
    committed meanwhile was not seen: the message was logged ``queued`` after the opt-out
    committed, and sent. The docs allow only "one logged ahead before the opt-out committed".

    Sequenced by PostgreSQL's own lock table: the write-ahead is held at its insert (a share
    lock on ``messages`` taken by this test), the opt-out is added from another thread, and the
    table is let go once the opt-out is committed, or waits for the write-ahead (the fix: the
    re-check holds the tenant's opt-out advisory lock shared until its commit; adding an
    opt-out takes it exclusively). Either the message is refused, or it was logged before the opt-out
    committed (seen logged by a read made right after the opt-out's commit returned)."""
    import threading

    import psycopg

    schema = pg_url.rsplit("schema=", 1)[1]
    dsn = pg_url.split("?", 1)[0]
    cfg = {"store": pg_url, "tenants": {"acme": {"default_region": "NG",
                                                 "providers": {"two": provider(emu.url, limits=SLOW)}}}}
    with Gateway(cfg, plugins=plugins()) as gw, psycopg.connect(dsn, autocommit=True) as watch:
        t = gw.tenant("acme")
        assert t.send(FIRST, "first").status is Status.SUBMITTED  # the limit is full: the next waits ~2 s
        outcome: list[object] = []
        logged_at_optout: list[object] = []
        with psycopg.connect(dsn) as hold:
            hold.execute(f'LOCK TABLE "{schema}".messages IN SHARE MODE')  # inserts wait; reads go on

            def send() -> None:
                try:
                    outcome.append(t.send(VICTIM, "sale today"))
                except OptedOut as exc:
                    outcome.append(exc)

            def optout() -> None:
                with Gateway(cfg, plugins=plugins()) as other:
                    other.tenant("acme").optouts.add(VICTIM, reason="STOP")
                    logged_at_optout.extend(other.tenant("acme").messages(to=VICTIM))  # committed ones

            sender = threading.Thread(target=send)
            sender.start()
            _until(lambda: _waiting_on(watch, schema, "messages"), "the write-ahead waits at its insert")
            adder = threading.Thread(target=optout)
            adder.start()
            _until(lambda: not adder.is_alive() or _waiting_on(watch, schema, "advisory"),
                   "the opt-out is committed, or waits for the write-ahead")
            hold.rollback()  # the write-ahead goes on
        adder.join(30)
        sender.join(30)
        assert not adder.is_alive() and not sender.is_alive()
    if VICTIM in sent_to(emu):
        assert logged_at_optout, "texted though logged ahead after the opt-out was committed"
    else:
        assert isinstance(outcome[0], OptedOut), outcome


# ----------------------------------------------------------------------------------- keyword replies
STARTED = "Acme: welcome back"


def test_a_start_confirmation_waiting_for_its_limit_is_held_back_by_a_stop_meanwhile(emu: LiveServer) -> None:
    """docs/inbound.md: "the start confirmation goes through the opt-out check as any message
    does". A START lifts the number's opt-out and its confirmation waits for the provider's
    limit; the number opts out again meanwhile (committed from ``smsgate_before_send``, after
    the confirmation was prepared). The confirmation must not reach the vendor: it was sent,
    every reply under smsgate's own idempotency keys being left out of the re-check (only the
    stop confirmation's own opt-out, and a help reply, are the documented exceptions)."""
    from reference_provider import post_inbound
    from smsgate.webhooks import webhook_app

    holder: list[Any] = []

    class StopAgain:
        @hookimpl
        def smsgate_before_send(self, tenant: str, message: OutboundMessage) -> None:
            if message.to == VICTIM and message.text == STARTED:
                holder[0].optouts.add(VICTIM, reason="STOP again while the welcome waited")

    cfg = {"store": "memory://", "tenants": {"acme": {
        "default_region": "NG", "providers": {"two": provider(emu.url, limits=SLOW)},
        "inbound": {"start_reply": STARTED}}}}
    with Gateway(cfg, plugins=plugins(StopAgain())) as gw, live(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        holder.append(t)
        t.optouts.add(VICTIM, reason="an earlier STOP")
        assert t.send(FIRST, "first").status is Status.SUBMITTED  # the limit is full: the welcome waits ~2 s
        r = post_inbound(f"{hooks.url}/acme/two", VICTIM, "START", event_id="s1")
        assert r.status_code == 200, r.text
        assert t.optouts.check(VICTIM)  # opted out again
    assert sent_to(emu) == [FIRST]


def test_a_help_reply_waiting_for_its_limit_is_still_sent_after_a_stop(emu: LiveServer) -> None:
    """The documented exception kept: a HELP is answered even after STOP (carriers ask it), so
    its reply is not held back by an opt-out committed while it waited for its limit."""
    from reference_provider import post_inbound
    from smsgate.webhooks import webhook_app

    holder: list[Any] = []
    helped = "Acme: reply STOP to stop"

    class StopMeanwhile:
        @hookimpl
        def smsgate_before_send(self, tenant: str, message: OutboundMessage) -> None:
            if message.to == VICTIM and message.text == helped:
                holder[0].optouts.add(VICTIM)

    cfg = {"store": "memory://", "tenants": {"acme": {
        "default_region": "NG", "providers": {"two": provider(emu.url, limits=SLOW)},
        "inbound": {"help_reply": helped}}}}
    with Gateway(cfg, plugins=plugins(StopMeanwhile())) as gw, live(webhook_app(gw)) as hooks:
        t = gw.tenant("acme")
        holder.append(t)
        assert t.send(FIRST, "first").status is Status.SUBMITTED
        r = post_inbound(f"{hooks.url}/acme/two", VICTIM, "HELP", event_id="h1")
        assert r.status_code == 200, r.text
    assert sent_to(emu) == [FIRST, VICTIM]


# ----------------------------------------------------------------------------------- sent again
class ResendOnce(EchoProvider):
    """The echo vendor, but its first answer for ``VICTIM`` is "not processed, send it again"
    (``SendResult.resend``), given to a look-up request (a place in the limits, no send); the
    number opts out as that answer comes back (``optout``, set by the test)."""

    name = "echo_resend"
    optout: Callable[[], None] | None = None

    def send(self, msg: OutboundMessage) -> Any:
        if msg.to == VICTIM and ResendOnce.optout is not None:
            optout, ResendOnce.optout = ResendOnce.optout, None
            yield from self.call_ok(self.request("GET", "/messages", params={"client_ref": "none"}))
            optout()
            return SendResult(to=msg.to, status=Status.FAILED, resend=True, error="busy: send it again")
        return (yield from super().send(msg))


class ResendPlugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(ResendOnce)


def test_a_send_the_vendor_asks_to_send_again_is_rechecked_after_waiting_for_its_limit(emu: LiveServer) -> None:
    """The vendor answers "send it again" (it did not process the message) and the number opts
    out meanwhile; the message is sent again once its provider's limit admits it (~2 s later):
    that wait must be followed by the re-check, as a first request's is. (It was sent: the
    wait was inside the provider call.)"""
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG", "providers": {
        "two": {**provider(emu.url, limits=SLOW), "plugin": "echo_resend"}}}}}
    pm = plugins(ResendPlugin())
    with Gateway(cfg, plugins=pm) as gw:
        t = gw.tenant("acme")
        ResendOnce.optout = lambda: t.optouts.add(VICTIM, reason="STOP while the vendor was busy")
        try:
            assert t.send(FIRST, "first").status is Status.SUBMITTED
            with pytest.raises(OptedOut):
                t.send(VICTIM, "sale today")
        finally:
            ResendOnce.optout = None
        (logged,) = t.messages(to=VICTIM)
        assert (logged.status, logged.raw_status) == (Status.REJECTED, "opted_out")
    assert sent_to(emu) == [FIRST]


# ------------------------------------------------------------------------ a retry inside the call
def test_a_request_retried_after_a_429_is_rechecked_after_waiting_for_its_limit(emu: LiveServer) -> None:
    """The vendor answers 429 (not processed) to the first try; the number opts out as that
    answer comes back (committed from the transport's own log line of the 429, before the retry
    waits); the retry waits ~2 s for the provider's limit (its second place). It was sent (no
    re-check followed that wait); it reads the opt-outs again first now (fence27, see
    tests/test_fence27.py)."""
    import logging

    holder: list[Any] = []

    class OptOutOn429(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "-> 429" in record.getMessage() and holder:
                holder.pop().optouts.add(VICTIM, reason="STOP while the vendor throttled")

    EmulatorControl(emu.url).add(FaultRule.error(429, method="POST", count=1))
    logger = logging.getLogger("smsgate.transport")
    handler, level = OptOutOn429(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "NG",
                                                      "providers": {"two": provider(emu.url, limits=SLOW)}}}}
    try:
        with Gateway(cfg, plugins=plugins()) as gw:
            t = gw.tenant("acme")
            holder.append(t)
            with pytest.raises(OptedOut):
                t.send(VICTIM, "sale today")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not holder, "the 429 was never logged: the test did not run its course"
    assert VICTIM not in sent_to(emu)
