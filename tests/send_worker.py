"""A real sending process for the crash-recovery tests (tests/test_recover.py).

Usage: python send_worker.py CONFIG_JSON MODE LEASE_SECONDS NUMBER...

MODE ``send``: one ``Tenant.send`` per number; ``many``: one ``Tenant.send_many``;
``async``: one ``AsyncTenant.send_many``. Sends to the echo vendor of
reference_provider until done or killed, with a send lease of LEASE_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import smsgate.core.recover
from reference_provider import EchoPlugin  # tests/ is on PYTHONPATH (set by the test)
from smsgate import AsyncGateway, Gateway
from smsgate.plugins import PluginManager


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    mode, numbers = sys.argv[2], sys.argv[4:]
    smsgate.core.recover.LEASE = float(sys.argv[3])
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    if mode == "async":
        async def go() -> None:
            async with AsyncGateway(config, plugins=pm) as agw:
                await agw.tenant("acme").send_many(numbers, "hi", concurrency=4)

        asyncio.run(go())
        return
    with Gateway(config, plugins=pm) as gw:
        acme = gw.tenant("acme")
        if mode == "many":
            acme.send_many(numbers, "hi")
        else:
            for n in numbers:
                acme.send(n, "hi")


if __name__ == "__main__":
    main()
