"""A real campaign runner process for the crash and multi-runner tests.

Usage: python campaign_worker.py CONFIG_JSON CAMPAIGN_ID [--installed] [--async]

Runs one campaign to its end (or until killed) and reports nothing. By default the
echo vendor of reference_provider is the only plugin; with ``--installed`` the
installed provider plugins (entry points) are used; with ``--async`` the run is an
``AsyncGateway``'s (``AsyncCampaignHandle.run``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from reference_provider import EchoPlugin  # tests/ is on PYTHONPATH (set by the test)
from smsgate import AsyncGateway, Gateway
from smsgate.plugins import PluginManager


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    if "--installed" in sys.argv[3:]:
        pm = PluginManager()
    else:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
    if "--async" in sys.argv[3:]:
        asyncio.run(run_async(config, pm))
        return
    with Gateway(config, plugins=pm) as gw:
        gw.tenant("acme").campaigns.get(sys.argv[2]).run()


async def run_async(config: dict[str, object], pm: PluginManager) -> None:
    async with AsyncGateway(config, plugins=pm) as gw:
        camp = await gw.tenant("acme").campaigns.get(sys.argv[2])
        await camp.run()


if __name__ == "__main__":
    main()
