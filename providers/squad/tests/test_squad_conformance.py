"""The smsgate conformance kit run against the Squad adapter and emulator, v2 and legacy v1."""

from __future__ import annotations

from typing import Any

from smsgate.provider import ProviderSettings
from smsgate.testing.conformance import ProviderConformance
from smsgate_squad import SquadProvider
from smsgate_squad.auth import have_cryptography
from smsgate_squad.emulator import (
    SANDBOX_SECRET_KEY,
    SANDBOX_V1_IV,
    SANDBOX_V1_KEY,
    SANDBOX_V1_OPTIONS,
    SANDBOX_V1_SECRET,
    create_app,
)


class TestSquadConformance(ProviderConformance):
    """v2: ``POST /sms/send/instant`` with a Bearer secret key (bulk, no status lookup)."""

    provider_class = SquadProvider
    recipient = "+2348012345678"
    more_recipients = ("+2348012345671", "+2348012345672")
    region = "NG"
    send_path = "/sms/send/instant"
    secret_values = (SANDBOX_SECRET_KEY, "sandbox_sk_wrong0key0123456789")

    def make_emulator(self) -> Any:
        return create_app(delivery_delay=0.2)

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        key = SANDBOX_SECRET_KEY if valid else "sandbox_sk_wrong0key0123456789"
        return ProviderSettings(plugin="squad", base_url=base_url, credentials={"secret_key": key},
                                sender="ACME")


class TestSquadV1Conformance(ProviderConformance):
    """Legacy v1: ``POST /service/message`` with key + daily secret headers (status lookup)."""

    provider_class = SquadProvider
    recipient = "+2348012345678"
    more_recipients = ("+2348012345671", "+2348012345672")
    region = "NG"
    send_path = "/service/message"
    secret_values = (SANDBOX_V1_KEY, SANDBOX_V1_SECRET, "wrong-v1-key-0123456789abcdefghi")

    def make_emulator(self) -> Any:
        return create_app(delivery_delay=0.2)

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        key = SANDBOX_V1_KEY if valid else "wrong-v1-key-0123456789abcdefghi"
        # derive the daily secret when cryptography is installed, else use the pre-computed one
        creds = {"key": key, "encryption_iv": SANDBOX_V1_IV} if have_cryptography() else {
            "key": key, "secret": SANDBOX_V1_SECRET}
        return ProviderSettings(plugin="squad", base_url=base_url, credentials=creds, sender="GTBank",
                                options=dict(SANDBOX_V1_OPTIONS))
