"""A gateway used with the other kind of ``with``: a ``TypeError`` that says which to use
(Python's own said only "'AsyncGateway' object does not support the context manager protocol";
helper nu17's leftover)."""

from __future__ import annotations

import asyncio

import pytest

from smsgate import AsyncGateway, Gateway

CONFIG = {"tenants": {"acme": {"default_region": "NG", "providers": {"memory": {"plugin": "memory"}}}}}


def test_async_gateway_in_a_plain_with_says_async_with() -> None:
    gw = AsyncGateway(CONFIG)
    with pytest.raises(TypeError, match=r"async with AsyncGateway\(\.\.\.\) as gw:.*with Gateway\(\.\.\.\)"):
        with gw:  # type: ignore[misc]
            pass

    async def main() -> str:  # the gateway is still usable as meant
        async with gw:
            return (await gw.tenant("acme").send("08031234567", "hi")).status

    assert asyncio.run(main()) == "sent"


def test_sync_gateway_in_an_async_with_says_with_or_async_gateway() -> None:
    async def main() -> None:
        async with Gateway(CONFIG):
            pass

    with pytest.raises(TypeError, match=r"with Gateway\(\.\.\.\) as gw:.*AsyncGateway"):
        asyncio.run(main())
    with Gateway(CONFIG) as gw:
        assert gw.tenant("acme").send("08031234567", "hi").status == "sent"
