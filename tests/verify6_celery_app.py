"""The Celery app of the verify6 harness's worker test (tests/test_verify6.py).

Its broker, queue and smsgate configuration come from the environment (``V6_BROKER``,
``V6_QUEUE``, ``V6_CONFIG``: a JSON file), so the test and its ``celery worker`` processes
build the same app.
"""

from __future__ import annotations

import json
import os

from celery import Celery

from smsgate import Gateway
from smsgate.contrib.celery import configure

app = Celery("verify6", broker=os.environ.get("V6_BROKER", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.task_default_queue = os.environ.get("V6_QUEUE", "verify6")


def make_gateway() -> Gateway:
    """The gateway of a worker: the configuration file the test wrote."""
    with open(os.environ["V6_CONFIG"], encoding="utf-8") as fh:
        return Gateway(json.load(fh))


configure(app, gateway=make_gateway, chunk_size=int(os.environ.get("V6_CHUNK", "50")))
