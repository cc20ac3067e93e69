"""dx24: user-facing leftovers (a refused broker login, a lazy webhook app's store, the worker's
start-up check of stored tenants, a config path that is not a file, duplicate vendor ids in one
answer, a broken plugin's error shown once)."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

from smsgate import Gateway

BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672


def _rabbit_up() -> None:
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=3).close()
    except OSError as exc:
        pytest.skip(f"RabbitMQ unreachable: {exc}")


def test_a_broker_that_refuses_the_password_is_a_typed_error_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    """A wrong password in the broker URL: ``send_later`` and ``dispatch_campaign.delay`` raised
    py-amqp's raw ``AccessRefused`` (no broker named, nothing to check). Now a
    :class:`BrokerRefused` (a ``ConfigError``) naming the broker, its password masked, and what to
    check; the password is in no text and no log record."""
    pytest.importorskip("celery")
    _rabbit_up()
    from celery import Celery

    from smsgate.contrib.celery import DISPATCH, BrokerRefused, configure, send_later
    from smsgate.errors import ConfigError

    password = f"wrong-{uuid.uuid4().hex[:8]}"
    app = Celery(f"dx24-{uuid.uuid4().hex[:8]}", broker=f"amqp://guest:{password}@{BROKER_HOST}:{BROKER_PORT}//",
                 set_as_current=False)
    configure(app, gateway=lambda: Gateway({"store": "memory://"}))
    app.conf.task_ignore_result = True
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(BrokerRefused) as sent:
            send_later("shop", "08031234567", "Your code is 123456", idempotency_key="otp-1", app=app)
        with pytest.raises(BrokerRefused) as dispatched:
            app.tasks[DISPATCH].delay("shop", "camp-1")
    finally:
        app.close()
    for info, task in ((sent, "smsgate.send_message"), (dispatched, DISPATCH)):
        assert isinstance(info.value, ConfigError)
        text = str(info.value)
        assert f"amqp://guest:**@{BROKER_HOST}:{BROKER_PORT}//" in text, text
        assert "ACCESS_REFUSED" in text and task in text and "password" in text and "not queued" in text, text
        assert password not in text and password not in repr(info.value)
        assert "123456" not in text and "08031234567" not in text
    assert all(password not in r.getMessage() for r in caplog.records)


def _echo_tenant(sender: str) -> dict[str, object]:
    from reference_provider import API_KEY

    return {"default_region": "NG", "providers": {"one": {
        "plugin": "echo", "base_url": "http://127.0.0.1:9", "sender": sender, "credentials": {"api_key": API_KEY}}}}


def test_a_worker_checks_the_tenant_sources_tenants_as_it_starts(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A worker process checked only the configuration's tenants as it started: a tenant stored
    with ``smsgate tenant add`` whose credentials the worker's ``SMSGATE_TENANT_KEY`` cannot
    decrypt (or whose plugin the worker lacks) said nothing until its first task failed. Now
    each tenant of the source is checked too (in a thread of its own) and the one that cannot
    send is logged at ERROR; the good one is not named. Run through Celery's own
    ``worker_process_init`` signal, as a prefork child sends it."""
    pytest.importorskip("celery")
    import time

    from celery import Celery
    from celery.signals import worker_process_init

    from reference_provider import API_KEY, EchoPlugin
    from smsgate.contrib.celery import close_gateways, configure
    from smsgate.plugins import PluginManager
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants, new_key

    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    url = f"sqlite:///{tmp_path / 'w.db'}"
    old_key, worker_key = new_key(), new_key()
    admin = StoredTenants(url, keys=old_key, plugins=pm)
    admin.add("acme", _echo_tenant("ACME"))  # encrypted with a key the worker no longer has
    admin.close()
    admin = StoredTenants(url, keys=worker_key, plugins=pm)
    admin.add("beta", _echo_tenant("BETA"))
    admin.close()

    def make_gateway() -> Gateway:
        store = open_store(url)
        return Gateway({"tenants": {"shop": _echo_tenant("SHOP")}}, store=store, plugins=pm,
                       tenants=StoredTenants(store, keys=worker_key))

    app = Celery(f"dx24-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
    configure(app, gateway=make_gateway)
    caplog.set_level(logging.INFO, logger="smsgate")
    from celery import current_app

    before = current_app._get_current_object()
    app.set_current()
    try:
        worker_process_init.send(sender=None)
        deadline = time.monotonic() + 30
        while not any("tenant source" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        close_gateways()
        before.set_current()
        app.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "tenant 'acme' cannot send" in errors[0] and "cannot be decrypted" in errors[0], errors
    assert "checked the 2 tenants of the tenant source (1 cannot send)" in caplog.text
    assert API_KEY not in caplog.text
