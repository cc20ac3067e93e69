"""The sync ``Gateway`` called on a running event loop (an ``async def`` FastAPI route calling it,
helper nu17's leftover): it works, but blocks every task of the loop while the vendor answers.
Now it says so once, as a warning naming what to use instead."""

from __future__ import annotations

import asyncio
import logging

import pytest

from smsgate import Gateway

CONFIG = {"tenants": {"acme": {"default_region": "NG", "providers": {"memory": {"plugin": "memory"}}}}}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "running event loop" in r.getMessage()]


def test_a_sync_send_on_a_running_loop_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with Gateway(CONFIG) as gw:
        async def route() -> list[str]:
            return [gw.tenant("acme").send(f"0803123456{n}", "hi").status for n in range(3)]

        with caplog.at_level(logging.WARNING, logger="smsgate"):
            assert asyncio.run(route()) == ["sent"] * 3
    (said,) = _warnings(caplog)
    assert "use AsyncGateway" in said and "asyncio.to_thread" in said


def test_no_warning_off_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    with Gateway(CONFIG) as gw:
        async def route() -> str:  # the documented way out: the sync call in a worker thread
            result = await asyncio.to_thread(gw.tenant("acme").send, "08031234561", "hi")
            return result.status

        with caplog.at_level(logging.WARNING, logger="smsgate"):
            assert asyncio.run(route()) == "sent"
            assert gw.tenant("acme").send("08031234562", "hi").status == "sent"
    assert _warnings(caplog) == []
