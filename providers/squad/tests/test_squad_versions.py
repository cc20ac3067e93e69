"""The plugin ``squad`` builds one class per API generation from ``options.api_version``."""

from __future__ import annotations

import pytest

import smsgate_squad
from smsgate.errors import ConfigError
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate_squad import SquadProvider, SquadV1Provider, SquadV2Provider
from smsgate_squad.api import V1Api, V2Api

V2 = {"secret_key": "sandbox_sk_x"}
V1 = {"key": "k", "secret": "s"}


def settings(credentials: dict[str, str], **options: object) -> ProviderSettings:
    return ProviderSettings(plugin="squad", credentials=credentials, options=dict(options))


def test_the_registered_plugin_builds_the_configured_generation() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(smsgate_squad, name="squad")
    cls = pm.get_provider_class("squad")
    assert cls is SquadProvider
    v2 = cls(settings(V2), instance_name="main")
    v1 = cls(settings(V1, api_version="v1"), instance_name="legacy")
    assert type(v2) is SquadV2Provider and isinstance(v2.api, V2Api) and v2.capabilities.bulk
    assert type(v1) is SquadV1Provider and isinstance(v1.api, V1Api) and v1.capabilities.status_lookup
    assert isinstance(v1, SquadProvider) and v1.name == v2.name == "squad"


def test_a_generation_class_refuses_the_other_generations_options() -> None:
    with pytest.raises(ConfigError, match="SquadV2Provider speaks the v2 API"):
        SquadV2Provider(settings(V1, api_version="v1"))
    with pytest.raises(ConfigError, match="SquadV1Provider speaks the v1 API"):
        SquadV1Provider(settings(V2))
    assert type(SquadV1Provider(settings(V1, api_version="v1"))) is SquadV1Provider


def test_an_unknown_api_version_is_a_config_error_without_the_value() -> None:
    with pytest.raises(ConfigError, match="api_version") as info:
        SquadProvider(settings(V2, api_version="v3-secret-value"))
    assert "v3-secret-value" not in str(info.value)
