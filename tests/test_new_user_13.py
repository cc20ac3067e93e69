"""A multi-tenant SaaS developer's first day with smsgate (newuser13): what the docs led to."""

from __future__ import annotations

from typing import Any

import pytest

from smsgate import ConfigError
from smsgate.config import load_config


def _load(route: dict[str, Any]) -> Any:
    return load_config({"tenants": {"acme": {"default_region": "NG",
                                             "providers": {"a": {"plugin": "echo"}},
                                             "routes": [route]}}})


# A route's prefixes are E.164 (docs/routing.md) and its countries ISO regions: a prefix
# written as the number is dialled ("0803", "234") or a region that is not one ("UK" for
# the United Kingdom, whose ISO code is GB) was stored as given and silently never matched,
# so every such message fell to the next rule (or had no route).
@pytest.mark.parametrize(("route", "key", "words"), [
    ({"providers": ["a"], "prefixes": ["234"]}, "routes.0.prefixes", "'+234'"),
    ({"providers": ["a"], "prefixes": ["0803"]}, "routes.0.prefixes", "E.164"),
    ({"providers": ["a"], "prefixes": ["+234 803"]}, "routes.0.prefixes", "'+234803'"),
    ({"providers": ["a"], "prefixes": [""]}, "routes.0.prefixes", "E.164"),
    ({"providers": ["a"], "prefixes": ["+"]}, "routes.0.prefixes", "E.164"),
    ({"providers": ["a"], "countries": ["UK"]}, "routes.0.countries", "'GB'"),
    ({"providers": ["a"], "countries": ["XX"]}, "routes.0.countries", "ISO 3166"),
    ({"providers": ["a"], "countries": ["Nigeria"]}, "routes.0.countries", "ISO 3166"),
])
def test_route_prefixes_and_countries_are_checked(route: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(route)
    assert f"tenants.acme.{key}" in str(err.value) and words in str(err.value), str(err.value)


def test_valid_route_prefixes_and_countries_still_load() -> None:
    tenant = _load({"providers": ["a"], "prefixes": ["+234803", "+1"], "countries": ["ng", "GB"]}).tenant("acme")
    assert tenant.router.route("+2348031234567") == ("a",)
    assert tenant.router.route("+447912345678") == ("a",)
    assert tenant.routes[0].countries == ["NG", "GB"]
