"""The OAuth2 tokens are not readable from the provider's attributes, reprs or logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from smsgate.models import OutboundMessage
from smsgate.provider import ProviderSettings
from smsgate.testing.server import LiveServer
from smsgate.transport import SyncDriver
from smsgate_colony import ColonyProvider
from smsgate_colony.api import OAuthToken
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app


def test_tokens_are_not_in_vars_repr_or_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(delivery_delay=0)
    with LiveServer(app) as server, httpx.Client() as client:
        p = ColonyProvider(ProviderSettings(plugin="colony", base_url=server.url,
                                            credentials=dict(SANDBOX_CREDENTIALS)))
        with caplog.at_level(logging.DEBUG):
            SyncDriver(client).run(p.send(OutboundMessage(to="+27815854565", text="hello")))
        issued = list(app.vendor.tokens) + list(app.vendor.refresh_tokens)
        assert len(issued) == 2  # one access and one refresh token were handed out
        assert p._token in issued  # the provider does hold the access token ...
        shown = (repr(vars(p)) + str(vars(p)) + repr(p)
                 + "\n".join(r.getMessage() for r in caplog.records))
        for token in issued:  # ... but nothing printable shows it
            assert token not in shown
        for secret in SANDBOX_CREDENTIALS.values():
            assert secret not in "\n".join(r.getMessage() for r in caplog.records)
        assert all(not isinstance(v, str) or v not in issued for v in vars(p).values())
        assert "<redacted>" in repr(vars(p))
        assert set(issued) <= set(p.secrets())  # errors redact the tokens too


def test_token_holder_repr_redacts_and_clear_forgets() -> None:
    holder = OAuthToken()
    assert repr(holder) == "OAuthToken(access=None, refresh=None, expires_at=None)"
    holder.access, holder.refresh, holder.expires_at = "acc-123", "ref-456", 10.0
    assert "acc-123" not in repr(holder) and "ref-456" not in repr(holder)
    assert holder.values() == ["acc-123", "ref-456"]
    holder.clear()
    assert holder.values() == [] and holder.expires_at is None
