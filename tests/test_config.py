"""Configuration is checked when it is loaded: every problem a ConfigError naming the key (issue 18, item 9)."""

from __future__ import annotations

import decimal
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate import Gateway
from smsgate.config import load_config
from smsgate.errors import ConfigError, ValidationError
from smsgate.text import estimate_cost


def one_provider(**settings: Any) -> dict[str, Any]:
    return {"store": "memory://", "tenants": {"acme": {"providers": {"p": {"plugin": "squad", **settings}}}}}


@pytest.mark.parametrize(("url", "problem"), [
    ("api.example.com", "'api.example.com' needs a scheme: write 'https://api.example.com'"),
    ("localhost:8080", "'localhost:8080' needs a scheme: write 'https://localhost:8080'"),
    ("http://127.0.0.1:99999", "'http://127.0.0.1:99999' is not a valid URL (Port out of range"),
    ("http://127.0.0.1:port", "'http://127.0.0.1:port' is not a valid URL (Port could not be cast"),
    ("ftp://files.example.com", "'ftp://files.example.com': the scheme must be http or https, not 'ftp'"),
    ("https://", "'https://' has no host"),
])
def test_a_bad_base_url_fails_at_load_naming_the_key(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(one_provider(base_url=url))
    assert f"tenants.acme.providers.p.base_url: {problem}" in str(info.value)


@pytest.mark.parametrize("url", [
    "https://user:sk_live_LEAKED@api.example.com",      # a password in the URL: refused
    "https://sk_live_LEAKED@api.example.com/v1",        # a token as the user name: refused
    "http://user:sk_live_LEAKED@127.0.0.1:99999",       # refused for its port: still not shown
    "ftp://user:sk_live_LEAKED@files.example.com",
])
def test_a_base_url_with_credentials_is_refused_without_showing_them(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(one_provider(base_url=url))
    message = str(info.value)
    assert "tenants.acme.providers.p.base_url" in message
    assert "sk_live_LEAKED" not in message and "sk_live_LEAKED" not in repr(info.value)


def test_the_base_url_refusal_says_where_credentials_go() -> None:
    with pytest.raises(ConfigError, match="put them under 'credentials'"):
        load_config(one_provider(base_url="https://user:pw@api.example.com"))


@pytest.mark.parametrize("url", ["https://api.example.com", "http://127.0.0.1:8801/v1/", "https://h:443"])
def test_good_base_urls_load(url: str) -> None:
    assert load_config(one_provider(base_url=url)).tenants["acme"].providers["p"].base_url == url


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_price_per_segment_loads_only_when_finite_and_not_negative(price: float) -> None:
    good = math.isfinite(price) and price >= 0
    try:
        loaded = load_config(one_provider(price_per_segment=price))
    except ConfigError as exc:
        assert not good
        assert "tenants.acme.providers.p.price_per_segment: " in str(exc)
    else:
        assert good and loaded.tenants["acme"].providers["p"].price_per_segment == price


@pytest.mark.parametrize(("settings", "key"), [
    ({"timeout": 0}, "timeout"),                # httpx: every connect fails at once ("is the base_url right?")
    ({"timeout": -5}, "timeout"),               # httpx: ValueError at the send, the message left queued
    ({"timeout": math.nan}, "timeout"),
    ({"timeout": math.inf}, "timeout"),         # OverflowError at the send
    ({"timeout": 1e12}, "timeout"),             # likewise
    ({"max_retries": -1}, "max_retries"),
])
def test_a_timeout_or_max_retries_out_of_range_fails_at_load_naming_the_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(one_provider(**settings))
    assert f"tenants.acme.providers.p.{key}: " in str(info.value)


def test_a_timeout_or_max_retries_in_range_loads() -> None:
    loaded = load_config(one_provider(timeout=0.5, max_retries=0)).tenants["acme"].providers["p"]
    assert (loaded.timeout, loaded.max_retries) == (0.5, 0)
    assert load_config(one_provider(timeout=86400)).tenants["acme"].providers["p"].timeout == 86400


@pytest.mark.parametrize(("statuses", "problem"), [
    ([404], "404: not an HTTP 5xx status"),
    ([503, 200, 600], "200, 600: not an HTTP 5xx status"),
    (["soon"], "Input should be a valid integer"),
    (503, "Input should be a valid frozenset"),
])
def test_not_processed_statuses_are_5xx_or_refused_at_load_naming_the_key(statuses: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(one_provider(not_processed_statuses=statuses))
    assert "tenants.acme.providers.p.not_processed_statuses" in str(info.value)
    assert problem in str(info.value)


def test_not_processed_statuses_add_to_the_providers_declaration() -> None:
    """The instance setting joins the plugin's declaration in the retry policy; none by default."""
    from smsgate.provider import Provider

    class Declares(Provider):
        name = "squad"  # stands in for the installed plugin of that name
        default_base_url = "http://127.0.0.1:9"
        not_processed_statuses = frozenset({502})

    key = {"credentials": {"secret_key": "sandbox_sk_test"}}
    assert load_config(one_provider()).tenants["acme"].providers["p"].not_processed_statuses == frozenset()
    with Gateway(one_provider(not_processed_statuses=[503, 503], **key)) as gw:
        assert gw._core_.retry_policy("acme", "p").not_processed == frozenset({503})
    with Gateway(one_provider(**key)) as gw:
        assert gw._core_.retry_policy("acme", "p").not_processed == frozenset()
    from smsgate.plugins import PluginManager

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(Declares)
    with Gateway(one_provider(not_processed_statuses=[503], **key), plugins=pm) as gw:
        assert gw._core_.retry_policy("acme", "p").not_processed == frozenset({502, 503})


def test_a_bad_env_value_is_a_config_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGATE_TENANTS__ACME__ROUTES", "[{prefixes: +234}]")
    with pytest.raises(ConfigError) as info:
        load_config({"tenants": {"acme": {}}})
    message = str(info.value)
    assert message.startswith("environment variable SMSGATE_TENANTS__ACME__ROUTES (tenants.acme.routes): "
                              "not valid JSON")
    assert "SettingsError" not in message and info.value.__cause__ is None


def test_a_well_formed_env_value_of_the_wrong_shape_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGATE_TENANTS__ACME__ROUTES", '[{"prefixes": 5}]')
    with pytest.raises(ConfigError, match=r"tenants\.acme\.routes\.0\.prefixes"):
        load_config({"tenants": {"acme": {}}})


def test_unset_credentials_fail_only_when_the_provider_is_used_if_deferred() -> None:
    config = one_provider(base_url="http://127.0.0.1:1", credentials={"secret_key": "${NOT_SET_ANYWHERE}"})
    expected = "tenants.acme.providers.p.credentials.secret_key: environment variable NOT_SET_ANYWHERE is not set"
    with pytest.raises(ConfigError, match=expected):
        load_config(config, environ={})
    settings = load_config(config, environ={}, defer_secrets=True)  # a read-only tool
    with Gateway(settings) as gw:
        assert gw.tenant("acme").messages() == []
        with pytest.raises(ConfigError, match=expected):
            gw.tenant("acme").send("+2348031234567", "hi")


def test_a_squad_instance_without_a_sender_fails_the_check() -> None:
    config = one_provider(base_url="http://127.0.0.1:1", credentials={"secret_key": "k"})
    with Gateway(config) as gw, pytest.raises(ConfigError, match="squad needs a sender and none is set"):
        gw.check()
    config["tenants"]["acme"]["sender"] = "ACME"  # the tenant's sender serves
    with Gateway(config) as gw:
        assert gw.check() == ["acme/p: squad at http://127.0.0.1:1"]


@pytest.mark.parametrize("price", ["1e999999", Decimal("1e400"), "9" * 400])
def test_estimate_cost_of_an_absurd_price_is_a_clear_error(price: object) -> None:
    with pytest.raises(ValidationError, match=r"price per segment .* is too large") as info:
        estimate_cost("hello", price)  # type: ignore[arg-type]
    assert info.value.field == "price_per_segment"


def test_estimate_cost_that_overflows_is_a_clear_error() -> None:
    # past the decimal context's largest exponent (a smaller one than the default 999,999, whose
    # overflow needs a million-digit recipient count that takes most of a minute to multiply)
    narrow = decimal.getcontext().copy()
    narrow.Emax = 400
    with decimal.localcontext(narrow), pytest.raises(ValidationError, match="the cost overflows"):
        estimate_cost("hello", Decimal("1e308"), recipients=10**100)


def test_str_enums_show_their_value() -> None:
    from smsgate.models import CampaignStatus, Status
    from smsgate.store.base import RecipientState
    from smsgate.text import Encoding

    for enum in (Status, CampaignStatus, RecipientState, Encoding):
        for member in enum:
            assert str(member) == f"{member}" == member.value
    assert str(Status.SENT) == "sent"


def test_a_directory_as_config_path_is_a_config_error_naming_it(tmp_path: Any) -> None:
    """``Gateway("/tmp")`` raised IsADirectoryError."""
    for source in (tmp_path, str(tmp_path)):
        with pytest.raises(ConfigError) as info:
            Gateway(source)
        assert f"config file {tmp_path} is a directory" in str(info.value)
        assert str(tmp_path / "smsgate.toml") in str(info.value)
        with pytest.raises(ConfigError, match="is a directory"):
            load_config(source)


def test_a_missing_config_file_is_still_said_so(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


# ------------------------------------------------------------------ a tenant's time zone
def tenant_config(**tenant: Any) -> Any:
    return load_config({"store": "memory://", "tenants": {"acme": tenant}}).tenant("acme")


@pytest.mark.parametrize(("region", "zone"), [
    ("NG", "Africa/Lagos"),                     # one zone
    ("ng", "Africa/Lagos"),
    ("GB", "Europe/London"),
    ("DE", "Europe/Berlin"),                    # Berlin and Busingen keep the same clock: one
    ("AR", "America/Argentina/Buenos_Aires"),   # twelve zones, one clock
])
def test_timezone_unset_is_the_default_regions_zone(region: str, zone: str) -> None:
    cfg = tenant_config(default_region=region, quiet_hours=["21:00", "08:00"])
    assert cfg.timezone == zone == cfg.quiet_hours_zone() == cfg.stats_zone


def test_an_explicit_timezone_is_kept() -> None:
    assert tenant_config(default_region="NG", timezone="UTC").timezone == "UTC"
    assert tenant_config(default_region="US", timezone="America/Chicago", quiet_hours=["21:00", "08:00"]
                         ).quiet_hours_zone() == "America/Chicago"


@pytest.mark.parametrize(("tenant", "why"), [
    ({"default_region": "US"}, "default_region 'US' spans 29 time zones with different clocks (America/New_York, "),
    ({"default_region": "ES"}, "default_region 'ES' spans 3 time zones"),  # the Canary Islands are an hour behind
    ({}, "the tenant has no default_region to take a zone from"),
    ({"default_region": "XK"}, "no time zone is known for default_region 'XK'"),
])
def test_quiet_hours_without_a_zone_are_refused_asking_for_timezone(tenant: dict[str, Any], why: str) -> None:
    cfg = tenant_config(**tenant)  # without quiet hours: loads; statistics in UTC
    assert cfg.timezone is None and cfg.stats_zone == "UTC"
    with pytest.raises(ConfigError, match="quiet hours: they are local times") as info:
        cfg.quiet_hours_zone()  # a ConfigError
    assert why in str(info.value) and "set the tenant's timezone" in str(info.value)
    with pytest.raises(ConfigError) as info:
        tenant_config(**tenant, quiet_hours=["21:00", "08:00"])
    assert f"tenants.acme: quiet_hours: they are local times and {why}" in str(info.value)


def test_every_region_resolves_to_one_of_its_own_zones_or_none() -> None:
    from zoneinfo import ZoneInfo

    import phonenumbers

    from smsgate.models import utcnow
    from smsgate.zones import region_zone, region_zones

    resolved = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        zone, zones = region_zone(region), region_zones(region)
        if len(zones) == 1:
            assert zone == zones[0]
        if zone is not None:
            resolved += 1
            assert zone == zones[0]
            now = utcnow()
            assert {now.astimezone(ZoneInfo(z)).utcoffset() for z in zones} == {now.astimezone(ZoneInfo(zone)).utcoffset()}
    assert resolved > 200  # most regions have one clock


@pytest.mark.parametrize("value", ["50/s", "100/minute", "fast"])
def test_a_rate_limit_written_with_a_period_says_what_the_setting_takes(value: str) -> None:
    """``rate_limit = "50/s"`` said only "unable to parse string as a number"; the error says it is
    messages per second and names ``limits`` for another period (a number as a string still reads)."""
    def config(rate: object) -> dict[str, Any]:
        return {"store": "memory://", "tenants": {"acme": {"providers": {"m": {"plugin": "memory",
                                                                               "rate_limit": rate}}}}}

    with pytest.raises(ConfigError) as info:
        load_config(config(value))
    text = str(info.value)
    assert "rate_limit" in text and "messages per second" in text and 'per = "minute"' in text, text
    assert load_config(config("50")).tenants["acme"].providers["m"].rate_limit == 50
