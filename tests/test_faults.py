"""Injected faults against the "correct under failure" claims: asyncio cancellation of sends,
a send_many stopped half-way, the database failing mid-run, a provider misbehaving.

Every test uses the reference provider's emulator over loopback HTTP and a real SQLite file
(or PostgreSQL server); what was delivered is read from the emulator's own request record
(``EmulatorControl.processed``), never from smsgate's log.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bounded import drop_schema
from reference_provider import create_emulator
from services import echo_config, echo_plugins
from smsgate import AsyncGateway, Gateway, Status, hookimpl
from smsgate.store.base import LogResult, LogWrite
from smsgate.store.sqlite import SQLiteStore
from smsgate.testing import EmulatorControl, FaultRule, LiveServer


class Vendor:
    """The echo emulator on loopback: its URL, its control (request record, faults) and the
    messages it accepted (its own state)."""

    def __init__(self) -> None:
        self.accepted: dict[str, dict[str, Any]] = {}
        self.server = LiveServer(create_emulator(self.accepted)).start()
        self.url = self.server.url
        self.ctl = EmulatorControl(self.url)

    def sent_to(self) -> Counter[str]:
        """How many messages the vendor accepted per number (E.164)."""
        return Counter(m["to"] for m in self.accepted.values())


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    v = Vendor()
    yield v
    v.server.stop()


def numbers(n: int) -> list[str]:
    return [f"0803123{i:04d}" for i in range(n)]


def e164(local: str) -> str:
    return "+234" + local[1:]


class SpiedStore(SQLiteStore):
    """A real SQLite store that says when a log write starts (``entered``) and, while ``gate``
    is cleared, holds it there: a slow database, at a moment the test chooses."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def write_log(self, tenant: str, write: LogWrite) -> LogResult:
        self.entered.set()
        self.gate.wait()
        return super().write_log(tenant, write)


# ----------------------------------------------------------------------------- cancellation
def test_a_send_cancelled_while_its_request_is_under_way_is_unknown_then_resolved(
        vendor: Vendor, tmp_path: Path) -> None:
    """``asyncio.wait_for(tenant.send(...), t)`` timing out while the vendor holds the request:
    the message is ``unknown`` (it may have left), never left ``queued``; the poller resolves it
    by its client reference; the same idempotency key sends nothing again; the gateway still sends."""
    vendor.ctl.add(FaultRule.latency(2, path="/messages", method="POST"))
    store = f"sqlite:///{tmp_path / 's.db'}"

    async def go() -> None:
        async with AsyncGateway(echo_config(vendor.url, store), plugins=echo_plugins()) as gw:
            acme = gw.tenant("acme")
            task = asyncio.ensure_future(acme.send("08031230000", "hi", idempotency_key="order-1"))
            while not vendor.ctl.requests("/messages"):  # the request reached the vendor
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            (rec,) = await acme.messages()
            assert rec.status is Status.UNKNOWN and "cancelled" in (rec.error or "")
            assert rec.provider == "one"
            while not vendor.accepted:  # the vendor processes it once its delay is over
                await asyncio.sleep(0.01)
            summary = await acme.sync_statuses(older_than=0)
            assert summary.found == 1
            assert (await acme.get(rec.message_id)).status is Status.SUBMITTED
            again = await acme.send("08031230000", "hi", idempotency_key="order-1")
            assert again.message_id == rec.message_id
            assert (await acme.send("08031230001", "after")).status is Status.SUBMITTED

    asyncio.run(go())
    assert vendor.sent_to() == {"+2348031230000": 1, "+2348031230001": 1}
    assert len(vendor.ctl.processed("/messages", "POST")) == 2


def test_a_send_cancelled_during_its_write_ahead_is_not_sent_and_not_left_queued(
        vendor: Vendor, tmp_path: Path) -> None:
    """Cancelled while its write-ahead waits for the database (in a worker thread): the write
    still commits, the request never leaves, and the message is ``failed`` (``not_sent``)."""
    store = SpiedStore(str(tmp_path / "s.db"))
    store.migrate()

    async def go() -> None:
        async with AsyncGateway(echo_config(vendor.url), store=store, plugins=echo_plugins()) as gw:
            acme = gw.tenant("acme")
            store.entered.clear()
            store.gate.clear()
            task = asyncio.ensure_future(acme.send("08031230000", "hi"))
            await asyncio.get_running_loop().run_in_executor(None, store.entered.wait)
            task.cancel()
            store.gate.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            (rec,) = await acme.messages()
            assert (rec.status, rec.raw_status) == (Status.FAILED, "not_sent")
            assert (await acme.send("08031230001", "after")).status is Status.SUBMITTED

    try:
        asyncio.run(go())
    finally:
        store.close()
    assert vendor.sent_to() == {"+2348031230001": 1}


def test_send_many_cancelled_half_way_leaves_nothing_queued_and_a_rerun_sends_the_rest_once(
        vendor: Vendor, tmp_path: Path) -> None:
    """``asyncio.wait_for(tenant.send_many(...), t)`` with the first request held by the vendor:
    the request in flight finishes and is logged; the rest of the chunk, logged ahead, never
    left and is ``failed`` (``not_sent``), not ``queued``. Sending those again sends each once."""
    vendor.ctl.add(FaultRule.latency(1, path="/messages/bulk"))  # the first bulk request only
    store = f"sqlite:///{tmp_path / 's.db'}"
    to = numbers(10)  # echo takes 2 a request: 5 requests

    async def go() -> None:
        async with AsyncGateway(echo_config(vendor.url, store), plugins=echo_plugins()) as gw:
            acme = gw.tenant("acme")
            with pytest.raises((TimeoutError, asyncio.TimeoutError)):  # one class since Python 3.11
                await asyncio.wait_for(acme.send_many(to, "hi", concurrency=1), 0.2)
            log = await acme.messages(limit=100)
            by_status = Counter(r.status for r in log)
            assert by_status == {Status.SUBMITTED: 2, Status.FAILED: 8}, by_status
            unsent = [r for r in log if r.status is Status.FAILED]
            assert {r.raw_status for r in unsent} == {"not_sent"}
            assert all("cancelled" in (r.error or "") for r in unsent)
            again = await acme.send_many(["0" + r.to[4:] for r in unsent], "hi")
            assert [r.status for r in again] == [Status.SUBMITTED] * 8

    asyncio.run(go())
    assert vendor.sent_to() == {e164(n): 1 for n in to}


class StopAfterFirst:
    """A hook that interrupts the process (as Ctrl-C would) once the first answer is in."""

    armed = True

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


def test_sync_send_many_interrupted_leaves_nothing_queued(vendor: Vendor, tmp_path: Path) -> None:
    to = numbers(6)
    with Gateway(echo_config(vendor.url, f"sqlite:///{tmp_path / 's.db'}"), plugins=echo_plugins()) as gw:
        gw.plugins.register(StopAfterFirst())
        acme = gw.tenant("acme")
        with pytest.raises(KeyboardInterrupt):
            acme.send_many(to, "hi")
        by_status = Counter((r.status, r.raw_status) for r in acme.messages())
        assert by_status == {(Status.SUBMITTED, "accepted"): 2, (Status.FAILED, "not_sent"): 4}, by_status
        unsent = ["0" + r.to[4:] for r in acme.messages(status="failed")]
        assert [r.status for r in acme.send_many(unsent, "hi")] == [Status.SUBMITTED] * 4
    assert vendor.sent_to() == {e164(n): 1 for n in to}


# ----------------------------------------------------------------------------- PostgreSQL failing
class PgKiller:
    """Ends this test's PostgreSQL connections (by their ``application_name``) from a hook once
    ``after`` answers are in: ``idle`` ends them as they are (between transactions); otherwise a
    lock on ``messages`` makes the next log write wait, and the waiting connection is ended
    mid-statement."""

    def __init__(self, dsn: str, schema: str, app: str, after: int, *, idle: bool) -> None:
        self.dsn, self.schema, self.app, self.after, self.idle = dsn, schema, app, after, idle
        self.seen = 0
        self.ended = 0
        self.thread: threading.Thread | None = None

    def _end(self, admin: Any, where: str) -> int:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
            f"WHERE application_name = %s {where}", (self.app,)).fetchone()
        return int(row[0])

    def _end_the_waiting_writer(self, admin: Any) -> None:
        import time

        # at most 60 s: a test interrupted before its writer waited must not leave this thread
        # holding the lock (pg_schema's DROP SCHEMA would wait for it for ever)
        deadline = time.monotonic() + 60
        try:
            while not self.ended and time.monotonic() < deadline:
                self.ended = self._end(admin, "AND wait_event_type = 'Lock'")
                time.sleep(0.01)
        finally:
            admin.rollback()  # the lock goes
            admin.close()

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
        import psycopg

        self.seen += 1
        if self.seen != self.after:
            return
        if self.idle:
            with psycopg.connect(self.dsn, autocommit=True) as admin:
                self.ended = self._end(admin, "")
            return
        admin = psycopg.connect(self.dsn)
        admin.execute(f"LOCK TABLE {self.schema}.messages IN ACCESS EXCLUSIVE MODE")
        self.thread = threading.Thread(target=self._end_the_waiting_writer, args=(admin,), daemon=True)
        self.thread.start()


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str, str]]:
    """(store URL, schema, application_name) of a schema of its own on the test server."""
    import uuid

    psycopg = pytest.importorskip("psycopg")
    from services import PG_DSN

    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    tag = uuid.uuid4().hex[:10]
    schema, app = f"flt_{tag}", f"smsgate_faults_{tag}"
    try:
        yield f"{PG_DSN}?schema={schema}&application_name={app}", schema, app
    finally:
        drop_schema(PG_DSN, schema)


def test_a_postgresql_restart_between_transactions_costs_a_campaign_nothing(
        vendor: Vendor, pg_schema: tuple[str, str, str]) -> None:
    """Every connection of the store ended by the server while idle (a restart, a failover,
    ``pg_terminate_backend``) mid-run: each is replaced when next taken, the run goes on, every
    recipient is sent once (the vendor's own record)."""
    from services import PG_DSN

    url, schema, app = pg_schema
    killer = PgKiller(PG_DSN, schema, app, after=10, idle=True)
    to = numbers(40)
    with Gateway(echo_config(vendor.url, url), plugins=echo_plugins()) as gw:
        gw.plugins.register(killer)
        # one sending thread: when the hook runs (in it) no connection is in use
        camp = gw.tenant("acme").campaigns.create("c", audience=to, text="hi", concurrency=1, batch_size=8)
        done = camp.run()
        assert (done.status.value, done.sent) == ("completed", 40)
    assert killer.ended >= 1
    assert vendor.sent_to() == {e164(n): 1 for n in to}


def test_a_postgresql_connection_ended_mid_write_is_a_store_error_and_the_campaign_resumes_once(
        vendor: Vendor, pg_schema: tuple[str, str, str]) -> None:
    """The connection writing the log is ended while its statement waits (for a lock): the run
    raises a ``StoreError`` naming the server, the campaign is left resumable (not ``running``,
    no recipient held), and the next run sends every recipient not sent yet, none twice."""
    from services import PG_DSN
    from smsgate import StoreError
    from smsgate.store.postgres import server_of

    url, schema, app = pg_schema
    killer = PgKiller(PG_DSN, schema, app, after=6, idle=False)
    to = numbers(40)
    with Gateway(echo_config(vendor.url, url), plugins=echo_plugins()) as gw:
        gw.plugins.register(killer)
        camp = gw.tenant("acme").campaigns.create("c", audience=to, text="hi", concurrency=2, batch_size=8)
        with pytest.raises(StoreError) as info:
            camp.run()
        assert info.value.store == server_of(PG_DSN) and "terminat" in str(info.value)
        assert killer.thread is not None
        killer.thread.join(90)
        assert not killer.thread.is_alive()
        first = camp.progress()
        assert first.status.value == "interrupted" and first.sending == 0, first
        killer.after = 0  # no more
        done = camp.run()
        assert (done.status.value, done.sent + done.unknown) == ("completed", 40), done
    assert vendor.sent_to() == {e164(n): 1 for n in to}


# ----------------------------------------------------------------------------- what held
def test_a_cancelled_async_campaign_run_resumes_and_sends_each_recipient_once(
        vendor: Vendor, tmp_path: Path) -> None:
    """Cancelling the task running ``await camp.run()`` with requests in flight: they finish and
    are logged, the campaign is ``interrupted`` with nothing held, and the next run sends the
    rest: every recipient once (the vendor's own record)."""
    vendor.ctl.add(FaultRule.latency(0.2, path="/messages", count=None))
    to = numbers(40)

    async def go() -> None:
        async with AsyncGateway(echo_config(vendor.url, f"sqlite:///{tmp_path / 's.db'}"),
                                plugins=echo_plugins()) as gw:
            camp = await gw.tenant("acme").campaigns.create("c", audience=to, text="hi", concurrency=4,
                                                            batch_size=8)
            task = asyncio.ensure_future(camp.run())
            while len(vendor.ctl.requests("/messages")) < 4:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            half = await camp.progress()
            assert half.status.value == "interrupted" and half.sending == 0 and 0 < half.sent < 40, half
            done = await camp.run()
            assert (done.status.value, done.sent) == ("completed", 40)

    asyncio.run(go())
    assert vendor.sent_to() == {e164(n): 1 for n in to}


def test_provider_misbehaviour_is_unknown_or_retried_never_sent_twice(vendor: Vendor) -> None:
    """An unreadable 2xx after the vendor acted and a 500 after it acted are ``unknown`` and not
    sent again; a 429 with ``Retry-After`` before it acted is waited out and sent once."""
    bulk = "/messages/bulk"
    with Gateway(echo_config(vendor.url), plugins=echo_plugins()) as gw:
        acme = gw.tenant("acme")
        vendor.ctl.add(FaultRule.malformed(process=True, path=bulk))
        assert [r.status for r in acme.send_many(numbers(2), "x")] == [Status.UNKNOWN] * 2
        vendor.ctl.add(FaultRule.error(500, process=True, path=bulk))
        assert [r.status for r in acme.send_many(numbers(4)[2:], "x")] == [Status.UNKNOWN] * 2
        vendor.ctl.add(FaultRule.error(429, retry_after=0.1, path=bulk))
        assert [r.status for r in acme.send_many(numbers(6)[4:], "x")] == [Status.SUBMITTED] * 2
    assert vendor.sent_to() == {e164(n): 1 for n in numbers(6)}
    assert [(r.fault, r.processed) for r in vendor.ctl.requests(bulk)] == [
        ("malformed", True), ("status", True), ("status", False), (None, True)]


# ----------------------------------------------------------------------------- the lease heartbeat
class FlakyRenewals(SQLiteStore):
    """A real SQLite store whose first lease renewal fails as a locked database does (the
    store's own ``StoreError``): a transient failure at the moment the heartbeat renews."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.renewals = 0

    def renew_runner(self, tenant: str, campaign_id: str, owner: str, lease_until: Any) -> bool:
        from smsgate import StoreError

        self.renewals += 1
        if self.renewals == 1:
            raise StoreError("database is locked (injected)", store=repr(self.path))
        return super().renew_runner(tenant, campaign_id, owner, lease_until)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_the_lease_heartbeat_outlives_a_failed_renewal(vendor: Vendor, tmp_path: Path, driver: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """One failed renewal (a database locked for longer than its busy timeout, a connection
    lost) is logged and the next one is tried: the heartbeat thread or task does not die with
    it (which let the lease end under a runner still sending)."""
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    vendor.ctl.add(FaultRule.latency(0.1, path="/messages", count=None))  # a run of ~2 s
    store = FlakyRenewals(str(tmp_path / "s.db"))
    store.migrate()
    to = numbers(40)
    lease = 0.6  # renewed every 0.2 s
    try:
        if driver == "sync":
            with Gateway(echo_config(vendor.url), store=store, plugins=echo_plugins()) as gw:
                camp = gw.tenant("acme").campaigns.create("c", audience=to, text="hi", concurrency=1,
                                                          batch_size=2, lease_seconds=lease)
                done = camp.run()
        else:
            async def go() -> Any:
                async with AsyncGateway(echo_config(vendor.url), store=store, plugins=echo_plugins()) as gw:
                    camp = await gw.tenant("acme").campaigns.create("c", audience=to, text="hi", concurrency=1,
                                                                    batch_size=2, lease_seconds=lease)
                    return await camp.run()

            done = asyncio.run(go())
    finally:
        store.close()
    assert died == []
    assert store.renewals >= 3  # renewed again after the failure
    assert (done.status.value, done.sent) == ("completed", 40)
    assert vendor.sent_to() == {e164(n): 1 for n in to}


# ----------------------------------------------------------------------------- SQLite failing
class LockAfter:
    """Locks the SQLite file from another connection (``BEGIN EXCLUSIVE``) once ``after``
    answers are in, until the test lets go."""

    def __init__(self, path: Path, after: int) -> None:
        self.path, self.after, self.seen = path, after, 0
        self.holder: Any = None

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
        import sqlite3

        self.seen += 1
        if self.seen == self.after:
            self.holder = sqlite3.connect(self.path, check_same_thread=False)
            self.holder.execute("BEGIN EXCLUSIVE")


def test_an_sqlite_file_locked_mid_run_is_a_store_error_and_the_next_run_sends_the_rest_once(
        vendor: Vendor, tmp_path: Path) -> None:
    """Another process holds the SQLite file's write lock past the busy timeout mid-run (and
    through the run's clean-up): the run raises a ``StoreError`` naming the file; once the lease
    ends the next run resumes, looks up what may have left and sends every recipient once."""
    from smsgate import StoreError

    path = tmp_path / "s.db"
    store = SQLiteStore(str(path), timeout=0.2)
    store.migrate()
    locker = LockAfter(path, after=10)
    to = numbers(40)
    try:
        with Gateway(echo_config(vendor.url), store=store, plugins=echo_plugins()) as gw:
            gw.plugins.register(locker)
            camp = gw.tenant("acme").campaigns.create("c", audience=to, text="hi", concurrency=4, batch_size=8,
                                                      lease_seconds=1)
            with pytest.raises(StoreError, match="database is locked") as info:
                camp.run()
            assert str(path) in str(info.value)
            locker.holder.rollback()
            locker.holder.close()
            locker.after = 0
            while camp.runners():  # the failed run could not drop its lease: it ends
                threading.Event().wait(0.05)
            done = camp.run()
            assert (done.status.value, done.sent) == ("completed", 40), done
    finally:
        store.close()
    assert vendor.sent_to() == {e164(n): 1 for n in to}


class LockOnAnswer:
    """Locks the SQLite file (another connection, ``BEGIN EXCLUSIVE``) as the first answer comes in,
    so the write of that answer fails; ``holder`` keeps the lock until the test lets go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.holder: Any = None

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: Any, result: Any) -> None:
        import sqlite3

        if self.holder is None:
            self.holder = sqlite3.connect(self.path, check_same_thread=False)
            self.holder.execute("BEGIN EXCLUSIVE")


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_send_whose_answer_cannot_be_logged_says_it_was_sent(vendor: Vendor, tmp_path: Path, driver: str) -> None:
    """The vendor accepted the message, then the store refuses the write of its answer: ``send()``
    raises ``AnswerNotLogged`` (a ``StoreError``) carrying the provider's answer, not a bare
    ``StoreError`` that reads as "not sent" and invites a duplicate."""
    from smsgate import AnswerNotLogged

    path = tmp_path / "s.db"
    store = SQLiteStore(str(path), timeout=0.2)
    store.migrate()
    locker = LockOnAnswer(path)
    cfg = echo_config(vendor.url)
    try:
        if driver == "sync":
            with Gateway(cfg, store=store, plugins=echo_plugins()) as gw, pytest.raises(AnswerNotLogged) as info:
                gw.plugins.register(locker)
                gw.tenant("acme").send("08031230000", "hi")
        else:
            async def go() -> None:
                async with AsyncGateway(cfg, store=store, plugins=echo_plugins()) as gw:
                    gw.plugins.register(locker)
                    await gw.tenant("acme").send("08031230000", "hi")

            with pytest.raises(AnswerNotLogged) as info:
                asyncio.run(go())
        locker.holder.rollback()
        locker.holder.close()
    finally:
        store.close()
    err = info.value
    (mid,) = vendor.accepted
    assert (err.result.status, err.result.provider, err.result.provider_message_id) == (Status.SUBMITTED, "one", mid)
    assert "database is locked" in str(err) and "do not send it again" in str(err) and str(path) in err.store
    assert vendor.sent_to() == {"+2348031230000": 1}


# ----------------------------------------------------------------------------- closing under sends
def test_aclose_under_sends_lets_them_finish_and_leaves_nothing_queued(vendor: Vendor, tmp_path: Path) -> None:
    """``await gw.aclose()`` while a ``send()`` and a ``send_many()`` are under way: the send
    finishes and is logged; the send_many takes no new request, logs the answers of those in
    flight, marks the rest ``failed`` (``not_sent``) and raises ``GatewayClosed`` (it raised
    the executor's ``RuntimeError`` and left them ``queued``); a new gateway sends those once."""
    from smsgate import GatewayClosed

    vendor.ctl.add(FaultRule.latency(0.3, path="/messages", count=None))
    store = f"sqlite:///{tmp_path / 's.db'}"
    to = numbers(20)

    async def go() -> None:
        gw = AsyncGateway(echo_config(vendor.url, store), plugins=echo_plugins())
        acme = gw.tenant("acme")
        many = asyncio.ensure_future(acme.send_many(to, "hi", concurrency=2))
        one = asyncio.ensure_future(acme.send("08031239999", "single"))
        while len(vendor.ctl.requests("/messages")) < 3:
            await asyncio.sleep(0.01)
        await gw.aclose()
        assert (await one).status is Status.SUBMITTED
        with pytest.raises(GatewayClosed):
            await many
        async with AsyncGateway(echo_config(vendor.url, store), plugins=echo_plugins()) as again:
            acme = again.tenant("acme")
            log = await acme.messages(limit=100)
            assert {(r.status, r.raw_status) for r in log} == {(Status.SUBMITTED, "accepted"), (Status.FAILED, "not_sent")}
            unsent = ["0" + r.to[4:] for r in log if r.status is Status.FAILED]
            assert len(vendor.accepted) == len(log) - len(unsent)
            assert [r.status for r in await acme.send_many(unsent, "hi")] == [Status.SUBMITTED] * len(unsent)

    asyncio.run(go())
    assert vendor.sent_to() == {e164(n): 1 for n in [*to, "08031239999"]}


def test_a_postgresql_connection_ended_while_a_report_is_applied_is_a_503_and_the_retry_applies_it(
        vendor: Vendor, pg_schema: tuple[str, str, str]) -> None:
    """The webhook app's connection is ended while it applies a vendor's delivery reports (its
    statement waiting for a lock): the vendor gets a 503 (so it delivers the callback again),
    nothing of the body is applied, and the retry applies all of it."""
    import json

    import httpx
    import psycopg

    from reference_provider import sign
    from services import PG_DSN
    from smsgate.webhooks import webhook_app

    url, schema, app = pg_schema
    with Gateway(echo_config(vendor.url, url), plugins=echo_plugins()) as gw, LiveServer(webhook_app(gw)) as hooks:
        acme = gw.tenant("acme")
        sent = acme.send_many(numbers(2), "hi")
        body = json.dumps([{"id": r.provider_message_id, "status": "delivered"} for r in sent]).encode()
        post = {"content": body, "headers": {"X-Echo-Signature": sign(body)}}
        answers: list[int] = []
        admin = psycopg.connect(PG_DSN)
        admin.execute(f"LOCK TABLE {schema}.messages IN ACCESS EXCLUSIVE MODE")
        callback = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{hooks.url}/acme/one", timeout=30, **post).status_code))  # type: ignore[arg-type]
        callback.start()
        with psycopg.connect(PG_DSN, autocommit=True) as killer:
            ended = 0
            while not ended:
                row = killer.execute(
                    "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                    "WHERE application_name = %s AND wait_event_type = 'Lock'", (app,)).fetchone()
                ended = int(row[0]) if row else 0
        admin.rollback()
        admin.close()
        callback.join()
        assert answers == [503]
        assert [acme.get(r.message_id).status for r in sent] == [Status.SUBMITTED] * 2  # nothing applied
        assert httpx.post(f"{hooks.url}/acme/one", **post).status_code == 200  # type: ignore[arg-type]
        assert [acme.get(r.message_id).status for r in sent] == [Status.DELIVERED] * 2


def test_close_under_sends_in_other_threads_lets_them_finish_and_leaves_nothing_queued(
        vendor: Vendor, tmp_path: Path) -> None:
    """``gw.close()`` while other threads are in ``send()`` and ``send_many()``: as for
    ``aclose()`` (it closed the store under them: a ``StoreError`` "store is closed", answers of
    requests that had left lost and the rest ``queued``)."""
    from smsgate import GatewayClosed

    vendor.ctl.add(FaultRule.latency(0.3, path="/messages", count=None))
    store = f"sqlite:///{tmp_path / 's.db'}"
    to = numbers(20)
    out: dict[str, Any] = {}

    def run(name: str, fn: Any) -> None:
        try:
            out[name] = fn()
        except BaseException as exc:  # handed to the test thread
            out[name] = exc

    gw = Gateway(echo_config(vendor.url, store), plugins=echo_plugins())
    acme = gw.tenant("acme")
    threads = [threading.Thread(target=run, args=("many", lambda: acme.send_many(to, "hi"))),
               threading.Thread(target=run, args=("one", lambda: acme.send("08031239999", "single")))]
    for t in threads:
        t.start()
    while len(vendor.ctl.requests("/messages")) < 2:
        threading.Event().wait(0.01)
    gw.close()
    for t in threads:
        t.join()
    assert out["one"].status is Status.SUBMITTED
    assert isinstance(out["many"], GatewayClosed)
    with Gateway(echo_config(vendor.url, store), plugins=echo_plugins()) as again:
        acme = again.tenant("acme")
        log = acme.messages(limit=100)
        assert {(r.status, r.raw_status) for r in log} == {(Status.SUBMITTED, "accepted"), (Status.FAILED, "not_sent")}
        unsent = ["0" + r.to[4:] for r in log if r.status is Status.FAILED]
        assert len(vendor.accepted) == len(log) - len(unsent)
        assert [r.status for r in acme.send_many(unsent, "hi")] == [Status.SUBMITTED] * len(unsent)
    assert vendor.sent_to() == {e164(n): 1 for n in [*to, "08031239999"]}


# ----------------------------------------------------------------------------- a write that fails once
class FailsOneAnswerWrite(SQLiteStore):
    """A real SQLite store whose first log write carrying answers fails as a lost connection or a
    lock past the busy timeout does (the store's own ``StoreError``, nothing written)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.failed = 0

    def write_log(self, tenant: str, write: LogWrite) -> LogResult:
        from smsgate import StoreError

        if write.updates and not self.failed:
            self.failed += 1
            raise StoreError("database is locked (injected)", store=repr(self.path))
        return super().write_log(tenant, write)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_held_back_answers_survive_one_failed_write(vendor: Vendor, tmp_path: Path, driver: str) -> None:
    """The write carrying held-back answers fails once: they are written on a second try, so the
    messages (sent, in the vendor's record) are ``submitted`` in the log, not ``queued`` for good,
    and the call succeeds (it raised the ``StoreError``, or ``AnswerNotLogged`` for ``send()``)."""
    store = FailsOneAnswerWrite(str(tmp_path / "s.db"))
    store.migrate()
    cfg = echo_config(vendor.url)
    to = numbers(10)
    try:
        if driver == "sync":
            with Gateway(cfg, store=store, plugins=echo_plugins()) as gw:
                acme = gw.tenant("acme")
                assert [r.status for r in acme.send_many(to, "hi")] == [Status.SUBMITTED] * 10
                log = acme.messages(limit=100)
        else:
            async def go() -> list[Any]:
                async with AsyncGateway(cfg, store=store, plugins=echo_plugins()) as gw:
                    acme = gw.tenant("acme")
                    assert (await acme.send(to[0], "hi")).status is Status.SUBMITTED
                    return await acme.messages(limit=100)

            log = asyncio.run(go())
            to = to[:1]
    finally:
        store.close()
    assert store.failed == 1
    assert [r.status for r in log] == [Status.SUBMITTED] * len(to)
    assert vendor.sent_to() == {e164(n): 1 for n in to}


def test_an_answer_slower_than_the_timeout_is_unknown_never_resent_and_resolved_later(vendor: Vendor) -> None:
    """The vendor holds one bulk request past the client's timeout, then processes it: its
    messages are ``unknown`` (not ``failed``, not sent again), the others go on; once the vendor
    has them, the poller finds them by client reference."""
    cfg = echo_config(vendor.url)
    cfg["tenants"]["acme"]["providers"]["one"]["timeout"] = 0.3
    vendor.ctl.add(FaultRule.hang(0.8, path="/messages/bulk"))
    to = numbers(6)

    async def go() -> None:
        async with AsyncGateway(cfg, plugins=echo_plugins()) as gw:
            acme = gw.tenant("acme")
            got = await acme.send_many(to, "hi", concurrency=3)
            assert sorted(r.status for r in got) == sorted([Status.UNKNOWN] * 2 + [Status.SUBMITTED] * 4)
            while len(vendor.accepted) < 6:  # the held request is processed once its delay is over
                await asyncio.sleep(0.01)
            assert (await acme.sync_statuses(older_than=0)).found == 2
            assert all(r.status is not Status.UNKNOWN for r in await acme.messages())

    asyncio.run(go())
    assert vendor.sent_to() == {e164(n): 1 for n in to}
    assert [r.fault for r in vendor.ctl.requests("/messages/bulk")] == ["hang", None, None]
