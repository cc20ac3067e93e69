"""A Django + Celery shop built from the docs (helper nu18): what it met.

Each test drives the real code path (the echo vendor's emulator over loopback HTTP, a real
SQLite store, Celery's task code run in this process as a worker runs it) and proves what was
sent from the emulator's own request record.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Gateway
from smsgate.errors import ValidationError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer


def received(ctl: EmulatorControl) -> Counter[str]:
    """Every number the echo vendor accepted a message for, with how many times."""
    out: Counter[str] = Counter()
    for r in ctl.requests(method="POST"):
        body = r.json()
        for m in body["messages"] if r.path.endswith("/bulk") else [body]:
            out[m["to"]] += 1
    return out


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
    assert received(premium) == Counter({"+2348031234567": 1})  # the OTP route's vendor, once
    assert received(bulk) == Counter()
    assert gw.tenant("shop").status(first.result["message_id"]).provider == "premium"

    send_later("shop", "08031234568", "Sale today", app=app, apply_options={"queue": "nu18-otp"})
    args, kwargs = queued(app, "nu18-otp")
    assert "kind" not in kwargs  # no kind: the task message is as before (workers of earlier releases take it)
    assert task.apply(args, kwargs).successful()
    assert received(bulk) == Counter({"+2348031234568": 1})


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
    assert received(premium) == Counter() and received(bulk) == Counter()


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
            assert received(ctl) == Counter({f"+234{n[1:]}": 1 for n in numbers})  # each once
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
