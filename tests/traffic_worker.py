"""A process sending through a shared rate limit, for the cross-process limit tests.

Usage: python traffic_worker.py CONFIG_JSON COUNT PREFIX

Sends COUNT single messages (to numbers PREFIX + 4 digits) from 4 threads through
the echo vendor of reference_provider, then exits.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reference_provider import EchoPlugin  # tests/ is on PYTHONPATH (set by the test)
from smsgate import Gateway
from smsgate.plugins import PluginManager


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    count, prefix = int(sys.argv[2]), sys.argv[3]
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    with Gateway(config, plugins=pm) as gw:
        t = gw.tenant("acme")
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: t.send(f"{prefix}{i:04d}", "x"), range(count)))
    bad = [r for r in results if not r.ok]
    if bad:
        raise SystemExit(f"{len(bad)} not accepted: {bad[0]}")


if __name__ == "__main__":
    main()
