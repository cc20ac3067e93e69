"""A campaign runner process for tests/test_attack_12.py.

Usage: python attack12_worker.py CONFIG_JSON CAMPAIGN_ID [--async]

As tests/campaign_worker.py, with the echo vendor and ``tokecho``: the echo adapter made
to fetch a token before its first request (``GET /messages?client_ref=token``, marked an
auth request), as a vendor with OAuth tokens does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx

from reference_provider import EchoPlugin, EchoProvider  # tests/ is on PYTHONPATH (set by the test)
from smsgate import AsyncGateway, Gateway
from smsgate.hookspecs import hookimpl
from smsgate.plugins import PluginManager


class TokenEchoProvider(EchoProvider):
    """The echo adapter, fetching a token (once) before its first request."""

    name = "tokecho"
    uses_tokens = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token: str | None = None

    def authenticate(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:  # type: ignore[override]
        if self._token is None:
            fetch = self.request("GET", "/messages", params={"client_ref": "token"})
            fetch.headers["X-Api-Key"] = self.settings.secret("api_key") or ""
            yield fetch
            self._token = "t"
        request.headers["X-Api-Key"] = self.settings.secret("api_key") or ""

    def invalidate_auth(self) -> None:
        self._token = None


class TokenEchoPlugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(TokenEchoProvider)


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    pm.register(TokenEchoPlugin())
    return pm


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    if os.environ.get("ATTACK12_LOG"):  # a debugging aid: every record of the run, one file a process
        logging.basicConfig(filename=f"{os.environ['ATTACK12_LOG']}.{os.getpid()}", level=logging.DEBUG,
                            format="%(asctime)s.%(msecs)03d %(process)d %(threadName)s %(name)s %(message)s")
    if "--async" in sys.argv[3:]:
        asyncio.run(run_async(config))
        return
    with Gateway(config, plugins=plugins()) as gw:
        gw.tenant("acme").campaigns.get(sys.argv[2]).run()


async def run_async(config: dict[str, object]) -> None:
    async with AsyncGateway(config, plugins=plugins()) as gw:
        camp = await gw.tenant("acme").campaigns.get(sys.argv[2])
        await camp.run()


if __name__ == "__main__":
    main()
