"""Campaigns on real Celery workers (RabbitMQ, PostgreSQL, the echo vendor over loopback).

The main test runs a campaign across three ``celery worker`` processes and SIGKILLs one
of them mid-run: the broker delivers its task again to another worker, and the kernel's
claims, leases and write-ahead log decide what is sent. Every claim about what was sent
is read from the emulator's own request record, never from smsgate's log.

``SMSGATE_CELERY_RECIPIENTS`` sets the campaign size (20,000 by default).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("celery")

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Gateway
from smsgate.models import CampaignStatus
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer

HERE = Path(__file__).parent
PG_DSN = os.environ.get("SMSGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("SMSGATE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
RECIPIENTS = int(os.environ.get("SMSGATE_CELERY_RECIPIENTS", "20000"))


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


@pytest.fixture
def broker() -> str:
    """The RabbitMQ URL (skips when RabbitMQ is unreachable)."""
    from kombu import Connection

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
        with Connection(BROKER, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    return BROKER


@pytest.fixture
def pg_store() -> Iterator[str]:
    """A PostgreSQL store in a schema of its own (skips when PostgreSQL is unreachable)."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"celery_{uuid.uuid4().hex[:10]}"
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield f"{PG_DSN}?schema={schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def echo() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


@pytest.fixture
def queue(broker: str) -> Iterator[str]:
    """A queue of this test run's own, deleted afterwards."""
    from kombu import Connection

    name = f"smsgate-test-{uuid.uuid4().hex[:12]}"
    yield name
    with Connection(broker, connect_timeout=3) as conn:
        try:
            conn.default_channel.queue_delete(name)
        except Exception:
            pass


def echo_config(url: str, store: str) -> str:
    """The configuration (TOML: the workers and the CLI read the same file)."""
    return (f'store = "{store}"\n[tenants.acme]\ndefault_region = "NG"\n'
            f'[tenants.acme.providers.one]\nplugin = "echo"\nbase_url = "{url}"\nsender = "ACME"\n'
            f'[tenants.acme.providers.one.credentials]\napi_key = "{API_KEY}"\n')


def echo_received(ctl: EmulatorControl) -> Counter[str]:
    """Every number the echo vendor received (and accepted) a message for, with how many times."""
    out: Counter[str] = Counter()
    for r in ctl.requests(method="POST"):
        body = r.json()
        for m in body["messages"] if r.path.endswith("/bulk") else [body]:
            out[m["to"]] += 1
    return out


class Workers:
    """Real ``celery worker`` processes (solo pool: one task at a time, killed as a whole)."""

    def __init__(self, tmp: Path, broker: str, queue: str, cfg_path: Path, chunk: int) -> None:
        self.tmp, self.queue = tmp, queue
        self.env = {**os.environ, "PYTHONPATH": str(HERE), "SMSGATE_CELERY_BROKER": broker,
                    "SMSGATE_CELERY_QUEUE": queue, "SMSGATE_CELERY_CONFIG": str(cfg_path),
                    "SMSGATE_CELERY_CHUNK": str(chunk)}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, n: int) -> None:
        for i in range(n):
            log = self.tmp / f"worker{i}.log"
            self.logs.append(log)
            with log.open("wb") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo", "-Q", self.queue,
                     "-n", f"w{i}-{self.queue}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"],
                    env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp))

    def log(self, i: int) -> str:
        return self.logs[i].read_text(errors="replace")

    def running(self, i: int) -> list[str]:
        """Ids of the chunk tasks worker ``i`` received and never finished."""
        text = self.log(i)
        received = re.findall(r"Task smsgate\.send_chunk\[([0-9a-f-]+)\] received", text)
        ended = set(re.findall(r"Task smsgate\.send_chunk\[([0-9a-f-]+)\] (?:succeeded|retry|raised)", text))
        return [t for t in received if t not in ended]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_three_workers_one_sigkilled_every_recipient_accepted_once(
    tmp_path: Path, broker: str, queue: str, pg_store: str, echo: tuple[str, EmulatorControl]
) -> None:
    from celery_app import make_app

    url, ctl = echo
    n, chunk = RECIPIENTS, max(100, RECIPIENTS // 20)
    cfg_path = tmp_path / "smsgate.toml"
    cfg_path.write_text(echo_config(url, pg_store))
    workers = Workers(tmp_path, broker, queue, cfg_path, chunk)
    workers.start(3)
    try:
        numbers = [f"+234806{i:07d}" for i in range(n)]
        with Gateway(cfg_path, plugins=plugins()) as gw:
            camp = gw.tenant("acme").campaigns.create("celery", text="Spring sale: 20% off today", audience=numbers,
                                                      batch_size=200, concurrency=16, lease_seconds=6)
            # every request waits a little at the vendor: requests are in flight when the worker dies
            ctl.fault(kind="latency", delay=0.01, path="/messages", count=None)
            app = make_app(broker, queue, chunk_size=chunk)
            app.tasks["smsgate.dispatch_campaign"].delay("acme", camp.campaign_id)

            # progress read from the store by this process while the workers run
            deadline = time.monotonic() + 240
            seen = []
            while (p := camp.progress()).sent < n // 4:
                assert time.monotonic() < deadline and p.status is not CampaignStatus.COMPLETED, (
                    f"no progress: {p}\n{workers.log(0)[-3000:]}")
                seen.append(p.sent)
                time.sleep(0.2)
            assert p.status is CampaignStatus.RUNNING and p.sent < n
            victim = next((i for i in range(3) if workers.running(i)), None)
            assert victim is not None, "no worker is running a chunk"
            interrupted = workers.running(victim)[-1]
            workers.procs[victim].send_signal(signal.SIGKILL)
            workers.procs[victim].wait()
            at_kill = camp.progress()
            assert at_kill.sending > 0 or at_kill.pending > 0

            status = subprocess.run(
                [sys.executable, "-m", "smsgate", "campaign", "status", camp.campaign_id, "--config",
                 str(cfg_path), "--tenant", "acme", "--json"],
                capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(HERE)})
            assert status.returncode == 0, status.stderr[-2000:]
            assert json.loads(status.stdout)["total"] == n

            while (p := camp.progress()).status is not CampaignStatus.COMPLETED:
                assert time.monotonic() < deadline, f"not finished: {p}\n" + "\n".join(
                    workers.log(i)[-2000:] for i in range(3))
                time.sleep(0.5)
        survivors = "".join(workers.log(i) for i in range(3) if i != victim)
        assert f"smsgate.send_chunk[{interrupted}] received" in survivors, "the killed task was not redelivered"
        received = echo_received(ctl)
        assert set(received) == set(numbers), f"lost: {len(set(numbers) - set(received))}"
        dupes = [k for k, v in received.items() if v > 1]
        assert not dupes, f"{len(dupes)} numbers received twice, e.g. {dupes[:5]}"
        assert (p.sent, p.pending, p.sending, p.unknown, p.failed) == (n, 0, 0, 0, 0)
    finally:
        workers.stop()
