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
