"""A multi-tenant SaaS developer's first day with smsgate (newuser13): what the docs led to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
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
    ({"providers": ["a"], "countries": ["UK"]}, "routes.0.countries", "did you mean 'GB'"),
    ({"providers": ["a"], "countries": ["XX"]}, "routes.0.countries", "ISO 3166"),
    ({"providers": ["a"], "countries": ["Nigeria"]}, "routes.0.countries", "ISO 3166"),
    # a route through no provider matched its numbers and refused them at send time only, as "no
    # provider on the route can carry messages to ... (considered: none)"; one naming a provider
    # twice tried it twice and listed it twice in `route explain`
    ({"providers": []}, "routes.0.providers", "at least one"),
    ({"providers": ["a", "a"]}, "routes.0.providers", "'a' twice"),
])
def test_route_prefixes_and_countries_are_checked(route: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(route)
    assert f"tenants.acme.{key}" in str(err.value) and words in str(err.value), str(err.value)


def test_valid_route_prefixes_and_countries_still_load() -> None:
    tenant = _load({"providers": ["a"], "prefixes": ["+234803", "+1"], "countries": ["ng", "Gb"]}).tenant("acme")
    assert tenant.router.route("+2348031234567") == ("a",)
    assert tenant.router.route("+447912345678") == ("a",)
    assert tenant.routes[0].countries == ["NG", "GB"]


# A tenant stored before a release that checks more (the route above) can no longer be used;
# `smsgate tenant list` (StoredTenants.info) is where docs/tenants.md says such a tenant shows
# with its `error`, but it only looked at whether the row was JSON, so it listed the tenant as
# fine while every send for it failed.
def test_tenant_list_flags_a_stored_configuration_that_no_longer_loads() -> None:
    pytest.importorskip("cryptography")
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants, new_key

    with open_store("memory://") as store:
        tenants = StoredTenants(store, keys=[new_key()])
        tenants.add("good", {"default_region": "NG",
                             "providers": {"main": {"plugin": "squad", "sender": "ACME",
                                                    "credentials": {"secret_key": "sk_test_x"}}}})
        row = store.get_tenant_row("good")
        assert row is not None
        config = json.loads(row.config)
        config["routes"] = [{"providers": ["main"], "countries": ["UK"]}]  # as an older release stored it
        store.put_tenant_row("old", json.dumps(config), row.secrets, create=True)
        with pytest.raises(ConfigError, match=r"routes\.0\.countries"):
            tenants.get("old")
        info = {i.name: i for i in tenants.info()}
        assert info["good"].error is None and info["good"].providers == {"main": "squad"}
        assert info["old"].error is not None and "routes.0.countries" in info["old"].error, info["old"]
        assert "sk_test_x" not in info["old"].error


def test_default_region_uk_names_gb() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"tenants": {"acme": {"default_region": "UK", "providers": {"a": {"plugin": "echo"}}}}})
    assert "did you mean 'GB'" in str(err.value), str(err.value)


# docs/scaling.md: `smsgate store purge` needs no provider credentials, and `--tenant` takes a
# configured or stored tenant. For a stored one it decrypted the tenant's credentials first, so
# the nightly per-tenant purge of a cron host without SMSGATE_TENANT_KEY (or after the key was
# lost) stopped with "stored tenants need an encryption key", while the purge of every tenant ran.
def test_store_purge_of_a_stored_tenant_needs_no_key(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants, new_key

    db = tmp_path / "sms.db"
    (tmp_path / "smsgate.toml").write_text(f'store = "sqlite:///{db}"\n')
    with open_store(f"sqlite:///{db}") as store:
        StoredTenants(store, keys=[new_key()]).add(
            "acme", {"default_region": "NG", "providers": {"main": {
                "plugin": "squad", "sender": "ACME", "credentials": {"secret_key": "sk_test_x"}}}})
    env = {k: v for k, v in os.environ.items() if k != "SMSGATE_TENANT_KEY"}
    for key in (None, new_key()):  # no key; a key that does not decrypt it
        run_env = env if key is None else {**env, "SMSGATE_TENANT_KEY": key}
        out = subprocess.run([sys.executable, "-m", "smsgate", "store", "purge", "--older-than", "1d", "-t", "acme",
                              "--json"], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(out.stdout)["dry_run"] is False
    unknown = subprocess.run([sys.executable, "-m", "smsgate", "store", "purge", "--older-than", "1d", "-t", "nope"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "unknown tenant 'nope'" in unknown.stdout + unknown.stderr


# docs/routing.md: `traffic = "redis://...?prefix=NAME"`. A misspelt parameter (`prefx=`) or a
# value redis-py cannot read (`socket_timeout=abc`) loaded fine and then failed every send (and
# `smsgate config check`) with redis-py's raw TypeError / ValueError traceback; an empty
# `prefix=` kept every key under ":". Each is now a ConfigError at load naming `traffic`.
@pytest.mark.parametrize(("query", "words"), [
    ("prefx=app1", "'prefx'"),
    ("socket_timeout=abc", "'socket_timeout'"),
    ("prefix=", "prefix"),
    ("prefix=a&prefix=b", "prefix"),
])
def test_bad_redis_traffic_parameters_are_refused_at_load(query: str, words: str) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError) as err:
        load_config({"traffic": f"redis://:hunter2@127.0.0.1:6379/0?{query}",
                     "tenants": {"acme": {"providers": {"a": {"plugin": "echo"}}}}})
    text = str(err.value)
    assert "traffic" in text and words in text and "hunter2" not in text, text


def test_good_redis_traffic_parameters_still_load() -> None:
    pytest.importorskip("redis")
    for query in ("prefix=app1", "prefix=app1&socket_timeout=5&health_check_interval=30", ""):
        url = f"rediss://127.0.0.1:6379/0?{query}&ssl_cert_reqs=none" if query else "redis://127.0.0.1:6379"
        assert load_config({"traffic": url}).traffic == url


def test_gateway_purge_of_one_tenant_sync_and_async() -> None:
    import asyncio

    from smsgate import AsyncGateway, Gateway, ValidationError

    memory = {"plugin": "memory", "options": {"fail_numbers": r"\+234803\d+"}}  # failed: final, purgeable
    cfg = {"store": "memory://", "tenants": {n: {"default_region": "NG", "providers": {"m": memory}}
                                             for n in ("a", "b")}}
    with Gateway(cfg) as gw:
        for name in ("a", "b"):
            gw.tenant(name).send_many(["08031234567"], "x")
        assert gw.purge(older_than=0, tenant="a").messages == 1
        assert gw.tenant("a").messages() == [] and len(gw.tenant("b").messages()) == 1
        with pytest.raises(ValidationError, match="tenant"):
            gw.purge(older_than=0, tenant="")

    async def run() -> None:
        async with AsyncGateway(cfg) as agw:
            await agw.tenant("b").send_many(["08031234567"], "x")
            assert (await agw.purge(older_than=0, tenant="b")).messages == 1
            assert await agw.tenant("b").messages() == []

    asyncio.run(run())


def test_default_region_any_case_still_loads() -> None:
    tenant = load_config({"tenants": {"acme": {"default_region": "Ng", "providers": {"a": {"plugin": "echo"}}}}})
    assert tenant.tenant("acme").default_region == "NG"
