"""The smsgate conformance kit run against the campaigns_api adapter and its emulator."""

from __future__ import annotations

from typing import Any

from smsgate.provider import ProviderSettings
from smsgate.testing.conformance import ProviderConformance
from smsgate_campaigns_api import CampaignsApiProvider
from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app


class TestCampaignsApiConformance(ProviderConformance):
    provider_class = CampaignsApiProvider
    # valid UK mobiles per phonenumbers (07700 900xxx drama numbers are not valid)
    recipient = "+447912345678"
    more_recipients = ("+447912345670", "+447911123456")
    region = "GB"
    send_path = "/api/SMSMessages"
    secret_values = (SANDBOX_API_KEY, "dm_wrong_key_0000")

    def make_emulator(self) -> Any:
        return create_app(delivery_delay=0.2, campaign_delay=0.2)

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        key = SANDBOX_API_KEY if valid else "dm_wrong_key_0000"
        return ProviderSettings(plugin="campaigns_api", base_url=base_url, credentials={"api_key": key},
                                sender="ACME")
