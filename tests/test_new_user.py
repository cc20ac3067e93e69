"""What a new user trips over, found by following the docs from a fresh clone (each test
drives the real code path: the Squad emulator over loopback HTTP, a real SQLite store)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.config import Settings, TenantConfig
from smsgate.errors import InvalidPhoneNumber


def test_a_national_number_without_default_region_says_how_to_fix_it(sms_emulator: Callable[..., Any]) -> None:
    squad = sms_emulator("squad")
    with squad.gateway() as gw:  # a tenant without default_region
        with pytest.raises(InvalidPhoneNumber) as exc:
            gw.tenant("test").send("08031234567", "hello")
    message = str(exc.value)
    assert "08031234567" in message and "default_region" in message and "international form" in message
    assert squad.requests(method="POST") == []  # nothing reached the vendor


def test_stats_keep_costs_in_different_currencies_apart(tmp_path: Path,
                                                         sms_emulator: Callable[..., Any]) -> None:
    """Squad charges NGN and Colony credits: their sum is no cost at all. ``Stats.costs`` keeps
    one total per currency, and ``cost`` / ``currency`` are set only when there is one."""
    squad, colony = sms_emulator("squad"), sms_emulator("colony")
    settings = Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings(), "colony": colony.provider_settings()})})
    with Gateway(settings) as gw:
        acme = gw.tenant("acme")
        by_squad = [acme.send(f"0803123456{i}", "hello", provider="squad") for i in range(2)]
        by_colony = acme.send("+27821234567", "hello", provider="colony")
        ngn = sum((r.cost for r in by_squad if r.cost is not None), Decimal(0))
        assert {r.currency for r in by_squad} == {"NGN"} and ngn > 0
        assert by_colony.currency == "credits" and by_colony.cost
        everything = acme.stats()
        assert everything.costs == {"NGN": ngn, "credits": by_colony.cost}
        assert (everything.cost, everything.currency) == (None, None)  # was NGN + credits added up
        only_squad = acme.stats(provider="squad")
        assert (only_squad.cost, only_squad.currency, only_squad.costs) == (ngn, "NGN", {"NGN": ngn})
    assert len(squad.processed("/sms/send/instant")) == 2 and len(colony.processed(method="POST")) >= 1
