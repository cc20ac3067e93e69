"""The Celery app of the multi-worker tests (``celery -A celery_app worker``; tests/ on PYTHONPATH).

Configured from the environment the test gives each worker:
``SMSGATE_CELERY_BROKER`` (the broker URL), ``SMSGATE_CELERY_QUEUE`` (a queue of the
test run's own), ``SMSGATE_CELERY_BACKEND`` (a result backend URL; unset: results are not kept) and
``SMSGATE_CELERY_CONFIG`` (the path of a TOML smsgate configuration whose
only provider plugin is the echo vendor of reference_provider; with ``SMSGATE_CELERY_ENTRY_POINTS=1``
the installed plugins too: squad...).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from reference_provider import EchoPlugin
from smsgate import Gateway
from smsgate.contrib.celery import configure
from smsgate.plugins import PluginManager

BROKER = os.environ.get("SMSGATE_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("SMSGATE_CELERY_QUEUE", "smsgate-test")
BACKEND = os.environ.get("SMSGATE_CELERY_BACKEND") or None


def make_gateway() -> Gateway:
    """The worker's gateway: the test's configuration, the echo vendor as the only plugin."""
    pm = PluginManager(load_entry_points=os.environ.get("SMSGATE_CELERY_ENTRY_POINTS") == "1")
    pm.register(EchoPlugin())
    return Gateway(Path(os.environ["SMSGATE_CELERY_CONFIG"]), plugins=pm)


def make_app(broker: str = BROKER, queue: str = QUEUE, chunk_size: int = 1000,
             backend: str | None = BACKEND) -> Celery:
    """A Celery app sending smsgate's tasks to ``queue`` on ``broker``; with a result ``backend``,
    tasks keep their results there (Celery's default serializer: JSON)."""
    app = Celery("smsgate_test", broker=broker, backend=backend)
    configure(app, gateway="celery_app:make_gateway", chunk_size=chunk_size)
    app.conf.update(task_default_queue=queue, task_ignore_result=backend is None,
                    broker_connection_retry_on_startup=True, worker_hijack_root_logger=True)
    return app


app = make_app(chunk_size=int(os.environ.get("SMSGATE_CELERY_CHUNK", "1000")))
