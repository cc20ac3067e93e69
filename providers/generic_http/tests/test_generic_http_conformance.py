"""The smsgate conformance kit against the generic_http adapter and its emulator (sandbox options)."""

from __future__ import annotations

from typing import Any

from smsgate.provider import ProviderSettings
from smsgate.testing.conformance import ProviderConformance
from smsgate_generic_http import GenericHttpProvider
from smsgate_generic_http.emulator import SANDBOX_CREDENTIALS, SANDBOX_OPTIONS, create_app


class TestGenericHttpConformance(ProviderConformance):
    provider_class = GenericHttpProvider
    recipient = "+2348012345678"
    region = "NG"
    send_path = "/v1/messages"
    secret_values = (SANDBOX_CREDENTIALS["api_key"], "wrong-generic-key-1234")

    def make_emulator(self) -> Any:
        return create_app()

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        creds = dict(SANDBOX_CREDENTIALS)
        if not valid:
            creds["api_key"] = "wrong-generic-key-1234"
        return ProviderSettings(plugin="generic_http", base_url=base_url, credentials=creds, sender="ACME",
                                options=SANDBOX_OPTIONS)
