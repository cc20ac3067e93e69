"""The router: one compiled rule table for every send and every campaign."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate import phone as phonelib
from smsgate.config import TenantConfig
from smsgate.routing import Router, RouteRule

_PHONES = st.sampled_from(["+2348031234567", "+27821234567", "+447911123456", "+447781123456", "+16502530000",
                           "+33612345678", "+61412345678", "+2348051234567"])
_RULES = st.lists(st.fixed_dictionaries({
    "providers": st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2, unique=True),  # as validated
    "prefixes": st.lists(st.sampled_from(["+234", "+2348", "+27", "+44", "+1", "+3"]), max_size=2),
    "countries": st.lists(st.sampled_from(["NG", "ZA", "GB", "GG", "US", "FR"]), max_size=2),
}), max_size=4)


def naive(rules: list[dict[str, Any]], providers: list[str], phone: str) -> tuple[str, ...]:
    """The documented rule, written plainly: the first matching rule's providers."""
    region = phonelib.region_of(phone)
    for rule in rules:
        if not rule["prefixes"] and not rule["countries"]:
            return tuple(rule["providers"])
        if any(phone.startswith(p) for p in rule["prefixes"]) or region in rule["countries"]:
            return tuple(rule["providers"])
    return () if rules else tuple(providers)


@settings(max_examples=200, deadline=None)
@given(_RULES, _PHONES)
def test_router_is_the_documented_rule(rules: list[dict[str, Any]], phone: str) -> None:
    router = Router([RouteRule(**r) for r in rules], ["a", "b", "c"])
    expected = naive(rules, ["a", "b", "c"], phone)
    assert router.route(phone) == expected
    assert router.first(phone) == (expected[0] if expected else None)
    prov = {"plugin": "echo", "base_url": "http://x"}
    cfg = TenantConfig.model_validate({"providers": {"a": prov, "b": prov, "c": prov}, "routes": rules})
    assert cfg.route_for(phone) == list(expected)


def test_region_is_looked_up_only_when_a_country_rule_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = phonelib.region_of
    monkeypatch.setattr(phonelib, "region_of", lambda p: calls.append(p) or original(p))
    router = Router([RouteRule(prefixes=["+234"], providers=["ng"]), RouteRule(countries=["ZA"], providers=["za"])],
                    ["ng", "za"])
    assert router.route("+2348031234567") == ("ng",) and calls == []
    assert router.route("+27821234567") == ("za",) and calls == ["+27821234567"]
    assert router.route("+27821234567", region="ZA") == ("za",) and len(calls) == 1
    assert router.needs_region
