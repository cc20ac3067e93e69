"""``concurrency`` (of AsyncTenant.send_many and of the AsyncGateway) and ``store_threads``:
a whole number >= 1, else a ValidationError naming it (0 and negatives were silently
defaulted, "4" raised TypeError, True passed as 1)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services import echo_config as config
from services import echo_plugins as plugins
from smsgate import AsyncGateway, Gateway, Status, ValidationError
from smsgate.testing import EmulatorControl

BAD = [0, -1, "4", True, 2.0, None]


@pytest.mark.parametrize("bad", [b for b in BAD if b is not None])
def test_a_bad_send_many_concurrency_is_refused_before_anything_is_sent(
    bad: Any, emu_url: str, tmp_path: Path
) -> None:
    EmulatorControl(emu_url).reset()

    async def run() -> None:
        async with AsyncGateway(config(emu_url, f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins()) as agw:
            acme = agw.tenant("acme")
            with pytest.raises(ValidationError) as info:
                await acme.send_many(["08031234567", "08031234568"], "hi", concurrency=bad)
            assert (info.value.field, info.value.location) == ("concurrency", "send_many")
            assert f"not {bad!r}" in str(info.value)
            assert await acme.messages() == []  # nothing logged
            ok = await acme.send_many(["08031234567", "08031234568"], "hi", concurrency=1)
            assert [r.status for r in ok] == [Status.SUBMITTED] * 2

    asyncio.run(run())
    posts = [r for r in EmulatorControl(emu_url).requests() if r.method == "POST"]
    assert len(posts) == 1 and posts[0].path == "/messages/bulk"  # only the good call sent


@pytest.mark.parametrize("name", ["concurrency", "store_threads"])
@pytest.mark.parametrize("bad", BAD)
def test_a_bad_async_gateway_size_is_refused_before_the_store_is_opened(
    name: str, bad: Any, emu_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "never.db"
    with pytest.raises(ValidationError) as info:
        AsyncGateway(config(emu_url, f"sqlite:///{db}"), plugins=plugins(), **{name: bad})
    assert (info.value.field, info.value.location) == (name, "AsyncGateway")
    assert not db.exists()
    with Gateway(config(emu_url, f"sqlite:///{db}"), plugins=plugins()) as gw:
        with pytest.raises(ValidationError, match=name):
            AsyncGateway.sharing(gw, **{name: bad})
