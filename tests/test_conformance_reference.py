"""The conformance kit run against the reference provider: proves the kit and the gateway."""

from __future__ import annotations

from typing import Any

from reference_provider import API_KEY, EchoProvider, create_emulator
from smsgate.provider import ProviderSettings
from smsgate.testing.conformance import ProviderConformance


class TestEchoConformance(ProviderConformance):
    provider_class = EchoProvider
    recipient = "+2348012345678"
    more_recipients = ("+2348012345671", "+2348012345672")
    region = "NG"
    send_path = "/messages"
    secret_values = (API_KEY,)

    def make_emulator(self) -> Any:
        return create_emulator()

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        key = API_KEY if valid else "wrong-key-456"
        return ProviderSettings(plugin="echo", base_url=base_url, credentials={"api_key": key}, sender="ACME")
