"""A real campaign process for the crash test: run one campaign, report nothing.

Usage: python campaign_worker.py CONFIG_JSON CAMPAIGN_ID
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reference_provider import EchoPlugin  # tests/ is on PYTHONPATH (set by the test)
from smsgate import Gateway
from smsgate.plugins import PluginManager


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    with Gateway(config, plugins=pm) as gw:
        gw.tenant("acme").campaigns.get(sys.argv[2]).run()


if __name__ == "__main__":
    main()
