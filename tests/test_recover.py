"""Recovering the ``queued`` messages a crashed sending process left (``recover_queued``).

A real process sends (``send`` one at a time, a sync ``send_many``, an async ``send_many``)
to the echo emulator over loopback HTTP and is SIGKILLed at a random point; another process
then recovers and resolves what it left. What the vendor received is read from the
emulator's own request record, never from smsgate's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bounded import drop_schema, reap
from reference_provider import API_KEY, create_emulator
from services import ECHO_CLI, echo_config, echo_plugins
from smsgate import AsyncGateway, Gateway, Status, hookimpl
from smsgate.testing import EmulatorControl, FaultRule, LiveServer

HERE = Path(__file__).parent
#: The worker's send lease (seconds): short, so that its end is not waited for long.
LEASE = 1.0


def received(ctl: EmulatorControl) -> Counter[str]:
    """The client references (smsgate message ids) of every message the vendor acted on."""
    refs: Counter[str] = Counter()
    for r in ctl.processed("/messages", "POST"):
        body = r.json()
        for item in body["messages"] if "messages" in body else [body]:
            refs[item["client_ref"]] += 1
    return refs


def worker(cfg_path: Path, mode: str, numbers: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen([sys.executable, str(HERE / "send_worker.py"), str(cfg_path), mode, str(LEASE), *numbers],
                            env=env, stderr=subprocess.PIPE)


def settle(gw: Gateway) -> list[str]:
    """What an operator's scheduler does after a crash: recover, then sync statuses until done."""
    acme = gw.tenant("acme")
    recovered = acme.recover_queued(older_than=0)
    while acme.sync_statuses(older_than=0, backoff=0).more:
        pass
    return recovered


@pytest.mark.parametrize("mode", ["send", "many", "async"])
def test_a_sending_process_killed_at_random_points_leaves_nothing_unknown_after_recovery(
        tmp_path: Path, mode: str) -> None:
    """Three processes in turn, each SIGKILLed after a random number of requests reached the
    vendor (and a random moment more). Then recovery (once their leases ended) and the status
    poller: every message the vendor received has the vendor's status; every other one is
    ``failed`` (``not_received``: safe to send again); none is ``queued`` or ``unknown``, none
    was received twice, and everything the vendor received was logged ahead."""
    rng = random.Random(f"recover-{mode}")
    accepted: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(accepted)) as server:
        ctl = EmulatorControl(server.url)
        ctl.add(FaultRule.latency(0.03, path="/messages", method="POST", count=None))
        cfg = echo_config(server.url, f"sqlite:///{tmp_path / 's.db'}")
        # not found proves "never received" only 2 x timeout after a message was logged (a request
        # still on its way acts later): 1 s here, within the wait for the workers' leases below
        cfg["tenants"]["acme"]["providers"]["one"]["timeout"] = 0.5
        cfg_path = tmp_path / "cfg.json"
        cfg_path.write_text(json.dumps(cfg))
        kills = []
        for round_ in range(3):
            numbers = [f"080312{round_}{i:04d}" for i in range(20)]
            before = len(ctl.requests("/messages", "POST"))
            target = before + rng.randint(1, 8)
            proc = worker(cfg_path, mode, numbers)
            deadline = time.monotonic() + 60
            while len(ctl.requests("/messages", "POST")) < target and proc.poll() is None:
                assert time.monotonic() < deadline, "the worker sent nothing"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append(proc.returncode)
        assert kills == [-signal.SIGKILL] * 3  # killed each time, never finished
        with Gateway(cfg, plugins=echo_plugins()) as gw:
            acme = gw.tenant("acme")
            queued = {r.message_id for r in acme.messages(status="queued", limit=1000)}
            time.sleep(2 * LEASE + 0.2)  # the dead workers' lease rows end (lease + grace: one more lease)
            recovered = settle(gw)
            log = {r.message_id: r for r in acme.messages(limit=1000)}
        got = received(ctl)
    assert set(recovered) == queued
    if mode != "send":  # a chunk is logged ahead: a kill mid-way always leaves some queued
        assert recovered
    assert all(n == 1 for n in got.values()), "a message was received twice"
    assert set(got) <= set(log), "the vendor received a message that was never logged ahead"
    for mid, rec in log.items():
        if mid in got:
            # the vendor's own answer (accepted) or status (delivered; failed for numbers ending in 9)
            assert rec.raw_status in ("accepted", "delivered", "failed") and rec.provider_message_id, rec
        else:
            assert (rec.status, rec.raw_status) == (Status.FAILED, "not_received"), rec


def test_recovery_leaves_alone_what_a_live_process_may_still_send(tmp_path: Path) -> None:
    """A ``send_many`` under way in a live process (its chunk logged ahead, its requests slow):
    recovery from another gateway, even with no grace (``older_than=0``), touches none of its
    ``queued`` messages; they are all sent and answered, each once."""
    accepted: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(accepted)) as server:
        ctl = EmulatorControl(server.url)
        ctl.add(FaultRule.latency(0.4, path="/messages/bulk", count=None))
        cfg = echo_config(server.url, f"sqlite:///{tmp_path / 's.db'}")
        to = [f"0803123{i:04d}" for i in range(8)]  # 4 requests of 2, 0.4 s each
        with Gateway(cfg, plugins=echo_plugins()) as sender, Gateway(cfg, plugins=echo_plugins()) as other:
            out: list[Any] = []
            thread = threading.Thread(target=lambda: out.append(sender.tenant("acme").send_many(to, "hi")))
            thread.start()
            while not ctl.requests("/messages/bulk"):
                time.sleep(0.01)
            queued = other.tenant("acme").messages(status="queued")
            assert len(queued) >= 6  # the chunk is logged ahead; the first request is under way
            assert other.tenant("acme").recover_queued(older_than=0) == []
            thread.join()
            assert [r.status for r in out[0]] == [Status.SUBMITTED] * 8
            assert other.tenant("acme").recover_queued(older_than=0) == []
    assert sorted(m["to"] for m in accepted.values()) == sorted("+234" + n[1:] for n in to)


def test_async_recover_queued_the_grace_period_and_the_poller_tick(tmp_path: Path) -> None:
    """A message left ``queued`` by a process that held no lease (it predates them, or its lease
    ended) is recovered only once it is ``older_than`` old (``AsyncTenant.recover_queued``), or
    ``recover_after`` old by a tick of the poller, which then resolves it."""
    from smsgate.store.base import LogWrite

    accepted: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(accepted)) as server:
        cfg = echo_config(server.url, f"sqlite:///{tmp_path / 's.db'}")

        async def go() -> None:
            async with AsyncGateway(cfg, plugins=echo_plugins()) as gw:
                acme = gw.tenant("acme")
                policy = acme._policy
                msg = policy.build("08031230000", "hi")
                # what a crashed process without a lease leaves: the write-ahead, nothing after
                gw.store.write_log("acme", LogWrite(inserts=[policy.record(msg, Status.QUEUED, _ago(120))]))
                assert await acme.recover_queued(older_than=600) == []
                assert await acme.recover_queued(older_than=60) == [msg.message_id]
                rec = await acme.get(msg.message_id)
                assert (rec.status, rec.raw_status) == (Status.UNKNOWN, "recovered")
                summary = await acme.sync_statuses(older_than=0)
                assert (summary.recovered, summary.not_received) == (0, 1)
                rec = await acme.get(msg.message_id)
                assert (rec.status, rec.raw_status) == (Status.FAILED, "not_received")
                # the poller's tick recovers by itself what is recover_after old (default 10 minutes)
                left = policy.build("08031230001", "hi")
                gw.store.write_log("acme", LogWrite(inserts=[policy.record(left, Status.QUEUED, _ago(120))]))
                assert (await acme.sync_statuses(older_than=0)).recovered == 0
                assert (await acme.sync_statuses(older_than=0, recover_after=None)).recovered == 0
                summary = await acme.sync_statuses(older_than=0, recover_after=timedelta(minutes=1))
                assert (summary.recovered, summary.not_received) == (1, 1)
                rec = await acme.get(left.message_id)
                assert (rec.status, rec.raw_status) == (Status.FAILED, "not_received")

        asyncio.run(go())
    assert accepted == {}


def _ago(seconds: float) -> Any:
    from smsgate.models import utcnow

    return utcnow() - timedelta(seconds=seconds)


def test_cli_status_recover(tmp_path: Path) -> None:
    """``smsgate status recover``: what a crashed process without a lease left ``queued`` 20
    minutes ago is recovered (the default grace is 10 minutes), a younger one is not."""
    from smsgate.store.base import LogWrite

    db = tmp_path / "log.db"
    cfg = echo_config("http://127.0.0.1:9", f"sqlite:///{db}")
    with Gateway(cfg, plugins=echo_plugins()) as gw:
        policy = gw.tenant("acme")._policy
        old, young = policy.build("08031230000", "hi"), policy.build("08031230001", "hi")
        gw.store.write_log("acme", LogWrite(inserts=[policy.record(old, Status.QUEUED, _ago(1200)),
                                                     policy.record(young, Status.QUEUED, _ago(60))]))
    cfg_path = tmp_path / "smsgate.toml"
    cfg_path.write_text(f'store = "sqlite:///{db}"\n[tenants.acme]\ndefault_region = "NG"\n'
                        '[tenants.acme.providers.one]\nplugin = "echo"\nbase_url = "http://127.0.0.1:9"\n'
                        f'credentials = {{ api_key = "{API_KEY}" }}\n')
    env = {**os.environ, "PYTHONPATH": str(HERE)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", ECHO_CLI, "status", "recover", "-c", str(cfg_path), *args],
                              capture_output=True, text=True, env=env, timeout=120)

    out = cli("--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"recovered": [old.message_id]}
    out = cli("--older-than", "30s")
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stdout.split())  # as wrapped to the terminal's width
    assert "1 queued messages left by a process that ended marked unknown" in said
    assert "run 'smsgate status sync' to resolve them" in said
    bad = cli("--older-than", "soon")
    assert bad.returncode == 2 and "duration" in bad.stderr


def test_a_lease_forgets_a_failed_write_ahead_and_a_forked_child_gets_a_lease_of_its_own() -> None:
    """A write-ahead whose transaction failed never leads to a request: the lease stops
    protecting it (else one store hiccup would hold back recovery for the process's life).
    A child forked from a process with leases writes its own rows, never the parent's."""
    from smsgate.core.recover import SendLease
    from smsgate.store.base import LogWrite, NewMessage
    from smsgate.store.memory import MemoryStore

    store = MemoryStore()
    lease = SendLease(store, "acme", "p1")
    write = LogWrite(inserts=[NewMessage("acme", "m1", "+2348031230000", Status.QUEUED, _ago(300))])
    lease.logging(write)
    lease.renew()
    assert store.send_leases("acme")["p1"][1] <= _ago(300)  # m1 waits for its answer: protected
    lease.failed([write])
    lease.renew()
    assert store.send_leases("acme")["p1"][1] >= _ago(60)  # forgotten: only the margin is left
    read, written = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(written, lease.owner.encode())
        os._exit(0)
    reap(pid)
    child = os.read(read, 100).decode()
    assert child.startswith("snd_") and child != lease.owner == "p1"


# ------------------------------------------------------------------ a forked child's lease
def test_a_forked_child_renews_a_lease_of_its_own_while_its_send_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process forks after its gateway has a send lease (the heartbeat thread of the parent
    does not run in the child). The child sends, through a gateway of its own, one message whose
    request takes longer than the lease row lives: its own renewing thread keeps its row live, so recovery from another
    gateway (no grace) leaves its ``queued`` message alone; the vendor receives it once and its
    answer is logged. Before, the child renewed only at its write-aheads: its row ended under
    its waiting send and recovery marked the message ``unknown``."""
    import smsgate.core.recover as recover

    monkeypatch.setattr(recover, "LEASE", 0.5)  # the row lives 1 s (lease + grace) past a renewal
    accepted: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(accepted)) as server:
        ctl = EmulatorControl(server.url)
        ctl.add(FaultRule.latency(2.5, path="/messages", method="POST", count=None))
        cfg = echo_config(server.url, f"sqlite:///{tmp_path / 's.db'}")
        parent = Gateway(cfg, plugins=echo_plugins())
        assert parent.tenant("acme").messages() == []  # the parent's gateway has its plan driver and lease
        assert parent._core_.send_lease("acme") is not None
        read, written = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child: sends through a gateway of its own (the one it
            # inherited is refused: GatewayForked, tests/test_fork.py); the module's renewing
            # thread of the parent does not run here
            code = 1
            try:
                with Gateway(cfg, plugins=echo_plugins()) as own:
                    sent = own.tenant("acme").send("08031234567", "hi")
                os.write(written, json.dumps([sent.message_id, sent.status.value]).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(written)
        try:
            with Gateway(cfg, plugins=echo_plugins()) as other:
                deadline = time.monotonic() + 30
                while not ctl.requests("/messages", "POST"):
                    assert time.monotonic() < deadline, "the child sent nothing"
                    time.sleep(0.01)
                time.sleep(1.5)  # longer than the row lives after the child's write-ahead
                (waiting,) = other.tenant("acme").messages(status="queued")
                leases = other.store.send_leases("acme")
                assert other.tenant("acme").recover_queued(older_than=0) == []
                now = __import__("smsgate.models", fromlist=["utcnow"]).utcnow()
                assert any(until > now for until, _ in leases.values()), leases  # the child's, renewed
        finally:
            status = reap(pid)
            parent.close()
        out = os.read(read, 1000)
        os.close(read)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        message_id, answered = json.loads(out)
        assert (message_id, answered) == (waiting.message_id, "submitted")
        with Gateway(cfg, plugins=echo_plugins()) as check:
            assert check.tenant("acme").get(message_id).status is Status.SUBMITTED
    assert [m["to"] for m in accepted.values()] == ["+2348031234567"]  # once


# ------------------------------------------------------------------ the store away for longer than the lease
PG_DSN = os.environ.get("SMSGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


class Proxy:
    """A TCP relay to PostgreSQL: ``cut()`` resets every connection through it and refuses new
    ones (the store unreachable from one process only: a network partition), ``mend()`` relays
    again."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        import socket

        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.open: list[Any] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: Any, b: Any) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        import socket

        self.up = False
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def mend(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def pg_schema() -> Any:
    psycopg = pytest.importorskip("psycopg")
    import uuid

    schema = f"left_recover_{uuid.uuid4().hex[:8]}"
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    yield schema
    drop_schema(PG_DSN, schema)


def _pg(dsn: str, schema: str) -> str:
    return f"{dsn}?schema={schema}"


@pytest.mark.postgres
def test_a_process_cut_off_from_the_store_sends_nothing_more_once_its_lease_may_end(
        pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``send_many`` is under way (its chunk logged ahead, one slow request at a time) when
    the sending process loses the store (a partition: PostgreSQL through a relay that is cut);
    another process still reaches it. Once the sender's lease row has ended, the other process
    recovers the chunk's ``queued`` messages and the poller asks the vendor: those not received
    become ``failed`` (``not_received``: safe to send again). The sender, which could not renew
    for longer than it counts on its lease, sends none of them afterwards: from the vendor's
    record, no message the log calls ``not_received`` was received. Before, the sender went on
    sending the rest of the chunk after recovery had settled them as never received."""
    import smsgate.core.recover as recover
    from smsgate.errors import StoreError

    monkeypatch.setattr(recover, "LEASE", 0.5)  # counted on 0.5 s, the row lives 1 s past a renewal
    accepted: dict[str, dict[str, Any]] = {}
    proxy = Proxy()
    try:
        with LiveServer(create_emulator(accepted)) as server:
            ctl = EmulatorControl(server.url)
            ctl.add(FaultRule.latency(0.8, path="/messages/bulk", count=None))
            direct = echo_config(server.url, _pg(PG_DSN, pg_schema))
            # the poller calls a message never received only 2 x timeout after it was logged: 1.2 s
            # here (the recovering process's setting), within the 1.3 s waited below
            direct["tenants"]["acme"]["providers"]["one"]["timeout"] = 0.6
            relayed = echo_config(server.url, _pg(f"postgresql://postgres@127.0.0.1:{proxy.port}/test", pg_schema))
            relayed["traffic"] = "local"  # limits and breakers in the process (or Redis): no store call per request
            to = [f"0803124{i:04d}" for i in range(10)]  # 5 requests of 2, 0.8 s each
            with Gateway(direct, plugins=echo_plugins()) as other, Gateway(relayed, plugins=echo_plugins()) as sender:
                out: list[Any] = []

                def send() -> None:
                    try:
                        out.append(sender.tenant("acme").send_many(to, "hi"))
                    except Exception as exc:
                        out.append(exc)

                thread = threading.Thread(target=send)
                thread.start()
                deadline = time.monotonic() + 30
                while not ctl.requests("/messages/bulk"):
                    assert time.monotonic() < deadline, "the sender sent nothing"
                    time.sleep(0.005)
                proxy.cut()  # the first request is under way; the whole chunk is logged ahead
                time.sleep(1.3)  # the sender's row ends (1 s past its last renewal)
                recovered = other.tenant("acme").recover_queued(older_than=0)
                while other.tenant("acme").sync_statuses(older_than=0, backoff=0).more:
                    pass
                thread.join(30)
                assert not thread.is_alive()
                time.sleep(0.5)
                log = {r.message_id: r for r in other.tenant("acme").messages(limit=100)}
        got = Counter(m["client_ref"] for m in accepted.values())
    finally:
        proxy.close()
    assert recovered, "nothing was left queued for recovery"
    assert isinstance(out[0], StoreError), out  # the sender could not log its answers, nor renew
    assert all(n == 1 for n in got.values())
    not_received = {mid for mid, rec in log.items() if rec.raw_status == "not_received"}
    assert not_received, "recovery found every message received: the test proves nothing"
    assert not (not_received & set(got)), "the vendor received messages the log says it never received"
    assert len(got) <= 4  # the request under way when the store went away, and at most one more


@pytest.mark.postgres
def test_messages_a_lapsed_lease_protected_are_never_sent_once_the_store_is_back(
        pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store goes away while a sync ``send_many`` (its chunk logged ahead, requests one at
    a time) waits for its first request's slow answer, for longer than the sender's lease row
    lives; another process recovers the chunk meanwhile. The store comes back before the answer:
    the sender's renewal finds its lease lapsed past the row's end, so the messages it protected
    are forfeit and its next request raises ``LeaseLost`` instead of leaving. From the vendor's
    record: none of the recovered messages but the first request's was received, and the poller
    settles them as ``not_received`` (true). (Waiting for a rate limit was the way to hold the
    chunk before; a provider with limits now logs a request only once admitted.)"""
    import smsgate.core.recover as recover
    from smsgate.errors import LeaseLost

    monkeypatch.setattr(recover, "LEASE", 0.5)
    accepted: dict[str, dict[str, Any]] = {}
    proxy = Proxy()
    try:
        with LiveServer(create_emulator(accepted)) as server:
            ctl = EmulatorControl(server.url)
            direct = echo_config(server.url, _pg(PG_DSN, pg_schema))
            direct["tenants"]["acme"]["providers"]["one"]["timeout"] = 0.6  # "never received" after 1.2 s
            relayed = echo_config(server.url, _pg(f"postgresql://postgres@127.0.0.1:{proxy.port}/test", pg_schema))
            relayed["traffic"] = "local"
            relayed["tenants"]["acme"]["providers"]["one"]["timeout"] = 5.0
            ctl.add(FaultRule.latency(2.5, path="/messages/bulk", count=1))  # the first request's answer: 2.5 s
            to = [f"0803125{i:04d}" for i in range(6)]
            with Gateway(direct, plugins=echo_plugins()) as other, Gateway(relayed, plugins=echo_plugins()) as sender:
                out: list[Any] = []

                def send() -> None:
                    try:
                        out.append(sender.tenant("acme").send_many(to, "hi"))
                    except Exception as exc:
                        out.append(exc)

                thread = threading.Thread(target=send)
                thread.start()
                deadline = time.monotonic() + 30
                while not ctl.requests("/messages/bulk"):
                    assert time.monotonic() < deadline, "the sender sent nothing"
                    time.sleep(0.005)
                proxy.cut()  # the first request's answer is slow to come
                before = len(ctl.requests("/messages/bulk")) + len(ctl.requests("/messages", "POST"))
                time.sleep(1.3)  # the sender's row ends
                recovered = other.tenant("acme").recover_queued(older_than=0)
                proxy.mend()  # the store is back before the first request's answer
                thread.join(30)
                assert not thread.is_alive()
                while other.tenant("acme").sync_statuses(older_than=0, backoff=0).more:
                    pass
                log = {r.message_id: r for r in other.tenant("acme").messages(limit=100)}
                after = len(ctl.requests("/messages/bulk")) + len(ctl.requests("/messages", "POST"))
        got = Counter(m["client_ref"] for m in accepted.values())
    finally:
        proxy.close()
    assert isinstance(out[0], LeaseLost), out
    assert "not sent" in str(out[0]) and "recovered" in str(out[0])
    assert after == before, "the sender sent a request after its lease lapsed"
    assert set(recovered) == set(to_ids := {mid for mid in log}) and len(to_ids) == len(to)  # none answered
    assert all(n == 1 for n in got.values()) and 1 <= len(got) <= 2  # the first request's only
    for mid in recovered:  # the poller: the vendor's status where it received it, else not_received
        if mid in got:
            assert log[mid].raw_status in ("accepted", "delivered", "failed"), log[mid]
        else:
            # not received: the poller's verdict, or the sender's own once the store was back (not sent)
            assert log[mid].status is Status.FAILED and log[mid].raw_status in ("not_received", "not_sent"), log[mid]


class _StatusHook:
    """An application's ``smsgate_on_status`` hook, recording its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Status, str | None]] = []

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: Any) -> None:
        self.calls.append((tenant, message_id, report.status, report.raw_status))


def test_recover_queued_tells_the_status_hook_once_per_message_it_marks_unknown(tmp_path: Path) -> None:
    """A ``queued`` message a crashed process left becomes ``unknown`` (``recovered``): a status
    change the store records, so ``smsgate_on_status`` is called for it, once (the next recovery
    changes nothing and calls nothing)."""
    from smsgate.store.base import LogWrite

    accepted: dict[str, dict[str, Any]] = {}
    with LiveServer(create_emulator(accepted)) as server:
        with Gateway(echo_config(server.url, f"sqlite:///{tmp_path / 's.db'}"), plugins=echo_plugins()) as gw:
            hook = _StatusHook()
            gw.plugins.register(hook)
            acme = gw.tenant("acme")
            policy = acme._policy
            msg = policy.build("08031230000", "hi")
            gw.store.write_log("acme", LogWrite(inserts=[policy.record(msg, Status.QUEUED, _ago(120))]))
            assert acme.recover_queued(older_than=60) == [msg.message_id]
            assert hook.calls == [("acme", msg.message_id, Status.UNKNOWN, "recovered")]
            assert acme.recover_queued(older_than=0) == []
            assert len(hook.calls) == 1
    assert accepted == {}
