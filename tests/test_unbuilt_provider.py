"""A provider instance that cannot be built (an unknown plugin, a credential refused) is the
configuration's error: the send raises it, and the message logged ahead of its request, which
never left, is ``failed`` (``not_sent``), never left ``queued`` ("may have been sent", which
recovery would then call ``unknown``). A campaign's recipients go back to ``pending``: once the
configuration is fixed, the next run sends each once.

Real SQLite store; the fixed configuration sends through the in-process ``memory`` provider.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from smsgate import AsyncGateway, Gateway
from smsgate.errors import ConfigError
from smsgate.store.base import RecipientState


def _config(tmp_path: Path, plugin: str) -> dict[str, Any]:
    return {"store": f"sqlite:///{tmp_path / 'log.db'}",
            "tenants": {"acme": {"default_region": "NG", "providers": {"main": {"plugin": plugin, "sender": "ACME"}}}}}


def _logged(tmp_path: Path) -> list[tuple[str, str | None]]:
    with Gateway(_config(tmp_path, "memory")) as gw:
        return sorted((m.status.value, m.raw_status) for m in gw.tenant("acme").messages(limit=100))


def test_send_through_a_provider_that_cannot_be_built_raises_and_logs_it_not_sent(tmp_path: Path) -> None:
    with Gateway(_config(tmp_path, "nosuch")) as gw, pytest.raises(ConfigError, match="unknown provider plugin"):
        gw.tenant("acme").send("08030000001", "hello")
    assert _logged(tmp_path) == [("failed", "not_sent")]


def test_send_many_through_a_provider_that_cannot_be_built_leaves_nothing_queued(tmp_path: Path) -> None:
    with Gateway(_config(tmp_path, "nosuch")) as gw, pytest.raises(ConfigError, match="unknown provider plugin"):
        gw.tenant("acme").send_many([f"0803000000{i}" for i in range(5)], "hello")
    assert _logged(tmp_path) and all(s == ("failed", "not_sent") for s in _logged(tmp_path))


def test_async_send_through_a_provider_that_cannot_be_built_raises_and_logs_it_not_sent(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncGateway(_config(tmp_path, "nosuch")) as gw:
            await gw.tenant("acme").send("08030000001", "hello")

    with pytest.raises(ConfigError, match="unknown provider plugin"):
        asyncio.run(main())
    assert _logged(tmp_path) == [("failed", "not_sent")]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_campaign_run_through_a_provider_that_cannot_be_built_stops_and_the_fixed_one_sends_each_once(
        tmp_path: Path, mode: str) -> None:
    numbers = [f"0803000001{i}" for i in range(6)]
    with Gateway(_config(tmp_path, "nosuch")) as gw:
        camp = gw.tenant("acme").campaigns.create("c", text="hi", audience=numbers, batch_size=2, concurrency=2)
        cid = camp.campaign_id
        if mode == "sync":
            with pytest.raises(ConfigError, match="unknown provider plugin"):
                camp.run()

    async def arun(config: dict[str, Any]) -> None:
        async with AsyncGateway(config) as agw:
            await (await agw.tenant("acme").campaigns.get(cid)).run()

    if mode == "async":
        with pytest.raises(ConfigError, match="unknown provider plugin"):
            asyncio.run(arun(_config(tmp_path, "nosuch")))
    with Gateway(_config(tmp_path, "memory")) as gw:
        rows = gw.store.recipients("acme", cid)
        assert {r.state for r in rows} == {RecipientState.PENDING}, [(r.state, r.reason) for r in rows]
        assert {(m.status.value, m.raw_status) for m in gw.tenant("acme").messages(limit=100)} <= {("failed", "not_sent")}
        done = gw.tenant("acme").campaigns.get(cid).run()
        assert done.sent == len(numbers)
        sent = [m for m in gw.tenant("acme").messages(campaign_id=cid, limit=100) if m.status.value != "failed"]
        assert sorted(m.to for m in sent) == sorted(f"+234{n[1:]}" for n in numbers)  # each once


def test_the_error_of_a_provider_that_cannot_be_built_names_the_configuration_file(tmp_path: Path) -> None:
    """As the file's other problems are (the CLI named it already; a library user got no file)."""
    path = tmp_path / "smsgate.toml"
    path.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                    '[tenants.acme.providers.main]\nplugin = "sqaud"\n')
    with Gateway(str(path)) as gw, pytest.raises(ConfigError) as info:
        gw.tenant("acme").send("08030000001", "hello")
    assert str(info.value).startswith(f"{path}: tenants.acme.providers.main.plugin: unknown provider plugin 'sqaud'")
