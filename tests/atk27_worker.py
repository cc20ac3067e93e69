"""A webhook process of test_atk27: serves ``webhook_app`` on a gateway of its own over the shared
store named in the configuration (a JSON file, argv[1]), prints its URL, and serves until its
stdin closes. Two of them on one store are two web workers receiving the same vendor's callbacks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from smsgate import Gateway
from smsgate.testing.server import LiveServer
from smsgate.webhooks import webhook_app


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    with Gateway(config) as gw, LiveServer(webhook_app(gw)) as hooks:
        print(hooks.url, flush=True)
        sys.stdin.read()  # until the test closes it


if __name__ == "__main__":
    main()
