"""A key the configuration does not know says where it belongs, or the name it was meant to be."""

from __future__ import annotations

import pytest

from smsgate.config import load_config
from smsgate.errors import ConfigError
from smsgate.store import open_store
from smsgate.tenants import StoredTenants

KEY = "BVmm5xX-OYlUAGP2M6K2yctUHKeIvQ-t12VnBiQ1CaE="
SQUAD = {"plugin": "squad", "credentials": {"secret_key": "sk_test"}}


def test_a_setting_of_a_nested_table_given_at_the_tenant_level_names_its_place() -> None:
    # docs/inbound.md puts help_reply under [tenants.acme.inbound]; at [tenants.acme] it used to
    # say only "Extra inputs are not permitted"
    with pytest.raises(ConfigError) as err:
        load_config({"tenants": {"acme": {"help_reply": "hi", "providers": {"main": SQUAD}}}})
    assert "tenants.acme.help_reply: Extra inputs are not permitted" in str(err.value)
    assert "did you mean tenants.acme.inbound.help_reply?" in str(err.value)


def test_a_misspelt_key_names_the_close_one() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"tenants": {"acme": {"max_limit_wiat": 5, "providers": {"main": SQUAD}}}})
    assert "did you mean tenants.acme.max_limit_wait?" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config({"tenants": {"acme": {"providers": {"main": {**SQUAD, "rate_limt": 5}}}}})
    assert "did you mean tenants.acme.providers.main.rate_limit?" in str(err.value)


def test_an_unknown_key_without_a_close_one_says_only_what_pydantic_says() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"tenants": {"acme": {"zzzz": 1, "providers": {"main": SQUAD}}}})
    assert str(err.value).endswith("tenants.acme.zzzz: Extra inputs are not permitted")


def test_a_stored_tenant_gets_the_same_hint_in_its_own_form() -> None:
    with open_store("memory://") as store:
        tenants = StoredTenants(store, keys=[KEY])
        with pytest.raises(ConfigError) as err:
            tenants.add("acme", {"default_region": "NG", "help_reply": "hi", "providers": {"main": SQUAD}})
    assert "help_reply: Extra inputs are not permitted; did you mean inbound.help_reply?" in str(err.value)
