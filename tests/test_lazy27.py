"""lazy27: a gateway whose store is opened at its first use, met at start-up (``open()``), its
tenant handles made without I/O, an SQLite URI's relative file fixed when the gateway is made,
and a Celery dispatch whose finisher the broker refuses."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_provider import API_KEY, create_emulator, echo_plugins, echo_received
from smsgate import AsyncGateway, Gateway
from smsgate.errors import ConfigError, GatewayClosed, StoreUnavailable
from smsgate.server import LiveServer
from smsgate.testing import EmulatorControl

#: lazy27's ports: a closed one stands for a PostgreSQL server that is down
PORTS = range(48400, 48450)
PASSWORD = "s3cret-lazy27"


def _tenant(url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {"default_region": "NG", "providers": {"one": {
        "plugin": "echo", "base_url": url, "sender": "SHOP", "credentials": {"api_key": API_KEY}}}}


def _closed_port() -> int:
    """A port of :data:`PORTS` nothing listens on (a connection is refused at once)."""
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise AssertionError(f"every port of {PORTS} is in use")


@pytest.fixture
def down_postgres() -> str:
    """The URL of a PostgreSQL store whose server is down, with a password in it."""
    pytest.importorskip("psycopg")
    return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{_closed_port()}/test?connect_timeout=2"


@pytest.fixture
def emu() -> Iterator[str]:
    with LiveServer(create_emulator()) as server:
        yield server.url


# ------------------------------------------------------------------ 1. open() at start-up
def test_open_meets_a_store_that_cannot_be_opened_where_check_does_not(down_postgres: str) -> None:
    """An app's start-up check (``gw.check()``) passed with a PostgreSQL server that is down: the
    store is opened at its first use, and check() checks the configuration only. ``gw.open()``
    opens it now: :class:`StoreUnavailable` naming the server, never the password; tried again
    at the next call (it may be temporary)."""
    gw = Gateway({"store": down_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    try:
        assert gw.check() == ["shop/one: echo at http://127.0.0.1:9"]  # the configuration only
        for _ in range(2):
            with pytest.raises(StoreUnavailable) as info:
                gw.open()
            text = str(info.value)
            port = down_postgres.split(":")[3].split("/")[0]
            assert f"cannot open the PostgreSQL store at 127.0.0.1:{port}/test" in text, text
            assert PASSWORD not in text and PASSWORD not in repr(info.value)
    finally:
        gw.close()


def test_open_is_idempotent_returns_the_gateway_and_refuses_once_closed(tmp_path: Path) -> None:
    """``Gateway(...).open()`` opens (and migrates) the store now and returns the gateway; again,
    it does nothing (the same store); closed, it is a GatewayClosed."""
    db = tmp_path / "sms.db"
    made = Gateway({"store": f"sqlite:///{db}", "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    assert not db.exists()  # made: nothing opened
    gw = made.open()
    assert gw is made and db.exists()
    store = gw.store
    assert gw.open() is gw and gw.store is store
    gw.close()
    with pytest.raises(GatewayClosed):
        gw.open()


def test_open_names_an_sqlite_folder_gone_since_the_gateway_was_made(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    gw = Gateway({"store": f"sqlite:///{folder / 'sms.db'}", "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    shutil.rmtree(folder)
    with pytest.raises(ConfigError, match="does not exist") as info:
        gw.open()
    assert str(folder) in str(info.value)
    folder.mkdir()  # fixed: the next call opens it
    assert gw.open() is gw and (folder / "sms.db").exists()
    gw.close()


def test_await_open_opens_an_async_gateways_store_or_raises_naming_it(tmp_path: Path, down_postgres: str) -> None:
    async def main() -> None:
        down = AsyncGateway({"store": down_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
        try:
            assert await down.check_async() == ["shop/one: echo at http://127.0.0.1:9"]
            with pytest.raises(StoreUnavailable) as info:
                await down.open()
            assert "cannot open the PostgreSQL store" in str(info.value) and PASSWORD not in str(info.value)
        finally:
            await down.aclose()
        db = tmp_path / "a.db"
        agw = AsyncGateway({"store": f"sqlite:///{db}", "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
        assert not db.exists()
        assert await agw.open() is agw and db.exists()
        store = agw.store
        assert await agw.open() is agw and agw.store is store
        await agw.aclose()
        with pytest.raises(GatewayClosed):
            await agw.open()

    asyncio.run(main())


# ------------------------------------------------------------ 2. a tenant handle: no I/O
def test_a_tenant_handle_opens_no_store_its_first_call_meets_it(tmp_path: Path, emu: str) -> None:
    """``gw.tenant("shop")`` made the tenant's plan driver, which opened the store: with its SQLite
    folder gone (or its PostgreSQL server down) getting the handle raised. Now the handle is made
    without I/O; its first call raises the typed error, and works once the folder is back."""
    folder = tmp_path / "data"
    folder.mkdir()
    gw = Gateway({"store": f"sqlite:///{folder / 'sms.db'}", "tenants": {"shop": _tenant(emu)}},
                 plugins=echo_plugins())
    shutil.rmtree(folder)
    shop = gw.tenant("shop")
    assert not folder.exists()
    with pytest.raises(ConfigError, match="does not exist"):
        shop.send("08031234567", "hi")
    assert echo_received(EmulatorControl(emu)) == {}  # nothing left
    folder.mkdir()
    assert shop.send("08031234567", "hi").message_id
    assert echo_received(EmulatorControl(emu)) == {"+2348031234567": 1}
    gw.close()


def test_a_tenant_handle_of_a_gateway_whose_postgres_is_down(down_postgres: str) -> None:
    gw = Gateway({"store": down_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
    try:
        shop = gw.tenant("shop")
        assert shop.normalize("08031234567") == "+2348031234567"  # no store needed
        with pytest.raises(StoreUnavailable):
            shop.optouts.count()
    finally:
        gw.close()

    async def main() -> None:  # (an AsyncGateway's handle already was I/O free)
        agw = AsyncGateway({"store": down_postgres, "tenants": {"shop": _tenant()}}, plugins=echo_plugins())
        try:
            handle = agw.tenant("shop")
            with pytest.raises(StoreUnavailable):
                await handle.optouts.count()
        finally:
            await agw.aclose()

    asyncio.run(main())


# ------------------------------------------- 3. a relative SQLite URI fixed at construction
@pytest.mark.parametrize("url", ["sqlite:///rel.db", "sqlite:///file:rel.db?mode=rwc"], ids=["path", "uri"])
def test_a_relative_sqlite_store_is_the_folder_current_when_the_gateway_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu: str, url: str) -> None:
    """``sqlite:///file:rel.db?mode=rwc`` (an SQLite URI) was read against the folder current at
    the gateway's first use: an application that changed folder between making its gateway and
    its first send logged into another file (opt-outs and idempotency keys not seen). Now both
    forms name the file in the folder current when the gateway is made."""
    made_in, later = tmp_path / "app", tmp_path / "elsewhere"
    made_in.mkdir()
    later.mkdir()
    monkeypatch.chdir(made_in)
    gw = Gateway({"store": url, "tenants": {"shop": _tenant(emu)}}, plugins=echo_plugins())
    monkeypatch.chdir(later)
    sent = gw.tenant("shop").send("08031234567", "hi")
    assert gw.store.location() == f"sqlite:{os.path.realpath(made_in / 'rel.db')}"
    gw.close()
    assert (made_in / "rel.db").exists() and not (later / "rel.db").exists()
    assert echo_received(EmulatorControl(emu)) == {"+2348031234567": 1}
    with Gateway({"store": f"sqlite:///{made_in / 'rel.db'}", "tenants": {"shop": _tenant(emu)}},
                 plugins=echo_plugins()) as again:
        assert again.tenant("shop").get(sent.message_id).to == "+2348031234567"


# ------------------------------------------- 4. a worker's publish the broker refuses
BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672


def _rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


class _Full:
    """A RabbitMQ virtual host of a test's own whose connection limit is 1, taken by a connection
    of the test (:attr:`blocker`): every other connection to it is refused (``NOT_ALLOWED``,
    py-amqp's ``NotAllowed``) until :meth:`free` closes that one, as when a connection limit is
    reached and another client goes."""

    def __init__(self, vhost: str) -> None:
        from kombu import Connection

        self.vhost = vhost
        self.url = f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{vhost}"
        self.blocker = Connection(self.url)
        self.blocker.ensure_connection(max_retries=3)

    def free(self) -> None:
        self.blocker.close()


@pytest.fixture
def full_vhost() -> Iterator[_Full]:
    """A :class:`_Full` virtual host (skips without RabbitMQ or ``rabbitmqctl``)."""
    pytest.importorskip("celery")
    import uuid

    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl not found (the test sets a virtual host's connection limit)")
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=3).close()
    except OSError as exc:
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    vhost = f"lazy27-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    full = None
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        _rabbitmqctl("set_vhost_limits", "-p", vhost, '{"max-connections": 1}')
        full = _Full(vhost)
        yield full
    finally:
        if full is not None:
            full.free()
        _rabbitmqctl("delete_vhost", vhost)


def _queued(full: _Full, queue: str) -> list[str]:
    """The tasks waiting in ``queue`` of ``full``'s virtual host, by name, read from RabbitMQ
    (and taken off; its limit cleared first: a connection just closed may still count)."""
    import contextlib

    from kombu import Connection

    got = []
    full.free()
    _rabbitmqctl("clear_vhost_limits", "-p", full.vhost)
    with Connection(full.url) as conn:
        q = conn.SimpleQueue(queue)
        with contextlib.suppress(q.Empty):
            while True:
                message = q.get(timeout=1)
                message.ack()
                got.append(message.headers["task"])
        q.close()
    return got


@pytest.mark.timeout(180)
@pytest.mark.parametrize("lifted", [True, False], ids=["refusal-ends", "refusal-stays"])
def test_a_dispatch_whose_finisher_the_broker_refuses_tries_again_then_goes_back(
        tmp_path: Path, full_vhost: _Full, lifted: bool, caplog: pytest.LogCaptureFixture) -> None:
    """A worker's dispatch queues the campaign's finisher, and the broker refuses the publish
    (the connection limit of its RabbitMQ virtual host reached: ``NOT_ALLOWED``, a
    :class:`BrokerRefused`): the dispatch failed at once, acknowledged, leaving the campaign
    ``running`` with nothing queued and nothing watching it. Now the publish is tried again with
    backoff (``REFUSED_RETRIES``): a refusal that ends meanwhile (a connection goes) queues the
    finisher and the chunk tasks; one that stays sends the dispatch back to the broker
    (``Reject(requeue=True)``: dispatched again, safe), said at ERROR. The broker is real; the
    task runs here as a worker runs it (``Task.apply``), what is queued is read from RabbitMQ."""
    import logging
    import threading
    import uuid

    from celery import Celery
    from celery.exceptions import Reject

    from smsgate.contrib.celery import DISPATCH, BrokerRefused, configure

    queue = f"lazy27-{uuid.uuid4().hex[:8]}"
    gw = Gateway({"store": f"sqlite:///{tmp_path / 'w.db'}", "tenants": {"acme": _tenant()}}, plugins=echo_plugins())
    camp = gw.tenant("acme").campaigns.create("refused", text="Sale", audience=[f"+234806{i:07d}" for i in range(5)])
    app = Celery(f"lazy27-{uuid.uuid4().hex[:8]}",
                 broker=full_vhost.url, set_as_current=False)
    configure(app, gateway=lambda: gw, chunk_size=2)
    app.conf.update(task_default_queue=queue, task_ignore_result=True)
    refused = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "the broker refused the publish" in record.getMessage():
                refused.set()

    watch = Watch()
    logging.getLogger("smsgate.celery").addHandler(watch)
    caplog.set_level(logging.WARNING, logger="smsgate.celery")

    def lift() -> None:
        if refused.wait(60):
            full_vhost.free()  # the limit's one connection goes: the next is let in

    lifter = threading.Thread(target=lift)
    if lifted:
        lifter.start()
    try:
        result = app.tasks[DISPATCH].apply(("acme", camp.campaign_id))
    finally:
        refused.set()
        if lifted:
            lifter.join()
        logging.getLogger("smsgate.celery").removeHandler(watch)
        from smsgate.contrib.celery import close_gateways

        close_gateways()
        app.close()
    # (the old code: FAILURE, BrokerRefused raised by the finisher's first publish)
    assert result.state == ("SUCCESS" if lifted else "REJECTED"), (result.state, result.result)
    from smsgate.contrib.celery import REFUSED_RETRIES

    tries = [r for r in caplog.records if "the broker refused the publish" in r.getMessage()]
    if lifted:
        assert result.result == "running", result.result
        assert 1 <= len(tries) < REFUSED_RETRIES
        assert sorted(_queued(full_vhost, queue)) == ["smsgate.finish_campaign"] + ["smsgate.send_chunk"] * 3
    else:
        assert isinstance(result.result, Reject) and result.result.requeue
        assert isinstance(result.result.reason, BrokerRefused)
        assert "NOT_ALLOWED" in str(result.result.reason) and "connection limit" in str(result.result.reason)
        assert len(tries) == REFUSED_RETRIES
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("finisher could not be queued" in e and "goes back to the broker" in e for e in errors), errors
    with Gateway({"store": f"sqlite:///{tmp_path / 'w.db'}", "tenants": {"acme": _tenant()}},
                 plugins=echo_plugins()) as again:  # (the task's gateway was closed with the worker's)
        progress = again.tenant("acme").campaigns.get(camp.campaign_id).progress()
        assert (progress.status.value, progress.pending) == ("running", 5)  # nothing sent here


@pytest.mark.timeout(180)
@pytest.mark.parametrize("lifted", [True, False], ids=["refusal-ends", "refusal-stays"])
def test_a_finisher_whose_next_look_the_broker_refuses_tries_again_then_goes_back(
        tmp_path: Path, full_vhost: _Full, lifted: bool) -> None:
    """The finisher queues its next look (its retry, with a countdown), and the broker refuses the
    publish: Celery's ``retry`` turned it into ``Reject(requeue=False)``: the finisher's message
    was dropped, the campaign left running with nothing watching it. Now the publish is tried
    again (``REFUSED_RETRIES``, with backoff): queued once the refusal ends; else the finisher's
    own message goes back to the broker (``Reject(requeue=True)``). The task is called here as a
    worker calls it (not eagerly: its retry is published to the real broker)."""
    import uuid

    from celery import Celery
    from celery.exceptions import Reject, Retry

    from smsgate.contrib.celery import FINISH, BrokerRefused, close_gateways, configure
    from smsgate.models import CampaignStatus

    queue = f"lazy27-{uuid.uuid4().hex[:8]}"
    gw = Gateway({"store": f"sqlite:///{tmp_path / 'w.db'}", "tenants": {"acme": _tenant()}}, plugins=echo_plugins())
    camp = gw.tenant("acme").campaigns.create("refused", text="Sale", audience=["+2348060000001"])
    gw.store.update_campaign("acme", camp.campaign_id, status=CampaignStatus.RUNNING)  # (a dispatch ran)
    app = Celery(f"lazy27-{uuid.uuid4().hex[:8]}",
                 broker=full_vhost.url, set_as_current=False)
    configure(app, gateway=lambda: gw)
    app.conf.update(task_default_queue=queue, task_ignore_result=True)
    import logging
    import threading

    refused = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "the broker refused the publish" in record.getMessage():
                refused.set()

    def lift() -> None:
        if refused.wait(60):
            full_vhost.free()  # the limit's one connection goes: the next is let in

    watch = Watch()
    logging.getLogger("smsgate.celery").addHandler(watch)
    lifter = threading.Thread(target=lift)
    if lifted:
        lifter.start()
    try:
        task = app.tasks[FINISH]
        # the request a worker gives the task (not called directly, not eager: its retry is published)
        task.push_request(id=str(uuid.uuid4()), args=["acme", camp.campaign_id], kwargs={}, retries=0,
                          called_directly=False, is_eager=False)
        try:
            with pytest.raises((Retry, Reject)) as info:
                task.run("acme", camp.campaign_id)
        finally:
            task.pop_request()
    finally:
        refused.set()
        if lifted:
            lifter.join()
        logging.getLogger("smsgate.celery").removeHandler(watch)
        close_gateways()
        app.close()
    if lifted:
        assert isinstance(info.value, Retry), info.value
        assert _queued(full_vhost, queue) == ["smsgate.finish_campaign"]
    else:  # (the old code: Reject(requeue=False), from Celery's retry)
        assert isinstance(info.value, Reject) and info.value.requeue, info.value
        assert isinstance(info.value.reason, BrokerRefused)
    gw.close()
