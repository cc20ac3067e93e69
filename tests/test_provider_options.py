"""A message's ``provider_options`` reach a provider that reads them, or the message is refused.

A key no provider of the route declares (:attr:`smsgate.provider.Provider.send_options`) was
dropped without a word: ``send(..., provider_options={"flash": True})`` went out as an ordinary
SMS, and a typo of Colony's ``campaign_pk`` filed the message under the instance's campaign.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from smsgate import Gateway
from smsgate.errors import NoCapableProvider, Unsupported
from smsgate.hookspecs import hookimpl
from smsgate.models import Status
from smsgate.plugins import PluginManager
from smsgate.testing import Outbox
from smsgate.testing.memory import MemoryProvider


class FlashMemory(MemoryProvider):
    """The in-memory provider, declaring that its sends read ``provider_options["flash"]``."""

    name = "flash-memory"
    send_options: ClassVar[frozenset[str]] = frozenset({"flash"})


class FlashPlugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(FlashMemory)


def gateway(providers: dict[str, str], routes: list[dict[str, Any]] | None = None) -> Gateway:
    pm = PluginManager()
    pm.register(FlashPlugin())
    tenant: dict[str, Any] = {"default_region": "NG",
                              "providers": {name: {"plugin": plugin} for name, plugin in providers.items()}}
    if routes is not None:
        tenant["routes"] = routes
    return Gateway({"store": "memory://", "tenants": {"acme": tenant}}, plugins=pm)


def test_an_option_no_provider_reads_is_refused_not_dropped(sms_outbox: Outbox) -> None:
    with gateway({"mem": "memory"}) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(NoCapableProvider, match=r"provider_options\['flash'\]") as refused:
            acme.send("08031234567", "hi", provider_options={"flash": True})
        assert isinstance(refused.value, Unsupported)
        with pytest.raises(Unsupported, match=r"provider_options\['campain_pk'\]"):
            acme.send("08031234567", "hi", provider="mem", provider_options={"campain_pk": 4})
        results = acme.send_many(["08031234567", "08031234568"], "hi", provider_options={"flash": True})
        assert [r.status for r in results] == [Status.REJECTED] * 2
        assert all("provider_options['flash']" in (r.error or "") for r in results)
    assert len(sms_outbox) == 0  # nothing went out without its option


def test_an_option_goes_to_the_provider_on_the_route_that_reads_it(sms_outbox: Outbox) -> None:
    with gateway({"mem": "memory", "flash": "flash-memory"}, routes=[{"providers": ["mem", "flash"]}]) as gw:
        acme = gw.tenant("acme")
        plain = acme.send("08031234567", "plain")
        flashed = acme.send("08031234568", "flashed", provider_options={"flash": True})
        assert (plain.provider, flashed.provider) == ("mem", "flash")
        with pytest.raises(NoCapableProvider, match=r"provider_options\['flsh'\]"):
            acme.send("08031234569", "typo", provider_options={"flsh": True})


def test_a_mistyped_provider_name_is_the_calls_error_and_logs_nothing() -> None:
    """``send(..., provider="nope")`` raised ``ConfigError`` but logged a ``rejected`` message
    first (one for every number with ``send_many``): a typo in the caller's code filled the log
    and the statistics with refusals. Nothing is prepared or logged now."""
    import asyncio

    from smsgate import AsyncGateway
    from smsgate.errors import ConfigError

    cfg: dict[str, Any] = {"store": "memory://", "tenants": {"acme": {"default_region": "NG",
                                                                      "providers": {"mem": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ConfigError, match="has no provider 'nope'"):
            acme.send("08031234567", "hi", provider="nope")
        with pytest.raises(ConfigError, match="has no provider 'nope'"):
            acme.send_many(["08031234567", "08031234568"], "hi", provider="nope")
        assert acme.messages() == [] and acme.stats().total == 0

    async def main() -> None:
        async with AsyncGateway(cfg) as agw:
            tenant = agw.tenant("acme")
            with pytest.raises(ConfigError, match="has no provider 'nope'"):
                await tenant.send("08031234567", "hi", provider="nope")
            with pytest.raises(ConfigError, match="has no provider 'nope'"):
                await tenant.send_many(["08031234567", "08031234568"], "hi", provider="nope")
            assert await tenant.messages() == []

    asyncio.run(main())
