"""A real campaign runner process for the crash and multi-runner tests.

Usage: python campaign_worker.py CONFIG_JSON CAMPAIGN_ID [--installed]

Runs one campaign to its end (or until killed) and reports nothing. By default the
echo vendor of reference_provider is the only plugin; with ``--installed`` the
installed provider plugins (entry points) are used.
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
    if "--installed" in sys.argv[3:]:
        pm = PluginManager()
    else:
        pm = PluginManager(load_entry_points=False)
        pm.register(EchoPlugin())
    with Gateway(config, plugins=pm) as gw:
        gw.tenant("acme").campaigns.get(sys.argv[2]).run()


if __name__ == "__main__":
    main()
