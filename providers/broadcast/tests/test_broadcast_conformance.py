"""The smsgate conformance kit run against the WAABOT broadcast adapter and its emulator."""

from __future__ import annotations

from typing import Any

from smsgate.provider import ProviderSettings
from smsgate.testing.conformance import ProviderConformance
from smsgate_broadcast import BroadcastProvider
from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS, create_app


class TestBroadcastConformance(ProviderConformance):
    provider_class = BroadcastProvider
    recipient = "+2348012345678"
    more_recipients = ("+2348012345671", "+2349048988056")
    region = "NG"
    send_path = "/api/v1/broadcast"
    secret_values = (
        SANDBOX_CREDENTIALS["password"],
        SANDBOX_CREDENTIALS["access_token"],
        "wrong-password-123",
    )

    def make_emulator(self) -> Any:
        return create_app()

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        creds = dict(SANDBOX_CREDENTIALS)
        if not valid:
            creds["password"] = "wrong-password-123"
        return ProviderSettings(plugin="broadcast", base_url=base_url, credentials=creds, sender="ACME")
