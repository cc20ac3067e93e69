"""A process sending one message with an idempotency key, for the idempotency race tests.

Usage: python idempotency_worker.py CONFIG_JSON GO_FILE KEY TO TEXT

Says it is ready (a file GO_FILE.ready-PID), waits until GO_FILE exists (so that every worker sends at once), sends, and prints
the answer's message id, status and number as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from reference_provider import EchoPlugin  # tests/ is on PYTHONPATH (set by the test)
from smsgate import Gateway
from smsgate.plugins import PluginManager


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    go, key, to, text = Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    with Gateway(config, plugins=pm) as gw:
        tenant = gw.tenant("acme")
        tenant.normalize(to)  # everything loaded before the start
        go.with_name(f"{go.name}.ready-{os.getpid()}").touch()
        while not go.exists():
            time.sleep(0.001)
        r = tenant.send(to, text, idempotency_key=key)
    print(json.dumps({"message_id": r.message_id, "status": r.status.value, "to": r.to}))


if __name__ == "__main__":
    main()
