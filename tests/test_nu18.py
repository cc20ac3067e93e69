"""A Django + Celery shop built from the docs (helper nu18): what it met.

Each test drives the real code path (the echo vendor's emulator over loopback HTTP, a real
SQLite store, Celery's task code run in this process as a worker runs it) and proves what was
sent from the emulator's own request record.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from reference_provider import API_KEY, EchoPlugin, create_emulator, echo_received
from smsgate import Gateway
from smsgate.errors import ValidationError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer


@pytest.fixture
def otp_shop(tmp_path: Path) -> Iterator[tuple[Gateway, Any, EmulatorControl, EmulatorControl]]:
    """A tenant whose one-time codes go through a premium provider (a route for kind "otp"),
    everything else through a bulk one; a Celery app configured for it (kombu's in-memory broker)."""
    from celery import Celery

    from smsgate.contrib.celery import _close_gateways, configure

    with LiveServer(create_emulator()) as premium, LiveServer(create_emulator()) as bulk:
        def prov(url: str) -> dict[str, Any]:
            return {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "SHOP"}

        cfg = {"store": f"sqlite:///{tmp_path / 'shop.db'}",
               "tenants": {"shop": {"default_region": "NG",
                                    "providers": {"premium": prov(premium.url), "bulk": prov(bulk.url)},
                                    "routes": [{"kinds": ["otp"], "providers": ["premium"]},
                                               {"providers": ["bulk"]}]}}}
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        gw = Gateway(cfg, plugins=pm)
        app = Celery(f"nu18-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
        configure(app, gateway=lambda: gw)
        try:
            yield gw, app, EmulatorControl(premium.url), EmulatorControl(bulk.url)
        finally:
            _close_gateways()
            gw.close()
            app.close()


def queued(app: Any, queue: str) -> tuple[Any, Any]:
    """The args and kwargs of the one task message on ``queue``, taken off the broker."""
    with app.connection_for_read() as conn:
        message = conn.SimpleQueue(queue).get(timeout=5)
        args, kwargs, _ = message.decode()
        message.ack()
    return args, kwargs


def test_send_later_carries_the_kind_to_the_route_of_that_kind(
        otp_shop: tuple[Gateway, Any, EmulatorControl, EmulatorControl]) -> None:
    """docs/scaling.md queues a one-time code from a web request with ``send_later``; a tenant
    routes its codes through a premium provider (``kinds = ["otp"]``, docs/routing.md), as
    ``tenant.send(..., kind="otp")`` does. ``send_later`` took no ``kind``: a queued code could
    only go down the bulk route (``TypeError`` for ``kind=``)."""
    from smsgate.contrib.celery import send_later

    gw, app, premium, bulk = otp_shop
    send_later("shop", "08031234567", "Your code is 123456", idempotency_key="otp-42", kind="otp", app=app,
               apply_options={"queue": "nu18-otp"})
    args, kwargs = queued(app, "nu18-otp")
    task = app.tasks["smsgate.send_message"]
    first, again = task.apply(args, kwargs), task.apply(args, kwargs)  # delivered, then delivered again
    assert first.successful(), first.traceback
    assert first.result["message_id"] == again.result["message_id"]
    assert echo_received(premium) == Counter({"+2348031234567": 1})  # the OTP route's vendor, once
    assert echo_received(bulk) == Counter()
    assert gw.tenant("shop").status(first.result["message_id"]).provider == "premium"

    send_later("shop", "08031234568", "Sale today", app=app, apply_options={"queue": "nu18-otp"})
    args, kwargs = queued(app, "nu18-otp")
    assert "kind" not in kwargs  # no kind: the task message is as before (workers of earlier releases take it)
    assert task.apply(args, kwargs).successful()
    assert echo_received(bulk) == Counter({"+2348031234568": 1})


def test_send_later_refuses_a_kind_that_is_not_one_before_queueing(
        otp_shop: tuple[Gateway, Any, EmulatorControl, EmulatorControl]) -> None:
    from smsgate.contrib.celery import send_later

    _, app, premium, bulk = otp_shop
    with pytest.raises(ValidationError) as info:
        send_later("shop", "08031234567", "Your code is 123456", kind="OTP", app=app,
                   apply_options={"queue": "nu18-bad"})
    assert info.value.field == "kind"
    with app.connection_for_read() as conn:
        assert conn.SimpleQueue("nu18-bad").qsize() == 0  # nothing queued
    assert echo_received(premium) == Counter() and echo_received(bulk) == Counter()


def test_a_dispatch_in_eager_mode_sends_the_campaign_instead_of_raising_retry(tmp_path: Path) -> None:
    """A Django project's test settings commonly run Celery tasks in the caller
    (``CELERY_TASK_ALWAYS_EAGER`` with ``CELERY_TASK_EAGER_PROPAGATES``). ``dispatch_campaign``
    ran its finisher before the round of chunk tasks: run at once, the finisher found every
    recipient pending, retried, and eager propagation raised ``celery.exceptions.Retry`` to the
    caller with nothing sent (the campaign left ``running``)."""
    from celery import Celery

    from smsgate.contrib.celery import _close_gateways, configure, dispatch_campaign

    numbers = [f"0803{i:07d}" for i in range(30)]
    with LiveServer(create_emulator()) as vendor:
        cfg = {"store": f"sqlite:///{tmp_path / 'eager.db'}",
               "tenants": {"shop": {"default_region": "NG", "providers": {"echo": {
                   "plugin": "echo", "base_url": vendor.url, "credentials": {"api_key": API_KEY},
                   "sender": "SHOP"}}}}}
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
        gw = Gateway(cfg, plugins=pm)
        app = Celery(f"nu18-eager-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
        app.conf.update(task_always_eager=True, task_eager_propagates=True)
        configure(app, gateway=lambda: gw, chunk_size=7)
        try:
            camp = gw.tenant("shop").campaigns.create("eager", text="Sale today", audience=numbers)
            result = app.tasks[dispatch_campaign.name].delay("shop", camp.campaign_id)
            assert result.successful()
            progress = camp.progress()
            ctl = EmulatorControl(vendor.url)
            assert echo_received(ctl) == Counter({f"+234{n[1:]}": 1 for n in numbers})  # each once
            assert progress.status.value == "completed" and progress.sent == len(numbers)
        finally:
            _close_gateways()
            gw.close()
            app.close()


def test_close_gateways_lets_the_next_eager_test_send_through_its_own_settings() -> None:
    """Two tests of a Django project, Celery eager, each with its own test configuration (a
    ``memory://`` store) and the same order id as idempotency key, as docs/django.md's tests do.
    A task's gateway is made once per process and kept: the second test's ``send_later`` was
    answered from the first test's store and sent nothing, and there was no public way to
    drop it. ``close_gateways()`` at the end of a test does."""
    from celery import Celery

    from smsgate.contrib.celery import close_gateways, configure, send_later
    from smsgate.testing import outbox

    settings: dict[str, Any] = {}

    def new_gateway() -> Gateway:  # shop.sms:new_gateway, reading the (overridden) settings
        return Gateway(settings["SMSGATE"])

    app = Celery(f"nu18-tests-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    configure(app, gateway=new_gateway)
    try:
        for test in range(2):  # each test: its own settings, a clear outbox, the same key
            settings["SMSGATE"] = {"store": "memory://", "tenants": {"shop": {
                "default_region": "NG", "providers": {"memory": {"plugin": "memory"}}}}}
            outbox.clear()
            send_later("shop", "08031234567", "Your order 42 has shipped.", idempotency_key="order-42-shipped",
                       app=app)
            outbox.assert_sent(to="+2348031234567", count=1)
            close_gateways()  # the test's cleanup
    finally:
        close_gateways()
        app.close()


@pytest.mark.timeout(180)
def test_a_worker_says_at_start_which_tenant_cannot_send(tmp_path: Path) -> None:
    """docs/scaling.md: "a gateway that cannot be made is said at start". A gateway builds its
    providers at their first message, so a worker whose configuration misspelt a plugin (or
    left out a sender a vendor needs) logged "worker gateway ready" and said nothing until the
    first OTP of the day failed in a task. A real ``celery worker`` (RabbitMQ) now logs, at
    ERROR and before any task, the tenant and the key at fault; the good tenant is not named."""
    import socket

    from smsgate.testing.workers import CeleryWorkers, delete_queue

    broker = "amqp://guest:guest@127.0.0.1:5672//"
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as exc:
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    here = Path(__file__).parent
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "w.db"}"\n'
                   '[tenants.shop]\ndefault_region = "NG"\n'
                   '[tenants.shop.providers.one]\nplugin = "ehco"\nbase_url = "http://127.0.0.1:9"\n'
                   f'sender = "SHOP"\ncredentials = {{ api_key = "{API_KEY}" }}\n'
                   '[tenants.beta]\ndefault_region = "NG"\n'
                   '[tenants.beta.providers.one]\nplugin = "echo"\nbase_url = "http://127.0.0.1:9"\n'
                   f'sender = "BETA"\ncredentials = {{ api_key = "{API_KEY}" }}\n')
    queue = f"nu18-{uuid.uuid4().hex[:12]}"
    import smsgate

    src = Path(smsgate.__file__).resolve().parents[1]  # the workers run the smsgate this test imports
    workers = CeleryWorkers("celery_app", queue=queue, workdir=tmp_path, env={
        "PYTHONPATH": f"{here}{os.pathsep}{src}", "SMSGATE_CELERY_BROKER": broker, "SMSGATE_CELERY_QUEUE": queue,
        "SMSGATE_CELERY_CONFIG": str(cfg)}, heartbeat=False, pool="threads")
    try:
        with workers:
            workers.start(1)
            workers.wait_ready()
            deadline = time.monotonic() + 30
            while "cannot send" not in workers.log(0) and time.monotonic() < deadline:
                time.sleep(0.2)
            log = workers.log(0)
    finally:
        delete_queue(broker, queue)
    assert "Task " not in log  # before any task
    [line] = [ln for ln in log.splitlines() if "cannot send" in ln]
    assert "ERROR" in line and "'shop'" in line
    assert "tenants.shop.providers.one.plugin: unknown provider plugin 'ehco'" in line
    assert "did you mean 'echo'" in line.lower()
    assert API_KEY not in log


def test_a_publish_that_fails_names_the_broker_without_its_password() -> None:
    """A web request's ``send_later`` while the broker is down (or ``CELERY_BROKER_URL`` points
    at the wrong port): ``PublishUnconfirmed`` said "not confirmed by the broker within 10.0 s"
    (after 0.7 s of refused connections) and not which broker it tried. It names the broker's
    address now, its password masked as kombu masks it."""
    import socket

    from celery import Celery

    from smsgate.contrib.celery import PublishUnconfirmed, configure, send_later

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Celery(f"nu18-down-{uuid.uuid4().hex[:8]}", broker=f"amqp://shop:brokerpw@127.0.0.1:{port}//",
                 set_as_current=False)
    app.conf.broker_connection_timeout = 2
    configure(app, gateway=lambda: Gateway({"store": "memory://"}))
    try:
        with pytest.raises(PublishUnconfirmed) as info:
            send_later("shop", "08031234567", "Your code is 123456", idempotency_key="otp-1", app=app)
    finally:
        app.close()
    text = str(info.value)
    assert f"amqp://shop:**@127.0.0.1:{port}//" in text, text
    assert "brokerpw" not in text and "123456" not in text and "08031234567" not in text
    assert "Connection refused" in text and "may or may not be queued" in text


class OutageProxy:
    """A TCP proxy to PostgreSQL on a loopback port of its own that can go down (listener and
    every connection closed: the server restarting or failing over, the network to it lost) and
    come back on the same port. The store is real; only the way to it breaks."""

    def __init__(self, target: tuple[str, int]) -> None:
        import socket

        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._socks: list[Any] = []
        self._lock = threading.Lock()
        self._listener: Any = None
        self.up()

    def up(self) -> None:
        import socket

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        import socket

        with self._lock:
            socks, self._socks = self._socks, []
            listener, self._listener = self._listener, None
        for s in [listener, *socks]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self, listener: Any) -> None:
        import socket

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: Any, b: Any) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                b.close()


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_a_store_outage_does_not_strand_a_campaign_on_the_workers(tmp_path: Path) -> None:
    """PostgreSQL unreachable for a while (a restart, a failover) under Celery workers. The
    dispatch and the finisher of a campaign failed with the ``StoreError`` and were not tried
    again: nothing watched the campaign any more, and it stayed ``draft`` (a dispatch that met
    the outage) or ``running`` with its recipients pending (a finisher that met it) for good,
    with nobody to send them. Seen first in a Django shop: 15 s of outage mid-campaign left 3,200
    of 4,000 recipients unsent. Both tasks now look again every 10 s, so each campaign completes
    once the store is back, every recipient accepted once (the vendor emulator's own record)."""
    import socket

    psycopg = pytest.importorskip("psycopg")
    import smsgate
    from bounded import drop_schema
    from celery_app import make_app
    from smsgate.contrib.celery import dispatch_campaign, finish_campaign
    from smsgate.models import CampaignStatus
    from smsgate.testing.workers import CeleryWorkers, delete_queue

    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    broker = "amqp://guest:guest@127.0.0.1:5672//"
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except (OSError, psycopg.Error) as exc:
        pytest.skip(f"PostgreSQL or RabbitMQ unreachable: {exc}")
    schema = f"nu18_{uuid.uuid4().hex[:10]}"
    queue = f"nu18-{uuid.uuid4().hex[:12]}"
    proxy = OutageProxy(("127.0.0.1", 5432))
    here = Path(__file__).parent
    src = Path(smsgate.__file__).resolve().parents[1]  # the workers run the smsgate this test imports
    try:
        with LiveServer(create_emulator()) as vendor:
            def config(port: int) -> str:
                return (f'store = "postgresql://postgres@127.0.0.1:{port}/test?schema={schema}"\n'
                        '[tenants.acme]\ndefault_region = "NG"\n'
                        f'[tenants.acme.providers.one]\nplugin = "echo"\nbase_url = "{vendor.url}"\n'
                        f'sender = "ACME"\ncredentials = {{ api_key = "{API_KEY}" }}\n')

            (tmp_path / "direct.toml").write_text(config(5432))  # this test's own way to the store
            (tmp_path / "worker.toml").write_text(config(proxy.port))  # the workers': through the proxy
            pm = PluginManager(load_entry_points=False)
            pm.register(EchoPlugin())
            gw = Gateway(tmp_path / "direct.toml", plugins=pm)
            first = [f"0803{i:07d}" for i in range(40)]
            second = [f"0805{i:07d}" for i in range(40)]
            dispatched = gw.tenant("acme").campaigns.create("one", text="Sale", audience=first, lease_seconds=5)
            watched = gw.tenant("acme").campaigns.create("two", text="Sale", audience=second, lease_seconds=5)
            gw.store.update_campaign("acme", watched.campaign_id, status=CampaignStatus.RUNNING)
            app = make_app(broker, queue, chunk_size=15)
            workers = CeleryWorkers("celery_app", queue=queue, workdir=tmp_path, env={
                "PYTHONPATH": f"{here}{os.pathsep}{src}", "SMSGATE_CELERY_BROKER": broker,
                "SMSGATE_CELERY_QUEUE": queue, "SMSGATE_CELERY_CONFIG": str(tmp_path / "worker.toml")},
                heartbeat=False, pool="threads")
            try:
                with workers:
                    workers.start(1)
                    workers.wait_ready()
                    deadline = time.monotonic() + 30
                    while "worker gateway ready" not in workers.log(0) and time.monotonic() < deadline:
                        time.sleep(0.1)
                    proxy.down()  # the store goes away
                    app.tasks[dispatch_campaign.name].delay("acme", dispatched.campaign_id)
                    app.tasks[finish_campaign.name].delay("acme", watched.campaign_id, chunk_size=15)
                    deadline = time.monotonic() + 60  # both met the outage
                    while ("Task smsgate.dispatch_campaign[" not in workers.log(0)
                           or "Task smsgate.finish_campaign[" not in workers.log(0)
                           or workers.log(0).count("Connection refused") < 2) and time.monotonic() < deadline:
                        time.sleep(0.2)
                    time.sleep(1)
                    proxy.up()  # and comes back
                    deadline = time.monotonic() + 150
                    while time.monotonic() < deadline and not all(
                            c.progress().status is CampaignStatus.COMPLETED for c in (dispatched, watched)):
                        time.sleep(0.5)
                    log = workers.log(0)
            finally:
                app.close()
                gw_progress = [c.progress() for c in (dispatched, watched)]
                gw.close()
            ctl = EmulatorControl(vendor.url)
            assert [p.status for p in gw_progress] == [CampaignStatus.COMPLETED] * 2, (gw_progress, log[-3000:])
            assert echo_received(ctl) == Counter({f"+234{n[1:]}": 1 for n in first + second})
            assert "the store failed" in log
    finally:
        proxy.down()
        delete_queue(broker, queue)
        drop_schema(dsn, schema)
