"""Credentials never reach the logs: every operation against the emulator, logging at DEBUG."""

from __future__ import annotations

import logging

import httpx
import pytest

from smsgate.errors import AuthFailed
from smsgate.models import OutboundMessage, Template
from smsgate.provider import ProviderSettings
from smsgate.testing.server import LiveServer
from smsgate.transport import SyncDriver
from smsgate_squad import SquadProvider
from smsgate_squad.emulator import (
    SANDBOX_SECRET_KEY,
    SANDBOX_V1_KEY,
    SANDBOX_V1_OPTIONS,
    SANDBOX_V1_SECRET,
    create_app,
)


def test_no_credential_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with LiveServer(create_app(delivery_delay=0)) as server, httpx.Client() as client:
        drive = SyncDriver(client)
        v2 = SquadProvider(ProviderSettings(plugin="squad", base_url=server.url, sender="ACME",
                                            credentials={"secret_key": SANDBOX_SECRET_KEY}))
        v1 = SquadProvider(ProviderSettings(plugin="squad", base_url=server.url, sender="ACME",
                                            credentials={"key": SANDBOX_V1_KEY, "secret": SANDBOX_V1_SECRET},
                                            options=SANDBOX_V1_OPTIONS))
        wrong = SquadProvider(ProviderSettings(plugin="squad", base_url=server.url, sender="ACME",
                                               credentials={"secret_key": "sandbox_sk_not-the-key-0123"}))
        with caplog.at_level(logging.DEBUG):
            for prov in (v2, v1):
                result = drive.run(prov.send(OutboundMessage(to="+2348031234567", text="hello", sender="ACME")))
                assert result.ok
                drive.run(prov.create_template(Template(name="t", body="Hi {name}")))
            assert drive.run(v1.status(result)).provider_message_id == result.provider_message_id
            with pytest.raises(AuthFailed) as info:
                drive.run(wrong.send(OutboundMessage(to="+2348031234567", text="x", sender="ACME")))
        assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log
        text = "\n".join(r.getMessage() for r in caplog.records) + str(info.value) + repr(v1) + repr(v2)
        for secret in (SANDBOX_SECRET_KEY, SANDBOX_V1_KEY, SANDBOX_V1_SECRET, "sandbox_sk_not-the-key-0123"):
            assert secret not in text
