"""One runner process of the verify7 harness (tests/test_verify7.py).

Run as ``python tests/verify7_worker.py MODE CONFIG.json CAMPAIGN_ID``: it prints ``ready`` once
its gateway is open and the campaign handle is in hand, then runs the campaign and prints one
JSON line with what ``run()`` returned. Modes: ``run`` (``camp.run()`` on a ``Gateway``) and
``arun`` (``await camp.run()`` on an ``AsyncGateway``). A Ctrl-C exits 130 with
``{"interrupted": true}``; a typed smsgate error (``SmsgateError``: the campaign deleted under
the run is ``NotFound``) exits 3 with ``{"error": "NotFound", "detail": "..."}`` and no
traceback: the harness tells a clean stop from a crash by that.

It uses only smsgate's public API.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from smsgate import AsyncGateway, Gateway
from smsgate.errors import SmsgateError


def _result(done: Any) -> dict[str, Any]:
    return {"status": str(done.status), "sent": done.sent, "pending": done.pending, "sending": done.sending,
            "unknown": done.unknown, "failed": done.failed, "skipped": done.skipped}


def _run(config: dict[str, Any], campaign_id: str) -> dict[str, Any]:
    with Gateway(config) as gw:
        camp = gw.tenant("acme").campaigns.get(campaign_id)
        print("ready", flush=True)
        return _result(camp.run())


async def _arun(config: dict[str, Any], campaign_id: str) -> dict[str, Any]:
    async with AsyncGateway(config) as gw:
        camp = await gw.tenant("acme").campaigns.get(campaign_id)
        print("ready", flush=True)
        return _result(await camp.run())


def main(argv: list[str]) -> None:
    mode, config_path, cid = argv[1], argv[2], argv[3]
    if os.environ.get("V7_LOG"):  # a debugging aid: each process's smsgate log in a file of its own
        import logging

        logging.basicConfig(filename=os.path.join(os.environ["V7_LOG"], f"{mode}-{os.getpid()}.log"),
                            level=logging.DEBUG, format="%(asctime)s %(threadName)s %(name)s %(message)s")
        logging.getLogger("httpcore").setLevel(logging.INFO)
    with open(config_path, encoding="utf-8") as fh:
        config = json.load(fh)
    try:
        result = _run(config, cid) if mode == "run" else asyncio.run(_arun(config, cid))
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": True}), flush=True)
        sys.exit(130)
    except SmsgateError as exc:
        print(json.dumps({"error": type(exc).__name__, "detail": str(exc)}), flush=True)
        sys.exit(3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
